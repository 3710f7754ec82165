"""ReportStore over SQLAlchemy: the departments' self-reports, each imported once (known by its parsed content),
and the submitted rows that could not be reports, kept with their reasons."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Engine, and_, func, insert, or_, select

from monitor.domain import Reason, RejectedEntry, RejectedRow, ReportEntry, ReportRow
from monitor.store import chain
from monitor.store import models as m
from monitor.store.common import table, translate, utc


def reports(engine: Engine, *, service_id: str | None = None, since: datetime | None = None,
            until: datetime | None = None) -> list[ReportEntry]:
    R = table(m.SelfReport)
    q = (select(R.c.id, R.c.service_id, R.c.submitted_at, R.c.reported_for, R.c.what, R.c.who, R.c.link,
                R.c.source, R.c.service_text, R.c.department_text)
         .where(R.c.identity.is_not(None))  # a report imported twice before identities (migration 0006): once
         .order_by(R.c.reported_for, R.c.id))
    if service_id:
        q = q.where(R.c.service_id == service_id)
    if since:
        q = q.where(R.c.reported_for >= since)
    if until:
        q = q.where(R.c.reported_for < until)
    with engine.connect() as conn:
        return [ReportEntry(**row._asdict()) for row in conn.execute(q)]


def encode_reasons(reasons: Iterable[Reason]) -> str:
    """How a rejected row's reasons are kept: their codes and what fills them, as JSON (any language can be
    written from it)."""
    return json.dumps([{"code": r.code, **dict(r.args)} for r in reasons], ensure_ascii=False, sort_keys=True)


def decode_reasons(stored: str) -> tuple[Reason, ...]:
    try:
        doc = json.loads(stored)
        return tuple(Reason(str(d.pop("code")), tuple(sorted((str(k), str(v)) for k, v in d.items()))) for d in doc)
    except (ValueError, TypeError, KeyError, AttributeError):
        return (Reason.of("text", text=stored),)  # written by hand, or by a version that kept text


def rejected(engine: Engine, *, since: datetime, until: datetime,
             service_ids: Iterable[str] | None = None) -> list[RejectedEntry]:
    """The rejected rows of [since, until) (by the day they name, else their submission) and those with no
    usable date (listed in every audit), but those a later import took as reports; `service_ids` limits them to
    these services and the rows whose service was not recognised."""
    X, R = table(m.ReportRejection), table(m.SelfReport)
    q = (select(X.c.id, X.c.source, X.c.reason, X.c.service_id, X.c.service_text, X.c.department_text,
                X.c.submitted_at, X.c.reported_for, X.c.what, X.c.link, X.c.imported_at)
         .where(or_(X.c.placed_at.is_(None), and_(X.c.placed_at >= since, X.c.placed_at < until)),
                X.c.identity.not_in(select(R.c.identity).where(R.c.identity.is_not(None))))
         .order_by(X.c.id))
    if service_ids is not None:
        q = q.where(or_(X.c.service_id.is_(None), X.c.service_id.in_(list(service_ids))))
    with engine.connect() as conn:
        return [RejectedEntry(**{k: v for k, v in row._asdict().items() if k != "reason"},
                              reasons=decode_reasons(row.reason)) for row in conn.execute(q)]


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
        """Store parsed self-reports; a report already imported (the same parsed content, from any export) is
        skipped. Returns how many are new."""
        R = table(m.SelfReport)
        values = [dict(identity=r.identity, row_hash=r.row_hash, service_id=r.service_id,
                       submitted_at=r.submitted_at, reported_for=r.reported_for, what=r.what, who=r.who,
                       email=r.email, link=r.link, service_text=r.service_text, department_text=r.department_text,
                       source=r.source, imported_at=now) for r in rows]
        if not values:
            return 0
        with translate("cannot store self-reports"), self.engine.begin() as conn:
            chain.lock(conn, "self_reports")  # importers take turns: a row is new or not, then chained
            have = set(conn.execute(select(R.c.identity).where(R.c.identity.in_([v["identity"] for v in values])))
                       .scalars())
            have |= set(conn.execute(select(R.c.row_hash).where(R.c.row_hash.in_([v["row_hash"] for v in values])))
                        .scalars())
            new = list({v["identity"]: v for v in values
                        if v["identity"] not in have and v["row_hash"] not in have}.values())
            chain.stamp(conn, "self_reports", new)
            if new:
                conn.execute(insert(R), new)
        return len(new)

    def add_rejected(self, rows: Iterable[RejectedRow], now: datetime) -> int:
        """Keep the rows that could not be reports, with their reasons (chained); a row already kept, or
        already imported as a report, is skipped. Returns how many are new."""
        X, R = table(m.ReportRejection), table(m.SelfReport)
        values = [dict(identity=r.identity, source=r.source, row=r.row, reason=encode_reasons(r.reasons),
                       cells=json.dumps(list(r.cells), ensure_ascii=False), service_id=r.service_id,
                       service_text=r.service_text, department_text=r.department_text, submitted_at=r.submitted_at,
                       reported_for=r.reported_for, placed_at=r.placed_at, what=r.what, who=r.who, link=r.link,
                       imported_at=now)
                  for r in rows]
        if not values:
            return 0
        keys = [v["identity"] for v in values]
        with translate("cannot store rejected rows"), self.engine.begin() as conn:
            chain.lock(conn, "rejected_reports")
            have = set(conn.execute(select(X.c.identity).where(X.c.identity.in_(keys))).scalars())
            have |= set(conn.execute(select(R.c.identity).where(R.c.identity.in_(keys))).scalars())
            new = list({v["identity"]: v for v in values if v["identity"] not in have}.values())
            chain.stamp(conn, "rejected_reports", new)
            if new:
                conn.execute(insert(X), new)
        return len(new)

    def reports(self, *, service_id: str | None = None, since: datetime | None = None,
                until: datetime | None = None) -> list[ReportEntry]:
        return reports(self.engine, service_id=service_id, since=since, until=until)

    def rejected(self, *, since: datetime, until: datetime,
                 service_ids: Iterable[str] | None = None) -> list[RejectedEntry]:
        return rejected(self.engine, since=since, until=until, service_ids=service_ids)

    def last_reports(self) -> dict[str, datetime]:
        return last_reports(self.engine)
