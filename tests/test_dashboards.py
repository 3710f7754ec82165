"""The Grafana dashboards: their JSON checked as Grafana reads it, and their queries run against a real
Prometheus scraping a real monitor, with Grafana's own processing (annotation events, the table merge, the
query variable) redone in Python as its source does it. No Grafana server can be installed here: Debian,
PyPI and npm ship none, and its download site cannot be reached."""

from __future__ import annotations

import asyncio
import json
import math
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.alerting import RECORDING
from monitor.domain import ReportRow
from monitor.exporter import MetricsServer
from monitor.fetch import Fetcher
from monitor.maintenance import refresh_aggregates
from monitor.metrics import Runtime, build_registry
from monitor.runner import Runner
from monitor.store import Store
from monitor.store.engine import make_engine, upgrade
from tests.conftest import which
from tests.helpers import Clock, catalogue, free_port, html
from tests.siteserver import Site, page

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = {p.stem: json.loads(p.read_text(encoding="utf-8"))
              for p in sorted((ROOT / "grafana" / "dashboards").glob("*.json"))}
SERVICE_UID = "freshness-service"
# Grafana's own variables that may appear in a dashboard (intervals in queries; data-link variables)
BUILTIN = {"__interval", "__rate_interval", "__range", "__data", "__field", "__value", "__url_time_range",
           "__series"}


def _panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dash["panels"] if p.get("targets")]


def _metrics(text: str) -> set[str]:
    return set(re.findall(r"(?<![:\w])(freshness_\w+|\w+:freshness_\w+:\w+)", text))


def _time_interval() -> str:
    doc = yaml.safe_load((ROOT / "grafana" / "provisioning" / "datasources" / "freshness.yaml").read_text())
    (ds,) = doc["datasources"]
    return str(ds["jsonData"]["timeInterval"])


# ---------------------------------------------------------------------------------------------- the JSON


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_layout_ids_and_variables(name: str) -> None:
    dash = DASHBOARDS[name]
    assert "__inputs" not in dash and "id" not in dash and 0 < len(dash["uid"]) <= 40
    assert isinstance(dash["schemaVersion"], int)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in p.get("targets", [])]
        assert len(refs) == len(set(refs)), p["title"]
    text = json.dumps(dash)
    assert "${DS_" not in text
    defined = {v["name"] for v in dash["templating"]["list"]} | BUILTIN
    assert set(re.findall(r"\$\{?(\w+)", text)) <= defined


def test_provisioning_matches_the_deployment() -> None:
    prov = ROOT / "grafana" / "provisioning"
    (ds,) = yaml.safe_load((prov / "datasources" / "freshness.yaml").read_text())["datasources"]
    assert ds["type"] == "prometheus" and ds["uid"] == "freshness-prom" and ds["url"] == "${PROMETHEUS_URL}"
    (provider,) = yaml.safe_load((prov / "dashboards" / "freshness.yaml").read_text())["providers"]
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"../grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "../grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
    # Grafana's minimum step is the scrape interval: the annotations rely on it to sample every scraped value
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    assert ds["jsonData"]["timeInterval"] == prom["global"]["scrape_interval"]


def _update_annotations() -> list[tuple[str, dict[str, Any]]]:
    return [(name, a) for name, d in DASHBOARDS.items() for a in d["annotations"]["list"]
            if a["name"] in ("Real updates", "Self-reports")]


def test_update_annotations_take_their_time_from_the_timestamp_series() -> None:
    """`changes()` misses a series' first value and any change between two steps; the timestamp itself, read
    as the event's time ("series value as timestamp"), is there from the first scrape on."""
    found = _update_annotations()
    assert {(name, a["name"]) for name, a in found} == {("service", "Real updates"), ("reports", "Self-reports")}
    for _name, a in found:
        assert a["useValueForTime"] is True, a["name"]
        assert "changes(" not in a["expr"] and "increase(" not in a["expr"]
        assert re.search(r"freshness_\w+_timestamp_seconds\{", a["expr"]), a["expr"]
        assert a["expr"].endswith("* 1000"), "Grafana reads the value as milliseconds"
        # a step of the scrape interval samples every scraped value at least once
        assert a["step"] == _time_interval()


def test_site_variable_reads_a_series_only_monitored_services_have() -> None:
    (var,) = [v for v in DASHBOARDS["service"]["templating"]["list"] if v["name"] == "site"]
    assert var["query"]["query"] == var["definition"]
    assert re.fullmatch(r"label_values\(freshness_grade, site\)", var["definition"])
    assert var["current"] == {} and not var["includeAll"] and not var.get("multi")


def _links(p: dict[str, Any]) -> list[dict[str, Any]]:
    fc = p.get("fieldConfig", {})
    found = list(fc.get("defaults", {}).get("links", []))
    for o in fc.get("overrides", []):
        for prop in o["properties"]:
            if prop["id"] == "links":
                found.extend(prop["value"])
    return found


def test_links_go_to_dashboards_that_exist_with_variables_they_define() -> None:
    uids = {d["uid"]: d for d in DASHBOARDS.values()}
    count = 0
    for d in DASHBOARDS.values():
        for link in [*d.get("links", []), *(x for p in d["panels"] for x in _links(p))]:
            m = re.match(r"/d/([\w-]+)(?:\?(.*))?$", link["url"])
            if not m:
                assert link["url"] == "${__value.raw}", link  # a page's own address
                continue
            assert m.group(1) in uids, link
            target_vars = {v["name"] for v in uids[m.group(1)]["templating"]["list"]}
            for param in (m.group(2) or "").split("&"):
                if param.startswith("var-"):
                    assert param[4:].split("=")[0] in target_vars, link
                    count += 1
    assert count


def test_the_recording_rules_are_used() -> None:
    text = json.dumps(DASHBOARDS["overview"])
    for rule in RECORDING:
        assert rule["record"] in text, f"{rule['record']} is recorded for nothing"


def test_pages_are_shown_by_address_never_by_their_page_label() -> None:
    """The `page` label is an id (a hash of the address): a panel shows the address from freshness_page_info."""
    seen = 0
    for d in DASHBOARDS.values():
        for p in _panels(d):
            for t in p["targets"]:
                assert "{{page}}" not in t.get("legendFormat", ""), p["title"]
                per_page = re.findall(r"freshness_page_(?!info)\w+", t["expr"])
                if per_page and "count(" not in t["expr"]:
                    seen += 1
                    assert "on(site, page) group_left(url" in t["expr"], (p["title"], t["expr"])
            for tr in p.get("transformations", []):
                if tr["id"] == "organize":
                    shown = set(tr["options"].get("indexByName", {})) | set(tr["options"].get("renameByName", {}))
                    assert "page" not in shown, p["title"]
    assert seen >= 5


# What each panel's title promises, as the metrics its queries must read (no more, no fewer).
TITLES: dict[tuple[str, str], set[str]] = {
    ("overview", "Services overdue or worse"): {"freshness_grade"},
    ("overview", "Unmonitored services"): {"freshness_site_monitored"},
    ("overview", "Suspended services"): {"freshness_site_suspended"},
    ("overview", "Pages down"): {"freshness_page_up", "freshness_site_info"},
    ("overview", "Live monitor workers"): {"freshness_monitor_workers"},
    ("overview", "All services against their regulation"): {
        "freshness_site_info", "freshness_grade", "freshness_last_real_update_timestamp_seconds",
        "freshness_monitoring_since_timestamp_seconds", "freshness_max_age_seconds", "site:freshness_staleness:ratio",
        "freshness_site_monitored", "freshness_site_suspended"},
    ("overview", "Staleness: age against the allowed gap"): {"site:freshness_staleness:ratio", "freshness_site_info"},
    ("overview", "Monitor health: heartbeat age, time since a complete round, schedule lag"): {
        "freshness_monitor_heartbeat_timestamp_seconds", "freshness_monitor_last_round_timestamp_seconds",
        "freshness_monitor_schedule_lag_seconds"},
    ("overview", "Database and write buffer"): {
        "freshness_database_up", "freshness_database_writable", "freshness_write_buffer_records"},
    ("overview", "Checking engine: queue and late pages"): {
        "freshness_queue_jobs", "freshness_queue_oldest_waiting_timestamp_seconds", "freshness_pages_late"},
    ("service", "Grade"): {"freshness_grade"},
    ("service", "Last real update"): {"freshness_last_real_update_timestamp_seconds"},
    ("service", "Next update due"): {"freshness_deadline_timestamp_seconds"},
    ("service", "Pages failing"): {"freshness_pages_failing"},
    ("service", "Changes by class"): {"freshness_changes_total"},
    ("service", "Checks by outcome"): {"freshness_checks_total"},
    ("service", "Response time"): {"freshness_fetch_duration_seconds_bucket", "freshness_page_fetch_duration_seconds",
                                   "freshness_page_info"},
    ("service", "HTTP status per page"): {"freshness_page_http_status", "freshness_page_info"},
    ("service", "TLS certificate expiry"): {"freshness_tls_cert_expiry_timestamp_seconds"},
    ("service", "Pages"): {"freshness_page_info", "freshness_page_up", "freshness_page_http_status",
                           "freshness_page_fetch_duration_seconds", "freshness_page_last_check_timestamp_seconds"},
    ("reports", "Reports confirmed (90 days)"): {"freshness_self_reports", "freshness_site_info"},
    ("reports", "Reports with only a date bump"): {"freshness_self_reports", "freshness_site_info"},
    ("reports", "Reports not confirmed"): {"freshness_self_reports", "freshness_site_info"},
    ("reports", "Updates nobody reported"): {"freshness_unreported_updates"},
    ("reports", "Self-reports vs detected, per service (last 90 days)"): {
        "freshness_site_info", "freshness_self_report_last_timestamp_seconds", "freshness_self_reports",
        "freshness_unreported_updates"},
    ("reports", "Self-reports by verdict over time"): {"freshness_self_reports", "freshness_site_info"},
    ("reports", "Unreported real updates over time"): {"freshness_unreported_updates", "freshness_site_info"},
}


def test_every_panel_reads_what_its_title_says() -> None:
    panels = {(name, p["title"]): p for name, d in DASHBOARDS.items() for p in _panels(d)}
    assert set(panels) == set(TITLES), "a panel was added or renamed: say here what its title promises"
    for key, p in panels.items():
        assert _metrics(" ".join(t["expr"] for t in p["targets"])) == TITLES[key], key
    db = panels[("overview", "Database and write buffer")]
    legends = " ".join(t["legendFormat"] for t in db["targets"])
    assert "database" in legends and "write buffer" in legends


# ----------------------------------------------------------------------- against a real Prometheus

CATALOGUE = """
[settings]
database_url = "{db}"
user_agent = "dashboards test (+mailto:it@example.org)"
per_host_delay = "0.001s"
timeout = "10s"
retries = 0

[departments.it-sector]
name = "Сектор інформаційних технологій та автоматизованих систем"
[departments.records-appeals]
name = "Відділ з питань діловодства, контролю та роботи зі зверненнями громадян"

[[services]]
id = "smart-portal"
name = "SMART-ПОРТАЛ"
department = "Сектор інформаційних технологій та автоматизованих систем"
regulation = "daily"
  [[services.pages]]
  url = "{portal}"
  name = "Головна"
  allow_private = true
  [[services.pages]]
  url = "{broken}"
  allow_private = true

[[services]]
id = "online-reception"
name = "Онлайн приймальня"
department = "Відділ з питань діловодства, контролю та роботи зі зверненнями громадян"
regulation = "monthly"
  [[services.pages]]
  url = "{reception}"
  allow_private = true

[[services]]
id = "e-petitions"
name = "Електронні петиції"
department = "Відділ з питань діловодства, контролю та роботи зі зверненнями громадян"
regulation = "weekly"
"""
MONITORED = {"smart-portal", "online-reception"}
SCRAPE_S = 1  # the test's scrape interval: it stands for the 30 s of the provisioned datasource


@dataclass
class Live:
    prometheus: str
    started: float
    store: Store
    updates: list[datetime] = field(default_factory=list)  # smart-portal's real updates, as the store has them
    reports: list[datetime] = field(default_factory=list)  # online-reception's self-reports (submission)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _wait(what: str, fn: Any, timeout_s: float = 60.0) -> Any:
    deadline, last = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as exc:  # not ready yet
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def _query(live: Live, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    params = {"query": expr, **({"time": f"{at:.3f}"} if at is not None else {})}
    data = _get(f"{live.prometheus}/api/v1/query?{urllib.parse.urlencode(params)}")
    assert data["status"] == "success", data
    return data["data"]["result"]  # type: ignore[no-any-return]


def _query_range(live: Live, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": str(step)}
    data = _get(f"{live.prometheus}/api/v1/query_range?{urllib.parse.urlencode(params)}")
    assert data["status"] == "success", data
    return data["data"]["result"]  # type: ignore[no-any-return]


def _fill(expr: str, site: str = "smart-portal") -> str:
    """Grafana's variables as Grafana fills them: intervals, a chosen service, "All" as .+"""
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "1m").replace("$__range", "1h")
    expr = re.sub(r'site="\$\{?site\}?"', f'site="{site}"', expr)
    return re.sub(r"\$\{?\w+\}?", ".+", expr)


def _report(key: str, site: str, when: datetime) -> ReportRow:
    return ReportRow(identity=key, row_hash=key, service_id=site, service_text=site, submitted_at=when,
                     reported_for=when, what="оновлено графік прийому")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The monitor and a Prometheus with the recording rules; the first real update of smart-portal and the
    first self-report of online-reception happen while Prometheus watches, a second of each after them."""
    prometheus = which("prometheus")
    tmp = tmp_path_factory.mktemp("dashboards")
    with Site() as portal, Site() as reception:
        portal.routes["/uk"] = page(html("Засідання виконкому"))
        portal.routes["/broken"] = page("error", status=500)
        reception.routes["/"] = page(html("Прийом громадян щопонеділка"))
        db = f"sqlite:///{tmp / 'monitor.db'}"
        cat = catalogue(CATALOGUE.format(db=db, portal=portal.url("/uk"), broken=portal.url("/broken"),
                                         reception=reception.url("/")))
        engine = make_engine(db)
        upgrade(engine)
        store = Store(engine)
        loop = asyncio.new_event_loop()
        clock = Clock(datetime.now(UTC))
        fetcher = Fetcher(cat.settings, clock=clock)
        runner = Runner(cat, store, fetcher, clock=clock)
        runner.prepare()
        writer = loop.create_task(runner.recorder.run())

        def check(site: str) -> None:
            clock.set(datetime.now(UTC))
            loop.run_until_complete(runner.round([t for t in runner.targets.values() if t.service.id == site]))
            loop.run_until_complete(runner.recorder.drain(10))
            runner.heartbeat()
            refresh_aggregates(cat, store, clock.now())

        check("smart-portal")
        check("online-reception")
        registry = build_registry(cat, store.metrics, runtime=lambda: Runtime(
            pending_records=len(runner.recorder.pending), database_writable=runner.recorder.db_ok))
        metrics = MetricsServer(registry, "127.0.0.1:0", health=lambda: (True, {})).start()
        (tmp / "rules.yml").write_text(yaml.safe_dump(
            {"groups": [{"name": "freshness-recording", "rules": list(RECORDING)}]}), encoding="utf-8")
        port = free_port()
        (tmp / "prometheus.yml").write_text(f"""
global: {{scrape_interval: {SCRAPE_S}s, scrape_timeout: {SCRAPE_S}s, evaluation_interval: {SCRAPE_S}s}}
rule_files: ['{tmp / "rules.yml"}']
scrape_configs: [{{job_name: freshness, static_configs: [{{targets: ['127.0.0.1:{metrics.port}']}}]}}]
""", encoding="utf-8")
        log = open(tmp / "prom.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [prometheus, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'prom'}",
             f"--web.listen-address=127.0.0.1:{port}", f"--web.external-url=http://127.0.0.1:{port}/",
             "--storage.tsdb.retention.time=1h"], stdout=subprocess.DEVNULL, stderr=log)
        try:
            lv = Live(prometheus=f"http://127.0.0.1:{port}", started=time.time(), store=store)
            _wait("the first scrape", lambda: _query(lv, 'up{job="freshness"} == 1'))
            assert not _query(lv, "freshness_last_real_update_timestamp_seconds"), "no real update before the test"
            assert not _query(lv, "freshness_self_report_last_timestamp_seconds"), "no self-report before the test"

            def seen(expr: str, value_s: float) -> None:
                _wait(f"{expr} = {value_s}", lambda: any(
                    abs(float(r["value"][1]) - value_s) < 1e-3 for r in _query(lv, expr)))
                time.sleep(2 * SCRAPE_S)  # the value stays a while, as any value stays at least one scrape

            for news in ("Нове оголошення", "Ще одне оголошення"):
                portal.routes["/uk"] = page(html("Засідання виконкому", news))
                check("smart-portal")
                real = sorted(c.detected_at for c in store.history.changes(service_id="smart-portal")
                              if c.is_real and c.superseded_by is None)
                assert len(real) == len(lv.updates) + 1, real
                lv.updates = real
                seen('freshness_last_real_update_timestamp_seconds{site="smart-portal"}', real[-1].timestamp())
            for key, when in (("r1", clock.now() - timedelta(days=10)), ("r2", datetime.now(UTC))):
                store.reports.add_reports([_report(key, "online-reception", when)], when)
                refresh_aggregates(cat, store, datetime.now(UTC))
                lv.reports.append(when)
                seen('freshness_self_report_last_timestamp_seconds{site="online-reception"}', when.timestamp())
            _wait("the recording rule", lambda: _query(lv, "site:freshness_staleness:ratio"))
            yield lv
        finally:
            proc.terminate()
            proc.wait(20)
            log.close()
            writer.cancel()
            loop.run_until_complete(fetcher.aclose())
            loop.close()
            metrics.stop()
            store.close()


def _grafana_annotation_events(live: Live, ann: dict[str, Any], start: float, end: float, step_s: float,
                               site: str) -> list[dict[str, Any]]:
    """What Grafana's Prometheus annotation support makes of the query (processEvents of its source): a
    range query; with "series value as timestamp" each value is an event's time in ms, otherwise each sample
    whose value is > 0 at its own time; events of one series less than a step apart are one region."""
    step_ms = step_s * 1000
    events: list[dict[str, Any]] = []
    for series in _query_range(live, _fill(ann["expr"], site), start, end, step_s):
        points = [(math.floor(float(v)), 1.0) if ann.get("useValueForTime") else (math.floor(float(t) * 1000),
                                                                                   float(v))
                  for t, v in series["values"]]
        latest: dict[str, Any] | None = None
        for ts in [t for t, v in points if v > 0]:
            if latest is not None and latest["timeEnd"] + step_ms >= ts:
                latest["timeEnd"] = ts
                continue
            if latest is not None:
                events.append(latest)
            latest = {"time": ts, "timeEnd": ts, "labels": series["metric"]}
        if latest is not None:
            events.append(latest)
    return events


def _annotation(dashboard: str, name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [a for a in DASHBOARDS[dashboard]["annotations"]["list"] if a["name"] == name]
    (ann,) = found
    return ann


@pytest.mark.slow
def test_real_update_annotations_show_every_update_including_the_first(live: Live) -> None:
    ann = _annotation("service", "Real updates")
    events = _grafana_annotation_events(live, ann, live.started - 5, time.time(), SCRAPE_S, "smart-portal")
    expected = [math.floor(t.timestamp() * 1000) for t in live.updates]
    assert len(expected) == 2
    assert sorted(e["time"] for e in events) == expected  # the first update too, each at its own time
    assert all(e["time"] == e["timeEnd"] for e in events)
    assert {e["labels"]["name"] for e in events} == {"SMART-ПОРТАЛ"}  # what textFormat shows


@pytest.mark.slow
def test_self_report_annotations_show_every_report_including_the_first(live: Live) -> None:
    ann = _annotation("reports", "Self-reports")
    events = _grafana_annotation_events(live, ann, live.started - 5, time.time(), SCRAPE_S, "")
    assert sorted(e["time"] for e in events) == [math.floor(t.timestamp() * 1000) for t in live.reports]
    assert {e["labels"]["site"] for e in events} == {"online-reception"}


@pytest.mark.slow
def test_site_variable_offers_monitored_services_and_defaults_to_one(live: Live) -> None:
    # the catalogue has an unmonitored service, and it comes first alphabetically
    catalogued = {r["metric"]["site"] for r in _query(live, "freshness_site_info")}
    assert catalogued == MONITORED | {"e-petitions"} and min(catalogued) == "e-petitions"
    (var,) = [v for v in DASHBOARDS["service"]["templating"]["list"] if v["name"] == "site"]
    metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", var["definition"]).groups()  # type: ignore[union-attr]
    # as Grafana asks for label_values(metric, label)
    params = urllib.parse.urlencode({"match[]": metric, "start": f"{live.started:.0f}", "end": f"{time.time():.0f}"})
    values = _get(f"{live.prometheus}/api/v1/label/{label}/values?{params}")["data"]
    assert set(values) == MONITORED
    assert var["sort"] == 1 and sorted(values)[0] in MONITORED  # with current {}, Grafana picks the first option


def _table_frame(refid: str, result: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """An instant query in table format as Grafana's Prometheus data source makes it (transformDFToTable):
    Time, one column per label of any series (a series without it gets ''), then `Value #<refId>`."""
    labels: list[str] = []
    for r in result:
        labels.extend(k for k in sorted(r["metric"]) if k not in labels)
    fields = ["Time", *labels, f"Value #{refid}"]
    rows = [{"Time": r["value"][0], **{k: r["metric"].get(k, "") for k in labels}, f"Value #{refid}": r["value"][1]}
            for r in result]
    return fields, rows


def _grafana_merge(frames: list[tuple[list[str], list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Grafana's "merge" transformation: the key is every field present in all frames; a row joins an
    earlier row of the same key unless a field both have differs."""
    frames = [f for f in frames if f[1]]
    key = [n for n in frames[-1][0] if all(n in f[0] for f in frames)]
    by_key: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    order: list[tuple[tuple[Any, ...], int]] = []
    for _fields, rows in frames:
        for row in rows:
            k = tuple(row[n] for n in key)
            if k not in by_key:
                by_key[k] = [row]
                order.append((k, 0))
                continue
            merged = False
            for i, existing in enumerate(by_key[k]):
                if all(existing.get(n) in (None, v) for n, v in row.items()):
                    by_key[k][i] = {**existing, **row}
                    merged = True
            if not merged:
                by_key[k].append(row)
                order.append((k, len(by_key[k]) - 1))
    return [by_key[k][i] for k, i in order]


def _merged_panels() -> list[tuple[str, dict[str, Any]]]:
    return [(name, p) for name, d in DASHBOARDS.items() for p in _panels(d)
            if any(t["id"] == "merge" for t in p.get("transformations", []))]


@pytest.mark.slow
def test_merged_tables_make_one_row_per_service_or_page(live: Live) -> None:
    panels = _merged_panels()
    assert {(n, p["title"]) for n, p in panels} >= {("overview", "All services against their regulation"),
                                                   ("service", "Pages"),
                                                   ("reports", "Self-reports vs detected, per service (last 90 days)")}
    at = time.time()
    for name, p in panels:
        results = {t["refId"]: _query(live, _fill(t["expr"]), at) for t in p["targets"]}
        assert all(results.values()), (p["title"], [k for k, v in results.items() if not v])
        # the same labels in every query's series: the key of the merge (a name, when there is one, aside)
        label_sets = [frozenset(r["metric"]) for res in results.values() for r in res]
        common = frozenset.intersection(*label_sets)
        assert common and set().union(*label_sets) - common <= {"name"}, (p["title"], set(label_sets))
        info = p["targets"][0]
        rows = _grafana_merge([_table_frame(ref, res) for ref, res in results.items()])
        assert len(rows) == len(results[info["refId"]]), (name, p["title"], rows)
        for ref, res in results.items():  # each query's value landed in its service's (or page's) row
            assert sum(f"Value #{ref}" in row for row in rows) == len(res), (p["title"], ref)


@pytest.mark.slow
def test_the_old_overview_queries_would_not_merge(live: Live) -> None:
    """The check above is not vacuous: bare selectors carry __name__ (and job, instance), rows split."""
    at = time.time()
    frames = [_table_frame(ref, _query(live, expr, at)) for ref, expr in (
        ("INFO", "max by (site, department, regulation, name) (freshness_site_info)"),
        ("GRADE", "freshness_grade"), ("MONITORED", "freshness_site_monitored"))]
    assert len(_grafana_merge(frames)) > len(frames[0][1])


@pytest.mark.slow
def test_staleness_column_is_the_recorded_ratio(live: Live) -> None:
    (table,) = [p for p in DASHBOARDS["overview"]["panels"] if p["title"] == "All services against their regulation"]
    (ratio,) = [t for t in table["targets"] if t["refId"] == "RATIO"]
    assert "site:freshness_staleness:ratio" in ratio["expr"]
    at = time.time()
    got = {r["metric"]["site"]: float(r["value"][1]) for r in _query(live, _fill(ratio["expr"]), at)}
    assert set(got) == MONITORED
    expected = (at - live.updates[-1].timestamp()) / 86400  # smart-portal is daily
    assert got["smart-portal"] == pytest.approx(expected, abs=3 * SCRAPE_S / 86400)


@pytest.mark.slow
def test_every_panel_listing_services_links_to_the_service_dashboard(live: Live) -> None:
    checked = []
    for name in ("overview", "reports"):
        for p in _panels(DASHBOARDS[name]):
            if p["type"] not in ("table", "timeseries"):
                continue
            results = [_query(live, _fill(t["expr"])) for t in p["targets"]]
            if not any("site" in r["metric"] for res in results for r in res):
                continue
            checked.append((name, p["title"]))
            links = [x for x in _links(p) if x["url"].startswith(f"/d/{SERVICE_UID}?")]
            assert links, (name, p["title"])
            for link in links:
                var = re.search(r"var-site=\$\{([\w.]+)\}", link["url"])
                assert var, link
                if p["type"] == "table":  # ${__data.fields.site}: a field of every row of the merged table
                    assert var.group(1) == "__data.fields.site"
                    assert all("site" in r["metric"] for res in results for r in res)
                else:  # ${__field.labels.site}: a label of every series
                    assert var.group(1) == "__field.labels.site"
                    assert all("site" in r["metric"] for res in results for r in res)
                assert "${__url_time_range}" in link["url"]
    assert ("overview", "All services against their regulation") in checked
    assert ("overview", "Staleness: age against the allowed gap") in checked


@pytest.mark.slow
def test_no_panel_shows_a_page_label_and_page_panels_show_the_address(live: Live) -> None:
    urls = {r["metric"]["url"] for r in _query(live, 'freshness_page_info{site="smart-portal"}')}
    assert len(urls) == 2
    for d in DASHBOARDS.values():
        for p in _panels(d):
            for t in p["targets"]:
                res = _query(live, _fill(t["expr"]))
                assert not any("page" in r["metric"] for r in res), (p["title"], t["expr"])
                if re.search(r"freshness_page_(?!info)", t["expr"]) and "count(" not in t["expr"]:
                    assert {r["metric"]["url"] for r in res} == urls, (p["title"], t["refId"])
