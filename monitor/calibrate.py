"""Learning a page's own noise (pure): blocks that change by themselves are masked from then on.

Three sources, each with its evidence: two captures a few seconds apart (anything that differs between
them changed by itself), the history of versions (a block that changes at nearly every noise-only
version while the rest of the page stays still; real updates are not counted), and the site's other
monitored pages (blocks the site repeats on them are its template, not this page's content).
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.domain import Content, Region
from monitor.fingerprint import layers
from monitor.mask import DATE, mask_volatile

MAX_CHANGED_SHARE = 0.3  # if more of the blocks than this differ, the page itself was updated: learn nothing
PATH_SHARE = 0.5  # a structural path is volatile only if at least half of its blocks changed
HISTORY_MIN_TRANSITIONS = 5
HISTORY_SHARE = 0.8  # a block changing in at least 80 % of the transitions...
HISTORY_QUIET = 2.0  # ...while, on average, at most this many blocks change per transition
TEMPLATE_PAGES = 2  # a block repeated (same path, same text) on at least this many other pages of the site...
TEMPLATE_MAX_SHARE = 0.5  # ...unless the repeats are most of the page's text: then it is the same page twice


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


def is_noise_transition(a: Content, b: Content, known: frozenset[str] = frozenset()) -> bool:
    """Whether the detector classes the change from a to b as noise: its content layer (stamps masked, dates
    in sentences kept) and its documents are unchanged. A real update is never evidence of noise."""
    return (layers(a, known).masked == layers(b, known).masked
            and {d.url for d in a.documents} == {d.url for d in b.documents})


def learn_from_history(versions: Sequence[Content], known: frozenset[str] = frozenset()) -> list[Learned]:
    """Blocks that changed in nearly every noise-only transition of the recent versions, while the rest stayed
    still. Transitions that the detector classes as real updates are not counted at all: a news list whose
    items change at every real update is the page's content, not its noise."""
    noise = [(a, b) for a, b in itertools.pairwise(versions) if is_noise_transition(a, b, known)]
    transitions = len(noise)
    if transitions < HISTORY_MIN_TRANSITIONS:
        return []
    counts: Counter[str] = Counter()
    total_changed = 0
    for a, b in noise:
        changed, _share, _texts = changed_paths(a, b, known)
        counts.update(changed)
        total_changed += len(changed)
    if total_changed / transitions > HISTORY_QUIET:
        return []
    return [Learned(path=p, evidence=f"history: changed in {n} of the last {transitions} noise-only version "
                                     "transitions")
            for p, n in sorted(counts.items()) if n / transitions >= HISTORY_SHARE]


def _date_stamp(text: str) -> bool:
    """A date with at most a few words ("Оновлено: 15.03.2021"): each page's own stamp, alike on pages updated the
    same day, and the signal of a date-only change. Never taken for the site's template."""
    return DATE.search(text) is not None and len(re.findall(r"\w+", DATE.sub(" ", text))) <= 3


def learn_from_siblings(page: Content, siblings: Sequence[Content], known: frozenset[str] = frozenset(), *,
                        when: str = "") -> list[Learned]:
    """Paths of the page's blocks that the site repeats on its other monitored pages (the same text under the
    same path): the site's template (a "latest news" box, the contacts under every page), whose changes are
    not this page's update. A path is learned only if every one of the page's blocks under it repeats, so a
    path the page shares between its own text and the template is never masked; and nothing is learned when
    the repeats make up most of the page's text (two addresses of one page are not a template)."""
    if len(siblings) < TEMPLATE_PAGES:
        return []
    seen: Counter[tuple[str, str]] = Counter()
    for other in siblings:
        seen.update({(b.path, b.text) for b in other.blocks})
    by_path: dict[str, list[str]] = {}
    total = 0
    for b in page.blocks:
        if b.region is Region.MAIN and b.volatile != "all":
            total += len(b.text)
            if b.path not in known:
                by_path.setdefault(b.path, []).append(b.text)
    template = {p: texts for p, texts in by_path.items()
                if all(seen[(p, t)] >= TEMPLATE_PAGES and not _date_stamp(t) for t in texts)}
    if not template or sum(len(t) for texts in template.values() for t in texts) > TEMPLATE_MAX_SHARE * total:
        return []
    return [Learned(path=p, evidence=f"template {when}: {_clip(texts)!r} also on {TEMPLATE_PAGES}+ other pages "
                                     "of the site") for p, texts in sorted(template.items())]
