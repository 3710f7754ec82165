"""The audit (pure): self-reports reconciled with detected changes, period by period, with coverage.

For every service and regulation period (day, ISO week, month, quarter in Kyiv time): the real updates
detected, the date-only bumps, the self-reports, the dates the site declared; the period is compliant,
missed or unknown (the monitor did not watch enough of it: coverage is measured, never guessed). Every
self-report is confirmed, date_only, unconfirmed or unverifiable; every real update nobody reported is
unreported.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from monitor.domain import ChangeEvent as Update
from monitor.domain import Regulation, ServiceConfig
from monitor.domain import ReportEntry as Report
from monitor.regulation import Period, is_working_day, periods


class PeriodVerdict(StrEnum):
    COMPLIANT = "compliant"
    MISSED = "missed"
    UNKNOWN = "unknown"


class ReportVerdict(StrEnum):
    CONFIRMED = "confirmed"  # a real update was detected in the window around the claimed date
    DATE_ONLY = "date_only"  # only a bumped date was seen there
    UNCONFIRMED = "unconfirmed"  # the monitor watched and nothing changed
    UNVERIFIABLE = "unverifiable"  # the monitor did not watch enough of that time (or cannot watch the service)


UNREPORTED = "unreported"


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    tz: str = "Europe/Kyiv"
    tolerance: timedelta = timedelta(0)  # extra leniency around a claimed day (the checks' windows already are)
    min_coverage: float = 0.8  # below this share of watched time a period (or a claim) is unknown
    country: str = "UA"


@dataclass(frozen=True, slots=True, kw_only=True)
class PeriodResult:
    period: Period
    verdict: PeriodVerdict
    coverage: float
    required: bool  # False for "as needed" and for days off of a working-day regulation
    updates: tuple[int, ...] = ()  # real updates (change ids)
    date_only: tuple[int, ...] = ()
    reports: tuple[int, ...] = ()
    declared: tuple[datetime, ...] = ()
    archived: bool = False  # the verdict rests (in part) on captures read from web archives


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportResult:
    report: Report
    verdict: ReportVerdict
    matched: tuple[int, ...] = ()  # the change ids that confirm it (or the date-only ones)
    coverage: float = 0.0
    archived: bool = False  # the verdict rests (in part) on captures read from web archives


@dataclass(slots=True, kw_only=True)
class ServiceAudit:
    service: ServiceConfig
    start: datetime
    end: datetime
    monitored: bool
    coverage: float
    periods: list[PeriodResult] = field(default_factory=list)
    reports: list[ReportResult] = field(default_factory=list)
    unreported: list[Update] = field(default_factory=list)
    updates: list[Update] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        c: Counter[str] = Counter()
        for p in self.periods:
            c[f"periods_{p.verdict.value}"] += 1
        for r in self.reports:
            c[f"reports_{r.verdict.value}"] += 1
        c["updates_real"] = sum(1 for u in self.updates if u.is_real)
        c["updates_date_only"] = sum(1 for u in self.updates if u.change_class == "date_only")
        c[UNREPORTED] = len(self.unreported)
        return dict(c)


# --- coverage --------------------------------------------------------------------------------


def covered_intervals(successes: Sequence[datetime], interval_s: float) -> list[tuple[datetime, datetime]]:
    """Times the monitor saw the service: around every successful check, and between two successful checks
    no further apart than 2.5 check intervals (a longer gap means it was not watching, or the service was down)."""
    if not successes:
        return []
    half = timedelta(seconds=interval_s / 2)
    bridge = timedelta(seconds=interval_s * 2.5)
    out: list[tuple[datetime, datetime]] = []
    times = sorted(successes)
    start, end = times[0] - half, times[0] + half
    for t in times[1:]:
        if t - end <= bridge - half:
            end = max(end, t + half)
        else:
            out.append((start, end))
            start, end = t - half, t + half
    out.append((start, end))
    return out


def coverage(intervals: Sequence[tuple[datetime, datetime]], start: datetime, end: datetime) -> float:
    """Share of [start, end) covered (0..1); an empty span is fully covered."""
    span = (end - start).total_seconds()
    if span <= 0:
        return 1.0
    covered = 0.0
    for a, b in intervals:
        lo, hi = max(a, start), min(b, end)
        if hi > lo:
            covered += (hi - lo).total_seconds()
    return min(1.0, covered / span)


def _overlaps(a0: datetime, a1: datetime, b0: datetime, b1: datetime) -> bool:
    return a0 < b1 and b0 <= a1


def claim_window(report: Report, opts: Options) -> tuple[datetime, datetime]:
    """The day the department names (in local time), widened by the tolerance (none by default: the checks'
    own windows say how precisely an update is dated)."""
    zone = ZoneInfo(opts.tz)
    day = report.reported_for.astimezone(zone).date()
    start = datetime.combine(day, time(), tzinfo=zone)
    return start - opts.tolerance, start + timedelta(days=1) + opts.tolerance


def attributed(u: Update, lo: datetime, hi: datetime, watched: bool) -> bool:
    """Whether an update counts for the time [lo, hi): it happened between the last check that did not see
    it (u.start) and the first that did (u.detected_at). Certainly inside when the whole window is; otherwise
    it counts where it was detected, and only if that time was watched (a change first seen after an outage
    does not make the unwatched days before it compliant)."""
    if lo <= u.start and u.detected_at < hi:
        return True
    return watched and lo <= u.detected_at < hi


def bears_out(u: Update, lo: datetime, hi: datetime, watched: bool) -> bool:
    """Whether an update bears out a claim for [lo, hi): the claim falls in the update's window (between the
    last check that did not see it and the first that did) — and the claimed time was watched, or the window
    lies within it (a change first seen after an outage cannot confirm the unwatched days before it)."""
    if lo <= u.start and u.detected_at < hi:
        return True
    return watched and _overlaps(u.start, u.detected_at, lo, hi)


# --- reconciliation ---------------------------------------------------------------------------


def _required(service: ServiceConfig, period: Period, opts: Options) -> bool:
    if service.regulation is Regulation.AS_NEEDED:
        return False
    if service.working_days and service.regulation in (Regulation.DAILY, Regulation.MORE_THAN_DAILY):
        local: date = period.start.astimezone(ZoneInfo(opts.tz)).date()
        return is_working_day(local, opts.country)
    return True


def reconcile(service: ServiceConfig, *, start: datetime, end: datetime, now: datetime,
              updates: Iterable[Update], reports: Iterable[Report], successes: Sequence[datetime],
              interval_s: float, declared: Iterable[datetime] = (), opts: Options | None = None,
              archived: Iterable[datetime] = ()) -> ServiceAudit:
    """Reconcile one service over [start, end). Every period that overlaps the range is judged whole (a week
    that began before the range is judged on all of it, as it is shown); `updates` and `successes` must cover
    the periods, not only the range. `successes` are the times of the service's successful checks, `archived`
    those of them that are captures read from web archives (a verdict resting on them says so)."""
    opts = opts or Options()
    from_archives = sorted(archived)
    archived_at = set(from_archives)

    def rests_on_archives(lo: datetime, hi: datetime, ids: Iterable[int]) -> bool:
        at = bisect_left(from_archives, lo)
        return (at < len(from_archives) and from_archives[at] < hi) or any(
            by_id[i].detected_at in archived_at for i in ids)

    end = min(end, now)
    ups = sorted(updates, key=lambda u: (u.detected_at, u.id))
    reps = sorted(reports, key=lambda r: (r.reported_for, r.id))
    real = [u for u in ups if u.is_real]
    dated = [u for u in ups if not u.is_real and u.change_class == "date_only"]
    declared_dates = sorted(declared)
    by_id = {u.id: u for u in ups}
    intervals = covered_intervals(successes, interval_s) if service.pages else []
    audit = ServiceAudit(service=service, start=start, end=end, monitored=bool(service.pages),
                         coverage=coverage(intervals, start, end), updates=ups)

    for p in periods(service.regulation, start, end, tz=opts.tz):
        lo, hi = p.start, min(p.end, now)
        cov = coverage(intervals, lo, hi)
        watched = cov >= opts.min_coverage
        in_real = tuple(u.id for u in real if attributed(u, lo, hi, watched))
        in_dated = tuple(u.id for u in dated if attributed(u, lo, hi, watched))
        in_reports = tuple(r.id for r in reps if lo <= r.reported_for < hi)
        in_declared = tuple(d for d in declared_dates if lo <= d < hi)
        required = _required(service, p, opts)
        if in_real:
            verdict = PeriodVerdict.COMPLIANT  # an update is known to fall in it
        elif not watched or (required and p.end > now):
            # not observed enough: nothing can be said, whatever came later; or still going: not missed yet
            verdict = PeriodVerdict.UNKNOWN
        elif required:
            verdict = PeriodVerdict.MISSED
        else:
            verdict = PeriodVerdict.COMPLIANT  # nothing was required: as needed, or a day off
        audit.periods.append(PeriodResult(period=p, verdict=verdict, coverage=cov, required=required,
                                          updates=in_real, date_only=in_dated, reports=in_reports,
                                          declared=in_declared,
                                          archived=rests_on_archives(lo, hi, (*in_real, *in_dated))))

    for r in reps:
        w0, w1 = claim_window(r, opts)
        cov = coverage(intervals, w0, min(w1, now)) if w0 < now else 0.0
        watched = cov >= opts.min_coverage
        matches = tuple(u.id for u in real if bears_out(u, w0, w1, watched))
        date_matches = tuple(u.id for u in dated if bears_out(u, w0, w1, watched))
        if matches:
            said = ReportVerdict.CONFIRMED
        elif date_matches:
            said = ReportVerdict.DATE_ONLY
        elif service.pages and watched:
            said = ReportVerdict.UNCONFIRMED
        else:  # not watched enough then (an outage, before the monitor started, in the future): cannot tell
            said = ReportVerdict.UNVERIFIABLE
        audit.reports.append(ReportResult(report=r, verdict=said, matched=matches or date_matches, coverage=cov,
                                          archived=rests_on_archives(w0, w1, matches or date_matches)))

    windows = [claim_window(r, opts) for r in reps]
    audit.unreported = [u for u in real if start <= u.detected_at < end
                        and not any(_overlaps(u.start, u.detected_at, w0, w1) for w0, w1 in windows)]
    return audit


def in_range(u: Update, audit: ServiceAudit) -> bool:
    """Whether an update was detected within the audited range (the others are context: no report verdict)."""
    return audit.start <= u.detected_at < audit.end


def department_summary(audits: Iterable[ServiceAudit]) -> dict[str, dict[str, int]]:
    """Counts per department (its id): periods by verdict, reports by verdict, unreported updates."""
    out: dict[str, Counter[str]] = {}
    for a in audits:
        c = out.setdefault(a.service.department_id, Counter())
        c["services"] += 1
        c.update(a.counts())
    return {k: dict(v) for k, v in sorted(out.items())}
