"""The procrastinate engine: worker processes over the real PostgreSQL check every due page once per round,
none skipped, never two at once, a killed worker's checks redone once, and the per-host limits held for the
whole fleet as the servers see them."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import procrastinate
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


def _start_worker(targets: Path, log: Path, *options: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "monitor", "-t", str(targets), "worker", *options], stdout=out,
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


def _wait(what: str, condition, timeout_s: float, state=lambda: "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout_s:g} s\n{state()}")


def _wait_progress(what: str, count, goal: int, *, stalled_s: float, state) -> float:  # type: ignore[no-untyped-def]
    """Wait until count() reaches goal, failing only when it stops moving for `stalled_s` (a slow machine makes
    a round slower, not wrong). Returns the seconds it took."""
    started = last_move = time.monotonic()
    seen = count()
    while seen < goal:
        time.sleep(0.5)
        now_seen = count()
        if now_seen != seen:
            seen, last_move = now_seen, time.monotonic()
        elif time.monotonic() - last_move > stalled_s:
            raise AssertionError(f"{what}: stuck at {seen} of {goal} for {stalled_s:g} s\n{state()}")
    return time.monotonic() - started


def _fleet_state(db: str, logs: list[Path]) -> str:
    """What a failing fleet test shows: the checks, the queue, the host leases and each worker's last lines."""
    with psycopg.connect(_libpq(db)) as conn:
        jobs = conn.execute("SELECT task_name, status, count(*), min(scheduled_at) FROM procrastinate_jobs "
                            "GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
        leases = conn.execute("SELECT host, count(*), max(expires_at) FROM host_leases GROUP BY 1").fetchall()
        pace = conn.execute("SELECT host, next_start - now() FROM host_pace").fetchall()
    tails = "\n".join(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-25:])
                      for log in logs if log.exists())
    return f"checks (total, pages, most per page): {_checks(db)}\njobs: {jobs}\nleases: {leases}\npace: {pace}\n{tails}"


@pytest.mark.timeout(1800)
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
        _wait_progress("a third of the round", lambda: min(_checks(pg_url)[1], 600), 600, stalled_s=120,
                       state=lambda: _fleet_state(pg_url, logs))
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
        # the killed worker's turns at the hosts are out until they expire (2 min): the round may pause that long
        _wait_progress("every page checked", lambda: _checks(pg_url)[1], len(pages), stalled_s=240,
                       state=lambda: _fleet_state(pg_url, logs))
        print(f"{len(pages)} pages checked by the fleet in {time.monotonic() - started:.0f} s")
        time.sleep(15 + 2)  # one more dispatch after the round: nothing is due again for days
        total, checked, most = _checks(pg_url)
        assert (total, checked, most) == (len(pages), len(pages), 1), _fleet_state(pg_url, logs)
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


def _slow(body: bytes, active: dict[str, int], most: dict[str, int], seconds: float = 1.5):  # type: ignore[no-untyped-def]
    """A page that takes `seconds` to answer, counting the requests to it at once."""
    async def handler(req, w) -> None:  # type: ignore[no-untyped-def]
        active[req.path] = active.get(req.path, 0) + 1
        most[req.path] = max(most.get(req.path, 0), active[req.path])
        try:
            await asyncio.sleep(seconds)
            await page(body)(req, w)
        finally:
            active[req.path] -= 1
    return handler


def test_two_workers_never_check_one_page_at_once(pg_url: str, hosts: list[Site], tmp_path: Path) -> None:
    """Two jobs of one page wait in the queue (a retried job and a new dispatch, say): the per-page lock makes
    the second wait for the first, which it then finds done. Control: two jobs of a page without the lock are
    run at once by the two workers, so the test would see it."""
    from procrastinate import jobs as pjobs

    active: dict[str, int] = {}
    most: dict[str, int] = {}
    hosts[0].routes["/rishennia"] = _slow(html("Рішення виконкому"), active, most)
    hosts[1].routes["/kontrol"] = _slow(html("Контрольна сторінка"), active, most)
    targets = tmp_path / "targets.toml"
    targets.write_text(_catalogue(pg_url, [hosts[0].url("/rishennia"), hosts[1].url("/kontrol")],
                                  per_host_concurrency=4, per_host_delay="0.01s"), encoding="utf-8")
    assert CliRunner().invoke(main, ["-t", str(targets), "db", "upgrade"]).exit_code == 0
    cat = load_catalogue(targets)
    store = Store.open(pg_url)
    try:  # in the store, checked ten minutes ago and calibrated: nothing is due, nothing calibrates
        ids = store.catalogue.sync_catalogue(cat, datetime.now(UTC))
    finally:
        store.close()
    with psycopg.connect(_libpq(pg_url)) as conn:
        conn.execute("UPDATE pages SET last_check_at = now() - interval '10 minutes', calibrated_at = now()")
    locked, control = (ids[p.key] for s in cat.services for p in s.pages)
    logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
    workers = [_start_worker(targets, log, "--concurrency", "1") for log in logs]
    try:
        _wait("both workers ready", lambda: all("jobs at once" in log.read_text() for log in logs), 60,
              state=lambda: _fleet_state(pg_url, logs))
        time.sleep(2)  # listening to the queue

        def job(pid: int, lock: str | None) -> pjobs.Job:
            return pjobs.Job(queue=fleet.CHECKS, task_name="monitor:check", lock=lock, queueing_lock=None,
                             task_kwargs={"page_id": pid, "due_at": datetime.now(UTC).isoformat(),
                                          "dispatched_at": datetime.now(UTC).isoformat()})

        async def defer() -> None:
            app = fleet.make_app(pg_url)
            async with app.open_async():  # the control page's two jobs first: both workers are free for them
                await app.job_manager.batch_defer_jobs_async([job(control, None), job(control, None),
                                                              job(locked, f"page-{locked}"),
                                                              job(locked, f"page-{locked}")])

        asyncio.run(defer())

        def left() -> int:
            with psycopg.connect(_libpq(pg_url)) as conn:
                return int(conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'monitor:check'"
                                        ).fetchone()[0])  # type: ignore[index]
        _wait("every job done", lambda: left() == 0, 120, state=lambda: _fleet_state(pg_url, logs))
    finally:
        _stop(workers)
    with psycopg.connect(_libpq(pg_url)) as conn:
        per_page = dict(conn.execute("SELECT page_id, count(*) FROM checks GROUP BY page_id").fetchall())
    assert most.get("/kontrol") == 2 and per_page.get(control) == 2, (most, per_page)  # the control: at once
    assert most.get("/rishennia") == 1 and len(hosts[0].hits("/rishennia")) == 1, most
    assert per_page.get(locked) == 1, per_page  # the second job found the round's check stored


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_host_that_asks_to_wait_does_not_hold_the_workers_job_slots(pg_url: str, hosts: list[Site],
                                                                       tmp_path: Path) -> None:
    """A server answers 429 with Retry-After: 10 minutes. Its other pages' jobs are put off (the host's wait),
    not parked in the worker's two job slots: the other host's pages are all checked meanwhile."""
    for i in range(6):
        hosts[0].routes[f"/zajniato/{i}"] = page(b"", status=429, headers={"Retry-After": "600"})
    for i in range(12):
        hosts[1].routes[f"/vilno/{i}"] = page(html(f"Рішення № {i}"))
    urls = [hosts[0].url(f"/zajniato/{i}") for i in range(6)] + [hosts[1].url(f"/vilno/{i}") for i in range(12)]
    targets = tmp_path / "targets.toml"
    targets.write_text(_catalogue(pg_url, urls, per_host_concurrency=2, per_host_delay="0.01s", retries=0,
                                  calibration_delay="0.01s"), encoding="utf-8")
    assert CliRunner().invoke(main, ["-t", str(targets), "db", "upgrade"]).exit_code == 0
    logs = [tmp_path / "worker.log"]
    port = _free_port()
    workers = [_start_worker(targets, logs[0], "--concurrency", "2", "--metrics-listen", f"127.0.0.1:{port}")]
    try:
        def free_host_checked() -> int:
            with psycopg.connect(_libpq(pg_url)) as conn:
                return int(conn.execute("SELECT count(DISTINCT c.page_id) FROM checks c JOIN pages p ON p.id = "
                                        "c.page_id WHERE p.url LIKE %s", (hosts[1].base + "%",)).fetchone()[0])  # type: ignore[index]
        # parked jobs would hold both slots for the ten minutes: the free host's pages would stop for that long
        _wait_progress("the free host's pages checked", free_host_checked, 12, stalled_s=60,
                       state=lambda: _fleet_state(pg_url, logs))
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        _stop(workers)
    postponed = re.search(r'freshness_worker_jobs_total\{outcome="postponed"\} (\S+)', metrics)
    assert postponed and float(postponed.group(1)) >= 1, metrics[-3000:]
    # the busy host was asked once, then left alone: its other pages wait their turn in the queue
    assert len([r for r in hosts[0].requests if r.path.startswith("/zajniato/")]) <= 2, hosts[0].requests
    with psycopg.connect(_libpq(pg_url)) as conn:
        later = conn.execute("SELECT count(*), min(scheduled_at - now()) FROM procrastinate_jobs WHERE "
                             "task_name = 'monitor:check' AND status = 'todo'").fetchone()
    assert later is not None and later[0] >= 4 and later[1].total_seconds() > 500, later


def test_dispatch_drops_a_dead_workers_job_whose_page_is_queued_again_and_goes_on(pg_url: str, hosts: list[Site],
                                                                                  tmp_path: Path) -> None:
    """After a database restart a job can stay `doing` for a worker that is gone while its page is queued again.
    Retrying it would break the page's queueing lock (and failed every dispatch after, for good): dispatch
    drops it, the queued job does the check, and every page is checked."""
    for path in ("/rishennia", "/novyny"):
        hosts[0].routes[path] = page(html(f"Сторінка {path}"))
    targets = tmp_path / "targets.toml"
    targets.write_text(_catalogue(pg_url, [hosts[0].url("/rishennia"), hosts[0].url("/novyny")],
                                  worker_stalled_after="10s", calibration_delay="0.01s"), encoding="utf-8")
    assert CliRunner().invoke(main, ["-t", str(targets), "db", "upgrade"]).exit_code == 0
    store = Store.open(pg_url)
    try:
        ids = store.catalogue.sync_catalogue(load_catalogue(targets), datetime.now(UTC))
    finally:
        store.close()
    stuck = ids[next(iter(ids))]
    lock = f"page-{stuck}"
    args = '{"page_id": %d, "due_at": "2026-01-01T00:00:00+00:00", "dispatched_at": "2026-01-01T00:00:00+00:00"}'
    with psycopg.connect(_libpq(pg_url), autocommit=True) as conn:
        dead = conn.execute("INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '1 hour') "
                            "RETURNING id").fetchone()[0]  # type: ignore[index]
        conn.execute("INSERT INTO procrastinate_jobs (queue_name, task_name, lock, queueing_lock, args, status, "
                     "worker_id) VALUES ('checks', 'monitor:check', %s, %s, %s, 'doing', %s)",
                     (lock, lock, args % stuck, dead))
        conn.execute("INSERT INTO procrastinate_jobs (queue_name, task_name, lock, queueing_lock, args) VALUES "
                     "('checks', 'monitor:check', %s, %s, %s)", (lock, lock, args % stuck))
    logs = [tmp_path / "worker.log"]
    workers = [_start_worker(targets, logs[0])]
    try:
        _wait_progress("every page checked", lambda: _checks(pg_url)[1], 2, stalled_s=60,
                       state=lambda: _fleet_state(pg_url, logs))
        time.sleep(17)  # one more dispatch: it still runs
        log = logs[0].read_text()
        assert "its page is queued again" in log, log[-3000:]
        assert not [line for line in log.splitlines() if "monitor:dispatch" in line and "status: Error" in line], log
    finally:
        _stop(workers)
    assert _checks(pg_url) == (2, 2, 1), _fleet_state(pg_url, logs)
    with psycopg.connect(_libpq(pg_url)) as conn:
        left = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'monitor:check'").fetchone()
    assert left == (0,), _fleet_state(pg_url, logs)


def test_the_fleet_dispatches_every_15_s_and_does_the_daily_work_once_a_day(pg_url: str, hosts: list[Site],
                                                                            tmp_path: Path) -> None:
    """Procrastinate's periodic tasks: dispatch every 15 s, the daily work (link checks, retention) at 03:17. A
    daily job, deferred here as the periodic deferrer would at 03:17, checks the page's links."""
    for _ in range(2):  # a second app of the same process names its tasks alike
        app = fleet.make_app(pg_url)
        periodic = {p.task.name: p.cron for p in app.periodic_registry.periodic_tasks.values()}
        assert periodic == {"monitor:dispatch": "* * * * * */15", "monitor:daily": "17 3 * * *"}
        assert {"monitor:check", "monitor:dispatch", "monitor:daily"} <= set(app.tasks)
    site = hosts[0]
    site.routes["/uk"] = page("<html><body><main><h1>Міська рада</h1><p>Рішення сесії та розпорядження.</p>"
                              '<a href="/dokumenty/1">Рішення № 1</a> <a href="/dokumenty/2">Рішення № 2</a>'
                              "</main></body></html>")
    site.routes["/dokumenty/1"] = page(html("Рішення № 1"))
    targets = tmp_path / "targets.toml"
    targets.write_text(_catalogue(pg_url, [site.url("/uk")], calibration_delay="0.01s"), encoding="utf-8")
    assert CliRunner().invoke(main, ["-t", str(targets), "db", "upgrade"]).exit_code == 0
    logs = [tmp_path / "worker.log"]
    workers = [_start_worker(targets, logs[0])]
    try:
        _wait("the page checked", lambda: _checks(pg_url)[1] == 1, 60, state=lambda: _fleet_state(pg_url, logs))

        async def defer_daily() -> None:
            app = fleet.make_app(pg_url)
            async with app.open_async():
                await app.tasks["monitor:daily"].defer_async(timestamp=0)

        asyncio.run(defer_daily())

        def links() -> dict[str, int | None]:
            with psycopg.connect(_libpq(pg_url)) as conn:
                return dict(conn.execute("SELECT url, status FROM link_checks").fetchall())
        _wait("the page's links checked", lambda: len(links()) == 2, 60, state=lambda: _fleet_state(pg_url, logs))
    finally:
        _stop(workers)
    assert links() == {site.url("/dokumenty/1"): 200, site.url("/dokumenty/2"): 404}


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
        _wait_progress("every page checked", lambda: _checks(pg_url)[1], 24, stalled_s=120,
                       state=lambda: _fleet_state(pg_url, logs))
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
        _wait_progress("a third of the round", lambda: min(_checks(pg_url)[1], 50), 50, stalled_s=120,
                       state=lambda: _fleet_state(pg_url, logs))
        with psycopg.connect(fleet.conninfo(pg_url.rsplit("/", 1)[0] + "/postgres"), autocommit=True) as admin:
            cut = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s "
                                "AND pid <> pg_backend_pid()", (name,)).fetchone()[0]  # type: ignore[index]
        assert cut >= 2
        _wait_progress("every page checked after the cut", lambda: _checks(pg_url)[1], 150, stalled_s=120,
                       state=lambda: _fleet_state(pg_url, logs))
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


def _leases(db: str) -> int:
    with psycopg.connect(_libpq(db)) as conn:
        return int(conn.execute("SELECT count(*) FROM host_leases").fetchone()[0])  # type: ignore[index]


@pytest.mark.parametrize("cancel_after_s", [0.05, 0.35])
def test_a_fetch_cancelled_while_it_asks_for_a_turn_leaves_no_lease(pg_url: str, cancel_after_s: float) -> None:
    """A check's deadline may cancel it while the store is answering its question for a turn at a host (0.05 s:
    before the answer; 0.35 s: after it, while the turn is held): a lease given to a cancelled fetch would
    block the host for the whole fleet until it expired (two fetch timeouts and a minute)."""
    from monitor.domain import Settings
    from monitor.store.fleet import SqlFleet

    store = Store.open(pg_url, auto_upgrade=True)

    class SlowStore(SqlFleet):  # the real store, answering after 0.2 s as a loaded database does
        def take_turn(self, host: str, holder: str, **kw: float) -> float:  # type: ignore[override]
            time.sleep(0.2)
            return super().take_turn(host, holder, **kw)  # type: ignore[arg-type]

    gate = fleet.FleetGate(SlowStore(store.fleet.engine), Settings(per_host_concurrency=1, per_host_delay_s=0.0))
    held: list[bool] = []

    async def fetch_cancelled() -> None:
        async def request() -> None:
            async with gate.slot("127.0.0.1"):
                held.append(True)
                await asyncio.sleep(10)  # the request, cut by the deadline

        task = asyncio.create_task(request())
        await asyncio.sleep(cancel_after_s)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.3)  # a question still under way has its answer by now

    try:
        asyncio.run(fetch_cancelled())
        assert held == ([True] if cancel_after_s > 0.2 else [])
        assert _leases(pg_url) == 0
        # the host can be asked at once: the next fetch is not refused for a slot left out
        assert store.fleet.take_turn("127.0.0.1", "next", concurrency=1, delay_s=0.0, lease_s=60) == 0
    finally:
        store.close()


def test_a_check_that_cannot_ask_its_hosts_pause_gives_its_claim_back(pg_url: str) -> None:
    """A worker counts its checks of each host (per_host_concurrency at most); a check that fails or is cancelled
    while asking the store for the host's pause gives its claim back. Kept, two such checks (a PostgreSQL
    restart) would leave the worker putting off every later check of that host, for good."""
    import sqlalchemy

    from monitor.domain import Settings
    from monitor.errors import StoreUnavailable
    from monitor.store.fleet import SqlFleet

    settings = Settings(per_host_concurrency=2)
    host, url = "127.0.0.1", "http://127.0.0.1:8080/rishennia"
    away = SqlFleet(sqlalchemy.create_engine("postgresql+psycopg://postgres@127.0.0.1:9/monitor",
                                             connect_args={"connect_timeout": 2}))  # nobody listens on port 9
    worker = fleet.Worker(runner=None, fleet=away, gate=fleet.FleetGate(away, settings))  # type: ignore[arg-type]
    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            asyncio.run(worker.put_off_s(url, 0))
    assert worker.gate is not None and worker.gate.claim(host) and worker.gate.claim(host)  # both slots free
    worker.gate.release(host)
    worker.gate.release(host)
    # the check job itself: it fails (dispatch queues the page again) and the worker counts it failed
    worker.runner = SimpleNamespace(targets={7: SimpleNamespace(page=SimpleNamespace(url=url))})  # type: ignore[assignment]
    context = procrastinate.JobContext(app=None, job=None, start_timestamp=0.0,  # type: ignore[arg-type]
                                       abort_reason=lambda: None, additional_context={"monitor": worker})
    with pytest.raises(StoreUnavailable):
        asyncio.run(fleet.check(context, 7, "2026-12-01T00:00:00+00:00", "2026-12-01T00:00:00+00:00"))
    assert (worker.jobs_failed, worker.jobs_done) == (1, 0)
    assert worker.gate.claim(host) and worker.gate.claim(host)

    store = Store.open(pg_url, auto_upgrade=True)

    class SlowStore(SqlFleet):
        def host_wait(self, host: str) -> float:
            time.sleep(0.3)
            return super().host_wait(host)

    try:
        slow = SlowStore(store.fleet.engine)
        worker = fleet.Worker(runner=None, fleet=slow, gate=fleet.FleetGate(slow, settings))  # type: ignore[arg-type]

        async def cancelled() -> None:
            for _ in range(3):
                task = asyncio.create_task(worker.put_off_s(url, 0))
                await asyncio.sleep(0.05)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            assert await worker.put_off_s(url, 0) == 0  # asked in full: run now, with a claim
            assert await worker.put_off_s(url, 0) == 0
            assert await worker.put_off_s(url, 0) > 0  # the third check of the host waits its turn

        asyncio.run(cancelled())
    finally:
        store.close()
