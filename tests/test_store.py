"""The store on SQLite and on PostgreSQL: schema by migrations, catalogue sync, checks, versions, changes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.domain import ChangeClass, Outcome, Target
from monitor.errors import SchemaOutdated
from monitor.pipeline import Checker
from monitor.regulation import default_interval_s
from monitor.runner import Runner
from monitor.store.engine import current_revision, ensure_current, head_revision, make_engine, upgrade
from monitor.store.repository import Store
from tests.conftest import catalogue_toml
from tests.helpers import Clock, StubFetcher, catalogue, html

ROOT = Path(__file__).resolve().parents[1]
URL = "https://portal.example/uk"


def open_store(url: str) -> Store:
    engine = make_engine(url)
    upgrade(engine)
    return Store(engine)


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


def test_catalogue_sync_retires_never_deletes(db_url: str) -> None:
    store = open_store(db_url)
    clock = Clock()
    two = catalogue(catalogue_toml([URL, URL + "/news"]))
    ids = store.sync_catalogue(two, clock())
    assert set(ids) == {"portal#1", "portal#2"}
    one = catalogue(catalogue_toml([URL]))
    ids2 = store.sync_catalogue(one, clock.advance(hours=1))
    assert ids2 == {"portal#1": ids["portal#1"]}
    all_pages = store.pages(include_retired=True)
    assert len(all_pages) == 2 and len(store.pages()) == 1
    other = catalogue(catalogue_toml([URL], service_id="portal-two"))
    store.sync_catalogue(other, clock.advance(hours=1))
    assert [s.id for s in store.services()] == ["portal-two"]
    assert {s.id for s in store.services(include_retired=True)} == {"portal", "portal-two"}
    store.sync_catalogue(two, clock.advance(hours=1))  # back again: un-retired, same ids
    assert store.sync_catalogue(two, clock())["portal#2"] == ids["portal#2"]
    store.close()


def _runner(store: Store, fetcher: StubFetcher, clock: Clock, regulation: str = "weekly") -> Runner:
    cat = catalogue(catalogue_toml([URL], regulation=regulation))
    runner = Runner(cat, store, fetcher, clock=clock, worker="test")
    runner.prepare()
    return runner


async def _check_all(runner: Runner) -> list:  # type: ignore[type-arg]
    writer = asyncio.create_task(runner.recorder.run())
    records = await runner.round(list(runner.targets.values()))
    assert await runner.recorder.drain(10)
    writer.cancel()
    return records


async def test_history_of_a_page(db_url: str) -> None:
    store = open_store(db_url)
    clock = Clock()
    fetcher = StubFetcher(clock)
    runner = _runner(store, fetcher, clock)
    fetcher.pages[URL] = (200, html("Засідання виконкому", "Ремонт доріг"))
    (first,) = await _check_all(runner)
    assert first.outcome is Outcome.OK and first.verdict.change_class is ChangeClass.NONE and first.new_version

    clock.advance(hours=3)  # nothing changed
    (same,) = await _check_all(runner)
    assert same.verdict.change_class is ChangeClass.NONE and not same.new_version

    clock.advance(hours=3)  # a new item
    fetcher.pages[URL] = (200, html("Засідання виконкому", "Ремонт доріг", "Новий конкурс"))
    (real,) = await _check_all(runner)
    assert real.verdict.change_class is ChangeClass.CONTENT and real.is_real

    clock.advance(hours=3)  # the server is down
    fetcher.failures[URL] = Outcome.TIMEOUT
    (down,) = await _check_all(runner)
    assert down.outcome is Outcome.TIMEOUT

    changes = store.changes(service_id="portal")
    assert len(changes) == 1
    change = store.change(changes[0].id)
    assert change is not None and change.is_real and change.change_class == "content"
    assert change.added == 1 and "+Новий конкурс" in change.evidence["diff"]
    assert change.window_start is not None
    assert change.detected_at - change.window_start == timedelta(hours=3)  # between the two good checks
    assert store.count("checks") == 4 and store.count("versions") == 2
    tallies = {(fam, key): n for _pid, fam, key, n in store.tallies()}
    assert tallies[("outcome", "ok")] == 3 and tallies[("outcome", "timeout")] == 1
    assert tallies[("change", "content")] == 1
    (row,) = store.pages()
    assert row.last_outcome == "timeout" and row.consecutive_failures == 1
    assert row.last_real_change_at is not None and row.first_success_at is not None

    # a restart: the state comes back from the database
    fetcher.failures.clear()
    runner2 = _runner(store, fetcher, clock)
    state = runner2.states[row.page_id]
    assert len(state.recent) == 2 and state.last_check_at == clock.now
    clock.advance(hours=3)
    (again,) = await _check_all(runner2)
    assert again.verdict.change_class is ChangeClass.NONE
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
    first_success = {row.url: row.first_success_at for row in store.pages()}
    for round_ in range(1, 4):
        clock.advance(hours=1)
        fetcher.failures = {URL + "/news": Outcome.TIMEOUT}  # fails every round
        if round_ >= 2:
            fetcher.failures[URL + "/docs"] = Outcome.CONNECT  # fails from the second round on
        await _check_all(runner)
    rows = {row.url: row for row in store.pages()}
    assert rows[URL].consecutive_failures == 0 and rows[URL].last_outcome == "ok"
    assert rows[URL + "/news"].consecutive_failures == 3 and rows[URL + "/news"].last_outcome == "timeout"
    assert rows[URL + "/docs"].consecutive_failures == 2 and rows[URL + "/docs"].last_outcome == "connect"
    assert rows[URL].last_success_at == clock.now and rows[URL + "/docs"].last_success_at < clock.now
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
    changes = store.changes(service_id="portal")
    assert len(changes) == 1  # A->B once; B->A->B->A are flaps back to known versions
    tallies = {(fam, key): n for _pid, fam, key, n in store.tallies()}
    assert tallies[("change", "flap")] == 3
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
    assert store.count("versions") == 1
    assert store.count("blobs") == 2  # the extracted content and the raw capture, once each
    store.close()


def test_heartbeat_and_workers(db_url: str) -> None:
    store = open_store(db_url)
    clock = Clock()
    runner = _runner(store, StubFetcher(clock), clock)
    runner.heartbeat()
    clock.advance(seconds=30)
    runner.heartbeat(stopped=True)
    (w,) = store.workers()
    assert w.id == "test" and w.heartbeat_at == clock.now and w.stopped_at == clock.now
    store.close()


def test_targets_use_the_regulation_interval(db_url: str) -> None:
    store = open_store(db_url)
    clock = Clock()
    runner = _runner(store, StubFetcher(clock), clock, regulation="daily")
    (target,) = runner.targets.values()
    assert isinstance(target, Target) and target.interval_s == 3600
    from monitor.domain import Regulation

    assert default_interval_s(Regulation.QUARTERLY) == 12 * 3600
    assert isinstance(runner.checker, Checker)
    store.close()
