"""Checking: the targets, each page's state in memory, bounded concurrency, and the monitor's own health.

One check is: capture the page as its kind does, let the core judge the capture against the page's state,
hand the record to the buffered writer (monitor.recorder), move the state on. What else happens after a
check (learning a page's noise) is hooked in by the composition root (`after_check`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from monitor import core, kinds
from monitor.clock import SYSTEM, Clock
from monitor.domain import (
    Catalogue,
    CheckRecord,
    Content,
    Fetch,
    FetchResult,
    PageState,
    Target,
    load_content,
    redact_text,
    redact_url,
)
from monitor.errors import StoreUnavailable
from monitor.ports import Heartbeat, Stores
from monitor.recorder import Recorder
from monitor.regulation import default_interval_s

logger = logging.getLogger(__name__)

AfterCheck = Callable[[Target, CheckRecord, int], None]
"""Called after each check with its target, its record and the record's sequence number at the writer."""


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
    """Checks targets with bounded concurrency, keeps their state, hands the records to the writer."""

    def __init__(self, catalogue: Catalogue, stores: Stores, fetcher: Fetch, *, clock: Clock = SYSTEM,
                 worker: str | None = None, reader: core.Reader | None = None) -> None:
        self.catalogue = catalogue
        self.settings = catalogue.settings
        self.stores = stores
        self.fetcher = fetcher
        self.reader = reader  # where captures are read (monitor.sandbox's worker processes); None: in this one
        self.clock = clock
        self.worker = worker or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.health = Health(worker=self.worker, hostname=socket.gethostname(), pid=os.getpid(),
                             started_at=clock.now())
        self.recorder = Recorder(stores.checks, complete=self._complete)
        self.targets: dict[int, Target] = {}
        self.states: dict[int, PageState] = {}
        self.slots = asyncio.Semaphore(self.settings.concurrency)  # checks (and other fetches) at once
        self.after_check: list[AfterCheck] = []
        self._page_locks: dict[int, asyncio.Lock] = {}

    @property
    def keep(self) -> int:
        """Versions kept in a page's state: the current one and those a flap can go back to."""
        return self.settings.anti_flap_versions + 1

    async def load_content(self, page_id: int, key: str) -> bytes | None:
        """A stored version's content; one not written yet (the writer is behind, or the database is away)
        is still in the writer's buffer."""
        for rec in reversed(self.recorder.pending):
            if rec.page_id == page_id and rec.version_key == key and rec.content_blob is not None:
                return rec.content_blob
        return await asyncio.to_thread(self.stores.checks.version_content, page_id, key)

    async def read(self, captured: FetchResult, target: Target) -> core.Reading:
        """Read a capture of a page where the monitor reads captures (raises ReadRefused over a limit)."""
        options = kinds.options_for(target.page, self.settings.timezone)
        if self.reader is None:
            return core.read(captured, target.page.kind, options=options, noise=target.noise_paths)
        return await self.reader(captured, target.page.kind, options=options, noise=target.noise_paths)

    async def _complete(self, record: CheckRecord) -> CheckRecord:
        target = self.targets.get(record.page_id)
        return await core.complete(record, target=target, load=self.load_content) if target else record

    async def current_content(self, page_id: int) -> Content | None:
        state = self.states.get(page_id)
        current = state.current if state else None
        blob = await self.load_content(page_id, current.key_hash) if current else None
        return load_content(blob) if blob else None

    def prepare(self) -> list[Target]:
        """Sync the catalogue into the store and load each page's state."""
        ids = self.stores.catalogue.sync_catalogue(self.catalogue, self.clock.now())
        noise = self.stores.noise.noise_paths(ids.values())
        targets = []
        for svc in self.catalogue.services:
            for page in svc.pages:
                pid = ids[page.key]
                interval = page.interval_s or default_interval_s(svc.regulation)
                targets.append(Target(page=page, service=svc, page_id=pid, interval_s=interval,
                                      noise_paths=frozenset(noise.get(pid, ()))))
        self.targets = {t.page_id: t for t in targets}
        self.states = self.stores.checks.page_states(self.targets, recent=self.keep)
        for pid in self.targets:
            self.states.setdefault(pid, PageState(page_id=pid))
        return targets

    def select(self, service_ids: Iterable[str] = ()) -> list[Target]:
        wanted = set(service_ids)
        return [t for t in self.targets.values() if not wanted or t.service.id in wanted]

    def add_noise(self, page_id: int, paths: Iterable[str]) -> None:
        """Mask these block paths of a page from its next check on."""
        target = self.targets[page_id]
        self.targets[page_id] = replace(target, noise_paths=target.noise_paths | frozenset(paths))

    async def check(self, target: Target, *, scheduled_at: datetime | None = None) -> CheckRecord:
        """Check one page now (one check of a page at a time; `concurrency` checks in all)."""
        return (await self._check(target, scheduled_at))[0]

    async def _check(self, target: Target, scheduled_at: datetime | None) -> tuple[CheckRecord, int]:
        """The check, and its record's number in the recorder (see Recorder.wait_written)."""
        lock = self._page_locks.setdefault(target.page_id, asyncio.Lock())
        async with lock, self.slots:
            target = self.targets.get(target.page_id, target)  # with the noise learned meanwhile
            now = self.clock.now()
            if scheduled_at is not None:
                self.health.lags.append(max(0.0, (now - scheduled_at).total_seconds()))
            t0 = self.clock.monotonic()
            state = self.states.get(target.page_id) or PageState(page_id=target.page_id)
            captured = await core.capture(self.fetcher, target, state, now=now,
                                          full_fetch_every_s=self.settings.full_fetch_every_s)
            record = await core.process(captured, state, target=target, tz=self.settings.timezone,
                                        load=self.load_content, worker=self.worker, reader=self.reader)
            self.states[target.page_id] = core.advance(state, record, keep=self.keep, noise=target.noise_paths)
            # the fetched body is kept only as a new version's raw bytes: a buffer of unchanged checks (the
            # database down for an hour) must not hold every page's body
            record = replace(record, fetch=replace(record.fetch, body=None))
            seq = await self.recorder.put(record)
            record = replace(record, raw_blob=None, content_blob=None)  # the caller's copy: no bytes at all
            self.health.checks_done += 1
            verdict = record.verdict.change_class.value if record.verdict else "-"
            status = record.fetch.status if record.fetch.status is not None else "-"
            took = round(self.clock.monotonic() - t0, 2)
            fields = {"service": target.service.id, "url": redact_url(target.page.url), "page": target.page.label,
                      "outcome": record.outcome.value, "status": record.fetch.status, "seconds": took}
            if record.outcome.success:
                logger.info("service=%s url=%s outcome=%s status=%s change=%s%s bytes=%d %.2fs",
                            fields["service"], fields["url"], record.outcome.value, status, verdict,
                            " real" if record.is_real else "", record.fetch.size, took,
                            extra={**fields, "change": verdict, "real": record.is_real, "bytes": record.fetch.size})
            else:  # what an operator needs without running `monitor check`: where, and why
                reason = redact_text(record.fetch.error or "-")[:300]
                logger.warning("check failed: service=%s url=%s outcome=%s status=%s reason=%s %.2fs",
                               fields["service"], fields["url"], record.outcome.value, status, reason, took,
                               extra={**fields, "reason": reason})
        for hook in self.after_check:
            hook(target, record, seq)
        return record, seq

    async def check_due(self, page_id: int, due_at: datetime, *, scheduled_at: datetime | None = None,
                        timeout_s: float = 120.0) -> CheckRecord | None:
        """A check job of the procrastinate engine: check the page unless a check at or after `due_at` is already
        in the store (another worker did it, or this job is a retry of one that got that far), starting from
        the page's state and learned noise as the store has them now, and return once the record is written —
        a job that ends has its check stored."""
        target = self.targets[page_id]
        lock = self._page_locks.setdefault(page_id, asyncio.Lock())
        async with lock:
            state = (await asyncio.to_thread(self.stores.checks.page_states, [page_id], recent=self.keep)).get(
                page_id, PageState(page_id=page_id))
            if state.last_check_at is not None and state.last_check_at >= due_at:
                return None
            noise = await asyncio.to_thread(self.stores.noise.noise_paths, [page_id])
            self.states[page_id] = state
            self.targets[page_id] = replace(target, noise_paths=frozenset(noise.get(page_id, ())))
        record, seq = await self._check(self.targets[page_id], scheduled_at)
        if not await self.recorder.wait_written(seq, timeout_s):
            raise StoreUnavailable(f"the check of {redact_url(target.page.url)} could not be written in "
                                   f"{timeout_s:g} s")
        return record

    async def record_late(self, target: Target, captured: FetchResult) -> CheckRecord:
        """Record a capture taken in the past (an archived one), placed in the page's history at its own time:
        judged against the page's state then, correcting the change recorded at the capture after it, and
        leaving the page's current state (and this runner's) alone."""
        at = captured.started_at
        before, after = await asyncio.gather(
            asyncio.to_thread(self.stores.checks.state_at, target.page_id, at, recent=self.keep),
            asyncio.to_thread(self.stores.checks.successor, target.page_id, at))
        record = await core.place(captured, before, after, target=self.targets.get(target.page_id, target),
                                  tz=self.settings.timezone, load=self.load_content, worker=self.worker,
                                  reader=self.reader)
        await self.recorder.put(replace(record, fetch=replace(record.fetch, body=None)))
        return replace(record, raw_blob=None, content_blob=None)

    async def round(self, targets: list[Target], *,
                    on_done: Callable[[Target, CheckRecord], None] | None = None) -> list[CheckRecord]:
        """Check the given pages once, concurrently; returns the records in the targets' order."""
        async def one(t: Target) -> CheckRecord:
            rec = await self.check(t)
            if on_done is not None:
                on_done(t, rec)
            return rec

        records = await asyncio.gather(*(one(t) for t in targets))
        self.health.last_round_at = self.clock.now()
        return list(records)

    def update_round(self) -> None:
        """A round is complete when every page has been checked since: the oldest last check."""
        times = [s.last_check_at for pid, s in self.states.items() if pid in self.targets]
        if times and all(t is not None for t in times):
            self.health.last_round_at = min(t for t in times if t is not None)
        lags = self.health.lags
        self.health.schedule_lag_s = max(lags) if lags else 0.0
        lags.clear()

    def healthy(self, heartbeat_s: float) -> tuple[bool, dict[str, object]]:
        """Whether this monitor works (for /healthz), and why not: its scheduler beats, the database takes its
        writes, and the write buffer is not filling up."""
        beat = self.health.beat_at
        age_s = (self.clock.now() - beat).total_seconds() if beat else None
        rec = self.recorder
        problems = [p for p, bad in (
            ("no heartbeat", age_s is None or age_s >= 3 * heartbeat_s),
            ("the database does not take writes", not rec.db_ok),
            ("the write buffer is filling", len(rec.pending) >= rec.max_pending / 2
             or rec.pending_bytes >= rec.max_pending_bytes / 2)) if bad]
        return not problems, {"worker": self.worker, "problems": problems, "heartbeat_age_s": age_s,
                              "database_writable": rec.db_ok, "pending_records": len(rec.pending),
                              "checks_done": self.health.checks_done}

    def heartbeat(self, *, stopped: bool = False) -> None:
        """Record the worker's heartbeat (raises StoreError when the database is unreachable)."""
        self.update_round()
        h = self.health
        h.beat_at = self.clock.now()
        self.stores.health.heartbeat(Heartbeat(
            worker=h.worker, hostname=h.hostname, pid=h.pid, started_at=h.started_at, now=h.beat_at,
            last_round_at=h.last_round_at, schedule_lag_s=h.schedule_lag_s, checks_done=h.checks_done,
            stopped=stopped))

