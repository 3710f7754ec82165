"""Checks by workers over PostgreSQL: the procrastinate engine, and the only module that imports procrastinate.

Any number of `monitor worker` processes, on any machines, share one PostgreSQL: the store's and
procrastinate's tables side by side, no broker.

    dispatch   a periodic task (every 15 s). Procrastinate defers one job per period for the whole fleet,
               whatever the number of workers; its queueing lock keeps one waiting. It has no lock: a dispatch
               killed mid-run must not hold back the next one, which retries it (two running at once defer
               nothing twice, the per-page queueing locks see to that). It reads every page's
               last check from the store, asks the schedule which pages are due (`schedule.due`: the embedded
               grid) and defers one `check` job per due page, with a queueing lock per page (never two waiting
               jobs for a page) and a lock per page (never two running). It also retries the jobs of workers
               that stopped beating (killed, or lost their machine).
    check      `Runner.check_due`: the same core as the embedded engine, from the page's state as the store has
               it, written before the job ends. A job that finds the page already checked for its round (a
               retried job whose first run got that far) does nothing, so a check is recorded once.
    FleetGate  per-host politeness for the whole fleet (per_host_concurrency, per_host_delay), from the
               store's host pace and leases on the database's clock.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import random
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any

import procrastinate
from procrastinate import exceptions as pexc
from procrastinate import jobs as pjobs

from monitor import schedule
from monitor.clock import SYSTEM, Clock
from monitor.domain import Settings
from monitor.fetch import host_key
from monitor.ports import FleetStore
from monitor.runner import Runner

logger = logging.getLogger(__name__)

CHECKS, DISPATCH = "checks", "dispatch"
DISPATCH_CRON = "* * * * * */15"  # the sixth column: seconds
DAILY_CRON = "17 3 * * *"  # link checks and retention, at night
DEFER_BATCH = 500  # check jobs deferred per statement
BUSY_POLL_MAX_S = 0.25  # a request waiting for a slot at a busy host asks again at most this far apart
POSTPONE_AFTER_S = 5.0  # a check whose host cannot be asked for longer is put off, its job slot freed
# A check put off because this worker already has a full set of checks of its host comes back after 1, 2, 4 s...
# up to this: longer, and the round's last pages sleep on in the queue while their host sits idle.
PUT_OFF_MAX_S = 15.0
RESTART_PAUSE_S = (1.0, 30.0)  # the pause before starting the queue's worker again, first and longest
LEDGER = "monitor_procrastinate_migrations"  # the procrastinate migrations applied to this database
WAIT_BUCKETS = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)  # a job's wait in the queue

@dataclass(slots=True)
class Worker:
    """What a worker process's jobs work with (procrastinate passes it to every job)."""

    runner: Runner
    fleet: FleetStore
    gate: FleetGate | None = None  # None: this process's own gate (a test's)
    daily: Callable[[], Awaitable[None]] | None = None  # link checks and retention, once a day for the fleet
    clock: Clock = SYSTEM
    jobs_done: int = 0
    jobs_failed: int = 0
    skipped: int = 0
    postponed: int = 0
    waits: list[int] = field(default_factory=lambda: [0] * (len(WAIT_BUCKETS) + 1))  # per bucket, +Inf last
    wait_sum_s: float = 0.0

    def waited(self, seconds: float) -> None:
        """A job's wait between its dispatch and its start."""
        self.waits[bisect.bisect_left(WAIT_BUCKETS, seconds)] += 1
        self.wait_sum_s += seconds

    async def put_off_s(self, url: str, attempt: int) -> float:
        """How long to put a check off so that it does not hold a job slot waiting for its host (0: run it now,
        with a claim on the host this process holds until `done`): when this process already has a full set of
        checks of the host, a wait that doubles with each put-off of the job (`attempt`: 1 s to PUT_OFF_MAX_S); or
        the host's own wait when it is longer than POSTPONE_AFTER_S (a Retry-After, a long pause). With jitter,
        so put-off jobs do not come back together."""
        if self.gate is None:
            return 0.0
        host = host_key(url)
        if not self.gate.claim(host):
            return min(PUT_OFF_MAX_S, 2.0 ** attempt) * random.uniform(0.8, 1.2)
        try:
            wait = await asyncio.to_thread(self.fleet.host_wait, host)
        except BaseException:  # the store away, the job cancelled: the claim must not outlive the job
            self.gate.release(host)
            raise
        if wait <= POSTPONE_AFTER_S:
            return 0.0
        self.gate.release(host)
        return wait + random.uniform(0.0, min(30.0, 0.1 * wait))

    def done(self, url: str) -> None:
        """The check that put_off_s let run is over."""
        if self.gate is not None:
            self.gate.release(host_key(url))


def _worker(context: procrastinate.JobContext) -> Worker:
    worker = (context.additional_context or {}).get("monitor")
    assert isinstance(worker, Worker), "a job runs only inside `monitor worker`"
    return worker


async def check(context: procrastinate.JobContext, page_id: int, due_at: str, dispatched_at: str,
                attempt: int = 0) -> bool:
    """Check one page for its round; True if this job checked it, False if the round's check was done (or is
    put off: a job for the same round comes back when its host can be asked, `attempt` counting put-offs)."""
    w = _worker(context)
    target = w.runner.targets.get(page_id)
    if target is None:  # retired since it was dispatched
        return False
    try:
        return await _check(context, w, target.page.url, page_id, due_at, dispatched_at, attempt)
    except Exception:  # the store or the queue away: the job fails (dispatch queues the page again), counted so
        w.jobs_failed += 1
        raise


async def _check(context: procrastinate.JobContext, w: Worker, url: str, page_id: int, due_at: str,
                 dispatched_at: str, attempt: int) -> bool:
    later_s = await w.put_off_s(url, attempt)
    if later_s > 0:
        assert context.app is not None
        lock = f"page-{page_id}"  # as dispatch defers it
        with contextlib.suppress(pexc.AlreadyEnqueued):  # a dispatch queued the page again meanwhile
            await context.app.tasks["monitor:check"].configure(
                queueing_lock=lock, lock=lock, schedule_in={"milliseconds": int(later_s * 1000)}).defer_async(
                page_id=page_id, due_at=due_at, dispatched_at=dispatched_at, attempt=attempt + 1)
        w.postponed += 1
        w.jobs_done += 1
        return False
    try:
        dispatched = datetime.fromisoformat(dispatched_at)
        w.waited(max(0.0, (w.clock.now() - dispatched).total_seconds()))
        record = await w.runner.check_due(page_id, datetime.fromisoformat(due_at), scheduled_at=dispatched)
    finally:
        w.done(url)
    w.jobs_done += 1
    if record is None:
        w.skipped += 1
    return record is not None


async def dispatch(context: procrastinate.JobContext, timestamp: int) -> int:
    """Defer a check job for every due page; retry the jobs of stalled workers. Returns the jobs deferred."""
    w = _worker(context)
    app = context.app
    assert app is not None
    stalled_s = w.runner.settings.worker_stalled_after_s
    for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_s):
        try:
            await app.job_manager.retry_job(job)
            logger.warning("retried job %s (%s) of a worker that stopped beating", job.id, job.task_name)
        except pexc.UniqueViolation:  # its page is queued again already: that job does the check; this one goes
            assert job.id is not None
            with contextlib.suppress(pexc.ConnectorException):  # another dispatch dropped it first
                await app.job_manager.finish_job_by_id_async(job.id, status=pjobs.Status.ABORTED, delete_job=True)
            logger.warning("dropped job %s (%s) of a worker that stopped beating: its page is queued again", job.id,
                           job.task_name)
        except pexc.ConnectorException as exc:  # one job the queue refuses must not stop every dispatch after it
            logger.error("cannot retry job %s (%s) of a worker that stopped beating: %s", job.id, job.task_name, exc)
    await app.job_manager.prune_stalled_workers(stalled_s)
    now = w.clock.now()
    last = {c.page_id: c.at for c in await asyncio.to_thread(w.fleet.last_checks)}
    due = schedule.due(w.runner.targets.values(), last, now)
    queued = {r["queueing_lock"] for r in await app.connector.execute_query_all_async(
        "SELECT queueing_lock FROM procrastinate_jobs WHERE status IN ('todo', 'doing') AND task_name = %(task)s",
        task="monitor:check")}
    jobs = [pjobs.Job(queue=CHECKS, task_name="monitor:check", lock=f"page-{t.page_id}",  # as for one job
                      queueing_lock=f"page-{t.page_id}", task_kwargs={
                          "page_id": t.page_id, "due_at": at.isoformat(), "dispatched_at": now.isoformat()})
            for t, at in due if f"page-{t.page_id}" not in queued]  # waiting, or being checked now
    deferred = 0
    for start in range(0, len(jobs), DEFER_BATCH):  # one statement per batch
        batch = jobs[start:start + DEFER_BATCH]
        try:
            await app.job_manager.batch_defer_jobs_async(batch)
            deferred += len(batch)
        except pexc.AlreadyEnqueued:  # queued meanwhile (a postponed check, another dispatch): one by one
            for job in batch:
                with contextlib.suppress(pexc.AlreadyEnqueued):
                    await app.job_manager.defer_job_async(job)
                    deferred += 1
    if deferred:
        logger.info("dispatch: %d pages due, %d jobs deferred", len(due), deferred)
    return deferred


async def daily(context: procrastinate.JobContext, timestamp: int) -> None:
    """Link checks and retention (what `monitor run` does daily), once a day for the whole fleet."""
    w = _worker(context)
    if w.daily is not None:
        await w.daily()


def conninfo(database_url: str) -> str:
    """The store's SQLAlchemy URL as libpq's (procrastinate connects with psycopg directly)."""
    return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql://", database_url)


def make_app(database_url: str) -> procrastinate.App:
    """An app with the monitor's tasks, registered anew for each app (a procrastinate Blueprint is changed by
    the first app it is added to, and a second app of the same process would name its tasks twice over)."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo(database_url)))
    app.task(name="monitor:check", queue=CHECKS, pass_context=True)(check)
    app.periodic(cron=DISPATCH_CRON)(
        app.task(name="monitor:dispatch", queue=DISPATCH, pass_context=True, queueing_lock="dispatch")(dispatch))
    app.periodic(cron=DAILY_CRON)(
        app.task(name="monitor:daily", queue=DISPATCH, pass_context=True, queueing_lock="daily", lock="daily")(daily))
    return app


def _migrations() -> list[str]:
    folder = resources.files("procrastinate") / "sql" / "migrations"
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))


async def install(database_url: str) -> str:
    """Install procrastinate's schema beside ours, or bring it up to the installed procrastinate's version
    by its own migrations, each applied once (a ledger table keeps which). Returns what was done."""
    app = make_app(database_url)
    async with app.open_async():
        c = app.connector
        await c.execute_query_async(f"CREATE TABLE IF NOT EXISTS {LEDGER} "
                                    "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        await c.execute_query_async(f"SELECT pg_advisory_xact_lock(hashtext('{LEDGER}'))")
        present = await c.execute_query_one_async("SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS present")
        done = {r["name"] for r in await c.execute_query_all_async(f"SELECT name FROM {LEDGER}")}
        files = _migrations()
        if not present["present"]:
            await app.schema_manager.apply_schema_async()
            applied = files  # the schema is the latest: every migration is in it
            what = f"procrastinate {procrastinate.__version__} schema installed"
        else:
            applied = [f for f in files if f not in done]
            folder = resources.files("procrastinate") / "sql" / "migrations"
            for name in applied:
                await c.execute_query_async((folder / name).read_text(encoding="utf-8"))
            what = (f"procrastinate schema: {len(applied)} migration(s) applied" if applied
                    else "procrastinate schema is up to date")
        for name in applied:
            await c.execute_query_async(f"INSERT INTO {LEDGER} (name) VALUES (%(name)s) "
                                        "ON CONFLICT DO NOTHING", name=name)
        return what


class FleetGate:
    """Per-host politeness across every worker: a turn at a host is a lease in the store, taken when fewer than
    per_host_concurrency are out and per_host_delay has passed since the last start and the last end (the
    database's clock). A lease outlives a killed worker by at most twice the fetch timeout and a minute.

    In this process, at most per_host_concurrency requests to a host ask the store at once; the others wait
    here, so a busy host costs the database one question per slot and poll, not one per waiting job."""

    def __init__(self, fleet: FleetStore, settings: Settings, *, poll_s: float = 1.0) -> None:
        self.fleet, self.settings, self.poll_s = fleet, settings, poll_s
        self._local: dict[str, asyncio.Semaphore] = {}
        self._claims: dict[str, int] = {}  # checks of the host under way in this process

    def claim(self, host: str) -> bool:
        """Count one more check of the host in this process, unless it already has per_host_concurrency."""
        if self._claims.get(host, 0) >= self.settings.per_host_concurrency:
            return False
        self._claims[host] = self._claims.get(host, 0) + 1
        return True

    def release(self, host: str) -> None:
        self._claims[host] -= 1

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        s = self.settings
        holder = uuid.uuid4().hex
        local = self._local.setdefault(host, asyncio.Semaphore(s.per_host_concurrency))
        async with local:
            busy_s = max(0.05, min(s.per_host_delay_s, 0.5))
            while True:
                wait = await self._take_turn(host, holder)
                if wait == 0:
                    break
                if wait < 0:  # every slot is out, in other workers: ask again later, later each time
                    wait, busy_s = busy_s * random.uniform(0.8, 1.2), min(busy_s * 1.5, BUSY_POLL_MAX_S)
                await asyncio.sleep(min(wait, self.poll_s))
            try:
                yield
            finally:
                await asyncio.shield(asyncio.to_thread(self.fleet.give_back, host, holder,
                                                       delay_s=s.per_host_delay_s))

    async def _take_turn(self, host: str, holder: str) -> float:
        """Ask the store for a turn. A fetch cancelled (its deadline) while the question is under way gives
        back the turn it may have been given: a lease left out would block the host until it expires."""
        s = self.settings
        asked = asyncio.ensure_future(asyncio.to_thread(
            self.fleet.take_turn, host, holder, concurrency=s.per_host_concurrency, delay_s=s.per_host_delay_s,
            lease_s=s.timeout_s * 2 + 60))
        try:
            return await asyncio.shield(asked)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                if await asked == 0:
                    await asyncio.to_thread(self.fleet.give_back, host, holder, delay_s=s.per_host_delay_s)
            raise

    def defer(self, host: str, seconds: float) -> None:
        self.fleet.defer_host(host, seconds)


async def run_worker(app: procrastinate.App, worker: Worker, *, concurrency: int, name: str,
                     stop: asyncio.Event) -> None:
    """Run jobs of both queues until `stop` is set (SIGTERM/SIGINT). Procrastinate stops its worker when the
    database goes away under it (its listener, heartbeat or job fetch fails): it is started again, after a
    pause that grows while the database stays away, so a PostgreSQL restart costs a few seconds, not the
    worker."""
    options: dict[str, Any] = {
        "queues": [CHECKS, DISPATCH], "concurrency": concurrency, "name": name,
        "additional_context": {"monitor": worker},
        "update_heartbeat_interval": min(5.0, worker.runner.settings.worker_stalled_after_s / 4),
        "stalled_worker_timeout": worker.runner.settings.worker_stalled_after_s, "fetch_job_polling_interval": 1.0,
        "install_signal_handlers": False, "shutdown_graceful_timeout": 30.0,
        "delete_jobs": "successful"}  # a round of 100,000 pages leaves no 100,000 rows behind
    pause_s = RESTART_PAUSE_S[0]
    stopper = asyncio.create_task(stop.wait())
    try:
        while not stop.is_set():
            started = asyncio.get_running_loop().time()
            error: Exception | None = None
            try:
                async with app.open_async():
                    run = asyncio.create_task(app.run_worker_async(**options))
                    await asyncio.wait({run, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    if not run.done():
                        run.cancel()  # procrastinate's graceful stop: running jobs finish (up to the graceful timeout)
                    with contextlib.suppress(asyncio.CancelledError):
                        await run
                reason = "it stopped"
            except Exception as exc:  # the database away: opening the pool or the worker's first queries failed
                reason, error = f"{type(exc).__name__}: {exc}", exc
            if stop.is_set():
                break
            if asyncio.get_running_loop().time() - started > 60:
                pause_s = RESTART_PAUSE_S[0]  # it had run a while: this is a new outage
            unexpected = error is not None and not isinstance(error, pexc.ConnectorException | OSError)
            logger.warning("the queue's worker stopped (%s); starting it again in %g s", reason, pause_s,
                           exc_info=error if unexpected else None)  # a bug, not the database: its traceback
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause_s)
            pause_s = min(pause_s * 2, RESTART_PAUSE_S[1])
    finally:
        stopper.cancel()
