"""ReportStore over SQLAlchemy: the departments' self-reports, each row imported once."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Engine, func, insert, select

from monitor.domain import ReportEntry, ReportRow
from monitor.store import chain
from monitor.store import models as m
from monitor.store.common import table, translate, utc


def reports(engine: Engine, *, service_id: str | None = None, since: datetime | None = None,
            until: datetime | None = None) -> list[ReportEntry]:
    R = table(m.SelfReport)
    q = select(R.c.id, R.c.service_id, R.c.submitted_at, R.c.reported_for, R.c.what, R.c.who, R.c.link,
               R.c.source).order_by(R.c.reported_for, R.c.id)
    if service_id:
        q = q.where(R.c.service_id == service_id)
    if since:
        q = q.where(R.c.reported_for >= since)
    if until:
        q = q.where(R.c.reported_for < until)
    with engine.connect() as conn:
        return [ReportEntry(**row._asdict()) for row in conn.execute(q)]


def last_reports(engine: Engine) -> dict[str, datetime]:
    """The newest self-report per service (submission time)."""
    R = table(m.SelfReport)
    with engine.connect() as conn:
        rows = conn.execute(select(R.c.service_id, func.max(R.c.submitted_at)).group_by(R.c.service_id))
        return {sid: at for sid, t in rows if (at := utc(t)) is not None}


class SqlReports:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_reports(self, rows: Iterable[ReportRow], now: datetime) -> int:
        """Store parsed self-reports; a row already imported is skipped. Returns how many are new."""
        R = table(m.SelfReport)
        values = [dict(row_hash=r.row_hash, service_id=r.service_id, submitted_at=r.submitted_at,
                       reported_for=r.reported_for, what=r.what, who=r.who, email=r.email, link=r.link,
                       service_text=r.service_text, source=r.source, imported_at=now) for r in rows]
        if not values:
            return 0
        with translate("cannot store self-reports"), self.engine.begin() as conn:
            chain.lock(conn, "self_reports")  # importers take turns: a row is new or not, then chained
            have = set(conn.execute(select(R.c.row_hash).where(R.c.row_hash.in_([v["row_hash"] for v in values])))
                       .scalars())
            new = list({v["row_hash"]: v for v in values if v["row_hash"] not in have}.values())
            chain.stamp(conn, "self_reports", new)
            if new:
                conn.execute(insert(R), new)
        return len(new)

    def reports(self, *, service_id: str | None = None, since: datetime | None = None,
                until: datetime | None = None) -> list[ReportEntry]:
        return reports(self.engine, service_id=service_id, since=since, until=until)

    def last_reports(self) -> dict[str, datetime]:
        return last_reports(self.engine)
