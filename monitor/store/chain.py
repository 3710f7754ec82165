"""The hash chains over versions and change events: each record's hash covers its immutable fields and
the hash of the record before it. Records take their position in a chain (chain_seq) while the chain's
head is locked, so that several writers (threads, processes, machines) append one chain in one order,
and `verify` follows that order."""

from __future__ import annotations

import hashlib
import json
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
}


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc(value).isoformat()  # type: ignore[union-attr]
    return value


# chained only when set, so that the records written before the field existed keep their hashes
CHAINED_WHEN_SET = {"changes": ("supersedes",)}


def record_hash(prev_hash: str, name: str, row: Any) -> str:
    """The hash of one chained record: it covers the record's immutable fields and the hash before it."""
    fields = {key: _canonical(row[key]) for key in CHAINED[name]}
    fields.update({key: row[key] for key in CHAINED_WHEN_SET.get(name, ()) if row.get(key) is not None})
    payload = json.dumps(fields, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(f"{prev_hash}\n{name}\n{payload}".encode()).hexdigest()


def append(conn: Connection, tbl: Table, ids: list[int]) -> None:
    """Chain freshly inserted rows after the chain's head. The head is locked until the transaction ends
    (SELECT ... FOR UPDATE; SQLite's writer holds the whole file), and the rows take their positions under
    that lock: whichever transaction locks first appends first, whatever the ids say."""
    if not ids:
        return
    H = table(m.ChainHead)
    lock = select(H.c.last_hash, H.c.last_seq).where(H.c.name == tbl.name)
    if conn.dialect.name == "postgresql":
        lock = lock.with_for_update()
    head = conn.execute(lock).first()
    if head is None:
        insert_ignore(conn, H, [dict(name=tbl.name, last_id=0, last_seq=0, last_hash="")], ["name"])
        head = conn.execute(lock).one()
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
    conn.execute(update(H).where(H.c.name == tbl.name).values(last_id=rows[-1]["id"], last_seq=seq, last_hash=prev))


def verify(conn: Connection, tbl: Table) -> tuple[int, ChainBreak | None]:
    """Recompute a chain from its start in chain order: (records checked, the first altered record or None)."""
    prev, count = "", 0
    query = select(tbl).order_by(tbl.c.chain_seq.is_(None), tbl.c.chain_seq, tbl.c.id)
    with conn.execute(query.execution_options(yield_per=2000)) as result:
        for count, row in enumerate(result.mappings(), start=1):
            if row["chain_seq"] != count:
                what = "has no place in the chain" if row["chain_seq"] is None else "is out of its place in the chain"
                return count, ChainBreak(table=tbl.name, record_id=row["id"],
                                         reason=f"{what} (a record was removed or inserted)")
            if row["prev_hash"] != prev:
                return count, ChainBreak(table=tbl.name, record_id=row["id"], reason="does not follow the record "
                                         "before it (a record was removed or inserted)")
            if row["record_hash"] != record_hash(prev, tbl.name, row):
                return count, ChainBreak(table=tbl.name, record_id=row["id"], reason="its content was altered")
            prev = row["record_hash"]
    H = table(m.ChainHead)
    head = conn.execute(select(H.c.last_hash).where(H.c.name == tbl.name)).scalar()
    if (head or "") != prev:
        return count, ChainBreak(table=tbl.name, record_id=0,
                                 reason="the newest records were removed (the chain head does not match)")
    return count, None
