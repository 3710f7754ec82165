"""Self-reports: the departments' Google Forms responses (CSV export or the API's JSON) -> report rows.

Pure parsing: header aliases in English, Ukrainian and Russian; the timestamp forms of every locale;
`,` or `;`; a byte-order mark; quoted cells with commas and newlines. Service names are matched to the
catalogue through names and explicit aliases, tolerant of case, quotes, apostrophes and Latin letters
that look Cyrillic (annex 2 writes "AIC"); an unknown service is an error, never a guess.
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
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from monitor.domain import Catalogue, ReportRow

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
}
_LOOKALIKE = str.maketrans("abcehikmoptxy", "авсенікмортху")  # Latin letters that read as Cyrillic (lower case)
_QUOTES = re.compile(r"[\"'`«»“”„‟’‘ʼ′]")


def name_key(text: str) -> str:
    """The form of a name used for matching: case, quotes, spaces and look-alike letters do not matter."""
    text = unicodedata.normalize("NFC", text).casefold().translate(_LOOKALIKE)
    text = _QUOTES.sub("", text)
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


@dataclass(frozen=True, slots=True, kw_only=True)
class RowError:
    row: int  # 1-based line of the CSV record (the header is row 1), or index in the JSON
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.reason}"


@dataclass(slots=True)
class Parsed:
    rows: list[ReportRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    file_error: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportMapping:
    """Which form question feeds which field (titles or question ids, matched case-insensitively)."""

    questions: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: DEFAULT_QUESTIONS)
    tz: str = "Europe/Kyiv"  # the zone of timestamps that carry none (Google exports in the form's zone)
    day_first: bool = False  # "1/2/2026" is 2 January (en-GB) instead of 1 February (en-US)

    def merged(self, extra: Mapping[str, Sequence[str]]) -> ReportMapping:
        questions = {k: tuple(v) for k, v in self.questions.items()}
        for key, titles in extra.items():
            questions[key] = tuple(t.strip().casefold() for t in titles) + questions.get(key, ())
        return ReportMapping(questions=questions, tz=self.tz, day_first=self.day_first)


class ServiceMatcher:
    def __init__(self, catalogue: Catalogue) -> None:
        self.by_key: dict[str, str] = {}
        for svc in catalogue.services:
            for name in (svc.name, svc.id, *svc.aliases):
                self.by_key[name_key(name)] = svc.id

    def match(self, text: str) -> str | None:
        return self.by_key.get(name_key(text))


_GMT = re.compile(r"\s*(?:GMT|UTC)\s*([+-])(\d{1,2})(?::?(\d{2}))?\s*$", re.I)
_AMPM = re.compile(r"\s*([AaPp])\.?[Mm]\.?\s*$")


def parse_timestamp(text: str, *, tz: str, day_first: bool = False) -> datetime:
    """Every form the Google Forms export writes: '11/30/2026 14:35:00', '2026/11/30 2:35:00 PM GMT+2',
    '30.11.2026 14:35:00', ISO. Raises ValueError with what was expected."""
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


def _parse_date(text: str, *, day_first: bool) -> date | None:
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
            if day_first or a > 12:
                return date(y, b, a)
            return date(y, a, b)
    except ValueError:
        return None
    return None


def parse_date_answer(text: str, *, tz: str, day_first: bool = False) -> datetime:
    """A 'date of the update' answer: a date (the start of that day in local time) or a timestamp."""
    d = _parse_date(text, day_first=day_first)
    if d is not None:
        return datetime.combine(d, time(), tzinfo=ZoneInfo(tz))
    return parse_timestamp(text, tz=tz, day_first=day_first)


def _column(headers: list[str], aliases: Iterable[str]) -> int | None:
    keys = [h.strip().casefold() for h in headers]
    for alias in aliases:
        a = alias.strip().casefold()
        for i, k in enumerate(keys):
            if k == a:
                return i
    return None


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(p.strip() for p in parts).encode()).hexdigest()


def _build(matcher: ServiceMatcher, mapping: ReportMapping, number: int, source: str, values: Mapping[str, str],
           timestamp_text: str, parsed: Parsed) -> None:
    service_text = values.get("service", "").strip()
    if not service_text:
        parsed.errors.append(RowError(row=number, reason="no service named"))
        return
    service_id = matcher.match(service_text)
    if service_id is None:
        parsed.errors.append(RowError(row=number, reason=f"unknown service {service_text!r} (add it to the service's "
                                                         "aliases in targets.toml if it is one)"))
        return
    try:
        submitted = parse_timestamp(timestamp_text, tz=mapping.tz, day_first=mapping.day_first)
    except ValueError as exc:
        parsed.errors.append(RowError(row=number, reason=str(exc)))
        return
    reported = submitted
    if values.get("updated_on", "").strip():
        try:
            reported = parse_date_answer(values["updated_on"], tz=mapping.tz, day_first=mapping.day_first)
        except ValueError:
            parsed.errors.append(RowError(row=number, reason=f"the date of the update {values['updated_on']!r} is "
                                                             "not a date (e.g. 30.11.2026 or 11/30/2026)"))
            return
    if reported - submitted > timedelta(days=1):
        parsed.errors.append(RowError(row=number, reason=f"reports an update on {reported.date()} after it was "
                                                         f"submitted ({submitted.date()})"))
        return
    parsed.rows.append(ReportRow(
        row_hash=_hash(timestamp_text, service_text, values.get("updated_on", ""), values.get("what", ""),
                       values.get("who", ""), values.get("email", "")),
        service_id=service_id, service_text=service_text, submitted_at=submitted, reported_for=reported,
        what=values.get("what", "").strip(), who=values.get("who", "").strip(), email=values.get("email", "").strip(),
        link=values.get("link", "").strip(), source=f"{source}:{number}"))


def parse_csv(data: bytes, catalogue: Catalogue, mapping: ReportMapping, *, source: str = "") -> Parsed:
    parsed = Parsed()
    if b"\x00" in data[:65536]:
        parsed.file_error = "a binary file, not a CSV export"
        return parsed
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1251")
        except UnicodeDecodeError:
            parsed.file_error = "the file is neither UTF-8 nor windows-1251 text"
            return parsed
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        headers = next(reader)
    except StopIteration:
        parsed.file_error = "the file is empty"
        return parsed
    except csv.Error as exc:
        parsed.file_error = f"not a CSV file: {exc}"
        return parsed
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
    matcher = ServiceMatcher(catalogue)
    while True:
        number = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            parsed.errors.append(RowError(row=number, reason=f"malformed CSV: {exc}"))
            break
        if not any(c.strip() for c in cells):
            continue
        if len(cells) < len(headers) - 1 or len(cells) > len(headers) + 1:
            parsed.errors.append(RowError(row=number, reason=f"{len(cells)} cells where the header has {len(headers)}"))
            continue
        values = {k: cells[i] if i is not None and i < len(cells) else "" for k, i in columns.items()}
        _build(matcher, mapping, number, source, values, cells[ts_col] if ts_col < len(cells) else "", parsed)
    return parsed


def parse_forms_json(data: bytes, catalogue: Catalogue, mapping: ReportMapping, *, source: str = "") -> Parsed:
    """The Google Forms API's responses.list: answers are keyed by question id (map them in [reports])."""
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
    ids = {key: {a.casefold() for a in aliases} for key, aliases in mapping.questions.items()}
    matcher = ServiceMatcher(catalogue)
    for number, response in enumerate(responses, start=1):
        if not isinstance(response, dict):
            parsed.errors.append(RowError(row=number, reason="a response is not an object"))
            continue
        values: dict[str, str] = {"email": str(response.get("respondentEmail", ""))}
        answers = response.get("answers") or {}
        for qid, answer in answers.items() if isinstance(answers, dict) else []:
            texts = ((answer or {}).get("textAnswers") or {}).get("answers") or []
            text = "; ".join(str(t.get("value", "")) for t in texts if isinstance(t, dict))
            for key, aliases in ids.items():
                if str(qid).casefold() in aliases:
                    values[key] = text
        stamp = str(response.get("lastSubmittedTime") or response.get("createTime") or "")
        _build(matcher, mapping, number, source, values, stamp, parsed)
    return parsed


def parse(data: bytes, catalogue: Catalogue, mapping: ReportMapping, *, source: str = "") -> Parsed:
    if data.lstrip()[:1] in (b"{", b"["):
        return parse_forms_json(data, catalogue, mapping, source=source)
    return parse_csv(data, catalogue, mapping, source=source)
