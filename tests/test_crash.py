"""Crash safety: `kill -9` in the middle of a round (SQLite and PostgreSQL) loses and duplicates nothing;
a database outage of 30 s during a round is ridden out with a bounded buffer and reported in the metrics."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from monitor.store.engine import make_engine
from tests.conftest import catalogue_toml
from tests.helpers import html
from tests.siteserver import Request, Site, respond

PAGES = 40
pytestmark = pytest.mark.slow


class Pages:
    """PAGES pages; each answers slowly so that a round takes a few seconds; `version` switches them all."""

    def __init__(self) -> None:
        self.version = "A"

    async def __call__(self, req: Request, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.25)
        n = req.path.rsplit("/", 1)[-1]
        await respond(w, 200, html(f"Сторінка {n}", f"Версія {self.version}"))


def _check(targets: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "monitor", "-t", str(targets), "check", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ})


def _count(url: str, sql: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar() or 0)
    except Exception:
        return -1
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_in_the_middle_of_a_round(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    pages = Pages()
    with Site() as site:
        for i in range(PAGES):
            site.routes[f"/p/{i}"] = pages
        targets = tmp_path / "targets.toml"
        targets.write_text(catalogue_toml([site.url(f"/p/{i}") for i in range(PAGES)], db=url,
                                          extra_settings="concurrency = 4\nper_host_concurrency = 4"),
                           encoding="utf-8")
        if backend == "postgresql":
            assert subprocess.run([sys.executable, "-m", "monitor", "-t", str(targets), "db", "upgrade"],
                                  capture_output=True, timeout=120).returncode == 0
        baseline = _check(targets)
        baseline.communicate(timeout=120)
        assert baseline.returncode == 0
        assert _count(url, "select count(*) from versions") == PAGES

        pages.version = "B"
        victim = _check(targets)
        deadline = time.monotonic() + 60
        while _count(url, "select count(*) from changes") < PAGES // 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(victim.pid, signal.SIGKILL)
        victim.communicate(timeout=30)
        written = _count(url, "select count(*) from changes")
        assert 0 < written < PAGES, "the kill did not land in the middle of the round"

        survivor = _check(targets)
        survivor.communicate(timeout=120)
        assert survivor.returncode == 0

    # every page changed once, and exactly one change event records it
    assert _count(url, "select count(*) from changes") == PAGES
    assert _count(url, "select count(distinct page_id) from changes") == PAGES
    assert _count(url, "select count(*) from versions") == 2 * PAGES
    if backend == "sqlite":
        engine = make_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("pragma integrity_check")).scalar() == "ok"
        engine.dispose()
    verify = subprocess.run([sys.executable, "-m", "monitor", "-t", str(targets), "verify"], capture_output=True,
                            text=True, timeout=120)
    assert verify.returncode == 0 and "intact" in verify.stdout, verify.stderr


class Proxy:
    """A TCP proxy in front of PostgreSQL, on its own thread, that can be cut (connections dropped, new ones
    refused) and restored on the same port."""

    def __init__(self, upstream_port: int = 5432) -> None:
        import threading

        self.upstream = upstream_port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self.writers: set[asyncio.StreamWriter] = set()

    def _run(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.close()
            return
        self.writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in list(self.writers):
            w.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()

    def start(self) -> None:
        self._run(self._start())

    def cut(self) -> None:
        self._run(self._cut())

    def close(self) -> None:
        if self.server is not None and self.server.is_serving():
            self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def test_a_30_second_database_outage_during_a_round(pg_url: str, tmp_path: Path) -> None:
    from monitor.fetch import Fetcher
    from monitor.metrics import Runtime, build_registry
    from monitor.runner import Runner
    from monitor.store import Store
    from monitor.store.engine import upgrade
    from tests.helpers import catalogue

    proxy = Proxy()
    proxy.start()
    proxied = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    engine = make_engine(proxied, connect_args={"connect_timeout": 2})
    upgrade(engine)
    store = Store(engine)
    pages = Pages()
    with Site() as site:
        for i in range(PAGES):
            site.routes[f"/p/{i}"] = pages
        cat = catalogue(catalogue_toml([site.url(f"/p/{i}") for i in range(PAGES)], db=proxied,
                                       extra_settings="concurrency = 8\nper_host_concurrency = 8"))
        async with Fetcher(cat.settings) as fetcher:
            runner = Runner(cat, store, fetcher)
            runner.recorder.retry_max_s = 1.0
            runner.prepare()
            writer = asyncio.create_task(runner.recorder.run())
            await runner.round(list(runner.targets.values()))
            assert await runner.recorder.drain(30)
            reg = build_registry(cat, store.metrics, runtime=lambda: Runtime(
                pending_records=len(runner.recorder.pending), database_writable=runner.recorder.db_ok))
            assert reg.get_sample_value("freshness_database_up") == 1

            proxy.cut()  # the database is gone for 30 seconds
            pages.version = "B"
            t0 = time.monotonic()
            records = await runner.round(list(runner.targets.values()))  # checks go on meanwhile
            assert all(r.outcome.success for r in records)
            await asyncio.sleep(1.5)
            assert not runner.recorder.db_ok and len(runner.recorder.pending) == PAGES
            # the buffer holds each new version's raw bytes once, not the fetched body besides
            assert all(r.fetch.body is None and r.raw_blob and r.fetch.size == len(r.raw_blob)
                       for r in runner.recorder.pending)
            assert await asyncio.to_thread(reg.get_sample_value, "freshness_database_up") == 0
            assert reg.get_sample_value("freshness_database_writable") == 0
            assert reg.get_sample_value("freshness_write_buffer_records") == PAGES
            ok, details = runner.healthy(heartbeat_s=3600)
            assert not ok and "the database does not take writes" in details["problems"]  # /healthz says so
            assert all(r.evidence_pending for r in runner.recorder.pending)  # decided now, evidence to come
            await asyncio.sleep(max(0.0, 30 - (time.monotonic() - t0)))

            proxy.start()  # back, on the same port
            assert await runner.recorder.drain(60), "the buffer was not written after the database came back"
            assert runner.recorder.db_ok
            writer.cancel()
    checks = _count(pg_url, "select count(*) from checks")
    changes = _count(pg_url, "select count(*) from changes")
    assert checks == 2 * PAGES and changes == PAGES  # nothing lost, nothing written twice
    # the evidence of the changes made while the database was away was made when it came back: none is empty
    for row in store.history.changes():
        change = store.history.change(row.id)
        assert change is not None and change.evidence is not None
        assert "-Версія A" in change.evidence["diff"] and "+Версія B" in change.evidence["diff"], change.id
    assert _count(pg_url, "select count(*) from checks where bytes > 0") == 2 * PAGES  # sizes kept without bodies
    store.close()
    proxy.close()
