"""The Prometheus metrics: the only module that imports prometheus_client.

Small collectors on one registry, each computing its families from the store at scrape time (SQL aggregates
over the page summaries, the persistent counters, and the aggregates the maintenance job keeps), so a
scrape only reads, values survive restarts and agree with `monitor status`. Registering queries nothing.
Label names are ids: `site` (not `service`, which clashes with target labels), `department`, `regulation`,
`page` (an id derived from the page's address: `freshness_page_info` gives the URL), `outcome`, `class`,
`host`, `grade`, `verdict`.

    Scrape             begins a scrape (the two big queries start at once, side by side) and ends it
                       (freshness_database_up, the build, the scrape's duration)
    CatalogueCollector the catalogue itself (names, URLs, regulations): computed once
    ServiceCollector   each service's state and grade (monitor.status)
    PageCollector      each page's last check, rendered once per change of its row
    CounterCollector   checks by outcome, changes by class, the fetch-duration histogram
    ReportCollector    self-reports against detections (kept by the maintenance job)
    DatasetCollector   open-data datasets by grade (kept by the maintenance job)
    WorkerCollector    the monitors' heartbeats
    RuntimeCollector   the running process's write buffer (`monitor run` only)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar, cast
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from monitor import __version__, kinds
from monitor.audit import UNREPORTED, ReportVerdict
from monitor.clock import SYSTEM, Clock
from monitor.domain import REGULATION_TEXT, Catalogue, ChangeClass, Grade, Outcome, page_label, redact_url
from monitor.ports import DURATION_BUCKETS, MetricsReader, PageMetricRow, TallyRow
from monitor.regulation import default_interval_s, nominal_gap_s
from monitor.status import State, service_statuses

logger = logging.getLogger(__name__)

__all__ = ["CONTENT_TYPE_LATEST", "GRADE_VALUE", "Runtime", "WorkerStats", "build_registry", "exposition",
           "worker_registry"]

SITE_LABELS = ["site", "department", "regulation"]
GRADE_VALUE = {Grade.UNKNOWN: -1, Grade.FRESH: 0, Grade.DUE: 1, Grade.OVERDUE: 2, Grade.DELINQUENT: 3}
ALIVE_S = 300.0  # a worker whose heartbeat is older than this is not counted as alive
T = TypeVar("T")


def _ts(t: datetime | None) -> float | None:
    return t.timestamp() if t is not None else None


@dataclass(frozen=True, slots=True)
class Runtime:
    """What only the running process knows (the write buffer)."""

    pending_records: int
    database_writable: bool


class _Quiet(Collector):
    """Registering queries nothing: no describe() that would run collect()."""

    def describe(self) -> Iterable[Metric]:
        return []


class Scrape:
    """One scrape's shared state, kept per thread (the exporter serves concurrent scrapes, each in its own
    thread). `begin` (registered first) starts the two big queries side by side; the collectors that read
    the store report whether it answered; `end` (registered last) says so."""

    def __init__(self, reader: MetricsReader) -> None:
        self.reader = reader
        self._queries = ThreadPoolExecutor(max_workers=4, thread_name_prefix="metrics-query")
        self._local = threading.local()
        self.begin = _Begin(self)
        self.end = _End(self)

    def start(self) -> None:
        local = self._local
        local.started = time.perf_counter()
        local.answered = {}
        # on PostgreSQL each is a round trip of ~0.1 s at 10k pages: they run beside the rest of the scrape
        local.pending = {"pages": self._queries.submit(self.reader.page_metrics),
                         "tallies": self._queries.submit(self.reader.tallies_by_service)}

    @property
    def started(self) -> float:
        return float(getattr(self._local, "started", time.perf_counter()))

    @property
    def answered(self) -> dict[str, bool]:
        if not hasattr(self._local, "answered"):
            self._local.answered = {}
        return cast(dict[str, bool], self._local.answered)

    def result(self, name: str, query: Callable[[], T]) -> T:
        future = getattr(self._local, "pending", {}).pop(name, None)
        return cast(T, future.result()) if future is not None else query()

    def guarded(self, name: str, families: Callable[[], Iterator[Metric]]) -> Iterator[Metric]:
        """A collector's families, or none when the database did not answer (the scrape goes on)."""
        try:
            out = list(families())
        except Exception as exc:  # the exporter must answer even when the database does not
            logger.warning("metrics: %s: database query failed: %s", name, exc)
            self.answered[name] = False
            return iter(())
        self.answered[name] = True
        return iter(out)


class _Begin(_Quiet):
    def __init__(self, scrape: Scrape) -> None:
        self.scrape = scrape

    def collect(self) -> Iterator[Metric]:
        self.scrape.start()
        return iter(())


class _End(_Quiet):
    def __init__(self, scrape: Scrape) -> None:
        self.scrape = scrape

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("freshness_database_up", "1 if the database answered this scrape's queries.")
        up.add_metric([], 1 if all(self.scrape.answered.values()) else 0)
        build = InfoMetricFamily("freshness_build", "The monitor's version.")
        build.add_metric([], {"version": __version__})
        d = GaugeMetricFamily("freshness_scrape_duration_seconds", "Time to compute this scrape.")
        d.add_metric([], time.perf_counter() - self.scrape.started)
        yield from (up, build, d)


class _Sites:
    """The catalogue's label values of each service."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.labels = {s.id: [s.id, s.department_id, s.regulation.value] for s in catalogue.services}


class CatalogueCollector(_Quiet):
    """The catalogue does not change while the process runs: its families are computed once."""

    def __init__(self, sites: _Sites) -> None:
        self.sites = sites
        self._families: list[Metric] | None = None

    def collect(self) -> Iterator[Metric]:
        if self._families is None:
            self._families = list(self._build())
        yield from self._families

    def _build(self) -> Iterator[Metric]:
        info = InfoMetricFamily("freshness_site", "The catalogue: names as the order writes them.",
                                labels=SITE_LABELS)
        monitored = GaugeMetricFamily("freshness_site_monitored", "1 if the service has pages to check, "
                                      "0 if it is unmonitored (no known address).", labels=SITE_LABELS)
        suspended = GaugeMetricFamily("freshness_site_suspended", "1 if the service is suspended (shown, "
                                      "never alerted).", labels=SITE_LABELS)
        max_age = GaugeMetricFamily("freshness_max_age_seconds", "The regulation's allowed gap between real "
                                    "updates (no series for 'as needed').", labels=SITE_LABELS)
        page_info = InfoMetricFamily("freshness_page", "The monitored addresses.", labels=["site", "page"])
        max_interval = 0
        for svc in self.sites.catalogue.services:
            labels = self.sites.labels[svc.id]
            words, words_uk = REGULATION_TEXT[svc.regulation]
            info.add_metric(labels, {"name": svc.name, "department_name": svc.department,
                                     "responsible": svc.responsible, "regulation_text": words,
                                     "regulation_text_uk": words_uk})
            monitored.add_metric(labels, 1 if svc.pages else 0)
            suspended.add_metric(labels, 1 if svc.suspended else 0)
            gap = nominal_gap_s(svc.regulation)
            if gap:
                max_age.add_metric(labels, gap)
            for page in svc.pages:
                page_info.add_metric([svc.id, page.label], {
                    "url": redact_url(page.url), "kind": page.kind.value, "name": page.name,
                    "position": str(page.position)})
                max_interval = max(max_interval, page.interval_s or default_interval_s(svc.regulation))
        longest = GaugeMetricFamily("freshness_monitor_max_interval_seconds", "Longest check interval of any page.")
        longest.add_metric([], max_interval)
        yield from (info, monitored, suspended, max_age, page_info, longest)


class ServiceCollector(_Quiet):
    """Each service's operational state, grade and latest times, graded as `monitor status` grades them."""

    def __init__(self, sites: _Sites, scrape: Scrape, clock: Clock) -> None:
        self.sites, self.scrape, self.clock = sites, scrape, clock

    def collect(self) -> Iterator[Metric]:
        return self.scrape.guarded("services", self._families)

    def _families(self) -> Iterator[Metric]:
        statuses = service_statuses(self.sites.catalogue, self.scrape.reader.service_aggregates(), self.clock.now())

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
            labels = self.sites.labels[st.id]
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


PAGE_FAMILIES = (
    ("freshness_page_up", "1 if the page's last check succeeded."),
    ("freshness_page_http_status", "HTTP status of the page's last check."),
    ("freshness_page_fetch_duration_seconds", "Duration of the page's last check."),
    ("freshness_page_last_check_timestamp_seconds", "The page's last check."),
)
SUCCESS = frozenset(o.value for o in Outcome if o.success)


def _page_lines(row: PageMetricRow) -> tuple[str, str, str, str]:
    """The exposition lines of one page's series (empty where there is no value yet)."""
    labels = f'{{site="{_escape(row.service_id)}",page="{page_label(row.url)}"}}'
    values = (None if row.outcome is None else (1 if row.outcome in SUCCESS else 0), row.status, row.duration_s,
              row.checked)
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


class PageCollector(_Quiet):
    """Each page's last check, and the earliest certificate expiry per host. Thousands of pages: each page's
    lines are rendered once and reused while its row is unchanged."""

    def __init__(self, sites: _Sites, scrape: Scrape, clock: Clock) -> None:
        self.sites, self.scrape, self.clock = sites, scrape, clock
        self._lines: dict[PageMetricRow, tuple[str, str, str, str]] = {}
        self._hosts: dict[str, str] = {}

    def collect(self) -> Iterator[Metric]:
        return self.scrape.guarded("pages", self._families)

    def _host(self, url: str) -> str:
        host = self._hosts.get(url)
        if host is None:
            host = self._hosts[url] = (urlsplit(url).hostname or "").lower()
        return host

    def _families(self) -> Iterator[Metric]:
        rows = self.scrape.result("pages", self.scrape.reader.page_metrics)
        families = [_PageFamily(name, doc) for name, doc in PAGE_FAMILIES]
        tls = GaugeMetricFamily("freshness_tls_cert_expiry_timestamp_seconds",
                                "Earliest certificate expiry seen on the host.", labels=["site", "host"])
        late = GaugeMetricFamily("freshness_pages_late", "Pages whose last check is older than twice their "
                                 "interval (the checking engine is behind, or they were never checked).",
                                 labels=["site"])
        late_by: dict[str, int] = {}
        now = self.clock.now().timestamp()
        hosts: dict[tuple[str, str], float] = {}
        cache, fresh = self._lines, {}
        outs = [f.lines for f in families]
        for row in rows:
            if row.service_id not in self.sites.labels:
                continue
            lines = cache.get(row)
            if lines is None:
                lines = _page_lines(row)
            fresh[row] = lines
            for out, line in zip(outs, lines, strict=True):
                if line:
                    out.append(line)
            behind = (row.checked or 0.0) < now - 2 * row.interval_s
            late_by[row.service_id] = late_by.get(row.service_id, 0) + behind
            if row.tls_expiry is not None:
                key = (row.service_id, self._host(row.url))
                hosts[key] = min(hosts.get(key, float("inf")), float(row.tls_expiry))
        self._lines = fresh
        for (site_id, host), expiry in sorted(hosts.items()):
            tls.add_metric([site_id, host], expiry)
        for site_id, n in sorted(late_by.items()):
            late.add_metric([site_id], n)
        yield from (*families, tls, late)


class CounterCollector(_Quiet):
    """The persistent counters: checks by outcome, changes by class, the fetch-duration histogram."""

    def __init__(self, sites: _Sites, scrape: Scrape) -> None:
        self.sites, self.scrape = sites, scrape

    def collect(self) -> Iterator[Metric]:
        return self.scrape.guarded("counters", self._families)

    def _families(self) -> Iterator[Metric]:
        tallies: list[TallyRow] = self.scrape.result("tallies", self.scrape.reader.tallies_by_service)
        counts: dict[tuple[str, str], dict[str, int]] = {}
        for t in tallies:
            counts.setdefault((t.service_id, t.family), {})[t.key] = t.count
        checks = CounterMetricFamily("freshness_checks", "Checks by outcome class.", labels=["site", "outcome"])
        changes = CounterMetricFamily("freshness_changes", "Changes by class (flap: back to a recent version).",
                                      labels=["site", "class"])
        durations = HistogramMetricFamily("freshness_fetch_duration_seconds", "Fetch duration of every check.",
                                          labels=["site"])
        for svc in self.sites.catalogue.services:
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


class ReportCollector(_Quiet):
    """Self-reports against detections over the last 90 days: the audit's verdicts, as the maintenance job
    last kept them (monitor.maintenance), and each service's newest report."""

    def __init__(self, sites: _Sites, scrape: Scrape) -> None:
        self.sites, self.scrape = sites, scrape

    def collect(self) -> Iterator[Metric]:
        return self.scrape.guarded("reports", self._families)

    def _families(self) -> Iterator[Metric]:
        reader = self.scrape.reader
        last = GaugeMetricFamily("freshness_self_report_last_timestamp_seconds",
                                 "Newest self-report of the service (its submission).", labels=SITE_LABELS)
        for sid, t in sorted(reader.last_reports().items()):
            if sid in self.sites.labels:
                last.add_metric(self.sites.labels[sid], t.timestamp())
        by_verdict = GaugeMetricFamily("freshness_self_reports", "Self-reports of the last 90 days by verdict "
                                       "(confirmed, date_only, unconfirmed, unverifiable).", labels=["site", "verdict"])
        unreported = GaugeMetricFamily("freshness_unreported_updates", "Real updates of the last 90 days that no "
                                       "self-report mentions.", labels=SITE_LABELS)
        for sid, agg in sorted(reader.aggregates("self_reports").items()):
            if sid not in self.sites.labels:
                continue
            for verdict in ReportVerdict:
                by_verdict.add_metric([sid, verdict.value], agg.counts.get(verdict.value, 0))
            unreported.add_metric(self.sites.labels[sid], agg.counts.get(UNREPORTED, 0))
        yield from (last, by_verdict, unreported)


class DatasetCollector(_Quiet):
    """Open-data catalogues: their datasets by grade against each dataset's own declared frequency."""

    def __init__(self, sites: _Sites, scrape: Scrape) -> None:
        self.sites, self.scrape = sites, scrape
        self.services = [s.id for s in sites.catalogue.services if any(kinds.spec(p.kind).datasets for p in s.pages)]

    def collect(self) -> Iterator[Metric]:
        return self.scrape.guarded("datasets", self._families)

    def _families(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("freshness_datasets", "Datasets of a ckan page by grade against their own "
                                   "update_frequency.", labels=["site", "grade"])
        kept = self.scrape.reader.aggregates("datasets") if self.services else {}
        for sid in self.services:
            counts = kept[sid].counts if sid in kept else {}
            for g in Grade:
                family.add_metric([sid, g.value], counts.get(g.value, 0))
        yield family


class WorkerCollector(_Quiet):
    """The monitors' own health from their heartbeats."""

    def __init__(self, scrape: Scrape, clock: Clock) -> None:
        self.scrape, self.clock = scrape, clock

    def collect(self) -> Iterator[Metric]:
        return self.scrape.guarded("workers", self._families)

    def _families(self) -> Iterator[Metric]:
        now = self.clock.now()
        workers = self.scrape.reader.workers()
        alive = [w for w in workers if w.stopped_at is None and (now - w.heartbeat_at).total_seconds() < ALIVE_S]
        heartbeat = GaugeMetricFamily("freshness_monitor_heartbeat_timestamp_seconds",
                                      "Newest heartbeat of any monitor worker.")
        last_round = GaugeMetricFamily("freshness_monitor_last_round_timestamp_seconds",
                                       "Every page has been checked since this time (oldest of the live workers).")
        lag = GaugeMetricFamily("freshness_monitor_schedule_lag_seconds", "Worst delay of a check behind its "
                                "schedule in the last heartbeat period.")
        alive_g = GaugeMetricFamily("freshness_monitor_workers", "Monitor workers with a recent heartbeat.")
        if workers:
            heartbeat.add_metric([], max(w.heartbeat_at for w in workers).timestamp())
        rounds = [w.last_round_at for w in (alive or workers[:1]) if w.last_round_at is not None]
        if rounds:
            last_round.add_metric([], min(rounds).timestamp())
        lag.add_metric([], max((w.schedule_lag_s for w in alive), default=0.0))
        alive_g.add_metric([], len(alive))
        yield from (heartbeat, last_round, lag, alive_g)


class QueueCollector(_Quiet):
    """The procrastinate engine's queue as the database holds it (nothing under the embedded engine)."""

    def __init__(self, scrape: Scrape) -> None:
        self.scrape = scrape

    def collect(self) -> Iterator[Metric]:
        return self.scrape.guarded("queue", self._families)

    def _families(self) -> Iterator[Metric]:
        rows = self.scrape.reader.queue()
        jobs = GaugeMetricFamily("freshness_queue_jobs", "Jobs waiting (todo) or running (doing) by queue.",
                                 labels=["queue", "status"])
        oldest = GaugeMetricFamily("freshness_queue_oldest_waiting_timestamp_seconds", "When the longest-waiting "
                                   "job of the queue was deferred (absent when none waits).", labels=["queue"])
        for row in rows:
            jobs.add_metric([row.queue, row.status], row.jobs)
            if row.status == "todo" and row.oldest is not None:
                oldest.add_metric([row.queue], row.oldest)
        yield from (jobs, oldest)


@dataclass(frozen=True, slots=True)
class WorkerStats:
    """What a worker process of the procrastinate engine did (its own series, not the catalogue's)."""

    jobs_done: int
    jobs_failed: int
    skipped: int
    postponed: int  # put off to free the job's slot: its host could not be asked for a while
    wait_buckets: tuple[float, ...]  # upper bounds
    waits: tuple[int, ...]  # jobs per bucket, one more for +Inf
    wait_sum_s: float


class WorkerProcessCollector(_Quiet):
    def __init__(self, stats: Callable[[], WorkerStats]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        st = self.stats()
        jobs = CounterMetricFamily("freshness_worker_jobs", "Check jobs this worker ran, by outcome (skipped: "
                                   "the round's check was already stored; postponed: put off while its host "
                                   "could not be asked).", labels=["outcome"])
        jobs.add_metric(["done"], st.jobs_done - st.skipped - st.postponed)
        jobs.add_metric(["skipped"], st.skipped)
        jobs.add_metric(["postponed"], st.postponed)
        jobs.add_metric(["failed"], st.jobs_failed)
        wait = HistogramMetricFamily("freshness_worker_queue_wait_seconds", "Check jobs' wait in the queue, from "
                                     "their dispatch to their start.")
        cumulative, buckets = 0, []
        for bound, n in zip((*st.wait_buckets, float("inf")), st.waits, strict=True):
            cumulative += n
            buckets.append(("+Inf" if bound == float("inf") else f"{bound:g}", cumulative))
        wait.add_metric([], buckets, st.wait_sum_s)
        yield from (jobs, wait)


def worker_registry(stats: Callable[[], WorkerStats], runtime: Callable[[], Runtime]) -> CollectorRegistry:
    """A worker's own /metrics: its jobs and its write buffer; the catalogue's series are the exporter's."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(WorkerProcessCollector(stats))
    registry.register(RuntimeCollector(runtime))
    return registry


class RuntimeCollector(_Quiet):
    """What only the running process knows: its write buffer."""

    def __init__(self, runtime: Callable[[], Runtime]) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        rt = self.runtime()
        g = GaugeMetricFamily("freshness_write_buffer_records", "Check records waiting to be written "
                              "(they pile up while the database is unreachable).")
        g.add_metric([], rt.pending_records)
        w = GaugeMetricFamily("freshness_database_writable", "1 if the last write to the database succeeded.")
        w.add_metric([], 1 if rt.database_writable else 0)
        yield from (g, w)


def build_registry(catalogue: Catalogue, reader: MetricsReader, *, clock: Clock = SYSTEM,
                   runtime: Callable[[], Runtime] | None = None) -> CollectorRegistry:
    """A fresh registry with every collector; the order of registration is the order of a scrape."""
    registry = CollectorRegistry(auto_describe=True)
    sites = _Sites(catalogue)
    scrape = Scrape(reader)
    collectors: list[Collector] = [scrape.begin, CatalogueCollector(sites), ServiceCollector(sites, scrape, clock),
                                   PageCollector(sites, scrape, clock), CounterCollector(sites, scrape),
                                   ReportCollector(sites, scrape), DatasetCollector(sites, scrape),
                                   WorkerCollector(scrape, clock), QueueCollector(scrape)]
    if runtime is not None:
        collectors.append(RuntimeCollector(runtime))
    collectors.append(scrape.end)
    for collector in collectors:
        registry.register(collector)
    return registry


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

