"""WARC and WACZ, the archival standard: reading the responses a crawler or an archive wrote (Heritrix,
Browsertrix, `wget --warc-file`, pywb), and writing our captures as evidence an archive can replay. The only
module that imports `warcio`.

Reading yields what each good record holds and, for a bad one, where it is and what is wrong with it; a
damaged file gives its good records before the damage and a problem for the rest, never a traceback.
"""

from __future__ import annotations

import gzip
import io
import json
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from monitor import __version__


@dataclass(frozen=True, slots=True)
class ArchivedResponse:
    """One response as an archive keeps it: the page's address, when it was captured, what was served."""

    url: str
    captured_at: datetime
    status: int | None
    content_type: str
    body: bytes
    digest: str  # the archive's payload digest (e.g. sha1:BASE32), "" when the record has none
    where: str  # file and record offset, for messages
    last_modified: str | None = None
    charset: str | None = None  # as the Content-Type header declared it


@dataclass(frozen=True, slots=True)
class WarcProblem:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def _when(value: str) -> datetime:
    when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _members(path: Path) -> Iterator[tuple[str, IO[bytes]]]:
    """The WARC streams of a file: itself, or for a WACZ (a zip), its archive/*.warc[.gz] members."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = sorted(n for n in z.namelist() if n.startswith("archive/") and
                           n.endswith((".warc", ".warc.gz")))
            if not names:
                raise ValueError("a zip without archive/*.warc or *.warc.gz: not a WACZ")
            for name in names:
                with z.open(name) as member:
                    yield f"{path.name}/{name}", member
    else:
        with path.open("rb") as fh:
            yield path.name, fh


def read(path: Path, *, wanted: Callable[[str], bool] = lambda _url: True,
         max_bytes: int = 50 * 1024 * 1024) -> Iterator[ArchivedResponse | WarcProblem]:
    """The response records (and revisits, resolved to the response they repeat) of the URLs `wanted` keeps;
    request, metadata and other records are passed over. A body over `max_bytes` is a problem, not read."""
    seen: dict[str, ArchivedResponse] = {}  # payload digest -> the response a revisit may refer to
    damaged = False
    try:
        for name, stream in _members(path):
            for item in _read_stream(name, stream, wanted, max_bytes, seen):
                damaged = damaged or isinstance(item, WarcProblem)
                yield item
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        yield WarcProblem(path.name, f"cannot be read: {exc}")
        return
    if not damaged and path.name.endswith(".gz") and (cut := _gzip_cut(path)):
        # a file cut inside a gzip member ends the reading quietly: the records after the cut are lost
        yield WarcProblem(path.name, f"truncated: {cut}; the records after the cut are not in the file")


def _gzip_cut(path: Path) -> str:
    try:
        with gzip.open(path, "rb") as g:
            while g.read(1 << 20):
                pass
    except (EOFError, OSError, zlib.error) as exc:
        return str(exc)
    return ""


def _read_stream(name: str, stream: IO[bytes], wanted: Callable[[str], bool], max_bytes: int,
                 seen: dict[str, ArchivedResponse]) -> Iterator[ArchivedResponse | WarcProblem]:
    it = ArchiveIterator(stream, check_digests=True)
    offset = 0
    try:
        for record in it:
            offset = it.offset  # where this record starts (get_record_offset would read it to the end)
            where = f"{name} record at byte {offset}"
            kind = record.rec_type
            if kind not in ("response", "revisit"):
                continue
            url = record.rec_headers.get_header("WARC-Target-URI") or ""
            if not url or not wanted(url):
                continue
            try:
                captured_at = _when(record.rec_headers.get_header("WARC-Date") or "")
            except ValueError:
                yield WarcProblem(where, "no valid WARC-Date")
                continue
            http = record.http_headers
            status = _status(http)
            digest = record.rec_headers.get_header("WARC-Payload-Digest") or ""
            if kind == "revisit":
                earlier = seen.get(digest)
                if earlier is None:
                    yield WarcProblem(where, f"a revisit of {url} whose original ({digest or 'no digest'}) is not "
                                             "in this file")
                    continue
                yield replace(earlier, url=url, captured_at=captured_at, where=where,
                              status=earlier.status if status in (None, 304) else status)  # 304: the same
                continue
            if http is None:
                yield WarcProblem(where, f"a response for {url} without HTTP headers")
                continue
            body = record.content_stream().read(max_bytes + 1)
            if len(body) > max_bytes:
                yield WarcProblem(where, f"the body of {url} is larger than {max_bytes} bytes")
                continue
            checked = record.digest_checker.passed  # None: the record ended before its digest could be checked
            if checked is False or (digest and checked is None):  # cut short, or a Content-Length that lies
                yield WarcProblem(where, f"the record of {url} is damaged: its payload is not the one its digest "
                                         "names (truncated, or a wrong Content-Length)")
                continue
            content_type, _, params = (http.get_header("Content-Type") or "").partition(";")
            charset = next((v.strip().strip("'\"").lower() for k, _, v in (p.partition("=") for p in params.split(";"))
                            if k.strip().lower() == "charset" and v.strip()), None)
            response = ArchivedResponse(
                url=url, captured_at=captured_at, status=status, content_type=content_type.strip().lower(),
                body=body, digest=digest, where=where, last_modified=http.get_header("Last-Modified"),
                charset=charset)
            if digest:
                seen[digest] = response
            yield response
    except Exception as exc:
        yield WarcProblem(f"{name} after byte {offset}", f"damaged, the rest is not read: {_short(exc)}")


def _status(http: StatusAndHeaders | None) -> int | None:
    if http is None:
        return None
    try:
        return int((http.get_statuscode() or "").strip() or 0) or None
    except ValueError:
        return None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


@dataclass(frozen=True, slots=True)
class Capture:
    """One capture to write: what was asked, what was served, and what the monitor made of it."""

    url: str
    captured_at: datetime
    status: int
    content_type: str
    body: bytes
    metadata: dict[str, Any] = field(default_factory=dict)


def write(out: IO[bytes], captures: Iterable[Capture], *, software: str = "", description: str = "") -> int:
    """Write a gzipped WARC: a warcinfo record, then per capture a request, the response (status, headers,
    body) and a metadata record (JSON: the monitor's verdict and hashes) tied to the response. Returns the
    number of captures written."""
    writer = WARCWriter(out, gzip=True)
    info = {"software": software or f"city-freshness-monitor {__version__}", "format": "WARC File Format 1.1",
            "description": description}
    writer.write_record(writer.create_warcinfo_record("captures.warc.gz", {k: v for k, v in info.items() if v}))
    n = 0
    for c in captures:
        date = c.captured_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        response_id = f"<urn:uuid:{uuid.uuid4()}>"
        host = c.url.split("/")[2] if "//" in c.url else ""
        path = "/" + c.url.split("/", 3)[3] if c.url.count("/") >= 3 else "/"
        request = writer.create_warc_record(
            c.url, "request", payload=io.BytesIO(b""), length=0,
            http_headers=StatusAndHeaders(f"GET {path} HTTP/1.1", [("Host", host)], is_http_request=True),
            warc_headers_dict={"WARC-Date": date, "WARC-Concurrent-To": response_id})
        headers = [("Content-Type", c.content_type or "application/octet-stream"),
                   ("Content-Length", str(len(c.body)))]
        response = writer.create_warc_record(
            c.url, "response", payload=io.BytesIO(c.body), length=len(c.body),
            http_headers=StatusAndHeaders(f"{c.status} {_REASONS.get(c.status, 'Status')}", headers,
                                          protocol="HTTP/1.1"),
            warc_headers_dict={"WARC-Date": date, "WARC-Record-ID": response_id})
        about = json.dumps(c.metadata, ensure_ascii=False, sort_keys=True, default=str).encode()
        # under its own address (metadata://…), so that a replay of the page finds the response, not this
        metadata = writer.create_warc_record(
            "metadata://" + c.url.split("://", 1)[-1], "metadata", payload=io.BytesIO(about), length=len(about),
            warc_content_type="application/json",
            warc_headers_dict={"WARC-Date": date, "WARC-Concurrent-To": response_id, "WARC-Refers-To": response_id})
        for record in (request, response, metadata):
            writer.write_record(record)
        n += 1
    return n


_REASONS = {200: "OK", 301: "Moved Permanently", 302: "Found", 304: "Not Modified", 403: "Forbidden",
            404: "Not Found", 410: "Gone", 500: "Internal Server Error", 503: "Service Unavailable"}
