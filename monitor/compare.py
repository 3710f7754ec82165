"""Offline comparison of two captures (files or URLs): read and judged by the core, without a database."""

from __future__ import annotations

from monitor.core import Reading, capture_of, decide, read
from monitor.domain import ChangeClass, Kind, Verdict
from monitor.extract import ExtractOptions

__all__ = ["Reading", "classify_pair", "compare", "read_bytes"]


def read_bytes(body: bytes, *, url: str = "https://example.org/", kind: Kind = Kind.HTML,
               options: ExtractOptions | None = None, noise: frozenset[str] = frozenset()) -> Reading:
    return read(capture_of(body, url=url), kind, options=options, noise=noise)


def compare(before: Reading, after: Reading) -> Verdict:
    """The class and evidence of the change from `before` to `after`."""
    return decide(before, after)


def classify_pair(before: bytes, after: bytes, *, url: str = "https://example.org/",
                  kind: Kind = Kind.HTML) -> ChangeClass:
    return compare(read_bytes(before, url=url, kind=kind), read_bytes(after, url=url, kind=kind)).change_class
