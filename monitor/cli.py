"""The command line and the composition root: builds the store, the fetcher, the runner and the schedule."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import click
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from monitor import __version__, logs
from monitor import checkpoint as checkpoints
from monitor.alerting import (
    Links,
    RoutingOptions,
    alertmanager_config,
    alertmanager_yaml,
    route_cases,
    rules_yaml,
    runbooks_markdown,
    undelivered,
)
from monitor.archive import WAYBACK_CDX, WAYBACK_REPLAY, Archive
from monitor.auditing import TERMINAL, VIEWS, View, about, audit_evidence, gather, views
from monitor.backfill import Backfill, Counts, url_key
from monitor.clock import SYSTEM
from monitor.config import Invalid, department_names, keys_reference, load_catalogue, parse_duration
from monitor.core import Reader
from monitor.domain import (
    DEFAULT_REAL_CLASSES,
    Catalogue,
    CheckRecord,
    Engine,
    FetchResult,
    Grade,
    Kind,
    Quality,
    Settings,
    Target,
    load_content,
    redact_text,
    redact_url,
)
from monitor.errors import (
    ConfigError,
    MonitorError,
    Problem,
    StoreInUse,
    StoreReadOnly,
    StoreUnavailable,
    UsageError,
)
from monitor.exporter import MetricsServer
from monitor.extract import validate_jmespath, validate_selector
from monitor.faults import fault_views, run_faults
from monitor.fetch import Fetcher
from monitor.learning import Learner
from monitor.maintenance import AGGREGATES_EVERY_S, Maintenance, refresh_aggregates
from monitor.metrics import Runtime, WorkerStats, build_registry, worker_registry
from monitor.render import (
    DETAILS,
    LEFT_OUT,
    Column,
    audit_meta,
    details_text,
    fit,
    labelled,
    tables_to_html,
    to_csv,
    to_html,
    to_json,
    to_xlsx,
    view_columns,
)
from monitor.reports import ReportMapping, department_note
from monitor.reports import parse as parse_reports
from monitor.runner import Runner
from monitor.sandbox import Limits, Sandbox
from monitor.schedule import Periodic, Schedule
from monitor.status import ServiceStatus, State, dataset_statuses, service_statuses
from monitor.store import Store
from monitor.store.engine import check_writable, instance_lock, make_engine, upgrade
from monitor.warc import Capture as WarcCapture
from monitor.warc import write as write_warc

logger = logging.getLogger("monitor")

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
GRADE_STYLE = {Grade.FRESH: "green", Grade.DUE: "yellow", Grade.OVERDUE: "dark_orange", Grade.DELINQUENT: "red",
               Grade.UNKNOWN: "dim"}
STATE_STYLE = {State.OK: "green", State.DOWN: "red", State.DEGRADED: "yellow", State.PENDING: "dim",
               State.UNMONITORED: "magenta", State.SUSPENDED: "blue"}


def utcnow() -> datetime:
    return SYSTEM.now()


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


SYSTEM_TARGETS = "/etc/freshness-monitor/targets.toml"


def default_targets() -> str:
    """-t, else MONITOR_TARGETS, else targets.toml here, else the system's (after a package install)."""
    if "MONITOR_TARGETS" in os.environ:
        return os.environ["MONITOR_TARGETS"]
    return "targets.toml" if Path("targets.toml").exists() or not Path(SYSTEM_TARGETS).exists() else SYSTEM_TARGETS


def selector_problems(catalogue: Catalogue) -> list[Problem]:
    problems = []
    for svc in catalogue.services:
        for page in svc.pages:
            for key, selectors in (("content", [page.content] if page.content else []), ("exclude", page.exclude)):
                for sel in selectors:
                    complaint = validate_selector(sel)
                    if complaint:
                        problems.append(Problem(where=f"service {svc.id!r} page {page.position} key {key!r}",
                                                message=f"invalid CSS selector {sel!r}: {complaint}"))
            if page.select and (complaint := validate_jmespath(page.select)):
                problems.append(Problem(where=f"service {svc.id!r} page {page.position} key 'select'",
                                        message=f"invalid JMESPath expression {page.select!r}: {complaint}"))
    return problems


def load(path: str) -> Catalogue:
    """Load and fully validate the catalogue (selectors included); exit 2 with every problem on failure."""
    try:
        catalogue = load_catalogue(path)
        problems = selector_problems(catalogue)
        if problems:
            raise ConfigError(path, problems)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_USAGE)
    return catalogue


def open_store(catalogue: Catalogue, *, auto_upgrade: bool | None = None, writes: bool = True) -> Store:
    """The store, for a command that writes (refused at once on a database that cannot be written) or only
    reads."""
    try:
        if writes:
            check_writable(catalogue.settings.database_url)
        return Store.open(catalogue.settings.database_url, auto_upgrade=auto_upgrade)
    except StoreReadOnly as exc:
        fail(str(exc), EXIT_PROBLEM)
    except MonitorError as exc:
        fail(str(exc))
    except Exception as exc:  # a driver error before we have a store to translate it
        fail(f"cannot open the database {catalogue.settings.database_url.split('@')[-1]}: {exc}")


def local(t: datetime | None, tz: str) -> str:
    return t.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M") if t else "-"


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    days, rem = divmod(int(seconds), 86400)
    return f"{days}d {rem // 3600}h" if days else f"{rem // 3600}h {rem % 3600 // 60}m"


# --- what the commands print: tables that fit the terminal, or one JSON document -----------------------

WIDE = click.option("--wide", is_flag=True,
                    help="Every column at its full width, whatever the terminal's width (lines may be longer).")
JSON = click.option("--json", "as_json", is_flag=True,
                    help="Print one JSON document (stable keys, times in ISO 8601 UTC) instead of text.")
JSON_REPORT = click.option("--json", "as_json", is_flag=True,
                           help="Same as --format json: every view, times in ISO 8601 with the local offset.")
Cell = str | Text


def output_width() -> int:
    """The terminal's width (rich reads it, and COLUMNS); when the output is no terminal, COLUMNS or 120."""
    console = Console()
    if console.is_terminal:
        return max(20, console.width)
    columns = os.environ.get("COLUMNS", "")
    return max(20, int(columns)) if columns.isdigit() else 120


def print_table(title: str, columns: Sequence[Column], rows: Sequence[Sequence[Cell]], *, wide: bool,
                lang: str = "en", details: str = "details") -> None:
    """A table that fits the terminal: cells wrap (never cut), columns the width cannot hold are stacked as
    `header: value` lines in a last details column; `wide` prints every column at its full width."""
    plain = [[c.plain if isinstance(c, Text) else c for c in row] for row in rows]
    layout = fit(columns, plain, None if wide else output_width(), cell_len, details)
    left_out = ", ".join(columns[i].header for i in layout.dropped)
    table = Table(title=Text(title), caption=Text(LEFT_OUT[lang].format(left_out)) if left_out else None)
    for i, width in zip(layout.shown, layout.widths, strict=True):
        table.add_column(Text(columns[i].header), width=width, overflow="fold",
                         justify="right" if columns[i].right else "left")
    if layout.stacked:
        table.add_column(Text(details), width=layout.details_width, overflow="fold")
    for row, text in zip(rows, plain, strict=True):
        cells = [cell if isinstance(cell, Text) else Text(cell) for cell in (row[i] for i in layout.shown)]
        if layout.stacked:
            cells.append(Text("\n".join(details_text([columns[i].header for i in layout.stacked],
                                                      [text[i] for i in layout.stacked]))))
        table.add_row(*cells)
    Console(width=layout.total if wide else output_width(), highlight=False).print(table)


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def print_json(doc: object) -> None:
    """One JSON document on stdout: times as ISO 8601 in UTC, text as it is (no markup, no escapes)."""
    click.echo(json.dumps(doc, ensure_ascii=False, indent=2, default=_json_default))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="monitor")
@click.option("--targets", "-t", "targets_path", default=default_targets, show_default="targets.toml",
              help="The catalogue file (env MONITOR_TARGETS).")
@click.option("--log-level", default="INFO", show_default=True, envvar="MONITOR_LOG_LEVEL",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="The least important events logged (env MONITOR_LOG_LEVEL).")
@click.option("--log-format", default="text", show_default=True, envvar="MONITOR_LOG_FORMAT",
              type=click.Choice(logs.FORMATS),
              help="text for a terminal, json for a log pipeline: one object per line with the event's fields "
                   "(env MONITOR_LOG_FORMAT).")
@click.pass_context
def main(ctx: click.Context, targets_path: str, log_level: str, log_format: str) -> None:
    """Website freshness monitor for city web services."""
    logs.setup(log_level, log_format)
    ctx.obj = {"targets": targets_path}


# --- targets ----------------------------------------------------------------------------------


@main.group()
def targets() -> None:
    """Validate, apply and document the catalogue."""


@targets.command("check")
@click.argument("file", required=False)
@JSON
@click.pass_context
def targets_check(ctx: click.Context, file: str | None, as_json: bool) -> None:
    """Validate FILE (default: the --targets file) without running anything."""
    path = file or ctx.obj["targets"]
    catalogue = load(path)
    pages = len(catalogue.pages)
    unmonitored = sum(1 for s in catalogue.services if not s.pages)
    if as_json:
        print_json({"file": path, "valid": True, "services": len(catalogue.services), "pages": pages,
                    "unmonitored": [s.id for s in catalogue.services if not s.pages],
                    "suspended": [s.id for s in catalogue.services if s.suspended]})
        return
    click.echo(f"{path}: OK: {len(catalogue.services)} services, {pages} pages, {unmonitored} unmonitored, "
               f"{sum(1 for s in catalogue.services if s.suspended)} suspended")


@targets.command("sync")
@JSON
@click.pass_context
def targets_sync(ctx: click.Context, as_json: bool) -> None:
    """Apply the catalogue to the database now, once: new services and pages are added, removed ones retired
    (never deleted). Workers and `monitor run` also apply it when they start; this is the step to run once
    after editing targets.toml, before restarting the workers."""
    catalogue = load(ctx.obj["targets"])
    store = open_store(catalogue)
    try:
        before = {p.page_id for p in store.catalogue.pages()}
        ids = set(store.catalogue.sync_catalogue(catalogue, datetime.now(UTC)).values())
    except MonitorError as exc:
        fail(str(exc), EXIT_PROBLEM)
    finally:
        store.close()
    added, retired = len(ids - before), len(before - ids)
    if as_json:
        print_json({"services": len(catalogue.services), "pages": len(ids), "added": added, "retired": retired})
        return
    click.echo(f"catalogue applied: {len(catalogue.services)} services, {len(ids)} pages "
               f"({added} added, {retired} retired)")


@targets.command("keys")
def targets_keys() -> None:
    """Print the reference of every table and key of targets.toml (Markdown)."""
    click.echo(keys_reference())


# --- db ---------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("prune")
@click.option("--keep-checks", default=None, help="Keep check rows this long (default: settings.keep_checks).")
@click.option("--keep-raw", default=None, help="Keep raw captures this long (default: settings.keep_raw).")
@click.option("--vacuum", is_flag=True, help="Give the space back to the file system (SQLite: VACUUM).")
@JSON
@click.pass_context
def db_prune(ctx: click.Context, keep_checks: str | None, keep_raw: str | None, vacuum: bool, as_json: bool) -> None:
    """Bounded growth: summarise and remove old check rows, drop old raw captures; keep every change."""
    catalogue = load(ctx.obj["targets"])
    settings = catalogue.settings
    try:
        checks_s = parse_duration(keep_checks) if keep_checks else settings.keep_checks_s
        raw_s = parse_duration(keep_raw) if keep_raw else settings.keep_raw_s
    except Invalid as exc:
        fail(str(exc))
    store = open_store(catalogue)
    try:
        before = store.maintenance.size_bytes()
        now = utcnow()
        report = store.maintenance.prune(checks_before=now - timedelta(seconds=checks_s),
                                         raw_before=now - timedelta(seconds=raw_s), slow_s=settings.slow_s, now=now)
        if vacuum:
            store.maintenance.vacuum()
        after = store.maintenance.size_bytes()
    finally:
        store.close()
    if as_json:
        print_json({**report, "vacuumed": vacuum, "size_before_bytes": before, "size_after_bytes": after})
        return
    click.echo(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in report.items())
               + f"; size {before} -> {after} bytes")


@db.command("upgrade")
@click.option("--database-url", default=None, help="Overrides the catalogue's settings.database_url.")
@JSON
@click.pass_context
def db_upgrade(ctx: click.Context, database_url: str | None, as_json: bool) -> None:
    """Create or upgrade the database schema to this version."""
    settings = load(ctx.obj["targets"]).settings
    url = database_url or settings.database_url
    engine = make_engine(url)
    try:
        upgrade(engine)
    except Exception as exc:
        fail(f"upgrade failed: {exc}")
    finally:
        engine.dispose()
    queue = None
    if settings.engine is Engine.PROCRASTINATE:  # its tables beside ours, upgraded by its own migrations
        from monitor import fleet

        try:
            queue = asyncio.run(fleet.install(url))
        except Exception as exc:
            fail(f"upgrade of the procrastinate schema failed: {exc}")
    if as_json:
        print_json({"schema": "up_to_date", **({"procrastinate": queue} if queue else {})})
        return
    click.echo("database schema is up to date" + (f"; {queue}" if queue else ""))


# --- run and check ----------------------------------------------------------------------------


HEARTBEAT_S = 30.0


@contextlib.asynccontextmanager
async def sandbox(settings: Settings) -> AsyncIterator[Reader | None]:
    """Where captures are read: worker processes within limits, or (read_workers = 0) this process."""
    if settings.read_workers <= 0:
        yield None
        return
    box = Sandbox(settings.read_workers, Limits(cpu_s=settings.read_cpu_s, memory_bytes=settings.read_memory_bytes,
                                                wall_s=max(60.0, 3 * settings.read_cpu_s)))
    try:
        yield box.read
    finally:
        box.close()


def start_metrics(catalogue: Catalogue, store: Store, runner: Runner | None = None) -> MetricsServer | None:
    """Serve /metrics and /healthz on settings.metrics_listen (port 0 picks a free port)."""

    def runtime() -> Runtime:
        assert runner is not None
        return Runtime(pending_records=len(runner.recorder.pending), database_writable=runner.recorder.db_ok)

    def health() -> tuple[bool, dict[str, object]]:
        if runner is None:
            ok = store.health.ping()
            return ok, {"database": ok}
        return runner.healthy(HEARTBEAT_S)

    registry = build_registry(catalogue, store.metrics, runtime=runtime if runner is not None else None)
    try:
        server = MetricsServer(registry, catalogue.settings.metrics_listen, health=health).start()
    except OSError as exc:
        logger.error("cannot serve metrics on %s: %s", catalogue.settings.metrics_listen, exc)
        return None
    logger.info("metrics on http://%s:%d/metrics", catalogue.settings.metrics_listen.rpartition(":")[0],
                server.port)
    return server


async def _serve(catalogue: Catalogue, store: Store, stop: asyncio.Event,
                 on_started: Callable[[Runner], None] | None = None) -> None:
    async with Fetcher(catalogue.settings) as fetcher, sandbox(catalogue.settings) as reader:
        runner = Runner(catalogue, store, fetcher, reader=reader)
        targets = runner.prepare()
        runner.heartbeat()  # the first write: a database that takes none stops the start (StoreUnavailable)
        learner = Learner(runner).attach()
        maintenance = Maintenance(runner)
        metrics = start_metrics(catalogue, store, runner)
        if metrics is None:  # a monitor nobody can scrape would run blind: stop, and say why
            fail(f"cannot serve /metrics on {catalogue.settings.metrics_listen} (see above); free the port or set "
                 "[settings] metrics_listen", EXIT_PROBLEM)
        writer = asyncio.create_task(runner.recorder.run())
        schedule = Schedule(lambda t, at: runner.check(t, scheduled_at=at), [
            Periodic("heartbeat", lambda: asyncio.to_thread(runner.heartbeat), HEARTBEAT_S),
            Periodic("aggregates", maintenance.aggregates, AGGREGATES_EVERY_S),
            Periodic("maintenance", maintenance.daily, min(86_400.0, catalogue.settings.link_check_every_s or 86_400.0),
                     first_after_s=3600.0)])  # link checks and pruning, first an hour after the start
        unmonitored = [s.id for s in catalogue.services if not s.pages]
        logger.info("monitor %s: %d services, %d pages, %d unmonitored (%s)", __version__,
                    len(catalogue.services), len(targets), len(unmonitored), ", ".join(unmonitored) or "none")
        schedule.start(targets, runner.states)
        if on_started is not None:
            on_started(runner)
        await stop.wait()
        logger.info("stopping: waiting for running checks")
        await schedule.stop()
        learner.cancel()
        if not await runner.recorder.drain(timeout_s=30):
            logger.error("%d checks could not be written before stopping", len(runner.recorder.pending))
        writer.cancel()
        try:
            runner.heartbeat(stopped=True)
        except MonitorError as exc:
            logger.warning("final heartbeat not recorded: %s", exc)
        if metrics is not None:
            metrics.stop()
        logger.info("stopped")


@main.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run the monitor: check every page on its schedule until stopped (SIGTERM/SIGINT)."""
    catalogue = load(ctx.obj["targets"])
    with contextlib.ExitStack() as held:
        try:  # one monitor per SQLite file: a second would check every page again and race the first
            held.enter_context(instance_lock(catalogue.settings.database_url))
        except StoreInUse as exc:
            fail(str(exc))
        store = open_store(catalogue)

        if catalogue.settings.engine is Engine.PROCRASTINATE:  # a worker that also serves /metrics
            _until_stopped(store, lambda stop: _work(catalogue, store, stop, concurrency=catalogue.settings.concurrency,
                                                     serve_metrics=True))
        else:
            _until_stopped(store, lambda stop: _serve(catalogue, store, stop))


def _until_stopped(store: Store, serve: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run the monitor until SIGTERM or SIGINT sets its stop event; a database it cannot use at start stops it
    with exit 1 and the reason (while running, checks are buffered instead)."""
    async def main_loop() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(stop)

    try:
        asyncio.run(main_loop())
    except StoreUnavailable as exc:
        fail(f"cannot start: {exc}", EXIT_PROBLEM)
    finally:
        store.close()


async def _work(catalogue: Catalogue, store: Store, stop: asyncio.Event, *, concurrency: int,
                serve_metrics: bool, worker_metrics: str | None = None) -> None:
    """A worker of the procrastinate engine: runs check jobs (and, for the fleet, dispatch) from the queue."""
    from monitor import fleet

    gate = fleet.FleetGate(store.fleet, catalogue.settings)
    async with Fetcher(catalogue.settings, gate=gate) as fetcher, sandbox(catalogue.settings) as reader:
        runner = Runner(catalogue, store, fetcher, reader=reader)
        runner.prepare()  # the catalogue's changes, applied once: workers starting together take turns
        runner.heartbeat()  # the first write: a database that takes none stops the start
        learner = Learner(runner).attach()
        metrics = start_metrics(catalogue, store, runner) if serve_metrics else None
        if serve_metrics and metrics is None:
            fail(f"cannot serve /metrics on {catalogue.settings.metrics_listen} (see above); free the port or set "
                 "[settings] metrics_listen", EXIT_PROBLEM)
        maintenance = Maintenance(runner)
        work = fleet.Worker(runner=runner, fleet=store.fleet, gate=gate, daily=maintenance.daily)
        if worker_metrics:  # this worker's own series: its jobs, its queue wait, its write buffer
            registry = worker_registry(lambda: WorkerStats(
                jobs_done=work.jobs_done, jobs_failed=work.jobs_failed, skipped=work.skipped, postponed=work.postponed,
                wait_buckets=fleet.WAIT_BUCKETS, waits=tuple(work.waits), wait_sum_s=work.wait_sum_s), lambda: Runtime(
                pending_records=len(runner.recorder.pending), database_writable=runner.recorder.db_ok))
            try:
                metrics = MetricsServer(registry, worker_metrics, health=lambda: runner.healthy(HEARTBEAT_S)).start()
            except OSError as exc:
                fail(f"cannot serve the worker's /metrics on {worker_metrics}: {exc}", EXIT_PROBLEM)
        writer = asyncio.create_task(runner.recorder.run())
        beats = Schedule(lambda t, at: runner.check(t, scheduled_at=at), [
            Periodic("heartbeat", lambda: asyncio.to_thread(runner.heartbeat), HEARTBEAT_S),
            *([Periodic("aggregates", maintenance.aggregates, AGGREGATES_EVERY_S)] if serve_metrics else [])])
        beats.start([], runner.states)
        logger.info("worker %s: %d pages in the catalogue, %d jobs at once", runner.worker, len(runner.targets),
                    concurrency)
        try:
            await fleet.run_worker(fleet.make_app(catalogue.settings.database_url), work, concurrency=concurrency,
                                   name=runner.worker, stop=stop)
        finally:
            logger.info("stopping: %d jobs done (%d failed)", work.jobs_done, work.jobs_failed)
            await beats.stop()
            learner.cancel()
            if not await runner.recorder.drain(timeout_s=30):
                logger.error("%d checks could not be written before stopping", len(runner.recorder.pending))
            writer.cancel()
            with contextlib.suppress(MonitorError):
                runner.heartbeat(stopped=True)
            if metrics is not None:
                metrics.stop()


@main.command()
@click.option("--concurrency", type=click.IntRange(1, 256), default=None,
              help="Check jobs at once in this process (default: [settings] concurrency).")
@click.option("--metrics-listen", default=None, metavar="HOST:PORT",
              help="Serve this worker's own series (freshness_worker_*) there; the catalogue's are the exporter's.")
@click.pass_context
def worker(ctx: click.Context, concurrency: int | None, metrics_listen: str | None) -> None:
    """Run check jobs from the queue (engine = "procrastinate"): start any number, on any machines, over one
    PostgreSQL; each page is checked once per round by one of them. Stops cleanly on SIGTERM/SIGINT."""
    catalogue = load(ctx.obj["targets"])
    if catalogue.settings.engine is not Engine.PROCRASTINATE:
        fail('`monitor worker` runs with the procrastinate engine: set [settings] engine = "procrastinate" and a '
             "postgresql:// database_url (the embedded engine runs in `monitor run`)")
    store = open_store(catalogue, auto_upgrade=False)
    _until_stopped(store, lambda stop: _work(catalogue, store, stop, serve_metrics=False, worker_metrics=metrics_listen,
                                             concurrency=concurrency or catalogue.settings.concurrency))


def _select(runner: Runner, services: Sequence[str]) -> list[Target]:
    known = {s.id for s in runner.catalogue.services}
    unknown = [s for s in services if s not in known]
    if unknown:
        fail(f"unknown service(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return runner.select(services)


@main.command()
@click.argument("services", nargs=-1)
@JSON
@WIDE
@click.pass_context
def check(ctx: click.Context, services: tuple[str, ...], as_json: bool, wide: bool) -> None:
    """Check every page (or SERVICES' pages) once now and show the result. Exit 1 if a page failed."""
    catalogue = load(ctx.obj["targets"])
    store = open_store(catalogue)
    console = Console(stderr=True)

    async def one_round() -> list[tuple[Target, CheckRecord]]:
        async with Fetcher(catalogue.settings) as fetcher, sandbox(catalogue.settings) as reader:
            runner = Runner(catalogue, store, fetcher, reader=reader)  # one round: no learning, no calibration
            runner.prepare()
            selected = _select(runner, services)
            writer = asyncio.create_task(runner.recorder.run())
            results: list[tuple[Target, CheckRecord]] = []
            if console.is_terminal and selected:
                from rich.progress import Progress

                with Progress(console=console, transient=True) as progress:
                    task = progress.add_task("checking", total=len(selected))

                    def done(t: Target, r: CheckRecord) -> None:
                        results.append((t, r))
                        progress.advance(task)

                    await runner.round(selected, on_done=done)
            else:
                await runner.round(selected, on_done=lambda t, r: results.append((t, r)))
            written, deadline = False, time.monotonic() + 60
            while not written and time.monotonic() < deadline:  # a database that takes no writes: no waiting
                written = await runner.recorder.drain(timeout_s=0.5)
                if isinstance(runner.recorder.last_exception, StoreReadOnly):
                    break
            writer.cancel()
            if not written:
                fail(f"{len(runner.recorder.pending)} check(s) could not be written: {runner.recorder.last_error}",
                     EXIT_PROBLEM)
            try:
                runner.heartbeat()
            except MonitorError as exc:
                logger.warning("heartbeat not recorded: %s", exc)
            return sorted(results, key=lambda tr: (tr[0].service.id, tr[0].page.position))

    try:
        results = asyncio.run(one_round())
    finally:
        store.close()
    failed = [r for _, r in results if not r.outcome.success]
    if as_json:
        click.echo(json.dumps([{"service": t.service.id, "page": t.page.position, "url": redact_url(t.page.url),
                                "outcome": r.outcome.value, "status": r.fetch.status,
                                "change": r.verdict.change_class.value if r.verdict else None,
                                "real_update": r.is_real, "error": redact_text(r.fetch.error),
                                "duration_s": round(r.fetch.elapsed_s, 3)} for t, r in results],
                              ensure_ascii=False, indent=2))
    else:
        rows: list[list[Cell]] = []
        for t, r in results:
            change = r.verdict.change_class.value if r.verdict else "-"
            if r.is_real:
                change += " (real update)"
            rows.append([t.service.id, str(t.page.position), redact_url(t.page.url),
                         Text(r.outcome.value, style="green" if r.outcome.success else "red"),
                         str(r.fetch.status or "-"), change, f"{r.fetch.elapsed_s:.2f}", redact_text(r.fetch.error)])
        print_table(f"{len(results)} pages checked, {len(failed)} failed", [
            Column(header="service"), Column(header="page", right=True), Column(header="url", wrap=True, stack=3),
            Column(header="outcome"), Column(header="HTTP", stack=1, right=True),
            Column(header="change", wrap=True, stack=2), Column(header="seconds", stack=0, right=True),
            Column(header="note", wrap=True, stack=4)], rows, wide=wide)
        unmonitored = [s.id for s in catalogue.services if not s.pages and (not services or s.id in services)]
        if unmonitored:
            click.echo(f"unmonitored (no known address): {', '.join(unmonitored)}")
    sys.exit(EXIT_PROBLEM if failed else EXIT_OK)


# --- status -----------------------------------------------------------------------------------


def statuses(catalogue: Catalogue, store: Store, now: datetime) -> list[ServiceStatus]:
    return service_statuses(catalogue, store.metrics.service_aggregates(), now)


@main.command()
@JSON
@WIDE
@click.pass_context
def status(ctx: click.Context, as_json: bool, wide: bool) -> None:
    """Where each service stands: regulation, last check, last real update, grade."""
    catalogue = load(ctx.obj["targets"])
    store = open_store(catalogue, writes=False)
    try:
        rows = statuses(catalogue, store, utcnow())
        workers = store.health.workers()
    finally:
        store.close()
    tz = catalogue.settings.timezone
    if as_json:
        click.echo(json.dumps({"generated_at": utcnow().isoformat(), "services": [r.as_dict() for r in rows],
                               "workers": [{"id": w.id, "heartbeat_at": w.heartbeat_at.isoformat(),
                                            "stopped": w.stopped_at is not None} for w in workers]},
                              ensure_ascii=False, indent=2))
        return
    table: list[list[Cell]] = []
    for r in rows:
        since = "" if r.last_real_update_at or not r.monitoring_since else " (none seen)"
        table.append([r.id, r.name, r.regulation.value, Text(r.state.value, style=STATE_STYLE[r.state]),
                      Text(r.grade.value, style=GRADE_STYLE[r.grade]) if r.state is not State.UNMONITORED else "-",
                      local(r.last_check_at, tz), local(r.last_real_update_at, tz) + since, age(r.age_s),
                      local(r.deadline, tz)])
    print_table(f"{len(rows)} services — {local(utcnow(), tz)} ({tz})", [
        Column(header="service"), Column(header="name", wrap=True, stack=0, drop=True),
        Column(header="regulation", stack=1), Column(header="state"), Column(header="grade"),
        Column(header="last check", stack=2),
        Column(header="last real update", stack=4), Column(header="age", stack=3, right=True),
        Column(header="deadline", stack=5)], table, wide=wide)
    if workers:
        w = workers[0]
        click.echo(f"last heartbeat: {local(w.heartbeat_at, tz)} from {w.id}"
                   f"{' (stopped)' if w.stopped_at else ''}")



# --- history, diff, compare, noise ---------------------------------------------------------------


def _service_or_fail(catalogue: Catalogue, service: str) -> None:
    known = [s.id for s in catalogue.services]
    if service not in known:
        fail(f"unknown service {service!r} (known: {', '.join(known)})")


@main.command()
@click.argument("service")
@click.option("--all", "show_all", is_flag=True, help="Include date-only bumps (shown by default) and no limit.")
@click.option("--limit", default=50, show_default=True, help="Newest N changes.")
@JSON
@WIDE
@click.pass_context
def history(ctx: click.Context, service: str, show_all: bool, limit: int, as_json: bool, wide: bool) -> None:
    """The change history of SERVICE: when, which page, which class, how much."""
    catalogue = load(ctx.obj["targets"])
    _service_or_fail(catalogue, service)
    store = open_store(catalogue, writes=False)
    try:
        rows = store.history.changes(service_id=service, limit=None if show_all else limit)
    finally:
        store.close()
    tz = catalogue.settings.timezone
    if as_json:
        click.echo(json.dumps([{"id": r.id, "page_url": r.url, "class": r.change_class, "real_update": r.is_real,
                                "window_start": r.window_start.isoformat() if r.window_start else None,
                                "detected_at": r.detected_at.isoformat(), "added": r.added, "removed": r.removed,
                                "edited": r.edited} for r in rows], ensure_ascii=False, indent=2))
        return
    print_table(f"{service}: {len(rows)} change(s), newest first", [
        Column(header="id", right=True), Column(header="detected"), Column(header="since", stack=3),
        Column(header="page", wrap=True), Column(header="class"), Column(header="real", stack=4),
        Column(header="+", stack=2, right=True), Column(header="-", stack=1, right=True),
        Column(header="~", stack=0, right=True)],
        [[str(r.id), local(r.detected_at, tz), local(r.window_start, tz), r.url, r.change_class,
          "yes" if r.is_real else "", str(r.added), str(r.removed), str(r.edited)] for r in rows], wide=wide)


def print_evidence(console: Console, evidence: Mapping[str, object] | None) -> None:
    """A diff is untrusted page text: printed as plain Text (never as markup), coloured by line."""
    if not evidence:
        console.print("(no evidence stored)")
        return
    for line in str(evidence.get("diff") or "").splitlines():
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else "cyan" if line.startswith(
            "@@") else ""
        console.print(Text(line, style=style))
    for key, sign, style in (("documents_added", "+ document", "green"), ("documents_removed", "- document", "red"),
                             ("links_added", "+ link", "green"), ("links_removed", "- link", "red")):
        urls = evidence.get(key) or []
        for url in urls if isinstance(urls, list | tuple) else []:
            console.print(Text(f"{sign} {url}", style=style))


@main.command()
@click.argument("service")
@click.argument("change", required=False, type=int)
@JSON
@click.pass_context
def diff(ctx: click.Context, service: str, change: int | None, as_json: bool) -> None:
    """Show one change of SERVICE (the newest if CHANGE is not given) with its diff."""
    catalogue = load(ctx.obj["targets"])
    _service_or_fail(catalogue, service)
    store = open_store(catalogue, writes=False)
    try:
        if change is None:
            newest = store.history.changes(service_id=service, limit=1)
            if not newest:
                fail(f"no change recorded for {service}", EXIT_PROBLEM)
            change = newest[0].id
        row = store.history.change(change)
    finally:
        store.close()
    if row is None or row.service_id != service:
        fail(f"change {change} is not a change of {service}")
    if as_json:
        print_json({"id": row.id, "service": service, "page_url": row.url, "class": row.change_class,
                    "real_update": row.is_real, "window_start": row.window_start, "detected_at": row.detected_at,
                    "added": row.added, "removed": row.removed, "edited": row.edited,
                    "superseded_by": row.superseded_by, "evidence": row.evidence})
        return
    tz = catalogue.settings.timezone
    console = Console(highlight=False)
    console.print(Text(f"change {row.id} of {service}: {row.change_class}"
                       f"{' (real update)' if row.is_real else ''}", style="bold"))
    console.print(Text(f"page {row.url}\nbetween {local(row.window_start, tz)} and {local(row.detected_at, tz)} "
                       f"({tz}); blocks +{row.added} -{row.removed} ~{row.edited}"))
    if row.superseded_by is not None:
        console.print(Text(f"superseded by change {row.superseded_by}: a capture found later shows it otherwise",
                           style="yellow"))
    print_evidence(console, row.evidence)


def _read_source(source: str, kind: str, allow_private: bool) -> tuple[bytes, str]:
    if source.startswith(("http://", "https://")):
        catalogue_settings = Settings(user_agent=f"CityFreshnessMonitor/{__version__} (+compare)")

        async def get() -> FetchResult:
            async with Fetcher(catalogue_settings) as fetcher:
                return await fetcher.fetch(source, allow_private=allow_private)

        result = asyncio.run(get())
        if not result.outcome.success or result.body is None:
            fail(f"{source}: {result.outcome.value} {result.error}", EXIT_PROBLEM)
        return result.body, result.final_url
    try:
        return Path(source).read_bytes(), f"file://{Path(source).resolve()}"
    except OSError as exc:
        fail(f"cannot read {source}: {exc.strerror}")


@main.command()
@click.argument("before", required=False)
@click.argument("after", required=False)
@click.option("--pairs", "pairs_file", type=click.Path(exists=True, dir_okay=False),
              help="A file of 'before<TAB>after' lines (file paths): print one class per line.")
@click.option("--kind", type=click.Choice([k.value for k in Kind]), default="html", show_default=True)
@click.option("--allow-private", is_flag=True, help="Allow URLs on loopback or private addresses.")
@click.option("--json", "as_json", is_flag=True)
def compare(before: str | None, after: str | None, pairs_file: str | None, kind: str, allow_private: bool,
            as_json: bool) -> None:
    """Classify the change from BEFORE to AFTER (files or URLs) and show the diff; no database needed."""
    from monitor.compare import compare as compare_captures
    from monitor.compare import read_bytes as read

    k = Kind(kind)
    if pairs_file:
        cache: dict[str, Any] = {}

        def capture(path: str) -> Any:
            if path not in cache:
                if len(cache) > 256:
                    cache.clear()
                try:
                    cache[path] = read(Path(path).read_bytes(), url=f"file://{path}", kind=k)
                except OSError as exc:
                    cache[path] = exc
            return cache[path]

        out = sys.stdout
        with open(pairs_file, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                parts = line.rstrip("\n").split("\t")
                if len(parts) != 2:
                    out.write(f"error: line {number}: expected 'before<TAB>after'\n")
                    continue
                a, b = capture(parts[0]), capture(parts[1])
                if isinstance(a, OSError) or isinstance(b, OSError):
                    bad = a if isinstance(a, OSError) else b
                    out.write(f"error: line {number}: {bad.strerror}: {bad.filename}\n")
                    continue
                out.write(compare_captures(a, b).change_class.value + "\n")
        return
    if not before or not after:
        fail("give BEFORE and AFTER (files or URLs), or --pairs FILE")
    body_a, url_a = _read_source(before, kind, allow_private)
    body_b, url_b = _read_source(after, kind, allow_private)
    cap_a, cap_b = read(body_a, url=url_a, kind=k), read(body_b, url=url_b, kind=k)
    verdict = compare_captures(cap_a, cap_b)
    real = verdict.change_class in DEFAULT_REAL_CLASSES
    if as_json:
        ev = verdict.evidence
        click.echo(json.dumps({"class": verdict.change_class.value, "real_update": real,
                               "before_quality": cap_a.quality.value, "after_quality": cap_b.quality.value,
                               "added": ev.added, "removed": ev.removed, "edited": ev.edited, "diff": ev.diff,
                               "links_added": ev.links_added, "links_removed": ev.links_removed,
                               "documents_added": ev.documents_added, "documents_removed": ev.documents_removed},
                              ensure_ascii=False, indent=2))
        return
    console = Console(highlight=False)
    if cap_b.quality is not Quality.OK:
        console.print(Text(f"after: bad capture ({cap_b.quality.value}: {cap_b.quality_reason})", style="red"))
    console.print(Text(f"{verdict.change_class.value}{' (a real update)' if real else ''}", style="bold"))
    ev = verdict.evidence
    print_evidence(console, {"diff": ev.diff, "links_added": ev.links_added, "links_removed": ev.links_removed,
                             "documents_added": ev.documents_added, "documents_removed": ev.documents_removed})


@main.command()
@click.argument("service")
@click.option("--confirm", "confirm_id", type=int, help="Confirm rule ID (keeps it masked for good).")
@click.option("--drop", "drop_id", type=int, help="Drop rule ID (stops masking it; it is not learned again).")
@JSON
@WIDE
@click.pass_context
def noise(ctx: click.Context, service: str, confirm_id: int | None, drop_id: int | None, as_json: bool,
          wide: bool) -> None:
    """The noise rules learned for SERVICE's pages, with their evidence; confirm or drop one."""
    catalogue = load(ctx.obj["targets"])
    _service_or_fail(catalogue, service)
    store = open_store(catalogue, writes=confirm_id is not None or drop_id is not None)
    try:
        for rule_id, status in ((confirm_id, "confirmed"), (drop_id, "dropped")):
            if rule_id is not None:
                if rule_id not in {r.id for r in store.noise.noise_rules(service)}:
                    fail(f"rule {rule_id} is not a rule of {service}")
                store.noise.set_noise_status(rule_id, status, utcnow())
                click.echo(f"rule {rule_id} {status}; `monitor run` applies it at its next start")
        rules = store.noise.noise_rules(service)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([{"id": r.id, "page": r.page, "url": r.url, "path": r.path, "source": r.source,
                                "status": r.status, "evidence": r.evidence, "created_at": r.created_at.isoformat()}
                               for r in rules], ensure_ascii=False, indent=2))
        return
    print_table(f"{service}: {len(rules)} noise rule(s)", [
        Column(header="id", right=True), Column(header="page", right=True), Column(header="block", wrap=True),
        Column(header="source", stack=0), Column(header="status"), Column(header="evidence", wrap=True, stack=1)],
        [[str(r.id), str(r.page), r.path, r.source, r.status, r.evidence] for r in rules], wide=wide)


# --- exporter and alerting ------------------------------------------------------------------------


@main.command()
@click.option("--no-aggregates", is_flag=True, help="Do not keep the aggregates (leave it to `monitor run`): "
              "for a database role that may only read.")
@click.pass_context
def exporter(ctx: click.Context, no_aggregates: bool) -> None:
    """Serve /metrics and /healthz from the database (no checking). It also keeps the aggregates that scrapes
    read (the self-report audit, the datasets' grades) every 5 minutes, unless --no-aggregates."""
    catalogue = load(ctx.obj["targets"])
    store = open_store(catalogue, auto_upgrade=False, writes=not no_aggregates)
    server = start_metrics(catalogue, store)
    if server is None:
        sys.exit(EXIT_PROBLEM)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not no_aggregates:  # the aggregates a scrape reads are kept up to date here, never by a scrape
        try:
            refresh_aggregates(catalogue, store, utcnow(), unless_younger_than_s=AGGREGATES_EVERY_S / 2)
        except Exception as exc:  # the database is away, or may not be written: the exporter goes on serving
            logger.warning("aggregates not refreshed: %s", exc)
        if stop.wait(AGGREGATES_EVERY_S):
            break
    stop.wait()
    server.stop()
    store.close()


@main.command()
@click.option("--listen", help="host:port (default: [settings] web_listen).")
@click.pass_context
def serve(ctx: click.Context, listen: str | None) -> None:
    """Serve the web interface: the public status page (/, /status.json, /updates.atom), and behind a login the
    service, department, faults and audit pages, "check now" and notes on changes; /metrics and /healthz too.
    Sessions are signed with MONITOR_WEB_SECRET (set it, or every restart signs everyone out)."""
    from monitor.metrics import CONTENT_TYPE_LATEST, exposition
    from monitor.web import Web
    from monitor.web import serve as serve_web

    catalogue = load(ctx.obj["targets"])
    store = open_store(catalogue)
    address = listen or catalogue.settings.web_listen
    secret = os.environ.get("MONITOR_WEB_SECRET", "")
    if not secret:
        logger.warning("MONITOR_WEB_SECRET is not set: sessions end when this process stops")
    registry = build_registry(catalogue, store.metrics)

    async def main_loop() -> None:
        async with Fetcher(catalogue.settings) as fetcher, sandbox(catalogue.settings) as reader:
            runner = Runner(catalogue, store, fetcher, reader=reader)
            runner.prepare()
            writer = asyncio.create_task(runner.recorder.run())

            async def check_page(page_id: int) -> str:
                target = runner.targets.get(page_id)
                if target is None:
                    return "unknown"
                record = await runner.check(target)
                await runner.recorder.drain(30)
                return record.outcome.value

            web = Web(catalogue, store, secret=secret, checker=check_page,
                      metrics=lambda: (exposition(registry), CONTENT_TYPE_LATEST))
            logger.info("web interface on http://%s/", address)
            try:
                await serve_web(web, address)
            finally:
                await runner.recorder.drain(30)
                writer.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):  # uvicorn stops gracefully, then hands the signal on: to us
        signal.signal(sig, lambda *_: logger.info("web interface stopped"))
    try:
        asyncio.run(main_loop())
    except OSError as exc:
        fail(f"cannot serve on {address}: {exc}", EXIT_PROBLEM)
    finally:
        store.close()


@main.group()
def users() -> None:
    """Accounts of the web interface (roles: viewer, operator, auditor, admin)."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "operator", "auditor", "admin"]), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
@JSON
@click.pass_context
def users_add(ctx: click.Context, name: str, role: str, password_stdin: bool, as_json: bool) -> None:
    """Add an account, or set its role and password. The password is asked for (never an argument: it would
    stay in the shell's history) and kept only as a scrypt hash."""
    from monitor.web import hash_password

    if not name.strip() or len(name) > 64 or any(c.isspace() for c in name):
        fail("a user name is 1 to 64 characters without spaces")
    password = (sys.stdin.readline().rstrip("\n") if password_stdin
                else click.prompt("password", hide_input=True, confirmation_prompt=True))
    if len(password) < 10:
        fail("a password has at least 10 characters")
    catalogue = load(ctx.obj["targets"])
    store = open_store(catalogue)
    try:
        new = store.web.put_user(name, role=role, password_hash=hash_password(password), now=utcnow())
    finally:
        store.close()
    if as_json:
        print_json({"name": name, "role": role, "added": new})
        return
    click.echo(f"{'added' if new else 'updated'} {name} ({role})")


@users.command("list")
@JSON
@click.pass_context
def users_list(ctx: click.Context, as_json: bool) -> None:
    """The accounts, their roles, and which are disabled (a line each, tab-separated)."""
    catalogue = load(ctx.obj["targets"])
    store = open_store(catalogue, writes=False)
    try:
        accounts = store.web.users()
    finally:
        store.close()
    if as_json:
        print_json([{"name": u.name, "role": u.role, "disabled": bool(u.disabled)} for u in accounts])
        return
    for u in accounts:
        click.echo("\t".join([u.name, u.role, *(["disabled"] if u.disabled else [])]))


@users.command("disable")
@click.argument("name")
@JSON
@click.pass_context
def users_disable(ctx: click.Context, name: str, as_json: bool) -> None:
    """Disable an account: its sessions end at once (`users add` with a new password enables it again)."""
    catalogue = load(ctx.obj["targets"])
    store = open_store(catalogue)
    try:
        if not store.web.disable_user(name):
            fail(f"no account named {name!r}")
    finally:
        store.close()
    if as_json:
        print_json({"name": name, "disabled": True})
        return
    click.echo(f"disabled {name}")


@main.group()
def alerting() -> None:
    """Prometheus alert rules and the Alertmanager routing tree, from the catalogue."""


def _write(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


@alerting.command("rules")
@click.option("--external-url", default=None, metavar="URL",
              help="The web interface as people reach it (default: [settings] external_url); alerts link to its "
                   "/runbooks and, without Grafana, its service pages.")
@click.option("--grafana-url", default=None, metavar="URL",
              help="Grafana's address (default: [settings] grafana_url); alerts link to the service dashboard.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
@click.pass_context
def alerting_rules(ctx: click.Context, /, external_url: str | None, grafana_url: str | None,
                   output: str | None) -> None:
    """The Prometheus alerting and recording rules. Their links are absolute (a notification is read far from
    the monitor): without an external URL the command refuses (exit 2)."""
    if external_url is None or grafana_url is None:
        settings = load(ctx.obj["targets"]).settings
        external_url = settings.external_url if external_url is None else external_url
        grafana_url = settings.grafana_url if grafana_url is None else grafana_url
    try:
        links = Links(external_url, grafana_url)
    except ValueError as exc:
        fail(str(exc))
    _write(rules_yaml(links), output)


@alerting.command("runbooks")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
def alerting_runbooks(output: str | None) -> None:
    """What to do for each alert, in Markdown (docs/runbooks.md; the web interface serves it at /runbooks)."""
    _write(runbooks_markdown(), output)


@alerting.command("config")
@click.option("--it-email", default="", help="Where the IT sector's alerts go.")
@click.option("--smtp-smarthost", default="", help="host:port of the mail relay (enables e-mail receivers).")
@click.option("--smtp-from", default="", help="Sender address of alert mail.")
@click.option("--smtp-auth-username", default="", help="User name at the mail relay.")
@click.option("--smtp-auth-password-file", default="",
              help="File holding the relay's password (read by Alertmanager; never written into the config).")
@click.option("--smtp-require-tls/--no-smtp-require-tls", default=True, show_default=True,
              help="Insist on STARTTLS (a relay without it needs --no-smtp-require-tls).")
@click.option("--webhook-base", default="", help="Also post every receiver's alerts to <URL>/<receiver>.")
@click.option("--allow-empty", is_flag=True, help="Write the config even if some receivers deliver nowhere.")
@click.option("--group-wait", default="30s", show_default=True)
@click.option("--group-interval", default="5m", show_default=True)
@click.option("--repeat-interval", default="24h", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
@click.pass_context
def alerting_config(ctx: click.Context, /, output: str | None, allow_empty: bool, **options: Any) -> None:
    """The Alertmanager configuration: routes by department, the IT sector gets the monitor's own alerts.
    Refused (exit 2) when a receiver would deliver nowhere — an alert routed there is lost without a trace —
    unless --allow-empty."""
    path = ctx.obj["targets"]
    catalogue = load(path)
    opts = RoutingOptions(**options)
    departments = department_names(path)
    nowhere = undelivered(alertmanager_config(catalogue, departments, opts))
    if nowhere and not allow_empty:
        fail(f"{len(nowhere)} receiver(s) would deliver nowhere: {', '.join(nowhere)}. Give each department an "
             "`email` or `webhook` in [departments.<id>] (an e-mail needs --smtp-smarthost), the IT sector "
             "--it-email, or every receiver --webhook-base URL; --allow-empty writes it anyway")
    _write(alertmanager_yaml(catalogue, departments, opts), output)


@alerting.command("verify")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--amtool", default="amtool", show_default=True, help="The amtool program (Alertmanager's).")
@click.pass_context
def alerting_verify(ctx: click.Context, /, config: str, amtool: str) -> None:
    """Check an Alertmanager configuration against the catalogue with amtool: it is valid, and every service's
    alerts reach its department (and its responsible person), a page down reaches IT too, the monitor's own
    alerts reach IT. Exit 1 if a route is wrong, listing each."""
    program = shutil.which(amtool)
    if program is None:
        fail(f"{amtool} not found: install Alertmanager's amtool (Debian: prometheus-alertmanager) or give --amtool")
    checked = subprocess.run([program, "check-config", config], capture_output=True, text=True, timeout=60)
    if checked.returncode != 0:
        fail(f"amtool check-config: {(checked.stdout + checked.stderr).strip()[-2000:]}", EXIT_PROBLEM)
    wrong = []
    cases = route_cases(load(ctx.obj["targets"]))
    for case in cases:
        done = subprocess.run([program, "config", "routes", "test", f"--config.file={config}",
                               f"--verify.receivers={','.join(case.receivers)}", *case.labels],
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            got = (done.stdout.strip().splitlines() or ["?"])[0]
            wrong.append(f"{' '.join(case.labels)}: expected {','.join(case.receivers)}, got {got}")
    for line in wrong:
        click.echo(f"wrong route: {line}", err=True)
    if wrong:
        sys.exit(EXIT_PROBLEM)
    click.echo(f"{config}: valid; {len(cases)} routes reach who they must")


# --- self-reports, audit, verify -------------------------------------------------------------------


def report_mapping(catalogue: Catalogue, date_order: str | None = None) -> ReportMapping:
    rs = catalogue.reports
    return ReportMapping(tz=rs.timezone, date_order=date_order or rs.date_order, since=rs.since).merged(
        dict(rs.questions))


@main.group()
def reports() -> None:
    """The departments' self-reports (Google Forms responses)."""


@reports.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--skip-bad", is_flag=True,
              help="Import the good rows of a file that has bad ones; the bad are kept as rejected, with their "
                   "reasons, and listed in every audit.")
@click.option("--date-order", type=click.Choice(["dmy", "mdy"]),
              help="How to read 05/01/2026: day first (dmy, en-GB) or month first (mdy, en-US). Needed only "
                   "when no date in the file tells.")
@JSON
@click.pass_context
def reports_import(ctx: click.Context, file: str, skip_bad: bool, date_order: str | None, as_json: bool) -> None:
    """Import FILE: a Google Forms CSV export (any locale) or the Forms API's responses.list JSON.

    Every bad row is listed with its row number (as the spreadsheet numbers it) and reason; nothing from a file
    with bad rows is imported unless --skip-bad. The same responses again, from any export, add nothing."""
    catalogue = load(ctx.obj["targets"])
    parsed = parse_reports(Path(file).read_bytes(), catalogue, report_mapping(catalogue, date_order),
                           source=Path(file).name, now=utcnow())
    if parsed.file_error:
        fail(f"{file}: {parsed.file_error}")
    for bad in parsed.rejected:
        click.echo(f"{file}: {bad}", err=True)
    if parsed.rejected and not skip_bad:
        fail(f"{len(parsed.rejected)} bad row(s); nothing imported (fix them, or import the other "
             f"{len(parsed.rows)} with --skip-bad, keeping the bad as rejected)", EXIT_PROBLEM)
    store = open_store(catalogue)
    try:
        now = utcnow()
        store.catalogue.sync_catalogue(catalogue, now)
        added = store.reports.add_reports(parsed.rows, now)
        kept = store.reports.add_rejected(parsed.rejected, now)
    finally:
        store.close()
    if as_json:
        print_json({"file": file, "read": len(parsed.rows), "new": added, "already_imported": len(parsed.rows) - added,
                    "rejected": len(parsed.rejected), "rejected_new": kept if parsed.rejected else 0,
                    "rejected_rows": [str(bad) for bad in parsed.rejected], "date_order": parsed.date_order or None})
        return
    order = {"dmy": "; dates read day first", "mdy": "; dates read month first"}.get(parsed.date_order, "")
    rejected = (f"; {len(parsed.rejected)} rejected row(s) kept for the audit ({kept} new)"
                if parsed.rejected else "")
    click.echo(f"{file}: {len(parsed.rows)} report(s) read, {added} new, {len(parsed.rows) - added} already "
               f"imported{rejected}{order}")


def _report_range(catalogue: Catalogue, start: str, end: str, services: Sequence[str], fmt: str,
                  output: str | None) -> tuple[datetime, datetime]:
    """The checks every report command makes of its arguments: the range, the services, the output."""
    tz = catalogue.settings.timezone
    t0, t1 = _day(start, tz, "from"), _day(end, tz, "to")
    if t1 <= t0:
        fail("--to must be after --from")
    for sid in services:
        _service_or_fail(catalogue, sid)
    if fmt == "xlsx" and not output:
        fail("--format xlsx needs --output FILE")
    return t0, t1


def _day(value: str, tz: str, name: str) -> datetime:
    try:
        d = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--{name}: {value!r} is not a date (YYYY-MM-DD)")
    return d.replace(tzinfo=ZoneInfo(tz)) if d.tzinfo is None else d


def _span(catalogue: Catalogue, start: str | None, end: str | None) -> tuple[datetime, datetime]:
    """--from/--to of the history commands: by default from when reporting began ([reports] since, else the
    first archives of 1996) to tomorrow."""
    tz = catalogue.settings.timezone
    first = catalogue.reports.since or date(1996, 1, 1)
    t0 = _day(start, tz, "from") if start else datetime.combine(first, dt_time(), ZoneInfo(tz))
    t1 = _day(end, tz, "to") if end else datetime.now(UTC) + timedelta(days=1)
    if t1 <= t0:
        fail("--to must be after --from")
    return t0, t1


@main.command()
@click.option("--service", "services", multiple=True, help="Only these services (repeatable).")
@click.option("--page", "pages", multiple=True, help="Only this page, by its address (repeatable).")
@click.option("--from", "start", help="First day (YYYY-MM-DD; default: [reports] since, else 1996-01-01).")
@click.option("--to", "end", help="Day after the last (YYYY-MM-DD, exclusive; default: tomorrow).")
@click.option("--warc", "warcs", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Read these WARC or WACZ files instead of an archive (repeatable).")
@click.option("--cdx", help=f"The archive's CDX endpoint (default: the Wayback Machine, {WAYBACK_CDX}).")
@click.option("--replay", help=f"The archive's replay prefix (default: {WAYBACK_REPLAY}).")
@click.option("--rate", type=float, help="Requests a second to the archive, one at a time whatever the rate "
              "(default: 0.2 for the Wayback Machine, which throttles harder callers; 1 for others).")
@click.option("--allow-private", is_flag=True, help="The archive is on a private or loopback address.")
@JSON
@click.pass_context
def backfill(ctx: click.Context, services: tuple[str, ...], pages: tuple[str, ...], start: str | None,
             end: str | None, warcs: tuple[str, ...], cdx: str | None, replay: str | None, rate: float | None,
             allow_private: bool, as_json: bool) -> None:
    """Read the pages' history from before the monitor watched them: from a web archive (the Wayback Machine
    by default, or any CDX server with --cdx and --replay) or from WARC/WACZ files. Each capture is judged at
    its own time like a live check and marked with its source; a capture already recorded is passed over, so
    an interrupted run resumes. Exit 1 if anything could not be read (listed)."""
    catalogue = load(ctx.obj["targets"])
    t0, t1 = _span(catalogue, start, end)
    if bool(cdx) != bool(replay):
        fail("--cdx and --replay go together (the index and where its captures are replayed)")
    if warcs and cdx:
        fail("either --warc files or an archive (--cdx/--replay), not both")
    rate = rate if rate is not None else 1.0 if cdx else 0.2
    if not 0 < rate <= 10:
        fail("--rate must be above 0 and at most 10 requests a second")
    try:
        source = Archive.at(cdx, replay, allow_private=allow_private) if cdx and replay else Archive.wayback()
    except MonitorError as exc:
        fail(str(exc))
    store = open_store(catalogue)
    console = Console(stderr=True)

    async def go() -> Counts:
        async with Fetcher(catalogue.settings) as live, sandbox(catalogue.settings) as reader:
            runner = Runner(catalogue, store, live, reader=reader)
            runner.prepare()
            targets = _select(runner, services)
            if pages:
                keys = {url_key(p) for p in pages}
                targets = [t for t in targets if url_key(t.page.url) in keys]
                missing = keys - {url_key(t.page.url) for t in targets}
                if missing:
                    fail(f"no page of the catalogue at {', '.join(sorted(missing))}")
            writer = asyncio.create_task(runner.recorder.run())
            progress = None
            if console.is_terminal:
                from rich.progress import Progress

                progress = Progress(console=console, transient=True)
                progress.start()
                task = progress.add_task("backfill", total=None)

            def show(c: Counts) -> None:
                if progress is not None:
                    progress.update(task, total=c.found or None, completed=c.imported + c.errors_recorded + c.already,
                                    description=f"backfill: page {c.pages}/{len(targets)}")

            job = Backfill(runner, on_progress=show)
            try:
                if warcs:
                    return await job.from_warc(targets, [Path(w) for w in warcs], t0, t1)
                polite = replace(catalogue.settings, per_host_concurrency=1, per_host_delay_s=1.0 / rate,
                                 retries=max(3, catalogue.settings.retries),
                                 timeout_s=max(60.0, catalogue.settings.timeout_s))
                async with Fetcher(polite) as fetcher:
                    return await job.from_archive(targets, fetcher, source, t0, t1)
            finally:
                if progress is not None:
                    progress.stop()
                await runner.recorder.drain(60)
                writer.cancel()

    try:
        counts = asyncio.run(go())
    except MonitorError as exc:
        fail(str(exc), EXIT_PROBLEM)
    finally:
        store.close()
    if as_json:
        print_json({"source": "warc" if warcs else source.name, "pages": counts.pages, "found": counts.found,
                    "imported": counts.imported, "errors_recorded": counts.errors_recorded,
                    "already": counts.already, "reused": counts.reused, "redirects": counts.redirects,
                    "problems": counts.problems})
    else:
        click.echo(f"backfill from {'WARC files' if warcs else source.name}: {counts.pages} page(s), {counts.found} "
                   f"capture(s) in the range, {counts.imported} recorded, {counts.errors_recorded} error page(s) "
                   f"recorded, {counts.already} already recorded, {counts.reused} not fetched again (same digest), "
                   f"{counts.redirects} redirect(s) passed over")
    for problem in counts.problems[:50]:
        click.echo(f"  {problem}", err=True)
    if len(counts.problems) > 50:
        click.echo(f"  … and {len(counts.problems) - 50} more", err=True)
    if counts.problems:
        sys.exit(EXIT_PROBLEM)


@main.group()
def export() -> None:
    """Export the history in archival formats."""


@export.command("warc")
@click.option("--service", "services", multiple=True, help="Only these services (repeatable).")
@click.option("--from", "start", help="First day (YYYY-MM-DD; default: [reports] since, else 1996-01-01).")
@click.option("--to", "end", help="Day after the last (YYYY-MM-DD, exclusive; default: tomorrow).")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="The WARC file to write (gzipped; never overwritten).")
@JSON
@click.pass_context
def export_warc(ctx: click.Context, services: tuple[str, ...], start: str | None, end: str | None,
                output: str, as_json: bool) -> None:
    """Write every version of the pages first captured in the range as a WARC that pywb or ReplayWeb.page can
    replay: a request, the response as served (raw bytes) and a metadata record with the monitor's hashes and
    the change that led to it. Versions whose raw capture retention dropped are counted, not written."""
    catalogue = load(ctx.obj["targets"])
    t0, t1 = _span(catalogue, start, end)
    for sid in services:
        _service_or_fail(catalogue, sid)
    out = Path(output)
    if out.exists():
        fail(f"{out} exists: a WARC is never overwritten")
    store = open_store(catalogue, writes=False)
    try:
        rows = store.history.captures(service_ids=list(services) or [s.id for s in catalogue.services],
                                      since=t0, until=t1)
        missing = 0

        def captures() -> Iterator[WarcCapture]:
            nonlocal missing
            for r in rows:
                raw = store.history.blob(r.raw_sha) if r.raw_sha else None
                if raw is None:
                    missing += 1
                    continue
                yield WarcCapture(url=r.url, captured_at=r.captured_at, status=200, content_type=r.content_type,
                                  body=raw, metadata={
                                      "service": r.service_id, "version": r.version_id, "version_key": r.key_hash,
                                      "version_record_hash": r.record_hash, "raw_sha256": r.raw_sha,
                                      "content_sha256": r.content_sha, "fp_raw": r.fp_raw, "source": r.source or "live",
                                      "change": r.change_id, "change_class": r.change_class, "real_update": r.is_real,
                                      "evidence_sha256": r.evidence_sha, "change_record_hash": r.change_hash})

        partial = out.with_name(out.name + ".part")
        with partial.open("wb") as fh:
            written = write_warc(fh, captures(), description=f"{catalogue.source}: {t0.date()} – {t1.date()}")
        partial.replace(out)
    finally:
        store.close()
    if as_json:
        print_json({"output": str(out), "captures": written, "without_raw_capture": missing})
        return
    click.echo(f"{written} capture(s) written to {out}" + (f"; {missing} version(s) without their raw capture "
                                                           "(dropped by retention)" if missing else ""))


@main.command()
@click.option("--from", "start", required=True, help="First day (YYYY-MM-DD, local time).")
@click.option("--to", "end", required=True, help="Day after the last (YYYY-MM-DD, exclusive).")
@click.option("--service", "services", multiple=True, help="Only these services (repeatable).")
@click.option("--department", "departments", multiple=True, help="Only these departments (their ids).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "xlsx", "html"]), default="table",
              show_default=True)
@click.option("--view", type=click.Choice(list(VIEWS)), default="periods", show_default=True,
              help="The view for table and csv (xlsx and html hold them all).")
@click.option("--lang", type=click.Choice(["uk", "en"]), default="uk", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to a file (required for xlsx).")
@JSON_REPORT
@WIDE
@click.pass_context
def audit(ctx: click.Context, start: str, end: str, services: tuple[str, ...], departments: tuple[str, ...],
          fmt: str, view: str, lang: str, output: str | None, as_json: bool, wide: bool) -> None:
    """Reconcile self-reports with detected changes, per service and regulation period (items 1.3 and 2)."""
    fmt = _format(fmt, as_json)
    catalogue = load(ctx.obj["targets"])
    tz = catalogue.settings.timezone
    t0, t1 = _report_range(catalogue, start, end, services, fmt, output)
    known_depts = {s.department_id for s in catalogue.services}
    for dept in departments:
        if dept not in known_depts:
            fail(f"unknown department {dept!r} (known: {', '.join(sorted(known_depts))})")
    store = open_store(catalogue, writes=False)
    try:
        now = utcnow()
        report = gather(catalogue, store.audit, start=t0, end=t1, now=now, services=services,
                        departments=departments, heads=store.maintenance.heads(), version=__version__)
        evidence = audit_evidence(report, store.history) if fmt == "html" else {}
    finally:
        store.close()
    tables, about_view = views(report), about(report)
    missed = any(p.verdict.value == "missed" for a in report.audits for p in a.periods)
    _emit(fmt, tables, view=view, lang=lang, output=output, tz=tz, meta=audit_meta(report), about=about_view,
          wide=wide, html=lambda: to_html(report, tables, about_view, lang=lang, evidence=evidence,
                               note=lambda text, svc: department_note(text, svc, catalogue)))
    sys.exit(EXIT_PROBLEM if missed else EXIT_OK)


def _format(fmt: str, as_json: bool) -> str:
    """--json is --format json (the other formats are not JSON: both at once is a usage error)."""
    if as_json and fmt not in ("table", "json"):
        fail(f"--json and --format {fmt} ask for two formats: give one")
    return "json" if as_json else fmt


def _emit(fmt: str, tables: dict[str, View], *, view: str, lang: str, output: str | None, tz: str,
          meta: dict[str, Any], html: Callable[[], str], about: View | None = None, wide: bool = False) -> None:
    """Write report tables in the chosen format (table and csv: one view; json and xlsx: all of them). The table
    shows the view's terminal columns, those the width cannot hold stacked in a details column; `wide`: all of
    the view's columns at full width."""
    if fmt == "table":
        columns = None if wide else TERMINAL.get(view)
        title, _headers, rows = labelled(tables[view], lang, tz, columns)
        print_table(title, view_columns(tables[view], lang, columns), rows, wide=wide, lang=lang,
                    details=DETAILS[lang])
    elif fmt == "csv":
        _write(to_csv(tables[view], lang, tz), output)
    elif fmt == "json":
        _write(to_json(tables, meta, tz) + "\n", output)
    elif fmt == "xlsx":
        assert output is not None
        Path(output).write_bytes(to_xlsx(tables, lang, tz, about))
        click.echo(f"wrote {output}", err=True)
    else:
        _write(html(), output)


@main.command()
@click.option("--from", "start", required=True, help="First day (YYYY-MM-DD, local time).")
@click.option("--to", "end", required=True, help="Day after the last (YYYY-MM-DD, exclusive).")
@click.option("--service", "services", multiple=True, help="Only these services (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "xlsx", "html"]), default="table",
              show_default=True)
@click.option("--view", type=click.Choice(["summary", "faults"]), default="faults", show_default=True,
              help="The view for table and csv (json, xlsx and html hold both).")
@click.option("--lang", type=click.Choice(["uk", "en"]), default="uk", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to a file (required for xlsx).")
@JSON_REPORT
@WIDE
@click.pass_context
def faults(ctx: click.Context, start: str, end: str, services: tuple[str, ...], fmt: str, view: str, lang: str,
           output: str | None, as_json: bool, wide: bool) -> None:
    """The technical-faults list (item 1.4): downtime, error classes, slow responses, TLS and certificates,
    broken same-site links and bad captures, per service."""
    fmt = _format(fmt, as_json)
    catalogue = load(ctx.obj["targets"])
    tz = catalogue.settings.timezone
    t0, t1 = _report_range(catalogue, start, end, services, fmt, output)
    store = open_store(catalogue, writes=False)
    try:
        now = utcnow()
        found = run_faults(catalogue, store.faults, start=t0, end=min(t1, now), services=services)
    finally:
        store.close()
    tables = fault_views(found, tz)
    meta = {"from": t0.isoformat(), "to": t1.isoformat(), "timezone": tz, "generated_at": now.isoformat(),
            "version": __version__}
    _emit(fmt, tables, view=view, lang=lang, output=output, tz=tz, meta=meta, wide=wide,
          html=lambda: tables_to_html("faults_title", tables, lang=lang, tz=tz, start=t0, end=t1, generated=now))


@main.command()
@click.option("--checkpoint", "checkpoint_file", type=click.Path(exists=True, dir_okay=False),
              help="A signed checkpoint (monitor checkpoint make): the records it signed must be unchanged.")
@click.option("--public-key", type=click.Path(exists=True, dir_okay=False),
              help="The auditor's public key: proves who signed the checkpoint (else only that the file is whole).")
@JSON
@click.pass_context
def verify(ctx: click.Context, checkpoint_file: str | None, public_key: str | None, as_json: bool) -> None:
    """Prove that the stored history was not altered: every chain (versions, changes, checks, coverage summaries,
    self-reports, the retention log) and every content and evidence; print the heads to keep, and every break.
    Exit 1 if anything was altered."""
    catalogue = load(ctx.obj["targets"])
    store = open_store(catalogue, writes=False)
    try:
        found = store.maintenance.verify()
        breaks = list(found.breaks)
        if checkpoint_file:
            try:
                signed = checkpoints.read(Path(checkpoint_file).read_bytes(),
                                          public_pem=Path(public_key).read_bytes() if public_key else None)
            except UsageError as exc:
                fail(f"{checkpoint_file}: {exc}", EXIT_PROBLEM)
            if public_key is None:
                click.echo("note: no --public-key: the signature proves the file whole, not who signed it", err=True)
            breaks += checkpoints.compare(signed, found.heads, store.maintenance.chain_record)
            compared = {"made_at": signed.made_at, "heads_compared": len(signed.heads)}
            if not as_json:
                click.echo(f"checkpoint of {signed.made_at}: {len(signed.heads)} chain head(s) compared")
    finally:
        store.close()
    if as_json:
        for b in breaks:
            click.echo(f"ALTERED: {b.table} {f'record {b.record_id}' if b.record_id else 'the chain'}: {b.reason}",
                       err=True)
        print_json({"intact": not breaks, "checkpoint": compared if checkpoint_file else None,
                    "chains": [{"chain": h.name, "records_checked": found.counts.get(h.name, 0),
                                "base_seq": h.base_seq, "head_seq": h.seq, "head_hash": h.hash} for h in found.heads],
                    "breaks": [{"table": b.table, "record_id": b.record_id, "reason": b.reason} for b in breaks]})
        sys.exit(EXIT_PROBLEM if breaks else EXIT_OK)
    for head in found.heads:
        base = f", from {head.base_seq} (retention)" if head.base_seq else ""
        click.echo(f"{head.name}: {found.counts.get(head.name, 0)} record(s) checked{base}; head {head.seq} "
                   f"{head.hash or '-'}")
    if breaks:
        for b in breaks:
            where = f"record {b.record_id}" if b.record_id else "the chain"
            click.echo(f"ALTERED: {b.table} {where}: {b.reason}", err=True)
        sys.exit(EXIT_PROBLEM)
    click.echo("the history is intact: every record follows the one before it"
               + (", and the checkpoint's records are unchanged" if checkpoint_file else ""))


@main.group()
def checkpoint() -> None:
    """Signed checkpoints of the history, for auditors to keep outside the database."""


@checkpoint.command("keygen")
@click.option("--private", "private_file", required=True, type=click.Path(dir_okay=False),
              help="Where to write the private key (the auditor keeps it; never next to the database).")
@click.option("--public", "public_file", required=True, type=click.Path(dir_okay=False),
              help="Where to write the public key (to verify with).")
@JSON
def checkpoint_keygen(private_file: str, public_file: str, as_json: bool) -> None:
    """Make an Ed25519 key pair for signing checkpoints."""
    for path in (private_file, public_file):
        if Path(path).exists():
            fail(f"{path} exists: a key is never overwritten")
    pair = checkpoints.generate()
    fd = os.open(private_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pair.private_pem)
    Path(public_file).write_bytes(pair.public_pem)
    if as_json:
        print_json({"private": private_file, "public": public_file})
        return
    click.echo(f"wrote {private_file} (keep it safe) and {public_file}")


@checkpoint.command("make")
@click.option("--key", "key_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The private key (monitor checkpoint keygen).")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="Where to write it.")
@click.option("--note", default="", help="A note signed with it (the audit it belongs to...).")
@JSON
@click.pass_context
def checkpoint_make(ctx: click.Context, key_file: str, output: str, note: str, as_json: bool) -> None:
    """Verify the history, then sign the head of every chain into a file kept outside the database."""
    catalogue = load(ctx.obj["targets"])
    store = open_store(catalogue, writes=False)
    try:
        found = store.maintenance.verify()
    finally:
        store.close()
    if not found.intact:
        fail(f"the history is not intact ({len(found.breaks)} break(s); see `monitor verify`): nothing signed",
             EXIT_PROBLEM)
    try:
        data = checkpoints.make(found.heads, private_pem=Path(key_file).read_bytes(), made_at=utcnow(), note=note)
    except UsageError as exc:
        fail(f"{key_file}: {exc}")
    Path(output).write_bytes(data)
    if as_json:
        print_json({"output": output, "note": note,
                    "heads": [{"chain": h.name, "seq": h.seq, "hash": h.hash} for h in found.heads]})
        return
    for head in found.heads:
        click.echo(f"{head.name}: {head.seq} {head.hash or '-'}")
    click.echo(f"wrote {output}")


@main.command()
@click.argument("service")
@JSON
@WIDE
@click.pass_context
def datasets(ctx: click.Context, service: str, as_json: bool, wide: bool) -> None:
    """An open-data catalogue's datasets (ckan pages), each judged against its own update frequency."""
    catalogue = load(ctx.obj["targets"])
    _service_or_fail(catalogue, service)
    store = open_store(catalogue, writes=False)
    try:
        contents = [blob for ref in store.history.current_contents(service)
                    if (blob := store.history.blob(ref.sha)) is not None]
    finally:
        store.close()
    now = utcnow()
    rows = [st for blob in contents for st in dataset_statuses(load_content(blob).records, now,
                                                               tz=catalogue.settings.timezone)]
    if as_json:
        click.echo(json.dumps([{"dataset": r.key, "title": r.title, "frequency": r.frequency,
                                "regulation": r.regulation.value if r.regulation else None,
                                "modified_at": r.modified_at.isoformat() if r.modified_at else None,
                                "deadline": r.deadline.isoformat() if r.deadline else None, "grade": r.grade.value}
                               for r in rows], ensure_ascii=False, indent=2))
        return
    tz = catalogue.settings.timezone
    overdue = sum(1 for r in rows if r.grade.severity >= 2)
    print_table(f"{service}: {len(rows)} dataset(s), {overdue} overdue or worse", [
        Column(header="dataset", wrap=True), Column(header="title", wrap=True, stack=1),
        Column(header="frequency", wrap=True, stack=0), Column(header="modified", stack=2),
        Column(header="deadline", stack=3), Column(header="grade")],
        [[r.key, r.title, r.frequency or "-", local(r.modified_at, tz), local(r.deadline, tz),
          Text(r.grade.value, style=GRADE_STYLE[r.grade])] for r in sorted(rows, key=lambda r: -r.grade.severity)],
        wide=wide)
