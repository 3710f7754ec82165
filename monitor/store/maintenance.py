"""MaintenanceStore over SQLAlchemy: retention, link checks, kept aggregates, the chains, sizes."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, text, union, update

from monitor.ports import ChainBreak, ChainHeadRow, LinkCheck, Verification
from monitor.store import chain
from monitor.store import models as m
from monitor.store.common import SUCCESS, table, translate, unpack, upsert, utc

COUNTED = {"checks": m.Check, "versions": m.Version, "changes": m.Change, "blobs": m.Blob, "pages": m.Page,
           "services": m.Service, "coverage_days": m.CoverageDay, "link_checks": m.LinkCheck,
           "self_reports": m.SelfReport}


class SqlMaintenance:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def prune(self, *, checks_before: datetime, raw_before: datetime, slow_s: float = 10.0,
              now: datetime | None = None) -> dict[str, int]:
        """Bounded growth. Check rows older than `checks_before` are summarised per page and day (a chained
        coverage record per page, day and run) and removed — the oldest part of their chain, up to the first
        record that is not that old, so that the chain stays verifiable from its new base — and so are older
        link checks; raw captures of versions not seen since `raw_before` are dropped (the current version of
        each page keeps its own). Versions, change events, their evidence and the counters are kept for ever."""
        C, V, B, P, D, CH = (table(m.Check), table(m.Version), table(m.Blob), table(m.Page),
                             table(m.CoverageDay), table(m.Change))
        report = {"checks_summarised": 0, "days_summarised": 0, "raw_captures_dropped": 0, "blobs_deleted": 0,
                  "link_checks_deleted": 0}
        with translate("cannot prune"), self.engine.begin() as conn:
            # versions first, then the checks chain's head: the order a writer takes them in (no deadlock)
            current = select(P.c.last_version_id).where(P.c.last_version_id.is_not(None))
            report["raw_captures_dropped"] = conn.execute(
                update(V).where(V.c.last_seen_at < raw_before, V.c.raw_sha.is_not(None), V.c.id.not_in(current))
                .values(raw_sha=None)).rowcount
            upto = chain.prunable(conn, C, C.c.started_at < checks_before)
            old = (C.c.chain_seq <= upto) & (C.c.started_at < checks_before)
            summary: dict[tuple[int, str], dict[str, Any]] = {}
            q = select(C.c.page_id, C.c.started_at, C.c.outcome, C.c.duration_s, C.c.source).where(old)
            for pid, started, outcome, duration, source in conn.execute(q):
                started = utc(started)
                assert started is not None
                day = summary.setdefault((pid, started.strftime("%Y-%m-%d")), {
                    "checks": 0, "successes": 0, "failures": Counter(), "first": None, "last": None, "slow": 0,
                    "archived": 0})
                day["checks"] += 1
                day["slow"] += int(duration > slow_s)
                if outcome in SUCCESS:
                    day["successes"] += 1
                    day["archived"] += int(bool(source))
                    day["first"] = min(filter(None, (day["first"], started)))
                    day["last"] = max(filter(None, (day["last"], started)))
                else:
                    day["failures"][outcome] += 1
            rows = [dict(page_id=pid, day=day_key, checks=d["checks"], successes=d["successes"],
                         failures=",".join(f"{k}:{v}" for k, v in sorted(d["failures"].items())),
                         first_success_at=d["first"], last_success_at=d["last"], slow=d["slow"],
                         archived=d["archived"] or None)
                    for (pid, day_key), d in sorted(summary.items())]
            chain.stamp(conn, "coverage_days", rows)
            if rows:
                conn.execute(insert(D), rows)
            report["days_summarised"] = len(summary)
            removed = chain.move_base(conn, C, upto, now or datetime.now(UTC))
            report["checks_summarised"] = conn.execute(C.delete().where(C.c.chain_seq <= upto)).rowcount
            if report["checks_summarised"] != removed:  # a record without its place: the chain says where
                report["checks_summarised"] = removed
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

    def verify(self, *, blobs: bool = True) -> Verification:
        """Check every hash chain from its base, that each chain's base is the one the retention log recorded,
        and (with `blobs`) that every stored content and evidence is the bytes its address says: records
        checked, every break located, and the heads."""
        counts: dict[str, int] = {}
        breaks: list[ChainBreak] = []
        heads: list[ChainHeadRow] = []
        with translate("cannot verify"), self.engine.connect() as conn:
            for name in chain.MODELS:
                found = chain.verify(conn, name)
                counts[name] = found.checked
                breaks.extend(found.breaks)
                heads.append(ChainHeadRow(name=name, seq=found.head_seq, hash=found.head_hash,
                                          base_seq=found.base_seq, base_hash=found.base_hash))
            breaks.extend(self._bases(conn))
            if blobs:
                breaks.extend(self._blobs(conn))
        return Verification(counts=counts, breaks=tuple(breaks), heads=tuple(heads))

    def chain_record(self, name: str, seq: int) -> str | None:
        """The hash of the record at a position of a chain (None if there is none)."""
        tbl = table(chain.MODELS[name]) if name in chain.MODELS else None
        if tbl is None:
            return None
        with translate("cannot read a chain"), self.engine.connect() as conn:
            return conn.execute(select(tbl.c.record_hash).where(tbl.c.chain_seq == seq)).scalar()

    def heads(self) -> list[ChainHeadRow]:
        """Where every chain stands, as recorded (cheap: no verification)."""
        H = table(m.ChainHead)
        with translate("cannot read the chain heads"), self.engine.connect() as conn:
            rows = conn.execute(select(H.c.name, H.c.last_seq, H.c.last_hash, H.c.base_seq, H.c.base_hash)
                                .order_by(H.c.name))
            return [ChainHeadRow(name=name, seq=int(seq), hash=digest, base_seq=int(base_seq), base_hash=base_hash)
                    for name, seq, digest, base_seq, base_hash in rows]

    @staticmethod
    def _bases(conn: Connection) -> list[ChainBreak]:
        """A chain starts later than its first record only where retention recorded the move."""
        H, R = table(m.ChainHead), table(m.RetentionLog)
        out = []
        for name, base_seq, base_hash in conn.execute(select(H.c.name, H.c.base_seq, H.c.base_hash)):
            logged = conn.execute(select(R.c.base_seq, R.c.base_hash).where(R.c.chain == name)
                                  .order_by(R.c.chain_seq.desc()).limit(1)).first()
            if (int(base_seq), base_hash) != ((int(logged[0]), logged[1]) if logged else (0, "")):
                out.append(ChainBreak(table=name, record_id=0, reason="its start was moved without the retention "
                                      "log recording it (records at its start were removed)"))
        return out

    @staticmethod
    def _blobs(conn: Connection) -> list[ChainBreak]:
        """Every content and evidence a chained record refers to is the bytes its address (SHA-256) names."""
        B, V, CH = table(m.Blob), table(m.Version), table(m.Change)
        referred = union(select(V.c.content_sha.label("sha")), select(CH.c.evidence_sha).where(
            CH.c.evidence_sha.is_not(None))).subquery()
        out = []
        query = select(B.c.sha256, B.c.codec, B.c.data).join(referred, referred.c.sha == B.c.sha256)
        with conn.execute(query.execution_options(yield_per=500)) as result:
            for sha, codec, data in result:
                try:
                    good = hashlib.sha256(unpack(codec, data)).hexdigest() == sha
                except Exception:
                    good = False
                if not good:
                    out.append(ChainBreak(table="blobs", record_id=0, reason=f"the content {sha[:12]}… is not the "
                                          "bytes its address names (it was replaced)"))
        missing = conn.execute(select(func.count()).select_from(referred).where(
            ~referred.c.sha.in_(select(B.c.sha256)))).scalar()
        if missing:
            out.append(ChainBreak(table="blobs", record_id=0, reason=f"{missing} content(s) or evidence that "
                                  "records refer to are missing"))
        return out

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
