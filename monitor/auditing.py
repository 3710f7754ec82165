"""Running the audit over the store: gather each service's changes, reports, coverage and declared dates,
reconcile them (monitor.audit), and lay the results out as views (rows) for every output format."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from monitor.audit import (
    UNREPORTED,
    Options,
    ReportVerdict,
    ServiceAudit,
    department_summary,
    in_range,
    reconcile,
)
from monitor.domain import Catalogue, ServiceConfig
from monitor.ports import AuditReader
from monitor.regulation import default_interval_s, periods

VIEWS = ("periods", "reports", "updates", "departments")

LABELS = {
    "uk": {
        "service": "Сервіс", "name": "Назва", "department": "Відділ", "regulation": "Регламент", "period": "Період",
        "from": "Початок", "to": "Кінець", "verdict": "Висновок", "coverage": "Покриття", "updates": "Оновлення",
        "date_only": "Лише дата", "reports": "Звіти", "declared": "Заявлені дати", "report": "Звіт",
        "submitted": "Подано", "reported_for": "Дата оновлення (за звітом)", "what": "Що оновлено", "who": "Хто",
        "matched": "Підтверджено змінами", "change": "Зміна", "page": "Сторінка", "class": "Клас",
        "real": "Реальне оновлення", "window_start": "Після", "detected_at": "Виявлено до", "reported": "Звіт",
        "added": "Додано", "removed": "Вилучено", "edited": "Змінено", "services": "Сервісів",
        "compliant": "дотримано", "missed": "пропущено", "unknown": "невідомо", "confirmed": "підтверджено",
        "unconfirmed": "не підтверджено", "unverifiable": "неможливо перевірити", "unreported": "без звіту",
        "yes": "так", "no": "ні", "periods": "Періоди", "departments": "Відділи",
        "title": "Аудит оновлень веб-сервісів", "generated": "Сформовано", "range": "Період аудиту",
        "evidence": "Докази (різниця змісту)", "timeline": "Хронологія", "no_pages": "адреса невідома: не моніториться",
        "legend": "Періоди: зелений - дотримано, червоний - пропущено, сірий - невідомо. Позначки: зелена - реальне "
                  "оновлення, жовта - лише дата, синя - звіт відділу. Сіра смуга внизу - монітор не спостерігав.",
        "faults_title": "Перелік технічних збоїв веб-сервісів", "summary": "Підсумок за сервісами",
        "faults": "Збої", "checks": "Перевірок", "failed": "Невдалих", "downtime_h": "Недоступність, год",
        "errors": "Класи помилок", "slow": "Повільних відповідей", "broken_links": "Непрацюючих посилань",
        "bad_captures": "Хибних сторінок", "certificate": "Сертифікат TLS до", "kind": "Вид",
        "count": "Кількість", "detail": "Подробиці", "downtime": "недоступність", "tls": "помилка TLS",
        "broken_link": "непрацююче посилання", "bad_capture": "хибна сторінка (soft 404, захист від ботів)",
        "daily_summary": "денний підсумок",
    },
    "en": {
        "service": "Service", "name": "Name", "department": "Department", "regulation": "Regulation",
        "period": "Period", "from": "From", "to": "To", "verdict": "Verdict", "coverage": "Coverage",
        "updates": "Updates", "date_only": "Date only", "reports": "Reports", "declared": "Declared dates",
        "report": "Report", "submitted": "Submitted", "reported_for": "Update date (as reported)",
        "what": "What", "who": "Who", "matched": "Confirmed by changes", "change": "Change", "page": "Page",
        "class": "Class", "real": "Real update", "window_start": "After", "detected_at": "Detected by",
        "reported": "Report", "added": "Added", "removed": "Removed", "edited": "Edited", "services": "Services",
        "compliant": "compliant", "missed": "missed", "unknown": "unknown", "confirmed": "confirmed",
        "unconfirmed": "unconfirmed", "unverifiable": "unverifiable", "unreported": "unreported",
        "yes": "yes", "no": "no", "periods": "Periods", "departments": "Departments",
        "title": "Audit of web-service updates", "generated": "Generated", "range": "Audit range",
        "evidence": "Evidence (content diff)", "timeline": "Timeline", "no_pages": "no known address: unmonitored",
        "legend": "Periods: green compliant, red missed, grey unknown. Marks: green a real update, yellow a date-only "
                  "bump, blue a department's report. The grey band below: the monitor was not watching.",
        "faults_title": "Technical faults of the web services", "summary": "Summary by service",
        "faults": "Faults", "checks": "Checks", "failed": "Failed", "downtime_h": "Downtime, h",
        "errors": "Error classes", "slow": "Slow responses", "broken_links": "Broken links",
        "bad_captures": "Bad captures", "certificate": "TLS certificate until", "kind": "Kind",
        "count": "Count", "detail": "Detail", "downtime": "downtime", "tls": "TLS failure",
        "broken_link": "broken link", "bad_capture": "bad capture (soft 404, bot wall)",
        "daily_summary": "daily summary",
    },
}


@dataclass(frozen=True, slots=True)
class View:
    name: str
    columns: tuple[str, ...]  # label keys
    rows: Sequence[tuple[object, ...]]


def run_audit(catalogue: Catalogue, store: AuditReader, *, start: datetime, end: datetime, now: datetime,
              services: Iterable[str] = (), departments: Iterable[str] = ()) -> list[ServiceAudit]:
    wanted, depts = set(services), set(departments)
    rs = catalogue.reports
    opts = Options(tz=catalogue.settings.timezone, tolerance=timedelta(seconds=rs.tolerance_s),
                   min_coverage=rs.min_coverage, country=catalogue.settings.working_days_holidays)
    margin = opts.tolerance + timedelta(days=2)
    out = []
    for svc in catalogue.services:
        if (wanted and svc.id not in wanted) or (depts and svc.department_id not in depts):
            continue
        # the periods crossing the range's edges are judged whole: read their evidence too
        ps = list(periods(svc.regulation, start, min(end, now), tz=opts.tz))
        lo = min(start, ps[0].start) if ps else start
        hi = max(min(end, now), min(ps[-1].end, now)) if ps else min(end, now)
        out.append(reconcile(
            svc, start=start, end=end, now=now,
            updates=store.change_events(svc.id, lo - margin, hi + margin),
            reports=store.reports(service_id=svc.id, since=lo, until=hi),
            successes=store.success_times(svc.id, lo - margin, hi + margin),
            interval_s=_interval(svc), declared=store.declared_dates(svc.id, lo, hi), opts=opts))
    return out


def _interval(svc: ServiceConfig) -> float:
    return float(max((p.interval_s or default_interval_s(svc.regulation)) for p in svc.pages)) if svc.pages else (
        float(default_interval_s(svc.regulation)))


def local_time(t: datetime | None, tz: str) -> str:
    return t.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M") if t else ""


def views(audits: Sequence[ServiceAudit], tz: str) -> dict[str, View]:
    periods, reports, updates = [], [], []
    for a in audits:
        s = a.service
        for p in a.periods:
            periods.append((s.id, s.department_id, s.regulation.value, p.period.label, local_time(p.period.start, tz),
                            local_time(p.period.end, tz), p.verdict.value, round(p.coverage, 3), len(p.updates),
                            len(p.date_only), len(p.reports), ", ".join(local_time(d, tz) for d in p.declared)))
        for r in a.reports:
            reports.append((s.id, s.department_id, r.report.id, local_time(r.report.submitted_at, tz),
                            local_time(r.report.reported_for, tz)[:10], r.report.what, r.report.who, r.verdict.value,
                            ", ".join(str(i) for i in r.matched), round(r.coverage, 3)))
        unreported = {u.id for u in a.unreported}
        for u in a.updates:
            label = "" if not u.is_real or not in_range(u, a) else UNREPORTED if u.id in unreported else "reported"
            updates.append((s.id, u.id, u.url, u.change_class, "yes" if u.is_real else "no",
                            local_time(u.window_start, tz), local_time(u.detected_at, tz), label,
                            u.added, u.removed, u.edited))
    summary = department_summary(audits)
    departments = [(dept, c.get("services", 0), c.get("periods_compliant", 0), c.get("periods_missed", 0),
                    c.get("periods_unknown", 0), c.get("reports_confirmed", 0), c.get("reports_date_only", 0),
                    c.get("reports_unconfirmed", 0), c.get("reports_unverifiable", 0), c.get(UNREPORTED, 0))
                   for dept, c in summary.items()]
    return {
        "periods": View("periods", ("service", "department", "regulation", "period", "from", "to", "verdict",
                                    "coverage", "updates", "date_only", "reports", "declared"), periods),
        "reports": View("reports", ("service", "department", "report", "submitted", "reported_for", "what", "who",
                                    "verdict", "matched", "coverage"), reports),
        "updates": View("updates", ("service", "change", "page", "class", "real", "window_start", "detected_at",
                                    "reported", "added", "removed", "edited"), updates),
        "departments": View("departments", ("department", "services", "compliant", "missed", "unknown",
                                            "confirmed", "date_only", "unconfirmed", "unverifiable", "unreported"),
                            departments),
    }


def report_stats(catalogue: Catalogue, store: AuditReader, now: datetime, days: int = 90) -> dict[str, dict[str, int]]:
    """For the exporter: per service, reports by verdict and unreported updates over the last `days`."""
    audits = run_audit(catalogue, store, start=now - timedelta(days=days), end=now, now=now)
    out = {}
    for a in audits:
        counts = {v.value: 0 for v in ReportVerdict}
        for r in a.reports:
            counts[r.verdict.value] += 1
        counts[UNREPORTED] = len(a.unreported)
        out[a.service.id] = counts
    return out
