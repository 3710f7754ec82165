"""WARC and WACZ: what a crawler wrote is read record by record (revisits resolved, other records passed
over); a damaged file gives its good records and names where the damage is; what we write reads back."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from monitor import warc
from tests.archives import write_warc
from tests.helpers import html

URL = "http://rada.example/protocols"


def _crawl(path: Path) -> Path:
    """What a crawler writes: warcinfo, request/response pairs, a revisit, a metadata record, another site."""
    with path.open("wb") as fh:
        w = WARCWriter(fh, gzip=True)
        w.write_record(w.create_warcinfo_record("crawl.warc.gz", {"software": "Heritrix/3.4"}))
        for when, body in (("2021-01-05T09:30:00Z", html("Протокол №1")), ("2021-03-05T09:30:00Z",
                                                                          html("Протокол №1", "Протокол №2"))):
            get = StatusAndHeaders("GET /protocols HTTP/1.1", [("Host", "rada.example")], is_http_request=True)
            w.write_record(w.create_warc_record(URL, "request", payload=io.BytesIO(b""), length=0, http_headers=get,
                                                warc_headers_dict={"WARC-Date": when}))
            served = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=windows-1251")],
                                      protocol="HTTP/1.1")
            response = w.create_warc_record(URL, "response", payload=io.BytesIO(body), length=len(body),
                                            http_headers=served, warc_headers_dict={"WARC-Date": when})
            w.write_record(response)
        digest = response.rec_headers.get_header("WARC-Payload-Digest")
        w.write_record(w.create_revisit_record(URL, digest, URL, "2021-03-05T09:30:00Z", http_headers=StatusAndHeaders(
            "200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1"),
            warc_headers_dict={"WARC-Date": "2021-04-05T09:30:00Z"}))
        w.write_record(w.create_warc_record(URL, "metadata", payload=io.BytesIO(b"outlinks: 3"), length=11,
                                            warc_content_type="text/plain"))
        w.write_record(w.create_warc_record("http://other.example/", "response", payload=io.BytesIO(b"x"), length=1,
                                            http_headers=StatusAndHeaders("200 OK", [], protocol="HTTP/1.1")))
    return path


def test_a_crawl_is_read_as_its_responses_with_revisits_resolved(tmp_path: Path) -> None:
    read = list(warc.read(_crawl(tmp_path / "crawl.warc.gz"), wanted=lambda u: "rada.example" in u))
    assert all(isinstance(r, warc.ArchivedResponse) for r in read), read
    responses = [r for r in read if isinstance(r, warc.ArchivedResponse)]
    assert [r.captured_at.date().isoformat() for r in responses] == ["2021-01-05", "2021-03-05", "2021-04-05"]
    assert responses[2].body == responses[1].body and b"2" in responses[1].body  # the revisit repeats March
    assert {r.status for r in responses} == {200} and responses[0].charset == "windows-1251"
    assert responses[0].content_type == "text/html" and responses[0].digest.startswith("sha1:")
    assert "crawl.warc.gz record at byte" in responses[0].where


def test_a_revisit_without_its_original_is_named(tmp_path: Path) -> None:
    path = tmp_path / "revisit-only.warc.gz"
    with path.open("wb") as fh:
        w = WARCWriter(fh, gzip=True)
        w.write_record(w.create_revisit_record(URL, "sha1:AAAA", URL, "2021-03-05T09:30:00Z",
                                               warc_headers_dict={"WARC-Date": "2021-04-05T09:30:00Z"}))
    (problem,) = list(warc.read(path))
    assert isinstance(problem, warc.WarcProblem) and "whose original (sha1:AAAA) is not in this file" in str(problem)


def _three(tmp_path: Path) -> bytes:
    path = write_warc(tmp_path / "three.warc.gz", [(URL, datetime(2021, m, 5, tzinfo=UTC), 200, html(f"Протокол {m}"))
                                                   for m in (1, 2, 3)])
    return path.read_bytes()


def test_a_truncated_file_gives_its_good_records_and_names_the_damage(tmp_path: Path) -> None:
    data = _three(tmp_path)
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(data[: len(data) - 200])
    read = list(warc.read(cut))
    good = [r for r in read if isinstance(r, warc.ArchivedResponse)]
    problems = [r for r in read if isinstance(r, warc.WarcProblem)]
    assert len(good) == 2 and len(problems) == 1
    assert "cut.warc.gz record at byte" in str(problems[0]) and "damaged" in str(problems[0])


def test_a_bad_gzip_member_stops_the_file_there(tmp_path: Path) -> None:
    data = _three(tmp_path)
    it = ArchiveIterator(io.BytesIO(data))
    offsets = [it.get_record_offset() for _ in it]
    assert len(offsets) == 3 and offsets[1] > 0
    broken = tmp_path / "broken.warc.gz"
    broken.write_bytes(data[:offsets[1]] + b"\x1f\x8b\x08\x00garbage-not-deflate" + data[offsets[1]:])
    read = list(warc.read(broken))
    assert isinstance(read[0], warc.ArchivedResponse) and "Протокол 1" in read[0].body.decode()
    assert isinstance(read[-1], warc.WarcProblem) and "broken.warc.gz after byte" in str(read[-1])
    assert len(read) < 4  # what follows the damage is not guessed at


def test_a_wrong_content_length_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    raw = tmp_path / "plain.warc"
    with raw.open("wb") as fh:
        w = WARCWriter(fh, gzip=False)
        for m in (1, 2):
            w.write_record(w.create_warc_record(URL, "response", payload=io.BytesIO(page := html(f"Протокол {m}")),
                                                length=len(page),
                                                http_headers=StatusAndHeaders("200 OK", [], protocol="HTTP/1.1"),
                                                warc_headers_dict={"WARC-Date": f"2021-0{m}-05T09:30:00Z"}))
    text = raw.read_bytes()
    at = text.index(b"Content-Length: ") + len(b"Content-Length: ")
    end = text.index(b"\r\n", at)
    lying = tmp_path / "lying.warc"
    lying.write_bytes(text[:at] + str(int(text[at:end]) - 40).encode() + text[end:])
    read = list(warc.read(lying))
    assert any(isinstance(r, warc.WarcProblem) for r in read), read
    assert all("lying.warc" in str(r) for r in read if isinstance(r, warc.WarcProblem))


def test_not_a_warc_and_a_zip_without_archives_are_named(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("не архів", encoding="utf-8")
    (problem,) = list(warc.read(text))
    assert isinstance(problem, warc.WarcProblem) and "notes.txt" in str(problem)
    empty = tmp_path / "empty.wacz"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("datapackage.json", "{}")
    (problem,) = list(warc.read(empty))
    assert "not a WACZ" in str(problem)


def test_a_wacz_is_read_through_its_archive_folder(tmp_path: Path) -> None:
    data = _three(tmp_path)
    wacz = tmp_path / "site.wacz"
    with zipfile.ZipFile(wacz, "w") as z:
        z.writestr("datapackage.json", json.dumps({"profile": "data-package"}))
        z.writestr("archive/data.warc.gz", data)
    read = list(warc.read(wacz))
    assert len(read) == 3 and all(isinstance(r, warc.ArchivedResponse) for r in read)
    assert "site.wacz/archive/data.warc.gz" in read[0].where


def test_what_we_write_reads_back_with_its_metadata(tmp_path: Path) -> None:
    out = io.BytesIO()
    body = html("Протокол №7", title="Протоколи")
    n = warc.write(out, [warc.Capture(url=URL, captured_at=datetime(2021, 3, 5, 9, 30, tzinfo=UTC), status=200,
                                      content_type="text/html", body=body, metadata={"change": 7, "real": True})])
    assert n == 1
    out.seek(0)
    kinds = [(r.rec_type, r.rec_headers.get_header("WARC-Target-URI")) for r in ArchiveIterator(out)]
    assert [k for k, _ in kinds] == ["warcinfo", "request", "response", "metadata"]
    path = tmp_path / "ours.warc.gz"
    path.write_bytes(out.getvalue())
    (back,) = [r for r in warc.read(path) if isinstance(r, warc.ArchivedResponse)]
    assert back.body == body and back.status == 200 and back.captured_at == datetime(2021, 3, 5, 9, 30, tzinfo=UTC)
    out.seek(0)
    (meta,) = [json.loads(r.content_stream().read()) for r in ArchiveIterator(out) if r.rec_type == "metadata"]
    assert meta == {"change": 7, "real": True}


def test_a_file_cut_anywhere_loses_no_record_silently(tmp_path: Path) -> None:
    """Anywhere but between two records: a file cut exactly there is a valid, shorter WARC (nothing tells)."""
    data = _three(tmp_path)
    it = ArchiveIterator(io.BytesIO(data))
    boundaries = {it.offset for _ in it}
    for cut in (c for c in range(150, len(data), 7) if c not in boundaries):
        path = tmp_path / "cut.warc.gz"
        path.write_bytes(data[:cut])
        read = list(warc.read(path))
        good = [r for r in read if isinstance(r, warc.ArchivedResponse)]
        assert len(good) == 3 or any(isinstance(r, warc.WarcProblem) for r in read), cut


def test_a_revisit_of_a_304_is_the_page_it_repeats(tmp_path: Path) -> None:
    path = tmp_path / "not-modified.warc.gz"
    body = html("Протокол №1")
    with path.open("wb") as fh:
        w = WARCWriter(fh, gzip=True)
        first = w.create_warc_record(URL, "response", payload=io.BytesIO(body), length=len(body),
                                     http_headers=StatusAndHeaders("200 OK", [], protocol="HTTP/1.1"),
                                     warc_headers_dict={"WARC-Date": "2021-01-05T09:30:00Z"})
        w.write_record(first)
        digest = first.rec_headers.get_header("WARC-Payload-Digest")
        w.write_record(w.create_revisit_record(URL, digest, URL, "2021-01-05T09:30:00Z", http_headers=StatusAndHeaders(
            "304 Not Modified", [], protocol="HTTP/1.1"), warc_headers_dict={"WARC-Date": "2021-02-05T09:30:00Z"}))
    read = list(warc.read(path))
    assert [r.status for r in read if isinstance(r, warc.ArchivedResponse)] == [200, 200]
