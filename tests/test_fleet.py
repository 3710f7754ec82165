"""The procrastinate engine: worker processes over the real PostgreSQL check every due page once per round,
none skipped, never two at once, a killed worker's checks redone once, and the per-host limits held for the
whole fleet as the servers see them."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from monitor import fleet
from monitor.cli import main
from monitor.config import ConfigError, load_catalogue
from monitor.metrics import build_registry
from monitor.store import Store
from tests.helpers import html
from tests.siteserver import Site, page

ROOT = Path(__file__).resolve().parents[1]
HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")


def _catalogue(db: str, pages: list[str], **settings: str | int) -> str:
    lines = ["[settings]", f'database_url = "{db}"', 'engine = "procrastinate"',
             'user_agent = "fleet-test (+mailto:it@example.org)"', 'metrics_listen = "127.0.0.1:0"',
             *(f"{k} = {v!r}".replace("'", '"') for k, v in settings.items()),
             "[departments.it-sector]", 'name = "Сектор інформаційних технологій"']
    for i, url in enumerate(pages):
        lines += ["[[services]]", f'id = "hromada-{i}"', f'name = "Громада {i}: новини"',
                  'department = "Сектор інформаційних технологій"', 'regulation = "weekly"',
                  "  [[services.pages]]", f'  url = "{url}"', "  allow_private = true"]
    return "\n".join(lines) + "\n"


def _libpq(db: str) -> str:
    return fleet.conninfo(db)


def _checks(db: str) -> tuple[int, int, int]:
    with psycopg.connect(_libpq(db)) as conn:
        total = conn.execute("SELECT count(*) FROM checks").fetchone()[0]  # type: ignore[index]
        pages, most = conn.execute("SELECT count(*), coalesce(max(n), 0) FROM (SELECT page_id, count(*) AS n "
                                   "FROM checks GROUP BY page_id) c").fetchone()  # type: ignore[misc]
    return int(total), int(pages), int(most)


@pytest.fixture
def hosts() -> Iterator[list[Site]]:
    sites = [Site(host=h) for h in HOSTS]
    for s in sites:
        s.__enter__()
    try:
        yield sites
    finally:
        for s in sites:
            s.__exit__()


def _start_worker(targets: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "monitor", "-t", str(targets), "worker"], stdout=out,
                                stderr=out, cwd=targets.parent, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM the workers still running, wait for them, kill those that do not stop: none outlives its test."""
    for w in workers:
        if w.poll() is None:
            w.send_signal(signal.SIGTERM)
    for w in workers:
        try:
            w.wait(60)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait(10)


def _wait(what: str, condition, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout_s:g} s")


@pytest.mark.timeout(900)
def test_three_workers_check_every_page_once_a_killed_one_included_and_keep_the_host_limits(
        pg_url: str, hosts: list[Site], tmp_path: Path) -> None:
    pages = []
    for i in range(2000):
        site = hosts[i % len(hosts)]
        site.routes[f"/novyny/{i}"] = page(html(f"Оголошення виконкому № {i}"))
        pages.append(site.url(f"/novyny/{i}"))
    targets = tmp_path / "targets.toml"
    targets.write_text(_catalogue(pg_url, pages, per_host_concurrency=3, per_host_delay="0.005s",
                                  worker_stalled_after="10s", calibration_delay="0.01s"), encoding="utf-8")
    upgraded = CliRunner().invoke(main, ["-t", str(targets), "db", "upgrade"])
    assert upgraded.exit_code == 0 and "procrastinate" in upgraded.output, upgraded.output
    again = CliRunner().invoke(main, ["-t", str(targets), "db", "upgrade"])
    assert "procrastinate schema is up to date" in again.output, again.output
    logs = [tmp_path / f"worker-{n}.log" for n in range(3)]
    workers = [_start_worker(targets, log) for log in logs]
    try:
        started = time.monotonic()
        _wait("a third of the round", lambda: _checks(pg_url)[1] >= 600, 300)
        workers[0].send_signal(signal.SIGKILL)  # mid-round: some of its checks are running
        # what the exporter serves meanwhile: the queue, its oldest waiting job, the pages not checked yet
        store = Store.open(pg_url)
        try:
            sample = build_registry(load_catalogue(targets), store.metrics).get_sample_value
            waiting = sample("freshness_queue_jobs", {"queue": "checks", "status": "todo"})
            oldest = sample("freshness_queue_oldest_waiting_timestamp_seconds", {"queue": "checks"})
        finally:
            store.close()
        assert waiting and oldest and oldest <= time.time()
        workers[0].wait(10)
        _wait("every page checked", lambda: _checks(pg_url)[1] == len(pages), 600)
        print(f"{len(pages)} pages checked by the fleet in {time.monotonic() - started:.0f} s")
        time.sleep(15 + 2)  # one more dispatch after the round: nothing is due again for days
        total, checked, most = _checks(pg_url)
        assert (total, checked, most) == (len(pages), len(pages), 1), (total, checked, most)
        for w in workers[1:]:
            assert w.poll() is None, logs[workers.index(w)].read_text()[-3000:]
            w.send_signal(signal.SIGTERM)
        for w in workers[1:]:
            assert w.wait(90) == 0, logs[workers.index(w)].read_text()[-3000:]
    finally:
        _stop(workers)
    for site in hosts:  # never more than 3 requests at once to a host, from the three workers together
        assert 1 <= site.max_active <= 3, (site.host, site.max_active)
    with psycopg.connect(_libpq(pg_url)) as conn:
        states = dict(conn.execute("SELECT status, count(*) FROM procrastinate_jobs "
                                   "WHERE task_name = 'monitor:check' GROUP BY status").fetchall())
        leases, longest = conn.execute(  # type: ignore[misc]
            "SELECT count(*), coalesce(extract(epoch FROM max(expires_at - now())), 0) FROM host_leases "
            "WHERE expires_at > now()").fetchone()
    assert not states, states  # the killed worker's jobs were retried and done; done jobs are deleted
    # the workers stopped by SIGTERM gave every turn back; only the killed one's requests in flight (at most its 8
    # jobs) still hold theirs, and those expire within twice the fetch timeout and a minute (30 s * 2 + 60 s)
    assert leases <= 8 and longest <= 120, (leases, longest)


def test_two_workers_keep_one_pause_between_requests_to_a_host_as_the_server_sees_it(
        pg_url: str, hosts: list[Site], tmp_path: Path) -> None:
    site = hosts[1]
    for i in range(24):
        site.routes[f"/rishennia/{i}"] = page(html(f"Рішення сесії № {i}"))
    targets = tmp_path / "targets.toml"
    targets.write_text(_catalogue(pg_url, [site.url(f"/rishennia/{i}") for i in range(24)], per_host_concurrency=1,
                                  per_host_delay="0.25s"), encoding="utf-8")
    assert CliRunner().invoke(main, ["-t", str(targets), "db", "upgrade"]).exit_code == 0
    logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
    workers = [_start_worker(targets, log) for log in logs]
    try:
        _wait("every page checked", lambda: _checks(pg_url)[1] == 24, 180)
    finally:
        _stop(workers)
    starts = sorted(r.at for r in site.requests)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # turns are taken 250 ms apart on the database's clock; a request reaches the server a few ms after its turn
    assert site.max_active == 1 and min(gaps) >= 0.2, (site.max_active, sorted(gaps)[:5])
    served = {int(log.read_text().count("outcome=ok")) for log in logs}
    assert min(served) > 0, "both workers took part"


def test_workers_reconnect_when_the_database_drops_every_connection(pg_url: str, hosts: list[Site],
                                                                      tmp_path: Path) -> None:
    """What a PostgreSQL restart does to its clients: every connection is cut mid-round. The workers reconnect
    and finish the round, each page checked once."""
    site = hosts[2]
    for i in range(150):
        site.routes[f"/zvernennia/{i}"] = page(html(f"Відповідь на звернення № {i}"))
    targets = tmp_path / "targets.toml"
    targets.write_text(_catalogue(pg_url, [site.url(f"/zvernennia/{i}") for i in range(150)], per_host_concurrency=4,
                                  per_host_delay="0.05s", calibration_delay="0.01s"), encoding="utf-8")
    assert CliRunner().invoke(main, ["-t", str(targets), "db", "upgrade"]).exit_code == 0
    logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
    workers = [_start_worker(targets, log) for log in logs]
    name = pg_url.rsplit("/", 1)[1]
    try:
        _wait("a third of the round", lambda: _checks(pg_url)[1] >= 50, 180)
        with psycopg.connect(fleet.conninfo(pg_url.rsplit("/", 1)[0] + "/postgres"), autocommit=True) as admin:
            cut = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s "
                                "AND pid <> pg_backend_pid()", (name,)).fetchone()[0]  # type: ignore[index]
        assert cut >= 2
        _wait("every page checked after the cut", lambda: _checks(pg_url)[1] == 150, 240)
        time.sleep(17)  # one more dispatch
        assert _checks(pg_url) == (150, 150, 1)
        assert all(w.poll() is None for w in workers), [log.read_text()[-2000:] for log in logs]
    finally:
        _stop(workers)


def test_the_procrastinate_engine_needs_postgresql_and_a_worker_needs_it(tmp_path: Path) -> None:
    targets = tmp_path / "targets.toml"
    targets.write_text(_catalogue(f"sqlite:///{tmp_path / 'm.db'}", ["http://127.0.0.1:9/"]), encoding="utf-8")
    with pytest.raises(ConfigError, match="procrastinate engine runs over PostgreSQL"):
        load_catalogue(targets)
    targets.write_text(_catalogue(f"sqlite:///{tmp_path / 'm.db'}", ["http://127.0.0.1:9/"]).replace(
        'engine = "procrastinate"', 'engine = "embedded"'), encoding="utf-8")
    refused = CliRunner().invoke(main, ["-t", str(targets), "worker"])
    assert refused.exit_code == 2 and "procrastinate" in refused.output
    assert fleet.conninfo("postgresql+psycopg://u:p@db.internal:5433/monitor") == "postgresql://u:p@db.internal:5433/monitor"


def test_a_retried_job_of_a_page_checked_for_its_round_does_nothing(pg_url: str, hosts: list[Site],
                                                                     tmp_path: Path) -> None:
    """The check job's own guard, without the queue: the second run of a round's job finds the check stored."""
    from monitor.fetch import Fetcher
    from monitor.runner import Runner

    hosts[0].routes["/uk"] = page(html("Розклад прийому громадян"))
    targets = tmp_path / "targets.toml"
    targets.write_text(_catalogue(pg_url, [hosts[0].url("/uk")]), encoding="utf-8")
    assert CliRunner().invoke(main, ["-t", str(targets), "db", "upgrade"]).exit_code == 0
    cat = load_catalogue(targets)
    store = Store.open(cat.settings.database_url)

    async def twice() -> tuple[object, object]:
        async with Fetcher(cat.settings) as fetcher:
            runner = Runner(cat, store, fetcher)
            (target,) = runner.prepare()
            writer = asyncio.create_task(runner.recorder.run())
            due = datetime.now(UTC) - timedelta(minutes=1)
            first = await runner.check_due(target.page_id, due)
            second = await runner.check_due(target.page_id, due)
            writer.cancel()
            return first, second

    try:
        first, second = asyncio.run(twice())
    finally:
        store.close()
    assert first is not None and second is None
    assert _checks(pg_url) == (1, 1, 1)
