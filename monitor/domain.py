"""Frozen records and vocabularies passed between the pipeline stages."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Protocol
from urllib.parse import SplitResult, urlsplit, urlunsplit

# query parameters whose values are secrets wherever they appear (?api_key=..., &access_token=..., &sig=...)
SECRET_PARAM = re.compile(r"^(?:.*[-_.])?(?:api[-_]?key|apikey|key|token|access[-_]?token|auth|authorization|"
                          r"password|passwd|pwd|pass|secret|client[-_]?secret|signature|sig|session|sessionid|sid|"
                          r"jwt|bearer|credentials?)$", re.I)
REDACTED = "REDACTED"


def redact_url(url: str) -> str:
    """The address as it may be shown, logged or stored: a password in it and the values of secret-looking
    query parameters replaced by REDACTED (the same every time, so it still identifies the page)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a usable URL: show nothing of its authority or query
        return re.sub(r"//[^/?#]*@", f"//{REDACTED}@", url.split("?", 1)[0])
    netloc = parts.netloc
    if password is not None:
        netloc = f"{parts.username or ''}:{REDACTED}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = [p.partition("=") for p in query.split("&")]
        query = "&".join(f"{k}={REDACTED}" if eq and SECRET_PARAM.match(k) else f"{k}{eq}{v}" for k, eq, v in pairs)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, query, parts.fragment))


def page_label(url: str) -> str:
    """A page's id in metrics, alerts and logs: derived from its address as it may be shown, so it stays the
    same when pages are reordered or added, and changes only when the address does."""
    return hashlib.sha256(redact_url(url).encode()).hexdigest()[:10]


_URL_IN_TEXT = re.compile(r"\bhttps?://[^\s'\"<>)]+")


def redact_text(text: str) -> str:
    """A message with every address in it redacted (errors quote the addresses they failed on)."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text) if "://" in text else text


class Regulation(StrEnum):
    """How often a service must be updated: the order's annex 2 plus data.gov.ua's frequencies."""

    MORE_THAN_DAILY = "more_than_daily"  # data.gov.ua "більше одного разу на день"
    DAILY = "daily"  # "Щодня"
    WEEKLY = "weekly"  # "Щоразу зі зміною даних, але не рідше ніж 1 раз на тиждень"
    MONTHLY = "monthly"  # "... не рідше ніж 1 раз на місяць"
    QUARTERLY = "quarterly"  # "... не рідше ніж 1 раз в квартал"
    HALF_YEARLY = "half_yearly"  # data.gov.ua "раз на пів року"
    YEARLY = "yearly"  # data.gov.ua "щороку"
    AS_NEEDED = "as_needed"  # "За потреби": no deadline, silence is shown


# The regulations in words, as alerts and pages say them: (English, Ukrainian), completing "must be updated …".
REGULATION_TEXT: Mapping[Regulation, tuple[str, str]] = {
    Regulation.MORE_THAN_DAILY: ("more than once a day", "частіше ніж раз на день"),
    Regulation.DAILY: ("daily", "щодня"),
    Regulation.WEEKLY: ("on every change, at least weekly", "щоразу зі зміною даних, але не рідше ніж раз на тиждень"),
    Regulation.MONTHLY: ("on every change, at least monthly", "щоразу зі зміною даних, але не рідше ніж раз на місяць"),
    Regulation.QUARTERLY: ("on every change, at least quarterly",
                           "щоразу зі зміною даних, але не рідше ніж раз на квартал"),
    Regulation.HALF_YEARLY: ("every half year", "раз на пів року"),
    Regulation.YEARLY: ("yearly", "щороку"),
    Regulation.AS_NEEDED: ("as needed", "за потреби"),
}


class Engine(StrEnum):
    """What runs the checks: one process (APScheduler, any store), or workers over PostgreSQL (procrastinate)."""

    EMBEDDED = "embedded"
    PROCRASTINATE = "procrastinate"


class Kind(StrEnum):
    """What a page is, which decides how it is fetched, extracted and compared."""

    HTML = "html"  # a web page: main content, links, documents
    FEED = "feed"  # RSS, Atom or a sitemap: entries
    JSON = "json"  # any JSON API, with a selection (JMESPath) and ignored keys
    CKAN = "ckan"  # a CKAN catalogue (data.gov.ua): an organisation's datasets and resources
    GEO = "geo"  # GeoJSON, or an ArcGIS REST feature layer: features
    FILE = "file"  # a document: PDF, DOCX, XLSX, XLS, ODS, CSV
    AVAILABILITY = "availability"  # reachability and an expected marker only; never a content change


class Outcome(StrEnum):
    """The outcome class of one check. Everything that can go wrong ends as one of these."""

    OK = "ok"
    NOT_MODIFIED = "not_modified"  # 304 to a conditional GET: same content as the last full fetch
    DNS = "dns"
    CONNECT = "connect"
    TLS = "tls"
    TIMEOUT = "timeout"
    HTTP_STATUS = "http_status"  # 4xx/5xx
    TOO_LARGE = "too_large"
    REDIRECTS = "redirects"  # too many, a loop, or a bad Location
    BLOCKED = "blocked"  # refused by policy (private address, non-http scheme)
    PROTOCOL = "protocol"  # malformed response, reset mid-body, bad encoding
    BAD_CAPTURE = "bad_capture"  # a 200 that is not the content: soft 404, WAF, maintenance, empty
    ERROR = "error"  # a bug in the monitor; logged with a traceback

    @property
    def success(self) -> bool:
        return self in (Outcome.OK, Outcome.NOT_MODIFIED)


class ChangeClass(StrEnum):
    """How a version differs from the previous one, most significant first."""

    CONTENT = "content"
    DOCUMENTS = "documents"
    LINKS = "links"
    DATE_ONLY = "date_only"
    COSMETIC = "cosmetic"
    NONE = "none"

    @property
    def rank(self) -> int:
        return _CHANGE_ORDER.index(self)

    @property
    def is_change(self) -> bool:
        """Whether a difference of this class is a change event (from date_only up); cosmetic ones are not."""
        return self.rank <= _CHANGE_ORDER.index(ChangeClass.DATE_ONLY)


_CHANGE_ORDER = list(ChangeClass)

DEFAULT_REAL_CLASSES: frozenset[ChangeClass] = frozenset({ChangeClass.CONTENT, ChangeClass.DOCUMENTS})


class Grade(StrEnum):
    """Staleness against the regulation (after OCHA HDX's data freshness)."""

    FRESH = "fresh"
    DUE = "due"
    OVERDUE = "overdue"
    DELINQUENT = "delinquent"
    UNKNOWN = "unknown"  # no successful check yet: nothing to grade

    @property
    def severity(self) -> int:
        return {"fresh": 0, "due": 1, "overdue": 2, "delinquent": 3, "unknown": -1}[self.value]


# --- configuration records -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    database_url: str = "sqlite:///monitor.db"
    engine: Engine = Engine.EMBEDDED
    worker_stalled_after_s: float = 60.0  # procrastinate: a worker silent this long is gone, its jobs retried
    user_agent: str = "CityFreshnessMonitor/0.1 (+mailto:it@example.org)"
    concurrency: int = 8
    per_host_concurrency: int = 1
    per_host_delay_s: float = 1.0
    metrics_listen: str = "127.0.0.1:9464"
    timezone: str = "Europe/Kyiv"
    timeout_s: float = 30.0
    connect_timeout_s: float = 10.0
    max_body_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 10
    retries: int = 2
    full_fetch_every_s: int = 86_400
    anti_flap_versions: int = 5
    working_days_holidays: str = "UA"
    calibration_delay_s: float = 5.0
    calibration_every_s: float = 7 * 86_400
    keep_checks_s: float = 400 * 86_400  # check rows older than this are summarised per day and removed
    keep_raw_s: float = 180 * 86_400  # raw captures of versions not seen for this long are dropped
    slow_s: float = 10.0  # a check slower than this counts as a slow response in the faults list
    link_check_every_s: float = 86_400  # how often a page's own links are checked (0: never)
    link_check_max: int = 30  # at most this many links of a page per round
    read_workers: int = 2  # processes that read captures (0: in the monitor's own process, without limits)
    read_cpu_s: float = 20.0  # CPU time one capture may take to read
    read_memory_bytes: int = 1 << 30  # memory a reading process may use
    web_listen: str = "127.0.0.1:8080"
    external_url: str = ""  # the web interface as people reach it
    grafana_url: str = ""
    web_user_header: str = ""  # set by a trusted reverse proxy to the signed-in user
    web_trusted_proxies: tuple[str, ...] = ()  # none: a local process must not be able to claim anyone
    metrics_clients: tuple[str, ...] = ("127.0.0.1", "::1")  # who may read /metrics from `monitor serve`


@dataclass(frozen=True, slots=True, kw_only=True)
class PageConfig:
    """One monitored address of a service."""

    service_id: str
    position: int  # 1-based, as in targets.toml
    url: str
    kind: Kind = Kind.HTML
    name: str = ""
    interval_s: int | None = None
    timeout_s: float | None = None
    headers: tuple[tuple[str, str], ...] = ()  # values already resolved from the environment
    header_templates: tuple[tuple[str, str], ...] = ()  # as written, safe to store and show
    content: str | None = None  # CSS selector of the main content
    exclude: tuple[str, ...] = ()  # CSS selectors removed before extraction
    allow_private: bool = False  # allow fetching loopback/private addresses (tests, intranet)
    forward_headers: bool = False  # send the configured headers to another origin a redirect leads to
    select: str | None = None  # json: a JMESPath expression choosing what is compared
    ignore: tuple[str, ...] = ()  # json, ckan, geo: keys ignored wherever they appear
    organization: str | None = None  # ckan: the organisation whose datasets are watched
    expect: str | None = None  # availability: text that must be on the page (a login form's label...)

    @property
    def key(self) -> str:
        return f"{self.service_id}#{self.position}"

    @property
    def label(self) -> str:
        return page_label(self.url)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceConfig:
    id: str
    name: str
    department: str
    regulation: Regulation
    department_id: str = ""
    suspended: bool = False
    responsible: str = ""
    contact: str = ""
    working_days: bool = False
    real_update_classes: frozenset[ChangeClass] = DEFAULT_REAL_CLASSES
    aliases: tuple[str, ...] = ()
    pages: tuple[PageConfig, ...] = ()

    @property
    def monitored(self) -> bool:
        return bool(self.pages)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportSettings:
    """How the self-report form maps to our fields, and how the audit matches reports with changes."""

    questions: tuple[tuple[str, tuple[str, ...]], ...] = ()  # field -> extra question titles or ids
    timezone: str = "Europe/Kyiv"
    date_order: str = ""  # "dmy" or "mdy" for every file; "" decides per file from its unambiguous dates
    since: date | None = None  # the first day a report may name or be submitted on (the order's date)
    tolerance_s: float = 0.0  # extra leniency around a claimed day (the checks' windows already date updates)
    min_coverage: float = 0.8


@dataclass(frozen=True, slots=True, kw_only=True)
class Department:
    id: str
    name: str
    aliases: tuple[str, ...] = ()  # other spellings the departments write in the report form


@dataclass(frozen=True, slots=True, kw_only=True)
class Catalogue:
    settings: Settings
    services: tuple[ServiceConfig, ...]
    source: str = "targets.toml"
    reports: ReportSettings = field(default_factory=ReportSettings)
    departments: tuple[Department, ...] = ()

    def department_name(self, department_id: str) -> str:
        for d in self.departments:
            if d.id == department_id:
                return d.name
        return next((s.department for s in self.services if s.department_id == department_id), department_id)

    def service(self, service_id: str) -> ServiceConfig:
        for s in self.services:
            if s.id == service_id:
                return s
        raise KeyError(service_id)

    @property
    def pages(self) -> tuple[PageConfig, ...]:
        return tuple(p for s in self.services for p in s.pages)


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """A page to check, with its service, its id in the store and its learned noise."""

    page: PageConfig
    service: ServiceConfig
    page_id: int
    interval_s: int
    noise_paths: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeEvent:
    """A detected change event (real or date-only), as the audit sees it."""

    id: int
    url: str
    change_class: str
    is_real: bool
    window_start: datetime | None  # the previous good check: the change happened after it...
    detected_at: datetime  # ...and before this check
    added: int = 0
    removed: int = 0
    edited: int = 0
    evidence: str = ""  # the address (SHA-256) of the stored evidence: its diff, links and documents

    @property
    def start(self) -> datetime:
        return self.window_start or self.detected_at


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportEntry:
    """A stored self-report."""

    id: int
    service_id: str
    submitted_at: datetime
    reported_for: datetime
    what: str = ""
    who: str = ""
    link: str = ""
    source: str = ""  # the file and its row (the CSV record's number, the header being row 1)
    service_text: str = ""  # the service as the department typed it
    department_text: str = ""  # the department as it named itself in the form


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportRow:
    """A self-report parsed from the form's responses, ready to store."""

    identity: str  # its parsed content (time, service, claimed day, text): the same response in any export
    row_hash: str  # the exact cells as written
    service_id: str
    service_text: str  # the service as the department wrote it
    submitted_at: datetime
    reported_for: datetime
    what: str = ""
    who: str = ""
    email: str = ""
    link: str = ""
    source: str = ""
    department_text: str = ""


REJECTION_TEXT: Mapping[str, Mapping[str, str]] = {
    "en": {
        "no_service": "no service named",
        "unknown_service": "unknown service '{name}' (add it to the service's aliases in targets.toml if it is one)",
        "no_timestamp": "no submission time",
        "bad_timestamp": "'{text}' is not a timestamp (e.g. 11/30/2026 14:35:00, 30.11.2026 14:35:00, "
                         "2026/11/30 2:35:00 PM GMT+2)",
        "bad_date": "the date of the update '{text}' is not a date (e.g. 30.11.2026 or 11/30/2026)",
        "future": "submitted in the future ({sent})",
        "after_submission": "reports an update on {named} after it was submitted ({sent})",
        "submitted_early": "submitted on {sent}, before reports began ([reports] since = {since})",
        "claimed_early": "reports an update on {named}, before reports began ([reports] since = {since})",
        "cell_count": "{cells} cells where the header has {header}",
        "malformed": "malformed CSV: {detail}",
        "not_object": "a response is not an object",
        "text": "{text}",
    },
    "uk": {
        "no_service": "не зазначено сервіс",
        "unknown_service": "невідомий сервіс «{name}» (якщо це один із сервісів, додайте цю назву до його aliases "
                           "у targets.toml)",
        "no_timestamp": "немає часу подання",
        "bad_timestamp": "«{text}» — не час подання (приклади: 11/30/2026 14:35:00, 30.11.2026 14:35:00, "
                         "2026/11/30 2:35:00 PM GMT+2)",
        "bad_date": "дата оновлення «{text}» — не дата (приклади: 30.11.2026, 11/30/2026)",
        "future": "подано в майбутньому ({sent})",
        "after_submission": "заявлене оновлення {named} пізніше за подання ({sent})",
        "submitted_early": "подано {sent}, до початку звітування ([reports] since = {since})",
        "claimed_early": "заявлене оновлення {named} — до початку звітування ([reports] since = {since})",
        "cell_count": "{cells} комірок, а в заголовку {header}",
        "malformed": "пошкоджений CSV: {detail}",
        "not_object": "відповідь не є об'єктом",
        "text": "{text}",
    },
}


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a submitted row is not a report: a code from REJECTION_TEXT and what fills its text, so that every
    output can say it in its language (and JSON can keep the code)."""

    code: str
    args: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, code: str, **args: object) -> Reason:
        return cls(code, tuple(sorted((k, str(v)) for k, v in args.items())))

    def text(self, lang: str = "en") -> str:
        template = REJECTION_TEXT.get(lang, REJECTION_TEXT["en"]).get(self.code)
        return template.format(**dict(self.args)) if template else " ".join([self.code, *(v for _, v in self.args)])


def reasons_text(reasons: Sequence[Reason], lang: str = "en") -> str:
    return "; ".join(r.text(lang) for r in reasons)


@dataclass(frozen=True, slots=True, kw_only=True)
class RejectedRow:
    """A submitted row that could not be taken as a report: kept with its reason, so that it is accounted for."""

    identity: str  # as much of its parsed content as could be read: the same row in any export is one
    source: str  # file:row
    row: int
    reasons: tuple[Reason, ...]
    cells: tuple[str, ...] = ()  # the record as written
    service_id: str | None = None  # when the service was recognised
    service_text: str = ""
    department_text: str = ""
    submitted_at: datetime | None = None
    reported_for: datetime | None = None
    placed_at: datetime | None = None  # where audits list it: its claimed day, else its submission, when usable
    what: str = ""
    who: str = ""
    link: str = ""

    @property
    def reason(self) -> str:
        return reasons_text(self.reasons)

    def __str__(self) -> str:
        return f"row {self.row}: {self.reason}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RejectedEntry:
    """A stored rejected row."""

    id: int
    source: str
    reasons: tuple[Reason, ...]
    service_id: str | None
    service_text: str
    department_text: str
    submitted_at: datetime | None
    reported_for: datetime | None
    what: str
    link: str
    imported_at: datetime


# --- fetch ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Validators:
    """What a conditional GET sends back to the server."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchResult:
    url: str
    final_url: str
    outcome: Outcome
    started_at: datetime
    elapsed_s: float
    status: int | None = None
    body: bytes | None = None
    content_type: str = ""
    charset: str | None = None  # as declared in the Content-Type header
    etag: str | None = None
    last_modified: str | None = None
    redirects: int = 0
    http_version: str = ""
    tls_expires_at: datetime | None = None
    retry_after_s: float | None = None
    attempts: int = 1
    error: str = ""
    challenge: bool = False  # the response carries a bot-protection marker (cf-mitigated, x-amzn-waf-action)
    source: str = ""  # where the capture comes from: "" live, else the archive or file it was read from
    size: int = 0  # bytes of the body: always len(body); kept when the body is dropped (replace(r, body=None))

    def __post_init__(self) -> None:
        if self.body is not None:
            object.__setattr__(self, "size", len(self.body))


class Fetch(Protocol):
    """What capturing needs of a fetcher (monitor.fetch.Fetcher; tests pass their own)."""

    async def fetch(self, url: str, *, headers: tuple[tuple[str, str], ...] = (), timeout_s: float | None = None,
                    validators: Validators | None = None, allow_private: bool = False,
                    probe: bool = False, forward_headers: bool = False) -> FetchResult: ...


# --- content model --------------------------------------------------------------------------


class Region(StrEnum):
    MAIN = "main"
    CHROME = "chrome"  # header, navigation, footer, asides


@dataclass(frozen=True, slots=True, kw_only=True)
class Block:
    path: str  # structural path, e.g. "main/article[2]/p[3]"
    text: str  # normalised text (not masked)
    region: Region = Region.MAIN
    volatile: str = ""  # changes by itself, by its markup: "numbers" (a view counter) or "all" (a clock, a slider)


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    url: str  # absolute, canonical
    text: str = ""


class Quality(StrEnum):
    """Whether a capture is the page's content at all."""

    OK = "ok"
    EMPTY = "empty"
    SOFT_404 = "soft_404"
    CHALLENGE = "challenge"  # bot wall / WAF
    MAINTENANCE = "maintenance"
    SERVER_ERROR = "server_error"  # an error page served with 200
    HOME_REDIRECT = "home_redirect"
    TRUNCATED = "truncated"
    UNREADABLE = "unreadable"  # not parseable as the declared kind
    TOO_COSTLY = "too_costly"  # reading it went over a limit of CPU time or memory (a hostile or broken page)


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """An item a source dates itself: a dataset with its metadata_modified and update_frequency."""

    key: str
    title: str = ""
    modified_at: datetime | None = None
    frequency: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Content:
    """The common model every kind extracts into: ordered blocks, links, documents, declared dates."""

    title: str = ""
    blocks: tuple[Block, ...] = ()
    visible_text: str = ""  # all visible text, when the blocks hold only the main content
    links: tuple[Link, ...] = ()  # links found in the main content
    documents: tuple[Link, ...] = ()  # linked documents (pdf, docx, xlsx...) in the main content
    declared_at: datetime | None = None  # a date the source itself states ("оновлено ...")
    quality: Quality = Quality.OK
    quality_reason: str = ""
    mask: bool = True  # mask volatile tokens (pages, feeds, documents); data values (JSON, CKAN, GIS) are exact
    records: tuple[Record, ...] = ()  # items with their own dates and declared frequency (CKAN datasets)

    @property
    def main_blocks(self) -> tuple[Block, ...]:
        return tuple(b for b in self.blocks if b.region is Region.MAIN)


@dataclass(frozen=True, slots=True, kw_only=True)
class Fingerprints:
    """Layered fingerprints of one capture (hex digests)."""

    raw: str  # bytes as served
    text: str  # all visible text
    main: str  # main-content text
    main_dated: str  # main text with volatile tokens masked except dates
    main_masked: str  # main text with every volatile token masked
    links: str
    documents: str

    @property
    def version_key(self) -> tuple[str, str, str]:
        """What makes a new stored version: anything a person would call a change, beyond cosmetics."""
        return (self.main_dated, self.links, self.documents)


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """What changed, compactly: counts and a readable diff."""

    added: int = 0
    removed: int = 0
    edited: int = 0
    diff: str = ""  # unified-style diff of main text
    links_added: tuple[str, ...] = ()
    links_removed: tuple[str, ...] = ()
    documents_added: tuple[str, ...] = ()
    documents_removed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    change_class: ChangeClass
    evidence: Evidence = field(default_factory=Evidence)
    flapped: bool = False  # equal to an older version: not a new change

    @property
    def is_change(self) -> bool:
        """The one rule of what counts as a change event: date_only and up, and not a flap back."""
        return self.change_class.is_change and not self.flapped


def dump_content(content: Content) -> bytes:
    """A stable JSON form of a Content, for storage and evidence."""
    data = {
        "title": content.title,
        "visible_text": content.visible_text,
        "blocks": [[b.path, b.region.value, b.text, b.volatile] for b in content.blocks],
        "links": [[link.url, link.text] for link in content.links],
        "documents": [[d.url, d.text] for d in content.documents],
        "declared_at": content.declared_at.isoformat() if content.declared_at else None,
        "quality": content.quality.value,
        "mask": content.mask,
        "records": [[r.key, r.title, r.modified_at.isoformat() if r.modified_at else None, r.frequency]
                    for r in content.records],
    }
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def load_content(data: bytes) -> Content:
    raw = json.loads(data)
    return Content(
        title=raw.get("title", ""),
        visible_text=raw.get("visible_text", ""),
        blocks=tuple(Block(path=p, region=Region(r), text=t, volatile=v) for p, r, t, v in raw.get("blocks", [])),
        links=tuple(Link(url=u, text=t) for u, t in raw.get("links", [])),
        documents=tuple(Link(url=u, text=t) for u, t in raw.get("documents", [])),
        declared_at=datetime.fromisoformat(raw["declared_at"]) if raw.get("declared_at") else None,
        quality=Quality(raw.get("quality", "ok")),
        mask=bool(raw.get("mask", True)),
        records=tuple(Record(key=k, title=t, modified_at=datetime.fromisoformat(m) if m else None, frequency=f)
                      for k, t, m, f in raw.get("records", [])),
    )


# --- state and records exchanged with the store -----------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionRef:
    """A stored version, as much as detection needs without loading its content."""

    key_hash: str
    fingerprints: Fingerprints
    version_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PageState:
    """What the core needs to know of a page's past: now (the runner keeps it) or at a past time (state_at)."""

    page_id: int
    last_check_at: datetime | None = None
    last_success_at: datetime | None = None
    last_full_fetch_at: datetime | None = None
    validators: Validators = field(default_factory=Validators)
    last_size: int | None = None  # bytes of the last full capture (to tell a truncated body)
    last_fingerprints: Fingerprints | None = None  # of the last full capture (in memory: skips re-extraction)
    last_noise: frozenset[str] = frozenset()  # the noise rules the last capture was fingerprinted with
    recent: tuple[VersionRef, ...] = ()  # newest last; the last one is the current version

    @property
    def current(self) -> VersionRef | None:
        return self.recent[-1] if self.recent else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Successor:
    """The first stored capture after a late one, and the change recorded at it (if any): what the late capture
    may prove wrong."""

    checked_at: datetime
    version_key: str
    change_id: int | None = None  # the change recorded at this capture
    change_from: str | None = None  # the version that change came from


@dataclass(frozen=True, slots=True, kw_only=True)
class Revision:
    """What a late capture changes about the change recorded at its successor: a new change record from the
    late capture's version to the successor's (class NONE when they are the same version), which supersedes
    the one recorded before, if any. Records are never edited: the correction is a record of its own."""

    supersedes: int | None
    from_key: str
    to_key: str
    detected_at: datetime  # the successor's capture
    window_start: datetime  # the late capture
    verdict: Verdict
    is_real: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckRecord:
    """Everything one check produced, written by the store in one transaction."""

    page_id: int
    fetch: FetchResult
    outcome: Outcome
    worker: str = ""
    quality: Quality | None = None
    fingerprints: Fingerprints | None = None
    version_key: str | None = None  # hash of Fingerprints.version_key
    new_version: bool = False  # a version key this page has not had before
    content_blob: bytes | None = None  # serialised Content, only with a new version
    raw_blob: bytes | None = None  # bytes as served, only with a new version
    declared_at: datetime | None = None
    verdict: Verdict | None = None
    previous_key: str | None = None  # the version this capture was judged against: its predecessor in time
    is_real: bool = False  # a change of a class that counts as a real update for the service
    window_start: datetime | None = None  # the previous successful check
    full_fetch: bool = False  # a 200 with a body (not a 304)
    revision: Revision | None = None  # a late capture: what it changes about the change at its successor
    evidence_pending: bool = False  # a change decided while the previous version was out of reach

    @property
    def is_change(self) -> bool:
        """A change event to record: from `previous_key` to `version_key`."""
        return (self.verdict is not None and self.verdict.is_change and self.previous_key is not None
                and self.version_key is not None and self.previous_key != self.version_key)
