"""When each page is checked: the only module that imports APScheduler.

Every page runs on an interval (from its service's regulation unless overridden) on a fixed grid
``k * interval + phase``, where the phase is a stable hash of the page: checks are spread over the
interval, not bunched, and the grid survives restarts. After a restart the next check follows from
the last check in the database; pages that are overdue are caught up over a short window in phase
order, so a restart neither stampedes nor leaves a long gap.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.clock import SYSTEM, Clock, VirtualClock
from monitor.domain import PageState, Target, redact_url

logger = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CATCH_UP_S = 300.0  # overdue pages are spread over at most this window after a start
STARTUP_S = 60.0  # never-checked pages are spread over at most this window


def phase_s(key: str, interval_s: int) -> float:
    """A stable offset in [0, interval) from the page's key: the same on every start and every host."""
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return (h / 2**64) * interval_s


def jitter_s(interval_s: int) -> float:
    return min(30.0, interval_s * 0.01)


def grid_after(t: datetime, interval_s: int, phase: float) -> datetime:
    """The first grid point k * interval + phase at or after t."""
    since = (t - EPOCH).total_seconds() - phase
    k = math.ceil(since / interval_s)
    return EPOCH + timedelta(seconds=k * interval_s + phase)


def first_run(last_check_at: datetime | None, interval_s: int, phase: float, now: datetime) -> datetime:
    """When a page is next checked after a (re)start."""
    fraction = phase / interval_s
    if last_check_at is None:
        return now + timedelta(seconds=fraction * min(interval_s, STARTUP_S))
    due = last_check_at + timedelta(seconds=interval_s)
    if due <= now:  # overdue: catch up soon, spread by phase
        return now + timedelta(seconds=fraction * min(interval_s, CATCH_UP_S))
    return max(now, grid_after(due - timedelta(seconds=interval_s / 2), interval_s, phase))


def plan(targets: Iterable[Target], states: dict[int, PageState], now: datetime) -> dict[int, datetime]:
    """The first run time of every target."""
    out = {}
    for t in targets:
        state = states.get(t.page_id)
        out[t.page_id] = first_run(state.last_check_at if state else None, t.interval_s,
                                   phase_s(t.page.key, t.interval_s), now)
    return out


CheckFn = Callable[[Target, datetime], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Periodic:
    """A job beside the checks: the heartbeat, the maintenance job, the aggregates."""

    name: str
    run: Callable[[], Awaitable[None]]
    every_s: float
    first_after_s: float = 0.0


def next_after(target: Target, now: datetime) -> datetime:
    """The grid point after a check that ran at `now` (the next one it is due at)."""
    return grid_after(now + timedelta(seconds=1), target.interval_s, phase_s(target.page.key, target.interval_s))


def due(targets: Iterable[Target], last_checks: Mapping[int, datetime | None],
        now: datetime) -> list[tuple[Target, datetime]]:
    """The pages due now and the grid point each is due at (the procrastinate engine's dispatch; the same grid
    as the embedded schedule). A page checked at or after that point has had its check of the round: a check
    job that finds so does nothing (a retried job, a second dispatch). A page never checked is due since
    always: any check of it counts."""
    out = []
    for t in targets:
        last = last_checks.get(t.page_id)
        at = EPOCH if last is None else grid_after(last + timedelta(seconds=t.interval_s / 2), t.interval_s,
                                                   phase_s(t.page.key, t.interval_s))
        if at <= now:
            out.append((t, at))
    return out


async def _guarded(job: Periodic) -> None:
    try:
        await job.run()
    except Exception as exc:  # a job must never stop the schedule
        logger.warning("%s failed: %s", job.name, exc)


class Schedule:
    """Runs each target on its grid, and the periodic jobs on theirs, in real time until stopped."""

    def __init__(self, check: CheckFn, jobs: Iterable[Periodic] = (), *, clock: Clock = SYSTEM,
                 grace_s: float = 20.0) -> None:
        self._check = check
        self.jobs = tuple(jobs)
        self.clock = clock
        self.grace_s = grace_s
        self._expected: dict[int, datetime] = {}
        self._running: set[asyncio.Task[object]] = set()
        self._scheduler: AsyncIOScheduler | None = None

    async def _run(self, target: Target) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            now = self.clock.now()
            expected = self._expected.get(target.page_id) or now
            self._expected[target.page_id] = next_after(target, now)
            await self._check(target, expected + timedelta(seconds=jitter_s(target.interval_s)))
        except Exception:  # the loop must never die of one page
            logger.exception("check of %s failed unexpectedly", redact_url(target.page.url))
        finally:
            self._running.discard(task)

    def start(self, targets: Iterable[Target], states: dict[int, PageState]) -> None:
        targets = list(targets)
        now = self.clock.now()
        first = plan(targets, states, now)
        scheduler = AsyncIOScheduler(timezone=UTC)
        for t in targets:
            phase = phase_s(t.page.key, t.interval_s)
            self._expected[t.page_id] = first[t.page_id]
            trigger = IntervalTrigger(seconds=t.interval_s, start_date=EPOCH + timedelta(seconds=phase),
                                      timezone=UTC, jitter=jitter_s(t.interval_s))
            scheduler.add_job(self._run, trigger,
                              args=[t], id=f"page-{t.page_id}", name=t.page.key, next_run_time=first[t.page_id],
                              max_instances=1, coalesce=True, misfire_grace_time=max(60, t.interval_s // 2))
        for job in self.jobs:
            scheduler.add_job(_guarded, IntervalTrigger(seconds=job.every_s, timezone=UTC), args=[job], id=job.name,
                              next_run_time=now + timedelta(seconds=job.first_after_s), max_instances=1,
                              coalesce=True)
        scheduler.start()
        self._scheduler = scheduler
        logger.info("scheduled %d pages; first check at %s", len(targets),
                    min(first.values()).isoformat(timespec="seconds") if first else "-")

    async def stop(self) -> None:
        """Stop scheduling; let running checks finish within the grace period (they are stored), then cancel
        what is left. The scheduler is paused first and shut down only after: shutting it down cancels the
        jobs it is running, which lost the checks in flight."""
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.pause()
        running = set(self._running)
        if running:
            logger.info("waiting up to %gs for %d running check(s)", self.grace_s, len(running))
            _done, pending = await asyncio.wait(running, timeout=self.grace_s)
            for task in pending:
                task.cancel()
            if pending:
                logger.warning("%d check(s) did not finish within %gs and were cancelled", len(pending),
                               self.grace_s)
                await asyncio.wait(pending, timeout=5)
        if scheduler is not None:
            scheduler.shutdown(wait=False)


async def replay(check: CheckFn, targets: Iterable[Target], states: dict[int, PageState], clock: VirtualClock,
                 until: datetime, jobs: Iterable[Periodic] = ()) -> int:
    """Run the schedule in virtual time until `until`: the clock jumps to the next grid point (or job), every
    check due then runs (concurrently, as in real time), and so on. The same plan and grid as `Schedule`, so a
    simulated quarter goes through the very code of a real one, in seconds. Returns the checks run."""
    targets = list(targets)
    jobs = tuple(jobs)
    now = clock.now()
    due = plan(targets, states, now)
    job_due = {job.name: now + timedelta(seconds=job.first_after_s) for job in jobs}
    checks = 0
    while True:
        upcoming = min([*due.values(), *job_due.values()], default=None)
        if upcoming is None or upcoming >= until:
            break
        now = clock.set(upcoming)
        batch = [t for t in targets if due[t.page_id] <= now]
        await asyncio.gather(*(check(t, due[t.page_id]) for t in batch))
        for t in batch:
            due[t.page_id] = next_after(t, now)
        checks += len(batch)
        for job in jobs:
            if job_due[job.name] <= now:
                await _guarded(job)
                job_due[job.name] = now + timedelta(seconds=job.every_s)
    clock.set(until)
    return checks
