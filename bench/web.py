"""The web interface at 10,000 pages (100 services of 100 pages) with a year of history: 1,000,000 check rows
and a real change a month on every page (120,000 versions and changes), on SQLite and PostgreSQL.

Timed end to end over HTTP against uvicorn on 127.0.0.1: the public page `/` (its first answer computes the
period strips of every service; they are then reused for a minute, as in production) and a service page
(100 pages, signed in): median and 95th percentile of N requests."""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.crawl import on_both_databases
from bench.metrics import fill

PASSWORD = "bench password 1"


def _history(store: Any, months: int = 12) -> int:
    """A real change a month on every page over the last year (versions and changes, bulk)."""
    from sqlalchemy import insert, select

    from monitor.store import models as m

    P, V, CH, B = (m.Page.__table__, m.Version.__table__, m.Change.__table__,  # type: ignore[attr-defined]
                   m.Blob.__table__)  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(insert(B), [dict(sha256="0" * 64, size=2, codec="raw", data=b"{}", created_at=now)])
        pages = [pid for (pid,) in conn.execute(select(P.c.id))]
        versions = [dict(page_id=pid, key_hash=f"{pid:08d}{k:04d}".ljust(64, "0"),
                         first_seen_at=now - timedelta(days=30 * (months - k)),
                         last_seen_at=now - timedelta(days=30 * (months - k - 1)), content_sha="0" * 64,
                         **{f"fp_{f}": "0" * 16 for f in ("raw", "text", "main", "main_dated", "main_masked", "links",
                                                            "documents")})
                    for pid in pages for k in range(months)]
        for i in range(0, len(versions), 20_000):
            conn.execute(insert(V), versions[i:i + 20_000])
        ids = {(r.page_id, r.key_hash): r.id for r in conn.execute(select(V.c.id, V.c.page_id, V.c.key_hash))}
        changes = []
        for pid in pages:
            for k in range(1, months):
                at = now - timedelta(days=30 * (months - k))
                changes.append(dict(
                    page_id=pid, from_version_id=ids[(pid, f"{pid:08d}{k - 1:04d}".ljust(64, "0"))],
                    to_version_id=ids[(pid, f"{pid:08d}{k:04d}".ljust(64, "0"))], window_start=at - timedelta(hours=3),
                    detected_at=at, change_class="content", is_real=True, added=1, removed=0, edited=2))
        for i in range(0, len(changes), 20_000):
            conn.execute(insert(CH), changes[i:i + 20_000])
    return len(changes)


def _times(url: str, n: int, cookie: str = "") -> dict[str, float]:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
        with urllib.request.urlopen(request, timeout=120) as r:
            body = r.read()
            assert r.status == 200 and b"<html" in body
        times.append(time.perf_counter() - t)
    ordered = sorted(times)
    return {"median_ms": round(statistics.median(times) * 1000, 1),
            "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1)}


def measure(url: str, pages: int, checks: int, requests: int) -> dict[str, object]:
    import uvicorn

    from monitor.web import Web, create_app, hash_password

    t0 = time.perf_counter()
    cat, store = fill(url, pages, checks)
    changes = _history(store)
    filled = time.perf_counter() - t0
    store.web.put_user("bench", role="viewer", password_hash=hash_password(PASSWORD), now=datetime.now(UTC))
    server = uvicorn.Server(uvicorn.Config(create_app(Web(cat, store, secret="bench")), host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="off", proxy_headers=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    try:
        t = time.perf_counter()
        _times(f"{base}/", 1)
        first = time.perf_counter() - t
        public = _times(f"{base}/", requests)
        import http.cookiejar
        import re

        class Keep(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any) -> None:
                return None

        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(Keep, urllib.request.HTTPCookieProcessor(jar))
        with opener.open(f"{base}/login", timeout=60) as r:
            token = re.search(r'name="csrf" value="([^"]+)"', r.read().decode())
        assert token is not None
        form = urllib.parse.urlencode({"user": "bench", "password": PASSWORD, "csrf": token.group(1)}).encode()
        try:
            opener.open(urllib.request.Request(f"{base}/login", data=form), timeout=60)
        except urllib.error.HTTPError as e:
            e.close()
        cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
        service = _times(f"{base}/services/svc-0", max(5, requests // 5), cookie)
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()
    return {"fill_seconds": round(filled, 1), "changes": changes, "public_first_ms": round(first * 1000, 1),
            "public": public, "service_page": service}


def main(argv: list[str]) -> dict[str, object]:
    ap = argparse.ArgumentParser(prog="python -m bench web")
    ap.add_argument("--pages", type=int, default=10_000)
    ap.add_argument("--checks", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=100)
    args = ap.parse_args(argv)
    return {"pages": args.pages, "checks": args.checks,
            **on_both_databases(lambda url: measure(url, args.pages, args.checks, args.requests))}
