"""Running the audit over the store: gather each service's changes, reports, coverage and declared dates,
reconcile them (monitor.audit), and lay the results out as views (rows) for every output format."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
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
from monitor.domain import Catalogue, RejectedEntry, ServiceConfig
from monitor.ports import AuditReader, ChainHeadRow, HistoryReader
from monitor.regulation import default_interval_s, periods
from monitor.reports import department_note

VIEWS = ("periods", "reports", "updates", "departments")
# the columns a terminal has room for (the files carry them all)
TERMINAL = {
    "periods": ("service", "period", "verdict", "coverage", "updates", "date_only", "reports"),
    "reports": ("service", "source", "reported_for", "verdict", "matched", "coverage", "reason"),
    "updates": ("service", "change", "class", "real", "detected_at", "reported"),
    "departments": ("department", "services", "compliant", "missed", "unknown", "confirmed", "date_only",
                    "unconfirmed", "unverifiable", "rejected", "unreported"),
}

# Column titles and headings, per language.
LABELS = {
    "uk": {
        "service": "Сервіс", "name": "Назва", "department": "Відділ", "department_name": "Назва відділу",
        "regulation": "Регламент", "period": "Період", "from": "Початок", "to": "Кінець", "verdict": "Висновок",
        "coverage": "Покриття", "updates": "Оновлення", "date_only": "Лише дата", "reports": "Звіти",
        "declared": "Заявлені дати", "report": "Звіт", "source": "Рядок форми", "typed_name": "Сервіс (як вписано)",
        "filed_by": "Відділ (як вписано)", "filed_note": "Примітка щодо відділу", "submitted": "Подано",
        "reported_for": "Дата оновлення (за звітом)", "what": "Що оновлено", "who": "Хто", "link": "Посилання",
        "reason": "Причина відхилення", "matched": "Підтверджено змінами", "change": "Зміна", "page": "Сторінка",
        "class": "Клас", "real": "Реальне оновлення", "window_start": "Після перевірки", "detected_at": "Виявлено о",
        "reported": "Звіт про зміну", "added": "Додано", "removed": "Вилучено", "edited": "Змінено",
        "evidence_ref": "Доказ (SHA-256)", "services": "Сервісів", "compliant": "Дотримано", "missed": "Пропущено",
        "unknown": "Невідомо", "confirmed": "Підтверджено", "unconfirmed": "Не підтверджено",
        "unverifiable": "Неможливо перевірити", "rejected": "Відхилено", "unreported": "Без звіту",
        "periods": "Періоди", "departments": "Відділи", "about": "Про аудит", "field": "Поле", "value": "Значення",
        "contents": "Зміст", "rejected_rows": "Відхилені рядки форми", "evidence_from": "Джерело доказів",
        "scrolls": "Таблиця (гортається вбік)",
        "before": "було", "after": "стало",
        "more_lines": "ще {n} рядків різниці",
        "title": "Аудит оновлень веб-сервісів", "generated": "Сформовано", "range": "Період аудиту",
        "evidence": "Докази (різниця змісту)", "timeline": "Хронологія", "no_pages": "адреса невідома: не моніториться",
        "heads": "Голови ланцюжків історії на момент аудиту", "deciding": "Вирішальна зміна",
        "legend": "Періоди: ✓ зелений - дотримано, ✗ червоний - пропущено, ? сірий - невідомо. Позначки: зелена - "
                  "реальне оновлення, жовта - лише дата, синій трикутник - звіт відділу. Сіра смуга внизу - монітор "
                  "не спостерігав.",
        "faults_title": "Перелік технічних збоїв веб-сервісів", "summary": "Підсумок за сервісами",
        "faults": "Збої", "checks": "Перевірок", "failed": "Невдалих", "downtime_h": "Недоступність, год",
        "errors": "Класи помилок", "slow": "Повільних відповідей", "broken_links": "Непрацюючих посилань",
        "bad_captures": "Хибних сторінок", "certificate": "Сертифікат TLS до", "kind": "Вид",
        "count": "Кількість", "detail": "Подробиці",
    },
    "en": {
        "service": "Service", "name": "Name", "department": "Department", "department_name": "Department name",
        "regulation": "Regulation", "period": "Period", "from": "From", "to": "To", "verdict": "Verdict",
        "coverage": "Coverage", "updates": "Updates", "date_only": "Date only", "reports": "Reports",
        "declared": "Declared dates", "report": "Report", "source": "Form row", "typed_name": "Service (as typed)",
        "filed_by": "Department (as typed)", "filed_note": "Department note", "submitted": "Submitted",
        "reported_for": "Update date (as reported)", "what": "What", "who": "Who", "link": "Link",
        "reason": "Reason rejected", "matched": "Confirmed by changes", "change": "Change", "page": "Page",
        "class": "Class", "real": "Real update", "window_start": "After the check of", "detected_at": "Detected at",
        "reported": "Reported", "added": "Added", "removed": "Removed", "edited": "Edited",
        "evidence_ref": "Evidence (SHA-256)", "services": "Services", "compliant": "Compliant", "missed": "Missed",
        "unknown": "Unknown", "confirmed": "Confirmed", "unconfirmed": "Unconfirmed", "unverifiable": "Unverifiable",
        "rejected": "Rejected", "unreported": "Unreported", "periods": "Periods", "departments": "Departments",
        "about": "About", "field": "Field", "value": "Value", "contents": "Contents",
        "rejected_rows": "Rejected form rows", "evidence_from": "Evidence from", "scrolls": "Table (scrolls sideways)",
        "before": "before", "after": "after",
        "more_lines": "{n} more diff lines",
        "title": "Audit of web-service updates", "generated": "Generated", "range": "Audit range",
        "evidence": "Evidence (content diff)", "timeline": "Timeline", "no_pages": "no known address: unmonitored",
        "heads": "Heads of the history's chains when the audit was made", "deciding": "Deciding change",
        "legend": "Periods: ✓ green compliant, ✗ red missed, ? grey unknown. Marks: green a real update, yellow a "
                  "date-only bump, blue triangle a department's report. The grey band below: the monitor was not "
                  "watching.",
        "faults_title": "Technical faults of the web services", "summary": "Summary by service",
        "faults": "Faults", "checks": "Checks", "failed": "Failed", "downtime_h": "Downtime, h",
        "errors": "Error classes", "slow": "Slow responses", "broken_links": "Broken links",
        "bad_captures": "Bad captures", "certificate": "TLS certificate until", "kind": "Kind",
        "count": "Count", "detail": "Detail",
    },
}

# Values from closed sets (Codes), per language.
CODES = {
    "uk": {
        "compliant": "дотримано", "missed": "пропущено", "unknown": "невідомо", "confirmed": "підтверджено",
        "date_only": "лише дата", "unconfirmed": "не підтверджено", "unverifiable": "неможливо перевірити",
        "rejected": "відхилено", "unreported": "без звіту", "reported": "є звіт", "yes": "так", "no": "ні",
        "unrecognised": "не розпізнано (сервіс невідомий)", "archive": "вебархів",
        "content": "зміст", "documents": "документи", "links": "посилання", "cosmetic": "оформлення",
        "more_than_daily": "частіше ніж щодня", "daily": "щодня", "weekly": "щотижня", "monthly": "щомісяця",
        "quarterly": "щокварталу", "half_yearly": "раз на пів року", "yearly": "щороку", "as_needed": "за потреби",
        "other_department": "подано іншим відділом", "unknown_department": "невідомий відділ",
        "audit_from": "Перший день", "audit_to": "День після останнього", "timezone": "Часовий пояс",
        "generated": "Сформовано", "version": "Версія монітора", "filter_services": "Відбір: сервіси",
        "filter_departments": "Відбір: відділи", "catalogue": "Каталог", "services": "Сервісів",
        "chain_head": "Голова ланцюжка",
        "downtime": "недоступність", "errors": "помилки", "slow": "повільні відповіді", "tls": "помилка TLS",
        "certificate": "сертифікат", "broken_link": "непрацююче посилання",
        "bad_capture": "хибна сторінка (soft 404, захист від ботів)", "daily_summary": "денний підсумок",
    },
    "en": {
        "compliant": "compliant", "missed": "missed", "unknown": "unknown", "confirmed": "confirmed",
        "date_only": "date only", "unconfirmed": "unconfirmed", "unverifiable": "unverifiable",
        "rejected": "rejected", "unreported": "unreported", "reported": "reported", "yes": "yes", "no": "no",
        "unrecognised": "unrecognised (unknown service)", "archive": "web archive",
        "content": "content", "documents": "documents", "links": "links", "cosmetic": "cosmetic",
        "more_than_daily": "more than daily", "daily": "daily", "weekly": "weekly", "monthly": "monthly",
        "quarterly": "quarterly", "half_yearly": "half-yearly", "yearly": "yearly", "as_needed": "as needed",
        "other_department": "filed by another department", "unknown_department": "unknown department",
        "audit_from": "First day", "audit_to": "Day after the last", "timezone": "Time zone",
        "generated": "Generated", "version": "Monitor version", "filter_services": "Filter: services",
        "filter_departments": "Filter: departments", "catalogue": "Catalogue", "services": "Services",
        "chain_head": "Chain head",
        "downtime": "downtime", "errors": "errors", "slow": "slow responses", "tls": "TLS failure",
        "certificate": "certificate", "broken_link": "broken link", "bad_capture": "bad capture (soft 404, bot wall)",
        "daily_summary": "daily summary",
    },
}


class Code(str):
    """A value from a closed set (a verdict, a change class, a regulation, a note): every output shows it in
    its language (JSON keeps the code)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class View:
    name: str
    columns: tuple[str, ...]  # label keys
    rows: Sequence[tuple[object, ...]]  # text, Code, datetime, date, numbers, tuples of change ids


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditReport:
    """One audit: what was audited (range, filters, when, from which history), each service's reconciliation,
    and the submitted rows that could not be reports."""

    catalogue: Catalogue
    start: datetime
    end: datetime
    generated: datetime
    audits: Sequence[ServiceAudit]
    rejected: Sequence[RejectedEntry] = ()
    services: tuple[str, ...] = ()  # the filters given
    departments: tuple[str, ...] = ()
    heads: tuple[ChainHeadRow, ...] = ()  # the history's chain heads when the audit was made
    version: str = ""

    @property
    def tz(self) -> str:
        return self.catalogue.settings.timezone


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
            interval_s=_interval(svc), declared=store.declared_dates(svc.id, lo, hi), opts=opts,
            archived=store.archived_times(svc.id, lo - margin, hi + margin)))
    return out


def audit_evidence(report: AuditReport, history: HistoryReader, limit: int = 500) -> dict[int, Mapping[str, Any]]:
    """The evidence of the updates an HTML audit shows (the first `limit` of each service)."""
    out: dict[int, Mapping[str, Any]] = {}
    for a in report.audits:
        for u in a.updates[:limit]:
            row = history.change(u.id)
            if row is not None and row.evidence:
                out[u.id] = row.evidence
    return out


def gather(catalogue: Catalogue, store: AuditReader, *, start: datetime, end: datetime, now: datetime,
           services: Sequence[str] = (), departments: Sequence[str] = (), heads: Sequence[ChainHeadRow] = (),
           version: str = "") -> AuditReport:
    """The audit of [start, end): every selected service reconciled, and the rejected rows of the range (of the
    selected services, and those whose service was not recognised)."""
    audits = run_audit(catalogue, store, start=start, end=end, now=now, services=services, departments=departments)
    chosen = [a.service.id for a in audits] if services or departments else None
    return AuditReport(catalogue=catalogue, start=start, end=end, generated=now, audits=audits,
                       rejected=store.rejected(since=start, until=end, service_ids=chosen),
                       services=tuple(services), departments=tuple(departments), heads=tuple(heads),
                       version=version)


def _interval(svc: ServiceConfig) -> float:
    return float(max((p.interval_s or default_interval_s(svc.regulation)) for p in svc.pages)) if svc.pages else (
        float(default_interval_s(svc.regulation)))


def local_time(t: datetime | None, tz: str) -> str:
    return t.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M") if t else ""


def local_day(t: datetime | None, tz: str) -> date | None:
    return t.astimezone(ZoneInfo(tz)).date() if t else None


REJECTED = "rejected"
ARCHIVE = "archive"  # a verdict resting on captures read from web archives
UNRECOGNISED = ""  # the department of a rejected row whose service was not recognised


def views(report: AuditReport) -> dict[str, View]:
    """The audit as tables: periods, reports (every submitted row, the rejected included), updates and
    departments. Times are datetimes and days are dates (each output writes them its way), closed-set values
    are Codes, change ids are tuples."""
    cat, tz = report.catalogue, report.tz
    periods_: list[tuple[object, ...]] = []
    reports: list[tuple[object, ...]] = []
    updates: list[tuple[object, ...]] = []
    by_id = {s.id: s for s in cat.services}
    for a in report.audits:
        s = a.service
        for p in a.periods:
            periods_.append((s.id, s.department_id, Code(s.regulation.value), p.period.label, p.period.start,
                             p.period.end, Code(p.verdict.value), round(p.coverage, 3), p.updates, p.date_only,
                             p.reports, tuple(local_day(d, tz) for d in p.declared),
                             Code(ARCHIVE) if p.archived else ""))
        for r in a.reports:
            e = r.report
            note = department_note(e.department_text, s, cat)
            reports.append((s.id, s.department_id, e.id, e.source, e.service_text, e.department_text,
                            Code(note) if note else "", e.submitted_at, local_day(e.reported_for, tz), e.what, e.who,
                            e.link, Code(r.verdict.value), "", r.matched, round(r.coverage, 3),
                            Code(ARCHIVE) if r.archived else ""))
        unreported = {u.id for u in a.unreported}
        for u in a.updates:
            label = "" if not u.is_real or not in_range(u, a) else UNREPORTED if u.id in unreported else "reported"
            updates.append((s.id, u.id, u.url, Code(u.change_class), Code("yes" if u.is_real else "no"),
                            u.window_start, u.detected_at, Code(label) if label else "", u.added, u.removed, u.edited,
                            u.evidence))
    for x in report.rejected:
        svc = by_id.get(x.service_id or "")
        note = department_note(x.department_text, svc, cat) if svc else ""
        reports.append((x.service_id or "", svc.department_id if svc else UNRECOGNISED, "", x.source, x.service_text,
                        x.department_text, Code(note) if note else "", x.submitted_at, local_day(x.reported_for, tz),
                        x.what, "", x.link, Code(REJECTED), x.reasons, (), None, ""))
    summary = department_summary(report.audits)
    for x in report.rejected:
        svc = by_id.get(x.service_id or "")
        dept = summary.setdefault(svc.department_id if svc else UNRECOGNISED, {})
        dept["reports_rejected"] = dept.get("reports_rejected", 0) + 1
    departments = [(dept, cat.department_name(dept) if dept else Code("unrecognised"), c.get("services", 0),
                    c.get("periods_compliant", 0), c.get("periods_missed", 0), c.get("periods_unknown", 0),
                    c.get("reports_confirmed", 0), c.get("reports_date_only", 0), c.get("reports_unconfirmed", 0),
                    c.get("reports_unverifiable", 0), c.get("reports_rejected", 0), c.get(UNREPORTED, 0))
                   for dept, c in sorted(summary.items(), key=lambda kv: (not kv[0], kv[0]))]
    return {
        "periods": View("periods", ("service", "department", "regulation", "period", "from", "to", "verdict",
                                    "coverage", "updates", "date_only", "reports", "declared", "evidence_from"),
                         periods_),
        "reports": View("reports", ("service", "department", "report", "source", "typed_name", "filed_by",
                                    "filed_note", "submitted", "reported_for", "what", "who", "link", "verdict",
                                    "reason", "matched", "coverage", "evidence_from"), reports),
        "updates": View("updates", ("service", "change", "page", "class", "real", "window_start", "detected_at",
                                    "reported", "added", "removed", "edited", "evidence_ref"), updates),
        "departments": View("departments", ("department", "department_name", "services", "compliant", "missed",
                                            "unknown", "confirmed", "date_only", "unconfirmed", "unverifiable",
                                            "rejected", "unreported"), departments),
    }


def about(report: AuditReport) -> View:
    """What was audited, when, from which history: the first sheet of a workbook, the head of every output."""
    rows: list[tuple[object, ...]] = [(Code(k), v) for k, v in (
        ("audit_from", report.start), ("audit_to", report.end), ("timezone", report.tz),
        ("generated", report.generated), ("version", report.version),
        ("filter_services", ", ".join(report.services)), ("filter_departments", ", ".join(report.departments)),
        ("catalogue", report.catalogue.source), ("services", len(report.audits)),
        ("rejected", len(report.rejected)))]
    rows += [(Code("chain_head"), f"{h.name}: {h.seq} {h.hash}") for h in report.heads]
    return View("about", ("field", "value"), rows)


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
