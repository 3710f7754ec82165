"""The CDX client: every answer form CDX servers give is read, a bad line is named and the others kept, an
archive that answers HTML or fails is a clear error; one request at a time at the configured rate, and
Retry-After honoured (measured at a server on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime

import pytest

from monitor import archive
from monitor.archive import Archive, ArchiveError, CdxCapture
from monitor.domain import Outcome, Settings
from monitor.fetch import Fetcher
from tests.siteserver import Request, Site, page, respond

URL = "http://rada.example/protocols"
START, END = datetime(2021, 1, 1, tzinfo=UTC), datetime(2021, 4, 1, tzinfo=UTC)


def test_the_wayback_machines_json_rows() -> None:
    text = json.dumps([list(archive.IA_FIELDS),
                       ["example,rada)/protocols", "20210105093000", URL, "text/html", "200", "AAA", "349"],
                       ["example,rada)/protocols", "20210205093000", URL, "warc/revisit", "-", "AAA", "300"]])
    found, problems = archive.parse_cdx(text)
    assert problems == []
    assert found == [CdxCapture("20210105093000", URL, 200, "text/html", "AAA"),
                     CdxCapture("20210205093000", URL, None, "warc/revisit", "AAA")]
    assert found[0].captured_at == datetime(2021, 1, 5, 9, 30, tzinfo=UTC)


def test_pywbs_json_lines_and_plain_lines_of_7_or_11_fields() -> None:
    lines = "\n".join([
        json.dumps({"urlkey": "k", "timestamp": "20210105093000", "url": URL, "mime": "text/html", "status": "200",
                    "digest": "AAA"}),
        f"k 20210205093000 {URL} text/html 404 BBB 300",
        f"k 20210305093000 {URL} text/html 200 CCC - - 350 0 crawl.warc.gz",
        "k 2021", "{not json", ""])
    found, problems = archive.parse_cdx(lines, where="the index")
    assert [(c.timestamp[:8], c.status, c.digest) for c in found] == [
        ("20210105", 200, "AAA"), ("20210205", 404, "BBB"), ("20210305", 200, "CCC")]
    assert problems == ["the index, line 4: no timestamp or address", "the index, line 5: not a CDX line"]


def test_a_bad_time_or_a_placeholder_digest_is_not_taken_at_its_word() -> None:
    lines = "\n".join([f"k 20219999000000 {URL} text/html 200 AAA 300",  # digits, but no time
                        f"k 20210105093000 {URL} text/html 200 - 300", f"k 20210205093000 {URL} text/html 200 - 300"])
    found, problems = archive.parse_cdx(lines)
    assert problems == ["the CDX answer, line 1: '20219999000000' is not a time"]
    assert [c.digest for c in found] == ["", ""]  # two captures, never one shared "-"


def test_html_or_broken_json_is_not_an_index() -> None:
    with pytest.raises(ArchiveError, match="is HTML, not a CDX index"):
        archive.parse_cdx("<!doctype html><title>Wayback Machine</title>")
    with pytest.raises(ArchiveError, match="not valid JSON"):
        archive.parse_cdx('[["urlkey", "timestamp"], ["k", ')
    assert archive.parse_cdx("[]") == ([], [])


def test_an_archive_address_must_be_http() -> None:
    with pytest.raises(ArchiveError, match="not an http"):
        Archive.at("file:///etc/passwd", "http://127.0.0.1/coll/")
    assert Archive.at("http://127.0.0.1:8080/coll/cdx", "http://127.0.0.1:8080/coll/").name == "127.0.0.1:8080/coll"
    assert Archive.wayback().cdx == "https://web.archive.org/cdx/search/cdx"


def _settings(**kw: object) -> Settings:
    base = dict(user_agent="freshness-test (+mailto:it@example.org)", per_host_concurrency=1, per_host_delay_s=0.0,
                retries=3, timeout_s=10)
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


async def test_an_archive_failing_or_answering_html_is_a_clear_error() -> None:
    with Site() as site:
        site.routes["/down/cdx"] = page("<h1>Service Unavailable</h1>", status=503)
        site.routes["/html/cdx"] = page("<!doctype html><h1>Welcome to our archive</h1>")
        site.routes["/none/cdx"] = page("not found", status=404)
        async with Fetcher(_settings(retries=0)) as fetcher:
            for name, message in (("down", "http_status 503"), ("html", "is HTML, not a CDX index")):
                source = Archive.at(site.url(f"/{name}/cdx"), site.url(f"/{name}/"), allow_private=True)
                with pytest.raises(ArchiveError, match=message):
                    await archive.captures(fetcher, source, URL, START, END)
            none = Archive.at(site.url("/none/cdx"), site.url("/none/"), allow_private=True)
            assert await archive.captures(fetcher, none, URL, START, END) == ([], [])
            private = Archive.at(site.url("/html/cdx"), site.url("/html/"))  # not allowed a loopback address
            with pytest.raises(ArchiveError, match="private or loopback address; if that is meant, add --allow"):
                await archive.captures(fetcher, private, URL, START, END)


async def test_one_request_at_a_time_at_the_rate_and_retry_after_honoured() -> None:
    calls: list[Request] = []

    async def busy_once(req: Request, w: asyncio.StreamWriter) -> None:
        calls.append(req)
        if len(calls) == 1:
            await respond(w, 429, b"slow down", {"Retry-After": "2"})
        else:
            await respond(w, 200, b"<p>captured</p>" * 20, {"Content-Type": "text/html; charset=utf-8"})

    with Site() as site:
        site.routes["/coll/20210105093000id_/" + URL] = busy_once
        for day in range(11, 16):
            site.routes[f"/coll/202101{day}093000id_/" + URL] = page("<p>captured</p>" * 20)
        source = Archive.at(site.url("/coll/cdx"), site.url("/coll/"), allow_private=True)
        async with Fetcher(_settings(per_host_delay_s=0.5)) as fetcher:
            first = await archive.replay(fetcher, source, CdxCapture("20210105093000", URL, 200, "text/html", "A"), URL)
            caps = [CdxCapture(f"202101{d}093000", URL, 200, "text/html", str(d)) for d in range(11, 16)]
            replayed = await asyncio.gather(*(archive.replay(fetcher, source, c, URL) for c in caps))
    assert first.outcome is Outcome.OK and first.url == URL and first.source == f"127.0.0.1:{site.port}/coll"
    assert first.started_at == datetime(2021, 1, 5, 9, 30, tzinfo=UTC) and first.final_url == URL
    assert calls[1].at - calls[0].at >= 1.9  # the 429's Retry-After: 2 was waited out
    assert all(r.outcome is Outcome.OK for r in replayed)
    assert site.max_active == 1  # never two requests to the archive at once
    times = sorted(r.at for r in site.requests)
    assert all(b - a >= 0.45 for a, b in itertools.pairwise(times)), times  # 2 a second at most
    assert all(r.headers.get("user-agent", "").startswith("freshness-test") for r in site.requests)


async def test_an_archive_that_cannot_replay_what_it_listed_is_an_archive_error() -> None:
    with Site() as site:
        site.routes["/coll/20210105093000id_/" + URL] = page("gone", status=502)
        source = Archive.at(site.url("/coll/cdx"), site.url("/coll/"), allow_private=True)
        async with Fetcher(_settings(retries=0)) as fetcher:
            with pytest.raises(ArchiveError, match="could not replay"):
                await archive.replay(fetcher, source, CdxCapture("20210105093000", URL, 200, "text/html", "A"), URL)
    failed = archive.failed_capture(CdxCapture("20210320093000", URL, 404, "text/html", "B"), URL, "ia")
    assert failed.outcome is Outcome.HTTP_STATUS and failed.status == 404 and failed.source == "ia"
