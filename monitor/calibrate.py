"""Learning a page's own noise (pure): blocks that change by themselves are masked from then on.

Two sources, each with its evidence: two captures a few seconds apart (anything that differs between
them changed by itself), and the history of versions (a block that changes at nearly every version
while the rest of the page stays still).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.domain import Content, Region
from monitor.mask import mask_volatile

MAX_CHANGED_SHARE = 0.3  # if more of the blocks than this differ, the page itself was updated: learn nothing
PATH_SHARE = 0.5  # a structural path is volatile only if at least half of its blocks changed
HISTORY_MIN_TRANSITIONS = 5
HISTORY_SHARE = 0.8  # a block changing in at least 80 % of the transitions...
HISTORY_QUIET = 2.0  # ...while, on average, at most this many blocks change per transition


@dataclass(frozen=True, slots=True, kw_only=True)
class Learned:
    path: str
    evidence: str


def _by_path(content: Content, known: frozenset[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for b in content.blocks:
        if b.region is Region.MAIN and b.volatile != "all" and b.path not in known:
            out.setdefault(b.path, []).append(mask_volatile(b.text))
    return out


def _clip(texts: list[str]) -> str:
    joined = " | ".join(texts)
    return joined if len(joined) <= 160 else joined[:157] + "…"


Texts = dict[str, tuple[list[str], list[str]]]


def changed_paths(a: Content, b: Content, known: frozenset[str] = frozenset()) -> tuple[list[str], float, Texts]:
    """Paths whose blocks changed between two captures, the share of all blocks that changed, and the texts.

    A path is shared by all blocks with the same structure (the items of one list): it is reported only if
    most of its blocks changed, so that one rotating item never gets a whole list of news masked.
    """
    pa, pb = _by_path(a, known), _by_path(b, known)
    changed_paths_: list[str] = []
    changed_blocks = total_blocks = 0
    for p in sorted(set(pa) | set(pb)):
        xa, xb = pa.get(p, []), pb.get(p, [])
        size = max(len(xa), len(xb))
        differing = sum(1 for x, y in itertools.zip_longest(xa, xb) if x != y)
        total_blocks += size
        changed_blocks += differing
        if differing and differing / size >= PATH_SHARE:
            changed_paths_.append(p)
    share = changed_blocks / total_blocks if total_blocks else 0.0
    return changed_paths_, share, {p: (pa.get(p, []), pb.get(p, [])) for p in changed_paths_}


def learn_from_pair(a: Content, b: Content, known: frozenset[str] = frozenset(), *,
                    when: str = "") -> list[Learned]:
    """Blocks that differ between two captures taken seconds apart are volatile."""
    changed, share, texts = changed_paths(a, b, known)
    if not changed or share > MAX_CHANGED_SHARE:
        return []
    return [Learned(path=p, evidence=f"calibration {when}: {_clip(texts[p][0])!r} -> {_clip(texts[p][1])!r}")
            for p in changed]


def learn_from_history(versions: Sequence[Content], known: frozenset[str] = frozenset()) -> list[Learned]:
    """Blocks that changed in nearly every transition of the recent versions, while the rest stayed still."""
    transitions = len(versions) - 1
    if transitions < HISTORY_MIN_TRANSITIONS:
        return []
    counts: Counter[str] = Counter()
    total_changed = 0
    for a, b in itertools.pairwise(versions):
        changed, _share, _texts = changed_paths(a, b, known)
        counts.update(changed)
        total_changed += len(changed)
    if total_changed / transitions > HISTORY_QUIET:
        return []
    return [Learned(path=p, evidence=f"history: changed in {n} of the last {transitions} version transitions")
            for p, n in sorted(counts.items()) if n / transitions >= HISTORY_SHARE]
