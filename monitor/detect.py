"""Previous vs current capture -> a change class and its evidence (pure)."""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Sequence

from monitor.domain import ChangeClass, Content, Evidence, Fingerprints, Verdict, VersionRef
from monitor.fingerprint import Layers

MAX_DIFF_LINES = 400
MAX_LINE = 600
MAX_ALIGN = 4_000_000  # blocks before x blocks after (the middle that differs) aligned one by one


def classify(prev: Fingerprints, cur: Fingerprints) -> ChangeClass:
    """The most significant difference between two captures."""
    if cur.main_masked != prev.main_masked:
        return ChangeClass.CONTENT
    if cur.documents != prev.documents:
        return ChangeClass.DOCUMENTS
    if cur.links != prev.links:
        return ChangeClass.LINKS
    if cur.main_dated != prev.main_dated:
        return ChangeClass.DATE_ONLY
    if cur.text != prev.text or cur.main != prev.main or cur.raw != prev.raw:
        return ChangeClass.COSMETIC
    return ChangeClass.NONE


def _counts(before: Sequence[str], after: Sequence[str]) -> tuple[int, int, int]:
    """Blocks added, removed and edited, by aligning the two versions. The common head and tail are set
    aside first (an edit is usually in one place); a middle too large to align (aligning repeated blocks
    costs time squared: 20,000 equal table cells took 40 s) is counted as two multisets instead."""
    n = min(len(before), len(after))
    head = 0
    while head < n and before[head] == after[head]:
        head += 1
    tail = 0
    while tail < n - head and before[len(before) - 1 - tail] == after[len(after) - 1 - tail]:
        tail += 1
    a, b = before[head:len(before) - tail], after[head:len(after) - tail]
    if len(a) * len(b) > MAX_ALIGN:
        gone, new = Counter(a), Counter(b)
        added, removed = sum((new - gone).values()), sum((gone - new).values())
        edited = min(added, removed)
        return added - edited, removed - edited, edited
    added = removed = edited = 0
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "insert":
            added += j2 - j1
        elif op == "delete":
            removed += i2 - i1
        elif op == "replace":
            common = min(i2 - i1, j2 - j1)
            edited += common
            added += (j2 - j1) - common
            removed += (i2 - i1) - common
    return added, removed, edited


def _clip(line: str) -> str:
    return line if len(line) <= MAX_LINE else line[:MAX_LINE] + "…"


def text_diff(before: Sequence[str], after: Sequence[str], context: int = 1) -> str:
    lines = list(difflib.unified_diff([_clip(x) for x in before], [_clip(x) for x in after],
                                      fromfile="before", tofile="after", n=context, lineterm=""))
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"… {len(lines) - MAX_DIFF_LINES} more diff lines"]
    return "\n".join(lines)


def evidence(prev: Content, cur: Content, prev_layers: Layers, cur_layers: Layers,
             change_class: ChangeClass) -> Evidence:
    basis_before, basis_after = ((prev_layers.masked, cur_layers.masked) if change_class is ChangeClass.CONTENT
                                 else (prev_layers.dated, cur_layers.dated))
    added, removed, edited = _counts(basis_before, basis_after)
    prev_links, cur_links = {x.url for x in prev.links}, {x.url for x in cur.links}
    prev_docs, cur_docs = {x.url for x in prev.documents}, {x.url for x in cur.documents}
    return Evidence(
        added=added, removed=removed, edited=edited,
        diff=text_diff(prev_layers.main, cur_layers.main),
        links_added=tuple(sorted(cur_links - prev_links)), links_removed=tuple(sorted(prev_links - cur_links)),
        documents_added=tuple(sorted(cur_docs - prev_docs)), documents_removed=tuple(sorted(prev_docs - cur_docs)),
    )


def is_flap(key: str, recent: Sequence[VersionRef]) -> bool:
    """Equal to one of the recent versions, but not the current one: a widget flipping back (A->B->A)."""
    return any(ref.key_hash == key for ref in recent[:-1])


def verdict(prev: Fingerprints, cur: Fingerprints, *, key: str, recent: Sequence[VersionRef],
            prev_content: Content | None = None, cur_content: Content | None = None,
            prev_layers: Layers | None = None, cur_layers: Layers | None = None) -> Verdict:
    change = classify(prev, cur)
    if not change.is_change:  # cosmetic or none: no evidence to keep
        return Verdict(change_class=change)
    flapped = is_flap(key, recent)
    if prev_content is None or cur_content is None or prev_layers is None or cur_layers is None:
        return Verdict(change_class=change, flapped=flapped)
    return Verdict(change_class=change, flapped=flapped,
                   evidence=evidence(prev_content, cur_content, prev_layers, cur_layers, change))
