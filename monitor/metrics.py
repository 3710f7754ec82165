"""The Prometheus exporter: the only module that imports prometheus_client.

A custom collector computes every value from the database at scrape time (SQL aggregates over the
page summaries and the persistent counters, never the check rows), so the values survive restarts and
agree with `monitor status`. Registering it queries nothing. `/healthz` tells whether the monitor is
alive. Label names are ids: `site` (not `service`, which clashes with target labels), `department`,
`regulation`, `page` (the page's position), `outcome`, `class`, `host`, `grade`.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from socketserver import ThreadingMixIn
from typing import Any, cast
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from monitor import __version__
from monitor.domain import Catalogue, ChangeClass, Grade, Kind, Outcome, load_content
from monitor.regulation import nominal_gap_s
from monitor.status import State, dataset_statuses, service_statuses
from monitor.store.repository import DURATION_BUCKETS, Store

logger = logging.getLogger(__name__)

SITE_LABELS = ["site", "department", "regulation"]
GRADE_VALUE = {Grade.UNKNOWN: -1, Grade.FRESH: 0, Grade.DUE: 1, Grade.OVERDUE: 2, Grade.DELINQUENT: 3}
ALIVE_S = 300.0  # a worker whose heartbeat is older than this is not counted as alive


def _ts(t: datetime | None) -> float | None:
    return t.timestamp() if t is not None else None


@dataclass(frozen=True, slots=True)
class Runtime:
    """What only the running process knows (the write buffer)."""

    pending_records: int
    database_writable: bool


class FreshnessCollector(Collector):
    """Builds every metric family from the store at scrape time."""

    def __init__(self, catalogue: Catalogue, store: Store, *, clock: Callable[[], datetime] | None = None,
                 runtime: Callable[[], Runtime] | None = None) -> None:
        self.catalogue = catalogue
        self.store = store
        self.clock = clock or (lambda: datetime.now(UTC))
        self.runtime = runtime
        self._hosts: dict[str, str] = {}
        self._report_cache: tuple[datetime, dict[str, dict[str, int]]] | None = None
        self._catalogue_cache: list[Any] | None = None
        self._page_lines: dict[tuple[Any, ...], tuple[str, str, str, str]] = {}
        self._report_lock = threading.Lock()
        self._queries = ThreadPoolExecutor(max_workers=2, thread_name_prefix="metrics-query")
        self._report_thread: threading.Thread | None = None
        self._datasets: dict[str, tuple[datetime, dict[str, int]]] = {}  # content sha -> (when, counts by grade)

    def describe(self) -> Iterable[Any]:
        return []  # so that registering does not run collect() (a database query)

    def collect(self) -> Iterator[Any]:
        t0 = time.perf_counter()
        now = self.clock()
        if self._catalogue_cache is None:  # the catalogue does not change while the process runs
            self._catalogue_cache = list(self._catalogue_families())
        yield from self._catalogue_cache
        up = GaugeMetricFamily("freshness_database_up", "1 if the database answered this scrape's queries.")
        try:
            families = list(self._store_families(now))
        except Exception as exc:  # the exporter must answer even when the database does not
            logger.warning("metrics: database query failed: %s", exc)
            families = []
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
        yield from families
        yield up
        if self.runtime is not None:
            rt = self.runtime()
            g = GaugeMetricFamily("freshness_write_buffer_records", "Check records waiting to be written "
                                  "(they pile up while the database is unreachable).")
            g.add_metric([], rt.pending_records)
            yield g
            w = GaugeMetricFamily("freshness_database_writable", "1 if the last write to the database succeeded.")
            w.add_metric([], 1 if rt.database_writable else 0)
            yield w
        build = InfoMetricFamily("freshness_build", "The monitor's version.")
        build.add_metric([], {"version": __version__})
        yield build
        d = GaugeMetricFamily("freshness_scrape_duration_seconds", "Time to compute this scrape.")
        d.add_metric([], time.perf_counter() - t0)
        yield d

    def _report_families(self, now: datetime, known: set[str]) -> Iterator[Any]:
        """Self-reports against detections over the last 90 days (the audit, cached for 5 minutes)."""
        last = GaugeMetricFamily("freshness_self_report_last_timestamp_seconds",
                                 "Newest self-report of the service (its submission).", labels=SITE_LABELS)
        for sid, t in sorted(self.store.last_reports().items()):
            if sid in known and t is not None:
                last.add_metric(self._labels(sid), t.timestamp())
        yield last
        cached = self._report_stats(now)
        by_verdict = GaugeMetricFamily("freshness_self_reports", "Self-reports of the last 90 days by verdict "
                                       "(confirmed, date_only, unconfirmed, unverifiable).", labels=["site", "verdict"])
        unreported = GaugeMetricFamily("freshness_unreported_updates", "Real updates of the last 90 days that no "
                                       "self-report mentions.", labels=SITE_LABELS)
        for sid, counts in sorted(cached.items()):
            for verdict, n in counts.items():
                if verdict == "unreported":
                    unreported.add_metric(self._labels(sid), n)
                else:
                    by_verdict.add_metric([sid, verdict], n)
        yield from (by_verdict, unreported)

    def _report_stats(self, now: datetime) -> dict[str, dict[str, int]]:
        """The audit behind the self-report metrics takes seconds on a large catalogue: it is refreshed in the
        background every REPORT_CACHE_S while scrapes serve the last result (the first scrape waits for it,
        at most REPORT_FIRST_WAIT_S)."""
        cached, thread = self.refresh_reports(now)
        if cached is None and thread is not None:
            thread.join(REPORT_FIRST_WAIT_S)
            cached = self._report_cache
        return cached[1] if cached is not None else {}

    def refresh_reports(self, now: datetime) -> tuple[tuple[datetime, dict[str, dict[str, int]]] | None,
                                                      threading.Thread | None]:
        """Start a background refresh of the self-report statistics if they are missing or stale (the exporter
        starts one when it starts serving, so that the first scrape need not wait); the cached result and
        the refreshing thread."""
        with self._report_lock:
            cached = self._report_cache
            stale = cached is None or (now - cached[0]).total_seconds() > REPORT_CACHE_S or now < cached[0]
            if stale and (self._report_thread is None or not self._report_thread.is_alive()):
                self._report_thread = threading.Thread(target=self._refresh_reports, args=(now,),
                                                       name="report-stats", daemon=True)
                self._report_thread.start()
            return cached, self._report_thread

    def wait_for_reports(self, timeout_s: float | None = None) -> bool:
        """Wait for a running refresh of the self-report statistics; True when none is running."""
        thread = self._report_thread
        if thread is not None:
            thread.join(timeout_s)
        return thread is None or not thread.is_alive()

    def _refresh_reports(self, now: datetime) -> None:
        from monitor.auditing import report_stats

        try:
            stats = report_stats(self.catalogue, self.store, now, REPORT_WINDOW_DAYS)
        except Exception as exc:  # the next scrape tries again
            logger.warning("metrics: self-report statistics failed: %s", exc)
            return
        with self._report_lock:
            self._report_cache = (now, stats)

    def _dataset_families(self, now: datetime) -> Iterator[Any]:
        """Open-data catalogues: their datasets by grade against each dataset's own declared frequency."""
        family = GaugeMetricFamily("freshness_datasets", "Datasets of a ckan page by grade against their own "
                                   "update_frequency.", labels=["site", "grade"])
        fresh: dict[str, tuple[datetime, dict[str, int]]] = {}
        for svc in self.catalogue.services:
            if not any(p.kind is Kind.CKAN for p in svc.pages):
                continue
            counts = {g.value: 0 for g in Grade}
            for _url, sha in self.store.current_content_shas(svc.id):
                for grade, n in self._dataset_grades(sha, now, fresh).items():
                    counts[grade] += n
            for grade, n in counts.items():
                family.add_metric([svc.id, grade], n)
        self._datasets = fresh
        yield family

    def _dataset_grades(self, sha: str, now: datetime,
                        fresh: dict[str, tuple[datetime, dict[str, int]]]) -> dict[str, int]:
        """A catalogue's datasets counted by grade, kept for DATASET_CACHE_S while its content is the same
        (ten thousand datasets take ~0.2 s to read and grade; grades move by the day)."""
        known = self._datasets.get(sha)
        if known is None or not 0 <= (now - known[0]).total_seconds() < DATASET_CACHE_S:
            counts: dict[str, int] = {}
            blob = self.store.blob(sha)
            for st in dataset_statuses(load_content(blob).records if blob else (), now,
                                       tz=self.catalogue.settings.timezone):
                counts[st.grade.value] = counts.get(st.grade.value, 0) + 1
            known = (now, counts)
        fresh[sha] = known
        return known[1]

    def _host(self, url: str) -> str:
        host = self._hosts.get(url)
        if host is None:
            host = self._hosts[url] = (urlsplit(url).hostname or "").lower()
        return host

    def _labels(self, site: str) -> list[str]:
        svc = self.catalogue.service(site)
        return [svc.id, svc.department_id, svc.regulation.value]

    def _catalogue_families(self) -> Iterator[Any]:
        info = InfoMetricFamily("freshness_site", "The catalogue: names as the order writes them.",
                                labels=SITE_LABELS)
        monitored = GaugeMetricFamily("freshness_site_monitored", "1 if the service has pages to check, "
                                      "0 if it is unmonitored (no known address).", labels=SITE_LABELS)
        suspended = GaugeMetricFamily("freshness_site_suspended", "1 if the service is suspended (shown, "
                                      "never alerted).", labels=SITE_LABELS)
        max_age = GaugeMetricFamily("freshness_max_age_seconds", "The regulation's allowed gap between real "
                                    "updates (no series for 'as needed').", labels=SITE_LABELS)
        page_info = InfoMetricFamily("freshness_page", "The monitored addresses.", labels=["site", "page"])
        for svc in self.catalogue.services:
            labels = self._labels(svc.id)
            info.add_metric(labels, {"name": svc.name, "department_name": svc.department,
                                     "responsible": svc.responsible})
            monitored.add_metric(labels, 1 if svc.pages else 0)
            suspended.add_metric(labels, 1 if svc.suspended else 0)
            gap = nominal_gap_s(svc.regulation)
            if gap:
                max_age.add_metric(labels, gap)
            for page in svc.pages:
                page_info.add_metric([svc.id, str(page.position)], {"url": page.url, "kind": page.kind.value,
                                                                    "name": page.name})
        yield from (info, monitored, suspended, max_age, page_info)

    def _store_families(self, now: datetime) -> Iterator[Any]:
        # the two big queries run beside the rest (on PostgreSQL each is a round trip of ~0.1 s at 10k pages)
        page_rows = self._queries.submit(self.store.page_metrics)
        tallies = self._queries.submit(self.store.tallies_by_service)
        try:
            yield from self._families(now, page_rows, tallies)
        finally:
            for future in (page_rows, tallies):
                future.cancel()

    def _families(self, now: datetime, page_rows: Future[list[tuple[Any, ...]]],
                  tallies: Future[list[tuple[str, str, str, int]]]) -> Iterator[Any]:
        aggregates = self.store.service_aggregates()
        statuses = service_statuses(self.catalogue, aggregates, now)
        known = {s.id for s in self.catalogue.services}

        def gauge(name: str, doc: str, labels: list[str] = SITE_LABELS) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=labels)

        last_real = gauge("freshness_last_real_update_timestamp_seconds",
                          "Last detected real update (content or documents by default).")
        since = gauge("freshness_monitoring_since_timestamp_seconds", "First successful check of the service.")
        deadline = gauge("freshness_deadline_timestamp_seconds", "When the next real update is required.")
        grade = gauge("freshness_grade", "Staleness grade: -1 unknown, 0 fresh, 1 due, 2 overdue, 3 delinquent.")
        last_check = gauge("freshness_last_check_timestamp_seconds", "Last check of any page, any outcome.")
        last_success = gauge("freshness_last_success_timestamp_seconds", "Last successful check of any page.")
        last_change = gauge("freshness_last_change_timestamp_seconds", "Last change of any class from date_only up.")
        pages_failing = gauge("freshness_pages_failing", "Pages whose last check failed.")
        state = gauge("freshness_site_state", "1 for the service's operational state.", [*SITE_LABELS, "state"])
        for st in statuses:
            labels = [st.id, st.department_id, st.regulation.value]
            for family, value in ((last_real, _ts(st.last_real_update_at)), (since, _ts(st.monitoring_since)),
                                  (deadline, _ts(st.deadline)), (last_check, _ts(st.last_check_at)),
                                  (last_success, _ts(st.last_success_at)), (last_change, _ts(st.last_change_at))):
                if value is not None:
                    family.add_metric(labels, value)
            if st.state is not State.UNMONITORED:
                grade.add_metric(labels, GRADE_VALUE[st.grade])
                pages_failing.add_metric(labels, st.pages_failing)
            for s in State:
                state.add_metric([*labels, s.value], 1 if st.state is s else 0)
        yield from (last_real, since, deadline, grade, last_check, last_success, last_change, pages_failing, state)

        families = [_PageFamily(name, doc) for name, doc in PAGE_FAMILIES]
        tls = GaugeMetricFamily("freshness_tls_cert_expiry_timestamp_seconds",
                                "Earliest certificate expiry seen on the host.", labels=["site", "host"])
        hosts: dict[tuple[str, str], float] = {}
        max_interval = 0
        # thousands of pages: each page's four lines are rendered once and reused while its row is unchanged
        cache, fresh = self._page_lines, {}
        outs = [f.lines for f in families]
        for row in page_rows.result():
            sid, _position, url, interval, _outcome, _status, _duration, _checked, expiry = row
            if sid not in known:
                continue
            max_interval = max(max_interval, interval)
            lines = cache.get(row)
            if lines is None:
                lines = _page_lines(row)
            fresh[row] = lines
            for out, line in zip(outs, lines, strict=True):
                if line:
                    out.append(line)
            if expiry is not None:
                key = (sid, self._host(url))
                hosts[key] = min(hosts.get(key, float("inf")), float(expiry))
        self._page_lines = fresh
        for (site_id, host), expiry in sorted(hosts.items()):
            tls.add_metric([site_id, host], expiry)
        yield from (*families, tls)

        checks = CounterMetricFamily("freshness_checks", "Checks by outcome class.", labels=["site", "outcome"])
        changes = CounterMetricFamily("freshness_changes", "Changes by class (flap: back to a recent version).",
                                      labels=["site", "class"])
        counts: dict[tuple[str, str], dict[str, int]] = {}
        for sid, fam, name, n in tallies.result():
            if sid in known:
                counts.setdefault((sid, fam), {})[name] = n
        durations = HistogramMetricFamily("freshness_fetch_duration_seconds", "Fetch duration of every check.",
                                          labels=["site"])
        for svc in self.catalogue.services:
            if not svc.pages:
                continue
            outcomes = counts.get((svc.id, "outcome"), {})
            for o in Outcome:  # export 0 for known series
                checks.add_metric([svc.id, o.value], outcomes.get(o.value, 0))
            cls = counts.get((svc.id, "change"), {})
            for c in [*(x.value for x in ChangeClass if x is not ChangeClass.NONE), "flap"]:
                changes.add_metric([svc.id, c], cls.get(c, 0))
            buckets = counts.get((svc.id, "duration"), {})
            cumulative, running = [], 0
            for bound in DURATION_BUCKETS:
                running += buckets.get(repr(bound), 0)
                cumulative.append((repr(bound), running))
            running += buckets.get("+Inf", 0)
            cumulative.append(("+Inf", running))
            total_ms = counts.get((svc.id, "duration_ms"), {}).get("sum", 0)
            durations.add_metric([svc.id], cumulative, total_ms / 1000)
        yield from (checks, changes, durations)

        yield from self._report_families(now, known)
        yield from self._dataset_families(now)

        workers = self.store.workers()
        alive = [w for w in workers if w.stopped_at is None and (now - w.heartbeat_at).total_seconds() < ALIVE_S]
        heartbeat = GaugeMetricFamily("freshness_monitor_heartbeat_timestamp_seconds",
                                      "Newest heartbeat of any monitor worker.")
        last_round = GaugeMetricFamily("freshness_monitor_last_round_timestamp_seconds",
                                       "Every page has been checked since this time (oldest of the live workers).")
        lag = GaugeMetricFamily("freshness_monitor_schedule_lag_seconds", "Worst delay of a check behind its "
                                "schedule in the last heartbeat period.")
        alive_g = GaugeMetricFamily("freshness_monitor_workers", "Monitor workers with a recent heartbeat.")
        max_int = GaugeMetricFamily("freshness_monitor_max_interval_seconds", "Longest check interval of any page.")
        if workers:
            heartbeat.add_metric([], max(w.heartbeat_at for w in workers).timestamp())
        rounds = [w.last_round_at for w in (alive or workers[:1]) if w.last_round_at is not None]
        if rounds:
            last_round.add_metric([], min(rounds).timestamp())
        lag.add_metric([], max((w.schedule_lag_s for w in alive), default=0.0))
        alive_g.add_metric([], len(alive))
        max_int.add_metric([], max_interval)
        yield from (heartbeat, last_round, lag, alive_g, max_int)


PAGE_FAMILIES = (
    ("freshness_page_up", "1 if the page's last check succeeded."),
    ("freshness_page_http_status", "HTTP status of the page's last check."),
    ("freshness_page_fetch_duration_seconds", "Duration of the page's last check."),
    ("freshness_page_last_check_timestamp_seconds", "The page's last check."),
)
SUCCESS = frozenset(o.value for o in Outcome if o.success)


def _page_lines(row: tuple[Any, ...]) -> tuple[str, str, str, str]:
    """The exposition lines of one page's series (empty where there is no value yet)."""
    sid, position, _url, _interval, outcome, status, duration, checked, _expiry = row
    labels = f'{{site="{_escape(sid)}",page="{position}"}}'
    values = (None if outcome is None else (1 if outcome in SUCCESS else 0), status, duration,
              None if checked is None else float(checked))
    return cast(tuple[str, str, str, str], tuple(
        "" if value is None else f"{name}{labels} {_number(value)}\n"
        for (name, _doc), value in zip(PAGE_FAMILIES, values, strict=True)))


class _PageFamily(Metric):
    """A gauge with a series per page, kept as rendered exposition lines (our writer copies them as they
    are); `samples` are parsed from them only when another reader asks (prometheus_client's own writer,
    `get_sample_value`)."""

    def __init__(self, name: str, documentation: str) -> None:
        super().__init__(name, documentation, "gauge")
        self.lines: list[str] = []

    @property
    def samples(self) -> list[Sample]:
        from prometheus_client.parser import text_string_to_metric_families

        return [s for f in text_string_to_metric_families("".join(self.lines)) for s in f.samples]

    @samples.setter
    def samples(self, value: list[Sample]) -> None:  # Metric.__init__ sets it; the lines are the truth
        pass


REPORT_WINDOW_DAYS = 90
REPORT_CACHE_S = 300.0  # the audit behind the self-report metrics changes with imports, not with scrapes
REPORT_FIRST_WAIT_S = 2.0
DATASET_CACHE_S = 60.0  # open-data datasets graded again at most this often while their catalogue is unchanged


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


TYPE_SUFFIX = {"counter": ("_total", "counter"), "info": ("_info", "gauge"), "stateset": ("", "gauge"),
               "gaugehistogram": ("", "histogram"), "unknown": ("", "untyped")}


_LABELS: dict[tuple[str, ...], str] = {}  # rendered label sets, kept across scrapes (pages rarely change)
_LABELS_MAX = 200_000


def exposition(registry: CollectorRegistry) -> bytes:
    """The text format (0.0.4), written directly: prometheus_client's own writer validates and escapes every
    label of every sample, which costs more than computing the values when a catalogue has thousands of pages.
    Our names and label names are fixed identifiers; label values are escaped here, and each distinct label
    set is rendered once (the same page's labels serve every per-page family, scrape after scrape)."""
    out: list[str] = []
    append = out.append
    if len(_LABELS) > _LABELS_MAX:
        _LABELS.clear()
    # this scrape's label dicts (one shared by a page's series) -> rendered; holding the dict keeps its id unique
    by_id: dict[int, tuple[dict[str, str], str]] = {}
    for family in registry.collect():
        suffix, kind = TYPE_SUFFIX.get(family.type, ("", family.type))
        name = family.name + suffix
        doc = family.documentation.replace("\\", "\\\\").replace("\n", "\\n")
        append(f"# HELP {name} {doc}\n# TYPE {name} {kind}\n")
        if isinstance(family, _PageFamily):
            out.extend(family.lines)
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            text = _number(sample.value)
            if sample.labels:
                seen = by_id.get(id(sample.labels))
                if seen is None:
                    key = (*sample.labels, *sample.labels.values())
                    labels = _LABELS.get(key)
                    if labels is None:
                        labels = _LABELS[key] = ",".join(f'{k}="{_escape(v)}"' for k, v in sample.labels.items())
                    by_id[id(sample.labels)] = (sample.labels, labels)
                else:
                    labels = seen[1]
                append(f"{sample.name}{{{labels}}} {text}\n")
            else:
                append(f"{sample.name} {text}\n")
    return "".join(out).encode("utf-8")


INF = float("inf")


def _number(value: float) -> str:
    value = float(value)
    if value != value:
        return "NaN"
    if value in (INF, -INF):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def registry_for(collector: FreshnessCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("metrics: " + format, *args)


class MetricsServer:
    """Serves /metrics and /healthz from a background thread."""

    def __init__(self, collector: FreshnessCollector, listen: str, *,
                 health: Callable[[], tuple[bool, dict[str, Any]]]) -> None:
        host, _, port = listen.rpartition(":")
        registry = registry_for(collector)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO")
            if path == "/healthz":
                ok, details = health()
                body = json.dumps({"ok": ok, **details}, default=str).encode()
                start_response("200 OK" if ok else "503 Service Unavailable",
                               [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
                return [body]
            if path not in ("/metrics", "/"):
                start_response("404 Not Found", [("Content-Type", "text/plain")])
                return [b"/metrics and /healthz only\n"]
            body = exposition(registry)
            headers = [("Content-Type", CONTENT_TYPE_LATEST)]
            if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):  # Prometheus asks for it: 4 MB become 0.3 MB
                body = gzip.compress(body, compresslevel=1)
                headers.append(("Content-Encoding", "gzip"))
            start_response("200 OK", [*headers, ("Content-Length", str(len(body)))])
            return [body]

        self._server = make_server(host.strip("[]") or "0.0.0.0", int(port), app, server_class=_Server,
                                   handler_class=_QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)
        self._collector = collector

    def start(self) -> MetricsServer:
        self._collector.refresh_reports(self._collector.clock())
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
