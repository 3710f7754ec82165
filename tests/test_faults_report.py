"""The technical-faults list (item 1.4): a constructed history gives exactly the expected faults; `monitor
faults` in every format, over real checks and link checks of a local site."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.faults import fault_views, find_faults
from monitor.fetch import Fetcher
from monitor.maintenance import Maintenance
from monitor.ports import CheckRow, DayRow, LinkRow
from monitor.runner import Runner
from monitor.store import Store
from tests.conftest import catalogue_toml
from tests.helpers import catalogue, html
from tests.siteserver import Site, page

T0 = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
PAGE = "https://city.example/uk"


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def check(hours: float, outcome: str = "ok", status: int | None = 200, duration: float = 0.4,
          quality: str | None = "ok", error: str = "", url: str = PAGE) -> CheckRow:
    return CheckRow(service_id="portal", url=url, started_at=at(hours), duration_s=duration, outcome=outcome,
                    status=status, quality=quality, error=error)


def day(when: str, checks: int, successes: int, failures: str) -> DayRow:
    return DayRow(service_id="portal", url=PAGE, day=when, checks=checks, successes=successes, failures=failures,
                  slow=0)


def link(url: str, when: datetime, outcome: str, status: int, error: str) -> LinkRow:
    return LinkRow(service_id="portal", page=PAGE, url=url, checked_at=when, outcome=outcome, status=status,
                   error=error)


def test_a_constructed_history_gives_exactly_the_expected_faults() -> None:
    checks = [check(0), check(1, "timeout", None, 30.0, None, "no complete response within 30s"),
              check(2, "http_status", 503, error="HTTP 503"), check(3),  # down from 1 h to 3 h
              check(4, duration=12.5), check(5, duration=15.0),  # two slow answers
              check(6, "bad_capture", 200, quality="soft_404", error="a 'not found' page served with 200"),
              check(7, "tls", None, 0.1, None, "certificate verify failed: certificate has expired"),
              check(8, "tls", None, 0.1, None, "certificate verify failed: certificate has expired")]  # still down
    days = [day("2026-10-20", 24, 0, "connect:24"),  # pruned: a whole day down
            day("2026-10-21", 24, 24, "")]  # pruned, clean: nothing to list
    links = [link("https://city.example/uk/old.pdf", at(1), "http_status", 404, "HTTP 404"),
             link("https://city.example/uk/old.pdf", at(25), "http_status", 404, "HTTP 404"),
             link("https://city.example/uk/moved", at(1), "http_status", 500, "HTTP 500"),
             link("https://city.example/uk/moved", at(25), "ok", 200, ""),
             link("https://city.example/uk/fine", at(1), "ok", 200, "")]
    certs = [("portal", PAGE, at(24 * 10)), ("other", "https://other.example/", at(24 * 400))]
    end = at(9)
    found = find_faults(checks, days, links, certs, services=["portal", "other"], start=at(-24 * 14), end=end,
                        slow_s=10.0)
    s = found["portal"]
    assert [(f.kind, f.start, f.end, f.count) for f in s.faults] == [
        ("daily_summary", datetime(2026, 10, 20, tzinfo=UTC), datetime(2026, 10, 21, tzinfo=UTC), 24),
        ("downtime", at(1), at(3), 2),
        ("broken_link", at(1), None, 2),
        ("broken_link", at(1), at(25), 1),
        ("slow", at(4), at(5), 2),
        ("bad_capture", at(6), at(6), 1),
        ("downtime", at(7), None, 2),
        ("tls", at(7), at(8), 2),
        ("certificate", at(240), None, 0)]
    first_down = s.faults[1]
    assert first_down.detail.startswith("timeout ×1, http 503 ×1") or first_down.detail.startswith(
        "http 503 ×1, timeout ×1")
    assert "HTTP 503" in first_down.detail
    # 1-3 h, then 7 h to the end of the range; the pruned day down entirely counts as 24 h
    assert s.downtime_s == 2 * 3600 + 2 * 3600 + 24 * 3600
    assert s.errors == {"connect": 24, "timeout": 1, "http 503": 1, "bad_capture": 1, "tls": 2}
    assert s.checks == 9 + 48 and s.failed == 4 + 24 and s.slow == 2 and s.bad_captures == 1
    assert s.broken_links == 1  # /moved was fixed since
    assert "old.pdf → http 404" in s.faults[2].detail and "(fixed since)" in s.faults[3].detail
    assert "soft_404" in s.faults[5].detail and "expires 2026-11-12" in s.faults[8].detail
    assert found["other"].faults == [] and found["other"].checks == 0  # the certificate is far from expiry
    summary = fault_views(found, "Europe/Kyiv")["summary"]
    assert summary.rows[0][:4] == ("portal", 57, 28, 28.0)


def test_monitor_faults_command(tmp_path: Path) -> None:
    with Site() as site:
        site.routes["/uk"] = page(html("Новина", extra="<a href='/uk/gone'>Зникла сторінка</a>"))
        site.routes["/uk/articles/item/1"] = page("<p>Новина</p>")
        db = f"sqlite:///{tmp_path / 'm.db'}"
        targets = tmp_path / "targets.toml"
        targets.write_text(catalogue_toml([site.url("/uk"), site.url("/down")], db=db,
                                          extra_settings='slow = "0.1s"'), encoding="utf-8")
        for _ in range(2):
            done = subprocess.run([sys.executable, "-m", "monitor", "-t", str(targets), "check"], capture_output=True,
                                  text=True, timeout=120)
        store = Store.open(db)
        cat = catalogue(targets.read_text(encoding="utf-8"))

        async def links() -> None:
            async with Fetcher(cat.settings) as fetcher:
                runner = Runner(cat, store, fetcher)
                runner.prepare()
                await Maintenance(runner).check_links()

        asyncio.run(links())
        store.close()
    today = datetime.now(UTC).date()  # the range is in Kyiv days: two either side covers any hour of UTC
    span = ["--from", str(today - timedelta(days=2)), "--to", str(today + timedelta(days=2))]

    def faults(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "monitor", "-t", str(targets), "faults", *span, *args],
                              capture_output=True, text=True, timeout=120)

    data = json.loads(faults("--format", "json").stdout)
    kinds = {(row["kind"], row["page"].rsplit("/", 1)[1]) for row in data["faults"]}
    assert ("downtime", "down") in kinds and ("broken_link", "uk") in kinds
    assert any("/uk/gone → http 404" in row["detail"] for row in data["faults"])
    (summary,) = data["summary"]
    assert summary["service"] == "portal" and summary["checks"] == 4 and summary["failed"] == 2
    assert summary["errors"] == "http 404 ×2" and summary["broken_links"] == 1

    csv_out = faults("--format", "csv", "--view", "summary", "--lang", "en").stdout
    assert csv_out.splitlines()[0].startswith('Service,Checks,Failed,"Downtime, h"')
    page_out = faults("--format", "html").stdout
    assert "Content-Security-Policy" in page_out and "Перелік технічних збоїв" in page_out
    assert "<script" not in page_out and "непрацююче посилання" in page_out
    table = faults()
    assert table.returncode == 0 and "недоступність" in table.stdout
    bad = faults("--service", "nope")
    assert bad.returncode != 0 and "unknown service 'nope'" in bad.stderr
    assert done.returncode in (0, 1)
