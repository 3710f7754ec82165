"""Reads and writes of the monitor's history. Everything the rest of the code knows about SQL is here."""

from __future__ import annotations

import hashlib
import json
import logging
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, Float, Table, bindparam, case, func, insert, select, text, union, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from monitor.domain import (
    Catalogue,
    ChangeClass,
    ChangeEvent,
    CheckRecord,
    Fingerprints,
    PageState,
    ReportEntry,
    Validators,
    VersionRef,
)
from monitor.errors import StoreError, StoreUnavailable
from monitor.regulation import default_interval_s
from monitor.store import models as m
from monitor.store.engine import ensure_current, is_sqlite, make_engine

logger = logging.getLogger(__name__)

COMPRESS_LEVEL = 3  # HTML compresses about 5:1 at level 3, at a third of level 6's cost


def pack(data: bytes) -> tuple[str, bytes]:
    return "zlib", zlib.compress(data, COMPRESS_LEVEL)


def unpack(codec: str, data: bytes) -> bytes:
    if codec == "zlib":
        return zlib.decompress(data)
    if codec == "none":
        return data
    raise StoreError(f"unknown blob codec {codec!r}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextmanager
def translate(what: str) -> Iterator[None]:
    """SQLAlchemy's exceptions -> StoreUnavailable (worth retrying) or StoreError."""
    try:
        yield
    except (OperationalError, InterfaceError, DisconnectionError) as exc:
        raise StoreUnavailable(f"{what}: database unreachable: {type(exc).__name__}: {str(exc)[:300]}") from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"{what}: {type(exc).__name__}: {str(exc)[:300]}") from exc


def _fingerprints(v: m.Version) -> Fingerprints:
    return Fingerprints(raw=v.fp_raw, text=v.fp_text, main=v.fp_main, main_dated=v.fp_main_dated,
                        main_masked=v.fp_main_masked, links=v.fp_links, documents=v.fp_documents)


@dataclass(frozen=True, slots=True, kw_only=True)
class PageRow:
    """A page with its service, for status, schedule and metrics."""

    page_id: int
    service_id: str
    position: int
    url: str
    kind: str
    interval_s: int
    last_check_at: datetime | None
    last_success_at: datetime | None
    last_outcome: str | None
    last_status: int | None
    last_duration_s: float | None
    first_success_at: datetime | None
    last_change_at: datetime | None
    last_real_change_at: datetime | None
    tls_expires_at: datetime | None
    consecutive_failures: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceAggregate:
    """One service's pages summed up by SQL (what status, metrics and reports grade)."""

    service_id: str
    pages: int
    checked: int
    failing: int
    last_check_at: datetime | None
    last_success_at: datetime | None
    last_real_change_at: datetime | None
    last_change_at: datetime | None
    first_success_at: datetime | None


SUCCESS = ("ok", "not_modified")
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)  # seconds; the fetch-duration histogram


def duration_bucket(seconds: float) -> str:
    """The histogram bucket (its upper bound) of one fetch duration; kept as a persistent counter."""
    for bound in DURATION_BUCKETS:
        if seconds <= bound:
            return repr(bound)
    return "+Inf"


@dataclass(frozen=True, slots=True, kw_only=True)
class NoiseRuleRow:
    id: int
    service_id: str
    page: int
    url: str
    path: str
    source: str
    status: str
    evidence: str
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeRow:
    id: int
    service_id: str
    page_id: int
    url: str
    change_class: str
    is_real: bool
    window_start: datetime | None
    detected_at: datetime
    added: int
    removed: int
    edited: int
    evidence: dict[str, Any] | None = None


def _utc(value: datetime | None) -> datetime | None:
    """Aggregates bypass the column type: SQLite returns naive UTC (or text), PostgreSQL aware."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _epoch_sqlite(column: Any) -> Any:
    # stored as naive UTC text; whole seconds plus the milliseconds (julianday arithmetic would lose precision)
    return (func.cast(func.strftime("%s", column), Float) + func.cast(func.strftime("%f", column), Float)
            - func.cast(func.strftime("%S", column), Float))


def _epoch_pg(column: Any) -> Any:
    return func.date_part("epoch", column)  # double precision (extract() gives numeric: slow Decimals)


def _table(model: type[m.Base]) -> Table:
    return cast(Table, model.__table__)


def _insert_ignore(conn: Connection, table: Table, rows: list[dict[str, Any]], key: list[str]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL."""
    if not rows:
        return
    ins = pg_insert(table) if conn.dialect.name == "postgresql" else sqlite_insert(table)
    conn.execute(ins.on_conflict_do_nothing(index_elements=key), rows)


CHAINED = {
    # raw_sha is left out: raw captures are pruned with age (fp_raw, their hash, stays chained)
    "versions": ("id", "page_id", "key_hash", "first_seen_at", "content_sha", "fp_raw", "fp_text",
                 "fp_main", "fp_main_dated", "fp_main_masked", "fp_links", "fp_documents", "declared_at"),
    "changes": ("id", "page_id", "from_version_id", "to_version_id", "window_start", "detected_at", "change_class",
                "is_real", "added", "removed", "edited", "evidence_sha"),
}


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return _utc(value).isoformat()  # type: ignore[union-attr]
    return value


def record_hash(prev_hash: str, table: str, row: Any) -> str:
    """The hash of one chained record: it covers the record's immutable fields and the hash before it."""
    fields = {name: _canonical(row[name]) for name in CHAINED[table]}
    payload = json.dumps(fields, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(f"{prev_hash}\n{table}\n{payload}".encode()).hexdigest()


def _append_chain(conn: Connection, table: Table, ids: list[int]) -> None:
    """Hash-chain freshly inserted rows in id order, continuing from the chain's head (locked meanwhile)."""
    if not ids:
        return
    H = _table(m.ChainHead)
    name = table.name
    lock = select(H.c.last_hash).where(H.c.name == name)
    if conn.dialect.name == "postgresql":
        lock = lock.with_for_update()
    prev = conn.execute(lock).scalar()
    if prev is None:
        _insert_ignore(conn, H, [dict(name=name, last_id=0, last_hash="")], ["name"])
        prev = conn.execute(lock).scalar() or ""
    rows = conn.execute(select(table).where(table.c.id.in_(ids)).order_by(table.c.id)).mappings().all()
    updates = []
    for row in rows:
        digest = record_hash(prev, name, row)
        updates.append({"_id": row["id"], "_prev": prev, "_hash": digest})
        prev = digest
    conn.execute(update(table).where(table.c.id == bindparam("_id"))
                 .values(prev_hash=bindparam("_prev"), record_hash=bindparam("_hash")), updates)
    conn.execute(update(H).where(H.c.name == name).values(last_id=rows[-1]["id"], last_hash=prev))


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainBreak:
    table: str
    record_id: int
    reason: str


def verify_chain(conn: Connection, table: Table) -> tuple[int, ChainBreak | None]:
    """Recompute a chain from its start: (records checked, the first altered record or None)."""
    prev = ""
    count = 0
    for row in conn.execute(select(table).order_by(table.c.id)).mappings():
        count += 1
        if row["prev_hash"] != prev:
            return count, ChainBreak(table=table.name, record_id=row["id"],
                                     reason="does not follow the record before it (a record was removed or inserted)")
        if row["record_hash"] != record_hash(prev, table.name, row):
            return count, ChainBreak(table=table.name, record_id=row["id"], reason="its content was altered")
        prev = row["record_hash"]
    H = _table(m.ChainHead)
    head = conn.execute(select(H.c.last_hash).where(H.c.name == table.name)).scalar()
    if (head or "") != prev:
        return count, ChainBreak(table=table.name, record_id=0,
                                 reason="the newest records were removed (the chain head does not match)")
    return count, None


class _BatchWriter:
    """Turns a batch of CheckRecords into a handful of multi-row statements."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def write(self, records: Sequence[CheckRecord]) -> None:
        conn = self.conn
        V, P, C = _table(m.Version), _table(m.Page), _table(m.Check)
        page_ids = sorted({r.page_id for r in records})
        last_version: dict[int, int | None] = {}
        succeeded_before: set[int] = set()  # pages whose first success is already stored
        for pid, version_id, first_success_at in conn.execute(
                select(P.c.id, P.c.last_version_id, P.c.first_success_at).where(P.c.id.in_(page_ids))):
            last_version[pid] = version_id
            if first_success_at is not None:
                succeeded_before.add(pid)

        # blobs: every distinct content once
        blobs: dict[str, dict[str, Any]] = {}

        def blob(data: bytes, now: datetime) -> str:
            digest = sha256(data)
            if digest not in blobs:
                codec, packed = pack(data)
                blobs[digest] = dict(sha256=digest, size=len(data), codec=codec, data=packed, created_at=now)
            return digest

        # versions: the ones this batch refers to, existing or new
        keyed = [r for r in records if r.fingerprints is not None and r.version_key is not None]
        existing: dict[tuple[int, str], int] = {}
        if keyed:
            rows = conn.execute(select(V.c.id, V.c.page_id, V.c.key_hash).where(
                V.c.page_id.in_({r.page_id for r in keyed}), V.c.key_hash.in_({r.version_key for r in keyed})))
            existing = {(row.page_id, row.key_hash): row.id for row in rows}
        new_versions: dict[tuple[int, str], dict[str, Any]] = {}
        for r in keyed:
            k = (r.page_id, r.version_key or "")
            if k in existing or k in new_versions:
                continue
            fp = r.fingerprints
            assert fp is not None
            now = r.fetch.started_at
            new_versions[k] = dict(
                page_id=r.page_id, key_hash=r.version_key, first_seen_at=now, last_seen_at=now,
                content_sha=blob(r.content_blob or b"{}", now),
                raw_sha=blob(r.raw_blob, now) if r.raw_blob is not None else None,
                fp_raw=fp.raw, fp_text=fp.text, fp_main=fp.main, fp_main_dated=fp.main_dated,
                fp_main_masked=fp.main_masked, fp_links=fp.links, fp_documents=fp.documents,
                declared_at=r.declared_at)
        changes_rows: list[dict[str, Any]] = []
        evidence: list[tuple[int, bytes, datetime]] = []
        for r in records:  # evidence blobs before the inserts that refer to them
            v = r.verdict
            if v is not None and not v.flapped and v.change_class.rank <= ChangeClass.DATE_ONLY.rank:
                ev = v.evidence
                data = json.dumps({"diff": ev.diff, "links_added": ev.links_added, "links_removed": ev.links_removed,
                                   "documents_added": ev.documents_added,
                                   "documents_removed": ev.documents_removed},
                                  ensure_ascii=False, sort_keys=True).encode()
                evidence.append((id(r), data, r.fetch.started_at))
        evidence_sha = {rid: blob(data, now) for rid, data, now in evidence}
        _insert_ignore(conn, _table(m.Blob), list(blobs.values()), ["sha256"])
        if new_versions:
            inserted = conn.execute(insert(V).returning(V.c.id, V.c.page_id, V.c.key_hash),
                                    list(new_versions.values())).all()
            existing.update({(row.page_id, row.key_hash): row.id for row in inserted})
            _append_chain(conn, V, [row.id for row in inserted])

        checks_rows: list[dict[str, Any]] = []
        tallies: dict[tuple[int, str, str], int] = {}
        seen_versions: dict[int, tuple[datetime, datetime | None]] = {}
        summaries: dict[int, dict[str, Any]] = {}
        for r in records:
            f = r.fetch
            now = f.started_at
            version_id = existing.get((r.page_id, r.version_key)) if r.version_key is not None else None
            verdict = r.verdict
            counts_as_change = (verdict is not None and not verdict.flapped
                                and verdict.change_class.rank <= ChangeClass.DATE_ONLY.rank)
            if version_id is not None:
                seen_versions[version_id] = (now, r.declared_at)
                previous = last_version.get(r.page_id)
                if counts_as_change and previous is not None and previous != version_id and verdict is not None:
                    ev = verdict.evidence
                    changes_rows.append(dict(
                        page_id=r.page_id, from_version_id=previous, to_version_id=version_id,
                        window_start=r.window_start, detected_at=now, change_class=verdict.change_class.value,
                        is_real=r.is_real, added=ev.added, removed=ev.removed, edited=ev.edited,
                        evidence_sha=evidence_sha.get(id(r))))
                    tallies[(r.page_id, "change", verdict.change_class.value)] = tallies.get(
                        (r.page_id, "change", verdict.change_class.value), 0) + 1
                elif verdict is not None and verdict.flapped:
                    tallies[(r.page_id, "change", "flap")] = tallies.get((r.page_id, "change", "flap"), 0) + 1
                elif verdict is not None and verdict.change_class is ChangeClass.COSMETIC:
                    tallies[(r.page_id, "change", "cosmetic")] = tallies.get(
                        (r.page_id, "change", "cosmetic"), 0) + 1
                last_version[r.page_id] = version_id
            checks_rows.append(dict(
                page_id=r.page_id, started_at=now, duration_s=f.elapsed_s, outcome=r.outcome.value,
                http_status=f.status, bytes=f.size, content_type=f.content_type[:128],
                final_url=f.final_url if f.final_url != f.url else None, redirects=f.redirects, attempts=f.attempts,
                quality=r.quality.value if r.quality else None,
                change_class=verdict.change_class.value if verdict else None, version_id=version_id,
                fp_raw=r.fingerprints.raw if r.fingerprints else None, last_modified=f.last_modified,
                error=f.error[:2000], worker=r.worker))
            for key in ((r.page_id, "outcome", r.outcome.value), (r.page_id, "duration", duration_bucket(f.elapsed_s))):
                tallies[key] = tallies.get(key, 0) + 1
            ms_key = (r.page_id, "duration_ms", "sum")
            tallies[ms_key] = tallies.get(ms_key, 0) + round(f.elapsed_s * 1000)
            self._summarise(summaries.setdefault(r.page_id, {}), r, version_id, counts_as_change)

        if changes_rows:
            CH = _table(m.Change)
            inserted_ids = conn.execute(insert(CH).returning(CH.c.id), changes_rows).scalars().all()
            _append_chain(conn, CH, list(inserted_ids))
        conn.execute(insert(C), checks_rows)
        # one executemany per shape of update, not one statement per page
        seen_rows: dict[bool, list[dict[str, Any]]] = {}
        for vid, (seen, declared) in seen_versions.items():
            seen_rows.setdefault(declared is not None, []).append({"_id": vid, "_seen": seen, "_declared": declared})
        for with_declared, batch in seen_rows.items():
            seen_sets: dict[str, Any] = {"last_seen_at": bindparam("_seen")}
            if with_declared:
                seen_sets["declared_at"] = bindparam("_declared")
            conn.execute(update(V).where(V.c.id == bindparam("_id")).values(**seen_sets), batch)
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        first_successes: list[dict[str, Any]] = []
        for pid, values in summaries.items():
            first_success = values.pop("_first_success", None)
            if first_success is not None and pid not in succeeded_before:
                first_successes.append({"_id": pid, "_first": first_success})
            shapes.setdefault(tuple(sorted(values)), []).append({"_id": pid, **{f"_{k}": v for k, v in values.items()}})
        for shape, batch in shapes.items():
            sets: dict[str, Any] = {k: bindparam(f"_{k}") for k in shape if k != "_failures"}
            if "_failures" in shape:
                sets["consecutive_failures"] = P.c.consecutive_failures + bindparam("__failures")
            conn.execute(update(P).where(P.c.id == bindparam("_id")).values(**sets), batch)
        if first_successes:
            conn.execute(update(P).where(P.c.id == bindparam("_id"), P.c.first_success_at.is_(None))
                         .values(first_success_at=bindparam("_first")), first_successes)
        self._tallies(tallies)

    @staticmethod
    def _summarise(values: dict[str, Any], r: CheckRecord, version_id: int | None, changed: bool) -> None:
        """Fold one check into its page's summary row (the batch's checks of a page arrive in order)."""
        f = r.fetch
        now = f.started_at
        values.update(last_check_at=now, last_outcome=r.outcome.value, last_status=f.status,
                      last_duration_s=f.elapsed_s)
        if f.tls_expires_at is not None:
            values["tls_expires_at"] = f.tls_expires_at
        if r.outcome.success:
            values.update(last_success_at=now, consecutive_failures=0)
            values.pop("_failures", None)
            values.setdefault("_first_success", now)
            if r.full_fetch:
                values.update(last_full_fetch_at=now, etag=f.etag, last_modified=f.last_modified, last_bytes=f.size)
            if version_id is not None:
                values["last_version_id"] = version_id
            if changed:
                values["last_change_at"] = now
                if r.is_real:
                    values["last_real_change_at"] = now
        elif "consecutive_failures" in values:
            values["consecutive_failures"] += 1
        else:
            values["_failures"] = values.get("_failures", 0) + 1

    def _tallies(self, tallies: dict[tuple[int, str, str], int]) -> None:
        if not tallies:
            return
        T = _table(m.Tally)
        rows = [dict(page_id=p, family=fam, key=k, count=n) for (p, fam, k), n in sorted(tallies.items())]
        ins = pg_insert(T) if self.conn.dialect.name == "postgresql" else sqlite_insert(T)
        self.conn.execute(ins.on_conflict_do_update(index_elements=["page_id", "family", "key"],
                                                    set_={"count": T.c.count + ins.excluded.count}), rows)


class Store:
    """The monitor's database: catalogue, checks, versions, changes, counters, heartbeats."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, auto_upgrade: bool | None = None) -> Store:
        engine = make_engine(url)
        ensure_current(engine, auto_upgrade=is_sqlite(engine) if auto_upgrade is None else auto_upgrade)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    # --- catalogue ------------------------------------------------------------------------------

    def sync_catalogue(self, catalogue: Catalogue, now: datetime) -> dict[str, int]:
        """Mirror targets.toml into the database; removed services and pages are retired, never deleted.

        Returns the page id of every active page, by PageConfig.key.
        """
        page_ids: dict[str, int] = {}
        with Session(self.engine) as s, s.begin():
            services = {row.id: row for row in s.scalars(select(m.Service))}
            active_ids = set()
            for svc in catalogue.services:
                active_ids.add(svc.id)
                row = services.get(svc.id)
                values = dict(name=svc.name, department=svc.department, department_id=svc.department_id,
                              regulation=svc.regulation.value, suspended=svc.suspended,
                              responsible=svc.responsible, contact=svc.contact, working_days=svc.working_days,
                              real_update_classes=",".join(sorted(c.value for c in svc.real_update_classes)))
                if row is None:
                    s.add(m.Service(id=svc.id, created_at=now, updated_at=now, retired_at=None, **values))
                else:
                    changed = any(getattr(row, k) != v for k, v in values.items()) or row.retired_at
                    for k, v in values.items():
                        setattr(row, k, v)
                    row.retired_at = None
                    if changed:
                        row.updated_at = now
            for sid, row in services.items():
                if sid not in active_ids and row.retired_at is None:
                    row.retired_at = now
            s.flush()

            pages = {(p.service_id, p.url): p for p in s.scalars(select(m.Page))}
            seen = set()
            for svc in catalogue.services:
                for page in svc.pages:
                    key = (svc.id, page.url)
                    seen.add(key)
                    options = json.dumps({"content": page.content, "exclude": list(page.exclude),
                                          "headers": dict(page.header_templates),
                                          "allow_private": page.allow_private}, sort_keys=True)
                    interval = page.interval_s or default_interval_s(svc.regulation)
                    prow = pages.get(key)
                    if prow is None:
                        prow = m.Page(service_id=svc.id, url=page.url, position=page.position,
                                      kind=page.kind.value, name=page.name, interval_s=interval,
                                      options=options, created_at=now, consecutive_failures=0)
                        s.add(prow)
                    else:
                        prow.position, prow.kind, prow.name = page.position, page.kind.value, page.name
                        prow.interval_s, prow.options, prow.retired_at = interval, options, None
                    s.flush()
                    page_ids[page.key] = prow.id
            for key, prow in pages.items():
                if key not in seen and prow.retired_at is None:
                    prow.retired_at = now
        return page_ids

    # --- state for the pipeline -----------------------------------------------------------------

    def page_states(self, page_ids: Iterable[int], *, recent: int = 5) -> dict[int, PageState]:
        """The last check, validators and the `recent` newest versions of each page."""
        ids = list(page_ids)
        if not ids:
            return {}
        out: dict[int, PageState] = {}
        with Session(self.engine) as s:
            pages = {p.id: p for p in s.scalars(select(m.Page).where(m.Page.id.in_(ids)))}
            # the newest versions per page: by last_seen_at (a flap back makes an old version current)
            ranked = (
                select(m.Version, func.row_number().over(
                    partition_by=m.Version.page_id,
                    order_by=(m.Version.last_seen_at.desc(), m.Version.id.desc())).label("rn"))
                .where(m.Version.page_id.in_(ids))
                .subquery()
            )
            va = select(m.Version).join(ranked, m.Version.id == ranked.c.id).where(ranked.c.rn <= recent)
            versions: dict[int, list[m.Version]] = {}
            for v in s.scalars(va):
                versions.setdefault(v.page_id, []).append(v)
            for pid in ids:
                p = pages.get(pid)
                if p is None:
                    continue
                vs = sorted(versions.get(pid, []), key=lambda v: (v.last_seen_at, v.id))
                out[pid] = PageState(
                    page_id=pid,
                    last_check_at=p.last_check_at,
                    last_success_at=p.last_success_at,
                    last_full_fetch_at=p.last_full_fetch_at,
                    validators=Validators(etag=p.etag, last_modified=p.last_modified),
                    last_size=p.last_bytes,
                    recent=tuple(VersionRef(key_hash=v.key_hash, fingerprints=_fingerprints(v), version_id=v.id)
                                 for v in vs),
                )
        return out

    def current_contents(self, service_id: str) -> list[tuple[str, bytes]]:
        """(url, serialised Content) of the current version of each active page of a service."""
        return [(url, blob) for url, sha in self.current_content_shas(service_id)
                if (blob := self.blob(sha)) is not None]

    def current_content_shas(self, service_id: str) -> list[tuple[str, str]]:
        """(url, content address) of the current version of each active page of a service: cheap to ask, so a
        reader can keep what it derived from a content until the address changes."""
        q = (select(m.Page.url, m.Version.content_sha).join(m.Version, m.Version.id == m.Page.last_version_id)
             .where(m.Page.service_id == service_id, m.Page.retired_at.is_(None)).order_by(m.Page.position))
        with Session(self.engine) as s:
            return [(url, sha) for url, sha in s.execute(q)]

    def version_content(self, page_id: int, key_hash: str) -> bytes | None:
        """The serialised Content of a stored version (for diffs)."""
        with Session(self.engine) as s:
            row = s.execute(
                select(m.Blob.codec, m.Blob.data)
                .join(m.Version, m.Version.content_sha == m.Blob.sha256)
                .where(m.Version.page_id == page_id, m.Version.key_hash == key_hash)
            ).first()
            return unpack(row.codec, row.data) if row else None

    def blob(self, sha: str) -> bytes | None:
        with Session(self.engine) as s:
            row = s.get(m.Blob, sha)
            return unpack(row.codec, row.data) if row else None

    # --- writing checks -------------------------------------------------------------------------

    def write(self, records: Sequence[CheckRecord]) -> None:
        """Write a batch of checks (blobs, versions, changes, summaries, counters) in one transaction.

        Statements are batched per table (executemany), so the cost per check is a few rows, not a few
        round trips; records of one page are applied in order.
        """
        if not records:
            return
        with translate("cannot write checks"), self.engine.begin() as conn:
            _BatchWriter(conn).write(records)

    def add_noise_rules(self, page_id: int, rules: Iterable[tuple[str, str]], *, source: str,
                        now: datetime) -> list[str]:
        """Store learned rules (path, evidence) that the page does not have yet in any status; returns the
        paths added. A rule an operator dropped is never learned again."""
        added = []
        with translate("cannot store noise rules"), Session(self.engine) as s, s.begin():
            have = set(s.scalars(select(m.NoiseRule.path).where(m.NoiseRule.page_id == page_id)))
            for path, evidence in rules:
                if path in have:
                    continue
                s.add(m.NoiseRule(page_id=page_id, path=path, source=source, status="active",
                                  evidence=evidence[:2000], hits=0, created_at=now, updated_at=now))
                have.add(path)
                added.append(path)
        return added

    def noise_rules(self, service_id: str | None = None) -> list[NoiseRuleRow]:
        with Session(self.engine) as s:
            q = (select(m.NoiseRule, m.Page.service_id, m.Page.position, m.Page.url)
                 .join(m.Page, m.Page.id == m.NoiseRule.page_id).order_by(m.NoiseRule.id))
            if service_id:
                q = q.where(m.Page.service_id == service_id)
            return [NoiseRuleRow(id=r.id, service_id=sid, page=pos, url=url, path=r.path, source=r.source,
                                 status=r.status, evidence=r.evidence, created_at=r.created_at)
                    for r, sid, pos, url in s.execute(q)]

    def set_noise_status(self, rule_id: int, status: str, now: datetime) -> bool:
        with translate("cannot change a noise rule"), Session(self.engine) as s, s.begin():
            rule = s.get(m.NoiseRule, rule_id)
            if rule is None:
                return False
            rule.status, rule.updated_at = status, now
            return True

    def calibrated(self, page_ids: Iterable[int]) -> dict[int, datetime | None]:
        ids = list(page_ids)
        with Session(self.engine) as s:
            return {pid: at for pid, at in s.execute(select(m.Page.id, m.Page.calibrated_at).where(m.Page.id.in_(ids)))}

    def mark_calibrated(self, page_id: int, now: datetime) -> None:
        with translate("cannot record a calibration"), Session(self.engine) as s, s.begin():
            s.execute(update(m.Page).where(m.Page.id == page_id).values(calibrated_at=now))

    def recent_contents(self, page_id: int, limit: int) -> list[bytes]:
        """The serialised Content of the page's `limit` newest versions, oldest first."""
        with Session(self.engine) as s:
            rows = s.execute(select(m.Blob.codec, m.Blob.data).join(m.Version, m.Version.content_sha == m.Blob.sha256)
                             .where(m.Version.page_id == page_id)
                             .order_by(m.Version.first_seen_at.desc(), m.Version.id.desc()).limit(limit)).all()
        return [unpack(codec, data) for codec, data in reversed(rows)]

    # --- self-reports and the audit -------------------------------------------------------------

    def add_reports(self, rows: Iterable[Any], now: datetime) -> int:
        """Store parsed self-reports (monitor.reports.ReportRow); a row already imported is skipped."""
        R = _table(m.SelfReport)
        values = [dict(row_hash=r.row_hash, service_id=r.service_id, submitted_at=r.submitted_at,
                       reported_for=r.reported_for, what=r.what, who=r.who, email=r.email, link=r.link,
                       service_text=r.service_text, source=r.source, imported_at=now) for r in rows]
        if not values:
            return 0
        with translate("cannot store self-reports"), self.engine.begin() as conn:
            before = conn.execute(select(func.count()).select_from(R)).scalar() or 0
            _insert_ignore(conn, R, values, ["row_hash"])
            after = conn.execute(select(func.count()).select_from(R)).scalar() or 0
        return int(after - before)

    def reports(self, *, service_id: str | None = None, since: datetime | None = None,
                until: datetime | None = None) -> list[ReportEntry]:
        R = m.SelfReport
        q = select(R).order_by(R.reported_for, R.id)
        if service_id:
            q = q.where(R.service_id == service_id)
        if since:
            q = q.where(R.reported_for >= since)
        if until:
            q = q.where(R.reported_for < until)
        with Session(self.engine) as s:
            return [ReportEntry(id=r.id, service_id=r.service_id, submitted_at=r.submitted_at,
                                reported_for=r.reported_for, what=r.what, who=r.who, link=r.link, source=r.source)
                    for r in s.scalars(q)]

    def last_reports(self) -> dict[str, datetime]:
        """The newest self-report per service (submission time)."""
        R = m.SelfReport
        with Session(self.engine) as s:
            return {sid: _utc(t) for sid, t in s.execute(select(R.service_id, func.max(R.submitted_at))  # type: ignore[misc]
                                                         .group_by(R.service_id))}

    def change_events(self, service_id: str, since: datetime, until: datetime) -> list[ChangeEvent]:
        """Change events of a service from date_only up, detected in [since, until)."""
        classes = [c.value for c in ChangeClass if c.rank <= ChangeClass.DATE_ONLY.rank]
        q = (select(m.Change, m.Page.url).join(m.Page, m.Page.id == m.Change.page_id)
             .where(m.Page.service_id == service_id, m.Change.change_class.in_(classes),
                    m.Change.detected_at >= since, m.Change.detected_at < until)
             .order_by(m.Change.detected_at, m.Change.id))
        with Session(self.engine) as s:
            return [ChangeEvent(id=c.id, url=url, change_class=c.change_class, is_real=c.is_real,
                                window_start=c.window_start, detected_at=c.detected_at, added=c.added,
                                removed=c.removed, edited=c.edited) for c, url in s.execute(q)]

    def success_times(self, service_id: str, since: datetime, until: datetime) -> list[datetime]:
        """When the service's pages were checked successfully (for the audit's coverage). Days whose check
        rows were pruned contribute their summary: that day's successes spread between its first and last."""
        C, P, D = m.Check, m.Page, m.CoverageDay
        q = (select(C.started_at).join(P, P.id == C.page_id)
             .where(P.service_id == service_id, P.retired_at.is_(None), C.outcome.in_(SUCCESS),
                    C.started_at >= since, C.started_at < until).order_by(C.started_at))
        days = (select(D.successes, D.first_success_at, D.last_success_at).join(P, P.id == D.page_id)
                .where(P.service_id == service_id, P.retired_at.is_(None), D.successes > 0,
                       D.day >= since.astimezone(UTC).strftime("%Y-%m-%d"),
                       D.day <= until.astimezone(UTC).strftime("%Y-%m-%d")))
        with Session(self.engine) as s:
            times = list(s.scalars(q))
            for n, first, last in s.execute(days):
                if first is None or last is None:
                    continue
                step = (last - first) / max(1, n - 1)
                times.extend(t for t in (first + step * i for i in range(n)) if since <= t < until)
        return sorted(times)

    def prune(self, *, checks_before: datetime, raw_before: datetime, slow_s: float = 10.0) -> dict[str, int]:
        """Bounded growth. Check rows older than `checks_before` are summarised per page and day
        (coverage_days) and removed, and so are older link checks; raw captures of versions not seen since
        `raw_before` are dropped (the current version of each page keeps its own). Versions, change events,
        their evidence and the counters are kept for ever."""
        C, V, B, P, D, CH = (_table(m.Check), _table(m.Version), _table(m.Blob), _table(m.Page),
                             _table(m.CoverageDay), _table(m.Change))
        report = {"checks_summarised": 0, "days_summarised": 0, "raw_captures_dropped": 0, "blobs_deleted": 0,
                  "link_checks_deleted": 0}
        with translate("cannot prune"), self.engine.begin() as conn:
            summary: dict[tuple[int, str], dict[str, Any]] = {}
            q = select(C.c.page_id, C.c.started_at, C.c.outcome, C.c.duration_s).where(C.c.started_at < checks_before)
            for pid, started, outcome, duration in conn.execute(q):
                started = _utc(started)
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
                          "first_success_at": min(filter(None, (d["first"], _utc(old["first_success_at"]) if old
                                                                else None)), default=None),
                          "last_success_at": max(filter(None, (d["last"], _utc(old["last_success_at"]) if old
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
            LC = _table(m.LinkCheck)
            report["link_checks_deleted"] = conn.execute(LC.delete().where(LC.c.checked_at < checks_before)).rowcount
        return report

    def add_link_checks(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            with translate("cannot write link checks"), self.engine.begin() as conn:
                conn.execute(insert(_table(m.LinkCheck)), list(rows))

    def last_link_checks(self) -> dict[int, datetime]:
        L = m.LinkCheck
        with Session(self.engine) as s:
            return {pid: cast(datetime, _utc(at)) for pid, at in
                    s.execute(select(L.page_id, func.max(L.checked_at)).group_by(L.page_id))}

    def link_checks(self, since: datetime, until: datetime) -> list[tuple[str, str, str, datetime, str, int | None,
                                                                          str]]:
        """(service id, page url, link, checked at, outcome, status, error) of the links checked in the range."""
        L, P = m.LinkCheck, m.Page
        q = (select(P.service_id, P.url, L.url, L.checked_at, L.outcome, L.status, L.error)
             .join(P, P.id == L.page_id).where(L.checked_at >= since, L.checked_at < until)
             .order_by(P.service_id, L.url, L.checked_at))
        with Session(self.engine) as s:
            return [(sid, page, url, cast(datetime, _utc(at)), outcome, status, error)
                    for sid, page, url, at, outcome, status, error in s.execute(q)]

    def check_rows(self, since: datetime, until: datetime) -> Iterator[tuple[Any, ...]]:
        """(service id, url, started at, duration, outcome, status, quality, error) of the checks of current
        pages in the range, by page and time (streamed)."""
        C, P = m.Check, m.Page
        q = (select(P.service_id, P.url, C.started_at, C.duration_s, C.outcome, C.http_status, C.quality, C.error)
             .join(P, P.id == C.page_id).where(P.retired_at.is_(None), C.started_at >= since, C.started_at < until)
             .order_by(C.page_id, C.started_at).execution_options(yield_per=5000))
        with Session(self.engine) as s:
            for row in s.execute(q):
                yield tuple(row)

    def coverage_rows(self, since: datetime, until: datetime) -> list[tuple[Any, ...]]:
        """(service id, url, day, checks, successes, failures, slow) of the pruned days in the range."""
        D, P = m.CoverageDay, m.Page
        q = (select(P.service_id, P.url, D.day, D.checks, D.successes, D.failures, D.slow)
             .join(P, P.id == D.page_id)
             .where(P.retired_at.is_(None), D.day >= since.astimezone(UTC).strftime("%Y-%m-%d"),
                    D.day < until.astimezone(UTC).strftime("%Y-%m-%d")).order_by(D.page_id, D.day))
        with Session(self.engine) as s:
            return [tuple(r) for r in s.execute(q)]

    def size_bytes(self) -> int | None:
        """The database's size on disk (SQLite file pages; PostgreSQL database size)."""
        with self.engine.connect() as conn:
            if self.engine.dialect.name == "sqlite":
                pages = conn.execute(text("pragma page_count")).scalar() or 0
                size = conn.execute(text("pragma page_size")).scalar() or 0
                return int(pages) * int(size)
            return int(conn.execute(text("select pg_database_size(current_database())")).scalar() or 0)

    def vacuum(self) -> None:
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM"))

    def declared_dates(self, service_id: str, since: datetime, until: datetime) -> list[datetime]:
        V, P = m.Version, m.Page
        q = (select(V.declared_at).join(P, P.id == V.page_id)
             .where(P.service_id == service_id, V.declared_at.is_not(None), V.declared_at >= since,
                    V.declared_at < until).order_by(V.declared_at))
        with Session(self.engine) as s:
            return [d for d in s.scalars(q) if d is not None]

    def verify(self) -> tuple[dict[str, int], list[ChainBreak]]:
        """Check the hash chains of versions and change events: records checked, and breaks found."""
        counts, breaks = {}, []
        with self.engine.connect() as conn:
            for model in (m.Version, m.Change):
                n, broken = verify_chain(conn, _table(model))
                counts[_table(model).name] = n
                if broken is not None:
                    breaks.append(broken)
        return counts, breaks

    def noise_paths(self, page_ids: Iterable[int]) -> dict[int, list[str]]:
        """Active or confirmed noise rules: block paths masked in the fingerprints."""
        ids = list(page_ids)
        out: dict[int, list[str]] = {}
        if not ids:
            return out
        with Session(self.engine) as s:
            for rule in s.scalars(select(m.NoiseRule).where(m.NoiseRule.page_id.in_(ids),
                                                            m.NoiseRule.status.in_(("active", "confirmed")))):
                out.setdefault(rule.page_id, []).append(rule.path)
        return out

    # --- heartbeat ------------------------------------------------------------------------------

    def heartbeat(self, *, worker: str, hostname: str, pid: int, started_at: datetime, now: datetime,
                  last_round_at: datetime | None, schedule_lag_s: float, checks_done: int,
                  stopped: bool = False) -> None:
        with translate("cannot record the heartbeat"), Session(self.engine) as s, s.begin():
            row = s.get(m.Worker, worker)
            if row is None:
                row = m.Worker(id=worker, hostname=hostname, pid=pid, started_at=started_at, heartbeat_at=now)
                s.add(row)
            row.heartbeat_at, row.last_round_at = now, last_round_at
            row.schedule_lag_s, row.checks_done = schedule_lag_s, checks_done
            row.stopped_at = now if stopped else None

    def workers(self) -> list[m.Worker]:
        with Session(self.engine) as s:
            rows = list(s.scalars(select(m.Worker).order_by(m.Worker.heartbeat_at.desc())))
            s.expunge_all()
            return rows

    # --- queries for status, history and metrics ------------------------------------------------

    def services(self, *, include_retired: bool = False) -> list[m.Service]:
        with Session(self.engine) as s:
            q = select(m.Service).order_by(m.Service.id)
            if not include_retired:
                q = q.where(m.Service.retired_at.is_(None))
            rows = list(s.scalars(q))
            s.expunge_all()
            return rows

    def service_aggregates(self) -> dict[str, ServiceAggregate]:
        """Per active service: page counts and the latest times, aggregated in SQL."""
        P = m.Page
        failing = func.sum(case((P.last_outcome.is_not(None) & P.last_outcome.not_in(SUCCESS), 1), else_=0))
        q = (select(P.service_id, func.count(), func.count(P.last_check_at), failing, func.max(P.last_check_at),
                    func.max(P.last_success_at), func.max(P.last_real_change_at), func.max(P.last_change_at),
                    func.min(P.first_success_at))
             .where(P.retired_at.is_(None)).group_by(P.service_id))
        with Session(self.engine) as s:
            out = {}
            for row in s.execute(q):
                sid, n, checked, bad, lc, ls, lr, lch, fs = row
                out[sid] = ServiceAggregate(service_id=sid, pages=n, checked=checked, failing=int(bad or 0),
                                            last_check_at=_utc(lc), last_success_at=_utc(ls),
                                            last_real_change_at=_utc(lr), last_change_at=_utc(lch),
                                            first_success_at=_utc(fs))
            return out

    def page_metrics(self) -> list[tuple[Any, ...]]:
        """Per active page, for the exporter: (service_id, position, url, interval_s, last_outcome, last_status,
        last_duration_s, last_check_epoch, tls_expiry_epoch); times as Unix seconds computed in SQL."""
        P = _table(m.Page)
        epoch = _epoch_sqlite if self.engine.dialect.name == "sqlite" else _epoch_pg
        q = (select(P.c.service_id, P.c.position, P.c.url, P.c.interval_s, P.c.last_outcome, P.c.last_status,
                    P.c.last_duration_s, epoch(P.c.last_check_at), epoch(P.c.tls_expires_at))
             .where(P.c.retired_at.is_(None)).order_by(P.c.service_id, P.c.position))
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(q)]

    def pages(self, *, include_retired: bool = False) -> list[PageRow]:
        P = _table(m.Page)
        cols = [P.c.id, P.c.service_id, P.c.position, P.c.url, P.c.kind, P.c.interval_s, P.c.last_check_at,
                P.c.last_success_at, P.c.last_outcome, P.c.last_status, P.c.last_duration_s, P.c.first_success_at,
                P.c.last_change_at, P.c.last_real_change_at, P.c.tls_expires_at, P.c.consecutive_failures]
        q = select(*cols).order_by(P.c.service_id, P.c.position)
        if not include_retired:
            q = q.where(P.c.retired_at.is_(None))
        with self.engine.connect() as conn:
            return [PageRow(page_id=r[0], service_id=r[1], position=r[2], url=r[3], kind=r[4], interval_s=r[5],
                            last_check_at=r[6], last_success_at=r[7], last_outcome=r[8], last_status=r[9],
                            last_duration_s=r[10], first_success_at=r[11], last_change_at=r[12],
                            last_real_change_at=r[13], tls_expires_at=r[14], consecutive_failures=r[15])
                    for r in conn.execute(q)]

    def changes(self, *, service_id: str | None = None, since: datetime | None = None,
                until: datetime | None = None, limit: int | None = None,
                min_class: ChangeClass = ChangeClass.DATE_ONLY) -> list[ChangeRow]:
        classes = [c.value for c in ChangeClass if c.rank <= min_class.rank]
        with Session(self.engine) as s:
            q = (select(m.Change, m.Page.service_id, m.Page.url).join(m.Page, m.Page.id == m.Change.page_id)
                 .where(m.Change.change_class.in_(classes)).order_by(m.Change.detected_at.desc(), m.Change.id.desc()))
            if service_id:
                q = q.where(m.Page.service_id == service_id)
            if since:
                q = q.where(m.Change.detected_at >= since)
            if until:
                q = q.where(m.Change.detected_at < until)
            if limit:
                q = q.limit(limit)
            return [ChangeRow(id=c.id, service_id=sid, page_id=c.page_id, url=url, change_class=c.change_class,
                              is_real=c.is_real, window_start=c.window_start, detected_at=c.detected_at,
                              added=c.added, removed=c.removed, edited=c.edited)
                    for c, sid, url in s.execute(q)]

    def change(self, change_id: int) -> ChangeRow | None:
        with Session(self.engine) as s:
            row = s.execute(select(m.Change, m.Page.service_id, m.Page.url)
                            .join(m.Page, m.Page.id == m.Change.page_id).where(m.Change.id == change_id)).first()
            if row is None:
                return None
            c, sid, url = row
            evidence = None
            if c.evidence_sha:
                blob = s.get(m.Blob, c.evidence_sha)
                if blob is not None:
                    evidence = json.loads(unpack(blob.codec, blob.data))
            return ChangeRow(id=c.id, service_id=sid, page_id=c.page_id, url=url, change_class=c.change_class,
                             is_real=c.is_real, window_start=c.window_start, detected_at=c.detected_at,
                             added=c.added, removed=c.removed, edited=c.edited, evidence=evidence)

    def tallies_by_service(self) -> list[tuple[str, str, str, int]]:
        """Counters summed per service (SQL aggregate): (service_id, family, key, count)."""
        q = (select(m.Page.service_id, m.Tally.family, m.Tally.key, func.sum(m.Tally.count))
             .join(m.Page, m.Page.id == m.Tally.page_id)
             .group_by(m.Page.service_id, m.Tally.family, m.Tally.key))
        with Session(self.engine) as s:
            return [(sid, fam, key, int(n or 0)) for sid, fam, key, n in s.execute(q)]

    def tallies(self) -> list[tuple[int, str, str, int]]:
        with Session(self.engine) as s:
            return [(t.page_id, t.family, t.key, t.count) for t in s.scalars(select(m.Tally))]

    def recent_checks(self, page_id: int, limit: int = 20) -> list[m.Check]:
        with Session(self.engine) as s:
            rows = list(s.scalars(select(m.Check).where(m.Check.page_id == page_id)
                                  .order_by(m.Check.started_at.desc()).limit(limit)))
            s.expunge_all()
            return rows

    def count(self, table: str) -> int:
        model = {"checks": m.Check, "versions": m.Version, "changes": m.Change, "blobs": m.Blob,
                 "pages": m.Page, "services": m.Service, "coverage_days": m.CoverageDay,
                 "link_checks": m.LinkCheck}[table]
        with Session(self.engine) as s:
            return int(s.scalar(select(func.count()).select_from(model)) or 0)


__all__ = ["DURATION_BUCKETS", "ChainBreak", "ChangeRow", "NoiseRuleRow", "PageRow", "ServiceAggregate", "Store",
           "pack", "sha256", "unpack"]
