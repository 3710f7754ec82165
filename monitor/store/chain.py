"""The hash chains over everything a verdict depends on: versions, change events, checks (the audit's
coverage), the summaries that replace pruned checks, self-reports, and the retention log. Each record's
hash covers its immutable fields and the hash of the record before it. Records take their position in a
chain (chain_seq) while the chain's head is locked, so that several writers (threads, processes,
machines) append one chain in one order, and `verify` follows that order.

Retention removes the oldest records of a chain (a prefix, never the middle): the chain then starts from
a *base* — the position and hash of the last record removed — and every such move is a record of the
retention log, itself chained. Signed checkpoints (monitor.checkpoint) hold the heads outside the database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, select, update

from monitor.ports import ChainBreak
from monitor.store import models as m
from monitor.store.common import insert_ignore, table, utc

CHAINED = {
    # raw_sha is left out: raw captures are pruned with age (fp_raw, their hash, stays chained)
    "versions": ("id", "page_id", "key_hash", "first_seen_at", "content_sha", "fp_raw", "fp_text",
                 "fp_main", "fp_main_dated", "fp_main_masked", "fp_links", "fp_documents", "declared_at"),
    "changes": ("id", "page_id", "from_version_id", "to_version_id", "window_start", "detected_at", "change_class",
                "is_real", "added", "removed", "edited", "evidence_sha"),
    # the records below are hashed before they are inserted: their hash does not cover their id
    "checks": ("page_id", "started_at", "duration_s", "outcome", "http_status", "bytes", "quality", "change_class",
               "version_id", "fp_raw", "error"),
    "self_reports": ("row_hash", "service_id", "submitted_at", "reported_for", "what", "who", "email", "link",
                     "service_text", "source"),
    "web_actions": ("at", "who", "action", "target", "detail"),
    "coverage_days": ("page_id", "day", "checks", "successes", "failures", "first_success_at", "last_success_at",
                      "slow"),
    "retention_log": ("chain", "base_seq", "base_hash", "removed", "done_at"),
    "rejected_reports": ("identity", "source", "row", "reason", "cells", "service_id", "service_text",
                          "department_text", "submitted_at", "reported_for", "placed_at", "what", "who", "link"),
}
# chained only when set (not None nor empty), so that the records written before the field existed keep their
# hashes
CHAINED_WHEN_SET = {"changes": ("supersedes",), "self_reports": ("department_text",), "checks": ("source",),
                    "coverage_days": ("archived",)}
MODELS: dict[str, type[m.Base]] = {"versions": m.Version, "changes": m.Change, "checks": m.Check,
                                   "self_reports": m.SelfReport, "coverage_days": m.CoverageDay,
                                   "retention_log": m.RetentionLog, "rejected_reports": m.ReportRejection,
                                   "web_actions": m.WebAction}
MAX_BREAKS = 50  # breaks listed per chain; past them, verification stops reading that chain


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc(value).isoformat()  # type: ignore[union-attr]
    return value


def record_hash(prev_hash: str, name: str, row: Mapping[str, Any] | Any) -> str:
    """The hash of one chained record: it covers the record's immutable fields and the hash before it."""
    fields = {key: _canonical(row[key]) for key in CHAINED[name]}
    fields.update({key: _canonical(row[key]) for key in CHAINED_WHEN_SET.get(name, ())
                   if row.get(key) not in (None, "")})
    payload = json.dumps(fields, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(f"{prev_hash}\n{name}\n{payload}".encode()).hexdigest()


def lock(conn: Connection, name: str) -> None:
    """Hold the chain's head until the transaction ends (to read, then append, without a race)."""
    _locked_head(conn, name)


def _locked_head(conn: Connection, name: str) -> Any:
    """The chain's head row, locked until the transaction ends (SQLite's writer holds the whole file)."""
    H = table(m.ChainHead)
    lock = select(H.c.last_hash, H.c.last_seq, H.c.base_seq, H.c.base_hash).where(H.c.name == name)
    if conn.dialect.name == "postgresql":
        lock = lock.with_for_update()
    head = conn.execute(lock).first()
    if head is None:
        insert_ignore(conn, H, [dict(name=name, last_id=0, last_seq=0, last_hash="", base_seq=0, base_hash="")],
                      ["name"])
        head = conn.execute(lock).one()
    return head


def append(conn: Connection, tbl: Table, ids: list[int]) -> None:
    """Chain freshly inserted rows (whose hash covers their id) after the chain's head. The rows take their
    positions under the head's lock: whichever transaction locks first appends first, whatever the ids say."""
    if not ids:
        return
    head = _locked_head(conn, tbl.name)
    prev, seq = head.last_hash, head.last_seq
    rows = conn.execute(select(tbl).where(tbl.c.id.in_(ids)).order_by(tbl.c.id)).mappings().all()
    updates = []
    for row in rows:
        seq += 1
        digest = record_hash(prev, tbl.name, row)
        updates.append({"_id": row["id"], "_seq": seq, "_prev": prev, "_hash": digest})
        prev = digest
    conn.execute(update(tbl).where(tbl.c.id == bindparam("_id"))
                 .values(chain_seq=bindparam("_seq"), prev_hash=bindparam("_prev"), record_hash=bindparam("_hash")),
                 updates)
    _move_head(conn, tbl.name, seq, prev, last_id=rows[-1]["id"])


def stamp(conn: Connection, name: str, rows: list[dict[str, Any]]) -> None:
    """Give rows about to be inserted their place in the chain (chain_seq, prev_hash, record_hash), in order,
    under the head's lock; the caller inserts them in the same transaction."""
    if not rows:
        return
    head = _locked_head(conn, name)
    prev, seq = head.last_hash, head.last_seq
    for row in rows:
        seq += 1
        row["chain_seq"], row["prev_hash"] = seq, prev
        row["record_hash"] = prev = record_hash(prev, name, row)
    _move_head(conn, name, seq, prev)


def _move_head(conn: Connection, name: str, seq: int, digest: str, last_id: int = 0) -> None:
    H = table(m.ChainHead)
    conn.execute(update(H).where(H.c.name == name).values(last_id=last_id, last_seq=seq, last_hash=digest))


def prunable(conn: Connection, tbl: Table, condition: Any) -> int:
    """The last position up to which every record of the chain meets `condition` (the prefix retention may
    remove: never the middle of a chain)."""
    head = _locked_head(conn, tbl.name)
    first_kept = conn.execute(select(tbl.c.chain_seq).where(~condition, tbl.c.chain_seq.is_not(None))
                              .order_by(tbl.c.chain_seq).limit(1)).scalar()
    return int(head.last_seq if first_kept is None else first_kept - 1)


def move_base(conn: Connection, tbl: Table, upto: int, now: datetime) -> int:
    """Before retention removes the records of a chain up to position `upto`: the chain starts after them
    from then on, and the retention log records the move. Returns the records to remove."""
    head = _locked_head(conn, tbl.name)
    if upto <= head.base_seq:
        return 0
    last = conn.execute(select(tbl.c.record_hash).where(tbl.c.chain_seq == upto)).scalar()
    H = table(m.ChainHead)
    conn.execute(update(H).where(H.c.name == tbl.name).values(base_seq=upto, base_hash=last or ""))
    entry = dict(chain=tbl.name, base_seq=upto, base_hash=last or "", removed=upto - head.base_seq, done_at=now)
    stamp(conn, "retention_log", [entry])
    conn.execute(table(m.RetentionLog).insert(), [entry])
    return upto - int(head.base_seq)


@dataclass(slots=True)
class ChainReport:
    name: str
    checked: int = 0
    head_seq: int = 0
    head_hash: str = ""
    base_seq: int = 0
    base_hash: str = ""
    breaks: list[ChainBreak] = field(default_factory=list)


def verify(conn: Connection, name: str) -> ChainReport:
    """Recompute a chain from its base in chain order; every altered, removed, inserted or moved record is
    reported (up to MAX_BREAKS), the chain read on from what is stored after each."""
    tbl = table(MODELS[name])
    H = table(m.ChainHead)
    head = conn.execute(select(H.c.last_seq, H.c.last_hash, H.c.base_seq, H.c.base_hash)
                        .where(H.c.name == name)).first()
    base_seq, prev = (int(head.base_seq), head.base_hash) if head is not None else (0, "")
    report = ChainReport(name=name, base_seq=base_seq, base_hash=prev)

    def broken(record_id: int, reason: str) -> bool:
        report.breaks.append(ChainBreak(table=name, record_id=record_id, reason=reason))
        return len(report.breaks) >= MAX_BREAKS

    expected = base_seq + 1
    query = select(tbl).order_by(tbl.c.chain_seq.is_(None), tbl.c.chain_seq, tbl.c.id)
    with conn.execute(query.execution_options(yield_per=2000)) as result:
        for row in result.mappings():
            report.checked += 1
            seq = row["chain_seq"]
            if seq is None:
                if broken(row["id"], "has no place in the chain (a record was inserted)"):
                    return report
                continue
            problem = ""
            if seq != expected:
                gone = seq - expected
                problem = (f"{gone} record(s) before it were removed" if gone > 0 else
                           "is out of its place in the chain (a record was inserted or moved)")
            elif row["prev_hash"] != prev:
                problem = "does not follow the record before it (a record was replaced or moved)"
            elif row["record_hash"] != record_hash(prev, name, row):
                problem = "its content was altered"
            if problem and broken(row["id"], problem):
                return report
            prev, expected = row["record_hash"] or "", seq + 1
    last_seq, last_hash = (int(head.last_seq), head.last_hash) if head is not None else (0, "")
    report.head_seq, report.head_hash = last_seq, last_hash
    if (last_seq, last_hash) != (expected - 1, prev) and not (report.checked == 0 and last_seq == base_seq):
        broken(0, "the newest records were removed (the chain head does not match)")
    return report
