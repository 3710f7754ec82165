"""A real HTTP/1.1 server on 127.0.0.1 for the tests, with scripted routes (including misbehaving ones).

It runs its own event loop in a background thread, so the code under test talks to it over real
sockets exactly as it would to a municipal web server.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

REASONS = {200: "OK", 301: "Moved Permanently", 302: "Found", 304: "Not Modified", 404: "Not Found",
           429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)


Handler = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]


async def respond(w: asyncio.StreamWriter, status: int = 200, body: bytes = b"",
                  headers: dict[str, str] | None = None) -> None:
    hdrs = {"Content-Type": "text/html; charset=utf-8", "Content-Length": str(len(body)), "Connection": "close"}
    hdrs.update(headers or {})
    head = f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in hdrs.items() if v is not None) + "\r\n"
    w.write(head.encode("latin-1") + body)
    await w.drain()


def page(body: bytes | str, status: int = 200, headers: dict[str, str] | None = None) -> Handler:
    data = body.encode("utf-8") if isinstance(body, str) else body

    async def handler(req: Request, w: asyncio.StreamWriter) -> None:
        await respond(w, status, data, headers)

    return handler


def drip(*, length: int, every_s: float, byte: bytes = b"x") -> Handler:
    """Declares `length` bytes, then sends one byte every `every_s` seconds (a body that never completes in time)."""

    async def handler(req: Request, w: asyncio.StreamWriter) -> None:
        w.write(f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {length}\r\n\r\n".encode())
        for _ in range(length):
            w.write(byte)
            await w.drain()
            await asyncio.sleep(every_s)

    return handler


def gzipped(body: bytes, headers: dict[str, str] | None = None) -> Handler:
    data = gzip.compress(body)
    return page(data, headers={"Content-Encoding": "gzip", **(headers or {})})


class Site:
    """Start with `with Site() as site:`; set routes with `site.routes[path] = handler`."""

    def __init__(self, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> None:
        self.tls = tls
        self.host = host  # another loopback address (127.0.0.2...) stands for another host
        self.routes: dict[str, Handler] = {}
        self.requests: list[Request] = []
        self.active = 0
        self.max_active = 0
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base + path

    def __enter__(self) -> Site:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self.loop)
        fut.result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.close()
        for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
            task.cancel()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ssl.SSLError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        path, _, query = target.partition("?")
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        req = Request(method=method, path=path, query=query, headers=headers)
        self.requests.append(req)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            handler = self.routes.get(path)
            if handler is None:
                await respond(writer, 404, b"<html><body><h1>Not Found</h1></body></html>")
            else:
                await handler(req, writer)
        except (ConnectionError, ssl.SSLError, asyncio.CancelledError):
            pass  # the client went away, or the server is stopping
        finally:
            self.active -= 1
            with contextlib.suppress(Exception):
                writer.close()
            self._writers.discard(writer)

    def hits(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]
