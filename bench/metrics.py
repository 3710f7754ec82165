"""/metrics latency with 10,000 pages and 1,000,000 checks in the database, on SQLite and PostgreSQL.

The database is filled directly (bulk inserts): 100 services of 100 pages, every page with a summary,
tallies and its share of the check rows. The maintenance job's refresh of the aggregates (the self-report
audit over 90 days and the dataset grades) is timed on its own; then the scrape, end to end over HTTP
(the exporter's own server, gzip as Prometheus asks): the first scrape, then the median and worst of N
scrapes after it."""

from __future__ import annotations

import argparse
import gzip
import random
import statistics
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from bench.crawl import on_both_databases

if TYPE_CHECKING:
    from monitor.domain import Catalogue
    from monitor.store import Store


def fill(url: str, pages: int, checks: int) -> tuple[Catalogue, Store]:
    import tomllib

    from sqlalchemy import insert

    from monitor.config import parse_catalogue
    from monitor.ports import Heartbeat
    from monitor.store import Store
    from monitor.store import models as m
    from monitor.store.engine import make_engine, upgrade

    per_service = 100
    text = ['[settings]\nuser_agent = "bench (+mailto:bench@example.org)"\n[departments.d]\nname = "D"\n']
    for s in range(pages // per_service):
        text.append(f'[[services]]\nid = "svc-{s}"\nname = "S{s}"\ndepartment = "D"\nregulation = "weekly"\n')
        for p in range(per_service):
            text.append(f'  [[services.pages]]\n  url = "https://host{s}.example/p{p}"\n')
    cat = parse_catalogue(tomllib.loads("".join(text)), environ={})
    engine = make_engine(url)
    upgrade(engine)
    store = Store(engine)
    now = datetime.now(UTC)
    ids = list(store.catalogue.sync_catalogue(cat, now).values())
    rng = random.Random(1)
    with engine.begin() as conn:
        for pid in ids:
            conn.execute(m.Page.__table__.update().where(m.Page.__table__.c.id == pid).values(  # type: ignore[attr-defined]
                last_check_at=now, last_success_at=now, first_success_at=now - timedelta(days=90),
                last_outcome="ok", last_status=200, last_duration_s=rng.random(),
                last_real_change_at=now - timedelta(days=rng.randrange(30)), tls_expires_at=now + timedelta(days=60)))
        tallies = [dict(page_id=pid, family=fam, key=key, count=rng.randrange(1, 500)) for pid in ids
                   for fam, key in (("outcome", "ok"), ("outcome", "timeout"), ("change", "content"),
                                    ("duration", "0.25"), ("duration", "1.0"), ("duration_ms", "sum"))]
        conn.execute(insert(m.Tally.__table__), tallies)
        batch = []
        for i in range(checks):
            batch.append(dict(page_id=ids[i % len(ids)], started_at=now - timedelta(seconds=i), duration_s=0.2,
                              outcome="ok", http_status=200, bytes=1000, content_type="text/html", redirects=0,
                              attempts=1, error="", worker="bench"))
            if len(batch) == 20_000:
                conn.execute(insert(m.Check.__table__), batch)
                batch.clear()
        if batch:
            conn.execute(insert(m.Check.__table__), batch)
    store.health.heartbeat(Heartbeat(worker="bench", hostname="bench", pid=1, started_at=now, now=now,
                                     last_round_at=now, schedule_lag_s=0.0, checks_done=checks))
    return cat, store


def scrape_times(url: str, pages: int, checks: int, scrapes: int) -> dict[str, object]:
    from monitor.exporter import MetricsServer
    from monitor.maintenance import refresh_aggregates
    from monitor.metrics import build_registry

    t0 = time.perf_counter()
    cat, store = fill(url, pages, checks)
    filled = time.perf_counter() - t0
    started = time.perf_counter()
    refresh_aggregates(cat, store, datetime.now(UTC))  # the maintenance job's: the audit, the dataset grades
    refresh_s = time.perf_counter() - started
    server = MetricsServer(build_registry(cat, store.metrics), "127.0.0.1:0", health=lambda: (True, {})).start()
    times = []
    size = 0
    try:
        for _ in range(scrapes + 1):
            t = time.perf_counter()
            request = urllib.request.Request(f"http://127.0.0.1:{server.port}/metrics",
                                             headers={"Accept-Encoding": "gzip"})  # as Prometheus asks
            with urllib.request.urlopen(request, timeout=60) as r:
                wire = r.read()
            times.append(time.perf_counter() - t)
            size, body = len(wire), gzip.decompress(wire)
            assert body.startswith(b"# HELP"), body[:100]
    finally:
        server.stop()
        store.close()
    first, steady = times[0], times[1:]
    return {"fill_seconds": round(filled, 1), "first_ms": round(first * 1000, 1),
            "report_refresh_s": round(refresh_s, 1), "median_ms": round(statistics.median(steady) * 1000, 1),
            "max_ms": round(max(steady) * 1000, 1),
            "bytes_gzip": size, "bytes": len(body), "series": body.count(b"\n") - body.count(b"\n#")}


def main(argv: list[str]) -> dict[str, object]:
    ap = argparse.ArgumentParser(prog="python -m bench metrics")
    ap.add_argument("--pages", type=int, default=10_000)
    ap.add_argument("--checks", type=int, default=1_000_000)
    ap.add_argument("--scrapes", type=int, default=10)
    args = ap.parse_args(argv)
    return {"pages": args.pages, "checks": args.checks,
            **on_both_databases(lambda url: scrape_times(url, args.pages, args.checks, args.scrapes))}
