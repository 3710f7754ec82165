"""MaintenanceStore over SQLAlchemy: retention, link checks, kept aggregates, the chains, sizes."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, text, union, update

from monitor.ports import ChainBreak, LinkCheck, Verification
from monitor.store import chain
from monitor.store import models as m
from monitor.store.common import SUCCESS, table, translate, upsert, utc

COUNTED = {"checks": m.Check, "versions": m.Version, "changes": m.Change, "blobs": m.Blob, "pages": m.Page,
           "services": m.Service, "coverage_days": m.CoverageDay, "link_checks": m.LinkCheck,
           "self_reports": m.SelfReport}


class SqlMaintenance:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def prune(self, *, checks_before: datetime, raw_before: datetime, slow_s: float = 10.0) -> dict[str, int]:
        """Bounded growth. Check rows older than `checks_before` are summarised per page and day
        (coverage_days) and removed, and so are older link checks; raw captures of versions not seen since
        `raw_before` are dropped (the current version of each page keeps its own). Versions, change events,
        their evidence and the counters are kept for ever."""
        C, V, B, P, D, CH = (table(m.Check), table(m.Version), table(m.Blob), table(m.Page),
                             table(m.CoverageDay), table(m.Change))
        report = {"checks_summarised": 0, "days_summarised": 0, "raw_captures_dropped": 0, "blobs_deleted": 0,
                  "link_checks_deleted": 0}
        with translate("cannot prune"), self.engine.begin() as conn:
            summary: dict[tuple[int, str], dict[str, Any]] = {}
            q = select(C.c.page_id, C.c.started_at, C.c.outcome, C.c.duration_s).where(C.c.started_at < checks_before)
            for pid, started, outcome, duration in conn.execute(q):
                started = utc(started)
                assert started is not None
                day = summary.setdefault((pid, started.strftime("%Y-%m-%d")), {
                    "checks": 0, "successes": 0, "failures": Counter(), "first": None, "last": None, "slow": 0})
                day["checks"] += 1
                day["slow"] += int(duration > slow_s)
                if outcome in SUCCESS:
                    day["successes"] += 1
                    day["first"] = min(filter(None, (day["first"], started)))
                    day["last"] = max(filter(None, (day["last"], started)))
                else:
                    day["failures"][outcome] += 1
            for (pid, day_key), d in summary.items():
                old = conn.execute(select(D).where(D.c.page_id == pid, D.c.day == day_key)).mappings().first()
                failures = Counter(d["failures"])
                if old is not None:
                    failures.update({k: int(v) for k, v in (x.split(":") for x in old["failures"].split(",") if x)})
                values = {"checks": d["checks"] + (old["checks"] if old else 0),
                          "successes": d["successes"] + (old["successes"] if old else 0),
                          "failures": ",".join(f"{k}:{v}" for k, v in sorted(failures.items())),
                          "first_success_at": min(filter(None, (d["first"], utc(old["first_success_at"]) if old
                                                                else None)), default=None),
                          "last_success_at": max(filter(None, (d["last"], utc(old["last_success_at"]) if old
                                                               else None)), default=None),
                          "slow": d["slow"] + (old["slow"] if old else 0)}
                if old is None:
                    conn.execute(insert(D).values(page_id=pid, day=day_key, **values))
                else:
                    conn.execute(update(D).where(D.c.page_id == pid, D.c.day == day_key).values(**values))
            report["days_summarised"] = len(summary)
            report["checks_summarised"] = conn.execute(C.delete().where(C.c.started_at < checks_before)).rowcount
            current = select(P.c.last_version_id).where(P.c.last_version_id.is_not(None))
            report["raw_captures_dropped"] = conn.execute(
                update(V).where(V.c.last_seen_at < raw_before, V.c.raw_sha.is_not(None), V.c.id.not_in(current))
                .values(raw_sha=None)).rowcount
            used = union(select(V.c.content_sha), select(V.c.raw_sha).where(V.c.raw_sha.is_not(None)),
                         select(CH.c.evidence_sha).where(CH.c.evidence_sha.is_not(None)))
            report["blobs_deleted"] = conn.execute(B.delete().where(B.c.sha256.not_in(used))).rowcount
            LC = table(m.LinkCheck)
            report["link_checks_deleted"] = conn.execute(LC.delete().where(LC.c.checked_at < checks_before)).rowcount
        return report

    def add_link_checks(self, rows: Sequence[LinkCheck]) -> None:
        if rows:
            with translate("cannot write link checks"), self.engine.begin() as conn:
                conn.execute(insert(table(m.LinkCheck)), [asdict(r) for r in rows])

    def last_link_checks(self) -> dict[int, datetime]:
        L = table(m.LinkCheck)
        with self.engine.connect() as conn:
            return {pid: at for pid, t in conn.execute(select(L.c.page_id, func.max(L.c.checked_at))
                                                       .group_by(L.c.page_id)) if (at := utc(t)) is not None}

    def put_aggregates(self, name: str, values: Mapping[str, Mapping[str, int]], now: datetime) -> None:
        """Upsert each key (in a fixed order, so that two refreshes side by side neither collide nor deadlock),
        then drop the keys that are gone."""
        A = table(m.Aggregate)
        rows = [dict(name=name, key=key, counts=json.dumps(dict(values[key]), sort_keys=True), computed_at=now)
                for key in sorted(values)]
        with translate(f"cannot keep the {name} aggregates"), self.engine.begin() as conn:
            if rows:
                ins = upsert(conn, A)
                conn.execute(ins.on_conflict_do_update(index_elements=["name", "key"], set_={
                    "counts": ins.excluded.counts, "computed_at": ins.excluded.computed_at}), rows)
            gone = delete(A).where(A.c.name == name)
            if rows:
                gone = gone.where(A.c.key.not_in(sorted(values)))
            conn.execute(gone)

    def verify(self) -> Verification:
        """Check the hash chains of versions and change events: records checked, and breaks found."""
        counts: dict[str, int] = {}
        breaks: list[ChainBreak] = []
        with translate("cannot verify"), self.engine.connect() as conn:
            for model in (m.Version, m.Change):
                n, broken = chain.verify(conn, table(model))
                counts[table(model).name] = n
                if broken is not None:
                    breaks.append(broken)
        return Verification(counts=counts, breaks=tuple(breaks))

    def size_bytes(self) -> int | None:
        """The database's size on disk (SQLite file pages; PostgreSQL database size)."""
        with self.engine.connect() as conn:
            if self.engine.dialect.name == "sqlite":
                pages = conn.execute(text("pragma page_count")).scalar() or 0
                size = conn.execute(text("pragma page_size")).scalar() or 0
                return int(pages) * int(size)
            return int(conn.execute(text("select pg_database_size(current_database())")).scalar() or 0)

    def row_counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {name: int(conn.execute(select(func.count()).select_from(table(model))).scalar() or 0)
                    for name, model in COUNTED.items()}

    def vacuum(self) -> None:
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM"))
