"""The running monitor through its public API, in virtual time: a quarter of 2021 for six services of the
order, served by a real HTTP server on 127.0.0.1 whose pages change on a script (real edits, a bare date
bump, noise on every fetch, an outage), checked by the runner on the schedule's grid with learning and the
maintenance jobs attached, in seconds. What it detects, grades, audits and keeps is exactly the script."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from monitor.audit import PeriodVerdict
from monitor.auditing import run_audit
from monitor.cli import main
from monitor.clock import VirtualClock
from monitor.domain import Grade
from monitor.faults import run_faults
from monitor.fetch import Fetcher
from monitor.learning import Learner
from monitor.maintenance import Maintenance
from monitor.runner import Runner
from monitor.schedule import Periodic, replay
from monitor.status import service_statuses
from tests.helpers import catalogue, open_store
from tests.siteserver import Request, Site, respond

KYIV = ZoneInfo("Europe/Kyiv")


def kyiv(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2021, month, day, hour, tzinfo=KYIV).astimezone(UTC)


START, END = kyiv(1, 1), kyiv(4, 1)
DAYS = [datetime.combine(date(2021, 1, 1) + timedelta(days=d), dt_time(), KYIV).astimezone(UTC)
        for d in range(90)]  # the local midnights of the quarter (the clocks go forward on 28 March)


@dataclass
class Scripted:
    """A page whose content follows the virtual clock: edits appear at their time, the declared date follows
    the last edit or bump, a clock, a view counter and a CSRF token change on every fetch."""

    clock: VirtualClock
    title: str
    edits: list[datetime]
    bumps: list[datetime] = field(default_factory=list)
    down: tuple[datetime, datetime] | None = None
    kind: str = "html"
    fetches: itertools.count[int] = field(default_factory=itertools.count)

    def status_and_body(self) -> tuple[int, bytes, str]:
        now = self.clock.now()
        if self.down and self.down[0] <= now < self.down[1]:
            return 503, b"<h1>Service Unavailable</h1>", "text/html; charset=utf-8"
        done = [t for t in self.edits if t <= now]
        stamp = max([START, *done, *(b for b in self.bumps if b <= now)]).astimezone(KYIV)
        n = next(self.fetches)
        if self.kind == "json":
            sessions = [{"number": i + 1, "date": f"{t.astimezone(KYIV):%Y-%m-%d}", "votes": 20 + i}
                        for i, t in enumerate(done)]
            doc = {"sessions": sessions, "generated_at": now.isoformat(), "request": n}
            return 200, json.dumps(doc, ensure_ascii=False).encode(), "application/json"
        if self.kind == "feed":
            items = "".join(f"<item><title>Петиція №{i + 1}: про благоустрій двору {i + 1}</title>"
                            f"<link>https://petition.example/{i + 1}</link>"
                            f"<pubDate>{t:%a, %d %b %Y %H:%M:%S} +0000</pubDate></item>" for i, t in enumerate(done))
            return 200, (f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>{self.title}"
                         f"</title><link>https://petition.example/</link>{items}</channel></rss>").encode(), \
                "application/rss+xml"
        items = "".join(f"<li>Рішення №{i + 1} від {t.astimezone(KYIV):%d.%m.%Y}: про роботу служби у "
                        f"{'ранковий' if i % 2 else 'вечірній'} час, пункт {i + 1}</li>" for i, t in enumerate(done))
        body = (f"<!doctype html><html lang='uk'><head><meta charset='utf-8'><title>{self.title}</title></head>"
                f"<body><header><a href='/'>Покровська міська рада</a><div class='clock'>Зараз "
                f"{now.astimezone(KYIV):%d.%m.%Y %H:%M}</div></header>"
                f"<main><h1>{self.title}</h1><p>Оновлено: {stamp:%d.%m.%Y}</p><ul>{items}</ul>"
                f"<p class='views'>Переглядів: {1000 + n}</p>"
                f"<form><input type='hidden' name='csrf' value='{n * 7919:x}'></form></main>"
                "<footer>© 2021 Покровська міська рада</footer></body></html>")
        return 200, body.encode(), "text/html; charset=utf-8"

    def handler(self) -> Callable[[Request, asyncio.StreamWriter], Awaitable[None]]:
        async def handle(req: Request, w: asyncio.StreamWriter) -> None:
            status, body, content_type = self.status_and_body()
            await respond(w, status, body, {"Content-Type": content_type})

        return handle


def script(clock: VirtualClock) -> dict[str, Scripted]:
    mondays = [d + timedelta(hours=12) for d in DAYS if d.astimezone(KYIV).weekday() == 0]
    return {
        # daily: an edit every morning but three days in January
        "contact-center": Scripted(clock, "Контакт центр", [d + timedelta(hours=10) for d in DAYS
                                                            if not kyiv(1, 15) <= d <= kyiv(1, 17)]),
        # weekly: every Monday but the week of 8 February
        "open-data": Scripted(clock, "Опен дата", [m for m in mondays if m.astimezone(KYIV).date().isoformat()
                                                   != "2021-02-08"]),
        # monthly: two edits, then silence; in March only the date is bumped
        "property-registry": Scripted(clock, "Реєстр комунального майна", [kyiv(1, 20, 11), kyiv(2, 10, 15)],
                                      bumps=[kyiv(3, 15, 9)]),
        # quarterly: one edit
        "invest-portal": Scripted(clock, "Інвест-портал", [kyiv(2, 1, 9)]),
        # as needed, a feed: two petitions, and three days down
        "e-petitions": Scripted(clock, "Електронні петиції", [kyiv(1, 5, 14), kyiv(3, 3, 16)],
                                down=(kyiv(2, 10), kyiv(2, 13)), kind="feed"),
        # monthly, a JSON API whose own timestamp and request counter are ignored
        "roll-call-voting": Scripted(clock, "Поіменне голосування", [kyiv(1, 12, 17), kyiv(2, 11, 17),
                                                                      kyiv(3, 11, 17)], kind="json"),
    }


REGULATIONS = {"contact-center": "daily", "open-data": "weekly", "property-registry": "monthly",
               "invest-portal": "quarterly", "e-petitions": "as_needed", "roll-call-voting": "monthly"}
# the names and departments the order gives them (as in targets.toml), which the form's answers are matched to
NAMES = {"contact-center": "Контакт центр", "open-data": "Опен дата",
         "property-registry": "Реєстр комунального майна та землі", "invest-portal": "Інвест-портал",
         "e-petitions": "Електронні петиції", "roll-call-voting": "Поіменне голосування"}
DEPARTMENTS = {"contact-center-dept": "Відділ “Контактний центр”",
               "records-appeals": "Відділ з питань діловодства, контролю та роботи зі зверненнями громадян",
               "finance-assets": "Департамент фінансово-економічної політики та управління активами",
               "economic-analysis": "Відділ економічного аналізу та прогнозу",
               "deputies-support": "Відділ забезпечення депутатської діяльності",
               "it-sector": "Сектор інформаційних технологій та автоматизованих систем"}
OWNERS = {"contact-center": "contact-center-dept", "open-data": "records-appeals",
          "property-registry": "finance-assets", "invest-portal": "economic-analysis",
          "e-petitions": "records-appeals", "roll-call-voting": "deputies-support"}
FORMS = Path(__file__).parent / "fixtures" / "forms"


def catalogue_text(site: Site, db: str) -> str:
    out = [f'[settings]\ndatabase_url = "{db}"\nuser_agent = "quarter (+mailto:it@example.org)"\n'
           'timeout = "10s"\nretries = 0\nlink_check_max = 5\n\n[reports]\nsince = "2021-01-01"\n\n']
    out += [f'[departments.{did}]\nname = "{name}"\n\n' for did, name in DEPARTMENTS.items()]
    for sid, regulation in REGULATIONS.items():
        out.append(f'[[services]]\nid = "{sid}"\nname = "{NAMES[sid]}"\ndepartment = "{DEPARTMENTS[OWNERS[sid]]}"\n'
                   f'regulation = "{regulation}"\n'
                   f'  [[services.pages]]\n  url = "{site.url("/" + sid)}"\n  allow_private = true\n')
        if sid == "e-petitions":
            out.append('  kind = "feed"\n')
        if sid == "roll-call-voting":
            out.append('  kind = "json"\n  ignore = ["generated_at", "request"]\n')
    return "".join(out)


@pytest.mark.timeout(300)
async def test_a_simulated_quarter_gives_exactly_the_scripted_history(tmp_path: object) -> None:
    clock = VirtualClock(START)
    pages = script(clock)
    with Site() as site:
        for sid, scripted in pages.items():
            site.routes[f"/{sid}"] = scripted.handler()
        cat = catalogue(catalogue_text(site, f"sqlite:///{tmp_path}/quarter.db"))
        store = open_store(cat.settings.database_url)
        async with Fetcher(cat.settings, clock=clock) as fetcher:
            runner = Runner(cat, store, fetcher, clock=clock, worker="quarter")
            targets = runner.prepare()
            learner = Learner(runner).attach()
            maintenance = Maintenance(runner)
            writer = asyncio.create_task(runner.recorder.run())
            started = time.perf_counter()
            checks = await replay(lambda t, at: runner.check(t, scheduled_at=at), targets, runner.states, clock,
                                  END, [Periodic("maintenance", maintenance.daily, 86_400, 3600),
                                        Periodic("aggregates", maintenance.aggregates, 12 * 3600)])
            await learner.settle()
            assert await runner.recorder.drain(60)
            writer.cancel()
            seconds = time.perf_counter() - started
    print(f"a quarter: {checks} checks in {seconds:.1f} s")
    assert checks > 4000 and runner.health.checks_done == checks
    assert clock.now() == END

    # every scripted edit is one real change, found at the first check after it; the date bump is date_only;
    # the noise on every fetch (a clock, a counter, a token, an API timestamp) is never a change
    for sid, scripted in pages.items():
        changes = sorted(store.history.changes(service_id=sid), key=lambda c: c.detected_at)
        real = [c for c in changes if c.is_real]
        assert len(real) == len(scripted.edits), (sid, len(real), len(scripted.edits))
        interval = next(t.interval_s for t in targets if t.service.id == sid)
        for edit, change in zip(scripted.edits, real, strict=True):
            assert change.window_start is not None and change.window_start < edit <= change.detected_at, sid
            outage = scripted.down is not None and scripted.down[0] <= edit <= scripted.down[1]
            assert outage or change.detected_at - edit <= timedelta(seconds=interval + 60), (sid, edit, change)
            assert change.change_class == "content"
        assert [c.change_class for c in changes if not c.is_real] == (["date_only"] if scripted.bumps else [])
    assert store.maintenance.verify().intact

    # where each service stands at the end of the quarter
    grades = {s.id: s.grade for s in service_statuses(cat, store.metrics.service_aggregates(), END)}
    assert grades == {"contact-center": Grade.FRESH, "open-data": Grade.FRESH, "invest-portal": Grade.FRESH,
                      "property-registry": Grade.OVERDUE, "e-petitions": Grade.FRESH, "roll-call-voting": Grade.FRESH}

    # the departments' self-reports, exported three times (Ukrainian, English and Excel's cp1251 with `;`),
    # imported through the command an auditor runs: each response once, every bad row kept with its reason
    targets = Path(f"{tmp_path}/targets.toml")
    targets.write_text(catalogue_text(site, f"sqlite:///{tmp_path}/quarter.db"), encoding="utf-8")
    cli = CliRunner()
    imported = [cli.invoke(main, ["-t", str(targets), "reports", "import", str(FORMS / name), "--skip-bad"])
                for name in ("quarter-uk.csv", "quarter-en.csv", "quarter-excel-cp1251.csv")]
    assert [r.exit_code for r in imported] == [0, 0, 0], [r.output for r in imported]
    assert "10 new" in imported[0].output and all("0 new, 10 already imported" in r.output for r in imported[1:])
    assert len(store.audit.reports(since=START, until=END)) == 10

    # the audit of the quarter: every report's verdict is the script's
    audits = {a.service.id: a for a in run_audit(cat, store.audit, start=START, end=END, now=END)}
    missed = {p.period.label for p in audits["contact-center"].periods if p.verdict is PeriodVerdict.MISSED}
    assert missed == {"2021-01-15", "2021-01-16", "2021-01-17"}
    weeks = {p.period.label: p.verdict for p in audits["open-data"].periods}
    assert weeks["2021-W06"] is PeriodVerdict.MISSED
    assert all(weeks[f"2021-W{w:02d}"] is PeriodVerdict.COMPLIANT for w in range(1, 14) if w != 6)
    out = cli.invoke(main, ["-t", str(targets), "audit", "--from", "2021-01-01", "--to", "2021-04-01",
                            "--format", "json"])
    assert out.exit_code in (0, 1), out.output
    doc = json.loads(out.stdout)
    verdicts = {(r["service"], r["reported_for"]): r["verdict"] for r in doc["reports"] if r["verdict"] != "rejected"}
    assert verdicts == {
        ("open-data", "2021-01-04"): "confirmed", ("open-data", "2021-01-11"): "confirmed",
        ("open-data", "2021-02-08"): "unconfirmed",  # a false report: nothing changed that week
        ("property-registry", "2021-01-20"): "confirmed",
        ("property-registry", "2021-03-15"): "date_only",  # only the date on the page moved
        ("e-petitions", "2021-02-11"): "unverifiable",  # the service was down from 10 to 13 February
        ("e-petitions", "2021-03-03"): "confirmed",
        ("contact-center", "2021-01-16"): "unconfirmed",  # the three days in January without an edit
        ("invest-portal", "2021-02-01"): "confirmed", ("roll-call-voting", "2021-01-12"): "confirmed"}
    notes = {r["service"]: r["filed_note"] for r in doc["reports"] if r["filed_note"]}
    assert notes == {"invest-portal": "other_department", "roll-call-voting": "unknown_department"}
    rejected = sorted((r["source"], r["reason"][0]["code"]) for r in doc["reports"] if r["verdict"] == "rejected")
    assert rejected == [("quarter-uk.csv:11", "submitted_early"), ("quarter-uk.csv:14", "future"),
                        ("quarter-uk.csv:3", "unknown_service")]
    confirmed_by = {r["reported_for"]: r["matched"] for r in doc["reports"] if r["service"] == "open-data"}
    assert all(confirmed_by[d] for d in ("2021-01-04", "2021-01-11")) and not confirmed_by["2021-02-08"]
    months = {p.period.label: p.verdict for p in audits["property-registry"].periods}
    assert months == {"2021-01": PeriodVerdict.COMPLIANT, "2021-02": PeriodVerdict.COMPLIANT,
                      "2021-03": PeriodVerdict.MISSED}  # a bumped date is not an update

    # the outage is in the faults list; the aggregates the scrapes read were kept by the maintenance job
    faults = run_faults(cat, store.faults, start=START, end=END)["e-petitions"]
    (down,) = [f for f in faults.faults if f.kind == "downtime"]
    assert down.start >= kyiv(2, 10) and down.end is not None and kyiv(2, 13) <= down.end <= kyiv(2, 13, 7)
    kept = store.metrics.aggregates("self_reports")
    assert set(kept) == set(REGULATIONS) and all(a.computed_at > END - timedelta(hours=12) for a in kept.values())
    store.close()
