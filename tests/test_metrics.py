"""The metrics: small collectors reading the store at scrape time (and the aggregates the maintenance job
keeps), Prometheus conventions, promtool-clean; the exporter serving them."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from monitor.exporter import MetricsServer
from monitor.maintenance import refresh_aggregates
from monitor.metrics import GRADE_VALUE, Runtime, build_registry
from monitor.ports import Aggregate, PageMetricRow, QueueRow, ServiceAggregate, TallyRow, WorkerRow
from monitor.runner import Runner
from monitor.status import service_statuses
from monitor.store import Store
from tests.conftest import catalogue_toml, which
from tests.helpers import Clock, StubFetcher, catalogue, html, open_store

URL = "https://city.example/uk"
EXTRA = """
[[services]]
id = "e-petitions"
name = "Електронні петиції"
department = "Сектор інформаційних технологій та автоматизованих систем"
regulation = "as_needed"

[[services]]
id = "safe-city"
name = "Безпечне Місто"
department = "Сектор інформаційних технологій та автоматизованих систем"
regulation = "weekly"
suspended = true
  [[services.pages]]
  url = "https://safe.example/"
"""


async def _history(store: Store, clock: Clock) -> Runner:
    cat = catalogue(catalogue_toml([URL], regulation="weekly") + EXTRA)
    fetcher = StubFetcher(clock)
    runner = Runner(cat, store, fetcher, clock=clock)
    runner.prepare()
    writer = asyncio.create_task(runner.recorder.run())
    fetcher.pages[URL] = (200, html("Перша новина"))
    fetcher.pages["https://safe.example/"] = (200, html("Безпечне місто"))
    await runner.round(list(runner.targets.values()))
    clock.advance(days=1)
    fetcher.pages[URL] = (200, html("Перша новина", "Друга новина"))
    fetcher.failures["https://safe.example/"] = __import__("monitor.domain", fromlist=["Outcome"]).Outcome.TIMEOUT
    await runner.round(list(runner.targets.values()))
    await runner.recorder.drain(5)
    runner.heartbeat()
    writer.cancel()
    return runner


def _page(runner: Runner, site: str) -> str:
    """The `page` label of the service's (only) page: an id derived from its address."""
    (label,) = {t.page.label for t in runner.targets.values() if t.service.id == site}
    return label


def _store(url: str) -> Store:
    return open_store(url)


async def test_values_come_from_the_database_and_agree_with_status(db_url: str) -> None:
    store = _store(db_url)
    clock = Clock()
    runner = await _history(store, clock)
    clock.advance(days=10)  # ten days after the last real update of a weekly service: due
    reg = build_registry(runner.catalogue, store.metrics, clock=clock)
    v = reg.get_sample_value
    labels = {"site": "portal", "department": "it-sector", "regulation": "weekly"}
    statuses = {s.id: s for s in service_statuses(runner.catalogue, store.metrics.service_aggregates(), clock.now())}
    portal = statuses["portal"]
    assert portal.last_real_update_at is not None and portal.deadline is not None
    assert v("freshness_grade", labels) == GRADE_VALUE[portal.grade] == 1
    assert v("freshness_last_real_update_timestamp_seconds", labels) == portal.last_real_update_at.timestamp()
    assert v("freshness_deadline_timestamp_seconds", labels) == portal.deadline.timestamp()
    assert v("freshness_max_age_seconds", labels) == 7 * 86400
    assert v("freshness_checks_total", {"site": "portal", "outcome": "ok"}) == 2
    assert v("freshness_checks_total", {"site": "portal", "outcome": "timeout"}) == 0  # known series exported as 0
    assert v("freshness_checks_total", {"site": "safe-city", "outcome": "timeout"}) == 1
    assert v("freshness_changes_total", {"site": "portal", "class": "content"}) == 1
    assert v("freshness_fetch_duration_seconds_count", {"site": "portal"}) == 2
    assert v("freshness_page_up", {"site": "safe-city", "page": _page(runner, "safe-city")}) == 0
    assert v("freshness_page_up", {"site": "portal", "page": _page(runner, "portal")}) == 1
    assert v("freshness_site_monitored", {**labels, "site": "e-petitions", "regulation": "as_needed"}) == 0
    assert v("freshness_site_suspended", {**labels, "site": "safe-city"}) == 1
    assert v("freshness_site_state", {**labels, "site": "e-petitions", "regulation": "as_needed",
                                      "state": "unmonitored"}) == 1
    assert v("freshness_site_info", {**labels, "name": "SMART-ПОРТАЛ",
                                     "department_name": "Сектор інформаційних технологій та автоматизованих систем",
                                     "responsible": "", "regulation_text": "on every change, at least weekly",
                                     "regulation_text_uk": "щоразу зі зміною даних, але не рідше ніж раз на тиждень",
                                     }) == 1
    assert v("freshness_database_up") == 1
    assert v("freshness_monitor_heartbeat_timestamp_seconds") == (clock.now() - timedelta(days=10)).timestamp()
    assert v("freshness_monitor_max_interval_seconds") == 3 * 3600
    assert v("freshness_grade", {**labels, "site": "e-petitions", "regulation": "as_needed"}) is None
    store.close()


def test_a_page_keeps_its_label_when_the_catalogue_is_reordered_and_info_joins_it(tmp_path: Path) -> None:
    def pages(order: list[str]) -> str:
        return catalogue_toml(order)

    urls = ["https://portal.example/news", "https://portal.example/docs?token=s3cret", "https://portal.example/"]
    labels = []
    for order in (urls, list(reversed(urls))):
        cat = catalogue(pages(order))
        labels.append({p.url: p.label for s in cat.services for p in s.pages})
    assert labels[0] == labels[1] and len(set(labels[0].values())) == 3  # the address decides, not the position
    secret = labels[0]["https://portal.example/docs?token=s3cret"]
    assert secret == catalogue(pages([urls[1].replace("s3cret", "other")])).services[0].pages[0].label
    store = _store(f"sqlite:///{tmp_path / 'm.db'}")
    cat = catalogue(pages(urls))
    Runner(cat, store, StubFetcher(Clock())).prepare()
    text = generate_latest(build_registry(cat, store.metrics)).decode()
    store.close()
    info = re.findall(r'freshness_page_info\{[^}]*page="(\w+)"[^}]*url="([^"]+)"', text)
    assert {label: url for label, url in info} == {v: k.replace("s3cret", "REDACTED") for k, v in labels[0].items()}


class DeadDatabase:
    """A MetricsReader whose every query fails, and counts that it was asked."""

    def __init__(self) -> None:
        self.asked = 0

    def _fail(self) -> None:
        self.asked += 1
        raise RuntimeError("database is down")

    def service_aggregates(self) -> dict[str, ServiceAggregate]:
        self._fail()
        return {}

    def workers(self) -> list[WorkerRow]:
        self._fail()
        return []

    def page_metrics(self) -> list[PageMetricRow]:
        self._fail()
        return []

    def tallies_by_service(self) -> list[TallyRow]:
        self._fail()
        return []

    def queue(self) -> list[QueueRow]:
        self._fail()
        return []

    def last_reports(self) -> dict[str, datetime]:
        self._fail()
        return {}

    def aggregates(self, name: str) -> dict[str, Aggregate]:
        self._fail()
        return {}


def test_registering_queries_nothing_and_a_dead_database_still_answers() -> None:
    dead = DeadDatabase()
    cat = catalogue(catalogue_toml([URL]))
    reg = build_registry(cat, dead)  # a registry that describes what is registered: describe() must not query
    assert dead.asked == 0
    assert reg.get_sample_value("freshness_database_up") == 0 and dead.asked > 0
    assert reg.get_sample_value("freshness_site_monitored", {"site": "portal", "department": "it-sector",
                                                             "regulation": "weekly"}) == 1
    assert reg.get_sample_value("freshness_build_info", {"version": __import__("monitor").__version__}) == 1


async def test_metrics_pass_promtool_and_healthz_answers(tmp_path: Path) -> None:
    promtool = which("promtool")
    store = _store(f"sqlite:///{tmp_path / 'm.db'}")
    runner = await _history(store, Clock())
    registry = build_registry(runner.catalogue, store.metrics)
    server = MetricsServer(registry, "127.0.0.1:0", health=lambda: (True, {"checks_done": 4})).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as r:
            body = r.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=10) as r:
            health = json.loads(r.read())
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/other", timeout=10)
    finally:
        server.stop()
    missing.value.close()
    assert health == {"ok": True, "checks_done": 4} and missing.value.code == 404
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert b"freshness_grade" in body and b"freshness_database_up 1.0" in body
    store.close()


async def test_a_scrape_only_reads_the_aggregates_the_maintenance_job_keeps(tmp_path: Path) -> None:
    """The self-report verdicts come from the kept aggregates: none before the maintenance job ran, its counts
    after, and a scrape never runs the audit itself."""
    store = _store(f"sqlite:///{tmp_path / 'm.db'}")
    clock = Clock()
    runner = await _history(store, clock)
    reg = build_registry(runner.catalogue, store.metrics, clock=clock)
    assert reg.get_sample_value("freshness_unreported_updates", {"site": "portal", "department": "it-sector",
                                                                 "regulation": "weekly"}) is None
    refresh_aggregates(runner.catalogue, store, clock.advance(hours=1))
    assert reg.get_sample_value("freshness_unreported_updates", {"site": "portal", "department": "it-sector",
                                                                 "regulation": "weekly"}) == 1
    assert reg.get_sample_value("freshness_self_reports", {"site": "portal", "verdict": "confirmed"}) == 0
    store.close()


def test_no_url_or_error_text_in_labels_except_info(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    store = _store(f"sqlite:///{tmp_path / 'm.db'}")
    asyncio.run(_history(store, Clock()))
    cat = catalogue(catalogue_toml([URL], regulation="weekly") + EXTRA)
    text = generate_latest(build_registry(cat, store.metrics)).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if family.name.endswith("_info") or family.name in ("freshness_site", "freshness_page", "freshness_build"):
                continue
            assert not any("://" in str(value) for value in sample.labels.values()), sample
            assert "service" not in sample.labels and "job" not in sample.labels
    store.close()


@pytest.mark.parametrize("name", ["overview", "service", "reports"])
def test_dashboards_are_editable_and_use_known_metrics(name: str) -> None:
    import re

    root = Path(__file__).resolve().parents[1]
    dash = json.loads((root / "grafana" / "dashboards" / f"{name}.json").read_text(encoding="utf-8"))
    assert "__inputs" not in dash and "id" not in dash and len(dash["uid"]) <= 40
    text = json.dumps(dash)
    assert "${DS_" not in text
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    builtin = {"__interval", "__rate_interval", "__range", "__data", "__field", "__value", "__url_time_range"}
    defined = {v["name"] for v in dash["templating"]["list"]} | builtin
    assert set(re.findall(r"\$\{?(\w+)", text)) <= defined
    exported = _exported_names()
    for metric in set(re.findall(r"(?<![:\w])(freshness_\w+)", text)):
        assert metric in exported, metric
    from monitor.alerting import RECORDING

    recorded = {r["record"] for r in RECORDING}
    for metric in set(re.findall(r"\b(\w+:freshness_\w+:\w+)", text)):
        assert metric in recorded, metric  # a recording rule we ship


def _exported_names() -> set[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        store = _store(f"sqlite:///{tmp}/m.db")
        runner = asyncio.run(_history(store, Clock()))
        registry = build_registry(runner.catalogue, store.metrics,
                                  runtime=lambda: Runtime(pending_records=0, database_writable=True))
        text = generate_latest(registry).decode()
        store.close()
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):  # every family, with or without samples in this history
            _, _, name, kind = line.split(" ")
            names.add(name)
            names.update({"counter": [f"{name}_total"], "histogram": [f"{name}_bucket", f"{name}_sum", f"{name}_count"],
                          "info": [f"{name}_info"]}.get(kind, []))
        elif line and not line.startswith("#"):
            names.add(line.split("{")[0].split(" ")[0])
    return names


def test_alert_rules_use_only_exported_metrics_and_promtool_tests_pass() -> None:
    import re

    root = Path(__file__).resolve().parents[1]
    rules = (root / "alerts" / "freshness.rules.yml").read_text(encoding="utf-8")
    from monitor.alerting import EXAMPLE_EXTERNAL_URL, EXAMPLE_GRAFANA_URL, Links, rules_yaml

    assert rules == rules_yaml(Links(EXAMPLE_EXTERNAL_URL, EXAMPLE_GRAFANA_URL)), (
        f"regenerate with `monitor alerting rules --external-url {EXAMPLE_EXTERNAL_URL} --grafana-url "
        f"{EXAMPLE_GRAFANA_URL} -o alerts/freshness.rules.yml`")
    exported = _exported_names()
    for metric in set(re.findall(r"(?<![:\w])(freshness_\w+)", rules)):
        assert metric in exported or metric.endswith("_info"), metric
    promtool = which("promtool")
    for args in (["check", "rules", "--lint=all", "--lint-fatal", "freshness.rules.yml"],
                 ["test", "rules", "tests.yml"]):
        result = subprocess.run([promtool, *args], cwd=root / "alerts", capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr


async def test_page_series_follow_each_check_and_gzip_is_served(tmp_path: Path) -> None:
    import gzip

    store = _store(f"sqlite:///{tmp_path / 'm.db'}")
    clock = Clock()
    runner = await _history(store, clock)
    registry = build_registry(runner.catalogue, store.metrics, clock=clock)
    server = MetricsServer(registry, "127.0.0.1:0", health=lambda: (True, {})).start()

    def scrape() -> bytes:
        request = urllib.request.Request(f"http://127.0.0.1:{server.port}/metrics",
                                         headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.headers["Content-Encoding"] == "gzip"
            return gzip.decompress(r.read())

    safe, portal_page = _page(runner, "safe-city"), _page(runner, "portal")
    try:
        before = scrape()
        assert f'freshness_page_up{{site="safe-city",page="{safe}"}} 0.0\n'.encode() in before
        assert f'freshness_page_up{{site="portal",page="{portal_page}"}} 1.0\n'.encode() in before
        # safe-city answers again: its lines are rendered anew, the portal's come from the cache unchanged
        fetcher = runner.fetcher
        assert isinstance(fetcher, StubFetcher)
        fetcher.failures.clear()
        clock.advance(hours=1)
        writer = asyncio.create_task(runner.recorder.run())
        await runner.round([t for t in runner.targets.values() if t.service.id == "safe-city"])
        await runner.recorder.drain(5)
        writer.cancel()
        after = scrape()
        assert f'freshness_page_up{{site="safe-city",page="{safe}"}} 1.0\n'.encode() in after
        assert f'freshness_page_http_status{{site="safe-city",page="{safe}"}} 200.0\n'.encode() in after
        when = clock.now().timestamp()
        checked = f'freshness_page_last_check_timestamp_seconds{{site="safe-city",page="{safe}"}} {when!r}'
        assert checked.encode() in after
        portal = [line for line in before.splitlines() if f'site="portal",page="{portal_page}"'.encode() in line]
        assert portal and all(line in after.splitlines() for line in portal)
        plain = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10)
        assert plain.headers.get("Content-Encoding") is None and plain.read().startswith(b"# HELP")
    finally:
        server.stop()
        store.close()
    # other readers get the same per-page values as samples
    assert registry.get_sample_value("freshness_page_up", {"site": "safe-city", "page": safe}) == 1


def test_concurrent_scrapes_keep_their_own_state() -> None:
    """The exporter serves each scrape in its own thread: a scrape that starts while another is under way must
    not wipe out what the other one found (its database failing), nor take its query results."""
    import threading

    in_workers, healthy_done = threading.Event(), threading.Event()

    class Flaky(DeadDatabase):
        def _fail(self) -> None:
            pass  # only the queries below fail, and only for the "broken" scrape

        def service_aggregates(self) -> dict[str, ServiceAggregate]:
            if threading.current_thread().name == "broken":
                raise RuntimeError("this scrape's connection broke")
            return {}

        def workers(self) -> list[WorkerRow]:
            if threading.current_thread().name == "broken":
                in_workers.set()  # the healthy scrape runs from start to end now
                healthy_done.wait(5)
            return []

    registry = build_registry(catalogue(catalogue_toml([URL])), Flaky())
    seen: dict[str, float | None] = {}

    def scrape() -> None:
        name = threading.current_thread().name
        if name == "healthy":
            in_workers.wait(5)
        seen[name] = registry.get_sample_value("freshness_database_up")
        if name == "healthy":
            healthy_done.set()

    threads = [threading.Thread(target=scrape, name=name) for name in ("broken", "healthy")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"broken": 0, "healthy": 1}
