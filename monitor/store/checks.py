"""The check writer (CheckStore): records what the core decided, in batches, and hands the core each page's
state — now, or as it was at a past time for a capture that arrives late.

The writer decides nothing: a change row is written for every record the core marked as a change, from
the version it was judged against (`previous_key`) to its own. The page summaries only move forward: a
record older than the page's last check (an archived capture) never overwrites its current state.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, case, func, insert, or_, select, update
from sqlalchemy.orm import Session

from monitor.domain import (
    ChangeClass,
    CheckRecord,
    Fingerprints,
    PageState,
    Successor,
    Validators,
    Verdict,
    VersionRef,
    redact_text,
    redact_url,
)
from monitor.ports import duration_bucket
from monitor.store import chain
from monitor.store import models as m
from monitor.store.common import (
    CHANGE_CLASSES,
    SUCCESS,
    current_change,
    insert_ignore,
    pack,
    sha256,
    table,
    translate,
    unpack,
    upsert,
    utc,
)


def _fingerprints(v: Any) -> Fingerprints:
    return Fingerprints(raw=v.fp_raw, text=v.fp_text, main=v.fp_main, main_dated=v.fp_main_dated,
                        main_masked=v.fp_main_masked, links=v.fp_links, documents=v.fp_documents)


def _later(column: Any, value: Any) -> Any:
    """`column` moved forward to `value`, never back (a late record must not undo a newer one)."""
    return case((column.is_(None) | (column < value), value), else_=column)


def _uncounted(page_id: int, family: str, key: str, n: int = 1) -> None:
    """The counters are of the monitor's own checks."""


class _Batch:
    """Turns a batch of CheckRecords into a handful of multi-row statements."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.blobs: dict[str, dict[str, Any]] = {}
        self.tallies: dict[tuple[int, str, str], int] = {}

    def blob(self, data: bytes, now: datetime) -> str:
        digest = sha256(data)
        if digest not in self.blobs:
            codec, packed = pack(data)
            self.blobs[digest] = dict(sha256=digest, size=len(data), codec=codec, data=packed, created_at=now)
        return digest

    def count(self, page_id: int, family: str, key: str, n: int = 1) -> None:
        self.tallies[(page_id, family, key)] = self.tallies.get((page_id, family, key), 0) + n

    def write(self, records: Sequence[CheckRecord]) -> None:
        conn = self.conn
        V, P, C, CH = table(m.Version), table(m.Page), table(m.Check), table(m.Change)
        last_check: dict[int, datetime | None] = {}
        first_stored: dict[int, datetime | None] = {}
        for pid, checked_at, first_at in conn.execute(select(P.c.id, P.c.last_check_at, P.c.first_success_at)
                                                      .where(P.c.id.in_({r.page_id for r in records}))):
            last_check[pid], first_stored[pid] = utc(checked_at), utc(first_at)

        # versions: the ones this batch refers to (its own and those it was judged against), existing or new
        wanted = {(r.page_id, key) for r in records for key in (r.version_key, r.previous_key, *(
            (r.revision.from_key, r.revision.to_key) if r.revision else ())) if key is not None}
        ids: dict[tuple[int, str], int] = {}
        if wanted:  # two IN lists use the (page_id, key_hash) index on both databases; the pairs are kept
            rows = conn.execute(select(V.c.id, V.c.page_id, V.c.key_hash).where(
                V.c.page_id.in_({pid for pid, _ in wanted}), V.c.key_hash.in_({key for _, key in wanted})))
            ids = {(row.page_id, row.key_hash): row.id for row in rows if (row.page_id, row.key_hash) in wanted}
        new_versions: dict[tuple[int, str], dict[str, Any]] = {}
        for r in records:
            fp, key = r.fingerprints, r.version_key
            if fp is None or key is None or (r.page_id, key) in ids or (r.page_id, key) in new_versions:
                continue
            now = r.fetch.started_at
            new_versions[(r.page_id, key)] = dict(
                page_id=r.page_id, key_hash=key, first_seen_at=now, last_seen_at=now,
                content_sha=self.blob(r.content_blob or b"{}", now),
                raw_sha=self.blob(r.raw_blob, now) if r.raw_blob is not None else None,
                fp_raw=fp.raw, fp_text=fp.text, fp_main=fp.main, fp_main_dated=fp.main_dated,
                fp_main_masked=fp.main_masked, fp_links=fp.links, fp_documents=fp.documents,
                declared_at=r.declared_at)
        evidence_sha = {id(v): self.blob(_evidence(v), r.fetch.started_at) for r in records
                        for v in (r.verdict if r.is_change else None, r.revision and r.revision.verdict) if v}
        # in a fixed order (blobs by address, pages and versions by id): writers side by side never deadlock
        insert_ignore(conn, table(m.Blob), [self.blobs[k] for k in sorted(self.blobs)], ["sha256"])
        if new_versions:
            inserted = conn.execute(insert(V).returning(V.c.id, V.c.page_id, V.c.key_hash),
                                    list(new_versions.values())).all()
            ids.update({(row.page_id, row.key_hash): row.id for row in inserted})
            chain.append(conn, V, [row.id for row in inserted])

        checks_rows: list[dict[str, Any]] = []
        changes_rows: list[dict[str, Any]] = []
        change_times: list[dict[str, Any]] = []
        sightings: dict[int, tuple[datetime, datetime | None]] = {}
        first_success: dict[int, datetime] = {}
        summaries: dict[int, dict[str, Any]] = {}
        revised: set[int] = set()  # pages whose recorded changes a late capture corrected
        for r in records:
            f, now, pid = r.fetch, r.fetch.started_at, r.page_id
            count = self.count if not f.source else _uncounted  # archive captures are no checks of ours
            version_id = ids.get((pid, r.version_key)) if r.version_key is not None else None
            verdict = r.verdict
            if version_id is not None:
                if version_id not in sightings or sightings[version_id][0] <= now:
                    sightings[version_id] = (now, r.declared_at)
                if r.is_change and verdict is not None:
                    ev = verdict.evidence
                    changes_rows.append(dict(
                        page_id=pid, from_version_id=ids.get((pid, r.previous_key or "")), to_version_id=version_id,
                        window_start=r.window_start, detected_at=now, change_class=verdict.change_class.value,
                        is_real=r.is_real, added=ev.added, removed=ev.removed, edited=ev.edited,
                        evidence_sha=evidence_sha[id(verdict)], supersedes=None))
                    change_times.append({"_id": pid, "_at": now, "_real": now if r.is_real else None})
                    count(pid, "change", verdict.change_class.value)
                elif verdict is not None and verdict.flapped:
                    count(pid, "change", "flap")
                elif verdict is not None and verdict.change_class is ChangeClass.COSMETIC:
                    count(pid, "change", "cosmetic")
            if r.revision is not None:  # a correction of the change recorded at the successor
                rv = r.revision
                ev = rv.verdict.evidence
                changes_rows.append(dict(
                    page_id=pid, from_version_id=ids.get((pid, rv.from_key)), to_version_id=ids[(pid, rv.to_key)],
                    window_start=rv.window_start, detected_at=rv.detected_at,
                    change_class=(rv.verdict.change_class if rv.verdict.is_change else ChangeClass.NONE).value,
                    is_real=rv.is_real, added=ev.added, removed=ev.removed, edited=ev.edited,
                    evidence_sha=evidence_sha.get(id(rv.verdict)), supersedes=rv.supersedes))
                revised.add(pid)
            checks_rows.append(dict(
                page_id=pid, started_at=now, duration_s=f.elapsed_s, outcome=r.outcome.value,
                http_status=f.status, bytes=f.size, content_type=f.content_type[:128],
                final_url=redact_url(f.final_url) if f.final_url != f.url else None, redirects=f.redirects,
                attempts=f.attempts,
                quality=r.quality.value if r.quality else None,
                change_class=verdict.change_class.value if verdict else None, version_id=version_id,
                fp_raw=r.fingerprints.raw if r.fingerprints else None, last_modified=f.last_modified,
                error=redact_text(f.error)[:2000], worker=r.worker, source=f.source[:200]))
            count(pid, "outcome", r.outcome.value)
            count(pid, "duration", duration_bucket(f.elapsed_s))
            count(pid, "duration_ms", "sum", round(f.elapsed_s * 1000))
            earliest = first_success.get(pid) or first_stored.get(pid)
            if r.outcome.success and (earliest is None or now < earliest):  # an UPDATE only when it moves
                first_success[pid] = now
            stored = last_check.get(pid)
            if stored is None or now >= stored:  # in time order: the page's current state moves on
                _summarise(summaries.setdefault(pid, {}), r, version_id)
                last_check[pid] = now

        if changes_rows:
            inserted_ids = conn.execute(insert(CH).returning(CH.c.id), changes_rows).scalars().all()
            chain.append(conn, CH, list(inserted_ids))
        # the archive captures recorded, kept when retention summarises their check rows: imported once, ever
        insert_ignore(conn, table(m.ArchiveCapture), [
            dict(page_id=row["page_id"], captured_at=row["started_at"], source=row["source"])
            for row in checks_rows if row["source"]], ["page_id", "captured_at"])
        self._sightings(sightings)
        self._summaries(summaries)
        if first_success:
            conn.execute(update(P).where(P.c.id == bindparam("_id"), or_(P.c.first_success_at.is_(None),
                                                                         P.c.first_success_at > bindparam("_first")))
                         .values(first_success_at=bindparam("_first")),
                         [{"_id": pid, "_first": at} for pid, at in sorted(first_success.items())])
        for key, column in (("_at", P.c.last_change_at), ("_real", P.c.last_real_change_at)):
            moves = sorted((row for row in change_times if row[key] is not None), key=lambda row: row["_id"])
            if moves:
                conn.execute(update(P).where(P.c.id == bindparam("_id"))
                             .values({column.name: _later(column, bindparam(key))}),
                             [{"_id": row["_id"], key: row[key]} for row in moves])
        if revised:
            self._latest_changes(sorted(revised))
        self._tallies()
        # last: the checks chain's head is locked from here to the commit, and every writer of the fleet waits for it
        chain.stamp(conn, "checks", checks_rows)
        conn.execute(insert(C), checks_rows)

    def _latest_changes(self, page_ids: list[int]) -> None:
        """After a correction a page's latest change may be earlier than the one it had: taken again from its
        change records that no later record supersedes."""
        P, CH = table(m.Page), table(m.Change)
        live = select(func.max(CH.c.detected_at)).where(CH.c.page_id == P.c.id, current_change(CH),
                                                        CH.c.change_class.in_(CHANGE_CLASSES))
        self.conn.execute(update(P).where(P.c.id.in_(page_ids)).values(
            last_change_at=live.scalar_subquery(), last_real_change_at=live.where(CH.c.is_real).scalar_subquery()))

    def _sightings(self, sightings: dict[int, tuple[datetime, datetime | None]]) -> None:
        """Each version's last sighting (and the date it then declared), one executemany per shape."""
        V = table(m.Version)
        shapes: dict[bool, list[dict[str, Any]]] = {}
        for vid, (seen, declared) in sorted(sightings.items()):
            shapes.setdefault(declared is not None, []).append({"_id": vid, "_seen": seen, "_declared": declared})
        for with_declared, batch in shapes.items():
            values: dict[str, Any] = {"last_seen_at": bindparam("_seen")}
            if with_declared:
                values["declared_at"] = bindparam("_declared")
            self.conn.execute(update(V).where(V.c.id == bindparam("_id"), V.c.last_seen_at <= bindparam("_seen"))
                              .values(**values), batch)

    def _summaries(self, summaries: dict[int, dict[str, Any]]) -> None:
        """The pages' summary rows, one executemany per shape of update, never moved back in time."""
        P = table(m.Page)
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for pid, values in sorted(summaries.items()):
            shapes.setdefault(tuple(sorted(values)), []).append({"_id": pid, **{f"_{k}": v for k, v in values.items()}})
        for shape, batch in shapes.items():
            sets: dict[str, Any] = {k: bindparam(f"_{k}") for k in shape if k != "_failures"}
            if "_failures" in shape:
                sets["consecutive_failures"] = P.c.consecutive_failures + bindparam("__failures")
            self.conn.execute(update(P).where(P.c.id == bindparam("_id"), or_(
                P.c.last_check_at.is_(None), P.c.last_check_at <= bindparam("_last_check_at"))).values(**sets), batch)

    def _tallies(self) -> None:
        if not self.tallies:
            return
        T = table(m.Tally)
        rows = [dict(page_id=p, family=fam, key=k, count=n) for (p, fam, k), n in sorted(self.tallies.items())]
        ins = upsert(self.conn, T)
        self.conn.execute(ins.on_conflict_do_update(index_elements=["page_id", "family", "key"],
                                                    set_={"count": T.c.count + ins.excluded.count}), rows)


def _evidence(verdict: Verdict) -> bytes:
    ev = verdict.evidence
    return json.dumps({"diff": ev.diff, "links_added": ev.links_added, "links_removed": ev.links_removed,
                       "documents_added": ev.documents_added, "documents_removed": ev.documents_removed},
                      ensure_ascii=False, sort_keys=True).encode()


def _summarise(values: dict[str, Any], r: CheckRecord, version_id: int | None) -> None:
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
        if r.full_fetch:
            values.update(last_full_fetch_at=now, etag=f.etag, last_modified=f.last_modified, last_bytes=f.size)
        if version_id is not None:
            values["last_version_id"] = version_id
    elif "consecutive_failures" in values:
        values["consecutive_failures"] += 1
    else:
        values["_failures"] = values.get("_failures", 0) + 1


class SqlChecks:
    """CheckStore over SQLAlchemy."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def write(self, records: Sequence[CheckRecord]) -> None:
        """Write a batch of checks (blobs, versions, changes, summaries, counters) in one transaction.

        Statements are batched per table (executemany), so the cost per check is a few rows, not a few
        round trips; records of one page are applied in order.
        """
        if not records:
            return
        with translate("cannot write checks"), self.engine.begin() as conn:
            _Batch(conn).write(records)

    def page_states(self, page_ids: Iterable[int], *, recent: int = 5) -> dict[int, PageState]:
        """The last check, validators and the `recent` newest versions of each page."""
        ids = list(page_ids)
        if not ids:
            return {}
        out: dict[int, PageState] = {}
        V = m.Version
        with Session(self.engine) as s:
            pages = {p.id: p for p in s.scalars(select(m.Page).where(m.Page.id.in_(ids)))}
            # the newest versions per page: by last_seen_at (a flap back makes an old version current)
            ranked = (select(V, func.row_number().over(partition_by=V.page_id, order_by=(
                V.last_seen_at.desc(), V.id.desc())).label("rn")).where(V.page_id.in_(ids)).subquery())
            versions: dict[int, list[m.Version]] = {}
            for v in s.scalars(select(V).join(ranked, V.id == ranked.c.id).where(ranked.c.rn <= recent)):
                versions.setdefault(v.page_id, []).append(v)
            for pid in ids:
                p = pages.get(pid)
                if p is None:
                    continue
                vs = sorted(versions.get(pid, []), key=lambda v: (v.last_seen_at, v.id))
                out[pid] = PageState(
                    page_id=pid, last_check_at=p.last_check_at, last_success_at=p.last_success_at,
                    last_full_fetch_at=p.last_full_fetch_at,
                    validators=Validators(etag=p.etag, last_modified=p.last_modified), last_size=p.last_bytes,
                    recent=tuple(VersionRef(key_hash=v.key_hash, fingerprints=_fingerprints(v), version_id=v.id)
                                 for v in vs))
        return out

    def state_at(self, page_id: int, at: datetime, *, recent: int = 5) -> PageState:
        """The page as it was just before `at`, from its checks (or, where they were pruned, from its versions'
        first sightings): the predecessor in time that a late capture is judged against."""
        C, V = table(m.Check), table(m.Version)
        before = (C.c.page_id == page_id) & (C.c.started_at < at)
        with self.engine.connect() as conn:
            last_check = utc(conn.execute(select(func.max(C.c.started_at)).where(before)).scalar())
            success = conn.execute(select(C.c.started_at, C.c.bytes).where(before, C.c.outcome.in_(SUCCESS))
                                   .order_by(C.c.started_at.desc()).limit(1)).first()
            seen = (select(C.c.version_id.label("vid"), func.max(C.c.started_at).label("seen"))
                    .where(before, C.c.version_id.is_not(None)).group_by(C.c.version_id)
                    .order_by(func.max(C.c.started_at).desc()).limit(recent).subquery())
            rows = conn.execute(select(V, seen.c.seen).join(seen, seen.c.vid == V.c.id)).all()
            if not rows:  # the checks of that time were pruned: the versions first seen before it
                rows = conn.execute(select(V, V.c.first_seen_at.label("seen"))
                                    .where(V.c.page_id == page_id, V.c.first_seen_at < at)
                                    .order_by(V.c.first_seen_at.desc()).limit(recent)).all()
        versions = sorted(rows, key=lambda v: (utc(v.seen), v.id))
        last_success = utc(success.started_at) if success else (utc(versions[-1].seen) if versions else None)
        return PageState(page_id=page_id, last_check_at=last_check or last_success, last_success_at=last_success,
                         last_size=success.bytes if success else None,
                         recent=tuple(VersionRef(key_hash=v.key_hash, fingerprints=_fingerprints(v), version_id=v.id)
                                      for v in versions))

    def archived_times(self, page_id: int) -> set[datetime]:
        A = table(m.ArchiveCapture)
        with self.engine.connect() as conn:
            rows = conn.execute(select(A.c.captured_at).where(A.c.page_id == page_id))
            return {at for (t,) in rows if (at := utc(t)) is not None}

    def successor(self, page_id: int, at: datetime) -> Successor | None:
        C, V, CH = table(m.Check), table(m.Version), table(m.Change)
        with self.engine.connect() as conn:
            row = conn.execute(select(C.c.started_at, V.c.id, V.c.key_hash).join(V, V.c.id == C.c.version_id)
                               .where(C.c.page_id == page_id, C.c.started_at > at)
                               .order_by(C.c.started_at).limit(1)).first()
            if row is None:  # its checks were pruned: the first version first seen after it
                row = conn.execute(select(V.c.first_seen_at, V.c.id, V.c.key_hash)
                                   .where(V.c.page_id == page_id, V.c.first_seen_at > at)
                                   .order_by(V.c.first_seen_at).limit(1)).first()
            if row is None:
                return None
            seen, vid, key = row
            From = V.alias("from_version")
            change = conn.execute(select(CH.c.id, From.c.key_hash).join(From, From.c.id == CH.c.from_version_id,
                                                                       isouter=True)
                                  .where(CH.c.page_id == page_id, CH.c.to_version_id == vid, CH.c.detected_at == seen,
                                         current_change(CH)).order_by(CH.c.id.desc()).limit(1)).first()
        return Successor(checked_at=seen, version_key=key, change_id=change[0] if change else None,
                         change_from=change[1] if change else None)

    def version_content(self, page_id: int, key_hash: str) -> bytes | None:
        """The serialised Content of a stored version (for diffs)."""
        with translate("cannot read a version"), Session(self.engine) as s:
            row = s.execute(select(m.Blob.codec, m.Blob.data).join(m.Version, m.Version.content_sha == m.Blob.sha256)
                            .where(m.Version.page_id == page_id, m.Version.key_hash == key_hash)).first()
            return unpack(row.codec, row.data) if row else None
