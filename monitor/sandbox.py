"""Reading captures in worker processes. Parsing and extraction are CPU work on untrusted bytes: a hostile
page (200,000 attributes on one element, 100,000 nested elements, 200,000 links) can take minutes and
gigabytes inside the parser. Here it runs outside the event loop — which only does I/O — in a few worker
processes, each capture within a CPU-time limit (enforced by the kernel: RLIMIT_CPU, so that even C code
stops), a memory limit (RLIMIT_AS) and a wall-clock limit. A capture over a limit is refused with the
reason (the core records it as a bad capture) and its worker is replaced; the other captures go on.

Each worker reads one capture at a time from its own pipe, so that the capture that killed a worker is
known and no other capture is lost with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from monitor.core import Reading, read
from monitor.domain import FetchResult, Kind
from monitor.errors import ReadRefused
from monitor.extract import ExtractOptions

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    cpu_s: float = 20.0  # CPU seconds one capture may take
    memory_bytes: int = 1 << 30  # address space of a worker
    wall_s: float = 60.0  # real time one capture may take (a worker stopped by the machine, swapping...)


def _serve(conn: Connection, limits: Limits) -> None:
    """A worker's loop: read captures until the pipe closes. Runs in the worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    with contextlib.suppress(ValueError, OSError):  # a limit the platform refuses: the wall clock still holds
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a worker ended for its CPU time leaves no core file
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        used = resource.getrusage(resource.RUSAGE_SELF)
        budget = int(used.ru_utime + used.ru_stime + limits.cpu_s) + 1
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_CPU, (budget, hard))  # SIGXCPU ends the worker past it
        try:
            capture, kind, options, noise, previous_size = task
            reply: tuple[str, Any] = ("ok", read(capture, kind, options=options, noise=noise,
                                                 previous_size=previous_size))
        except MemoryError:
            reply = ("refused", f"reading needed more than {limits.memory_bytes >> 20} MB")
        except RecursionError:
            reply = ("refused", "nested too deeply to read")
        except Exception as exc:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            if peak > limits.memory_bytes * 0.6:  # the parser ran out of memory and said so its own way
                reply = ("refused", f"reading needed more than {limits.memory_bytes >> 20} MB ({exc})")
            else:  # a bug in a reader: the core records it as the monitor's error
                reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except (OSError, ValueError):
            return


class _Worker:
    """A reader process started afresh (not forked from a process with threads and an event loop, and not by
    multiprocessing, which would import the parent's main module again), talking over a socket pair."""

    def __init__(self, limits: Limits) -> None:
        ours, theirs = socket.socketpair()
        args = json.dumps([limits.cpu_s, limits.memory_bytes, limits.wall_s])
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from monitor.sandbox import worker_main; worker_main(sys.argv[1:])",
             str(theirs.fileno()), args], pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, close_fds=True)
        theirs.close()
        self.conn = Connection(ours.detach())

    @property
    def exitcode(self) -> int | None:
        return self.proc.poll()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


def worker_main(argv: list[str]) -> None:
    """The entry point of a reader process."""
    cpu_s, memory_bytes, wall_s = json.loads(argv[1])
    _serve(Connection(int(argv[0])), Limits(cpu_s=cpu_s, memory_bytes=memory_bytes, wall_s=wall_s))


class Sandbox:
    """A few reader processes, used one capture at a time each. `read` is what the core calls."""

    def __init__(self, workers: int = 2, limits: Limits | None = None) -> None:
        self.size = max(1, workers)
        self.limits = limits or Limits()
        self._idle: asyncio.Queue[_Worker] | None = None
        self._all: list[_Worker] = []
        # the waits on the workers, apart from the threads the rest of the monitor uses (the store's)
        self._threads = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="reader")
        self.refused = 0  # captures refused so far (for the logs and the tests)

    async def _take(self) -> _Worker:
        if self._idle is None:
            self._idle = asyncio.Queue()
            for _ in range(self.size):
                await self._idle.put(await asyncio.to_thread(self._start))
        return await self._idle.get()

    def _start(self) -> _Worker:
        worker = _Worker(self.limits)
        self._all.append(worker)
        return worker

    async def _give_back(self, worker: _Worker, *, broken: bool) -> None:
        assert self._idle is not None
        if broken:
            self._all.remove(worker)
            await asyncio.to_thread(worker.stop)
            worker = await asyncio.to_thread(self._start)
        await self._idle.put(worker)

    async def read(self, capture: FetchResult, kind: Kind, *, options: ExtractOptions | None = None,
                   noise: frozenset[str] = frozenset(), previous_size: int | None = None) -> Reading:
        """Read a capture in a worker; raises ReadRefused when it is over a limit or breaks its worker."""
        worker = await self._take()
        broken = True
        try:
            reply = await asyncio.get_running_loop().run_in_executor(
                self._threads, self._call, worker, (capture, kind, options, noise, previous_size))
            broken = reply[0] == "refused"  # a worker that ran out of memory is not trusted with the next one
        except _Died as died:
            self.refused += 1
            raise ReadRefused(died.reason) from None
        finally:
            await self._give_back(worker, broken=broken)
        status, value = reply
        if status == "ok":
            assert isinstance(value, Reading)
            return value
        if status == "refused":
            self.refused += 1
            raise ReadRefused(str(value))
        raise RuntimeError(f"a reader failed: {value}")

    def _call(self, worker: _Worker, task: tuple[Any, ...]) -> tuple[str, Any]:
        """Send one capture, wait for its reading (in a thread: the event loop goes on)."""
        try:
            worker.conn.send(task)
            if not worker.conn.poll(self.limits.wall_s):
                raise _Died(f"reading took more than {self.limits.wall_s:g} s")
            return worker.conn.recv()  # type: ignore[no-any-return]
        except (EOFError, OSError, BrokenPipeError):
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.proc.wait(5)
            code = worker.exitcode
            if code == -signal.SIGXCPU:
                raise _Died(f"reading took more than {self.limits.cpu_s:g} s of CPU") from None
            if code == -signal.SIGKILL:
                raise _Died(f"reading needed more than {self.limits.memory_bytes >> 20} MB") from None
            raise _Died(f"the reader stopped ({'signal ' + str(-code) if code and code < 0 else code})") from None

    def close(self) -> None:
        for worker in self._all:
            worker.stop()
        self._all.clear()
        self._idle = None
        self._threads.shutdown(wait=False, cancel_futures=True)


class _Died(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))
