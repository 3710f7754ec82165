"""Time as a dependency: every part that reads the time or waits takes a Clock.

`SystemClock` is the wall clock; `VirtualClock` is time that moves only when told, so that a test or a
simulation can run a quarter of checks in seconds through the same code (sleeping on it moves it on).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What the monitor asks of time."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for deadlines and pauses)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` on this clock."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Wait until `monotonic()` reaches `deadline` (for pauses planned ahead: they do not add up)."""
        ...


class SystemClock:
    """The real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def sleep_until(self, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))


SYSTEM = SystemClock()


class VirtualClock:
    """Time that stands still until `advance`/`set` moves it; sleeping moves it at once. A pause planned ahead
    (`sleep_until`, as the per-host politeness does) moves it to that instant, so that pauses planned side by
    side do not add up; relative sleeps of tasks running side by side (retry back-off, the calibration delay)
    each move the shared time by what they slept, a little ahead of what real time would have done."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("a VirtualClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)
        self._elapsed = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._elapsed

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds=max(0.0, seconds))
        await asyncio.sleep(0)  # let the others run, as a real sleep would

    async def sleep_until(self, deadline: float) -> None:
        self.advance(seconds=max(0.0, deadline - self._elapsed))
        await asyncio.sleep(0)

    def advance(self, **delta: float) -> datetime:
        """Move forward by a timedelta's keywords (seconds=, minutes=, hours=, days=)."""
        step = timedelta(**delta)
        if step < timedelta(0):
            raise ValueError("a clock does not go back")
        self._now += step
        self._elapsed += step.total_seconds()
        return self._now

    def set(self, when: datetime) -> datetime:
        """Move forward to `when` (never back)."""
        return self.advance(seconds=max(0.0, (when - self._now).total_seconds()))
