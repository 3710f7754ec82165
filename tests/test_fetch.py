"""Fetching against real servers on 127.0.0.1: every outcome class, conditional GET, retries, politeness."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import trustme

from monitor.domain import Outcome, Settings, Validators
from monitor.extract.decode import decode
from monitor.fetch import Fetcher, _Decoder, _TooLarge, is_public_address, parse_retry_after
from tests.siteserver import Request, Site, drip, page, respond

SETTINGS = Settings(user_agent="test (+mailto:it@example.org)", per_host_delay_s=0.0, retries=2, timeout_s=5,
                    connect_timeout_s=2, max_body_bytes=200_000, per_host_concurrency=1)
UKR = "<html><head><title>Новини</title></head><body><p>Покровська міська рада: їжак, ґанок, єдність.</p></body></html>"


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def fetch(url: str, settings: Settings = SETTINGS, **kw):  # type: ignore[no-untyped-def]
    verify = kw.pop("verify", True)
    async with Fetcher(settings, verify=verify) as f:
        return await f.fetch(url, allow_private=kw.pop("allow_private", True), **kw)


def test_ok_page(site: Site) -> None:
    site.routes["/"] = page(UKR)
    r = run(fetch(site.url("/")))
    assert r.outcome is Outcome.OK and r.status == 200
    assert r.body == UKR.encode() and r.content_type == "text/html" and r.charset == "utf-8"
    assert site.requests[0].headers["user-agent"] == SETTINGS.user_agent


def test_http_status(site: Site) -> None:
    site.routes["/err"] = page("boom", status=500)
    r = run(fetch(site.url("/missing")))
    assert (r.outcome, r.status, r.body) == (Outcome.HTTP_STATUS, 404, None)
    r = run(fetch(site.url("/err"), replace(SETTINGS, retries=0)))
    assert (r.outcome, r.status) == (Outcome.HTTP_STATUS, 500)


def test_connect_refused() -> None:
    with Site() as s:
        url = s.url("/")
    r = run(fetch(url))  # the server is gone: nothing listens on the port
    assert r.outcome is Outcome.CONNECT and r.attempts == 3


def test_dns_failure() -> None:
    r = run(fetch("http://no-such-host.invalid/"))
    assert r.outcome is Outcome.DNS and "no-such-host.invalid" in r.error


def test_private_address_is_blocked_unless_allowed(site: Site) -> None:
    site.routes["/"] = page(UKR)
    r = run(fetch(site.url("/"), allow_private=False))
    assert r.outcome is Outcome.BLOCKED and "allow_private" in r.error
    assert site.requests == []
    assert not is_public_address("169.254.169.254") and not is_public_address("::ffff:10.0.0.1")
    assert is_public_address("93.184.216.34")


def test_timeout_when_headers_never_come(site: Site) -> None:
    async def silent(req: Request, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    site.routes["/slow"] = silent
    t0 = time.monotonic()
    r = run(fetch(site.url("/slow"), replace(SETTINGS, retries=0), timeout_s=1.0))
    assert r.outcome is Outcome.TIMEOUT
    assert time.monotonic() - t0 < 3


def test_total_deadline_bounds_a_dripping_body(site: Site) -> None:
    site.routes["/drip"] = drip(length=1000, every_s=0.2)
    t0 = time.monotonic()
    r = run(fetch(site.url("/drip"), replace(SETTINGS, retries=0), timeout_s=1.5))
    assert r.outcome is Outcome.TIMEOUT and time.monotonic() - t0 < 3.5


def test_too_large_plain_and_compressed(site: Site) -> None:
    big = b"<p>" + b"a" * 300_000 + b"</p>"
    site.routes["/big"] = page(big)
    site.routes["/bomb"] = page(gzip.compress(b"\0" * 50_000_000), headers={"Content-Encoding": "gzip"})
    assert run(fetch(site.url("/big"))).outcome is Outcome.TOO_LARGE
    r = run(fetch(site.url("/bomb")))
    assert r.outcome is Outcome.TOO_LARGE and r.body is None


def test_gzip_body_is_decoded(site: Site) -> None:
    site.routes["/gz"] = page(gzip.compress(UKR.encode()), headers={"Content-Encoding": "gzip"})
    r = run(fetch(site.url("/gz")))
    assert r.outcome is Outcome.OK and r.body == UKR.encode()


def test_every_member_of_a_multi_member_gzip_body_is_decoded(site: Site) -> None:
    """gzip allows members one after another (`cat a.gz b.gz`): all of the page is read, not its first part,
    whether the members arrive in one piece or split anywhere, with zero padding after them."""
    halves = [UKR[: len(UKR) // 2].encode(), UKR[len(UKR) // 2:].encode()]
    body = gzip.compress(halves[0]) + gzip.compress(halves[1]) + b"\0" * 16
    site.routes["/two"] = page(body, headers={"Content-Encoding": "gzip"})
    r = run(fetch(site.url("/two")))
    assert r.outcome is Outcome.OK and r.body == UKR.encode()
    for cut in range(0, len(body), 7):  # split between any two bytes
        d = _Decoder(["gzip"], 10_000)
        assert d.feed(body[:cut]) + d.feed(body[cut:]) == UKR.encode(), cut


def test_a_bomb_of_many_small_members_is_too_large(site: Site) -> None:
    member = gzip.compress(b"x" * 50_000)  # 200 members of 50 KB: 10 MB from 10 KB, over the 200 KB cap
    site.routes["/bomb"] = page(member * 200, headers={"Content-Encoding": "gzip"})
    assert run(fetch(site.url("/bomb"))).outcome is Outcome.TOO_LARGE
    d = _Decoder(["gzip"], 100_000)
    with pytest.raises(_TooLarge):
        d.feed(member * 200)


def test_decoder_never_exceeds_its_limit() -> None:
    d = _Decoder(["gzip"], 1000)
    with pytest.raises(_TooLarge):
        d.feed(gzip.compress(b"x" * 100_000))


def test_redirects_followed_loops_and_chains(site: Site) -> None:
    site.routes["/a"] = page("", status=301, headers={"Location": "/b"})
    site.routes["/b"] = page(UKR)
    site.routes["/loop1"] = page("", status=302, headers={"Location": "/loop2"})
    site.routes["/loop2"] = page("", status=302, headers={"Location": "/loop1"})
    for i in range(15):
        site.routes[f"/chain{i}"] = page("", status=302, headers={"Location": f"/chain{i + 1}"})
    site.routes["/js"] = page("", status=302, headers={"Location": "javascript:alert(1)"})
    r = run(fetch(site.url("/a")))
    assert (r.outcome, r.final_url, r.redirects) == (Outcome.OK, site.url("/b"), 1)
    r = run(fetch(site.url("/loop1")))
    assert r.outcome is Outcome.REDIRECTS and "loop" in r.error
    r = run(fetch(site.url("/chain0")))
    assert r.outcome is Outcome.REDIRECTS and "more than 10" in r.error
    assert run(fetch(site.url("/js"))).outcome is Outcome.REDIRECTS


def test_reset_mid_body_is_a_protocol_error(site: Site) -> None:
    async def reset(req: Request, w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n" + b"x" * 100)
        await w.drain()
        w.transport.abort()

    site.routes["/reset"] = reset
    r = run(fetch(site.url("/reset"), replace(SETTINGS, retries=0)))
    assert r.outcome is Outcome.PROTOCOL


def test_conditional_get(site: Site) -> None:
    async def etagged(req: Request, w: asyncio.StreamWriter) -> None:
        if req.headers.get("if-none-match") == '"v1"':
            await respond(w, 304, b"", {"ETag": '"v1"', "Content-Length": None})
        else:
            await respond(w, 200, UKR.encode(), {"ETag": '"v1"', "Last-Modified": "Mon, 30 Nov 2026 10:00:00 GMT"})

    site.routes["/e"] = etagged
    first = run(fetch(site.url("/e")))
    assert first.outcome is Outcome.OK and first.etag == '"v1"'
    second = run(fetch(site.url("/e"), validators=Validators(etag=first.etag, last_modified=first.last_modified)))
    assert second.outcome is Outcome.NOT_MODIFIED and second.body is None
    assert site.requests[1].headers["if-modified-since"] == "Mon, 30 Nov 2026 10:00:00 GMT"


def test_retry_after_is_honoured(site: Site) -> None:
    calls = []

    async def busy(req: Request, w: asyncio.StreamWriter) -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            await respond(w, 503, b"busy", {"Retry-After": "1"})
        else:
            await respond(w, 200, UKR.encode())

    site.routes["/busy"] = busy
    r = run(fetch(site.url("/busy")))
    assert r.outcome is Outcome.OK and r.attempts == 2
    assert calls[1] - calls[0] >= 0.95


def test_retry_after_beyond_the_deadline_gives_up(site: Site) -> None:
    site.routes["/later"] = page("slow down", status=429, headers={"Retry-After": "120"})
    t0 = time.monotonic()
    r = run(fetch(site.url("/later"), timeout_s=3))
    assert (r.outcome, r.status, r.retry_after_s, r.attempts) == (Outcome.HTTP_STATUS, 429, 120.0, 1)
    assert time.monotonic() - t0 < 2


def test_no_retry_on_404(site: Site) -> None:
    run(fetch(site.url("/nothing")))
    assert len(site.hits("/nothing")) == 1


def test_one_request_at_a_time_per_host(site: Site) -> None:
    async def slowish(req: Request, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.1)
        await respond(w, 200, UKR.encode())

    for i in range(6):
        site.routes[f"/p{i}"] = slowish

    async def many() -> None:
        async with Fetcher(replace(SETTINGS, per_host_delay_s=0.05)) as f:
            results = await asyncio.gather(*(f.fetch(site.url(f"/p{i}"), allow_private=True) for i in range(6)))
        assert all(r.outcome is Outcome.OK for r in results)

    run(many())
    assert site.max_active == 1
    starts = sorted(r.at for r in site.requests)
    assert all(b - a >= 0.1 for a, b in itertools.pairwise(starts))


def test_a_fetch_timed_out_in_the_politeness_pause_gives_its_host_slot_back(site: Site) -> None:
    """The case that marked a healthy host down until restart: with one slot per host and a pause longer
    than the timeout, the second of two fetches times out while it waits its turn. Its slot must come back,
    or every later fetch of the host waits for a slot that never comes and times out without a request."""
    site.routes["/uk"] = page(UKR)

    async def scenario() -> list[Outcome]:
        async with Fetcher(replace(SETTINGS, per_host_delay_s=1.0, timeout_s=0.4, retries=0)) as f:
            first, second = await asyncio.gather(f.fetch(site.url("/uk"), allow_private=True),
                                                 f.fetch(site.url("/uk"), allow_private=True))
            await asyncio.sleep(1.1)  # past the pause
            third = await f.fetch(site.url("/uk"), allow_private=True)
        return [first.outcome, second.outcome, third.outcome]

    assert run(scenario()) == [Outcome.OK, Outcome.TIMEOUT, Outcome.OK]
    assert len(site.hits("/uk")) == 2


@pytest.mark.parametrize("after_s", [0.0, 0.01, 0.03, 0.05, 0.055, 0.06, 0.065, 0.07, 0.08, 0.1])
def test_a_fetch_cancelled_at_any_point_gives_its_host_slot_back(site: Site, after_s: float) -> None:
    """Cancel a fetch `after_s` into it — in its politeness pause (0.05 s after the one before), while it
    connects, while the server thinks (0.02 s), while it reads — then fetch again: with one slot per host, a
    slot or a turn not given back would make it wait for ever."""
    async def slowish(req: Request, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.02)
        await respond(w, 200, UKR.encode())

    site.routes["/uk"] = slowish

    async def scenario() -> tuple[Outcome, Outcome]:
        async with Fetcher(replace(SETTINGS, per_host_delay_s=0.05, timeout_s=2, retries=0)) as f:
            first = await f.fetch(site.url("/uk"), allow_private=True)
            task = asyncio.create_task(f.fetch(site.url("/uk"), allow_private=True))
            await asyncio.sleep(after_s)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.06)
            again = await asyncio.wait_for(f.fetch(site.url("/uk"), allow_private=True), 1)
        return first.outcome, again.outcome

    assert run(scenario()) == (Outcome.OK, Outcome.OK)


def test_other_hosts_are_not_held_up_by_a_slow_one() -> None:
    async def stuck(req: Request, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    with Site() as slow, Site() as fast:
        slow.routes["/"] = stuck
        fast.routes["/"] = page(UKR)

        async def both() -> float:
            async with Fetcher(replace(SETTINGS, retries=0)) as f:
                slow_task = asyncio.create_task(f.fetch(slow.url("/"), allow_private=True, timeout_s=3))
                await asyncio.sleep(0.1)
                t0 = time.monotonic()
                r = await f.fetch(fast.url("/"), allow_private=True)
                took = time.monotonic() - t0
                assert r.outcome is Outcome.OK
                await slow_task
                return took

        assert run(both()) < 1.0


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_site(ca: trustme.CA, *, host: str = "127.0.0.1", expired: bool = False) -> Site:
    if expired:
        cert = ca.issue_cert(host, not_after=datetime.now(UTC) - timedelta(days=1),
                             not_before=datetime.now(UTC) - timedelta(days=30))
    else:
        cert = ca.issue_cert(host, not_after=datetime(2031, 1, 1, tzinfo=UTC))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    return Site(tls=ctx)


@pytest.fixture
def client_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def test_tls_ok_reports_certificate_expiry(ca: trustme.CA, client_ctx: ssl.SSLContext) -> None:
    with tls_site(ca) as s:
        s.routes["/"] = page(UKR)
        r = run(fetch(s.url("/"), verify=client_ctx))
    assert r.outcome is Outcome.OK
    assert r.tls_expires_at is not None and r.tls_expires_at.year == 2031


@pytest.mark.parametrize("kind", ["untrusted", "expired", "wrong-host"])
def test_tls_failures(ca: trustme.CA, client_ctx: ssl.SSLContext, kind: str) -> None:
    if kind == "untrusted":
        site_cm, verify = tls_site(trustme.CA()), client_ctx  # signed by a CA nobody trusts (self-signed chain)
    elif kind == "expired":
        site_cm, verify = tls_site(ca, expired=True), client_ctx
    else:
        site_cm, verify = tls_site(ca, host="other.example"), client_ctx
    with site_cm as s:
        s.routes["/"] = page(UKR)
        r = run(fetch(s.url("/"), verify=verify))
    assert r.outcome is Outcome.TLS, r.error


def test_parse_retry_after() -> None:
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert parse_retry_after("30", now) == 30
    assert parse_retry_after("Mon, 30 Nov 2026 12:01:00 GMT", now) == 60
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("999999", now) == 3600


@pytest.mark.parametrize("codec", ["cp1251", "koi8-u", "utf-8"])
def test_undeclared_cyrillic_pages_decode(site: Site, codec: str) -> None:
    site.routes["/legacy"] = page(UKR.encode(codec), headers={"Content-Type": "text/html"})
    r = run(fetch(site.url("/legacy")))
    text, used = decode(r.body or b"", r.charset)
    assert text == UKR, used


def test_declared_but_wrong_charset_is_corrected(site: Site) -> None:
    site.routes["/wrong"] = page(UKR.encode("utf-8"), headers={"Content-Type": "text/html; charset=windows-1251"})
    r = run(fetch(site.url("/wrong")))
    assert decode(r.body or b"", r.charset)[0] == UKR


def test_meta_charset_and_bom() -> None:
    html = UKR.replace("<head>", '<head><meta charset="windows-1251">')
    assert decode(html.encode("cp1251"))[0] == html
    assert decode(b"\xef\xbb\xbf" + UKR.encode())[0] == UKR


@pytest.fixture(autouse=True)
def _no_leaked_tasks() -> Iterator[None]:
    yield


class KeepAliveServer:
    """HTTP/1.1 with keep-alive (the test Site always says Connection: close): answers every request on a
    connection, or, with close_after_one, answers one and then closes the socket without saying so."""

    def __init__(self, *, close_after_one: bool) -> None:
        self.close_after_one = close_after_one
        self.connections = 0
        self.requests = 0
        self.closed = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        body = UKR.encode()
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
                if self.close_after_one:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
        self.closed += 1


async def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("close_after_one", [False, True])
def test_keep_alive_reuse_and_a_server_that_closes_idle_connections(close_after_one: bool) -> None:
    """An idle connection is reused; one the server closed is noticed before reuse (the pool's "is_readable"),
    so the next fetch opens a new connection at once instead of failing and retrying."""
    server = KeepAliveServer(close_after_one=close_after_one)

    async def scenario() -> list[tuple[Outcome, int]]:
        srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/news"
        out = []
        async with Fetcher(SETTINGS) as f:
            for i in range(3):
                r = await f.fetch(url, allow_private=True)
                out.append((r.outcome, r.attempts))
                if close_after_one:  # the server has closed the connection (on loopback its FIN has arrived)
                    await _until(lambda n=i + 1: server.closed >= n)
        await _until(lambda: server.closed == server.connections)  # and the client's close reached the server
        srv.close()
        await srv.wait_closed()
        return out

    results = run(scenario())
    assert results == [(Outcome.OK, 1)] * 3
    assert server.requests == 3
    assert server.connections == (3 if close_after_one else 1)
