"""The store behind small interfaces, one per concern, and the typed rows they hand out.

The stages and the read models depend on these Protocols, never on the SQL store (monitor.store), so
that a test passes a fake of the one interface it needs, and another back end can stand in. Every row
is a frozen dataclass: never an ORM object, never a positional tuple.

    CatalogueStore   targets.toml mirrored into the store (services and pages, retired never deleted)
    CheckWriter      the check writer
    CheckStore       the check writer, and each page's state (now, or at a past time) for the core
    NoiseStore       learned noise rules and what learning reads
    ReportStore      the departments' self-reports
    HealthStore      heartbeats of the running monitors
    StatusReader     where each service stands (status, metrics, reports)
    MetricsReader    what a scrape reads: summaries, counters, kept aggregates
    AuditReader      changes, reports, coverage and declared dates of a service over a range
    HistoryReader    change events with their evidence, current contents
    FaultsReader     check rows, pruned days and link checks over a range
    MaintenanceStore retention, link checks, kept aggregates, the hash chains, sizes
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from monitor.domain import (
    Catalogue,
    ChangeClass,
    ChangeEvent,
    CheckRecord,
    PageState,
    RejectedEntry,
    RejectedRow,
    ReportEntry,
    ReportRow,
    Successor,
)

DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)  # seconds: the fetch-duration histogram


def duration_bucket(seconds: float) -> str:
    """The histogram bucket (its upper bound) of one fetch duration: the writer counts checks by it, the
    exporter reads the counts as a histogram."""
    for bound in DURATION_BUCKETS:
        if seconds <= bound:
            return repr(bound)
    return "+Inf"


# --- rows -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceRow:
    id: str
    name: str
    department: str
    department_id: str
    regulation: str
    suspended: bool
    retired_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PageRow:
    """A page with the summary of its latest state, for status, schedule and faults."""

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
class PageMetricRow:
    """A page's last check as the exporter needs it; times as Unix seconds computed by the database."""

    service_id: str
    position: int
    url: str
    interval_s: int
    outcome: str | None
    status: int | None
    duration_s: float | None
    checked: float | None
    tls_expiry: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceAggregate:
    """One service's pages summed up by the database (what status, metrics and reports grade)."""

    service_id: str
    pages: int
    checked: int
    failing: int
    last_check_at: datetime | None
    last_success_at: datetime | None
    last_real_change_at: datetime | None
    last_change_at: datetime | None
    first_success_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class TallyRow:
    """A persistent counter summed per service: family 'outcome', 'change', 'duration' or 'duration_ms'."""

    service_id: str
    family: str
    key: str
    count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Aggregate:
    """A value the maintenance job keeps up to date so that a scrape only reads (audit verdicts, dataset
    grades): counts by name, for one key (a service)."""

    key: str
    counts: Mapping[str, int]
    computed_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerRow:
    id: str
    hostname: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    last_round_at: datetime | None
    schedule_lag_s: float
    checks_done: int
    stopped_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    worker: str
    hostname: str
    pid: int
    started_at: datetime
    now: datetime
    last_round_at: datetime | None
    schedule_lag_s: float
    checks_done: int
    stopped: bool = False


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
class CaptureRow:
    """A version of a page as first captured: what `monitor export warc` writes (the raw bytes by address),
    with the change that led to it."""

    service_id: str
    url: str
    version_id: int
    key_hash: str
    captured_at: datetime
    raw_sha: str | None  # None once retention dropped the raw capture
    content_sha: str
    fp_raw: str | None
    record_hash: str | None
    content_type: str
    source: str  # "" live, else the archive it was read from
    change_id: int | None = None
    change_class: str | None = None
    is_real: bool | None = None
    evidence_sha: str | None = None
    change_hash: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ContentRef:
    """A page's current content: its address in the blob store (read it with `HistoryReader.blob`)."""

    url: str
    sha: str


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
    evidence: Mapping[str, Any] | None = None
    superseded_by: int | None = None  # a later record corrected this one (a capture found later proved it wrong)


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckRow:
    """One check of a current page, for the faults list."""

    service_id: str
    url: str
    started_at: datetime
    duration_s: float
    outcome: str
    status: int | None
    quality: str | None
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DayRow:
    """A pruned day of one page: its coverage_days summary."""

    service_id: str
    url: str
    day: str
    checks: int
    successes: int
    failures: str  # "outcome:count,..."
    slow: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkCheck:
    """One link of a page's content, checked (politely, capped) for the faults list."""

    page_id: int
    url: str
    checked_at: datetime
    outcome: str
    status: int | None
    error: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkRow:
    service_id: str
    page: str
    url: str
    checked_at: datetime
    outcome: str
    status: int | None
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainBreak:
    table: str
    record_id: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainHeadRow:
    """Where a chain stands: its newest record's position and hash (what a checkpoint keeps), and its base
    (where it starts since retention removed its oldest records)."""

    name: str
    seq: int
    hash: str
    base_seq: int = 0
    base_hash: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Verification:
    """What `verify` found: records checked per chain, every break located, and the heads."""

    counts: Mapping[str, int] = field(default_factory=dict)
    breaks: Sequence[ChainBreak] = ()
    heads: Sequence[ChainHeadRow] = ()

    @property
    def intact(self) -> bool:
        return not self.breaks


# --- interfaces -------------------------------------------------------------------------------------


class CatalogueStore(Protocol):
    def sync_catalogue(self, catalogue: Catalogue, now: datetime) -> dict[str, int]:
        """Mirror the catalogue; removed services and pages are retired, never deleted. The page id of every
        active page, by PageConfig.key."""
        ...

    def services(self, *, include_retired: bool = False) -> list[ServiceRow]: ...

    def pages(self, *, include_retired: bool = False) -> list[PageRow]: ...


class CheckWriter(Protocol):
    def write(self, records: Sequence[CheckRecord]) -> None:
        """Write a batch of check records in one transaction (raises StoreUnavailable or StoreError)."""
        ...


class CheckStore(CheckWriter, Protocol):
    def page_states(self, page_ids: Iterable[int], *, recent: int) -> dict[int, PageState]:
        """Each page's state now: last check, validators, its `recent` newest versions."""
        ...

    def state_at(self, page_id: int, at: datetime, *, recent: int) -> PageState:
        """The page's state as it was just before `at`: what a capture taken at `at` is judged against."""
        ...

    def successor(self, page_id: int, at: datetime) -> Successor | None:
        """The first stored capture after `at` with a version, and the change recorded at it: what a capture
        taken at `at` and arriving late may prove wrong."""
        ...

    def version_content(self, page_id: int, key_hash: str) -> bytes | None: ...

    def archived_times(self, page_id: int) -> set[datetime]:
        """When the archive captures already recorded for the page were taken (to import each once)."""
        ...


class NoiseStore(Protocol):
    def noise_paths(self, page_ids: Iterable[int]) -> dict[int, list[str]]: ...

    def add_noise_rules(self, page_id: int, rules: Iterable[tuple[str, str]], *, source: str,
                        now: datetime) -> list[str]: ...

    def noise_rules(self, service_id: str | None = None) -> list[NoiseRuleRow]: ...

    def set_noise_status(self, rule_id: int, status: str, now: datetime) -> bool: ...

    def calibrated(self, page_ids: Iterable[int]) -> dict[int, datetime | None]: ...

    def mark_calibrated(self, page_id: int, now: datetime) -> None: ...

    def recent_contents(self, page_id: int, limit: int) -> list[bytes]: ...

    def newest_contents(self, page_ids: Iterable[int]) -> dict[int, tuple[str, bytes]]:
        """Each page's newest version: its content's sha256 and serialised Content (pages without one left out)."""


class ReportStore(Protocol):
    def add_reports(self, rows: Iterable[ReportRow], now: datetime) -> int: ...

    def add_rejected(self, rows: Iterable[RejectedRow], now: datetime) -> int: ...

    def reports(self, *, service_id: str | None = None, since: datetime | None = None,
                until: datetime | None = None) -> list[ReportEntry]: ...

    def rejected(self, *, since: datetime, until: datetime,
                 service_ids: Iterable[str] | None = None) -> list[RejectedEntry]: ...

    def last_reports(self) -> dict[str, datetime]: ...


class HealthStore(Protocol):
    def ping(self) -> bool: ...

    def heartbeat(self, beat: Heartbeat) -> None: ...

    def workers(self) -> list[WorkerRow]: ...


class StatusReader(Protocol):
    def service_aggregates(self) -> dict[str, ServiceAggregate]: ...

    def workers(self) -> list[WorkerRow]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueRow:
    """Jobs of the procrastinate engine's queue in one status; `oldest`: the earliest dispatch among them (Unix
    seconds)."""

    queue: str
    status: str
    jobs: int
    oldest: float | None


class MetricsReader(StatusReader, Protocol):
    def page_metrics(self) -> list[PageMetricRow]: ...

    def queue(self) -> list[QueueRow]: ...

    def tallies_by_service(self) -> list[TallyRow]: ...

    def last_reports(self) -> dict[str, datetime]: ...

    def aggregates(self, name: str) -> dict[str, Aggregate]: ...


class AuditReader(Protocol):
    def change_events(self, service_id: str, since: datetime, until: datetime) -> list[ChangeEvent]: ...

    def reports(self, *, service_id: str | None = None, since: datetime | None = None,
                until: datetime | None = None) -> list[ReportEntry]: ...

    def success_times(self, service_id: str, since: datetime, until: datetime) -> list[datetime]: ...

    def archived_times(self, service_id: str, since: datetime, until: datetime) -> list[datetime]:
        """Those of the success times that are captures read from web archives."""
        ...

    def declared_dates(self, service_id: str, since: datetime, until: datetime) -> list[datetime]: ...

    def rejected(self, *, since: datetime, until: datetime,
                 service_ids: Iterable[str] | None = None) -> list[RejectedEntry]: ...


class HistoryReader(Protocol):
    def changes(self, *, service_id: str | None = None, since: datetime | None = None,
                until: datetime | None = None, limit: int | None = None,
                min_class: ChangeClass = ChangeClass.DATE_ONLY) -> list[ChangeRow]: ...

    def change(self, change_id: int) -> ChangeRow | None: ...

    def current_contents(self, service_id: str) -> list[ContentRef]:
        """Where the current version's content of each active page of the service is (cheap to ask, so a
        reader can keep what it derived from a content until the address changes)."""
        ...

    def blob(self, sha: str) -> bytes | None: ...

    def captures(self, *, service_ids: Sequence[str], since: datetime, until: datetime) -> list[CaptureRow]:
        """The versions of these services' pages first captured in [since, until), oldest first."""
        ...


class FaultsReader(Protocol):
    def check_rows(self, since: datetime, until: datetime,
                   service_ids: Iterable[str] | None = None) -> Iterator[CheckRow]: ...

    def coverage_rows(self, since: datetime, until: datetime,
                      service_ids: Iterable[str] | None = None) -> list[DayRow]: ...

    def link_checks(self, since: datetime, until: datetime) -> list[LinkRow]: ...

    def pages(self, *, include_retired: bool = False, service_id: str | None = None) -> list[PageRow]: ...

    def latest_checks(self, service_id: str, limit: int = 50) -> list[CheckRow]: ...


class MaintenanceStore(Protocol):
    def prune(self, *, checks_before: datetime, raw_before: datetime, slow_s: float = 10.0,
              now: datetime | None = None) -> dict[str, int]: ...

    def last_link_checks(self) -> dict[int, datetime]: ...

    def add_link_checks(self, rows: Sequence[LinkCheck]) -> None: ...

    def put_aggregates(self, name: str, values: Mapping[str, Mapping[str, int]], now: datetime) -> None:
        """Replace the kept aggregate `name` (one entry per key) in one transaction."""
        ...

    def verify(self, *, blobs: bool = True) -> Verification: ...

    def chain_record(self, name: str, seq: int) -> str | None:
        """The hash of the record at a position of a chain (None if there is none)."""
        ...

    def heads(self) -> list[ChainHeadRow]:
        """Where every chain stands, as recorded (cheap: no verification)."""
        ...

    def size_bytes(self) -> int | None: ...

    def row_counts(self) -> dict[str, int]: ...

    def vacuum(self) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class LastCheck:
    page_id: int
    at: datetime | None


class FleetStore(Protocol):
    """What workers over PostgreSQL share beyond the checks: each host's pace and leases (politeness for the
    whole fleet), and the pages' last checks that dispatch reads."""

    def take_turn(self, host: str, holder: str, *, concurrency: int, delay_s: float, lease_s: float) -> float:
        """0 with a lease taken; the pause still to run; or -1 when every slot at the host is out."""

    def give_back(self, host: str, holder: str, *, delay_s: float) -> None: ...

    def defer_host(self, host: str, seconds: float) -> None: ...

    def host_wait(self, host: str) -> float:
        """Seconds before a request to the host may start (its pause, or the wait its server asked for)."""

    def last_checks(self) -> list[LastCheck]: ...


class Stores(Protocol):
    """Every interface at once, as the composition root holds them (monitor.store.Store is one)."""

    @property
    def catalogue(self) -> CatalogueStore: ...

    @property
    def checks(self) -> CheckStore: ...

    @property
    def noise(self) -> NoiseStore: ...

    @property
    def reports(self) -> ReportStore: ...

    @property
    def health(self) -> HealthStore: ...

    @property
    def metrics(self) -> MetricsReader: ...

    @property
    def audit(self) -> AuditReader: ...

    @property
    def history(self) -> HistoryReader: ...

    @property
    def faults(self) -> FaultsReader: ...

    @property
    def maintenance(self) -> MaintenanceStore: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class UserRow:
    name: str
    role: str
    password_hash: str
    disabled: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionRow:
    id: int
    at: datetime
    who: str
    action: str
    target: str
    detail: str


class WebStore(Protocol):
    """The web interface's accounts and the log of what people did through it."""

    def put_user(self, name: str, *, role: str, password_hash: str, now: datetime) -> bool: ...

    def disable_user(self, name: str) -> bool: ...

    def user(self, name: str) -> UserRow | None: ...

    def users(self) -> list[UserRow]: ...

    def add_action(self, *, who: str, action: str, target: str, detail: str, now: datetime) -> None: ...

    def actions(self, *, targets: Iterable[str] | None = None, limit: int = 200) -> list[ActionRow]: ...
