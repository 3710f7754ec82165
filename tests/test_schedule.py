"""Scheduling: stable phases spread over the interval, restarts without stampede or long gaps, real runs."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

from monitor.clock import VirtualClock
from monitor.domain import PageConfig, PageState, Regulation, ServiceConfig, Target
from monitor.schedule import CATCH_UP_S, Periodic, Schedule, first_run, grid_after, next_after, phase_s, plan, replay

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def targets(n: int, interval_s: int = 3600) -> list[Target]:
    svc = ServiceConfig(id="portal", name="Портал", department="IT", regulation=Regulation.WEEKLY)
    return [Target(page=PageConfig(service_id="portal", position=i, url=f"https://a.example/{i}"), service=svc,
                   page_id=i, interval_s=interval_s) for i in range(1, n + 1)]


def test_phase_is_stable_and_within_the_interval() -> None:
    assert phase_s("portal#1", 3600) == phase_s("portal#1", 3600)
    assert phase_s("portal#1", 3600) != phase_s("portal#2", 3600)
    assert all(0 <= phase_s(f"s#{i}", 600) < 600 for i in range(1000))


def test_phases_spread_checks_over_the_interval() -> None:
    buckets = Counter(int(phase_s(f"svc-{i}#1", 3600) // 360) for i in range(2000))
    assert len(buckets) == 10
    assert max(buckets.values()) < 2000 / 10 * 1.3  # no bucket holds much more than its share


def test_grid_after() -> None:
    t = grid_after(NOW, 3600, 600.0)
    assert t >= NOW and (t - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() % 3600 == 600


def test_never_checked_pages_start_within_a_minute_spread() -> None:
    runs = plan(targets(200), {}, NOW)
    offsets = sorted((t - NOW).total_seconds() for t in runs.values())
    assert offsets[0] >= 0 and offsets[-1] < 60
    assert len({round(o) for o in offsets}) > 40  # spread, not bunched


def test_restart_keeps_the_grid_when_checks_are_recent() -> None:
    interval = 3600
    phase = phase_s("portal#1", interval)
    last = grid_after(NOW - timedelta(hours=1), interval, phase)  # checked on its grid point
    nxt = first_run(last, interval, phase, NOW)
    assert nxt == last + timedelta(seconds=interval) or nxt == NOW


def test_restart_after_downtime_catches_up_without_stampede() -> None:
    ts = targets(1000, interval_s=6 * 3600)
    states = {t.page_id: PageState(page_id=t.page_id, last_check_at=NOW - timedelta(days=2)) for t in ts}
    runs = plan(ts, states, NOW)
    offsets = [(r - NOW).total_seconds() for r in runs.values()]
    assert max(offsets) <= CATCH_UP_S  # no long gap: every overdue page is checked within 5 minutes
    per_10s = Counter(int(o // 10) for o in offsets)
    assert max(per_10s.values()) <= 1000 / (CATCH_UP_S / 10) * 1.6  # no stampede: about 33 per 10 s


def test_pages_not_yet_due_wait_for_their_time() -> None:
    interval = 6 * 3600
    last = NOW - timedelta(hours=1)
    nxt = first_run(last, interval, phase_s("portal#1", interval), NOW)
    assert last + timedelta(seconds=interval / 2) <= nxt <= last + timedelta(seconds=interval * 1.5)


async def test_the_schedule_runs_checks_and_heartbeats_and_stops_cleanly() -> None:
    runs: Counter[int] = Counter()
    running: set[int] = set()
    overlap = []
    beats = []

    async def check(target: Target, scheduled: datetime) -> None:
        if target.page_id in running:
            overlap.append(target.page_id)
        running.add(target.page_id)
        runs[target.page_id] += 1
        await asyncio.sleep(1.5 if target.page_id == 1 else 0.01)  # page 1 is slower than its interval
        running.discard(target.page_id)

    async def heartbeat() -> None:
        beats.append(datetime.now(UTC))

    schedule = Schedule(check, [Periodic("heartbeat", heartbeat, 1)], grace_s=5)
    ts = targets(3, interval_s=1)
    schedule.start(ts, {})
    await asyncio.sleep(3.5)
    await schedule.stop()
    assert not overlap  # one check of a page at a time
    assert all(runs[t.page_id] >= 2 for t in ts[1:])
    assert 1 <= runs[1] <= 3
    assert len(beats) >= 3
    after = dict(runs)
    await asyncio.sleep(1.5)
    assert dict(runs) == after  # nothing runs after stop


async def test_replay_runs_the_same_grid_in_virtual_time() -> None:
    """A week of three pages on an hourly grid, and a daily job, in virtual time: every check on its grid point
    (the same plan and grid as the real schedule), none twice, the job every day; seconds of real time."""
    clock = VirtualClock(NOW)
    ts = targets(3, interval_s=3600)
    seen: list[tuple[int, datetime, datetime]] = []
    jobs: list[datetime] = []

    async def check(target: Target, scheduled: datetime) -> None:
        seen.append((target.page_id, scheduled, clock.now()))
        await clock.sleep(2)  # politeness waits move virtual time too

    async def daily() -> None:
        jobs.append(clock.now())

    end = NOW + timedelta(days=7)
    count = await replay(check, ts, {}, clock, end, [Periodic("daily", daily, 86_400, first_after_s=3600)])
    assert clock.now() == end and count == len(seen)
    first = plan(ts, {}, NOW)
    for t in ts:
        runs = [at for pid, _scheduled, at in seen if pid == t.page_id]
        assert runs[0] == first[t.page_id]  # the first check as the real schedule plans it...
        assert runs[1:] == [next_after(t, at) for at in runs[:-1]]  # ...then on its grid, hour after hour
        assert len(runs) in (7 * 24, 7 * 24 + 1) and len(set(runs)) == len(runs)
    assert jobs == [NOW + timedelta(hours=1, days=d) for d in range(7)]


async def test_replay_resumes_from_the_stored_state() -> None:
    """Pages checked an hour ago wait for their grid; a page never checked starts within a minute."""
    clock = VirtualClock(NOW)
    ts = targets(2, interval_s=6 * 3600)
    states = {1: PageState(page_id=1, last_check_at=NOW - timedelta(hours=1))}
    seen: list[tuple[int, datetime]] = []

    async def check(target: Target, scheduled: datetime) -> None:
        seen.append((target.page_id, clock.now()))

    await replay(check, ts, states, clock, NOW + timedelta(hours=12))
    (first_of_2,) = [at for pid, at in seen if pid == 2][:1]
    assert first_of_2 - NOW <= timedelta(minutes=1)
    first_of_1 = next(at for pid, at in seen if pid == 1)
    assert first_of_1 - NOW >= timedelta(hours=2)


async def test_stopping_lets_a_running_check_finish() -> None:
    """A check in flight when the monitor stops finishes (and is stored by its caller), within the grace
    period; shutting the scheduler down first used to cancel it."""
    finished: list[int] = []
    started = asyncio.Event()

    async def check(target: Target, scheduled: datetime) -> None:
        started.set()
        await asyncio.sleep(0.5)
        finished.append(target.page_id)

    schedule = Schedule(check, grace_s=5)
    schedule.start(targets(1, interval_s=3600), {})
    await asyncio.wait_for(started.wait(), 90)
    await schedule.stop()
    assert finished == [1]
