"""Web archives as a source of captures: the CDX index protocol (the Wayback Machine's, and pywb's or
OpenWayback's) to list a page's captures, and raw (`id_`) replay to read each as it was served, without the
archive's banner or rewriting.

One small client over our own fetcher (its address guard, size limits, Retry-After and back-off), rather
than EDGI's `wayback` package: that package fixes the Wayback Machine's address in a module constant and
speaks over `requests`, so it could not be pointed at another archive — nor tested against a local one.
The protocol is a GET with a few parameters and three answer forms, all read here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

from monitor.domain import Fetch, FetchResult, Outcome
from monitor.errors import MonitorError

WAYBACK_CDX = "https://web.archive.org/cdx/search/cdx"
WAYBACK_REPLAY = "https://web.archive.org/web/"
IA_FIELDS = ("urlkey", "timestamp", "original", "mimetype", "statuscode", "digest", "length")
CDX11_FIELDS = ("urlkey", "timestamp", "original", "mimetype", "statuscode", "digest", "redirect", "robotflags",
                "length", "offset", "filename")


class ArchiveError(MonitorError):
    """The archive did not answer with what the protocol promises (named in the message)."""


@dataclass(frozen=True, slots=True)
class CdxCapture:
    timestamp: str  # 14 digits, UTC
    url: str  # the original address
    status: int | None  # None for a revisit ("-"), whose status is its original's
    mime: str
    digest: str

    @property
    def captured_at(self) -> datetime:
        return datetime.strptime(self.timestamp[:14].ljust(14, "0"), "%Y%m%d%H%M%S").replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Archive:
    """Where an archive answers: its CDX endpoint and its replay prefix (…/{timestamp}id_/{url})."""

    name: str
    cdx: str
    replay: str
    allow_private: bool = False

    @classmethod
    def wayback(cls) -> Archive:
        return cls("web.archive.org", WAYBACK_CDX, WAYBACK_REPLAY)

    @classmethod
    def at(cls, cdx: str, replay: str, *, allow_private: bool = False) -> Archive:
        for url in (cdx, replay):
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                raise ArchiveError(f"not an http(s) address: {url!r}")
        parts = urlsplit(replay)
        return cls(f"{parts.netloc}{parts.path}".rstrip("/"), cdx, replay, allow_private)


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%d%H%M%S")


def parse_cdx(text: str, *, where: str = "the CDX answer") -> tuple[list[CdxCapture], list[str]]:
    """The three forms CDX servers answer in: a JSON array whose first row names the fields (the Wayback
    Machine's output=json), JSON lines of objects (pywb), and space-separated lines (7 or 11 fields). A line
    without a timestamp or an address is a problem named by its number; the others are kept."""
    captures: list[CdxCapture] = []
    problems: list[str] = []
    stripped = text.lstrip()
    if stripped.startswith("<"):
        raise ArchiveError(f"{where} is HTML, not a CDX index (is the address the archive's CDX endpoint?)")
    rows: Iterator[tuple[int, dict[str, str] | None]]
    if stripped.startswith("["):
        try:
            doc = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ArchiveError(f"{where} is not valid JSON: {exc}") from None
        if not doc:
            return [], []
        if not isinstance(doc, list) or not all(isinstance(r, list) for r in doc):
            raise ArchiveError(f"{where}: a JSON answer that is not a list of rows")
        names = [str(n) for n in doc[0]]
        rows = ((i, dict(zip(names, map(str, r), strict=False))) for i, r in enumerate(doc[1:], start=2))
    else:
        rows = (_line(i, line) for i, line in enumerate(text.splitlines(), start=1) if line.strip())
    for number, row in rows:
        if row is None:
            problems.append(f"{where}, line {number}: not a CDX line")
            continue
        timestamp = row.get("timestamp", "")
        url = row.get("original") or row.get("url") or ""
        if not (timestamp.isdigit() and 8 <= len(timestamp) <= 14) or not url:
            problems.append(f"{where}, line {number}: no timestamp or address")
            continue
        try:
            datetime.strptime(timestamp.ljust(14, "0"), "%Y%m%d%H%M%S")
        except ValueError:
            problems.append(f"{where}, line {number}: {timestamp!r} is not a time")
            continue
        status = row.get("statuscode") or row.get("status") or ""
        captures.append(CdxCapture(timestamp=timestamp, url=url, status=int(status) if status.isdigit() else None,
                                   mime=row.get("mimetype") or row.get("mime") or "",
                                   digest=_digest(row.get("digest"))))
    return captures, problems


def _digest(value: str | None) -> str:
    """The archive's payload digest, or "" where it gave a placeholder ("-", null): a placeholder shared by
    captures must never make them one."""
    text = (value or "").strip()
    return "" if text in ("-", "None", "null", "none") else text


def _line(number: int, line: str) -> tuple[int, dict[str, str] | None]:
    line = line.strip()
    if line.startswith("{"):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            return number, None
        return number, {str(k): str(v) for k, v in obj.items()} if isinstance(obj, dict) else None
    parts = line.split()
    if len(parts) >= 11:
        return number, dict(zip(CDX11_FIELDS, parts, strict=False))
    if len(parts) >= 7:
        return number, dict(zip(IA_FIELDS, parts, strict=False))
    return number, {"urlkey": parts[0]} if parts else None


async def captures(fetcher: Fetch, archive: Archive, url: str, start: datetime,
                   end: datetime) -> tuple[list[CdxCapture], list[str]]:
    """The archive's captures of `url` in [start, end), oldest first, and the lines it could not read."""
    query = urlencode({"url": url, "from": _stamp(start), "to": _stamp(end), "output": "json"})
    where = f"{archive.name}'s CDX index for {url}"
    got = await fetcher.fetch(f"{archive.cdx}?{query}", allow_private=archive.allow_private)
    if got.outcome is Outcome.HTTP_STATUS and got.status == 404:
        return [], []  # pywb and OpenWayback answer 404 for an address they never captured
    if got.outcome is Outcome.BLOCKED:
        raise ArchiveError(f"{where}: the archive is on a private or loopback address; if that is meant, add "
                           "--allow-private")
    if not got.outcome.success or got.body is None:
        raise ArchiveError(f"{where}: {got.outcome.value} {got.status or ''} {got.error}".strip())
    found, problems = parse_cdx(got.body.decode("utf-8", "replace"), where=where)
    inside = [c for c in found if start <= c.captured_at < end]
    return sorted(inside, key=lambda c: c.timestamp), problems


async def replay(fetcher: Fetch, archive: Archive, capture: CdxCapture, page_url: str) -> FetchResult:
    """The capture as it was served (raw replay), as a capture of `page_url` taken at the capture's time.
    Raises ArchiveError when the archive, not the page, failed (the index promised a response it cannot
    give)."""
    address = f"{archive.replay.rstrip('/')}/{capture.timestamp}id_/{capture.url}"
    got = await fetcher.fetch(address, allow_private=archive.allow_private)
    if not got.outcome.success or got.body is None:
        raise ArchiveError(f"{archive.name} could not replay {capture.url} of {capture.timestamp}: "
                           f"{got.outcome.value} {got.status or ''} {got.error}".strip())
    return replace(got, url=page_url, final_url=capture.url, started_at=capture.captured_at, elapsed_s=0.0,
                   redirects=0, attempts=1, source=archive.name, tls_expires_at=None, retry_after_s=None)


def failed_capture(capture: CdxCapture, page_url: str, source: str) -> FetchResult:
    """A capture the archive recorded as an error (a 404, a 503): the page's state then, without a body."""
    return FetchResult(url=page_url, final_url=capture.url, outcome=Outcome.HTTP_STATUS,
                       started_at=capture.captured_at, elapsed_s=0.0, status=capture.status,
                       error=f"HTTP {capture.status} (archived)", source=source)
