"""Self-reports: the departments' Google Forms responses (CSV export or the API's JSON) -> report rows, and the
rows that cannot be reports, each with its reason (kept, so that every submitted row is accounted for).

Pure parsing: header aliases in English, Ukrainian and Russian (hyphens, spaces and case do not matter); the
timestamp forms of every locale; `,` or `;`; UTF-8 with or without a byte-order mark, or windows-1251; quoted
cells with commas and newlines. Whether 05/01/2026 is 5 January or 1 May is decided once per file, from its
unambiguous dates, never row by row. Service names are matched to the catalogue through names and explicit
aliases, tolerant of case, quotes, apostrophes and Latin letters that look Cyrillic (annex 2 writes "AIC");
an unknown service is an error, never a guess. A report's identity is its parsed content (submission time,
service, claimed day, text): the same responses exported in another locale or with another separator are
the same reports.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from monitor.domain import Catalogue, Reason, RejectedRow, ReportRow, ServiceConfig

TIMESTAMP = ("timestamp", "позначка часу", "отметка времени", "часова позначка", "мітка часу")
EMAIL = ("email address", "електронна адреса", "адреса електронної пошти", "адрес электронной почты", "email",
         "e-mail")
# Default question titles of the order's form, per field; [reports] in targets.toml adds more (or question ids).
DEFAULT_QUESTIONS: dict[str, tuple[str, ...]] = {
    "service": ("назва веб-сервісу", "веб-сервіс", "сервіс", "назва сервісу", "service", "web service",
                "веб-сервис", "сервис", "название веб-сервиса"),
    "updated_on": ("дата оновлення", "дата оновлення інформації", "коли оновлено", "date of update", "update date",
                   "updated on", "дата обновления"),
    "what": ("що оновлено", "зміст оновлення", "опис оновлення", "what was updated", "what changed", "description",
             "что обновлено", "описание"),
    "who": ("хто оновив", "відповідальна особа", "піб", "пiб відповідального", "who", "responsible", "кто обновил",
            "ответственный"),
    "link": ("посилання", "посилання на оновлення", "link", "url", "ссылка"),
    "department": ("відділ", "підрозділ", "структурний підрозділ", "назва підрозділу", "назва відділу",
                   "відповідальний підрозділ", "department", "отдел", "подразделение"),
}
_LOOKALIKE = str.maketrans("abcehikmoptxy", "авсенікмортху")  # Latin letters that read as Cyrillic (lower case)
_QUOTES = re.compile(r"[\"'`«»“”„‟’‘ʼ′]")
FUTURE_SLACK = timedelta(days=1)  # a clock or a zone a little off is not a report from the future


def name_key(text: str) -> str:
    """The form of a name used for matching: case, quotes, spaces and look-alike letters do not matter."""
    text = unicodedata.normalize("NFC", text).casefold().translate(_LOOKALIKE)
    text = _QUOTES.sub("", text)
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


def header_key(text: str) -> str:
    """The form of a column title used for matching: "Назва вебсервісу" is "Назва веб-сервісу:"."""
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFC", text).casefold())


@dataclass(slots=True)
class Parsed:
    rows: list[ReportRow] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    file_error: str = ""
    date_order: str = ""  # how the file's slashed dates were read ("dmy", "mdy"; "" when it has none)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportMapping:
    """Which form question feeds which field (titles or question ids), and how to read dates."""

    questions: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: DEFAULT_QUESTIONS)
    tz: str = "Europe/Kyiv"  # the zone of timestamps that carry none (Google exports in the form's zone)
    date_order: str = ""  # "dmy", "mdy", or "" to decide per file from its unambiguous dates
    since: date | None = None  # rows submitted or naming a day before it are rejected

    def merged(self, extra: Mapping[str, Sequence[str]]) -> ReportMapping:
        questions = {k: tuple(v) for k, v in self.questions.items()}
        for key, titles in extra.items():
            questions[key] = tuple(t.strip() for t in titles) + questions.get(key, ())
        return ReportMapping(questions=questions, tz=self.tz, date_order=self.date_order, since=self.since)


class ServiceMatcher:
    def __init__(self, catalogue: Catalogue) -> None:
        self.by_key: dict[str, str] = {}
        for svc in catalogue.services:
            for name in (svc.name, svc.id, *svc.aliases):
                self.by_key[name_key(name)] = svc.id

    def match(self, text: str) -> str | None:
        return self.by_key.get(name_key(text))


def department_of(text: str, catalogue: Catalogue) -> str | None:
    """The id of the department a form answer names (its name, id or an alias), or None."""
    key = name_key(text)
    for d in catalogue.departments:
        if key in {name_key(n) for n in (d.name, d.id, *d.aliases)}:
            return d.id
    for s in catalogue.services:  # a catalogue without a [departments] table: the services' department names
        if key in (name_key(s.department), name_key(s.department_id)):
            return s.department_id
    return None


def department_note(text: str, service: ServiceConfig, catalogue: Catalogue) -> str:
    """What the department column says against the service's department: "" when it agrees or is empty,
    else "filed by another department: '...'" or "unknown department '...'" (a code and the text)."""
    if not text.strip():
        return ""
    found = department_of(text, catalogue)
    if found is None:
        return "unknown_department"
    return "" if found == service.department_id else "other_department"


_GMT = re.compile(r"\s*(?:GMT|UTC)\s*([+-])(\d{1,2})(?::?(\d{2}))?\s*$", re.I)
_AMPM = re.compile(r"\s*([AaPp])\.?[Mm]\.?\s*$")
_SLASHED = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})(?!\d)")


def parse_timestamp(text: str, *, tz: str, day_first: bool | None = None) -> datetime:
    """Every form the Google Forms export writes: '11/30/2026 14:35:00', '2026/11/30 2:35:00 PM GMT+2',
    '30.11.2026 14:35:00', ISO. `day_first` says how to read 05/01/2026 (None: day first only when the first
    number cannot be a month). Raises ValueError with what was expected."""
    raw = text.strip()
    if not raw:
        raise ValueError("empty timestamp")
    zone: timezone | ZoneInfo = ZoneInfo(tz)
    value = raw
    m = _GMT.search(value)
    if m:
        hours, minutes = int(m.group(2)), int(m.group(3) or 0)
        offset = timedelta(hours=hours, minutes=minutes) * (1 if m.group(1) == "+" else -1)
        zone = timezone(offset)
        value = value[: m.start()]
    try:
        iso = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return iso if iso.tzinfo else iso.replace(tzinfo=zone)
    except ValueError:
        pass
    pm = None
    m = _AMPM.search(value)
    if m:
        pm = m.group(1).lower() == "p"
        value = value[: m.start()]
    parts = value.split()
    day = _parse_date(parts[0], day_first=day_first) if parts else None
    if day is None or len(parts) > 2:
        raise ValueError(f"{raw!r} is not a timestamp (e.g. 11/30/2026 14:35:00, 30.11.2026 14:35:00, "
                         "2026/11/30 2:35:00 PM GMT+2)")
    clock = time()
    if len(parts) == 2:
        try:
            bits = [int(x) for x in parts[1].split(":")]
            hour = bits[0]
            if pm is not None:
                hour = hour % 12 + (12 if pm else 0)
            clock = time(hour, bits[1] if len(bits) > 1 else 0, bits[2] if len(bits) > 2 else 0)
        except (ValueError, IndexError):
            raise ValueError(f"{raw!r}: bad time of day {parts[1]!r}") from None
    return datetime.combine(day, clock, tzinfo=zone)


def _parse_date(text: str, *, day_first: bool | None) -> date | None:
    text = text.strip()
    try:
        if re.fullmatch(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}", text):
            y, mo, d = (int(x) for x in re.split(r"[-/.]", text))
            return date(y, mo, d)
        if re.fullmatch(r"\d{1,2}\.\d{1,2}\.\d{2,4}", text):  # 30.11.2026: always day first
            d, mo, y = (int(x) for x in text.split("."))
            return date(y + 2000 if y < 100 else y, mo, d)
        if re.fullmatch(r"\d{1,2}/\d{1,2}/\d{2,4}", text):
            a, b, y = (int(x) for x in text.split("/"))
            y = y + 2000 if y < 100 else y
            if day_first or (day_first is None and a > 12):
                return date(y, b, a)
            return date(y, a, b)
    except ValueError:
        return None
    return None


def parse_date_answer(text: str, *, tz: str, day_first: bool | None = None) -> datetime:
    """A 'date of the update' answer: a date (the start of that day in local time) or a timestamp."""
    d = _parse_date(text, day_first=day_first)
    if d is not None:
        return datetime.combine(d, time(), tzinfo=ZoneInfo(tz))
    return parse_timestamp(text, tz=tz, day_first=day_first)


def _examples(found: Sequence[tuple[int, str]]) -> str:
    shown = ", ".join(f"row {row} {text.strip()!r}" for row, text in found[:5])
    return shown + (f" and {len(found) - 5} more" if len(found) > 5 else "")


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")


def _two_ways(text: str) -> str:
    m = _SLASHED.match(text)
    if not m:
        return "day or month first"
    a, b = int(m.group(1)), int(m.group(2))
    return f"{a} {_MONTHS[b - 1]} or {b} {_MONTHS[a - 1]}"


def decide_date_order(samples: Iterable[tuple[int, str]], preset: str = "") -> tuple[str, str]:
    """How to read a file's slashed dates (d/m/y or m/d/y), decided for the whole file: (order, problem).
    A date whose first number cannot be a month (25/01) says day first, one whose second cannot (01/25) says
    month first; a file with both is refused, and so is a file whose dates all read both ways (05/01)."""
    if preset:
        return preset, ""
    day_first: list[tuple[int, str]] = []
    month_first: list[tuple[int, str]] = []
    either: list[tuple[int, str]] = []
    for row, text in samples:
        m = _SLASHED.match(text)
        if not m:
            continue
        a, b = int(m.group(1)), int(m.group(2))
        if a > 12 >= b:
            day_first.append((row, text))
        elif b > 12 >= a:
            month_first.append((row, text))
        elif a != b and a <= 12 and b <= 12:
            either.append((row, text))
    if day_first and month_first:
        return "", (f"the file mixes day-first dates ({_examples(day_first)}) with month-first dates "
                    f"({_examples(month_first)}): export it again in one locale")
    if day_first:
        return "dmy", ""
    if month_first:
        return "mdy", ""
    if either:
        return "", (f"every date in the file reads both ways ({_examples(either)}: {_two_ways(either[0][1])}?); say "
                    "which with --date-order dmy (day first) or mdy (month first), or [reports] date_order")
    return "", ""


def _column(headers: Sequence[str], aliases: Iterable[str]) -> int | None:
    keys = [header_key(h) for h in headers]
    for alias in aliases:
        a = header_key(alias)
        for i, k in enumerate(keys):
            if a and k == a:
                return i
    return None


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _text_key(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def identity(*, submitted: datetime | None, timestamp_text: str, service_text: str, reported: datetime | None,
             claimed_text: str, what: str) -> str:
    """A row's identity: its parsed content, the same whatever the export's locale, separator or encoding
    (what could not be parsed is taken as written). The submission counts to the minute: a spreadsheet saved
    again as CSV may drop the seconds."""
    minute = submitted.astimezone(UTC).replace(second=0, microsecond=0) if submitted else None
    return _digest(minute.isoformat() if minute else "?" + _text_key(timestamp_text),
                   name_key(service_text),
                   # to the minute too: with no claimed day the submission time stands for it
                   reported.astimezone(UTC).replace(second=0, microsecond=0).isoformat() if reported
                   else "?" + _text_key(claimed_text),
                   _text_key(what))


@dataclass(frozen=True, slots=True)
class _Reading:
    """What every row of one file is read with."""

    matcher: ServiceMatcher
    mapping: ReportMapping
    day_first: bool | None
    source: str
    now: datetime | None


def _read_row(ctx: _Reading, number: int, values: Mapping[str, str], timestamp_text: str,
              cells: Sequence[str]) -> ReportRow | RejectedRow:
    """One submitted row: a report, or the reason it cannot be one (with whatever could be read of it)."""
    tz = ctx.mapping.tz
    service_text = values.get("service", "").strip()
    claimed_text = values.get("updated_on", "").strip()
    what = values.get("what", "").strip()
    service_id = ctx.matcher.match(service_text) if service_text else None
    submitted = reported = None
    reasons: list[Reason] = []
    try:
        submitted = parse_timestamp(timestamp_text, tz=tz, day_first=ctx.day_first)
    except ValueError:
        reasons.append(Reason.of("bad_timestamp", text=timestamp_text.strip()) if timestamp_text.strip()
                       else Reason.of("no_timestamp"))
    if claimed_text:
        try:
            reported = parse_date_answer(claimed_text, tz=tz, day_first=ctx.day_first)
        except ValueError:
            reasons.append(Reason.of("bad_date", text=claimed_text))
    else:
        reported = submitted
    if not service_text:
        reasons.insert(0, Reason.of("no_service"))
    elif service_id is None:
        reasons.insert(0, Reason.of("unknown_service", name=service_text))
    since, zone = ctx.mapping.since, ZoneInfo(tz)

    def future(t: datetime | None) -> bool:
        return t is not None and ctx.now is not None and t > ctx.now + FUTURE_SLACK

    def early(t: datetime | None) -> bool:
        return t is not None and since is not None and t.astimezone(zone).date() < since

    sent = submitted.astimezone(zone).date() if submitted else None
    named = reported.astimezone(zone).date() if reported else None
    if future(submitted):
        reasons.append(Reason.of("future", sent=sent))
    elif submitted and reported and reported - submitted > FUTURE_SLACK:
        reasons.append(Reason.of("after_submission", named=named, sent=sent))
    if early(submitted):
        reasons.append(Reason.of("submitted_early", sent=sent, since=since))
    elif early(reported):
        reasons.append(Reason.of("claimed_early", named=named, since=since))
    key = identity(submitted=submitted, timestamp_text=timestamp_text, service_text=service_text,
                   reported=reported, claimed_text=claimed_text, what=what)
    common = dict(service_text=service_text, department_text=values.get("department", "").strip(), what=what,
                  who=values.get("who", "").strip(), link=values.get("link", "").strip(),
                  source=f"{ctx.source}:{number}")
    if reasons or service_id is None or submitted is None or reported is None:
        placed = next((t for t in (reported, submitted) if t and not future(t) and not early(t)), None)
        return RejectedRow(identity=key, row=number, reasons=tuple(reasons), cells=tuple(cells),
                           service_id=service_id, submitted_at=submitted, reported_for=reported, placed_at=placed,
                           **common)
    return ReportRow(identity=key, row_hash=_digest(*(c.strip() for c in cells)), service_id=service_id,
                     submitted_at=submitted, reported_for=reported, email=values.get("email", "").strip(), **common)


def _rejected_record(ctx: _Reading, number: int, reason: Reason, cells: Sequence[str]) -> RejectedRow:
    """A record that is not a row of the form at all (too few or many cells, malformed CSV)."""
    return RejectedRow(identity=_digest("record", *(_text_key(c) for c in cells)), row=number, reasons=(reason,),
                       cells=tuple(cells), source=f"{ctx.source}:{number}")


def _add(parsed: Parsed, row: ReportRow | RejectedRow) -> None:
    if isinstance(row, RejectedRow):
        parsed.rejected.append(row)
    else:
        parsed.rows.append(row)


def _decode(data: bytes) -> str | None:
    for encoding in ("utf-8-sig", "cp1251"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None


def parse_csv(data: bytes, catalogue: Catalogue, mapping: ReportMapping, *, source: str = "",
              now: datetime | None = None) -> Parsed:
    """A Google Forms CSV export. Rows are numbered as records (the header is row 1), as a spreadsheet numbers
    them, whatever newlines the cells hold."""
    parsed = Parsed()
    if b"\x00" in data[:65536]:
        parsed.file_error = "a binary file, not a CSV export"
        return parsed
    text = _decode(data)
    if text is None:
        parsed.file_error = "the file is neither UTF-8 nor windows-1251 text"
        return parsed
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    records: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    broken: Reason | None = None
    try:
        for number, cells in enumerate(reader, start=1):
            records.append((number, cells))
    except csv.Error as exc:
        broken = Reason.of("malformed", detail=exc)
    if not records:
        parsed.file_error = broken.text() if broken else "the file is empty"
        return parsed
    headers = records[0][1]
    ts_col = _column(headers, TIMESTAMP)
    if ts_col is None:
        parsed.file_error = (f"no timestamp column (expected one of: Timestamp, Позначка часу, Отметка времени; "
                             f"found: {', '.join(h for h in headers if h)[:300]})")
        return parsed
    columns = {key: _column(headers, aliases) for key, aliases in mapping.questions.items()}
    columns["email"] = _column(headers, EMAIL)
    if columns.get("service") is None:
        parsed.file_error = ("no column names the service (configure [reports] service = [\"<the question>\"] in "
                             f"targets.toml; found: {', '.join(h for h in headers if h)[:300]})")
        return parsed
    rows = [(n, c) for n, c in records[1:] if any(x.strip() for x in c)]
    dated = [i for i in (ts_col, columns.get("updated_on")) if i is not None]
    order, problem = decide_date_order(((n, c[i]) for n, c in rows for i in dated if i < len(c)), mapping.date_order)
    if problem:
        parsed.file_error = problem
        return parsed
    parsed.date_order = order
    ctx = _Reading(ServiceMatcher(catalogue), mapping, {"dmy": True, "mdy": False}.get(order), source, now)
    for number, cells in rows:
        if len(cells) < len(headers) - 1 or len(cells) > len(headers) + 1:
            _add(parsed, _rejected_record(ctx, number, Reason.of("cell_count", cells=len(cells),
                                                                    header=len(headers)), cells))
            continue
        values = {k: cells[i] if i is not None and i < len(cells) else "" for k, i in columns.items()}
        _add(parsed, _read_row(ctx, number, values, cells[ts_col] if ts_col < len(cells) else "", cells))
    if broken:
        number = records[-1][0] + 1
        _add(parsed, _rejected_record(ctx, number, broken, ()))
    return parsed


def parse_forms_json(data: bytes, catalogue: Catalogue, mapping: ReportMapping, *, source: str = "",
                     now: datetime | None = None) -> Parsed:
    """The Google Forms API's responses.list: answers are keyed by question id (map them in [reports]).
    A response's row is its position in the list (from 1)."""
    parsed = Parsed()
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        parsed.file_error = f"not valid JSON: {exc}"
        return parsed
    responses = doc.get("responses") if isinstance(doc, dict) else None
    if not isinstance(responses, list):
        parsed.file_error = "not a responses.list document (no 'responses' array)"
        return parsed
    ids = {key: {header_key(a) for a in aliases} for key, aliases in mapping.questions.items()}
    read: list[tuple[int, dict[str, str], str, list[str]]] = []
    ctx = _Reading(ServiceMatcher(catalogue), mapping, None, source, now)
    for number, response in enumerate(responses, start=1):
        if not isinstance(response, dict):
            _add(parsed, _rejected_record(ctx, number, Reason.of("not_object"), (str(response)[:200],)))
            continue
        values: dict[str, str] = {"email": str(response.get("respondentEmail", ""))}
        answers = response.get("answers") or {}
        for qid, answer in answers.items() if isinstance(answers, dict) else []:
            got = answer.get("textAnswers") if isinstance(answer, dict) else None
            texts = (got.get("answers") if isinstance(got, dict) else None) or []
            texts = texts if isinstance(texts, list) else []
            text = "; ".join(str(t.get("value", "")) for t in texts if isinstance(t, dict))
            for key, aliases in ids.items():
                if header_key(str(qid)) in aliases:
                    values[key] = text
        stamp = str(response.get("lastSubmittedTime") or response.get("createTime") or "")
        read.append((number, values, stamp, [stamp, *values.values()]))
    order, problem = decide_date_order(((n, v.get("updated_on", "")) for n, v, _, _ in read), mapping.date_order)
    if problem:
        return Parsed(file_error=problem)
    parsed.date_order = order
    ctx = _Reading(ctx.matcher, mapping, {"dmy": True, "mdy": False}.get(order), source, now)
    for number, values, stamp, cells in read:
        _add(parsed, _read_row(ctx, number, values, stamp, cells))
    return parsed


def parse(data: bytes, catalogue: Catalogue, mapping: ReportMapping, *, source: str = "",
          now: datetime | None = None) -> Parsed:
    """A file of responses, whichever of the two it is. `now` rejects rows submitted in the future."""
    if data.lstrip()[:1] in (b"{", b"["):
        return parse_forms_json(data, catalogue, mapping, source=source, now=now)
    return parse_csv(data, catalogue, mapping, source=source, now=now)
