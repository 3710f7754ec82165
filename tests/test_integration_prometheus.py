"""The whole alerting path with real components on 127.0.0.1: the monitor checks local sites, a real
Prometheus scrapes it and evaluates the shipped rules, a real Alertmanager routes by the generated tree and
delivers to a local webhook. Every PromQL expression of the dashboards and the rules is run against it."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme
import yaml

from monitor.alerting import (
    EXAMPLE_EXTERNAL_URL,
    EXAMPLE_GRAFANA_URL,
    Links,
    RoutingOptions,
    alertmanager_yaml,
    rules_yaml,
)
from monitor.domain import ReportRow, page_label
from monitor.exporter import MetricsServer
from monitor.fetch import Fetcher
from monitor.maintenance import refresh_aggregates
from monitor.metrics import Runtime, build_registry
from monitor.runner import Runner
from monitor.store import Store
from monitor.store.engine import make_engine, upgrade
from tests.conftest import which
from tests.helpers import Clock, catalogue, free_port, html
from tests.siteserver import Request, Site, page, respond

ROOT = Path(__file__).resolve().parents[1]
LINKS = Links(EXAMPLE_EXTERNAL_URL, EXAMPLE_GRAFANA_URL)
pytestmark = pytest.mark.slow



def get_json(url: str) -> dict:  # type: ignore[type-arg]
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def wait_for(what: str, fn, timeout_s: float = 90.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as exc:  # not ready yet
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


CATALOGUE = """
[settings]
database_url = "{db}"
user_agent = "integration (+mailto:it@example.org)"
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
  allow_private = true
  [[services.pages]]
  url = "{broken}"
  allow_private = true

[[services]]
id = "online-reception"
name = "Онлайн приймальня"
department = "Відділ з питань діловодства, контролю та роботи зі зверненнями громадян"
regulation = "monthly"
contact = "reception@example.org"
  [[services.pages]]
  url = "{reception}"
  allow_private = true
"""


@dataclass
class Stack:
    prometheus: str
    alertmanager: str
    hooks: Site
    runner: Runner
    store: Store
    clock: Clock
    portal: Site
    loop: asyncio.AbstractEventLoop


def _run(loop: asyncio.AbstractEventLoop, coro):  # type: ignore[no-untyped-def]
    return loop.run_until_complete(coro)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus, alertmanager = which("prometheus"), which("prometheus-alertmanager")
    tmp = tmp_path_factory.mktemp("stack")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", not_after=datetime.now(UTC) + timedelta(days=5)).configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    procs: list[subprocess.Popen[bytes]] = []
    with Site(tls=server_ctx) as portal, Site() as reception, Site() as hooks:
        portal.routes["/uk"] = page(html("Засідання виконкому"))
        portal.routes["/broken"] = page("error", status=500)
        reception.routes["/"] = page(html("Прийом громадян щопонеділка"))
        received: list[dict] = []  # type: ignore[type-arg]

        async def hook(req: Request, w: asyncio.StreamWriter) -> None:
            await respond(w, 200, b"ok")

        for name in ("it", "dept-it-sector", "dept-records-appeals", "site-online-reception"):
            hooks.routes[f"/{name}"] = hook
        db = f"sqlite:///{tmp / 'monitor.db'}"
        text = CATALOGUE.format(db=db, portal=portal.url("/uk"), broken=portal.url("/broken"),
                                reception=reception.url("/"))
        (tmp / "targets.toml").write_text(text, encoding="utf-8")
        cat = catalogue(text)
        engine = make_engine(db)
        upgrade(engine)
        store = Store(engine)
        loop = asyncio.new_event_loop()
        # the reception was first checked 50 days ago and never changed since: a monthly service, overdue
        clock = Clock(datetime.now(UTC) - timedelta(days=50))
        fetcher = Fetcher(cat.settings, verify=client_ctx, clock=clock)
        runner = Runner(cat, store, fetcher, clock=clock)
        runner.prepare()
        writer = loop.create_task(runner.recorder.run())
        _run(loop, runner.round([t for t in runner.targets.values() if t.service.id == "online-reception"]))
        _run(loop, runner.recorder.drain(10))
        now = clock.set(datetime.now(UTC))  # from here on, the present
        _run(loop, runner.round(list(runner.targets.values())))
        _run(loop, runner.recorder.drain(10))
        runner.heartbeat()
        store.reports.add_reports([report_row("r1", "online-reception", now - timedelta(days=10))], now)
        refresh_aggregates(cat, store, now)  # the maintenance job's: what the self-report series read

        registry = build_registry(cat, store.metrics, runtime=lambda: Runtime(
            pending_records=len(runner.recorder.pending), database_writable=runner.recorder.db_ok))
        metrics = MetricsServer(registry, "127.0.0.1:0", health=lambda: (True, {})).start()
        rules = re.sub(r"for: \d+[mh]", "for: 2s", rules_yaml(LINKS))
        (tmp / "rules.yml").write_text(rules, encoding="utf-8")
        prom_port, am_port = free_port(), free_port()
        (tmp / "alertmanager.yml").write_text(alertmanager_yaml(cat, {}, RoutingOptions(
            webhook_base=hooks.base, group_wait="1s", group_interval="2s", repeat_interval="1h")), encoding="utf-8")
        (tmp / "prometheus.yml").write_text(f"""
global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}
rule_files: ['{tmp / "rules.yml"}']
alerting: {{alertmanagers: [{{static_configs: [{{targets: ['127.0.0.1:{am_port}']}}]}}]}}
scrape_configs: [{{job_name: freshness, static_configs: [{{targets: ['127.0.0.1:{metrics.port}']}}]}}]
""", encoding="utf-8")
        logs = [open(tmp / "am.log", "wb"), open(tmp / "prom.log", "wb")]  # noqa: SIM115 - closed below
        procs.append(subprocess.Popen(
            [alertmanager, f"--config.file={tmp / 'alertmanager.yml'}", f"--storage.path={tmp / 'am'}",
             f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address=",
             f"--web.external-url=http://127.0.0.1:{am_port}/"],
            stdout=subprocess.DEVNULL, stderr=logs[0]))
        procs.append(subprocess.Popen(
            [prometheus, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'prom'}",
             f"--web.listen-address=127.0.0.1:{prom_port}", f"--web.external-url=http://127.0.0.1:{prom_port}/",
             "--storage.tsdb.retention.time=1h"],
            stdout=subprocess.DEVNULL, stderr=logs[1]))
        try:
            stack = Stack(prometheus=f"http://127.0.0.1:{prom_port}", alertmanager=f"http://127.0.0.1:{am_port}",
                          hooks=hooks, runner=runner, store=store, clock=clock, portal=portal, loop=loop)
            wait_for("the first scrape", lambda: query(stack, 'up{job="freshness"} == 1'))
            yield stack
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(20)
            for log in logs:
                log.close()
            writer.cancel()
            _run(loop, fetcher.aclose())
            loop.close()
            metrics.stop()
            store.close()
            del received


def report_row(key: str, site: str, when: datetime) -> ReportRow:
    return ReportRow(identity=key, row_hash=key, service_id=site, service_text=site, submitted_at=when,
                     reported_for=when, what="оновлено графік прийому")


def query(stack: Stack, expr: str) -> list[dict]:  # type: ignore[type-arg]
    data = get_json(f"{stack.prometheus}/api/v1/query?query={urllib.parse.quote(expr)}")
    assert data["status"] == "success", data
    return data["data"]["result"]  # type: ignore[no-any-return]


def test_a_stale_service_alerts_its_department_and_it_gets_its_own(stack: Stack) -> None:
    firing = wait_for("FreshnessServiceOverdue firing", lambda: query(
        stack, 'ALERTS{alertname="FreshnessServiceOverdue", alertstate="firing"}'))
    assert {a["metric"]["site"] for a in firing} == {"online-reception"}
    assert firing[0]["metric"]["department"] == "records-appeals"

    def delivered(receiver: str, alertname: str) -> list[dict]:  # type: ignore[type-arg]
        return [r for r in stack.hooks.requests if r.path == f"/{receiver}"]

    # the service has a responsible contact: its alerts reach the person's route under the department
    wait_for("the webhook of online-reception", lambda: delivered("site-online-reception", "FreshnessServiceOverdue"))
    # ... and its department still hears of it (the person's route continues to the department's)
    wait_for("the department's webhook", lambda: delivered("dept-records-appeals", "FreshnessServiceOverdue"))
    # the broken page is down: IT hears of it, and so does the department that owns the service
    wait_for("FreshnessPageDown at IT", lambda: query(
        stack, 'ALERTS{alertname="FreshnessPageDown", alertstate="firing", site="smart-portal", '
               f'page="{page_label(stack.portal.url("/broken"))}"}}'))
    wait_for("IT receiver", lambda: delivered("it", "FreshnessPageDown"))
    wait_for("the owning department's receiver", lambda: delivered("dept-it-sector", "FreshnessPageDown"))
    # the certificate expires in 5 days
    tls = wait_for("FreshnessTLSCertificateExpiring", lambda: query(
        stack, 'ALERTS{alertname="FreshnessTLSCertificateExpiring", alertstate="firing"}'))
    assert tls[0]["metric"]["host"] == "127.0.0.1"
    am = get_json(f"{stack.alertmanager}/api/v2/alerts")
    receivers = {a["labels"]["alertname"]: {r["name"] for r in a["receivers"]} for a in am}  # type: ignore[union-attr]
    assert receivers["FreshnessServiceOverdue"] == {"site-online-reception", "dept-records-appeals"}
    assert receivers["FreshnessPageDown"] == {"it", "dept-it-sector"}
    # what the notifications say: the service by its name, the facts, the address, absolute links
    notes = {a["labels"]["alertname"]: a["annotations"] for a in am}  # type: ignore[index]
    overdue = notes["FreshnessServiceOverdue"]
    assert overdue["service"] == "Онлайн приймальня" and overdue["summary"] == "Онлайн приймальня is overdue"
    assert overdue["regulation"] == "on every change, at least monthly"
    assert overdue["last_real_update"] == "none detected" and overdue["deadline"].endswith("+0000 UTC")
    assert overdue["runbook_url"] == f"{EXAMPLE_EXTERNAL_URL}/runbooks#freshness-service-overdue"
    assert overdue["dashboard_url"] == f"{EXAMPLE_GRAFANA_URL}/d/freshness-service?var-site=online-reception"
    down = notes["FreshnessPageDown"]
    assert down["page_url"] == stack.portal.url("/broken") and down["page_url"] in down["summary"]


def _dashboard_exprs() -> list[str]:
    out = []
    for path in (ROOT / "grafana" / "dashboards").glob("*.json"):
        dash = json.loads(path.read_text(encoding="utf-8"))
        for p in dash["panels"]:
            out.extend(t["expr"] for t in p.get("targets", []))
        out.extend(a["expr"] for a in dash["annotations"]["list"])
        for v in dash["templating"]["list"]:
            m = re.match(r"label_values\((\w+), (\w+)\)", v.get("definition", ""))
            if m:
                out.append(f"count by ({m.group(2)}) ({m.group(1)})")
    return out


def _substitute(expr: str) -> str:
    """Grafana's variables as Grafana would fill them: intervals, a chosen service, "All" as .+"""
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "5m").replace("$__range", "1h")
    expr = re.sub(r'(\w+)="\$\{?site\}?"', r'\1="smart-portal"', expr)  # a single-valued variable
    return re.sub(r"\$\{?\w+\}?", ".+", expr)


def test_every_dashboard_expression_returns_data(stack: Stack) -> None:
    # two real updates while Prometheus watches, so that change annotations and increase() see them
    portal = [t for t in stack.runner.targets.values() if t.service.id == "smart-portal"]
    for news in ("Нове оголошення", "Ще одне оголошення"):
        stack.portal.routes["/uk"] = page(html("Засідання виконкому", news))
        stack.clock.set(datetime.now(UTC))
        _run(stack.loop, stack.runner.round(portal))
        _run(stack.loop, stack.runner.recorder.drain(10))
        time.sleep(2.5)
    stack.store.reports.add_reports([report_row("r2", "online-reception", datetime.now(UTC))], datetime.now(UTC))
    refresh_aggregates(stack.runner.catalogue, stack.store, datetime.now(UTC))
    wait_for("ALERTS to exist", lambda: query(stack, 'ALERTS{alertstate="firing"}'))
    time.sleep(3)
    empty = []
    for expr in _dashboard_exprs():
        q = _substitute(expr)
        try:
            result = wait_for(f"data for {q}", lambda q=q: query(stack, q), timeout_s=20)
        except AssertionError:
            result = []
        if not result:
            empty.append(q)
    assert not empty, empty


def test_every_metric_selector_of_the_rules_returns_data(stack: Stack) -> None:
    rules = [r for g in yaml.safe_load(rules_yaml(LINKS))["groups"] for r in g["rules"]]
    selectors = {s for r in rules for s in re.findall(r"(?<![:\w])(freshness_\w+(?:\{[^}]*\})?)", r["expr"])}
    # and the series the annotations read when an alert is sent (by name: their selectors are templates)
    selectors |= {s for r in rules for text in r.get("annotations", {}).values()
                  for s in re.findall(r'printf "(freshness_\w+)\{', text)}
    # the procrastinate engine's queue has no series under the embedded engine (tests/test_fleet.py has them)
    selectors -= {"freshness_queue_oldest_waiting_timestamp_seconds"}
    empty = [s for s in sorted(selectors) if not query(stack, s)]
    assert not empty, empty
    for group in get_json(f"{stack.prometheus}/api/v1/rules")["data"]["groups"]:
        for rule in group["rules"]:
            assert rule["health"] == "ok", rule
