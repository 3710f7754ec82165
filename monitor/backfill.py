"""Backfill: a page's history from before the monitor watched it, read from web archives (a CDX server and
its raw replay) or from WARC / WACZ files, each capture put through the same core as a live check at its own
time and marked with its source.

Each capture is recorded once: captures already recorded for the page (at the same time, from any archive)
are passed over, so an interrupted run resumes where it stopped and a second run adds nothing. Consecutive
captures with the archive's same payload digest are not fetched again: the body is the one already read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from monitor import archive, warc
from monitor.archive import Archive, ArchiveError, CdxCapture
from monitor.domain import Fetch, FetchResult, Outcome, Target
from monitor.runner import Runner

DRAIN_S = 120.0  # how long to wait for the writer after each capture (the next one is judged against it)


def url_key(url: str) -> str:
    """An address as archives and crawlers may spell it, reduced to what names the page: no scheme, no
    `www.`, no default port, no trailing slash, the query sorted, no fragment."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower().removeprefix("www.")
    with contextlib.suppress(UnicodeError):  # київ.укр and xn--b1alf1j.xn--j1amh are one host
        host = host.encode("idna").decode("ascii")
    try:
        port = parts.port
    except ValueError:
        port = None
    if port and (parts.scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    path = quote(unquote(parts.path or "/"), safe="/:@!$&'()*+,;=-._~")  # /а and /%D0%B0 are one path
    if path != "/":
        path = path.rstrip("/") or "/"
    query = urlencode(sorted(parse_qsl(parts.query, keep_blank_values=True)))
    return f"{host}{path}" + (f"?{query}" if query else "")


@dataclass
class Counts:
    """What a backfill did, as it goes (the progress bar reads it)."""

    pages: int = 0
    found: int = 0  # captures in the range
    imported: int = 0
    already: int = 0  # recorded by an earlier run
    reused: int = 0  # the same payload digest as the capture before: not fetched again
    errors_recorded: int = 0  # captures of an error page (404, 5xx): recorded as failed checks
    redirects: int = 0  # captures of a redirect: passed over (the target has its own captures)
    problems: list[str] = field(default_factory=list)  # bad lines, records, archive failures


class Backfill:
    def __init__(self, runner: Runner, *, on_progress: Callable[[Counts], None] | None = None) -> None:
        self.runner = runner
        self.on_progress = on_progress or (lambda _counts: None)
        self.counts = Counts()

    async def _place(self, target: Target, capture: FetchResult) -> None:
        await self.runner.record_late(target, capture)
        if not await self.runner.recorder.drain(DRAIN_S):
            raise ArchiveError("the store did not take the captures in time; run the backfill again to resume")
        if capture.outcome.success:
            self.counts.imported += 1
        else:
            self.counts.errors_recorded += 1
        self.on_progress(self.counts)

    async def from_archive(self, targets: Sequence[Target], fetcher: Fetch, source: Archive, start: datetime,
                           end: datetime) -> Counts:
        """Every page's captures in [start, end) from the archive, oldest first."""
        for target in targets:
            self.counts.pages += 1
            try:
                found, problems = await archive.captures(fetcher, source, target.page.url, start, end)
            except ArchiveError as exc:
                self.counts.problems.append(str(exc))
                continue
            self.counts.problems.extend(problems)
            self.counts.found += len(found)
            done = self.runner.stores.checks.archived_times(target.page_id)
            last: tuple[str, FetchResult] | None = None  # the digest and capture read last
            for cap in found:
                if cap.captured_at in done:
                    self.counts.already += 1
                    continue
                got = await self._read(fetcher, source, target, cap, last)
                if got is None:
                    continue
                if got.outcome.success and cap.digest:
                    last = (cap.digest, got)
                await self._place(target, got)
                done.add(cap.captured_at)
            self.on_progress(self.counts)
        return self.counts

    async def _read(self, fetcher: Fetch, source: Archive, target: Target, cap: CdxCapture,
                    last: tuple[str, FetchResult] | None) -> FetchResult | None:
        if cap.status is not None and 300 <= cap.status < 400:
            self.counts.redirects += 1
            return None
        if cap.status is not None and cap.status >= 400:
            return archive.failed_capture(cap, target.page.url, source.name)
        if last is not None and cap.digest and last[0] == cap.digest:
            self.counts.reused += 1
            return replace(last[1], started_at=cap.captured_at, final_url=cap.url)
        try:
            return await archive.replay(fetcher, source, cap, target.page.url)
        except ArchiveError as exc:
            self.counts.problems.append(str(exc))
            return None

    async def from_warc(self, targets: Sequence[Target], paths: Iterable[Path], start: datetime,
                        end: datetime) -> Counts:
        """The responses for the catalogue's pages in WARC / WACZ files, in [start, end), oldest first."""
        by_key: dict[str, list[Target]] = {}
        for t in targets:
            by_key.setdefault(url_key(t.page.url), []).append(t)
        self.counts.pages = len(targets)
        found: list[tuple[datetime, Target, FetchResult]] = []
        for path in paths:
            for item in warc.read(path, wanted=lambda u: url_key(u) in by_key,
                                  max_bytes=self.runner.settings.max_body_bytes):
                if isinstance(item, warc.WarcProblem):
                    self.counts.problems.append(str(item))
                    continue
                if not start <= item.captured_at < end:
                    continue
                if item.status is not None and 300 <= item.status < 400 and item.status != 304:
                    self.counts.redirects += 1
                    continue
                for target in by_key[url_key(item.url)]:
                    found.append((item.captured_at, target, _capture(item, target, path.name)))
        found.sort(key=lambda f: (f[1].page_id, f[0]))
        self.counts.found += len(found)
        done: dict[int, set[datetime]] = {}
        for at, target, capture in found:
            seen = done.setdefault(target.page_id, self.runner.stores.checks.archived_times(target.page_id))
            if at in seen:
                self.counts.already += 1
                continue
            await self._place(target, capture)
            seen.add(at)
        self.on_progress(self.counts)
        return self.counts


def _capture(item: warc.ArchivedResponse, target: Target, source: str) -> FetchResult:
    ok = item.status is not None and 200 <= item.status < 300
    return FetchResult(url=target.page.url, final_url=item.url, outcome=Outcome.OK if ok else Outcome.HTTP_STATUS,
                       started_at=item.captured_at, elapsed_s=0.0, status=item.status,
                       body=item.body if ok else None, content_type=item.content_type, charset=item.charset,
                       last_modified=item.last_modified, source=f"warc:{source}",
                       error="" if ok else f"HTTP {item.status} (archived)")
