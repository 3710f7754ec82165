"""Bounded growth: pruning thins old check rows and raw captures but keeps every change, its evidence,
the hash chains, the audit's coverage of the pruned days and the running monitor's state."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from monitor.domain import ChangeClass, Outcome
from monitor.store import models as m
from tests.conftest import catalogue_toml
from tests.helpers import Clock, StubFetcher, html
from tests.test_store import URL, _check_all, _runner, open_store

START = datetime(2026, 10, 1, 0, 0, tzinfo=UTC)


async def _ten_days(db_url: str):  # type: ignore[no-untyped-def]
    """Ten days of checks every 3 hours: a real change on day 3, a two-day outage on days 5-6, a change on day 8."""
    store = open_store(db_url)
    clock = Clock(START)
    fetcher = StubFetcher(clock)
    runner = _runner(store, fetcher, clock)
    for step in range(10 * 8):
        day = step // 8
        fetcher.pages[URL] = (200, html("Засідання виконкому", *(["Ремонт доріг"] if day >= 3 else []),
                                        *(["Новий конкурс"] if day >= 8 else [])))
        if day in (5, 6):
            fetcher.failures[URL] = Outcome.TIMEOUT
        else:
            fetcher.failures.clear()
        await _check_all(runner)
        clock.advance(hours=3)
    return store, clock, runner, fetcher


async def test_prune_keeps_changes_evidence_chain_and_coverage(db_url: str) -> None:
    store, clock, *_ = await _ten_days(db_url)
    changes_before = [(c.id, c.change_class) for c in store.history.changes(service_id="portal")]
    evidence_before = {c: store.history.change(c).evidence for c, _ in changes_before}  # type: ignore[union-attr]
    assert [cls for _, cls in changes_before] == ["content", "content"]
    coverage_before = store.audit.success_times("portal", START, clock.now())
    assert len(coverage_before) == 80 - 16 and store.maintenance.row_counts()["checks"] == 80
    blobs_before = store.maintenance.row_counts()["blobs"]

    cut = START + timedelta(days=7)
    report = store.maintenance.prune(checks_before=cut, raw_before=cut, slow_s=10.0)
    assert report["checks_summarised"] == 56 and report["days_summarised"] == 7
    # the first version, last seen on day 3; the second was seen on day 7, the third is current
    assert report["raw_captures_dropped"] == 1 and report["blobs_deleted"] == 1
    counts = store.maintenance.row_counts()
    assert counts["checks"] == 24 and counts["blobs"] == blobs_before - 1

    # every change and its evidence survive, and so do the hash chains
    assert [(c.id, c.change_class) for c in store.history.changes(service_id="portal")] == changes_before
    assert {c: store.history.change(c).evidence for c, _ in changes_before} == evidence_before  # type: ignore[union-attr]
    found = store.maintenance.verify()
    assert found.intact and found.counts["changes"] == 2
    # the audit still sees the pruned days as covered: same successes, same days; the outage stays a gap
    coverage_after = store.audit.success_times("portal", START, clock.now())
    assert len(coverage_after) == len(coverage_before)
    assert {t.date() for t in coverage_after} == {t.date() for t in coverage_before}
    assert not any(START + timedelta(days=5) <= t < START + timedelta(days=7) for t in coverage_after)
    with store.engine.connect() as conn:
        days = {d.day: d for d in conn.execute(select(m.CoverageDay)).all()}
    assert days["2026-10-06"].successes == 0 and days["2026-10-06"].failures == "timeout:8"
    assert days["2026-10-02"].checks == 8 and days["2026-10-02"].successes == 8
    # every version keeps its extracted content (diffs between any two versions still work)
    with store.engine.connect() as conn:
        versions = conn.execute(select(m.Version.page_id, m.Version.key_hash, m.Version.raw_sha)).all()
    assert len(versions) == 3 and sum(v.raw_sha is not None for v in versions) == 2
    assert all(store.checks.version_content(v.page_id, v.key_hash) for v in versions)

    # idempotent: a second prune with the same cut-off finds nothing more
    again = store.maintenance.prune(checks_before=cut, raw_before=cut)
    assert again == {"checks_summarised": 0, "days_summarised": 0, "raw_captures_dropped": 0, "blobs_deleted": 0,
                     "link_checks_deleted": 0}
    store.close()


async def test_pruning_part_of_a_day_adds_a_summary_and_the_monitor_goes_on(db_url: str) -> None:
    """A day pruned in two runs has two summaries (records are never edited: they are chained) that readers add
    up; the chains stay intact from their new base, which the retention log records."""
    store, clock, _r, fetcher = await _ten_days(db_url)
    store.maintenance.prune(checks_before=START + timedelta(days=1, hours=12), raw_before=START)
    store.maintenance.prune(checks_before=START + timedelta(days=2), raw_before=START)
    with store.engine.connect() as conn:
        parts = conn.execute(select(m.CoverageDay).where(m.CoverageDay.day == "2026-10-02")).all()
    assert len(parts) == 2 and sum(p.checks for p in parts) == 8 and sum(p.successes for p in parts) == 8
    assert min(p.first_success_at for p in parts) == START + timedelta(days=1)
    assert max(p.last_success_at for p in parts) == START + timedelta(days=1, hours=21)
    (day,) = [d for d in store.faults.coverage_rows(START, START + timedelta(days=3)) if d.day == "2026-10-02"]
    assert day.checks == 8 and day.successes == 8  # one day, added up
    found = store.maintenance.verify()
    assert found.intact, found.breaks
    checks_head = next(h for h in found.heads if h.name == "checks")
    assert checks_head.base_seq == 16 and found.counts["retention_log"] == 2
    # a restarted monitor after pruning: state, flap memory and detection are intact
    runner = _runner(store, fetcher, clock)
    fetcher.pages[URL] = (200, html("Засідання виконкому", "Ремонт доріг", "Новий конкурс", "Бюджет 2027"))
    (record,) = await _check_all(runner)
    assert record.verdict is not None and record.verdict.change_class is ChangeClass.CONTENT
    fetcher.pages[URL] = (200, html("Засідання виконкому"))  # back to the first version: a flap, not a change
    clock.advance(hours=3)
    (flap,) = await _check_all(runner)
    assert flap.verdict is not None and flap.verdict.flapped and not flap.is_real and not flap.new_version
    assert len(store.history.changes(service_id="portal")) == 3
    store.close()


async def test_monitor_db_prune_command(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    store, _clock, _r, _f = await _ten_days(f"sqlite:///{db}")
    store.close()
    targets = tmp_path / "targets.toml"
    targets.write_text(catalogue_toml([URL], db=f"sqlite:///{db}"), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "monitor", "-t", str(targets), "db", "prune", "--keep-checks", "7d",
                           "--keep-raw", "7d", "--vacuum"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "checks summarised: 80" in done.stdout and "raw captures dropped: 2" in done.stdout
    assert "size " in done.stdout
    bad = subprocess.run([sys.executable, "-m", "monitor", "-t", str(targets), "db", "prune", "--keep-checks", "soon"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "soon" in bad.stderr and "Traceback" not in bad.stderr
    verify = subprocess.run([sys.executable, "-m", "monitor", "-t", str(targets), "verify"], capture_output=True,
                            text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr
