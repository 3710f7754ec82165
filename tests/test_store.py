"""The store's conformance suite: every interface of monitor.ports, on SQLite and on PostgreSQL. Schema by
migrations; catalogue, checks (in time order and late), noise, reports, health, the read models, retention,
kept aggregates and the hash chains (with many writers at once)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor import core
from monitor.domain import (
    ChangeClass,
    CheckRecord,
    Outcome,
    PageState,
    Quality,
    Reason,
    RejectedRow,
    ReportRow,
    Target,
    Verdict,
)
from monitor.errors import SchemaOutdated
from monitor.ports import (
    AuditReader,
    CatalogueStore,
    CheckStore,
    FaultsReader,
    HealthStore,
    HistoryReader,
    MaintenanceStore,
    MetricsReader,
    NoiseStore,
    ReportStore,
    Stores,
)
from monitor.regulation import default_interval_s
from monitor.runner import Runner
from monitor.store import Store
from monitor.store.engine import current_revision, ensure_current, head_revision, make_engine, upgrade
from tests.conftest import catalogue_toml
from tests.helpers import Clock, StubFetcher, capture, catalogue, html, open_store

ROOT = Path(__file__).resolve().parents[1]
URL = "https://portal.example/uk"


def test_migrations_build_the_schema_and_match_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    assert current_revision(engine) == head_revision(engine)
    env = {"MONITOR_DATABASE_URL": db_url, "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "alembic", "check"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr
    engine.dispose()


def test_outdated_schema_is_refused_unless_upgrading(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(SchemaOutdated, match="monitor db upgrade"):
        ensure_current(engine, auto_upgrade=False)
    ensure_current(engine, auto_upgrade=True)
    assert current_revision(engine) == head_revision(engine)


def test_the_sql_store_implements_every_interface_with_typed_rows(db_url: str) -> None:
    store = open_store(db_url)
    stores: Stores = store  # type-checked: the SQL store is every interface at once
    parts: list[object] = [stores.catalogue, stores.checks, stores.noise, stores.reports, stores.health,
                           stores.metrics, stores.audit, stores.history, stores.faults, stores.maintenance]
    kinds: list[type] = [CatalogueStore, CheckStore, NoiseStore, ReportStore, HealthStore, MetricsReader,
                         AuditReader, HistoryReader, FaultsReader, MaintenanceStore]
    for part, protocol in zip(parts, kinds, strict=True):
        names = [n for n in vars(protocol) if not n.startswith("_")]
        assert names and all(callable(getattr(part, n)) for n in names), protocol.__name__
    store.catalogue.sync_catalogue(catalogue(catalogue_toml([URL])), Clock().now())
    rows: list[object] = [*store.catalogue.services(), *store.catalogue.pages(), *store.metrics.page_metrics(),
                          *store.metrics.service_aggregates().values()]
    assert rows and all(dataclasses.is_dataclass(r) for r in rows)
    store.close()


def test_catalogue_sync_retires_never_deletes(db_url: str) -> None:
    store = open_store(db_url)
    clock = Clock()
    two = catalogue(catalogue_toml([URL, URL + "/news"]))
    ids = store.catalogue.sync_catalogue(two, clock.now())
    assert set(ids) == {"portal#1", "portal#2"}
    one = catalogue(catalogue_toml([URL]))
    ids2 = store.catalogue.sync_catalogue(one, clock.advance(hours=1))
    assert ids2 == {"portal#1": ids["portal#1"]}
    all_pages = store.catalogue.pages(include_retired=True)
    assert len(all_pages) == 2 and len(store.catalogue.pages()) == 1
    other = catalogue(catalogue_toml([URL], service_id="portal-two"))
    store.catalogue.sync_catalogue(other, clock.advance(hours=1))
    assert [s.id for s in store.catalogue.services()] == ["portal-two"]
    assert {s.id for s in store.catalogue.services(include_retired=True)} == {"portal", "portal-two"}
    store.catalogue.sync_catalogue(two, clock.advance(hours=1))  # back again: un-retired, same ids
    assert store.catalogue.sync_catalogue(two, clock.now())["portal#2"] == ids["portal#2"]
    store.close()


def _runner(store: Store, fetcher: StubFetcher, clock: Clock, regulation: str = "weekly") -> Runner:
    cat = catalogue(catalogue_toml([URL], regulation=regulation))
    runner = Runner(cat, store, fetcher, clock=clock, worker="test")
    runner.prepare()
    return runner


async def _check_all(runner: Runner) -> list[CheckRecord]:
    writer = asyncio.create_task(runner.recorder.run())
    records = await runner.round(list(runner.targets.values()))
    assert await runner.recorder.drain(10)
    writer.cancel()
    return records


def _tallies(store: Store, service: str = "portal") -> dict[tuple[str, str], int]:
    return {(t.family, t.key): t.count for t in store.metrics.tallies_by_service() if t.service_id == service}


async def test_history_of_a_page(db_url: str) -> None:
    store = open_store(db_url)
    clock = Clock()
    fetcher = StubFetcher(clock)
    runner = _runner(store, fetcher, clock)
    fetcher.pages[URL] = (200, html("Засідання виконкому", "Ремонт доріг"))
    (first,) = await _check_all(runner)
    assert first.outcome is Outcome.OK and first.verdict is not None
    assert first.verdict.change_class is ChangeClass.NONE and first.new_version and not first.is_change

    clock.advance(hours=3)  # nothing changed
    (same,) = await _check_all(runner)
    assert same.verdict is not None and same.verdict.change_class is ChangeClass.NONE and not same.new_version

    clock.advance(hours=3)  # a new item
    fetcher.pages[URL] = (200, html("Засідання виконкому", "Ремонт доріг", "Новий конкурс"))
    (real,) = await _check_all(runner)
    assert real.verdict is not None and real.verdict.change_class is ChangeClass.CONTENT and real.is_real
    assert real.is_change and real.previous_key == first.version_key

    clock.advance(hours=3)  # the server is down
    fetcher.failures[URL] = Outcome.TIMEOUT
    (down,) = await _check_all(runner)
    assert down.outcome is Outcome.TIMEOUT

    changes = store.history.changes(service_id="portal")
    assert len(changes) == 1
    change = store.history.change(changes[0].id)
    assert change is not None and change.is_real and change.change_class == "content"
    assert change.added == 1 and change.evidence is not None and "+Новий конкурс" in change.evidence["diff"]
    assert change.window_start is not None
    assert change.detected_at - change.window_start == timedelta(hours=3)  # between the two good checks
    counts = store.maintenance.row_counts()
    assert counts["checks"] == 4 and counts["versions"] == 2 and counts["changes"] == 1
    tallies = _tallies(store)
    assert tallies[("outcome", "ok")] == 3 and tallies[("outcome", "timeout")] == 1
    assert tallies[("change", "content")] == 1
    (row,) = store.catalogue.pages()
    assert row.last_outcome == "timeout" and row.consecutive_failures == 1
    assert row.last_real_change_at is not None and row.first_success_at is not None

    # a restart: the state comes back from the database
    fetcher.failures.clear()
    runner2 = _runner(store, fetcher, clock)
    state = runner2.states[row.page_id]
    assert len(state.recent) == 2 and state.last_check_at == clock.now()
    clock.advance(hours=3)
    (again,) = await _check_all(runner2)
    assert again.verdict is not None and again.verdict.change_class is ChangeClass.NONE
    store.close()


async def _live_then_late(db_url: str, january: bytes, march: bytes,
                          february: bytes) -> tuple[Store, Runner, CheckRecord, list[CheckRecord]]:
    """Live checks in January and March, then a capture of February arriving late, placed by the runner."""
    store = open_store(db_url)
    clock = Clock(datetime(2021, 1, 10, 9, tzinfo=UTC))
    fetcher = StubFetcher(clock)
    runner = _runner(store, fetcher, clock)
    (target,) = runner.targets.values()
    live = []
    for when, body in ((datetime(2021, 1, 10, 9, tzinfo=UTC), january), (datetime(2021, 3, 10, 9, tzinfo=UTC), march)):
        clock.set(when)
        fetcher.pages[URL] = (200, body)
        live += await _check_all(runner)
    writer = asyncio.create_task(runner.recorder.run())
    late = await runner.record_late(target, capture(february, url=URL, at=FEBRUARY))
    assert await runner.recorder.drain(10)
    writer.cancel()
    return store, runner, late, live


FEBRUARY = datetime(2021, 2, 10, 9, tzinfo=UTC)
A, B, C = (html("Засідання виконкому", *extra) for extra in ((), ("Конкурс на посаду",), ("Бюджет 2021",)))


async def test_a_late_capture_is_judged_against_its_predecessor_in_time(db_url: str) -> None:
    """January A, March A (no change seen live), then February's capture of B: a change A -> B in February,
    judged against January (not against the page's newest state); B -> A in March is a flap back, as it would
    have been live; the page's current state is left alone."""
    store, runner, late, live = await _live_then_late(db_url, A, A, B)
    assert late.is_change and late.previous_key == live[0].version_key and late.revision is None
    assert late.window_start == datetime(2021, 1, 10, 9, tzinfo=UTC)
    (change,) = store.history.changes(service_id="portal")
    assert change.detected_at == FEBRUARY and change.change_class == "content" and change.is_real
    page = store.catalogue.pages()[0]
    assert page.last_check_at == datetime(2021, 3, 10, 9, tzinfo=UTC) and page.last_outcome == "ok"
    assert page.last_real_change_at == FEBRUARY and page.first_success_at == datetime(2021, 1, 10, 9, tzinfo=UTC)
    now = store.checks.page_states([page.page_id], recent=runner.keep)[page.page_id]
    assert now.current is not None and now.current.key_hash == live[1].version_key  # still A
    assert store.maintenance.verify().intact
    store.close()


async def test_a_late_capture_corrects_the_change_recorded_after_it(db_url: str) -> None:
    """January A, March B (A -> B recorded in March), then February's capture of B: the update happened by
    February. Recorded once, in February; March's record is superseded by a correction (never edited), so the
    audit counts one update, and the page's last real update moves back to February."""
    store, _runner, late, live = await _live_then_late(db_url, A, B, B)
    march = live[1]
    assert march.is_change and late.is_change and late.revision is not None
    assert late.revision.supersedes is not None and not late.revision.verdict.is_change
    (change,) = store.history.changes(service_id="portal")
    assert change.detected_at == FEBRUARY and change.is_real
    superseded = store.history.change(late.revision.supersedes)
    assert superseded is not None and superseded.detected_at == datetime(2021, 3, 10, 9, tzinfo=UTC)
    assert superseded.superseded_by is not None
    quarter = store.audit.change_events("portal", datetime(2021, 1, 1, tzinfo=UTC), datetime(2021, 4, 1, tzinfo=UTC))
    assert [(e.detected_at, e.is_real) for e in quarter] == [(FEBRUARY, True)]
    assert store.catalogue.pages()[0].last_real_change_at == FEBRUARY
    assert store.maintenance.verify().intact  # the correction is a chained record of its own
    store.close()


async def test_a_late_capture_between_two_versions_splits_the_change(db_url: str) -> None:
    """January A, March C (A -> C recorded), then February's capture of B: A -> B in February, and March's
    change becomes B -> C, a correction that supersedes A -> C."""
    store, _runner, late, _live = await _live_then_late(db_url, A, C, B)
    assert late.revision is not None and late.revision.verdict.is_change and late.revision.is_real
    changes = sorted(store.history.changes(service_id="portal"), key=lambda c: c.detected_at)
    assert [(c.detected_at, c.change_class) for c in changes] == [
        (FEBRUARY, "content"), (datetime(2021, 3, 10, 9, tzinfo=UTC), "content")]
    march = store.history.change(changes[1].id)
    assert march is not None and march.window_start == FEBRUARY and march.evidence is not None
    assert "+Бюджет 2021" in march.evidence["diff"] and "-Конкурс на посаду" in march.evidence["diff"]
    assert store.catalogue.pages()[0].last_real_change_at == datetime(2021, 3, 10, 9, tzinfo=UTC)
    assert store.maintenance.verify().intact
    store.close()


async def test_page_summaries_of_a_mixed_batch(db_url: str) -> None:
    """One batch holds pages whose summaries differ in shape (a success, a first failure, a further failure):
    each page gets its own values, failures add up across batches, the first success is kept."""
    store = open_store(db_url)
    clock = Clock()
    fetcher = StubFetcher(clock)
    urls = [URL, URL + "/news", URL + "/docs"]
    runner = Runner(catalogue(catalogue_toml(urls)), store, fetcher, clock=clock, worker="test")
    runner.prepare()
    for url in urls:
        fetcher.pages[url] = (200, html("Засідання виконкому"))
    await _check_all(runner)
    first_success = {row.url: row.first_success_at for row in store.catalogue.pages()}
    for round_ in range(1, 4):
        clock.advance(hours=1)
        fetcher.failures = {URL + "/news": Outcome.TIMEOUT}  # fails every round
        if round_ >= 2:
            fetcher.failures[URL + "/docs"] = Outcome.CONNECT  # fails from the second round on
        await _check_all(runner)
    rows = {row.url: row for row in store.catalogue.pages()}
    assert rows[URL].consecutive_failures == 0 and rows[URL].last_outcome == "ok"
    assert rows[URL + "/news"].consecutive_failures == 3 and rows[URL + "/news"].last_outcome == "timeout"
    assert rows[URL + "/docs"].consecutive_failures == 2 and rows[URL + "/docs"].last_outcome == "connect"
    assert rows[URL].last_success_at == clock.now() and rows[URL + "/docs"].last_success_at < clock.now()
    assert {url: row.first_success_at for url, row in rows.items()} == first_success
    store.close()


async def test_flapping_is_not_a_new_change(db_url: str) -> None:
    store = open_store(db_url)
    clock = Clock()
    fetcher = StubFetcher(clock)
    runner = _runner(store, fetcher, clock)
    a = html("Перша новина", "Друга новина")
    b = html("Перша новина", "Друга новина", extra="<p>Банер: акція тижня</p>")
    for body in (a, b, a, b, a):
        fetcher.pages[URL] = (200, body)
        await _check_all(runner)
        clock.advance(hours=1)
    changes = store.history.changes(service_id="portal")
    assert len(changes) == 1  # A->B once; B->A->B->A are flaps back to known versions
    assert _tallies(store)[("change", "flap")] == 3
    store.close()


async def test_identical_content_is_stored_once(db_url: str) -> None:
    store = open_store(db_url)
    clock = Clock()
    fetcher = StubFetcher(clock)
    runner = _runner(store, fetcher, clock)
    fetcher.pages[URL] = (200, html("Одна новина"))
    for _ in range(5):
        await _check_all(runner)
        clock.advance(hours=1)
    counts = store.maintenance.row_counts()
    assert counts["versions"] == 1
    assert counts["blobs"] == 2  # the extracted content and the raw capture, once each
    store.close()


def test_heartbeat_and_workers(db_url: str) -> None:
    store = open_store(db_url)
    clock = Clock()
    runner = _runner(store, StubFetcher(clock), clock)
    runner.heartbeat()
    clock.advance(seconds=30)
    runner.heartbeat(stopped=True)
    (w,) = store.health.workers()
    assert w.id == "test" and w.heartbeat_at == clock.now() and w.stopped_at == clock.now()
    assert store.metrics.workers() == [w] and store.health.ping()
    store.close()


def test_targets_use_the_regulation_interval(db_url: str) -> None:
    store = open_store(db_url)
    clock = Clock()
    runner = _runner(store, StubFetcher(clock), clock, regulation="daily")
    (target,) = runner.targets.values()
    assert isinstance(target, Target) and target.interval_s == 3600
    from monitor.domain import Regulation

    assert default_interval_s(Regulation.QUARTERLY) == 12 * 3600
    store.close()


def test_noise_rules_are_kept_with_their_evidence_and_never_learned_again_once_dropped(db_url: str) -> None:
    store = open_store(db_url)
    now = Clock().now()
    (pid,) = store.catalogue.sync_catalogue(catalogue(catalogue_toml([URL])), now).values()
    assert store.noise.add_noise_rules(pid, [("main/p", "calibration: 1 -> 2")], source="calibration",
                                       now=now) == ["main/p"]
    assert store.noise.noise_paths([pid]) == {pid: ["main/p"]}
    (rule,) = store.noise.noise_rules("portal")
    assert rule.path == "main/p" and rule.evidence == "calibration: 1 -> 2" and rule.page == 1
    assert store.noise.set_noise_status(rule.id, "dropped", now) and store.noise.noise_paths([pid]) == {}
    assert store.noise.add_noise_rules(pid, [("main/p", "again")], source="history", now=now) == []
    assert not store.noise.set_noise_status(rule.id + 100, "confirmed", now)
    assert store.noise.calibrated([pid]) == {pid: None}
    store.noise.mark_calibrated(pid, now)
    assert store.noise.calibrated([pid]) == {pid: now}
    store.close()


def test_reports_are_imported_once_and_read_by_range(db_url: str) -> None:
    store = open_store(db_url)
    day = datetime(2026, 11, 2, 9, tzinfo=UTC)
    store.catalogue.sync_catalogue(catalogue(catalogue_toml([URL])), day)
    rows = [ReportRow(identity=f"r{i}", row_hash=f"r{i}", service_id="portal", service_text="SMART-ПОРТАЛ",
                      submitted_at=day + timedelta(days=i, hours=1), reported_for=day + timedelta(days=i),
                      what=f"новина {i}") for i in range(3)]
    assert store.reports.add_reports(rows, day) == 3
    assert store.reports.add_reports(rows, day) == 0  # importing again adds nothing
    got = store.reports.reports(service_id="portal", since=day + timedelta(days=1))
    assert [r.what for r in got] == ["новина 1", "новина 2"]
    assert store.audit.reports(service_id="portal") == store.reports.reports(service_id="portal")
    assert store.reports.last_reports() == {"portal": day + timedelta(days=2, hours=1)}
    assert store.metrics.last_reports() == store.reports.last_reports()
    store.close()


def test_kept_aggregates_are_replaced_whole(db_url: str) -> None:
    store = open_store(db_url)
    now = Clock().now()
    store.maintenance.put_aggregates("self_reports", {"portal": {"confirmed": 2}, "other": {"unreported": 1}}, now)
    store.maintenance.put_aggregates("self_reports", {"portal": {"confirmed": 3}}, now + timedelta(minutes=5))
    kept = store.metrics.aggregates("self_reports")
    assert list(kept) == ["portal"] and kept["portal"].counts == {"confirmed": 3}
    assert kept["portal"].computed_at == now + timedelta(minutes=5) and store.metrics.aggregates("datasets") == {}
    store.close()


async def test_the_read_models_over_one_history(db_url: str) -> None:
    """The audit, faults and history read models see the same checks and changes."""
    store = open_store(db_url)
    clock = Clock()
    fetcher = StubFetcher(clock)
    runner = _runner(store, fetcher, clock)
    start = clock.now()
    fetcher.pages[URL] = (200, html("Засідання", extra="<p>Оновлено 02.11.2026</p>"))
    await _check_all(runner)
    clock.advance(hours=3)
    fetcher.failures[URL] = Outcome.CONNECT
    await _check_all(runner)
    clock.advance(hours=3)
    fetcher.failures.clear()
    fetcher.pages[URL] = (200, html("Засідання", "Новий пункт", extra="<p>Оновлено 02.11.2026</p>"))
    await _check_all(runner)
    end = clock.advance(hours=1)
    (event,) = store.audit.change_events("portal", start, end)
    assert event.change_class == "content" and event.is_real
    assert store.audit.success_times("portal", start, end) == [start, start + timedelta(hours=6)]
    checks = list(store.faults.check_rows(start, end))
    assert [c.outcome for c in checks] == ["ok", "connect", "ok"] and checks[1].service_id == "portal"
    assert store.faults.coverage_rows(start, end) == [] and store.faults.link_checks(start, end) == []
    assert store.faults.pages() == store.catalogue.pages()
    (row,) = store.history.changes(service_id="portal")
    assert row.id == event.id and store.history.change(row.id) is not None
    (ref,) = store.history.current_contents("portal")
    assert ref.url == URL and store.history.blob(ref.sha) is not None
    store.close()


def _chained_record(page_id: int, at: datetime, n: int, previous: str | None) -> CheckRecord:
    """The record of a capture whose content is "Новина n", judged a content change from `previous`."""
    captured = capture(html(f"Новина {n}"), url=URL, at=at)
    reading = core.read(captured)
    return CheckRecord(page_id=page_id, fetch=captured, outcome=Outcome.OK, quality=Quality.OK,
                       fingerprints=reading.fingerprints, version_key=reading.key, new_version=True,
                       content_blob=b"{}", previous_key=previous, full_fetch=True, is_real=previous is not None,
                       window_start=at - timedelta(hours=1),
                       verdict=Verdict(change_class=ChangeClass.CONTENT if previous else ChangeClass.NONE))


def test_the_hash_chains_are_right_with_many_writers(pg_url: str) -> None:
    """Eight writers at once on PostgreSQL, each appending versions and changes: records take their place in
    the chain under its lock, so `verify` finds one intact chain of every record (it used to report a false
    tamper when a later id was chained first); tampering is still found."""
    store = open_store(pg_url)
    start = datetime(2026, 11, 2, tzinfo=UTC)
    ids = store.catalogue.sync_catalogue(catalogue(catalogue_toml([f"{URL}/{i}" for i in range(8)])), start)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def writer(page_id: int) -> None:
        try:
            barrier.wait()
            previous = None
            for n in range(25):
                record = _chained_record(page_id, start + timedelta(hours=n), n, previous)
                store.checks.write([record])
                previous = record.version_key
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(pid,)) for pid in ids.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    found = store.maintenance.verify()
    assert found.intact, found.breaks
    assert (found.counts["versions"], found.counts["changes"], found.counts["checks"]) == (200, 192, 200)
    with store.engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("update changes set edited = edited + 1 where id = (select min(id) from changes)"))
    broken = store.maintenance.verify()
    assert not broken.intact and broken.breaks[0].table == "changes"
    assert broken.breaks[0].reason == "its content was altered"
    store.close()


def test_removing_or_reordering_a_chained_record_is_found(db_url: str) -> None:
    from sqlalchemy import text

    store = open_store(db_url)
    start = datetime(2026, 11, 2, tzinfo=UTC)
    (pid,) = store.catalogue.sync_catalogue(catalogue(catalogue_toml([URL])), start).values()
    previous = None
    for n in range(5):
        record = _chained_record(pid, start + timedelta(hours=n), n, previous)
        store.checks.write([record])
        previous = record.version_key
    assert store.maintenance.verify().intact and store.maintenance.verify().counts["changes"] == 4

    def swap(conn: object) -> None:
        for a, b in ((2, -1), (3, 2), (-1, 3)):
            conn.execute(text(f"update changes set chain_seq = {b} where chain_seq = {a}"))  # type: ignore[attr-defined]

    with store.engine.begin() as conn:  # two records swap places
        swap(conn)
    swapped = store.maintenance.verify()
    assert not swapped.intact and swapped.breaks[0].reason.startswith("does not follow the record before it")
    with store.engine.begin() as conn:  # back in place: intact again; then one removed from the middle
        swap(conn)
    assert store.maintenance.verify().intact
    with store.engine.begin() as conn:
        conn.execute(text("delete from changes where chain_seq = 2"))
    cut = store.maintenance.verify()
    assert not cut.intact and cut.breaks[0].table == "changes"
    assert cut.breaks[0].reason == "1 record(s) before it were removed"
    store.close()


EMPTY_SHA = hashlib.sha256(b"{}").hexdigest()


def test_migration_numbers_an_existing_chain_in_its_true_order(db_url: str) -> None:
    """A database written before chain positions existed — versions that checks and changes refer to, a chain
    two writers appended out of id order — upgrades in place and gets its positions by following the chain
    itself: it verifies intact after the upgrade."""
    from sqlalchemy import text

    from monitor.store.chain import record_hash

    engine = make_engine(db_url)
    upgrade(engine, "0003")
    day = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(text("insert into services (id, name, department, department_id, regulation, suspended, "
                          "responsible, contact, working_days, real_update_classes, created_at, updated_at) values "
                          "('portal', 'П', 'В', 'd', 'weekly', :no, '', '', :no, 'content', :t, :t)"),
                     {"no": False, "t": day})
        conn.execute(text("insert into pages (id, service_id, position, url, kind, name, interval_s, options, "
                          "created_at, consecutive_failures) values (1, 'portal', 1, 'u', 'html', '', 60, '{}', "
                          ":t, 0)"), {"t": day})
        conn.execute(text("insert into blobs values (:sha, 2, 'none', :data, :t)"),
                     {"sha": hashlib.sha256(b"{}").hexdigest(), "data": b"{}", "t": day})
        prev = ""
        for rid in (2, 1, 3):  # chained out of id order, as two writers did
            row = {"id": rid, "page_id": 1, "key_hash": f"k{rid}", "first_seen_at": day + timedelta(days=rid),
                   "content_sha": EMPTY_SHA, "fp_raw": "r", "fp_text": "t", "fp_main": "m", "fp_main_dated": "d",
                   "fp_main_masked": "x", "fp_links": "l", "fp_documents": "o", "declared_at": None}
            digest = record_hash(prev, "versions", row)
            conn.execute(text("insert into versions (id, page_id, key_hash, first_seen_at, last_seen_at, content_sha, "
                              "fp_raw, fp_text, fp_main, fp_main_dated, fp_main_masked, fp_links, fp_documents, "
                              "prev_hash, record_hash) values (:id, 1, :k, :t, :t, :sha, 'r', 't', 'm', 'd', 'x', 'l', "
                              "'o', :p, :h)"), {"id": rid, "k": f"k{rid}", "t": row["first_seen_at"], "p": prev,
                                                 "h": digest, "sha": row["content_sha"]})
            conn.execute(text("insert into checks (page_id, started_at, duration_s, outcome, bytes, content_type, "
                              "redirects, attempts, version_id, error, worker) values (1, :t, 0.1, 'ok', 10, '', 0, 1, "
                              ":v, '', 'w')"), {"t": row["first_seen_at"], "v": rid})
            prev = digest
        change = {"id": 1, "page_id": 1, "from_version_id": 2, "to_version_id": 1, "window_start": None,
                  "detected_at": day + timedelta(days=1), "change_class": "content", "is_real": True, "added": 1,
                  "removed": 0, "edited": 0, "evidence_sha": None}
        conn.execute(text("insert into changes (id, page_id, from_version_id, to_version_id, detected_at, "
                          "change_class, is_real, added, removed, edited, prev_hash, record_hash) values (1, 1, 2, 1, "
                          ":t, 'content', :yes, 1, 0, 0, '', :h)"),
                     {"t": change["detected_at"], "yes": True, "h": record_hash("", "changes", change)})
        conn.execute(text("insert into chain_heads values ('versions', 3, :h), ('changes', 1, :c)"),
                     {"h": prev, "c": record_hash("", "changes", change)})
    upgrade(engine)
    store = Store(engine)
    found = store.maintenance.verify()
    assert found.intact, found.breaks
    assert (found.counts["versions"], found.counts["changes"], found.counts["checks"]) == (3, 1, 3)
    assert store.maintenance.row_counts()["checks"] == 3  # the rows that refer to the versions are all there
    store.close()


def test_state_at_a_time_before_any_check_is_empty(db_url: str) -> None:
    store = open_store(db_url)
    (pid,) = store.catalogue.sync_catalogue(catalogue(catalogue_toml([URL])), Clock().now()).values()
    state = store.checks.state_at(pid, datetime(2020, 1, 1, tzinfo=UTC), recent=6)
    assert state == PageState(page_id=pid)
    store.close()


def test_aggregates_kept_by_several_processes_at_once(pg_url: str) -> None:
    """Every monitor and exporter keeps the aggregates: refreshes side by side neither collide nor deadlock."""
    store = open_store(pg_url)
    now = Clock().now()
    errors: list[BaseException] = []

    def refresh(n: int) -> None:
        try:
            for i in range(20):
                store.maintenance.put_aggregates("self_reports", {f"s{k}": {"confirmed": n * 100 + i}
                                                                  for k in range(30)}, now)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=refresh, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(store.metrics.aggregates("self_reports")) == 30
    store.close()


async def _audited_history(db_url: str) -> Store:
    """Three checks of a page with two real changes, and two self-reports."""
    store = open_store(db_url)
    clock = Clock()
    fetcher = StubFetcher(clock)
    runner = _runner(store, fetcher, clock)
    for body in (A, B, C):
        fetcher.pages[URL] = (200, body)
        await _check_all(runner)
        clock.advance(days=1)
    day = clock.now()
    store.reports.add_reports([ReportRow(identity=f"r{i}", row_hash=f"r{i}", service_id="portal",
                                         service_text="SMART-ПОРТАЛ", submitted_at=day,
                                         reported_for=day - timedelta(days=i), what=f"звіт {i}",
                                         department_text="Сектор ІТ" if i == 2 else "")
                               for i in (1, 2)], day)
    assert store.reports.add_rejected([RejectedRow(identity=f"x{n}", source=f"форма.csv:{n}", row=n,
                                                   reasons=(Reason.of("unknown_service", name=name),),
                                                   service_text=name, submitted_at=day, placed_at=day)
                                       for n, name in ((3, "КЦ"), (4, "Портал"))], day) == 2
    assert store.maintenance.verify().intact
    return store


@pytest.mark.parametrize(("sql", "table", "reason"), [
    ("update self_reports set reported_for = reported_for - interval '1 day' where what = 'звіт 1'",
     "self_reports", "its content was altered"),  # a self-report's date moved
    ("delete from self_reports where what = 'звіт 1'", "self_reports", "1 record(s) before it were removed"),
    ("update self_reports set department_text = 'Управління освіти' where what = 'звіт 2'", "self_reports",
     "its content was altered"),  # who filed it, changed
    ("update rejected_reports set reason = '[]' where row = 3", "rejected_reports", "its content was altered"),
    ("delete from rejected_reports where row = 3", "rejected_reports", "1 record(s) before it were removed"),
    ("update checks set outcome = 'timeout' where chain_seq = 2", "checks", "its content was altered"),
    ("delete from checks where chain_seq = 2", "checks", "1 record(s) before it were removed"),  # a day of checks
    ("delete from checks where chain_seq = 3", "checks", "the newest records were removed"),
    ("update changes set detected_at = detected_at + interval '7 day' where chain_seq = 1", "changes",
     "its content was altered"),
    ("update chain_heads set base_seq = 1, base_hash = (select record_hash from checks where chain_seq = 1) "
     "where name = 'checks'", "checks", "its start was moved without the retention log recording it"),
    ("update blobs set data = (select data from blobs b2 join changes c on c.evidence_sha = b2.sha256 "
     "where c.chain_seq = 2) where sha256 = (select evidence_sha from changes where chain_seq = 1)", "blobs",
     "is not the bytes its address names"),  # January's diff shown for March's change
], ids=["report-date-moved", "report-deleted", "report-department-changed", "rejection-erased",
        "rejected-row-deleted", "check-edited", "check-deleted", "newest-check-cut",
        "change-edited", "base-moved", "evidence-swapped"])
async def test_every_kind_of_record_is_protected(db_url: str, sql: str, table: str, reason: str) -> None:
    from sqlalchemy import text

    store = await _audited_history(db_url)
    if store.engine.dialect.name == "sqlite":
        sql = sql.replace("- interval '1 day'", "|| ''").replace("+ interval '7 day'", "|| ''")
        sql = sql.replace("reported_for || ''", "replace(reported_for, '2026-11', '2026-10')").replace(
            "detected_at || ''", "replace(detected_at, '2026-11', '2026-12')")
    with store.engine.begin() as conn:
        conn.execute(text(sql))
    found = store.maintenance.verify()
    assert not found.intact
    assert any(b.table == table and reason in b.reason for b in found.breaks), found.breaks
    store.close()


async def test_every_break_is_located_not_only_the_first(db_url: str) -> None:
    from sqlalchemy import text

    store = await _audited_history(db_url)
    with store.engine.begin() as conn:
        conn.execute(text("update checks set error = 'x' where chain_seq in (1, 3)"))
    broken = [b for b in store.maintenance.verify().breaks if b.table == "checks"]
    assert len(broken) == 2 and all(b.reason == "its content was altered" for b in broken)
    store.close()
