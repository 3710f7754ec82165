"""Shared helpers for the benchmarks: the shared corpus, a fast static server, peak memory."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import resource
import sys
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def corpus_pages() -> list[Path]:
    pages = sorted((SHARED / "pages").glob("*.html"))
    if not pages:
        sys.exit(f"skipped: the shared corpus is not at {SHARED} (the benchmarks read real pages from it)")
    return pages


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _serve(bodies: list[bytes], port_q: mp.Queue, host: str = "127.0.0.1") -> None:  # type: ignore[type-arg]
    """A minimal keep-alive HTTP/1.1 server: GET /p/<n> returns page n % len(bodies)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                n = int(path.rsplit("/", 1)[-1]) if path.startswith("/p/") else 0
                body = bodies[n % len(bodies)]
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, host, 0, backlog=1024)
        port_q.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


class PageServer:
    """Serves the corpus from another process, so the measured process only does the client side."""

    def __init__(self, bodies: list[bytes], host: str = "127.0.0.1") -> None:
        ctx = mp.get_context("spawn")
        self._q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
        self._proc = ctx.Process(target=_serve, args=(bodies, self._q, host), daemon=True)
        self.host = host  # another loopback address (127.0.0.2...) stands for another host
        self.port = 0

    def __enter__(self) -> PageServer:
        self._proc.start()
        self.port = self._q.get(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self._proc.terminate()
        self._proc.join(10)

    def url(self, n: int) -> str:
        return f"http://{self.host}:{self.port}/p/{n}"
