"""The procrastinate engine at scale on this machine: 1, 2 and 4 `monitor worker` processes over the real
PostgreSQL check every page of a catalogue served from four loopback hosts (127.0.0.1-4). Measured: pages/s over
the round, PostgreSQL transactions per check (all of them: the store's and the queue's), the statements and
round trips the workers send per check (counted on the wire by a relay, bench/pgcount.py), worker CPU per
check, and each page's wait from its dispatch to the start of its check job (a trigger in the bench's own
database records every start: procrastinate deletes done jobs and their events).

Two rounds: a first round (every page new and due at once, so the fleet is saturated; each new page is
calibrated too, its captures 10 ms apart) and a steady round (every page due again,
unchanged). With a whole round due at once, the queue wait is the backlog: about half the round at the median."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from bench.common import PageServer, corpus_pages
from bench.pgcount import Counts, PgCounter

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "scale.json"


def catalogue(urls: list[str], db: str, concurrency: int) -> str:
    out = [f'[settings]\ndatabase_url = "{db}"\nengine = "procrastinate"\n'
           'user_agent = "bench (+mailto:bench@example.org)"\n'
           f'concurrency = {concurrency}\nper_host_concurrency = 8\nper_host_delay = "0.0001s"\n'
           'calibration_delay = "0.01s"\ntimeout = "60s"\n\n[departments.bench]\nname = "Bench"\n']
    for s in range(0, len(urls), 100):
        out.append(f'\n[[services]]\nid = "svc-{s // 100}"\nname = "Service {s}"\ndepartment = "Bench"\n'
                   'regulation = "weekly"\n')
        for u in urls[s:s + 100]:
            out.append(f'  [[services.pages]]\n  url = "{u}"\n  allow_private = true\n')
    return "".join(out)


def _xacts(conn: psycopg.Connection, name: str) -> int:
    row = conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                       (name,)).fetchone()
    return int(row[0]) if row else 0


# The bench's own probe in its own database: every start of a check job, with the time its page was
# dispatched (a put-off job keeps it). Procrastinate deletes done jobs, and their events with them.
_PROBE = """
CREATE TABLE bench_starts (page_id bigint, dispatched_at timestamptz, started_at timestamptz);
CREATE FUNCTION bench_started() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO bench_starts VALUES ((NEW.args->>'page_id')::bigint, (NEW.args->>'dispatched_at')::timestamptz,
                                   clock_timestamp());
  RETURN NULL;
END $$;
CREATE TRIGGER bench_started AFTER UPDATE OF status ON procrastinate_jobs FOR EACH ROW
  WHEN (OLD.status = 'todo' AND NEW.status = 'doing' AND NEW.task_name = 'monitor:check')
  EXECUTE FUNCTION bench_started();
"""


def _queue_wait(conn: psycopg.Connection, since: object) -> dict[str, float]:
    """Each page's wait from its dispatch to the first start of its job (put-offs included), this round."""
    row = conn.execute(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY w), percentile_cont(0.95) WITHIN GROUP (ORDER BY w), "
        "max(w) FROM (SELECT extract(epoch FROM min(started_at) - dispatched_at) AS w FROM bench_starts "
        "WHERE dispatched_at >= %s GROUP BY page_id, dispatched_at) AS waits", (since,)).fetchone()
    return {"queue_wait_p50_s": round(float(row[0] or 0), 1), "queue_wait_p95_s": round(float(row[1] or 0), 1),
            "queue_wait_max_s": round(float(row[2] or 0), 1)} if row else {}


def run(workers: int, pages: int, concurrency: int, servers: list[PageServer]) -> dict[str, object]:
    name = f"bench_scale_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    urls = [servers[i % len(servers)].url(i) for i in range(pages)]
    procs: list[subprocess.Popen[bytes]] = []
    with PgCounter() as relay:  # stopped after the workers
        # the workers talk to PostgreSQL through the relay, in the clear, so that it can count what they send
        db = f"postgresql+psycopg://postgres@127.0.0.1:{relay.port}/{name}?sslmode=disable&gssencmode=disable"
        try:
            with tempfile.TemporaryDirectory() as tmp:
                targets = Path(tmp) / "targets.toml"
                targets.write_text(catalogue(urls, db, concurrency), encoding="utf-8")
                monitor = [sys.executable, "-m", "monitor", "-t", str(targets), "--log-level", "WARNING"]
                subprocess.run([*monitor, "db", "upgrade"], check=True, capture_output=True)
                with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}", autocommit=True) as conn:
                    conn.execute(_PROBE)
                    started = time.monotonic()
                    for _ in range(workers):
                        procs.append(subprocess.Popen([*monitor, "worker"], stdout=subprocess.DEVNULL,
                                                      stderr=subprocess.DEVNULL))
                    first = _round(conn, name, pages, procs, started, relay.counts)
                    # the second round: every page due again a week later, unchanged, calibrated (the steady state)
                    conn.execute("UPDATE pages SET last_check_at = last_check_at - interval '8 days'")
                    steady = _round(conn, name, pages, procs, time.monotonic(), relay.counts)
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    p.kill()
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return {"workers": workers, "pages": pages, "first_round": first, "steady_round": steady}


def _cpu_s(procs: list[subprocess.Popen[bytes]]) -> float:
    """CPU seconds used so far by the worker processes and their children (the readers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in procs:
        pids = [p.pid] + [int(c) for c in Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split()]
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def _round(conn: psycopg.Connection, name: str, pages: int, procs: list[subprocess.Popen[bytes]],
           started: float, wire: Counts) -> dict[str, float]:
    """Wait for one check of every page after `started` (a round), measuring it."""
    before_checks = int(conn.execute("SELECT count(*) FROM checks").fetchone()[0])  # type: ignore[index]
    before, cpu = _xacts(conn, name), _cpu_s(procs)
    statements, round_trips = wire.statements, wire.round_trips
    since = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    first = None
    while time.monotonic() - started < 1800:
        done = int(conn.execute("SELECT count(DISTINCT page_id) FROM checks WHERE started_at >= %s",
                                (since,)).fetchone()[0])  # type: ignore[index]
        if done and first is None:
            first = time.monotonic()
        if done >= pages:
            break
        time.sleep(0.5)
    else:
        raise RuntimeError(f"{len(procs)} workers did not check {pages} pages in 30 minutes")
    last = time.monotonic()
    checks = int(conn.execute("SELECT count(*) FROM checks").fetchone()[0]) - before_checks  # type: ignore[index]
    return {"checks": checks, "round_s": round(last - started, 1),
            "pages_per_s": round(pages / (last - (first or started)), 1),
            "transactions_per_check": round((_xacts(conn, name) - before) / checks, 1),
            "statements_per_check": round((wire.statements - statements) / checks, 1),
            "round_trips_per_check": round((wire.round_trips - round_trips) / checks, 1),
            "worker_cpu_ms_per_check": round((_cpu_s(procs) - cpu) * 1000 / checks, 1),
            **_queue_wait(conn, since)}


def main(argv: list[str]) -> dict[str, object] | None:
    ap = argparse.ArgumentParser(prog="python -m bench scale")
    ap.add_argument("--pages", type=int, default=2000)
    ap.add_argument("--workers", default="1,2,4", help="comma-separated worker counts")
    ap.add_argument("--concurrency", type=int, default=8, help="check jobs at once per worker")
    args = ap.parse_args(argv)
    bodies = [p.read_bytes() for p in corpus_pages()[:50]] or [
        ("<html><body><main><h1>Новини громади</h1>" + "<p>Оголошення виконкому.</p>" * 40
         + "</main></body></html>").encode()]
    servers = [PageServer(bodies, host=h) for h in HOSTS]
    for s in servers:
        s.__enter__()
    try:
        rounds = [run(int(w), args.pages, args.concurrency, servers) for w in args.workers.split(",")]
    finally:
        for s in servers:
            s.__exit__()
    result = {"machine": f"{os.cpu_count()} cores", "concurrency_per_worker": args.concurrency,
              "corpus_bodies": len(bodies), "rounds": rounds}
    RESULTS.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return result
