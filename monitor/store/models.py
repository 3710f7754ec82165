"""Typed SQLAlchemy models on one Base with a naming convention. Migrations live in migrations/."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python on every back end (SQLite stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        from datetime import UTC

        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        from datetime import UTC

        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrement needs INTEGER


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Service(Base):
    """A web service of the catalogue, synced from targets.toml; retired, never deleted."""

    __tablename__ = "services"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    department: Mapped[str] = mapped_column(Text)
    department_id: Mapped[str] = mapped_column(String(64))
    regulation: Mapped[str] = mapped_column(String(24))
    suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    responsible: Mapped[str] = mapped_column(Text, default="")
    contact: Mapped[str] = mapped_column(Text, default="")
    working_days: Mapped[bool] = mapped_column(Boolean, default=False)
    real_update_classes: Mapped[str] = mapped_column(String(128))  # comma-separated ChangeClass values
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Page(Base):
    """One address of a service, with a summary of its latest state kept up to date on every check."""

    __tablename__ = "pages"
    __table_args__ = (UniqueConstraint("service_id", "url"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(24))
    name: Mapped[str] = mapped_column(Text, default="")
    interval_s: Mapped[int] = mapped_column(Integer)
    options: Mapped[str] = mapped_column(Text, default="{}")  # JSON: selectors, header templates (never values)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # summary of the latest state (derivable from checks, kept here so status and metrics are O(pages))
    last_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_full_fetch_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_version_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    first_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_change_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # any class >= date_only
    last_real_change_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    etag: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_modified: Mapped[str | None] = mapped_column(Text, nullable=True)
    tls_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    calibrated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Blob(Base):
    """Content-addressed, compressed bytes: each distinct content is stored once."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    codec: Mapped[str] = mapped_column(String(8))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Version(Base):
    """A distinct state of a page: its main text, links or documents differ from every other version."""

    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("page_id", "key_hash"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    content_sha: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))  # extracted content (JSON)
    raw_sha: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"), nullable=True)  # bytes as served
    fp_raw: Mapped[str] = mapped_column(String(64))
    fp_text: Mapped[str] = mapped_column(String(64))
    fp_main: Mapped[str] = mapped_column(String(64))
    fp_main_dated: Mapped[str] = mapped_column(String(64))
    fp_main_masked: Mapped[str] = mapped_column(String(64))
    fp_links: Mapped[str] = mapped_column(String(64))
    fp_documents: Mapped[str] = mapped_column(String(64))
    declared_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    chain_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True, unique=True)  # chain position
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    record_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Check(Base):
    """Every attempt to check a page, whatever its outcome."""

    __tablename__ = "checks"
    __table_args__ = (Index("ix_checks_page_started", "page_id", "started_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    duration_s: Mapped[float] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(16))
    http_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    bytes: Mapped[int] = mapped_column(Integer, default=0)
    content_type: Mapped[str] = mapped_column(String(128), default="")
    final_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    redirects: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    quality: Mapped[str | None] = mapped_column(String(16), nullable=True)
    change_class: Mapped[str | None] = mapped_column(String(16), nullable=True)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id"), nullable=True)
    fp_raw: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_modified: Mapped[str | None] = mapped_column(Text, nullable=True)  # the server's Last-Modified header
    error: Mapped[str] = mapped_column(Text, default="")
    worker: Mapped[str] = mapped_column(String(64), default="")
    source: Mapped[str] = mapped_column(String(200), default="", server_default="")  # "" live, else the archive
    chain_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True, unique=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    record_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Change(Base):
    """A change event between two versions of a page, with its evidence."""

    __tablename__ = "changes"
    __table_args__ = (Index("ix_changes_page_detected", "page_id", "detected_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id"))
    from_version_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id"), nullable=True)
    to_version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # previous good check
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime)  # this check
    change_class: Mapped[str] = mapped_column(String(16))
    is_real: Mapped[bool] = mapped_column(Boolean)
    added: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[int] = mapped_column(Integer, default=0)
    edited: Mapped[int] = mapped_column(Integer, default=0)
    evidence_sha: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"), nullable=True)
    # a correction: this record replaces that one (its id), which a capture found later proved wrong; records are
    # never edited. No foreign key: SQLite cannot add one in place, and the chain covers the reference
    supersedes: Mapped[int | None] = mapped_column(BigId, nullable=True, index=True)
    chain_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True, unique=True)  # chain position
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    record_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Tally(Base):
    """Persistent counters (checks by outcome, changes by class) that survive pruning of old rows."""

    __tablename__ = "tallies"

    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id"), primary_key=True)
    family: Mapped[str] = mapped_column(String(16), primary_key=True)  # 'outcome' | 'change'
    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class NoiseRule(Base):
    """A learned (or operator-written) rule that masks a volatile part of a page."""

    __tablename__ = "noise_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id"), index=True)
    path: Mapped[str] = mapped_column(Text)  # structural path of the volatile block
    source: Mapped[str] = mapped_column(String(16))  # 'calibration' | 'history' | 'operator'
    status: Mapped[str] = mapped_column(String(16))  # 'active' | 'confirmed' | 'dropped'
    evidence: Mapped[str] = mapped_column(Text, default="")
    hits: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Worker(Base):
    """A running (or past) `monitor run` process and its heartbeat."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_round_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    schedule_lag_s: Mapped[float] = mapped_column(Float, default=0.0)
    checks_done: Mapped[int] = mapped_column(BigInteger, default=0)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SelfReport(Base):
    """A department's self-report of an update (a row of the Google Form's responses), imported once."""

    __tablename__ = "self_reports"
    __table_args__ = (Index("ix_self_reports_service_reported", "service_id", "reported_for"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    row_hash: Mapped[str] = mapped_column(String(64), unique=True)  # importing the same row again adds nothing
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the form's timestamp
    reported_for: Mapped[datetime] = mapped_column(UTCDateTime)  # when the department says it updated
    what: Mapped[str] = mapped_column(Text, default="")
    who: Mapped[str] = mapped_column(Text, default="")
    email: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str] = mapped_column(Text, default="")
    service_text: Mapped[str] = mapped_column(Text, default="")  # the service as the department wrote it
    source: Mapped[str] = mapped_column(Text, default="")  # file name and row number
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # its parsed content (time, service, claimed day, text): the same response from any export is imported once
    identity: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    department_text: Mapped[str] = mapped_column(Text, default="", server_default="")  # as the department wrote it
    chain_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True, unique=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    record_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ReportRejection(Base):
    """A submitted row that could not be taken as a report, with its reason: kept (and chained) so that every
    row of the form is accounted for in the audit."""

    __tablename__ = "rejected_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    identity: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(Text)  # file name and row number
    row: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    cells: Mapped[str] = mapped_column(Text, default="[]")  # the record as written (JSON array)
    service_id: Mapped[str | None] = mapped_column(String(63), nullable=True, index=True)  # when recognised
    service_text: Mapped[str] = mapped_column(Text, default="")
    department_text: Mapped[str] = mapped_column(Text, default="")
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reported_for: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the audits that list it: those whose range holds its claimed day, else its submission, when usable;
    # NULL (neither usable: unreadable, in the future, before reports began) lists it in every audit
    placed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    what: Mapped[str] = mapped_column(Text, default="")
    who: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str] = mapped_column(Text, default="")
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime)
    chain_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True, unique=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    record_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ChainHead(Base):
    """The newest record of each hash chain (versions, changes): locked while records are appended, which
    take their chain positions (chain_seq) under the lock, so that many writers make one chain."""

    __tablename__ = "chain_heads"

    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger, default=0)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_hash: Mapped[str] = mapped_column(String(64), default="")
    # where the chain starts since retention removed its oldest records (0, "": from its very first record)
    base_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    base_hash: Mapped[str] = mapped_column(String(64), default="", server_default="")


class CoverageDay(Base):
    """What pruned check rows leave behind: per page and UTC day, how often it was checked and seen. A record
    per page, day and pruning run (never updated: the rows are chained); readers add a day's rows up."""

    __tablename__ = "coverage_days"
    __table_args__ = (Index("ix_coverage_days_page_day", "page_id", "day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id"))
    day: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD (UTC)
    checks: Mapped[int] = mapped_column(Integer, default=0)
    successes: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[str] = mapped_column(Text, default="")  # "outcome:count,..." of the failed checks
    first_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    slow: Mapped[int] = mapped_column(Integer, default=0)  # checks slower than the slow threshold
    archived: Mapped[int | None] = mapped_column(Integer, nullable=True)  # successes read from archives, if any
    chain_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True, unique=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    record_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class RetentionLog(Base):
    """Each time retention removed the oldest records of a chain: where the chain starts from then (chained
    itself, so that moving a chain's start is never silent)."""

    __tablename__ = "retention_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    chain: Mapped[str] = mapped_column(String(16))
    base_seq: Mapped[int] = mapped_column(BigInteger)
    base_hash: Mapped[str] = mapped_column(String(64))
    removed: Mapped[int] = mapped_column(BigInteger)
    done_at: Mapped[datetime] = mapped_column(UTCDateTime)
    chain_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True, unique=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    record_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class LinkCheck(Base):
    """A link of a service's own pages, checked (politely, capped) for the technical-faults list."""

    __tablename__ = "link_checks"
    __table_args__ = (Index("ix_link_checks_page_checked", "page_id", "checked_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id"))
    url: Mapped[str] = mapped_column(Text)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(16))
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")


class Aggregate(Base):
    """A value kept up to date by the maintenance job so that a scrape only reads it: the self-report audit's
    verdicts and the open-data datasets' grades, per service."""

    __tablename__ = "aggregates"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)  # 'self_reports' | 'datasets'
    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # the service id
    counts: Mapped[str] = mapped_column(Text)  # JSON object: name -> count
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class User(Base):
    """An account of the web interface: a role, and a password kept as a scrypt hash (never the password)."""

    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # viewer | operator | auditor | admin
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class WebAction(Base):
    """What people did through the web interface — a check asked for, a change annotated — who and when;
    chained like the records an audit depends on."""

    __tablename__ = "web_actions"
    __table_args__ = (Index("ix_web_actions_target", "target"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    who: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))  # check | note
    target: Mapped[str] = mapped_column(String(64))  # page:ID | change:ID
    detail: Mapped[str] = mapped_column(Text, default="")
    chain_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True, unique=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    record_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ArchiveCapture(Base):
    """Every archive capture recorded (page and capture time): what a backfill passes over, kept when
    retention summarises the check rows, so that a capture is imported once, ever."""

    __tablename__ = "archive_captures"

    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id"), primary_key=True)
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    source: Mapped[str] = mapped_column(String(200))


class HostPace(Base):
    """The procrastinate engine's politeness across the fleet: when the next request to a host may start
    (per_host_delay), read and moved under the row's lock by whichever worker goes next."""

    __tablename__ = "host_pace"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    next_start: Mapped[datetime] = mapped_column(UTCDateTime)


class HostLease(Base):
    """A request to a host in flight somewhere in the fleet (per_host_concurrency): given back when it ends;
    a worker killed mid-request leaves one that expires."""

    __tablename__ = "host_leases"

    holder: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
