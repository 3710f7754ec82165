"""A counting relay between the monitor's processes and PostgreSQL: it passes every byte through and counts, in
the client's half of the wire protocol, the statements sent (a simple Query, or an Execute of the extended
protocol) and the round trips (a simple Query, or a Sync: the client then waits for ReadyForQuery).

It reads the protocol in the clear, so the clients it serves connect with sslmode=disable and
gssencmode=disable (loopback only)."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from dataclasses import dataclass

_SSL, _GSS, _CANCEL = 80877103, 80877104, 80877102  # request codes of the untyped first messages


@dataclass(slots=True)
class Counts:
    statements: int = 0
    round_trips: int = 0
    connections: int = 0


class PgCounter:
    """`with PgCounter() as relay:` listens on 127.0.0.1:relay.port and forwards to upstream; relay.counts
    grows as the clients talk (read it from any thread: plain integers, one writer)."""

    def __init__(self, upstream: tuple[str, int] = ("127.0.0.1", 5432)) -> None:
        self.upstream = upstream
        self.counts = Counts()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port: int = sock.getsockname()[1]
        self._sock = sock
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> PgCounter:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._client, sock=self._sock)

    async def _shutdown(self) -> None:
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counts.connections += 1
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        back = asyncio.ensure_future(self._pipe(up_reader, writer))
        try:
            await self._frontend(reader, up_writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client left, or the relay stops: a task's end (asyncio's callback would report a cancel)
        finally:
            up_writer.close()
            back.cancel()
            await asyncio.gather(back, return_exceptions=True)
            writer.close()

    async def _frontend(self, reader: asyncio.StreamReader, up: asyncio.StreamWriter) -> None:
        while True:  # untyped messages until the startup message (an SSL or GSS request is refused upstream)
            head = await reader.readexactly(8)
            length, code = struct.unpack("!ii", head)
            up.write(head + await reader.readexactly(length - 8))
            await up.drain()
            if code not in (_SSL, _GSS, _CANCEL):
                break
        while True:
            head = await reader.readexactly(5)
            kind, length = head[:1], struct.unpack("!i", head[1:])[0]
            if kind == b"Q":
                self.counts.statements += 1
                self.counts.round_trips += 1
            elif kind == b"E":
                self.counts.statements += 1
            elif kind == b"S":
                self.counts.round_trips += 1
            up.write(head + await reader.readexactly(length - 4))
            await up.drain()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
