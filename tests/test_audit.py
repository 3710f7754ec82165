"""The audit: a constructed history with the exact expected verdicts, a property that verdicts partition
every report and every period, the CLI's formats, and the hash chain of the history."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.audit import Options, PeriodVerdict, ReportVerdict, reconcile
from monitor.domain import ChangeEvent, PageConfig, Regulation, ReportEntry, ServiceConfig

KYIV = ZoneInfo("Europe/Kyiv")


def k(*args: int) -> datetime:
    return datetime(*args, tzinfo=KYIV)  # type: ignore[misc]


def service(regulation: Regulation = Regulation.WEEKLY, monitored: bool = True, working_days: bool = False):  # type: ignore[no-untyped-def]
    page = PageConfig(service_id="portal", position=1, url="https://city.example/uk", interval_s=3600)
    pages = (page,) if monitored else ()
    return ServiceConfig(id="portal", name="SMART-ПОРТАЛ", department="IT", department_id="it-sector",
                         regulation=regulation, pages=pages, working_days=working_days)


def hourly(start: datetime, end: datetime, gaps: list[tuple[datetime, datetime]] = ()) -> list[datetime]:  # type: ignore[assignment]
    out, t = [], start
    while t < end:
        if not any(a <= t < b for a, b in gaps):
            out.append(t)
        t += timedelta(hours=1)
    return out


def update(i: int, at: datetime, cls: str = "content", hours: int = 1) -> ChangeEvent:
    return ChangeEvent(id=i, url="https://city.example/uk", change_class=cls, is_real=cls in ("content", "documents"),
                       window_start=at - timedelta(hours=hours), detected_at=at)


def report(i: int, day: datetime) -> ReportEntry:
    return ReportEntry(id=i, service_id="portal", submitted_at=day + timedelta(hours=20), reported_for=day,
                       what=f"звіт {i}")


def test_a_constructed_month_gives_exactly_the_expected_verdicts() -> None:
    # November 2026, weekly regulation; the monitor was down 16-23 November (week 47)
    start, end, now = k(2026, 11, 2), k(2026, 11, 30), k(2026, 12, 1)
    checks = hourly(start - timedelta(days=1), end, gaps=[(k(2026, 11, 16), k(2026, 11, 23))])
    updates = [update(1, k(2026, 11, 4, 10)),  # week 45: a real update
               update(2, k(2026, 11, 11, 10), "date_only"),  # week 46: only a date bump
               update(3, k(2026, 11, 25, 10))]  # week 48: a real update nobody reported
    reports = [report(1, k(2026, 11, 4)),  # confirmed by update 1
               report(2, k(2026, 11, 11)),  # only the date bump: date_only
               report(3, k(2026, 11, 13)),  # nothing changed around the 13th: unconfirmed
               report(4, k(2026, 11, 19))]  # the monitor was down: unverifiable
    audit = reconcile(service(), start=start, end=end, now=now, updates=updates, reports=reports, successes=checks,
                      interval_s=3600)
    assert [(p.period.label, p.verdict) for p in audit.periods] == [
        ("2026-W45", PeriodVerdict.COMPLIANT), ("2026-W46", PeriodVerdict.MISSED),
        ("2026-W47", PeriodVerdict.UNKNOWN), ("2026-W48", PeriodVerdict.COMPLIANT)]
    assert [(r.report.id, r.verdict) for r in audit.reports] == [
        (1, ReportVerdict.CONFIRMED), (2, ReportVerdict.DATE_ONLY), (3, ReportVerdict.UNCONFIRMED),
        (4, ReportVerdict.UNVERIFIABLE)]
    assert audit.reports[0].matched == (1,)
    assert [u.id for u in audit.unreported] == [3]
    assert audit.periods[2].coverage < 0.01  # half an hour around the checks at either end of the outage
    counts = audit.counts()
    assert counts["periods_missed"] == 1 and counts["unreported"] == 1 and counts["reports_confirmed"] == 1


def test_as_needed_is_never_missed_and_days_off_are_not_required() -> None:
    start, end = k(2026, 11, 2), k(2026, 11, 9)
    checks = hourly(start, end)
    as_needed = reconcile(service(Regulation.AS_NEEDED), start=start, end=end, now=end, updates=[], reports=[],
                          successes=checks, interval_s=3600)
    assert {p.verdict for p in as_needed.periods} == {PeriodVerdict.COMPLIANT}
    daily = reconcile(service(Regulation.DAILY, working_days=True), start=start, end=end, now=end, updates=[],
                      reports=[], successes=checks, interval_s=3600)
    verdicts = [p.verdict for p in daily.periods]  # Mon..Fri missed, Sat and Sun not required
    assert verdicts == [PeriodVerdict.MISSED] * 5 + [PeriodVerdict.COMPLIANT] * 2


def test_a_period_still_going_is_not_missed_yet() -> None:
    """Mid-week, a weekly service without an update this week has not missed it: the week is unknown until it
    ends (the public page's strip shows the current period so)."""
    start, now = k(2026, 11, 2), k(2026, 11, 11, 12)  # Monday of one week to Wednesday noon of the next
    weekly = reconcile(service(Regulation.WEEKLY), start=start, end=k(2026, 11, 16), now=now, updates=[],
                       reports=[], successes=hourly(start, now), interval_s=3600)
    assert [p.verdict for p in weekly.periods] == [PeriodVerdict.MISSED, PeriodVerdict.UNKNOWN]


def test_an_unmonitored_service_cannot_be_verified() -> None:
    start, end = k(2026, 11, 2), k(2026, 11, 9)
    audit = reconcile(service(monitored=False), start=start, end=end, now=end, updates=[],
                      reports=[report(1, k(2026, 11, 3))], successes=[], interval_s=3600)
    assert [p.verdict for p in audit.periods] == [PeriodVerdict.UNKNOWN]
    assert audit.reports[0].verdict is ReportVerdict.UNVERIFIABLE and not audit.monitored


def test_a_report_is_confirmed_by_an_update_dated_on_its_day_not_a_day_later() -> None:
    """The checks date an update between the last check that did not see it and the first that did; a report
    is confirmed when that window meets the day it names. Friday's update does not confirm a Saturday report
    (it did, with a fixed ±1 day, while Saturday itself was judged missed); a window across midnight meets both
    days; an explicit tolerance widens the day."""
    start, end = k(2026, 11, 2), k(2026, 11, 30)
    checks = hourly(start, end)
    friday = [update(1, k(2026, 11, 6, 11))]  # seen at 11:00 on Friday, not at 10:00
    on_friday = reconcile(service(), start=start, end=end, now=end, updates=friday,
                          reports=[report(1, k(2026, 11, 6)), report(2, k(2026, 11, 7))], successes=checks,
                          interval_s=3600)
    assert [r.verdict for r in on_friday.reports] == [ReportVerdict.CONFIRMED, ReportVerdict.UNCONFIRMED]
    midnight = [update(1, k(2026, 11, 7, 0, 30))]  # between 23:30 on Friday and 00:30 on Saturday
    around = reconcile(service(), start=start, end=end, now=end, updates=midnight,
                       reports=[report(1, k(2026, 11, 6)), report(2, k(2026, 11, 7))], successes=checks,
                       interval_s=3600)
    assert [r.verdict for r in around.reports] == [ReportVerdict.CONFIRMED, ReportVerdict.CONFIRMED]
    lenient = reconcile(service(), start=start, end=end, now=end, updates=friday, reports=[report(2, k(2026, 11, 7))],
                        successes=checks, interval_s=3600, opts=Options(tolerance=timedelta(days=1)))
    assert lenient.reports[0].verdict is ReportVerdict.CONFIRMED


def test_a_change_first_seen_after_an_outage_makes_no_unwatched_day_compliant() -> None:
    """Daily regulation; no check from Tuesday to Thursday; a change is first seen on Friday morning. It happened
    between Monday's last check and Friday's first: the three unwatched days stay unknown, Friday (watched, and
    where it was seen) is compliant; a report for Wednesday cannot be confirmed by it, one for Friday is."""
    start, end = k(2026, 11, 2), k(2026, 11, 7)
    checks = hourly(start, end, gaps=[(k(2026, 11, 3), k(2026, 11, 6))])
    late = [ChangeEvent(id=1, url="https://city.example/uk", change_class="content", is_real=True,
                        window_start=k(2026, 11, 2, 23), detected_at=k(2026, 11, 6))]
    audit = reconcile(service(Regulation.DAILY), start=start, end=end, now=end, updates=late,
                      reports=[report(1, k(2026, 11, 4)), report(2, k(2026, 11, 6))], successes=checks,
                      interval_s=3600)
    assert [p.verdict for p in audit.periods] == [PeriodVerdict.MISSED, PeriodVerdict.UNKNOWN, PeriodVerdict.UNKNOWN,
                                                  PeriodVerdict.UNKNOWN, PeriodVerdict.COMPLIANT]
    assert [r.verdict for r in audit.reports] == [ReportVerdict.UNVERIFIABLE, ReportVerdict.CONFIRMED]
    assert audit.reports[0].coverage == 0


def test_a_period_across_the_range_edge_is_judged_whole_and_alike_from_both_sides() -> None:
    """ISO week 2026-W49 runs Monday 30 November to Sunday 6 December. Audited as November or as December, it
    is judged on all its days, so both audits give it the same verdict (an update on Thursday 3 December makes
    it compliant in the November audit too)."""
    checks = hourly(k(2026, 10, 20), k(2026, 12, 20))
    ups = [update(1, k(2026, 12, 3, 10))]
    nov = reconcile(service(), start=k(2026, 11, 1), end=k(2026, 12, 1), now=k(2026, 12, 20), updates=ups,
                    reports=[], successes=checks, interval_s=3600)
    dec = reconcile(service(), start=k(2026, 12, 1), end=k(2027, 1, 1), now=k(2026, 12, 20), updates=ups,
                    reports=[], successes=checks, interval_s=3600)
    (nov_w49,) = [p for p in nov.periods if p.period.label == "2026-W49"]
    (dec_w49,) = [p for p in dec.periods if p.period.label == "2026-W49"]
    assert nov_w49.verdict is dec_w49.verdict is PeriodVerdict.COMPLIANT
    assert (nov_w49.period.start, nov_w49.period.end) == (k(2026, 11, 30), k(2026, 12, 7))
    assert nov_w49.updates == dec_w49.updates == (1,)
    assert nov_w49.coverage == dec_w49.coverage == 1.0
    assert not nov.unreported and [u.id for u in dec.unreported] == [1]  # the update belongs to December's range


def test_a_report_for_a_day_not_yet_come_is_unverifiable_not_unconfirmed() -> None:
    start, end = k(2026, 11, 2), k(2026, 11, 9)
    audit = reconcile(service(), start=start, end=end, now=end, updates=[], reports=[report(1, k(2030, 1, 7))],
                      successes=hourly(start, end), interval_s=3600)
    assert audit.reports[0].verdict is ReportVerdict.UNVERIFIABLE and audit.reports[0].coverage == 0


BASE = datetime(2026, 10, 1, tzinfo=UTC)


@settings(max_examples=60, deadline=None)
@given(
    regulation=st.sampled_from(list(Regulation)),
    days=st.integers(min_value=1, max_value=120),
    update_at=st.lists(st.integers(min_value=1, max_value=120 * 24), max_size=12, unique=True),
    report_days=st.lists(st.integers(min_value=0, max_value=119), max_size=12),
    gaps=st.lists(st.tuples(st.integers(0, 120 * 24), st.integers(1, 400)), max_size=4),
)
def test_verdicts_partition_every_report_and_every_period(regulation: Regulation, days: int, update_at: list[int],
                                                           report_days: list[int],
                                                           gaps: list[tuple[int, int]]) -> None:
    start, end = BASE, BASE + timedelta(days=days)
    gap_spans = [(BASE + timedelta(hours=a), BASE + timedelta(hours=a + n)) for a, n in gaps]
    checks = hourly(start, end, gap_spans)
    # an update is found by a check and dated after the check before it, as the monitor dates it (after a gap
    # in the checks, its window spans the gap)
    found = sorted({i % len(checks) for i in update_at if len(checks) > 1} - {0})
    updates = [ChangeEvent(id=n, url="https://city.example/uk", change_class="content" if n % 3 else "date_only",
                           is_real=bool(n % 3), window_start=checks[i - 1], detected_at=checks[i])
               for n, i in enumerate(found, start=1)]
    reports = [report(i, BASE + timedelta(days=d)) for i, d in enumerate(report_days, start=1) if d < days]
    audit = reconcile(service(regulation), start=start, end=end, now=end, updates=updates, reports=reports,
                      successes=checks, interval_s=3600)
    # every report has exactly one verdict, every moment of the range exactly one period with one verdict
    assert sorted(r.report.id for r in audit.reports) == sorted(r.id for r in reports)
    assert all(isinstance(r.verdict, ReportVerdict) for r in audit.reports)
    spans = [(max(p.period.start, start), min(p.period.end, end)) for p in audit.periods]
    assert spans[0][0] == start and spans[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    counts = audit.counts()
    assert sum(v for key, v in counts.items() if key.startswith("periods_")) == len(audit.periods)
    assert sum(v for key, v in counts.items() if key.startswith("reports_")) == len(reports)
    # a real update is either matched by a report or unreported, never both
    windows_ok = {u.id for u in audit.unreported}
    confirmed = {i for r in audit.reports if r.verdict is ReportVerdict.CONFIRMED for i in r.matched}
    assert not windows_ok & confirmed
    # a period an update is attributed to is compliant; a period or a claimed day the monitor did not watch at
    # all is never compliant nor confirmed, whatever was seen after it
    for p in audit.periods:
        if p.updates:
            assert p.verdict is PeriodVerdict.COMPLIANT
        if p.coverage == 0:
            assert p.verdict is PeriodVerdict.UNKNOWN
    for r in audit.reports:
        if r.coverage == 0:
            assert r.verdict is ReportVerdict.UNVERIFIABLE


# --- through the store and the command line ---------------------------------------------------------


def _history(tmp_path: Path, hostile: str = "") -> Path:
    """Six weeks of a weekly service checked every 6 hours, with two real updates and one bump."""
    from monitor.runner import Runner
    from monitor.store import Store
    from monitor.store.engine import make_engine, upgrade
    from tests.conftest import catalogue_toml
    from tests.helpers import Clock, StubFetcher, catalogue, html

    db = tmp_path / "m.db"
    targets = tmp_path / "targets.toml"
    targets.write_text(catalogue_toml(["https://city.example/uk"], db=f"sqlite:///{db}"), encoding="utf-8")
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    store = Store(engine)
    clock = Clock(datetime(2026, 10, 5, 6, tzinfo=UTC))
    fetcher = StubFetcher(clock)
    runner = Runner(catalogue(targets.read_text(encoding="utf-8")), store, fetcher, clock=clock)
    runner.prepare()

    async def run() -> None:
        writer = asyncio.create_task(runner.recorder.run())
        pages = {0: html("Засідання виконкому", extra="<p>Оновлено: 05.10.2026</p>"),
                 20: html("Засідання виконкому", "Ремонт доріг", extra="<p>Оновлено: 10.10.2026</p>"),
                 60: html("Засідання виконкому", "Ремонт доріг", extra="<p>Оновлено: 20.10.2026</p>"),
                 120: html("Засідання виконкому", "Ремонт доріг", f"Нова новина {hostile}",
                           extra="<p>Оновлено: 05.11.2026</p>")}
        for step in range(4 * 42):
            if step in pages:
                fetcher.pages["https://city.example/uk"] = (200, pages[step])
            await runner.round(list(runner.targets.values()))
            clock.advance(hours=6)
        await runner.recorder.drain(10)
        writer.cancel()

    asyncio.run(run())
    store.close()
    return targets


def test_cli_audit_in_every_format(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from monitor.cli import main

    targets = _history(tmp_path)
    reports = tmp_path / "reports.csv"
    reports.write_text("Timestamp,Назва веб-сервісу,Дата оновлення,Що оновлено\n"
                       "10/10/2026 12:00:00,SMART-ПОРТАЛ,10/10/2026,Ремонт доріг\n"
                       "10/20/2026 12:00:00,smart-портал,10/20/2026,Новини\n"
                       "10/21/2026 12:00:00,Портал іншого міста,10/21/2026,Новини\n", encoding="utf-8")
    cli = CliRunner()
    imported = cli.invoke(main, ["-t", str(targets), "reports", "import", str(reports), "--skip-bad"])
    assert imported.exit_code == 0, imported.output
    args = ["-t", str(targets), "audit", "--from", "2026-10-05", "--to", "2026-11-16"]
    out = cli.invoke(main, [*args, "--format", "json"])
    assert out.exit_code in (0, 1), out.output
    doc = json.loads(out.stdout)
    verdicts = {(r["reported_for"], r["verdict"]) for r in doc["reports"]}
    assert verdicts == {("2026-10-10", "confirmed"), ("2026-10-20", "date_only"), ("2026-10-21", "rejected")}
    (rejected,) = [r for r in doc["reports"] if r["verdict"] == "rejected"]
    assert rejected["reason"] == [{"code": "unknown_service", "name": "Портал іншого міста", "text": (
        "unknown service 'Портал іншого міста' (add it to the service's aliases in targets.toml if it is one)")}]
    assert rejected["source"] == "reports.csv:4" and rejected["typed_name"] == "Портал іншого міста"
    confirmed = next(r for r in doc["reports"] if r["verdict"] == "confirmed")
    assert confirmed["source"] == "reports.csv:2" and confirmed["typed_name"] == "SMART-ПОРТАЛ"
    assert confirmed["submitted"] == "2026-10-10T12:00:00+03:00" and isinstance(confirmed["matched"], list)
    updates = [u for u in doc["updates"] if u["real"] == "yes"]
    assert len(updates) == 2 and any(u["reported"] == "unreported" for u in updates)
    assert all(len(u["evidence_ref"]) == 64 for u in updates)  # the evidence's address, to check it by
    assert confirmed["matched"][0] in {u["change"] for u in updates}
    assert {p["verdict"] for p in doc["periods"]} <= {"compliant", "missed", "unknown"}
    assert doc["chain_heads"] and doc["version"] and doc["filters"] == {"services": [], "departments": []}
    (dept,) = [d for d in doc["departments"] if d["department"]]
    assert dept["department"] == "it-sector" and dept["unreported"] == 1
    assert dept["department_name"].startswith("Сектор інформаційних")
    assert [d["rejected"] for d in doc["departments"] if not d["department"]] == [1]  # its service unrecognised
    csv_out = cli.invoke(main, [*args, "--format", "csv", "--view", "reports", "--lang", "en"])
    assert csv_out.stdout.splitlines()[0].startswith("Service,Department,Report,Form row,Service (as typed)")
    assert ",rejected,unknown service" in csv_out.stdout and "2026-10-10 12:00" in csv_out.stdout
    uk_csv = cli.invoke(main, [*args, "--format", "csv", "--view", "updates"]).stdout
    assert "зміст" in uk_csv and "без звіту" in uk_csv and ",content," not in uk_csv  # Ukrainian through
    table = cli.invoke(main, [*args, "--view", "departments"])
    assert "Відділи" in table.stdout and "it-sector" in table.stdout
    assert cli.invoke(main, [*args, "--format", "xlsx"]).exit_code == 2
    assert cli.invoke(main, ["-t", str(targets), "audit", "--from", "2026-11-01", "--to", "2026-10-01"]).exit_code == 2


def test_the_workbook_has_real_dates_filters_and_says_what_was_audited(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from openpyxl import load_workbook

    from monitor.cli import main

    targets = _history(tmp_path)
    cli = CliRunner()
    xlsx = tmp_path / "audit.xlsx"
    args = ["-t", str(targets), "audit", "--from", "2026-10-05", "--to", "2026-11-16", "--department", "it-sector"]
    assert cli.invoke(main, [*args, "--format", "xlsx", "-o", str(xlsx)]).exit_code in (0, 1)
    wb = load_workbook(xlsx)
    assert wb.sheetnames == ["Про аудит", "Періоди", "Звіти", "Оновлення", "Відділи"]
    about = {row[0]: row[1] for row in wb["Про аудит"].iter_rows(min_row=2, values_only=True)}
    assert about["Перший день"] == datetime(2026, 10, 5) and about["День після останнього"] == datetime(2026, 11, 16)
    assert about["Відбір: відділи"] == "it-sector" and about["Версія монітора"]
    assert isinstance(about["Сформовано"], datetime)
    heads = [v for k, v in wb["Про аудит"].iter_rows(min_row=2, values_only=True) if k == "Голова ланцюжка"]
    assert any(h.startswith("changes: 3 ") and len(h.split()[-1]) == 64 for h in heads)
    for ws in wb.worksheets:
        assert ws.freeze_panes == "A2" and ws.auto_filter.ref == ws.dimensions, ws.title
    periods = wb["Періоди"]
    header = [c.value for c in periods[1]]
    first = [c for c in periods[2]]
    start = first[header.index("Початок")]
    assert isinstance(start.value, datetime) and start.number_format == "yyyy-mm-dd hh:mm"
    coverage = first[header.index("Покриття")]
    assert isinstance(coverage.value, float) and coverage.number_format == "0.0%"
    assert first[header.index("Висновок")].value in {"дотримано", "пропущено", "невідомо"}
    assert first[header.index("Регламент")].value == "щотижня"
    updates = wb["Оновлення"]
    header = [c.value for c in updates[1]]
    row = [c.value for c in updates[2]]
    assert isinstance(row[header.index("Виявлено о")], datetime)
    assert row[header.index("Реальне оновлення")] in {"так", "ні"}


def test_verify_proves_the_history_and_finds_the_first_alteration(tmp_path: Path) -> None:
    import sqlite3

    from click.testing import CliRunner

    from monitor.cli import main

    targets = _history(tmp_path)
    cli = CliRunner()
    ok = cli.invoke(main, ["-t", str(targets), "verify"])
    assert ok.exit_code == 0 and "intact" in ok.stdout and "changes: 3 record(s)" in ok.stdout
    db = tmp_path / "m.db"
    with sqlite3.connect(db) as conn:
        conn.execute("update changes set change_class = 'content' where change_class = 'date_only'")
    bad = cli.invoke(main, ["-t", str(targets), "verify"])
    assert bad.exit_code == 1 and "ALTERED: changes record 2: its content was altered" in bad.stderr
    with sqlite3.connect(db) as conn:
        conn.execute("update changes set change_class = 'date_only' where id = 2")
        conn.execute("delete from changes where id = (select max(id) from changes)")
    cut = cli.invoke(main, ["-t", str(targets), "verify"])
    assert cut.exit_code == 1 and "newest records were removed" in cut.stderr
