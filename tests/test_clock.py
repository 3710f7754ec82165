"""Time as a dependency: the virtual clock stands still until told, sleeping on it moves it at once, and it
never goes back; the system clock is the real time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from monitor.clock import SYSTEM, VirtualClock


async def test_the_virtual_clock_moves_only_when_told_and_never_back() -> None:
    clock = VirtualClock(datetime(2021, 1, 1, tzinfo=UTC))
    assert clock.now() == clock.now() == datetime(2021, 1, 1, tzinfo=UTC) and clock.monotonic() == 0
    await clock.sleep(90)  # sleeping is instant and moves time by what was slept
    assert clock.now() == datetime(2021, 1, 1, 0, 1, 30, tzinfo=UTC) and clock.monotonic() == 90
    assert clock.advance(days=1) == datetime(2021, 1, 2, 0, 1, 30, tzinfo=UTC)
    assert clock.set(datetime(2021, 1, 1, tzinfo=UTC)) == datetime(2021, 1, 2, 0, 1, 30, tzinfo=UTC)  # not back
    with pytest.raises(ValueError, match="does not go back"):
        clock.advance(seconds=-1)
    with pytest.raises(ValueError, match="timezone-aware"):
        VirtualClock(datetime(2021, 1, 1))
    assert clock.monotonic() == 86_490


async def test_concurrent_sleepers_take_turns_on_the_virtual_clock() -> None:
    clock = VirtualClock(datetime(2021, 1, 1, tzinfo=UTC))
    order: list[str] = []

    async def sleeper(name: str) -> None:
        await clock.sleep(1)
        order.append(name)

    await asyncio.gather(sleeper("a"), sleeper("b"))
    assert sorted(order) == ["a", "b"] and clock.monotonic() == 2


async def test_the_system_clock_is_the_real_time() -> None:
    before = datetime.now(UTC)
    assert before - timedelta(seconds=1) <= SYSTEM.now() <= datetime.now(UTC) and SYSTEM.now().tzinfo is UTC
    t0 = SYSTEM.monotonic()
    await SYSTEM.sleep(0.01)
    assert SYSTEM.monotonic() - t0 >= 0.009
