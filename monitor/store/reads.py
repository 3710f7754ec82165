"""The read models over SQLAlchemy: status and metrics, the audit, the history, the faults list, health.
Each returns typed rows (monitor.ports) and only reads, except the heartbeat."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, case, func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from monitor.domain import ChangeClass, ChangeEvent, RejectedEntry, ReportEntry
from monitor.ports import (
    Aggregate,
    CaptureRow,
    ChangeRow,
    CheckRow,
    ContentRef,
    DayRow,
    Heartbeat,
    LinkRow,
    PageMetricRow,
    PageRow,
    QueueRow,
    ServiceAggregate,
    TallyRow,
    WorkerRow,
)
from monitor.store import catalogue, reports
from monitor.store import models as m
from monitor.store.common import CHANGE_CLASSES, SUCCESS, blob, current_change, epoch, table, translate, utc


def _day(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d")


def workers(engine: Engine) -> list[WorkerRow]:
    W = table(m.Worker)
    with engine.connect() as conn:
        return [WorkerRow(**row._asdict()) for row in
                conn.execute(select(*W.c).order_by(W.c.heartbeat_at.desc()))]


class SqlHealth:
    """HealthStore: the running monitors' heartbeats."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    def heartbeat(self, beat: Heartbeat) -> None:
        with translate("cannot record the heartbeat"), Session(self.engine) as s, s.begin():
            row = s.get(m.Worker, beat.worker)
            if row is None:
                row = m.Worker(id=beat.worker, hostname=beat.hostname, pid=beat.pid, started_at=beat.started_at,
                               heartbeat_at=beat.now)
                s.add(row)
            row.heartbeat_at, row.last_round_at = beat.now, beat.last_round_at
            row.schedule_lag_s, row.checks_done = beat.schedule_lag_s, beat.checks_done
            row.stopped_at = beat.now if beat.stopped else None

    def workers(self) -> list[WorkerRow]:
        return workers(self.engine)



class SqlMetrics:
    """StatusReader and MetricsReader: summaries and counters aggregated by the database, kept aggregates."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def service_aggregates(self) -> dict[str, ServiceAggregate]:
        """Per active service: page counts and the latest times, aggregated in SQL."""
        P = table(m.Page)
        failing = func.sum(case((P.c.last_outcome.is_not(None) & P.c.last_outcome.not_in(SUCCESS), 1), else_=0))
        q = (select(P.c.service_id, func.count(), func.count(P.c.last_check_at), failing, func.max(P.c.last_check_at),
                    func.max(P.c.last_success_at), func.max(P.c.last_real_change_at), func.max(P.c.last_change_at),
                    func.min(P.c.first_success_at))
             .where(P.c.retired_at.is_(None)).group_by(P.c.service_id))
        with self.engine.connect() as conn:
            return {sid: ServiceAggregate(service_id=sid, pages=n, checked=checked, failing=int(bad or 0),
                                          last_check_at=utc(lc), last_success_at=utc(ls),
                                          last_real_change_at=utc(lr), last_change_at=utc(lch),
                                          first_success_at=utc(fs))
                    for sid, n, checked, bad, lc, ls, lr, lch, fs in conn.execute(q)}

    def workers(self) -> list[WorkerRow]:
        return workers(self.engine)

    def page_metrics(self) -> list[PageMetricRow]:
        """Per active page, for the exporter; times as Unix seconds computed in SQL."""
        P = table(m.Page)
        q = (select(P.c.service_id, P.c.position, P.c.url, P.c.interval_s, P.c.last_outcome, P.c.last_status,
                    P.c.last_duration_s, epoch(self.engine, P.c.last_check_at), epoch(self.engine, P.c.tls_expires_at))
             .where(P.c.retired_at.is_(None)).order_by(P.c.service_id, P.c.position))
        with self.engine.connect() as conn:
            return [PageMetricRow(service_id=sid, position=pos, url=url, interval_s=interval, outcome=outcome,
                                  status=status, duration_s=duration, checked=checked, tls_expiry=expiry)
                    for sid, pos, url, interval, outcome, status, duration, checked, expiry in conn.execute(q)]

    def tallies_by_service(self) -> list[TallyRow]:
        """Counters summed per service (SQL aggregate)."""
        T, P = table(m.Tally), table(m.Page)
        q = (select(P.c.service_id, T.c.family, T.c.key, func.sum(T.c.count)).join(P, P.c.id == T.c.page_id)
             .group_by(P.c.service_id, T.c.family, T.c.key))
        with self.engine.connect() as conn:
            return [TallyRow(service_id=sid, family=fam, key=key, count=int(n or 0))
                    for sid, fam, key, n in conn.execute(q)]

    def last_reports(self) -> dict[str, datetime]:
        return reports.last_reports(self.engine)

    def aggregates(self, name: str) -> dict[str, Aggregate]:
        A = table(m.Aggregate)
        with self.engine.connect() as conn:
            return {key: Aggregate(key=key, counts=json.loads(counts), computed_at=at) for key, counts, at in
                    conn.execute(select(A.c.key, A.c.counts, A.c.computed_at).where(A.c.name == name))}

    def queue(self) -> list[QueueRow]:
        """The procrastinate engine's waiting and running jobs (none on SQLite, or before its schema exists)."""
        if self.engine.dialect.name != "postgresql":
            return []
        with self.engine.connect() as conn:
            if not conn.execute(text("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")).scalar_one():
                return []
            rows = conn.execute(text(
                "SELECT queue_name, status::text, count(*), "
                "extract(epoch FROM min((args->>'dispatched_at')::timestamptz)) FROM procrastinate_jobs "
                "WHERE status IN ('todo', 'doing') GROUP BY 1, 2 ORDER BY 1, 2"))
            return [QueueRow(queue=q, status=st, jobs=int(n), oldest=float(o) if o is not None else None)
                    for q, st, n, o in rows]


class SqlAudit:
    """AuditReader: what the audit of one service over a range needs."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def change_events(self, service_id: str, since: datetime, until: datetime) -> list[ChangeEvent]:
        """Change events of a service from date_only up, detected in [since, until)."""
        CH, P = table(m.Change), table(m.Page)
        q = (select(CH.c.id, P.c.url, CH.c.change_class, CH.c.is_real, CH.c.window_start, CH.c.detected_at,
                    CH.c.added, CH.c.removed, CH.c.edited, func.coalesce(CH.c.evidence_sha, "").label("evidence"))
             .join(P, P.c.id == CH.c.page_id)
             .where(P.c.service_id == service_id, CH.c.change_class.in_(CHANGE_CLASSES), current_change(CH),
                    CH.c.detected_at >= since, CH.c.detected_at < until)
             .order_by(CH.c.detected_at, CH.c.id))
        with self.engine.connect() as conn:
            return [ChangeEvent(**row._asdict()) for row in conn.execute(q)]

    def reports(self, *, service_id: str | None = None, since: datetime | None = None,
                until: datetime | None = None) -> list[ReportEntry]:
        return reports.reports(self.engine, service_id=service_id, since=since, until=until)

    def rejected(self, *, since: datetime, until: datetime,
                 service_ids: Iterable[str] | None = None) -> list[RejectedEntry]:
        return reports.rejected(self.engine, since=since, until=until, service_ids=service_ids)

    def success_times(self, service_id: str, since: datetime, until: datetime) -> list[datetime]:
        """When the service's pages were checked successfully (for the audit's coverage). Days whose check
        rows were pruned contribute their summary: that day's successes spread between its first and last."""
        C, P, D = table(m.Check), table(m.Page), table(m.CoverageDay)
        q = (select(C.c.started_at).join(P, P.c.id == C.c.page_id)
             .where(P.c.service_id == service_id, P.c.retired_at.is_(None), C.c.outcome.in_(SUCCESS),
                    C.c.started_at >= since, C.c.started_at < until).order_by(C.c.started_at))
        days = (select(D.c.successes, D.c.first_success_at, D.c.last_success_at).join(P, P.c.id == D.c.page_id)
                .where(P.c.service_id == service_id, P.c.retired_at.is_(None), D.c.successes > 0,
                       D.c.day >= _day(since), D.c.day <= _day(until)))
        with self.engine.connect() as conn:
            times: list[datetime] = list(conn.execute(q).scalars())
            for n, first, last in conn.execute(days):
                if first is None or last is None:
                    continue
                step = (last - first) / max(1, n - 1)
                times.extend(t for t in (first + step * i for i in range(n)) if since <= t < until)
        return sorted(times)

    def archived_times(self, service_id: str, since: datetime, until: datetime) -> list[datetime]:
        """Successful checks that are archive captures; where their rows were pruned, their day's first
        success stands for them."""
        C, P, D = table(m.Check), table(m.Page), table(m.CoverageDay)
        q = (select(C.c.started_at).join(P, P.c.id == C.c.page_id)
             .where(P.c.service_id == service_id, P.c.retired_at.is_(None), C.c.outcome.in_(SUCCESS),
                    C.c.source != "", C.c.started_at >= since, C.c.started_at < until))
        days = (select(D.c.first_success_at).join(P, P.c.id == D.c.page_id)
                .where(P.c.service_id == service_id, P.c.retired_at.is_(None), D.c.archived > 0,
                       D.c.day >= _day(since), D.c.day <= _day(until)))
        with self.engine.connect() as conn:
            times = [t for t in (*conn.execute(q).scalars(), *conn.execute(days).scalars()) if t is not None]
        return sorted(utc(t) for t in times)  # type: ignore[misc]

    def declared_dates(self, service_id: str, since: datetime, until: datetime) -> list[datetime]:
        V, P = table(m.Version), table(m.Page)
        q = (select(V.c.declared_at).join(P, P.c.id == V.c.page_id)
             .where(P.c.service_id == service_id, V.c.declared_at.is_not(None), V.c.declared_at >= since,
                    V.c.declared_at < until).order_by(V.c.declared_at))
        with self.engine.connect() as conn:
            return [d for d in conn.execute(q).scalars() if d is not None]


class SqlHistory:
    """HistoryReader: change events with their evidence, and the pages' current contents."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _query(self) -> Any:
        CH, P = table(m.Change), table(m.Page)
        return (select(CH.c.id, P.c.service_id, CH.c.page_id, P.c.url, CH.c.change_class, CH.c.is_real,
                       CH.c.window_start, CH.c.detected_at, CH.c.added, CH.c.removed, CH.c.edited, CH.c.evidence_sha)
                .join(P, P.c.id == CH.c.page_id))

    def changes(self, *, service_id: str | None = None, since: datetime | None = None,
                until: datetime | None = None, limit: int | None = None,
                min_class: ChangeClass = ChangeClass.DATE_ONLY) -> list[ChangeRow]:
        CH, P = table(m.Change), table(m.Page)
        classes = [c.value for c in ChangeClass if c.rank <= min_class.rank]
        q = (self._query().where(CH.c.change_class.in_(classes), current_change(CH))
             .order_by(CH.c.detected_at.desc(), CH.c.id.desc()))
        if service_id:
            q = q.where(P.c.service_id == service_id)
        if since:
            q = q.where(CH.c.detected_at >= since)
        if until:
            q = q.where(CH.c.detected_at < until)
        if limit:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return [ChangeRow(**{k: v for k, v in row._asdict().items() if k != "evidence_sha"})
                    for row in conn.execute(q)]

    def change(self, change_id: int) -> ChangeRow | None:
        CH = table(m.Change)
        with self.engine.connect() as conn:
            row = conn.execute(self._query().where(CH.c.id == change_id)).first()
            if row is None:
                return None
            values = row._asdict()
            sha = values.pop("evidence_sha")
            data = blob(conn, sha) if sha else None
            # the ids, not min(id): PostgreSQL would walk the primary key for a min() and scan the whole table
            later = min(conn.execute(select(CH.c.id).where(CH.c.supersedes == change_id)).scalars(), default=None)
        return ChangeRow(**values, evidence=json.loads(data) if data else None, superseded_by=later)

    def current_contents(self, service_id: str) -> list[ContentRef]:
        P, V = table(m.Page), table(m.Version)
        q = (select(P.c.url, V.c.content_sha).join(V, V.c.id == P.c.last_version_id)
             .where(P.c.service_id == service_id, P.c.retired_at.is_(None)).order_by(P.c.position))
        with self.engine.connect() as conn:
            return [ContentRef(url=url, sha=sha) for url, sha in conn.execute(q)]

    def blob(self, sha: str) -> bytes | None:
        with self.engine.connect() as conn:
            return blob(conn, sha)

    def captures(self, *, service_ids: Sequence[str], since: datetime, until: datetime) -> list[CaptureRow]:
        V, P, C, CH = table(m.Version), table(m.Page), table(m.Check), table(m.Change)
        C1, CH1 = C.alias("first_check"), CH.alias("change_into")
        first = select(func.min(C1.c.id)).where(C1.c.version_id == V.c.id).scalar_subquery()
        into = (select(func.max(CH1.c.id)).where(CH1.c.to_version_id == V.c.id, current_change(CH1))
                .scalar_subquery())
        q = (select(P.c.service_id, P.c.url, V.c.id.label("version_id"), V.c.key_hash,
                    V.c.first_seen_at.label("captured_at"), V.c.raw_sha, V.c.content_sha, V.c.fp_raw,
                    V.c.record_hash, func.coalesce(C.c.content_type, "").label("content_type"),
                    func.coalesce(C.c.source, "").label("source"), CH.c.id.label("change_id"), CH.c.change_class,
                    CH.c.is_real, CH.c.evidence_sha, CH.c.record_hash.label("change_hash"))
             .join(P, P.c.id == V.c.page_id).outerjoin(C, C.c.id == first).outerjoin(CH, CH.c.id == into)
             .where(P.c.service_id.in_(list(service_ids)), V.c.first_seen_at >= since, V.c.first_seen_at < until)
             .order_by(V.c.first_seen_at, V.c.id))
        with self.engine.connect() as conn:
            return [CaptureRow(**row._asdict()) for row in conn.execute(q)]


class SqlFaults:
    """FaultsReader: what the technical-faults list reads over a range."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def check_rows(self, since: datetime, until: datetime,
                   service_ids: Iterable[str] | None = None) -> Iterator[CheckRow]:
        """The checks of current pages (of these services) in the range, by page and time (streamed)."""
        C, P = m.Check, m.Page
        q = (select(P.service_id, P.url, C.started_at, C.duration_s, C.outcome, C.http_status.label("status"),
                    C.quality, C.error)
             .join(P, P.id == C.page_id).where(P.retired_at.is_(None), C.started_at >= since, C.started_at < until)
             .order_by(C.page_id, C.started_at).execution_options(yield_per=5000))
        if service_ids is not None:
            q = q.where(P.service_id.in_(list(service_ids)))
        with Session(self.engine) as s:
            for row in s.execute(q):
                yield CheckRow(**row._asdict())

    def coverage_rows(self, since: datetime, until: datetime,
                      service_ids: Iterable[str] | None = None) -> list[DayRow]:
        """The pruned days in the range (of these services), a page's records of one day added up."""
        D, P = table(m.CoverageDay), table(m.Page)
        q = (select(P.c.service_id, P.c.url, D.c.day, D.c.checks, D.c.successes, D.c.failures, D.c.slow)
             .join(P, P.c.id == D.c.page_id)
             .where(P.c.retired_at.is_(None), D.c.day >= _day(since), D.c.day < _day(until))
             .order_by(D.c.page_id, D.c.day, D.c.id))
        if service_ids is not None:
            q = q.where(P.c.service_id.in_(list(service_ids)))
        days: dict[tuple[str, str, str], list[Any]] = {}
        with self.engine.connect() as conn:
            for sid, url, day, checks, successes, failures, slow in conn.execute(q):
                d = days.setdefault((sid, url, day), [0, 0, Counter(), 0])
                d[0] += checks
                d[1] += successes
                d[2].update({k: int(v) for k, v in (x.split(":") for x in failures.split(",") if x)})
                d[3] += slow
        return [DayRow(service_id=sid, url=url, day=day, checks=c, successes=s, slow=slow,
                       failures=",".join(f"{k}:{v}" for k, v in sorted(f.items())))
                for (sid, url, day), (c, s, f, slow) in days.items()]

    def link_checks(self, since: datetime, until: datetime) -> list[LinkRow]:
        """The links checked in the range."""
        L, P = table(m.LinkCheck), table(m.Page)
        q = (select(P.c.service_id, P.c.url.label("page"), L.c.url, L.c.checked_at, L.c.outcome, L.c.status,
                    L.c.error)
             .join(P, P.c.id == L.c.page_id).where(L.c.checked_at >= since, L.c.checked_at < until)
             .order_by(P.c.service_id, L.c.url, L.c.checked_at))
        with self.engine.connect() as conn:
            return [LinkRow(**row._asdict()) for row in conn.execute(q)]

    def pages(self, *, include_retired: bool = False, service_id: str | None = None) -> list[PageRow]:
        return catalogue.pages(self.engine, include_retired=include_retired, service_id=service_id)

    def latest_checks(self, service_id: str, limit: int = 50) -> list[CheckRow]:
        """The newest checks of a service's current pages, newest first."""
        C, P = table(m.Check), table(m.Page)
        q = (select(P.c.service_id, P.c.url, C.c.started_at, C.c.duration_s, C.c.outcome,
                    C.c.http_status.label("status"), C.c.quality, C.c.error)
             .join(P, P.c.id == C.c.page_id).where(P.c.retired_at.is_(None), P.c.service_id == service_id)
             .order_by(C.c.started_at.desc()).limit(limit))
        with self.engine.connect() as conn:
            return [CheckRow(**row._asdict()) for row in conn.execute(q)]

