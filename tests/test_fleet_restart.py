"""Issue 16: a real PostgreSQL restart mid-round. Two workers over a private cluster (never the shared one) see the
server go down and come back; they reconnect and go on, each page checked once, and still stop cleanly."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from monitor.cli import main
from tests.conftest import require
from tests.helpers import html
from tests.siteserver import Site, page
from tests.test_fleet import _catalogue, _checks, _start_worker, _stop, _wait

PAGES = 150
DISPATCH_S = 15  # fleet.DISPATCH_CRON: a dispatch every 15 s


@dataclass(frozen=True, slots=True, kw_only=True)
class Cluster:
    """A throw-away PostgreSQL server on 127.0.0.1:`port`, its data, socket and log in `folder`."""

    bin: Path
    folder: Path
    port: int
    as_owner: tuple[str, ...]  # runuser -u postgres -- when we are root (initdb and postgres refuse root)

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def libpq(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def run(self, tool: str, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.as_owner, str(self.bin / tool), *args], capture_output=True, text=True,
                              timeout=timeout_s, check=False, cwd=self.folder)

    def ctl(self, *args: str) -> None:
        """pg_ctl, waiting until it is done; a failure is the environment's, never the workers' (pytest.fail)."""
        done = self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", *args)
        if done.returncode != 0:
            pytest.fail(f"pg_ctl {' '.join(args)}: {done.stdout}{done.stderr}\n{self.log_tail()}")

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "server log:\n" + self.log.read_text(errors="replace")[-2000:]
        return "no server log"


def _binaries() -> Path | None:
    """The newest Debian PostgreSQL with what a cluster needs (/usr/lib/postgresql/<version>/bin)."""
    found = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")
             if all(os.access(Path(p) / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres"))]
    return max(found, key=lambda p: float(p.parent.name) if p.parent.name.replace(".", "").isdigit() else 0.0,
               default=None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # an ephemeral port: never the shared server's 5432
        return int(s.getsockname()[1])


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A private PostgreSQL cluster, stopped and removed afterwards whatever the test did."""
    binaries = _binaries()
    require(binaries is not None, "PostgreSQL's server binaries are not in /usr/lib/postgresql/*/bin "
                                  "(apt-get install postgresql)")
    assert binaries is not None
    as_owner: tuple[str, ...] = ()
    owner = None
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            owner = None
        require(runuser is not None and owner is not None,
                "running as root needs runuser and the postgres user to run initdb and postgres")
        assert runuser is not None
        as_owner = (runuser, "-u", "postgres", "--")
    folder = Path(tempfile.mkdtemp(prefix="monitor-pg-"))  # in /tmp: the postgres user can reach it
    if owner is not None:
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    c = Cluster(bin=binaries, folder=folder, port=_free_port(), as_owner=as_owner)
    try:
        made = c.run("initdb", "-D", str(c.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C",
                     "--no-sync")
        if made.returncode != 0:
            pytest.fail(f"initdb: {made.stdout}{made.stderr}")
        with (c.data / "postgresql.conf").open("a", encoding="utf-8") as conf:  # kept across restarts
            conf.write(f"\nport = {c.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{folder}'\n"
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\n")
        c.ctl("start")
        with psycopg.connect(c.libpq("postgres"), autocommit=True) as admin:
            admin.execute('CREATE DATABASE "monitor"')
        yield c
    finally:
        if (c.data / "postmaster.pid").exists():  # running, or left by a server that died
            c.run("pg_ctl", "-D", str(c.data), "-m", "immediate", "-w", "stop", timeout_s=60)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def sites() -> Iterator[list[Site]]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(Site(host=h)) for h in ("127.0.0.1", "127.0.0.2")]


def _queue(cluster: Cluster) -> str:
    """The check jobs by status, and the pages with one running and another waiting (a stalled running one that
    dispatch retries then collides with the waiting one's queueing lock)."""
    try:
        with psycopg.connect(cluster.libpq("monitor"), connect_timeout=5) as conn:
            states = conn.execute("SELECT status, count(*) FROM procrastinate_jobs WHERE task_name = 'monitor:check' "
                                  "GROUP BY status ORDER BY status").fetchall()
            row = conn.execute("SELECT count(*) FROM procrastinate_jobs waiting JOIN procrastinate_jobs running "
                               "ON running.lock = waiting.lock WHERE waiting.status = 'todo' "
                               "AND running.status = 'doing' AND waiting.task_name = 'monitor:check'").fetchone()
    except psycopg.Error as exc:
        return f"queue: not readable ({exc})"
    return f"check jobs: {dict(states)}; pages with a job running and one waiting: {row[0] if row else 0}"


class WorkerExited(AssertionError):
    """A worker process ended by itself, which no database restart should make it do."""


def _report(workers: list[subprocess.Popen[bytes]], logs: list[Path], cluster: Cluster) -> str:
    """What to read when the test fails: each worker's state and the tail of its log, then the server's."""
    parts = [f"--- worker-{n} ({'running' if w.poll() is None else f'exited {w.returncode}'}), {log.name}:\n"
             + (log.read_text(errors="replace")[-3000:] if log.exists() else "no log")
             for n, (w, log) in enumerate(zip(workers, logs, strict=True))]
    return "\n".join([*parts, _queue(cluster), cluster.log_tail()])


def _until(what: str, condition: Callable[[], bool], timeout_s: float, workers: list[subprocess.Popen[bytes]],
           logs: list[Path], cluster: Cluster) -> None:
    """_wait, failing at once when a worker has exited (a fleet that died never finishes its round)."""
    def met() -> bool:
        if any(w.poll() is not None for w in workers):
            raise WorkerExited(f"{what}: a worker exited")
        return condition()

    try:
        _wait(what, met, timeout_s)
    except WorkerExited as exc:
        raise WorkerExited(f"{exc}\n{_report(workers, logs, cluster)}") from None
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_report(workers, logs, cluster)}") from None


@pytest.mark.timeout(600)
def test_workers_reconnect_and_go_on_when_postgresql_restarts_mid_round(cluster: Cluster, sites: list[Site],
                                                                         tmp_path: Path) -> None:
    db = cluster.url("monitor")
    urls = []
    for i in range(PAGES):
        site = sites[i % len(sites)]
        site.routes[f"/rozporiadzhennia/{i}"] = page(html(f"Розпорядження міського голови № {i}"))
        urls.append(site.url(f"/rozporiadzhennia/{i}"))
    targets = tmp_path / "targets.toml"
    targets.write_text(_catalogue(db, urls, per_host_concurrency=2, per_host_delay="0.15s",
                                  calibration_delay="0.01s"), encoding="utf-8")
    upgraded = CliRunner().invoke(main, ["-t", str(targets), "db", "upgrade"])
    assert upgraded.exit_code == 0 and "procrastinate" in upgraded.output, upgraded.output
    logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
    workers = [_start_worker(targets, log) for log in logs]
    try:
        _until("a third of the round", lambda: _checks(db)[1] >= PAGES // 3, 120, workers, logs, cluster)
        before = _checks(db)[1]
        assert before < PAGES, f"the round ended before the restart ({before} pages): make it last longer"
        cluster.ctl("-m", "fast", "stop")  # every connection cut, and nobody answers for a while
        time.sleep(3)
        cluster.ctl("start")
        started = time.monotonic()
        _until("every page checked after the restart", lambda: _checks(db)[1] == PAGES, 120, workers, logs,
               cluster)
        print(f"{before} pages checked before the restart, the rest in {time.monotonic() - started:.0f} s after it")
        time.sleep(DISPATCH_S + 2)  # one more dispatch: nothing is due again, nothing checked twice
        assert _checks(db) == (PAGES, PAGES, 1), f"{_checks(db)}\n{_report(workers, logs, cluster)}"
        if any(w.poll() is not None for w in workers):
            raise WorkerExited(f"a worker exited after the round\n{_report(workers, logs, cluster)}")
        for w in workers:
            w.send_signal(signal.SIGTERM)
        codes = [w.wait(90) for w in workers]
        assert codes == [0, 0], f"{codes}\n{_report(workers, logs, cluster)}"
    finally:
        _stop(workers)
