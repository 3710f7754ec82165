"""Reads and writes of the monitor's history. Everything the rest of the code knows about SQL is here."""

from __future__ import annotations

import hashlib
import json
import logging
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select, text, update
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from monitor.domain import (
    Catalogue,
    ChangeClass,
    CheckRecord,
    Fingerprints,
    PageState,
    Validators,
    VersionRef,
)
from monitor.errors import StoreError, StoreUnavailable
from monitor.regulation import default_interval_s
from monitor.store import models as m
from monitor.store.engine import ensure_current, is_sqlite, make_engine

logger = logging.getLogger(__name__)

COMPRESS_LEVEL = 6


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
                    row = pages.get(key)
                    if row is None:
                        row = m.Page(service_id=svc.id, url=page.url, position=page.position,
                                     kind=page.kind.value, name=page.name, interval_s=interval,
                                     options=options, created_at=now, consecutive_failures=0)
                        s.add(row)
                    else:
                        row.position, row.kind, row.name = page.position, page.kind.value, page.name
                        row.interval_s, row.options, row.retired_at = interval, options, None
                    s.flush()
                    page_ids[page.key] = row.id
            for key, row in pages.items():
                if key not in seen and row.retired_at is None:
                    row.retired_at = now
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
                    recent=tuple(VersionRef(key_hash=v.key_hash, fingerprints=_fingerprints(v), version_id=v.id)
                                 for v in vs),
                )
        return out

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
        """Write a batch of checks (blobs, versions, changes, summaries, counters) in one transaction."""
        if not records:
            return
        with translate("cannot write checks"), Session(self.engine) as s, s.begin():
            for rec in records:
                self._write_one(s, rec)

    def _put_blob(self, s: Session, data: bytes, now: datetime) -> str:
        digest = sha256(data)
        if s.get(m.Blob, digest) is None:
            codec, packed = pack(data)
            s.add(m.Blob(sha256=digest, size=len(data), codec=codec, data=packed, created_at=now))
            s.flush()
        return digest

    def _write_one(self, s: Session, rec: CheckRecord) -> None:
        f = rec.fetch
        now = f.started_at
        version_id: int | None = None
        change_class = rec.verdict.change_class.value if rec.verdict else None
        if rec.fingerprints is not None and rec.version_key is not None:
            version = s.scalars(select(m.Version).where(m.Version.page_id == rec.page_id,
                                                        m.Version.key_hash == rec.version_key)).first()
            previous = s.get(m.Page, rec.page_id)
            prev_version_id = previous.last_version_id if previous else None
            if version is None:
                fp = rec.fingerprints
                content_sha = self._put_blob(s, rec.content_blob or b"{}", now)
                raw_sha = self._put_blob(s, rec.raw_blob, now) if rec.raw_blob is not None else None
                version = m.Version(page_id=rec.page_id, key_hash=rec.version_key, first_seen_at=now,
                                    last_seen_at=now, content_sha=content_sha, raw_sha=raw_sha,
                                    fp_raw=fp.raw, fp_text=fp.text, fp_main=fp.main, fp_main_dated=fp.main_dated,
                                    fp_main_masked=fp.main_masked, fp_links=fp.links,
                                    fp_documents=fp.documents, declared_at=rec.declared_at)
                s.add(version)
                s.flush()
            else:
                version.last_seen_at = now
                if rec.declared_at is not None:
                    version.declared_at = rec.declared_at
            version_id = version.id
            verdict = rec.verdict
            if (verdict is not None and not verdict.flapped and prev_version_id is not None
                    and prev_version_id != version_id
                    and verdict.change_class.rank <= ChangeClass.DATE_ONLY.rank):
                ev = verdict.evidence
                evidence = json.dumps({
                    "diff": ev.diff, "links_added": ev.links_added, "links_removed": ev.links_removed,
                    "documents_added": ev.documents_added, "documents_removed": ev.documents_removed,
                }, ensure_ascii=False, sort_keys=True).encode()
                s.add(m.Change(page_id=rec.page_id, from_version_id=prev_version_id, to_version_id=version_id,
                               window_start=rec.window_start, detected_at=now,
                               change_class=verdict.change_class.value, is_real=rec.is_real,
                               added=ev.added, removed=ev.removed, edited=ev.edited,
                               evidence_sha=self._put_blob(s, evidence, now)))
                self._tally(s, rec.page_id, "change", verdict.change_class.value)
            elif verdict is not None and verdict.flapped:
                self._tally(s, rec.page_id, "change", "flap")
            elif verdict is not None and verdict.change_class is ChangeClass.COSMETIC:
                self._tally(s, rec.page_id, "change", "cosmetic")

        s.add(m.Check(page_id=rec.page_id, started_at=now, duration_s=f.elapsed_s, outcome=rec.outcome.value,
                      http_status=f.status, bytes=f.size, content_type=f.content_type[:128],
                      final_url=f.final_url if f.final_url != f.url else None, redirects=f.redirects,
                      attempts=f.attempts, quality=rec.quality.value if rec.quality else None,
                      change_class=change_class, version_id=version_id,
                      fp_raw=rec.fingerprints.raw if rec.fingerprints else None,
                      last_modified=f.last_modified, error=f.error[:2000], worker=rec.worker))
        self._tally(s, rec.page_id, "outcome", rec.outcome.value)
        self._update_summary(s, rec, version_id)

    def _update_summary(self, s: Session, rec: CheckRecord, version_id: int | None) -> None:
        f = rec.fetch
        now = f.started_at
        values: dict[str, Any] = dict(last_check_at=now, last_outcome=rec.outcome.value, last_status=f.status,
                                      last_duration_s=f.elapsed_s)
        if rec.outcome.success:
            values.update(last_success_at=now, consecutive_failures=0)
            if f.tls_expires_at is not None:
                values["tls_expires_at"] = f.tls_expires_at
            if rec.full_fetch:
                values.update(last_full_fetch_at=now, etag=f.etag, last_modified=f.last_modified,
                              last_bytes=f.size)
            if version_id is not None:
                values["last_version_id"] = version_id
            verdict = rec.verdict
            if verdict is not None and not verdict.flapped and verdict.change_class.rank <= ChangeClass.DATE_ONLY.rank:
                values["last_change_at"] = now
                if rec.is_real:
                    values["last_real_change_at"] = now
        else:
            values["consecutive_failures"] = m.Page.consecutive_failures + 1
            if f.tls_expires_at is not None:
                values["tls_expires_at"] = f.tls_expires_at
        s.execute(update(m.Page).where(m.Page.id == rec.page_id).values(**values))
        if rec.outcome.success:
            s.execute(update(m.Page).where(m.Page.id == rec.page_id, m.Page.first_success_at.is_(None))
                      .values(first_success_at=now))

    def _tally(self, s: Session, page_id: int, family: str, key: str) -> None:
        updated = s.execute(
            update(m.Tally).where(m.Tally.page_id == page_id, m.Tally.family == family, m.Tally.key == key)
            .values(count=m.Tally.count + 1)
        )
        if updated.rowcount == 0:  # type: ignore[attr-defined]
            s.execute(insert(m.Tally).values(page_id=page_id, family=family, key=key, count=1))

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

    def pages(self, *, include_retired: bool = False) -> list[PageRow]:
        with Session(self.engine) as s:
            q = select(m.Page).order_by(m.Page.service_id, m.Page.position)
            if not include_retired:
                q = q.where(m.Page.retired_at.is_(None))
            return [PageRow(page_id=p.id, service_id=p.service_id, position=p.position, url=p.url, kind=p.kind,
                            interval_s=p.interval_s, last_check_at=p.last_check_at,
                            last_success_at=p.last_success_at, last_outcome=p.last_outcome,
                            last_status=p.last_status, last_duration_s=p.last_duration_s,
                            first_success_at=p.first_success_at, last_change_at=p.last_change_at,
                            last_real_change_at=p.last_real_change_at, tls_expires_at=p.tls_expires_at,
                            consecutive_failures=p.consecutive_failures)
                    for p in s.scalars(q)]

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
                 "pages": m.Page, "services": m.Service}[table]
        with Session(self.engine) as s:
            return int(s.scalar(select(func.count()).select_from(model)) or 0)


__all__ = ["ChangeRow", "PageRow", "Store", "pack", "sha256", "unpack"]
