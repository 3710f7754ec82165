"""Crawl N pages from 127.0.0.1 through the whole loop (fetch, extract, fingerprint, detect, store) into
SQLite and PostgreSQL, beside a raw httpx loop over the same pages. Each mode runs in its own process so
its peak RSS is its own."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bench.common import PageServer, corpus_pages, peak_rss_mb

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def catalogue_text(urls: list[str], db: str, concurrency: int) -> str:
    per_service = 100
    out = [f'[settings]\ndatabase_url = "{db}"\nuser_agent = "bench (+mailto:bench@example.org)"\n'
           f"concurrency = {concurrency}\nper_host_concurrency = {concurrency}\nper_host_delay = \"0.0001s\"\n"
           'timeout = "60s"\n\n[departments.bench]\nname = "Bench"\n']
    for s in range(0, len(urls), per_service):
        out.append(f'\n[[services]]\nid = "svc-{s // per_service}"\nname = "Service {s}"\ndepartment = "Bench"\n'
                   'regulation = "weekly"\n')
        for url in urls[s:s + per_service]:
            out.append(f'  [[services.pages]]\n  url = "{url}"\n  allow_private = true\n')
    return "".join(out)


async def raw_loop(urls: list[str], concurrency: int) -> float:
    import httpx

    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        async def one(url: str) -> int:
            async with sem:
                r = await client.get(url)
                return len(r.content)

        t0 = time.perf_counter()
        sizes = await asyncio.gather(*(one(u) for u in urls))
        elapsed = time.perf_counter() - t0
    assert all(sizes)
    return elapsed


async def whole_loop(urls: list[str], db: str, concurrency: int, rounds: int, sandboxed: bool = True) -> list[float]:
    import tomllib

    from monitor.config import parse_catalogue
    from monitor.fetch import Fetcher
    from monitor.runner import Runner
    from monitor.sandbox import Limits, Sandbox
    from monitor.store import Store

    cat = parse_catalogue(tomllib.loads(catalogue_text(urls, db, concurrency)), environ={})
    store = Store.open(db, auto_upgrade=True)
    times = []
    box = Sandbox(cat.settings.read_workers, Limits(cpu_s=cat.settings.read_cpu_s)) if sandboxed else None
    async with Fetcher(cat.settings) as fetcher:
        # as `monitor run` reads captures: in worker processes (read_workers, 2 by default); no learning attached
        # (calibration would add its own fetches)
        runner = Runner(cat, store, fetcher, reader=box.read if box else None)
        targets = runner.prepare()
        writer = asyncio.create_task(runner.recorder.run())
        for _ in range(rounds):
            t0 = time.perf_counter()
            records = await runner.round(targets)
            await runner.recorder.drain()
            times.append(time.perf_counter() - t0)
            bad = [r for r in records if not r.outcome.success]
            assert not bad, bad[0].fetch.error
        writer.cancel()
    if box is not None:
        box.close()
    store.close()
    return times


def child(mode: str, n: int, port: int, db: str, concurrency: int, rounds: int) -> None:
    urls = [f"http://127.0.0.1:{port}/p/{i}" for i in range(n)]
    if mode == "raw":
        times = [asyncio.run(raw_loop(urls, concurrency))]
    else:
        times = asyncio.run(whole_loop(urls, db, concurrency, rounds, sandboxed=mode == "loop"))
    print(json.dumps({"mode": mode, "seconds": times, "peak_rss_mb": peak_rss_mb()}))


def make_pg_db() -> str | None:
    try:
        import psycopg

        name = f"monitor_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    except Exception as exc:
        print(f"PostgreSQL skipped: {exc}", file=sys.stderr)
        return None


def on_both_databases(measure: Callable[[str], dict[str, object]]) -> dict[str, object]:
    """`measure` on a new SQLite file, then on a new PostgreSQL database when the server answers."""
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out["sqlite"] = measure(f"sqlite:///{Path(tmp) / 'bench.db'}")
    pg = make_pg_db()
    if pg:
        try:
            out["postgresql"] = measure(pg)
        finally:
            drop_pg_db(pg)
    return out


def drop_pg_db(url: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def main(argv: list[str]) -> dict[str, object]:
    ap = argparse.ArgumentParser(prog="python -m bench crawl")
    ap.add_argument("--pages", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2, help="round 1 stores every page, later rounds find no change")
    ap.add_argument("--in-process", action="store_true",
                    help="read captures in the monitor's own process (read_workers = 0), not in worker processes")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        mode, port, db, rounds = args.child
        child(mode, args.pages, int(port), db, args.concurrency, int(rounds))
        return {}
    bodies = [p.read_bytes() for p in corpus_pages()]
    results: dict[str, object] = {"pages": args.pages, "concurrency": args.concurrency,
                                  "reading": "in process" if args.in_process else "worker processes",
                                  "corpus_pages": len(bodies),
                                  "mean_page_kb": round(sum(map(len, bodies)) / len(bodies) / 1024, 1)}
    with PageServer(bodies) as server, tempfile.TemporaryDirectory() as tmp:
        dbs = {"sqlite": f"sqlite:///{Path(tmp) / 'bench.db'}"}
        pg = make_pg_db()
        if pg:
            dbs["postgresql"] = pg
        runs = [("raw", "-")] + [(name, url) for name, url in dbs.items()]
        for mode, db in runs:
            out = subprocess.run([sys.executable, "-m", "bench", "crawl", "--pages", str(args.pages),
                                  "--concurrency", str(args.concurrency),
                                  "--child", "raw" if mode == "raw" else "inproc" if args.in_process else "loop",
                                  str(server.port), db,
                                  str(args.rounds)], capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"{mode} run failed:\n{out.stderr[-3000:]}")
            data = json.loads(out.stdout.strip().splitlines()[-1])
            secs = data["seconds"]
            results[mode] = {"pages_per_s": [round(args.pages / s, 1) for s in secs],
                             "peak_rss_mb": round(data["peak_rss_mb"], 1)}
        if pg:
            drop_pg_db(pg)
    raw_rate = results["raw"]["pages_per_s"][0]  # type: ignore[index]
    for name in dbs:
        entry = results[name]
        entry["ratio_to_raw"] = [round(r / raw_rate, 2) for r in entry["pages_per_s"]]  # type: ignore[index]
    return results
