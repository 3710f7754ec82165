"""The running monitor: targets, per-page state, concurrency, the buffered writer and the heartbeat.

The store is reached only through the injected Store object; checks keep going while the database
is unreachable, their records wait in a bounded buffer (new checks wait when it is full, nothing is
dropped) and are written when the database is back.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from monitor.calibrate import Learned, learn_from_history, learn_from_pair
from monitor.domain import (
    Catalogue,
    ChangeClass,
    CheckRecord,
    Content,
    Fetch,
    Kind,
    Outcome,
    PageState,
    Quality,
    Target,
    load_content,
)
from monitor.errors import StoreError, StoreUnavailable
from monitor.extract import extract, options_for
from monitor.pipeline import Checker
from monitor.regulation import default_interval_s
from monitor.store.repository import Store

logger = logging.getLogger(__name__)

HISTORY_WAIT_S = 600.0  # history learning waits this long for the new version to be written


def utcnow() -> datetime:
    return datetime.now(UTC)


class Recorder:
    """Writes check records in batches; holds them (bounded) while the database is unreachable."""

    def __init__(self, store: Store, *, max_pending: int = 20_000, max_pending_bytes: int = 64 << 20,
                 batch: int = 200, retry_max_s: float = 10.0, linger_s: float = 0.05) -> None:
        self.store = store
        self.linger_s = linger_s  # a short wait for more records before a small batch: fewer, larger writes
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.pending_bytes = 0
        self.batch = batch
        self.retry_max_s = retry_max_s
        self.pending: deque[CheckRecord] = deque()
        self.db_ok = True
        self.last_error = ""
        self.written = 0
        self.put_count = 0  # records taken so far; the n-th one is done when done_count >= n
        self.done_count = 0  # records written or dropped, in the order they were taken
        self._done = asyncio.Condition()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()

    @staticmethod
    def _size(record: CheckRecord) -> int:
        return len(record.raw_blob or b"") + len(record.content_blob or b"") + 512

    async def put(self, record: CheckRecord) -> int:
        """Take a record to write; its sequence number (see `wait_written`)."""
        # back-pressure: checks wait while the buffer is full (by count or by bytes); nothing is dropped
        while self.pending and (len(self.pending) >= self.max_pending
                                or self.pending_bytes >= self.max_pending_bytes):
            self._room.clear()
            await self._room.wait()
        self.pending.append(record)
        self.pending_bytes += self._size(record)
        self._idle.clear()
        self._wake.set()
        self.put_count += 1
        return self.put_count

    async def wait_written(self, seq: int, timeout_s: float | None = None) -> bool:
        """Wait until the record numbered `seq` by `put` is written (or dropped); False on timeout."""
        async with self._done:
            try:
                await asyncio.wait_for(self._done.wait_for(lambda: self.done_count >= seq), timeout_s)
            except TimeoutError:
                return False
        return True

    async def _advance(self, n: int) -> None:
        self.done_count += n
        async with self._done:
            self._done.notify_all()

    async def run(self) -> None:
        """The writer loop; cancel it after `drain()` to stop."""
        delay = 0.5
        while True:
            if not self.pending:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            if len(self.pending) < self.batch and self.db_ok and self.linger_s:
                await asyncio.sleep(self.linger_s)
            batch = [self.pending[i] for i in range(min(self.batch, len(self.pending)))]
            try:
                await asyncio.to_thread(self.store.write, batch)
            except StoreUnavailable as exc:
                if self.db_ok:
                    logger.error("database unreachable, buffering checks: %s", exc)
                self.db_ok, self.last_error = False, str(exc)
                await asyncio.sleep(delay)
                delay = min(self.retry_max_s, delay * 2)
                continue
            except StoreError as exc:  # one bad record must not block the others: write them one by one
                logger.error("a batch could not be written (%s); writing its records one by one", exc)
                for rec in batch:
                    try:
                        await asyncio.to_thread(self.store.write, [rec])
                        self.written += 1
                    except StoreUnavailable:
                        break
                    except StoreError:
                        logger.exception("dropping an unwritable check record for page %s", rec.page_id)
                    self.pending.remove(rec)
                    self.pending_bytes -= self._size(rec)
                    await self._advance(1)
                self._room.set()
                continue
            for rec in batch:
                self.pending.popleft()
                self.pending_bytes -= self._size(rec)
            self.written += len(batch)
            await self._advance(len(batch))
            if not self.db_ok:
                logger.warning("database reachable again; wrote %d buffered checks", len(batch))
            self.db_ok, self.last_error, delay = True, "", 0.5
            self._room.set()

    async def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until every pending record is written; False if the timeout passed first."""
        if not self.pending:
            return True
        self._wake.set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True


@dataclass(slots=True)
class Health:
    """The monitor's own health, as the heartbeat and the metrics see it."""

    worker: str
    hostname: str
    pid: int
    started_at: datetime
    checks_done: int = 0
    beat_at: datetime | None = None  # the scheduler's last heartbeat, written or not
    last_round_at: datetime | None = None
    schedule_lag_s: float = 0.0
    lags: deque[float] = field(default_factory=lambda: deque(maxlen=500))


class Runner:
    """Checks targets with bounded concurrency, keeps their state, records results."""

    def __init__(self, catalogue: Catalogue, store: Store, fetcher: Fetch, *,
                 clock: Callable[[], datetime] = utcnow, worker: str | None = None, learn: bool = True) -> None:
        self.catalogue = catalogue
        self.settings = catalogue.settings
        self.store = store
        self.clock = clock
        self.worker = worker or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.health = Health(worker=self.worker, hostname=socket.gethostname(), pid=os.getpid(),
                             started_at=clock())
        self.recorder = Recorder(store)
        self.checker = Checker(fetcher, self.settings, load_previous=self._load_previous, worker=self.worker)
        self.targets: dict[int, Target] = {}
        self.states: dict[int, PageState] = {}
        self.fetcher = fetcher
        self.learn = learn
        self._slots = asyncio.Semaphore(self.settings.concurrency)
        self._page_locks: dict[int, asyncio.Lock] = {}
        self._calibrated: dict[int, datetime | None] = {}
        self._background: set[asyncio.Task[None]] = set()

    async def _load_previous(self, page_id: int, key: str) -> bytes | None:
        # a version not written yet (the writer is behind, or the database is away) is still in the buffer
        for rec in reversed(self.recorder.pending):
            if rec.page_id == page_id and rec.version_key == key and rec.content_blob is not None:
                return rec.content_blob
        return await asyncio.to_thread(self.store.version_content, page_id, key)

    def prepare(self) -> list[Target]:
        """Sync the catalogue into the store and load each page's state."""
        ids = self.store.sync_catalogue(self.catalogue, self.clock())
        noise = self.store.noise_paths(ids.values())
        targets = []
        for svc in self.catalogue.services:
            for page in svc.pages:
                pid = ids[page.key]
                interval = page.interval_s or default_interval_s(svc.regulation)
                targets.append(Target(page=page, service=svc, page_id=pid, interval_s=interval,
                                      noise_paths=frozenset(noise.get(pid, ()))))
        self.targets = {t.page_id: t for t in targets}
        self.states = self.store.page_states(self.targets, recent=self.settings.anti_flap_versions + 1)
        for pid in self.targets:
            self.states.setdefault(pid, PageState(page_id=pid))
        self._calibrated = self.store.calibrated(self.targets)
        return targets

    def select(self, service_ids: Iterable[str] = ()) -> list[Target]:
        wanted = set(service_ids)
        return [t for t in self.targets.values() if not wanted or t.service.id in wanted]

    async def check(self, target: Target, *, scheduled_at: datetime | None = None) -> CheckRecord:
        """Check one page now (one check of a page at a time; `concurrency` checks in all)."""
        lock = self._page_locks.setdefault(target.page_id, asyncio.Lock())
        async with lock, self._slots:
            now = self.clock()
            if scheduled_at is not None:
                lag = max(0.0, (now - scheduled_at).total_seconds())
                self.health.lags.append(lag)
            t0 = time.monotonic()
            state = self.states.get(target.page_id) or PageState(page_id=target.page_id)
            record, new_state = await self.checker.check(target, state, now)
            self.states[target.page_id] = new_state
            # the fetched body is kept only as a new version's raw bytes: a buffer of unchanged checks (the
            # database down for an hour) must not hold every page's body
            record = replace(record, fetch=replace(record.fetch, body=None))
            seq = await self.recorder.put(record)
            record = replace(record, raw_blob=None, content_blob=None)  # the caller's copy: no bytes at all
            self.health.checks_done += 1
            verdict = record.verdict.change_class.value if record.verdict else "-"
            logger.info("service=%s page=%s outcome=%s status=%s change=%s%s bytes=%d %.2fs",
                        target.service.id, target.page.position, record.outcome.value,
                        record.fetch.status if record.fetch.status is not None else "-", verdict,
                        " real" if record.is_real else "", record.fetch.size, time.monotonic() - t0)
        if self.learn and record.outcome is Outcome.OK and record.quality is Quality.OK:
            last = self._calibrated.get(target.page_id)
            if last is None or (now - last).total_seconds() >= self.settings.calibration_every_s:
                self._calibrated[target.page_id] = now
                self._spawn(self.calibrate(target.page_id))
            verdict_class = record.verdict.change_class if record.verdict else ChangeClass.NONE
            if record.new_version and verdict_class.rank <= ChangeClass.DATE_ONLY.rank:
                self._spawn(self.learn_history(target.page_id, seq))
        return record

    # --- learning the page's own noise -----------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def settle(self) -> None:
        """Wait for background learning (calibrations, history) to finish."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def _add_rules(self, page_id: int, learned: list[Learned], source: str) -> None:
        if not learned:
            return
        target = self.targets[page_id]
        added = self.store.add_noise_rules(page_id, [(x.path, x.evidence) for x in learned], source=source,
                                           now=self.clock())
        if added:
            self.targets[page_id] = replace(target, noise_paths=target.noise_paths | frozenset(added))
            logger.info("service=%s page=%s learned %d volatile block(s) from %s: %s", target.service.id,
                        target.page.position, len(added), source, ", ".join(added))

    async def _capture(self, target: Target) -> Content | None:
        page = target.page
        result = await self.fetcher.fetch(page.url, headers=page.headers, timeout_s=page.timeout_s,
                                          allow_private=page.allow_private)
        if result.outcome is not Outcome.OK or result.body is None:
            return None
        content = extract(page.kind, result.body, url=result.final_url, charset=result.charset,
                          options=options_for(page, self.settings.timezone))
        return content if content.quality is Quality.OK else None

    async def calibrate(self, page_id: int) -> None:
        """Fetch the page twice a few seconds apart: blocks that differ change by themselves."""
        target = self.targets[page_id]
        try:
            async with self._slots:
                first = await self._capture(target)
            await asyncio.sleep(self.settings.calibration_delay_s)
            async with self._slots:
                second = await self._capture(target)
            if first is None or second is None:
                return
            when = self.clock().isoformat(timespec="seconds")
            learned = learn_from_pair(first, second, self.targets[page_id].noise_paths, when=when)
            await asyncio.to_thread(self._add_rules, page_id, learned, "calibration")
            await asyncio.to_thread(self.store.mark_calibrated, page_id, self.clock())
        except Exception as exc:  # learning is an extra: it must never disturb checking
            logger.warning("calibration of page %s failed: %s", page_id, exc)

    async def learn_history(self, page_id: int, seq: int) -> None:
        """A block that changes at nearly every version while the rest stays still is the page's noise.
        Read once the check numbered `seq` by the recorder, which brought the new version, is written."""
        target = self.targets[page_id]
        try:
            if not await self.recorder.wait_written(seq, HISTORY_WAIT_S):
                return  # the database is unreachable: the next new version will try again
            blobs = await asyncio.to_thread(self.store.recent_contents, page_id, 12)
            learned = learn_from_history([load_content(b) for b in blobs], target.noise_paths)
            await asyncio.to_thread(self._add_rules, page_id, learned, "history")
        except Exception as exc:
            logger.warning("learning from the history of page %s failed: %s", page_id, exc)

    async def round(self, targets: list[Target], *,
                    on_done: Callable[[Target, CheckRecord], None] | None = None) -> list[CheckRecord]:
        """Check the given pages once, concurrently; returns the records in the targets' order."""
        async def one(t: Target) -> CheckRecord:
            rec = await self.check(t)
            if on_done is not None:
                on_done(t, rec)
            return rec

        records = await asyncio.gather(*(one(t) for t in targets))
        self.health.last_round_at = self.clock()
        return list(records)

    def update_round(self) -> None:
        """A round is complete when every page has been checked since: the oldest last check."""
        times = [s.last_check_at for pid, s in self.states.items() if pid in self.targets]
        if times and all(t is not None for t in times):
            self.health.last_round_at = min(t for t in times if t is not None)
        lags = self.health.lags
        self.health.schedule_lag_s = max(lags) if lags else 0.0
        lags.clear()

    async def maintain(self) -> None:
        """The daily job of a running monitor: link checks and retention (see `monitor db prune`)."""
        try:
            await self.check_links()
        except Exception as exc:  # a failed link check must not stop retention
            logger.warning("link checks failed: %s", exc)
        now = self.clock()
        report = await asyncio.to_thread(
            self.store.prune, checks_before=now - timedelta(seconds=self.settings.keep_checks_s),
            raw_before=now - timedelta(seconds=self.settings.keep_raw_s), slow_s=self.settings.slow_s)
        logger.info("retention: %s", ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in report.items()))

    async def check_links(self) -> int:
        """Check the same-site links of each HTML page's current content, politely (through the per-host gate,
        HEAD first) and capped at link_check_max per page, rotating through the rest day by day. A page's links
        are checked at most every link_check_every. Returns how many links were checked."""
        s = self.settings
        if s.link_check_max <= 0 or s.link_check_every_s <= 0:
            return 0
        now = self.clock()
        last = await asyncio.to_thread(self.store.last_link_checks)
        due = [t for t in self.targets.values() if t.page.kind is Kind.HTML and (
            t.page_id not in last or (now - last[t.page_id]).total_seconds() >= 0.9 * s.link_check_every_s)]

        async def one(target: Target) -> list[dict[str, Any]]:
            current = self.states[target.page_id].current if target.page_id in self.states else None
            blob = await self._load_previous(target.page_id, current.key_hash) if current else None
            if blob is None:
                return []
            urls = same_site_links(target.page.url, load_content(blob), s.link_check_max,
                                   offset=now.toordinal() * s.link_check_max)
            rows = []
            for url in urls:
                async with self._slots:
                    r = await self.fetcher.fetch(url, headers=target.page.headers, timeout_s=target.page.timeout_s,
                                                 allow_private=target.page.allow_private, probe=True)
                rows.append({"page_id": target.page_id, "url": url, "checked_at": now, "outcome": r.outcome.value,
                             "status": r.status, "error": r.error[:500]})
            return rows

        rows = [row for rows in await asyncio.gather(*(one(t) for t in due)) for row in rows]
        await asyncio.to_thread(self.store.add_link_checks, rows)
        logger.info("link checks: %d links of %d pages, %d broken", len(rows), len(due),
                    sum(r["outcome"] != Outcome.OK.value for r in rows))
        return len(rows)

    def heartbeat(self, *, stopped: bool = False) -> None:
        """Record the worker's heartbeat (raises StoreError when the database is unreachable)."""
        self.update_round()
        h = self.health
        h.beat_at = self.clock()
        self.store.heartbeat(worker=h.worker, hostname=h.hostname, pid=h.pid, started_at=h.started_at,
                             now=self.clock(), last_round_at=h.last_round_at, schedule_lag_s=h.schedule_lag_s,
                             checks_done=h.checks_done, stopped=stopped)


def same_site_links(page_url: str, content: Content, limit: int, *, offset: int = 0) -> list[str]:
    """The distinct http(s) links and documents of `content` on the page's own site (the host, with or
    without www.), without fragments; at most `limit`, a window starting at `offset` (mod their number)."""
    def site(url: str) -> str:
        host = (urlsplit(url).hostname or "").lower()
        return host.removeprefix("www.")

    home = site(page_url)
    seen: dict[str, None] = {}
    for link in (*content.links, *content.documents):
        parts = urlsplit(link.url)
        if parts.scheme in ("http", "https") and site(link.url) == home:
            seen.setdefault(urlunsplit(parts._replace(fragment="")), None)
    urls = sorted(seen)
    if len(urls) <= limit:
        return urls
    start = offset % len(urls)
    return (urls[start:] + urls[:start])[:limit]
