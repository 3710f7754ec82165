"""The running monitor through its public API, in virtual time: a quarter of 2021 for six services of the
order, served by a real HTTP server on 127.0.0.1 whose pages change on a script (real edits, a bare date
bump, noise on every fetch, an outage), checked by the runner on the schedule's grid with learning and the
maintenance jobs attached, in seconds. What it detects, grades, audits and keeps is exactly the script."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from pathlib import Path

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
from tests.quarter import END, FORMS, REGULATIONS, START, catalogue_text, kyiv, script
from tests.siteserver import Site


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
