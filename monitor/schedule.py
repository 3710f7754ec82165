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
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.domain import PageState, Target

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
BeatFn = Callable[[], Awaitable[None]]


class Schedule:
    """Runs each target on its grid and the heartbeat on its own interval, until stopped."""

    def __init__(self, check: CheckFn, heartbeat: BeatFn, *, heartbeat_s: float = 30.0,
                 grace_s: float = 20.0, maintenance: BeatFn | None = None, maintenance_s: float = 86_400.0) -> None:
        self._check = check
        self._heartbeat = heartbeat
        self._maintenance = maintenance
        self.maintenance_s = maintenance_s
        self.heartbeat_s = heartbeat_s
        self.grace_s = grace_s
        self._expected: dict[int, datetime] = {}
        self._running: set[asyncio.Task[object]] = set()
        self._scheduler: AsyncIOScheduler | None = None

    async def _run(self, target: Target) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            expected = self._expected.get(target.page_id) or datetime.now(UTC)
            phase = phase_s(target.page.key, target.interval_s)
            self._expected[target.page_id] = grid_after(datetime.now(UTC) + timedelta(seconds=1),
                                                        target.interval_s, phase)
            await self._check(target, expected + timedelta(seconds=jitter_s(target.interval_s)))
        except Exception:  # the loop must never die of one page
            logger.exception("check of %s failed unexpectedly", target.page.url)
        finally:
            self._running.discard(task)

    async def _maintain(self) -> None:
        try:
            assert self._maintenance is not None
            await self._maintenance()
        except Exception as exc:
            logger.warning("maintenance failed: %s", exc)

    async def _beat(self) -> None:
        try:
            await self._heartbeat()
        except Exception as exc:
            logger.warning("heartbeat not recorded: %s", exc)

    def start(self, targets: Iterable[Target], states: dict[int, PageState], now: datetime) -> None:
        targets = list(targets)
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
        scheduler.add_job(self._beat, IntervalTrigger(seconds=self.heartbeat_s, timezone=UTC), id="heartbeat",
                          next_run_time=now, max_instances=1, coalesce=True)
        if self._maintenance is not None:  # link checks and pruning, first an hour after the start
            scheduler.add_job(self._maintain, IntervalTrigger(seconds=self.maintenance_s, timezone=UTC),
                              id="maintenance", next_run_time=now + timedelta(hours=1), max_instances=1,
                              coalesce=True)
        scheduler.start()
        self._scheduler = scheduler
        logger.info("scheduled %d pages; first check at %s", len(targets),
                    min(first.values()).isoformat(timespec="seconds") if first else "-")

    async def stop(self) -> None:
        """Stop scheduling; let running checks finish within the grace period, then cancel them."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        running = set(self._running)
        if running:
            _done, pending = await asyncio.wait(running, timeout=self.grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
