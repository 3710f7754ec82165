"""A simulated month: the 23 services of targets.toml plus N synthetic pages, checked on their schedule with
an injected clock and a scripted web (noise on every fetch for some pages, real updates at each page's own
pace, outages, timeouts and slow answers), the daily maintenance job doing retention. Reports the database's
size day by day and the process's memory, so that growth is seen to be bounded. No network."""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import peak_rss_mb
from monitor.clock import VirtualClock

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)


@dataclass
class Web:
    """The scripted web: each page has its own update pace and noise; a few outages and slow answers."""

    clock: VirtualClock
    seed: int = 7
    pace_days: dict[str, float] = field(default_factory=dict)
    phase: dict[str, float] = field(default_factory=dict)
    noisy: set[str] = field(default_factory=set)
    fetches: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def page(self, url: str) -> bytes:
        if url not in self.pace_days:
            self.pace_days[url] = self.rng.choice([0.5, 1, 3, 7, 14, 30, 90])
            self.phase[url] = self.rng.random()
            if self.rng.random() < 0.4:
                self.noisy.add(url)
        now = self.clock.now()
        rev = int((now - START).total_seconds() / (self.pace_days[url] * 86400) + self.phase[url])
        items = "".join(f"<li><a href='/uk/news/{rev - i}'>Новина {rev - i}: рішення виконкому "
                        f"про благоустрій вулиці {(rev - i) % 37}</a> <span>{(rev - i) % 28 + 1}.01.2026</span></li>"
                        for i in range(min(rev + 1, 20)))
        noise = (f"<div class='clock'>Сьогодні {now:%d.%m.%Y %H:%M}</div><p>Переглядів: {self.fetches}</p>"
                 f"<input type='hidden' name='csrf' value='{self.rng.getrandbits(64):x}'>") if url in self.noisy else ""
        return (f"<!doctype html><html lang='uk'><head><meta charset='utf-8'><title>{url}</title></head><body>"
                "<header><a href='/uk'>Покровська міська рада</a><nav><a href='/uk/about'>Про місто</a></nav>"
                f"{noise}</header><main><h1>Новини</h1><ul>{items}</ul></main>"
                "<footer>© 2026 Покровська міська рада</footer></body></html>").encode()

    async def fetch(self, url: str, *, headers: tuple[tuple[str, str], ...] = (), timeout_s: float | None = None,
                    validators: object = None, allow_private: bool = False, probe: bool = False,
                    forward_headers: bool = False):  # type: ignore[no-untyped-def]
        from monitor.domain import FetchResult, Outcome

        self.fetches += 1
        now = self.clock.now()
        if "svc-3." in url and START + timedelta(days=10) <= now < START + timedelta(days=12):
            return FetchResult(url=url, final_url=url, outcome=Outcome.CONNECT, started_at=now, elapsed_s=0.2,
                               error="connection refused")
        roll = self.rng.random()
        if roll < 0.01:
            return FetchResult(url=url, final_url=url, outcome=Outcome.TIMEOUT, started_at=now, elapsed_s=30.0,
                               error="read timeout")
        return FetchResult(url=url, final_url=url, outcome=Outcome.OK, started_at=now,
                           elapsed_s=15.0 if roll < 0.03 else 0.3, status=200, body=self.page(url),
                           content_type="text/html", charset="utf-8")


def catalogue(db: str, synthetic: int, keep_checks: str, keep_raw: str):  # type: ignore[no-untyped-def]
    from monitor.config import parse_catalogue

    data = tomllib.loads((ROOT / "targets.toml").read_text(encoding="utf-8"))
    data["settings"].update(database_url=db, concurrency=32, per_host_concurrency=32, keep_checks=keep_checks,
                            keep_raw=keep_raw)
    for svc in data["services"]:  # one synthetic page per service of the order, on its own regulation
        svc["pages"] = [{"url": f"https://{svc['id']}.soak.test/uk"}]
    dept = next(iter(data["departments"].values()))["name"]
    regulations = ["daily", "weekly", "monthly", "quarterly"]
    for s in range(0, synthetic, 100):
        data["services"].append({
            "id": f"svc-{s // 100}", "name": f"Synthetic {s // 100}", "department": dept,
            "regulation": regulations[(s // 100) % len(regulations)],
            "pages": [{"url": f"https://svc-{s // 100}.soak.test/p/{i}"} for i in range(s, min(s + 100, synthetic))]})
    return parse_catalogue(data, environ={})


async def soak(db: str, days: int, synthetic: int, keep_checks: str, keep_raw: str) -> dict[str, object]:
    """Through the public API: the runner, the schedule's virtual replay and the maintenance job."""
    from monitor.maintenance import Maintenance
    from monitor.runner import Runner
    from monitor.schedule import Periodic, replay
    from monitor.store import Store

    clock = VirtualClock(START)
    cat = catalogue(db, synthetic, keep_checks, keep_raw)
    store = Store.open(db, auto_upgrade=True)
    runner = Runner(cat, store, Web(clock), clock=clock, worker="soak")
    targets = runner.prepare()
    maintenance = Maintenance(runner)
    writer = asyncio.create_task(runner.recorder.run())
    trace: list[dict[str, float]] = []
    t0 = time.perf_counter()

    async def daily() -> None:  # at 03:00, as the running monitor's maintenance job
        await runner.recorder.drain()
        await maintenance.prune()
        size = store.maintenance.size_bytes() or 0
        trace.append({"day": (clock.now() - START).days, "db_mb": round(size / 2**20, 1),
                      "checks": runner.health.checks_done, "rss_mb": round(peak_rss_mb(), 1)})
        print(f"soak: {trace[-1]}", file=sys.stderr, flush=True)

    checks = await replay(lambda t, at: runner.check(t, scheduled_at=at), targets, runner.states, clock,
                          START + timedelta(days=days), [Periodic("maintenance", daily, 86_400, 3 * 3600)])
    await runner.recorder.drain()
    writer.cancel()
    counts = store.maintenance.row_counts()
    size = store.maintenance.size_bytes() or 0
    breaks = store.maintenance.verify().breaks
    store.close()
    return {"days": days, "pages": len(targets), "checks": checks, "wall_s": round(time.perf_counter() - t0, 1),
            "keep_checks": keep_checks, "keep_raw": keep_raw, "db_mb": round(size / 2**20, 1),
            "bytes_per_check": round(size / max(1, checks)),
            "rows": {k: counts[k] for k in ("checks", "versions", "changes", "blobs", "coverage_days")},
            "chain_breaks": len(breaks), "peak_rss_mb": round(peak_rss_mb(), 1),
            "trace": [row for row in trace if row["day"] % 5 == 0 or row is trace[-1]]}


def main(argv: list[str]) -> dict[str, object]:
    ap = argparse.ArgumentParser(prog="python -m bench soak")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--pages", type=int, default=1000, help="synthetic pages beside the 23 services")
    ap.add_argument("--keep-checks", default="7d", help="retention of check rows in the soak")
    ap.add_argument("--keep-raw", default="7d", help="retention of raw captures in the soak")
    ap.add_argument("--db", default=None, help="a database URL (default: a temporary SQLite file)")
    args = ap.parse_args(argv)
    logging.getLogger("monitor").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or f"sqlite:///{Path(tmp) / 'soak.db'}"
        return asyncio.run(soak(db, args.days, args.pages, args.keep_checks, args.keep_raw))
