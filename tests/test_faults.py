"""A fault-injecting server on 127.0.0.1: every fault ends as its outcome class, in bounded time and bounded
memory, and other pages keep being checked meanwhile."""

from __future__ import annotations

import asyncio
import gzip
import os
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import replace

import brotli
import pytest

from monitor.domain import Outcome, Settings
from monitor.fetch import Fetcher
from tests.siteserver import Request, Site, drip, page, respond

SETTINGS = Settings(user_agent="faults (+mailto:it@example.org)", per_host_delay_s=0.0, retries=0, timeout_s=3,
                    connect_timeout_s=2, max_body_bytes=2 * 1024 * 1024)
Handler = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]


async def never_answer(req: Request, w: asyncio.StreamWriter) -> None:
    await asyncio.sleep(60)


async def endless(req: Request, w: asyncio.StreamWriter) -> None:
    w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"<p>" + b"x" * 65536 + b"</p>"
    line = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    for _ in range(10_000):
        w.write(line)
        await w.drain()


GZIP_BOMB = gzip.compress(b"\0" * 200_000_000, compresslevel=9)
BROTLI_BOMB = brotli.compress(b"\0" * 200_000_000, quality=5)


async def reset(req: Request, w: asyncio.StreamWriter) -> None:
    w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 50000\r\n\r\n" + b"y" * 1000)
    await w.drain()
    w.transport.abort()


async def bad_chunks(req: Request, w: asyncio.StreamWriter) -> None:
    w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nhello\r\n0\r\n\r\n")
    await w.drain()


async def short_body(req: Request, w: asyncio.StreamWriter) -> None:
    w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\nonly this")
    await w.drain()


async def huge_header(req: Request, w: asyncio.StreamWriter) -> None:
    w.write(b"HTTP/1.1 200 OK\r\nX-Junk: " + b"a" * 200_000 + b"\r\nContent-Length: 2\r\n\r\nok")
    await w.drain()


async def garbage(req: Request, w: asyncio.StreamWriter) -> None:
    w.write(b"hello, this is not HTTP\r\n\r\n")
    await w.drain()


async def loop_a(req: Request, w: asyncio.StreamWriter) -> None:
    await respond(w, 302, b"", {"Location": "/loop-b"})


async def loop_b(req: Request, w: asyncio.StreamWriter) -> None:
    await respond(w, 302, b"", {"Location": "/loop-a"})


async def chain(req: Request, w: asyncio.StreamWriter) -> None:
    n = int(req.path.rsplit("/", 1)[-1])
    await respond(w, 301, b"", {"Location": f"/chain/{n + 1}"})


FAULTS: dict[str, tuple[Handler, Outcome, float]] = {  # path: (handler, outcome, seconds it may take)
    "/headers-never-come": (never_answer, Outcome.TIMEOUT, 4.5),
    "/drip": (drip(length=100_000, every_s=1, byte=b"<"), Outcome.TIMEOUT, 4.5),
    "/endless": (endless, Outcome.TOO_LARGE, 4.5),
    "/gzip-bomb": (page(GZIP_BOMB, headers={"Content-Encoding": "gzip"}), Outcome.TOO_LARGE, 3),
    "/brotli-bomb": (page(BROTLI_BOMB, headers={"Content-Encoding": "br"}), Outcome.TOO_LARGE, 3),
    "/gzip-members-bomb": (page(gzip.compress(b"x" * 1_000_000) * 200, headers={"Content-Encoding": "gzip"}),
                           Outcome.TOO_LARGE, 3),  # 200 members of 1 MB: the first alone passed the cap
    "/loop-a": (loop_a, Outcome.REDIRECTS, 3),
    "/chain/0": (chain, Outcome.REDIRECTS, 3),
    "/reset": (reset, Outcome.PROTOCOL, 3),
    "/bad-chunks": (bad_chunks, Outcome.PROTOCOL, 3),
    "/short-body": (short_body, Outcome.PROTOCOL, 3),
    "/huge-header": (huge_header, Outcome.PROTOCOL, 3),
    "/garbage": (garbage, Outcome.PROTOCOL, 3),
    "/unknown-encoding": (page(b"abc", headers={"Content-Encoding": "zstd-x"}), Outcome.PROTOCOL, 3),
    "/corrupt-gzip": (page(b"\x1f\x8b\x08\x00garbage-not-gzip", headers={"Content-Encoding": "gzip"}),
                      Outcome.PROTOCOL, 3),
    "/octet-stream-html": (page(b"<html><body><p>ok</p></body></html>",
                                headers={"Content-Type": "application/octet-stream"}), Outcome.OK, 3),
    "/no-content-type": (page(b"<p>ok</p>", headers={"Content-Type": None}), Outcome.OK, 3),
    "/binary": (page(os.urandom(50_000)), Outcome.OK, 3),
}


@pytest.fixture(scope="module")
def fault_site():  # type: ignore[no-untyped-def]
    with Site() as s:
        for path, (handler, _o, _t) in FAULTS.items():
            s.routes[path] = handler
        s.routes["/loop-b"] = loop_b
        for i in range(1, 40):
            s.routes[f"/chain/{i}"] = chain
        yield s


@pytest.mark.parametrize("path", list(FAULTS), ids=lambda p: p.strip("/").split("/")[0])
def test_fault_outcome_time_and_memory(fault_site: Site, path: str) -> None:
    _handler, outcome, seconds = FAULTS[path]

    async def one() -> tuple[Outcome, str]:
        async with Fetcher(SETTINGS) as f:
            r = await f.fetch(fault_site.url(path), allow_private=True)
            return r.outcome, r.error

    tracemalloc.start()
    t0 = time.monotonic()
    try:
        got, error = asyncio.run(one())
        took = time.monotonic() - t0
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got is outcome, error
    assert took < seconds, f"took {took:.1f}s"
    assert peak < 24 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"  # the body cap is 2 MB


def test_server_that_accepts_and_never_reads() -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts (the kernel completes the handshake) and never reads or answers
    port = listener.getsockname()[1]

    async def one():  # type: ignore[no-untyped-def]
        async with Fetcher(SETTINGS) as f:
            return await f.fetch(f"http://127.0.0.1:{port}/", allow_private=True, timeout_s=2)

    t0 = time.monotonic()
    r = asyncio.run(one())
    listener.close()
    assert r.outcome is Outcome.TIMEOUT and time.monotonic() - t0 < 3.5


def test_other_pages_keep_being_checked_while_faults_hang(fault_site: Site) -> None:
    with Site() as good:
        good.routes["/"] = page("<html><body><p>Новини</p></body></html>")

        async def both() -> tuple[float, list[Outcome]]:
            async with Fetcher(replace(SETTINGS, concurrency=8)) as f:
                slow = [asyncio.create_task(f.fetch(fault_site.url(p), allow_private=True))
                        for p in ("/headers-never-come", "/drip", "/endless")]
                await asyncio.sleep(0.2)
                t0 = time.monotonic()
                r = await f.fetch(good.url("/"), allow_private=True)
                took = time.monotonic() - t0
                outcomes = [r.outcome] + [(await t).outcome for t in slow]
                return took, outcomes

        took, outcomes = asyncio.run(both())
    assert outcomes[0] is Outcome.OK and took < 1.0
    # one request at a time to the faulty host: the last one may spend its deadline waiting for its turn
    assert outcomes[1:3] == [Outcome.TIMEOUT, Outcome.TIMEOUT] and outcomes[3] in (Outcome.TOO_LARGE, Outcome.TIMEOUT)
