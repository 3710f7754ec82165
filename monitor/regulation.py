"""The regulation vocabulary: deadlines, grades and calendar periods (pure; the clock is passed in).

A regulation "on change, but at least monthly" is a maximum gap between real updates. The deadline
of the next required update follows from the last real update in local (Kyiv) wall time, so month
ends, 29 February and DST switches behave as a person expects. Grades follow OCHA HDX's data
freshness: fresh until the deadline, then due, overdue and delinquent after configurable margins.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from monitor.domain import Grade, Regulation

KYIV = "Europe/Kyiv"


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """How one regulation is graded."""

    months: int = 0  # calendar months added to the last update (monthly, quarterly, ...)
    days: int = 0  # calendar days added (weekly)
    hours: int = 0  # hours added (more than daily)
    next_day: bool = False  # daily: by the end of the next (working) day
    overdue_after: timedelta = timedelta(0)  # after the deadline: due -> overdue
    delinquent_after: timedelta = timedelta(0)  # after the deadline: overdue -> delinquent
    check_interval_s: int = 3600  # default interval between checks of the service's pages
    nominal_gap_s: int = 0  # the allowed gap in seconds (for metrics), 0 = no deadline
    period: str = "month"  # calendar period used by the audit


DAY = timedelta(days=1)

# Defaults after HDX (weekly 7/14/21 days, monthly 30/44/60, quarterly 90/120/150, yearly 365/425/455),
# with calendar months so that "monthly" means "by the same date next month".
POLICIES: dict[Regulation, Policy] = {
    Regulation.MORE_THAN_DAILY: Policy(hours=12, overdue_after=timedelta(hours=12), delinquent_after=DAY,
                                       check_interval_s=900, nominal_gap_s=43_200, period="day"),
    Regulation.DAILY: Policy(next_day=True, overdue_after=DAY, delinquent_after=2 * DAY,
                             check_interval_s=3600, nominal_gap_s=86_400, period="day"),
    Regulation.WEEKLY: Policy(days=7, overdue_after=7 * DAY, delinquent_after=14 * DAY,
                              check_interval_s=3 * 3600, nominal_gap_s=7 * 86_400, period="week"),
    Regulation.MONTHLY: Policy(months=1, overdue_after=14 * DAY, delinquent_after=30 * DAY,
                               check_interval_s=6 * 3600, nominal_gap_s=31 * 86_400, period="month"),
    Regulation.QUARTERLY: Policy(months=3, overdue_after=30 * DAY, delinquent_after=60 * DAY,
                                 check_interval_s=12 * 3600, nominal_gap_s=92 * 86_400, period="quarter"),
    Regulation.HALF_YEARLY: Policy(months=6, overdue_after=30 * DAY, delinquent_after=60 * DAY,
                                   check_interval_s=24 * 3600, nominal_gap_s=184 * 86_400, period="half"),
    Regulation.YEARLY: Policy(months=12, overdue_after=60 * DAY, delinquent_after=90 * DAY,
                              check_interval_s=24 * 3600, nominal_gap_s=366 * 86_400, period="year"),
    Regulation.AS_NEEDED: Policy(check_interval_s=6 * 3600, period="month"),
}


def policy(regulation: Regulation, overrides: Mapping[Regulation, Policy] | None = None) -> Policy:
    if overrides and regulation in overrides:
        return overrides[regulation]
    return POLICIES[regulation]


def default_interval_s(regulation: Regulation) -> int:
    return POLICIES[regulation].check_interval_s


def nominal_gap_s(regulation: Regulation) -> int:
    """The allowed gap in seconds; 0 for 'as needed'."""
    return POLICIES[regulation].nominal_gap_s


# --- working days ----------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _holiday_calendar(country: str) -> Callable[[date], bool]:
    import holidays  # the maintained public-holiday tables

    table = holidays.country_holidays(country)
    return lambda d: d in table


def is_working_day(d: date, country: str = "UA") -> bool:
    return d.weekday() < 5 and not _holiday_calendar(country)(d)


def add_working_days(d: date, n: int, country: str = "UA") -> date:
    """The n-th working day after d (n >= 1)."""
    while n > 0:
        d += timedelta(days=1)
        if is_working_day(d, country):
            n -= 1
    return d


# --- wall-clock arithmetic -------------------------------------------------------------------


def _local(t: datetime, tz: ZoneInfo) -> datetime:
    if t.tzinfo is None:
        raise ValueError("naive datetime: times must be timezone-aware")
    return t.astimezone(tz)


def _wall(naive: datetime, tz: ZoneInfo) -> datetime:
    """A local wall time as an aware UTC instant (a time skipped by DST moves forward)."""
    return naive.replace(tzinfo=tz).astimezone(UTC)


def add_months(d: datetime, months: int) -> datetime:
    """Same day-of-month `months` later, clamped to the month's end (31 Jan + 1 month = 28/29 Feb)."""
    index = d.month - 1 + months
    year, month = d.year + index // 12, index % 12 + 1
    return d.replace(year=year, month=month, day=min(d.day, calendar.monthrange(year, month)[1]))


def _start_of_day(d: date, tz: ZoneInfo) -> datetime:
    return _wall(datetime.combine(d, time()), tz)


# --- deadlines and grades ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Standing:
    """Where a service stands against its regulation at one moment."""

    grade: Grade
    deadline: datetime | None  # when the next real update is required (None: as needed / unknown)
    overdue_at: datetime | None
    delinquent_at: datetime | None
    age_s: float | None  # since the last real update (or since monitoring began)
    cycles_late: float  # how many allowed gaps past the deadline (0 when on time)


def deadline(
    regulation: Regulation,
    last_update: datetime,
    *,
    tz: str = KYIV,
    working_days: bool = False,
    country: str = "UA",
    overrides: Mapping[Regulation, Policy] | None = None,
) -> datetime | None:
    """When the next real update is due after `last_update`; None for 'as needed'."""
    pol = policy(regulation, overrides)
    zone = ZoneInfo(tz)
    local = _local(last_update, zone)
    if pol.next_day:
        d = local.date()
        nxt = add_working_days(d, 1, country) if working_days else d + timedelta(days=1)
        return _start_of_day(nxt + timedelta(days=1), zone)  # end of the next (working) day
    if pol.months:
        return _wall(add_months(local.replace(tzinfo=None), pol.months), zone)
    if pol.days:
        return _wall(local.replace(tzinfo=None) + timedelta(days=pol.days), zone)
    if pol.hours:
        return last_update.astimezone(UTC) + timedelta(hours=pol.hours)
    return None


def _after(base: datetime, margin: timedelta, *, working_days: bool, country: str, tz: ZoneInfo) -> datetime:
    """base + margin; for working-day regulations whole days are counted as working days."""
    if working_days and margin.days and not margin.seconds:
        local = base.astimezone(tz)
        # base is a local midnight: the end of the n-th working day after the previous day
        last_day = add_working_days(local.date() - timedelta(days=1), margin.days, country)
        return _start_of_day(last_day + timedelta(days=1), tz)
    return base + margin


def standing(
    regulation: Regulation,
    last_update: datetime | None,
    now: datetime,
    *,
    tz: str = KYIV,
    working_days: bool = False,
    country: str = "UA",
    overrides: Mapping[Regulation, Policy] | None = None,
) -> Standing:
    """Grade a service: `last_update` is the last real update (or when monitoring began)."""
    if last_update is None:
        return Standing(grade=Grade.UNKNOWN, deadline=None, overdue_at=None, delinquent_at=None,
                        age_s=None, cycles_late=0.0)
    age_s = max(0.0, (now - last_update).total_seconds())
    due = deadline(regulation, last_update, tz=tz, working_days=working_days, country=country,
                   overrides=overrides)
    if due is None:  # as needed: never overdue; the age still shows the silence
        return Standing(grade=Grade.FRESH, deadline=None, overdue_at=None, delinquent_at=None,
                        age_s=age_s, cycles_late=0.0)
    pol = policy(regulation, overrides)
    zone = ZoneInfo(tz)
    wd = working_days and pol.next_day
    overdue_at = _after(due, pol.overdue_after, working_days=wd, country=country, tz=zone)
    delinquent_at = _after(due, pol.delinquent_after, working_days=wd, country=country, tz=zone)
    if now <= due:
        grade = Grade.FRESH
    elif now < overdue_at:
        grade = Grade.DUE
    elif now < delinquent_at:
        grade = Grade.OVERDUE
    else:
        grade = Grade.DELINQUENT
    gap_s = pol.nominal_gap_s or 1
    cycles = max(0.0, (now - due).total_seconds() / gap_s)
    return Standing(grade=grade, deadline=due, overdue_at=overdue_at, delinquent_at=delinquent_at,
                    age_s=age_s, cycles_late=cycles)


# --- calendar periods -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class Period:
    """One regulation period [start, end) in UTC, labelled in local terms (2026-W48, 2026-Q4...)."""

    start: datetime
    end: datetime
    label: str

    def __contains__(self, t: object) -> bool:
        return isinstance(t, datetime) and self.start <= t < self.end


def period_of(regulation: Regulation, t: datetime, *, tz: str = KYIV,
              overrides: Mapping[Regulation, Policy] | None = None) -> Period:
    """The calendar period (day, ISO week, month, quarter, half, year in local time) that `t` falls in."""
    zone = ZoneInfo(tz)
    d = _local(t, zone).date()
    kind = policy(regulation, overrides).period
    if kind == "day":
        return Period(start=_start_of_day(d, zone), end=_start_of_day(d + timedelta(days=1), zone),
                      label=d.isoformat())
    if kind == "week":
        monday = d - timedelta(days=d.weekday())
        iso = monday.isocalendar()
        return Period(start=_start_of_day(monday, zone), end=_start_of_day(monday + timedelta(days=7), zone),
                      label=f"{iso.year}-W{iso.week:02d}")
    months = {"month": 1, "quarter": 3, "half": 6, "year": 12}[kind]
    first_month = (d.month - 1) // months * months + 1
    first = date(d.year, first_month, 1)
    nxt = add_months(datetime.combine(first, time()), months).date()
    if kind == "month":
        label = f"{d.year}-{d.month:02d}"
    elif kind == "quarter":
        label = f"{d.year}-Q{(d.month - 1) // 3 + 1}"
    elif kind == "half":
        label = f"{d.year}-H{(d.month - 1) // 6 + 1}"
    else:
        label = str(d.year)
    return Period(start=_start_of_day(first, zone), end=_start_of_day(nxt, zone), label=label)


def periods(regulation: Regulation, start: datetime, end: datetime, *, tz: str = KYIV,
            overrides: Mapping[Regulation, Policy] | None = None) -> Iterator[Period]:
    """Every period that overlaps [start, end), in order."""
    current = period_of(regulation, start, tz=tz, overrides=overrides)
    while current.start < end:
        yield current
        current = period_of(regulation, current.end, tz=tz, overrides=overrides)


# --- a source's own declared frequency (data.gov.ua, HDX, DCAT) -------------------------------------

_FREQUENCY_WORDS: tuple[tuple[str, Regulation], ...] = (
    ("більше", Regulation.MORE_THAN_DAILY), ("кілька разів на день", Regulation.MORE_THAN_DAILY),
    ("щогодини", Regulation.MORE_THAN_DAILY), ("hourly", Regulation.MORE_THAN_DAILY),
    ("щодня", Regulation.DAILY), ("щоденно", Regulation.DAILY), ("daily", Regulation.DAILY),
    ("щотижня", Regulation.WEEKLY), ("щотижнево", Regulation.WEEKLY), ("weekly", Regulation.WEEKLY),
    ("щомісяця", Regulation.MONTHLY), ("щомісячно", Regulation.MONTHLY), ("monthly", Regulation.MONTHLY),
    ("щокварталу", Regulation.QUARTERLY), ("щоквартально", Regulation.QUARTERLY), ("quarterly", Regulation.QUARTERLY),
    ("півроку", Regulation.HALF_YEARLY), ("піврічно", Regulation.HALF_YEARLY), ("semiannual", Regulation.HALF_YEARLY),
    ("щороку", Regulation.YEARLY), ("щорічно", Regulation.YEARLY), ("annual", Regulation.YEARLY),
    ("yearly", Regulation.YEARLY), ("за потреби", Regulation.AS_NEEDED), ("позапланово", Regulation.AS_NEEDED),
    ("irregular", Regulation.AS_NEEDED), ("as needed", Regulation.AS_NEEDED), ("never", Regulation.AS_NEEDED),
)


def parse_frequency(text: str) -> Regulation | None:
    """A source's own update frequency (data.gov.ua words, HDX days, English) as a regulation; None if unknown."""
    value = text.strip().casefold()
    if not value:
        return None
    if value.lstrip("-").isdigit():  # HDX: days; -1 never, -2 as needed, 0 live
        days = int(value)
        if days <= 0:
            return Regulation.AS_NEEDED if days < 0 else Regulation.MORE_THAN_DAILY
        for limit, reg in ((1, Regulation.DAILY), (7, Regulation.WEEKLY), (31, Regulation.MONTHLY),
                           (92, Regulation.QUARTERLY), (184, Regulation.HALF_YEARLY)):
            if days <= limit:
                return reg
        return Regulation.YEARLY
    for word, reg in _FREQUENCY_WORDS:
        if word in value:
            return reg
    try:
        return Regulation(value)
    except ValueError:
        return None
