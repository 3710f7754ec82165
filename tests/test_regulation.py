"""Regulations at the edges: month ends, 29 February, DST switches, year end, exactly at a deadline."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from monitor.domain import Grade, Regulation
from monitor.regulation import (
    add_months,
    add_working_days,
    deadline,
    is_working_day,
    period_of,
    periods,
    standing,
)

KYIV = ZoneInfo("Europe/Kyiv")


def kyiv(*args: int) -> datetime:
    return datetime(*args, tzinfo=KYIV).astimezone(UTC)  # type: ignore[misc]


@pytest.mark.parametrize(("last", "expected"), [
    (kyiv(2026, 1, 31, 10), kyiv(2026, 2, 28, 10)),  # month end clamps
    (kyiv(2024, 1, 31, 10), kyiv(2024, 2, 29, 10)),  # leap year
    (kyiv(2024, 2, 29, 12), kyiv(2024, 3, 29, 12)),
    (kyiv(2026, 12, 15, 9), kyiv(2027, 1, 15, 9)),  # year end
    (kyiv(2026, 3, 1, 2, 30), kyiv(2026, 4, 1, 2, 30)),  # across the spring DST switch: same wall time
])
def test_monthly_deadline_is_same_wall_time_next_month(last: datetime, expected: datetime) -> None:
    assert deadline(Regulation.MONTHLY, last) == expected


def test_quarterly_and_yearly() -> None:
    assert deadline(Regulation.QUARTERLY, kyiv(2026, 11, 30, 10)) == kyiv(2027, 2, 28, 10)
    assert deadline(Regulation.HALF_YEARLY, kyiv(2026, 8, 31, 10)) == kyiv(2027, 2, 28, 10)
    assert deadline(Regulation.YEARLY, kyiv(2024, 2, 29, 10)) == kyiv(2025, 2, 28, 10)


def test_weekly_across_dst_keeps_the_wall_time() -> None:
    # Kyiv switches to summer time on the last Sunday of March (2026-03-29): a week is 167 hours then
    last = kyiv(2026, 3, 25, 12)
    due = deadline(Regulation.WEEKLY, last)
    assert due == kyiv(2026, 4, 1, 12)
    assert due is not None and (due - last) == timedelta(hours=167)


def test_daily_is_by_the_end_of_the_next_day() -> None:
    assert deadline(Regulation.DAILY, kyiv(2026, 11, 30, 23, 59)) == kyiv(2026, 12, 2, 0, 0)
    assert deadline(Regulation.DAILY, kyiv(2026, 12, 31, 8)) == kyiv(2027, 1, 2, 0, 0)  # year end
    # autumn DST switch (2026-10-25): the day has 25 hours, the deadline is still local midnight
    assert deadline(Regulation.DAILY, kyiv(2026, 10, 24, 12)) == kyiv(2026, 10, 26, 0, 0)


def test_daily_in_working_days_skips_weekends_and_holidays() -> None:
    friday = kyiv(2026, 11, 27, 10)
    assert deadline(Regulation.DAILY, friday, working_days=True) == kyiv(2026, 12, 1, 0, 0)  # end of Monday
    # 2021-06-28 (Monday) was Constitution Day: an update on Friday was due by the end of Tuesday
    assert not is_working_day(date(2021, 6, 28))
    assert deadline(Regulation.DAILY, kyiv(2021, 6, 25, 10), working_days=True) == kyiv(2021, 6, 30, 0, 0)
    # under martial law (since 24.02.2022) public holidays are working days; the holidays library knows it
    assert is_working_day(date(2025, 12, 25))
    assert add_working_days(date(2026, 11, 27), 2) == date(2026, 12, 1)


def test_a_change_exactly_at_the_deadline_is_in_time() -> None:
    last = kyiv(2026, 11, 1, 10)
    due = deadline(Regulation.WEEKLY, last)
    assert due is not None
    assert standing(Regulation.WEEKLY, last, due).grade is Grade.FRESH
    assert standing(Regulation.WEEKLY, last, due + timedelta(seconds=1)).grade is Grade.DUE


@pytest.mark.parametrize(("regulation", "days", "grade"), [
    (Regulation.WEEKLY, 6, Grade.FRESH), (Regulation.WEEKLY, 8, Grade.DUE),
    (Regulation.WEEKLY, 15, Grade.OVERDUE), (Regulation.WEEKLY, 22, Grade.DELINQUENT),  # HDX 7/14/21
    (Regulation.MONTHLY, 29, Grade.FRESH), (Regulation.MONTHLY, 40, Grade.DUE),
    (Regulation.MONTHLY, 50, Grade.OVERDUE), (Regulation.MONTHLY, 62, Grade.DELINQUENT),  # HDX 30/44/60
    (Regulation.QUARTERLY, 89, Grade.FRESH), (Regulation.QUARTERLY, 100, Grade.DUE),
    (Regulation.QUARTERLY, 125, Grade.OVERDUE), (Regulation.QUARTERLY, 155, Grade.DELINQUENT),  # 90/120/150
    (Regulation.DAILY, 1, Grade.FRESH), (Regulation.DAILY, 2, Grade.DUE),
    (Regulation.DAILY, 3, Grade.OVERDUE), (Regulation.DAILY, 4, Grade.DELINQUENT),
])
def test_grades_follow_hdx(regulation: Regulation, days: int, grade: Grade) -> None:
    last = kyiv(2026, 6, 10, 12)
    assert standing(regulation, last, last + timedelta(days=days, hours=1 if days else 0)).grade is grade


def test_as_needed_is_never_overdue_but_its_silence_shows() -> None:
    last = kyiv(2020, 1, 1)
    s = standing(Regulation.AS_NEEDED, last, kyiv(2026, 11, 30))
    assert s.grade is Grade.FRESH and s.deadline is None
    assert s.age_s is not None and s.age_s > 6 * 365 * 86400


def test_unknown_without_any_update() -> None:
    assert standing(Regulation.WEEKLY, None, kyiv(2026, 11, 30)).grade is Grade.UNKNOWN


def test_cycles_late() -> None:
    last = kyiv(2026, 6, 1)
    s = standing(Regulation.WEEKLY, last, last + timedelta(days=21))
    assert s.cycles_late == pytest.approx(2.0)


@pytest.mark.parametrize(("regulation", "t", "label", "start", "end"), [
    (Regulation.DAILY, kyiv(2026, 11, 30, 23, 59), "2026-11-30", kyiv(2026, 11, 30), kyiv(2026, 12, 1)),
    (Regulation.WEEKLY, kyiv(2027, 1, 1, 12), "2026-W53", kyiv(2026, 12, 28), kyiv(2027, 1, 4)),  # ISO week
    (Regulation.WEEKLY, kyiv(2026, 11, 30, 0, 0), "2026-W49", kyiv(2026, 11, 30), kyiv(2026, 12, 7)),
    (Regulation.MONTHLY, kyiv(2024, 2, 29, 23), "2024-02", kyiv(2024, 2, 1), kyiv(2024, 3, 1)),
    (Regulation.QUARTERLY, kyiv(2026, 12, 31, 23, 59), "2026-Q4", kyiv(2026, 10, 1), kyiv(2027, 1, 1)),
    (Regulation.HALF_YEARLY, kyiv(2026, 7, 1), "2026-H2", kyiv(2026, 7, 1), kyiv(2027, 1, 1)),
    (Regulation.YEARLY, kyiv(2026, 1, 1), "2026", kyiv(2026, 1, 1), kyiv(2027, 1, 1)),
])
def test_periods_in_kyiv_time(regulation: Regulation, t: datetime, label: str, start: datetime,
                              end: datetime) -> None:
    p = period_of(regulation, t)
    assert (p.label, p.start, p.end) == (label, start, end)
    assert t in p


def test_a_moment_just_after_kyiv_midnight_is_the_next_day_although_utc_is_not() -> None:
    t = kyiv(2026, 12, 1, 0, 30)  # 2026-11-30 22:30 UTC
    assert t.date() == date(2026, 11, 30)
    assert period_of(Regulation.MONTHLY, t).label == "2026-12"


def test_dst_day_has_25_hours() -> None:
    p = period_of(Regulation.DAILY, kyiv(2026, 10, 25, 12))
    assert p.end - p.start == timedelta(hours=25)


def test_periods_cover_a_range_without_gaps() -> None:
    ps = list(periods(Regulation.WEEKLY, kyiv(2026, 11, 1), kyiv(2026, 12, 31)))
    assert ps[0].label == "2026-W44" and ps[-1].label == "2026-W53"
    assert all(a.end == b.start for a, b in itertools.pairwise(ps))


def test_add_months_clamps() -> None:
    assert add_months(datetime(2026, 1, 31), 1) == datetime(2026, 2, 28)
    assert add_months(datetime(2026, 11, 30), 3) == datetime(2027, 2, 28)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        deadline(Regulation.WEEKLY, datetime(2026, 1, 1))
