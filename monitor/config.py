"""targets.toml -> a validated Catalogue. Every problem is collected and reported at once.

One declaration per table (``SETTINGS``, ``SERVICE``, ``PAGE``, ``DEPARTMENT``) drives parsing,
validation, the error messages and the reference table in docs/operators.md (``monitor targets keys``).
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor import kinds
from monitor.domain import (
    DEFAULT_REAL_CLASSES,
    Catalogue,
    ChangeClass,
    Department,
    Engine,
    Kind,
    PageConfig,
    Regulation,
    ReportSettings,
    ServiceConfig,
    Settings,
    redact_url,
)
from monitor.errors import ConfigError, Problem

ENV_PREFIX = "MONITOR_"
ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
ENV_REF_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}

# The order's own wording of the regulations, accepted beside the ids.
REGULATION_ALIASES: dict[str, Regulation] = {
    "щодня": Regulation.DAILY,
    "за потреби": Regulation.AS_NEEDED,
    "щотижня": Regulation.WEEKLY,
    "щомісяця": Regulation.MONTHLY,
    "щокварталу": Regulation.QUARTERLY,
    "щороку": Regulation.YEARLY,
}


class Invalid(ValueError):
    """Raised by a parser; the message says what is allowed."""


Parser = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Key:
    """One allowed key of a table: how to parse it and what it means."""

    name: str
    parse: Parser
    help: str
    required: bool = False
    allowed: str = ""  # human description of allowed values, shown in errors and docs


# --- value parsers ----------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "table"}.get(
        type(value), type(value).__name__
    )


def p_str(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(f"expected a string, got {_type_name(value)}")
    return value


def p_nonempty(value: Any) -> str:
    s = p_str(value).strip()
    if not s:
        raise Invalid("must not be empty")
    return s


def p_id(value: Any) -> str:
    s = p_str(value)
    if not ID_RE.match(s):
        raise Invalid(f"{s!r} is not an id (lower-case letters, digits and '-', at most 63, e.g. 'open-data')")
    return s


def p_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, got {_type_name(value)}")
    return value


def p_int_range(lo: int, hi: int) -> Parser:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"expected an integer, got {_type_name(value)}")
        if not lo <= value <= hi:
            raise Invalid(f"{value} is out of range ({lo}..{hi})")
        return value

    return parse


def parse_duration(value: Any) -> float:
    """'90s', '15m', '1h', '2d', '1w' or a number of seconds."""
    if isinstance(value, bool):
        raise Invalid("expected a duration like '30s', '15m', '1h', '1d' or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := DURATION_RE.match(value)):
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    else:
        raise Invalid(f"{value!r} is not a duration (e.g. '30s', '15m', '1h', '1d' or seconds)")
    if seconds <= 0:
        raise Invalid("must be positive")
    return seconds


def format_duration(seconds: float) -> str:
    """The largest whole unit: 60 -> '1m', 2592000 -> '30d', 90 -> '90s' (the form the file is written in)."""
    for unit in ("w", "d", "h", "m"):
        size = _UNIT_S[unit]
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def p_duration_range(lo_s: float, hi_s: float) -> Parser:
    def parse(value: Any) -> float:
        seconds = parse_duration(value)
        if not lo_s <= seconds <= hi_s:
            raise Invalid(f"{value!r} is out of range ({format_duration(lo_s)}..{format_duration(hi_s)})")
        return seconds

    return parse


def p_enum(enum: type[Any], aliases: Mapping[str, Any] | None = None) -> Parser:
    def parse(value: Any) -> Any:
        s = p_str(value)
        try:
            return enum(s)
        except ValueError:
            if aliases and s.strip().lower() in aliases:
                return aliases[s.strip().lower()]
            known = ", ".join(m.value for m in enum)
            hint = _did_you_mean(s, [m.value for m in enum])
            raise Invalid(f"unknown value {s!r}{hint} (known: {known})") from None

    return parse


_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")  # underscores: not in host names, yet in use


def valid_host(host: str) -> bool:
    """An IP address, or a DNS name (internationalised names in their ASCII form) of valid labels."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    try:
        ascii_name = host.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        return False
    return 0 < len(ascii_name) <= 253 and all(_LABEL.match(label) for label in ascii_name.split("."))


def p_url(value: Any) -> str:
    s = p_nonempty(value)
    shown = redact_url(s)  # an address may hold a password or a token: messages never show them
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in s):
        raise Invalid(f"{shown!r} holds spaces or control characters (encode them: %20)")
    try:
        parts = urlsplit(s)
        port = parts.port
    except ValueError as exc:
        raise Invalid(f"{shown!r} is not a usable URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise Invalid(f"{shown!r} is not an http(s) URL")
    if not parts.hostname:
        raise Invalid(f"{shown!r} has no host")
    if not valid_host(parts.hostname):
        raise Invalid(f"{shown!r}: {parts.hostname!r} is not a valid host name or address")
    if port == 0:
        raise Invalid(f"{shown!r}: port 0 is not a port")
    return s


def p_str_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise Invalid("expected a list of non-empty strings")
    return tuple(v.strip() for v in value)


def p_headers(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise Invalid(f"expected a table of header = value, got {_type_name(value)}")
    out = []
    for name, v in value.items():
        if not re.match(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", name):
            raise Invalid(f"{name!r} is not a valid header name")
        if not isinstance(v, str):
            raise Invalid(f"header {name!r}: expected a string value")
        if problem := header_value_problem(v):
            raise Invalid(f"header {name!r}: its value {problem} (the value is not shown)")
        out.append((name, v))
    return tuple(out)


def header_value_problem(value: str) -> str | None:
    """Why a header value cannot be sent as it is (a line break would end the header and start another), or
    None. Header values are printable ASCII: RFC 9110 allows no more for safety across servers."""
    if any(ch in "\r\n\0" for ch in value):
        return "holds a line break or a NUL"
    if not all(32 <= ord(ch) < 127 or ch == "\t" for ch in value):
        return "holds characters other than printable ASCII"
    if value != value.strip():
        return "starts or ends with white space"
    return None


def p_change_classes(value: Any) -> frozenset[ChangeClass]:
    items = p_str_list(value)
    parse = p_enum(ChangeClass)
    classes = frozenset(parse(v) for v in items)
    if ChangeClass.NONE in classes:
        raise Invalid("'none' cannot count as an update")
    return classes


def p_timezone(value: Any) -> str:
    s = p_nonempty(value)
    try:
        ZoneInfo(s)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"unknown time zone {s!r} (an IANA name like 'Europe/Kyiv')") from None
    return s


def p_listen(value: Any) -> str:
    s = p_nonempty(value)
    _host, sep, port = s.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise Invalid(f"{s!r} is not host:port (e.g. '127.0.0.1:9464')")
    return s


def p_user_agent(value: Any) -> str:
    s = p_nonempty(value)
    if "@" not in s and "http" not in s:
        raise Invalid("must carry a contact (an e-mail address or a URL) so site owners can reach us")
    return s


def p_database_url(value: Any) -> str:
    s = p_nonempty(value)
    if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", s):
        raise Invalid(f"{s!r} is not a sqlite:/// or postgresql:// URL")
    return s


# --- table declarations -----------------------------------------------------------------------

SETTINGS: tuple[Key, ...] = (
    Key("database_url", p_database_url, "SQLAlchemy URL of the store; a SQLite file by default.",
        allowed="sqlite:///FILE or postgresql+psycopg://..."),
    Key("engine", p_enum(Engine), "What runs the checks: `embedded` (one process, any database) or "
        "`procrastinate` (`monitor worker` processes on any machines, over PostgreSQL).",
        allowed="embedded or procrastinate"),
    Key("worker_stalled_after", p_duration_range(10, 3600), "procrastinate engine: a worker that has not "
        "beaten for this long is gone; the checks it was running are retried by another."),
    Key("user_agent", p_user_agent, "User-Agent sent with every request; must carry a contact."),
    Key("concurrency", p_int_range(1, 256), "Checks running at once, all hosts together."),
    Key("per_host_concurrency", p_int_range(1, 64), "Requests at once to one host."),
    Key("per_host_delay", p_duration_range(0.0001, 600), "Minimum pause between two requests to one host."),
    Key("metrics_listen", p_listen, "host:port where `monitor run` serves /metrics and /healthz."),
    Key("timezone", p_timezone, "Time zone of the regulation periods (days, weeks, months, quarters)."),
    Key("timeout", p_duration_range(1, 600), "Total time allowed for one fetch, retries included."),
    Key("connect_timeout", p_duration_range(0.1, 120), "Time allowed to connect."),
    Key("max_body_bytes", p_int_range(1024, 1 << 31), "Largest decoded body accepted."),
    Key("max_redirects", p_int_range(0, 30), "Redirects followed before giving up."),
    Key("retries", p_int_range(0, 10), "Retries of a transient failure (timeouts, resets, 429, 5xx)."),
    Key("full_fetch_every", p_duration_range(60, 30 * 86400),
        "Longest time conditional GETs may stand in for a full fetch."),
    Key("anti_flap_versions", p_int_range(1, 100), "A version equal to one of the last N is not a new change."),
    Key("working_days_holidays", p_nonempty, "Country code of the public holidays that working days skip."),
    Key("calibration_delay", p_duration_range(0.01, 300),
        "Pause between the two captures of a calibration (blocks that differ are the page's own noise)."),
    Key("calibration_every", p_duration_range(3600, 365 * 86400), "How often each page is calibrated again."),
    Key("keep_checks", p_duration_range(86400, 20 * 365 * 86400),
        "Check rows older than this are summarised per page and day, then removed (`monitor db prune`)."),
    Key("keep_raw", p_duration_range(86400, 20 * 365 * 86400),
        "Raw captures of versions not seen for this long are dropped (extracted content and evidence stay)."),
    Key("slow", p_duration_range(0.1, 600), "A check slower than this is a slow response in `monitor faults`."),
    Key("link_check_every", p_duration_range(3600, 365 * 86400),
        "How often the links of each page to its own site are checked for the faults list."),
    Key("link_check_max", p_int_range(0, 1000), "At most this many links of a page per link check (0: none)."),
    Key("read_workers", p_int_range(0, 64), "Processes that read captures, each within the limits below (0: in the "
        "monitor's own process, without limits)."),
    Key("read_cpu", p_duration_range(1, 3600), "CPU time one capture may take to read; over it, a bad capture."),
    Key("read_memory", p_int_range(128 << 20, 1 << 40), "Bytes of memory a reading process may use; over it, "
        "a bad capture."),
    Key("web_listen", p_listen, "host:port where `monitor serve` serves the web interface (and /metrics)."),
    Key("external_url", p_url, "The web interface's address as people reach it (for links in alerts and feeds)."),
    Key("grafana_url", p_url, "Grafana's address: service pages link to the service dashboard there."),
    Key("web_user_header", p_str, "A header a trusted reverse proxy sets to the signed-in user's name "
        "(e.g. X-Remote-User); empty: log in with the accounts of `monitor users`."),
    Key("web_trusted_proxies", p_str_list, "Addresses of the reverse proxies whose `web_user_header` is believed "
        "(none by default)."),
    Key("metrics_clients", p_str_list, "Addresses allowed to read /metrics from `monitor serve` (the series name "
        "responsible people and page addresses; loopback by default)."),
)

DEPARTMENT: tuple[Key, ...] = (
    Key("name", p_nonempty, "The department's name exactly as the services give it.", required=True),
    Key("email", p_str, "Where the department's alerts go (Alertmanager receiver)."),
    Key("webhook", p_str, "A webhook URL for the department's alerts, instead of or beside e-mail."),
    Key("aliases", p_str_list, "Other names the department gives itself in the report form (\"УСЗН\")."),
)

SERVICE: tuple[Key, ...] = (
    Key("id", p_id, "Our stable id of the service (used in labels and commands).", required=True),
    Key("name", p_nonempty, "Name exactly as the order writes it.", required=True),
    Key("department", p_nonempty, "Responsible department exactly as the order writes it.", required=True),
    Key("regulation", p_enum(Regulation, REGULATION_ALIASES), "Update regulation (annex 2 of the order).",
        required=True, allowed=", ".join(r.value for r in Regulation)),
    Key("suspended", p_bool, "Kept and shown, but never alerted on."),
    Key("responsible", p_str, "Person responsible for the content (item 1.1 of the order)."),
    Key("contact", p_str, "How to reach the responsible person."),
    Key("working_days", p_bool, "Count a daily regulation in working days (weekends, public holidays skipped)."),
    Key("real_update_classes", p_change_classes, "Change classes that count as a real update.",
        allowed=", ".join(c.value for c in ChangeClass if c is not ChangeClass.NONE)),
    Key("aliases", p_str_list, "Other spellings of the name, for matching self-reports."),
    Key("pages", lambda v: v, "The service's addresses ([[services.pages]])."),
)

PAGE: tuple[Key, ...] = (
    Key("url", p_url, "Address to fetch.", required=True),
    Key("kind", p_enum(Kind), "How to read the page.", allowed=", ".join(k.value for k in Kind)),
    Key("name", p_str, "A short label for the page."),
    Key("interval", p_duration_range(60, 30 * 86400), "Check interval; the default follows the regulation."),
    Key("timeout", p_duration_range(1, 600), "Total fetch time for this page."),
    Key("headers", p_headers, "Extra request headers; values may use ${ENV_VAR} for secrets."),
    Key("content", p_nonempty, "CSS selector of the main content (overrides detection)."),
    Key("exclude", p_str_list, "CSS selectors removed before extraction (widgets, counters)."),
    Key("allow_private", p_bool, "Allow loopback/private addresses (intranet services, tests)."),
    Key("forward_headers", p_bool, "Send the configured headers to another site a redirect leads to "
        "(they are dropped by default)."),
    Key("select", p_nonempty, "json: a JMESPath expression choosing what is compared (e.g. 'results[0].version')."),
    Key("ignore", p_str_list, "json, ckan, geo: keys ignored wherever they appear (timestamps of the API itself)."),
    Key("organization", p_nonempty, "ckan: the organisation (name or id) whose datasets are watched."),
    Key("expect", p_nonempty, "availability: text the page must contain (e.g. the login form's label)."),
)

def p_date_order(value: Any) -> str:
    s = p_str(value).strip().lower()
    if s not in ("dmy", "mdy"):
        raise Invalid(f"{value!r}: expected \"dmy\" (day first, 05/01 is 5 January) or \"mdy\" (month first)")
    return s


def p_day(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(p_str(value).strip())
    except ValueError:
        raise Invalid(f"{value!r} is not a day (YYYY-MM-DD)") from None


def p_share(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise Invalid("expected a share between 0 and 1 (e.g. 0.8)")
    return float(value)


REPORTS: tuple[Key, ...] = (
    Key("service", p_str_list, "Form question(s) (titles or question ids) naming the service."),
    Key("updated_on", p_str_list, "Question(s) giving the date of the update (else the form's timestamp)."),
    Key("what", p_str_list, "Question(s) describing what was updated."),
    Key("who", p_str_list, "Question(s) naming who updated."),
    Key("link", p_str_list, "Question(s) giving a link to the update."),
    Key("department", p_str_list, "Question(s) naming the department that files the report."),
    Key("timezone", p_timezone, "Zone of timestamps written without one (the form owner's zone)."),
    Key("date_order", p_date_order, "How to read 05/01/2026 in every file: day first (en-GB) or month first "
        "(en-US). Unset: decided per file from its unambiguous dates; an ambiguous file is refused.",
        allowed="dmy, mdy"),
    Key("since", p_day, "The first day a report may be submitted or name (the order's date): earlier rows are "
        "rejected."),
    Key("tolerance", p_duration_range(0, 30 * 86400), "Extra leniency around a claimed day (none by default)."),
    Key("min_coverage", p_share, "Share of a period the monitor must have watched to judge it."),
)

_SETTINGS_FIELD = {
    "per_host_delay": "per_host_delay_s",
    "worker_stalled_after": "worker_stalled_after_s",
    "timeout": "timeout_s",
    "connect_timeout": "connect_timeout_s",
    "full_fetch_every": "full_fetch_every_s",
    "calibration_delay": "calibration_delay_s",
    "calibration_every": "calibration_every_s",
    "keep_checks": "keep_checks_s",
    "keep_raw": "keep_raw_s",
    "slow": "slow_s",
    "link_check_every": "link_check_every_s",
    "read_cpu": "read_cpu_s",
    "read_memory": "read_memory_bytes",
}

TOP_LEVEL = ("settings", "departments", "services", "reports")


# --- loading ---------------------------------------------------------------------------------


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, where: str, message: str) -> None:
        self.problems.append(Problem(where=where, message=message))

    def table(self, where: str, raw: Any, keys: tuple[Key, ...]) -> dict[str, Any]:
        """Parse one table against its declaration; unknown keys and bad values become problems."""
        if not isinstance(raw, dict):
            self.add(where, f"expected a table, got {_type_name(raw)}")
            return {}
        known = {k.name: k for k in keys}
        out: dict[str, Any] = {}
        for name, value in raw.items():
            key = known.get(name)
            if key is None:
                self.add(where, f"unknown key {name!r}{_did_you_mean(name, list(known))} "
                         f"(allowed: {', '.join(known)})")
                continue
            try:
                out[name] = key.parse(value)
            except Invalid as exc:
                self.add(f"{where} key {name!r}", str(exc))
        for key in keys:
            if key.required and key.name not in raw:
                self.add(where, f"missing required key {key.name!r}")
        return out


def _from_env(key: Key, raw: str) -> Any:
    """Environment values are strings: try the typed reading first, then the string itself."""
    candidates: list[Any] = []
    if re.fullmatch(r"-?\d+", raw.strip()):
        candidates.append(int(raw))
    elif re.fullmatch(r"-?\d+\.\d*", raw.strip()):
        candidates.append(float(raw))
    if raw.strip().lower() in ("true", "false"):
        candidates.append(raw.strip().lower() == "true")
    candidates.append(raw)
    error: Invalid | None = None
    for candidate in candidates:
        try:
            return key.parse(candidate)
        except Invalid as exc:
            error = error or exc
    assert error is not None
    raise error


def _settings(c: _Collector, raw: Any, environ: Mapping[str, str]) -> Settings:
    values = c.table("[settings]", raw if raw is not None else {}, SETTINGS)
    for key in SETTINGS:
        env_name = ENV_PREFIX + key.name.upper()
        if env_name in environ:
            try:
                values[key.name] = _from_env(key, environ[env_name])
            except Invalid as exc:
                c.add(f"environment {env_name}", str(exc))
    if values.get("engine") is Engine.PROCRASTINATE and not str(values.get("database_url", "")).startswith("postgres"):
        c.add("[settings] engine", "the procrastinate engine runs over PostgreSQL: set database_url to a "
              "postgresql:// address, or engine = \"embedded\" for a SQLite file")
    kwargs = {_SETTINGS_FIELD.get(k, k): v for k, v in values.items()}
    names = {f.name for f in fields(Settings)}
    return Settings(**{k: v for k, v in kwargs.items() if k in names})


ENV_OTHERS = ("MONITOR_TARGETS", "MONITOR_LOG_LEVEL", "MONITOR_LOG_FORMAT",
              "MONITOR_WEB_SECRET", "MONITOR_TEST_OUTPUT", "MONITOR_PYWB")


def _unknown_environment(c: _Collector, env: Mapping[str, str], data: Mapping[str, Any]) -> None:
    """A MONITOR_* variable that sets nothing is a typo (MONITOR_CONCURENCY=4 was ignored silently): named,
    with what it may have meant. Variables the catalogue's headers refer to (${MONITOR_TOKEN}) are theirs."""
    known = [ENV_PREFIX + k.name.upper() for k in SETTINGS] + list(ENV_OTHERS)
    referred = set(ENV_REF_RE.findall(str(data.get("services", ""))))
    for name in sorted(env):
        if name.startswith(ENV_PREFIX) and name not in known and name not in referred:
            c.add(f"environment {name}", f"sets nothing{_did_you_mean(name, known)} (the settings' variables are "
                  f"{ENV_PREFIX}<KEY> for the keys of [settings])")


def _resolve_headers(
    c: _Collector, where: str, templates: tuple[tuple[str, str], ...], environ: Mapping[str, str]
) -> tuple[tuple[str, str], ...]:
    resolved = []
    for name, template in templates:
        missing = [v for v in ENV_REF_RE.findall(template) if v not in environ]
        if missing:
            c.add(f"{where} key 'headers'", f"header {name!r} refers to unset environment variable(s) "
                  f"{', '.join(missing)}")
            continue
        value = ENV_REF_RE.sub(lambda m: environ[m.group(1)], template)
        if problem := header_value_problem(value):
            c.add(f"{where} key 'headers'", f"header {name!r}: its value from the environment {problem} "
                  "(the value is not shown)")
            continue
        resolved.append((name, value))
    return tuple(resolved)


def _url_key(url: str) -> str:
    parts = urlsplit(url)
    path = parts.path.rstrip("/") or "/"
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{parts.port or ''}{path}?{parts.query}"


def parse_catalogue(
    data: Mapping[str, Any], *, source: str = "targets.toml", environ: Mapping[str, str] | None = None
) -> Catalogue:
    """Validate a parsed TOML document; raise ConfigError listing every problem."""
    env = os.environ if environ is None else environ
    c = _Collector()
    for name in data:
        if name not in TOP_LEVEL:
            c.add("", f"unknown top-level table {name!r}{_did_you_mean(name, list(TOP_LEVEL))} "
                  f"(allowed: {', '.join(TOP_LEVEL)})")
    settings = _settings(c, data.get("settings"), env)
    _unknown_environment(c, env, data)

    departments: dict[str, str] = {}  # name -> id
    declared: list[Department] = []
    raw_depts = data.get("departments", {})
    if not isinstance(raw_depts, dict):
        c.add("[departments]", "expected a table of [departments.<id>] tables")
        raw_depts = {}
    for dept_id, raw in raw_depts.items():
        where = f"department {dept_id!r}"
        try:
            p_id(dept_id)
        except Invalid as exc:
            c.add(where, str(exc))
        values = c.table(where, raw, DEPARTMENT)
        if "name" in values:
            if values["name"] in departments:
                c.add(where, f"duplicate department name {values['name']!r} "
                      f"(also department {departments[values['name']]!r})")
            departments[values["name"]] = dept_id
            declared.append(Department(id=dept_id, name=values["name"], aliases=values.get("aliases", ())))

    raw_services = data.get("services", [])
    if not isinstance(raw_services, list):
        c.add("", "'services' must be an array of tables ([[services]])")
        raw_services = []
    elif not raw_services:
        c.add("", "no services: a catalogue lists at least one [[services]] table (see docs/operators.md, "
                  "'Configure targets')")
    services: list[ServiceConfig] = []
    seen_ids: dict[str, int] = {}
    seen_urls: dict[str, str] = {}
    for index, raw in enumerate(raw_services, start=1):
        sid = raw.get("id") if isinstance(raw, dict) else None
        where = f"service {sid!r}" if isinstance(sid, str) else f"service #{index}"
        values = c.table(where, raw, SERVICE)
        if isinstance(sid, str):
            if sid in seen_ids:
                c.add(where, f"duplicate id (services #{seen_ids[sid]} and #{index})")
            seen_ids.setdefault(sid, index)
        dept_name = values.get("department")
        dept_id = departments.get(dept_name, "") if dept_name else ""
        if dept_name and not dept_id:
            c.add(f"{where} key 'department'", f"{dept_name!r} is not declared in [departments]"
                  f"{_did_you_mean(dept_name, list(departments))}")
        pages: list[PageConfig] = []
        raw_pages = values.get("pages", [])
        if not isinstance(raw_pages, list):
            c.add(f"{where} key 'pages'", "expected an array of tables ([[services.pages]])")
            raw_pages = []
        for position, raw_page in enumerate(raw_pages, start=1):
            pwhere = f"{where} page {position}"
            pv = c.table(pwhere, raw_page, PAGE)
            if "url" not in pv:
                continue
            url_key = _url_key(pv["url"])
            if url_key in seen_urls:
                c.add(f"{pwhere} key 'url'", f"duplicate URL {pv['url']!r} (also {seen_urls[url_key]})")
            seen_urls.setdefault(url_key, pwhere)
            kind = pv.get("kind", Kind.HTML)
            kind_spec = kinds.spec(kind)
            for key in sorted(kinds.KIND_OPTIONS & pv.keys() - kind_spec.options):
                accepting = " or ".join(k.value for k in kinds.kinds_accepting(key))
                c.add(f"{pwhere} key {key!r}", f"only for kind {accepting}, not {kind.value!r}")
            if kind_spec.check is not None and (problem := kind_spec.check(pv)):
                c.add(pwhere, problem)
            templates = pv.get("headers", ())
            pages.append(
                PageConfig(
                    service_id=sid if isinstance(sid, str) else f"#{index}",
                    position=position,
                    url=pv["url"],
                    kind=pv.get("kind", Kind.HTML),
                    name=pv.get("name", ""),
                    interval_s=int(pv["interval"]) if "interval" in pv else None,
                    timeout_s=pv.get("timeout"),
                    headers=_resolve_headers(c, pwhere, templates, env),
                    header_templates=templates,
                    content=pv.get("content"),
                    exclude=pv.get("exclude", ()),
                    allow_private=pv.get("allow_private", False),
                    forward_headers=pv.get("forward_headers", False),
                    select=pv.get("select"),
                    ignore=pv.get("ignore", ()),
                    organization=pv.get("organization"),
                    expect=pv.get("expect"),
                )
            )
        if all(k in values for k in ("id", "name", "department", "regulation")):
            services.append(
                ServiceConfig(
                    id=values["id"],
                    name=values["name"],
                    department=values["department"],
                    department_id=dept_id,
                    regulation=values["regulation"],
                    suspended=values.get("suspended", False),
                    responsible=values.get("responsible", ""),
                    contact=values.get("contact", ""),
                    working_days=values.get("working_days", False),
                    real_update_classes=values.get("real_update_classes", DEFAULT_REAL_CLASSES),
                    aliases=values.get("aliases", ()),
                    pages=tuple(pages),
                )
            )
    reports = _reports(c, data.get("reports"))
    if c.problems:
        raise ConfigError(source, c.problems)
    return Catalogue(settings=settings, services=tuple(services), source=source, reports=reports,
                     departments=tuple(declared))


def _reports(c: _Collector, raw: Any) -> ReportSettings:
    values = c.table("[reports]", raw if raw is not None else {}, REPORTS)
    questions = tuple((k, values[k]) for k in ("service", "updated_on", "what", "who", "link", "department")
                      if k in values)
    kwargs: dict[str, Any] = {"questions": questions}
    for key, name in (("timezone", "timezone"), ("date_order", "date_order"), ("since", "since"),
                      ("tolerance", "tolerance_s"), ("min_coverage", "min_coverage")):
        if key in values:
            kwargs[name] = values[key]
    return ReportSettings(**kwargs)


def load_catalogue(path: str | Path, *, environ: Mapping[str, str] | None = None) -> Catalogue:
    """Read and validate a targets file. A relative SQLite path is relative to the file, not to wherever the
    command runs (from another directory it would silently start a new, empty database)."""
    catalogue = parse_catalogue(_read_toml(path), source=str(path), environ=environ)
    url = catalogue.settings.database_url
    relative = url.removeprefix("sqlite:///")
    if url.startswith("sqlite:///") and not relative.startswith(("/", "file:")) and ":memory:" not in url:
        where = (Path(path).resolve().parent / relative).as_posix()
        catalogue = replace(catalogue, settings=replace(catalogue.settings, database_url=f"sqlite:///{where}"))
    return catalogue


MAX_CATALOGUE_BYTES = 4 << 20  # the catalogue of every council of an oblast fits in far less


def _read_toml(path: str | Path) -> dict[str, Any]:
    """A catalogue file read with care: a regular file of a sane size, UTF-8, TOML of a sane depth."""
    p = Path(path)

    def problem(message: str) -> ConfigError:
        return ConfigError(str(p), [Problem(where="", message=message)])

    try:
        info = p.stat()
        if not stat.S_ISREG(info.st_mode):
            raise problem("not a regular file")
        if info.st_size > MAX_CATALOGUE_BYTES:
            raise problem(f"{info.st_size:,} bytes: more than a catalogue ({MAX_CATALOGUE_BYTES:,} at most)")
        with p.open("rb") as fh:
            raw = fh.read(MAX_CATALOGUE_BYTES + 1)
        if len(raw) > MAX_CATALOGUE_BYTES:
            raise problem(f"more than {MAX_CATALOGUE_BYTES:,} bytes")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise problem("file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise problem(f"cannot read: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise problem(f"not valid TOML: {exc}") from None
    except RecursionError:
        raise problem("not valid TOML: nested too deeply") from None


def department_names(path: str | Path) -> dict[str, dict[str, str]]:
    """The [departments] table as written (id -> name, email, webhook), for alert routing."""
    depts = _read_toml(path).get("departments", {})
    return {k: {kk: str(vv) for kk, vv in v.items()} for k, v in depts.items() if isinstance(v, dict)}


def keys_reference() -> str:
    """A Markdown reference of every table and key, generated from the declarations."""
    out = []
    for title, keys in (("[settings]", SETTINGS), ("[departments.<id>]", DEPARTMENT),
                        ("[[services]]", SERVICE), ("[[services.pages]]", PAGE), ("[reports]", REPORTS)):
        out.append(f"\n**{title}**\n\n| key | required | meaning |\n|---|---|---|")
        for k in keys:
            allowed = f" Allowed: {k.allowed}." if k.allowed else ""
            out.append(f"| `{k.name}` | {'yes' if k.required else ''} | {k.help}{allowed} |")
    return "\n".join(out) + "\n"
