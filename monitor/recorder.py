"""The buffered writer: check records are written in batches by one task; while the database is unreachable
they wait in a bounded buffer (checks wait when it is full, nothing is dropped) and are written when it is
back. A record that cannot be written at all is logged and dropped without blocking the others."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import replace

from monitor.domain import CheckRecord
from monitor.errors import StoreError, StoreUnavailable
from monitor.ports import CheckWriter

logger = logging.getLogger(__name__)

Complete = Callable[[CheckRecord], Awaitable[CheckRecord]]
"""Makes the evidence of a change decided while the previous version was out of reach."""


class Recorder:
    """Writes check records in batches; holds them (bounded) while the database is unreachable."""

    def __init__(self, store: CheckWriter, *, max_pending: int = 20_000, max_pending_bytes: int = 64 << 20,
                 batch: int = 200, retry_max_s: float = 10.0, linger_s: float = 0.05,
                 complete: Complete | None = None) -> None:
        self.store = store
        self.complete = complete
        self.linger_s = linger_s  # a short wait for more records before a small batch: fewer, larger writes
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.pending_bytes = 0
        self.batch = batch
        self.retry_max_s = retry_max_s
        self.pending: deque[CheckRecord] = deque()
        self.db_ok = True
        self.last_error = ""
        self.last_exception: StoreUnavailable | None = None
        self.written = 0
        self.put_count = 0  # records taken so far; the n-th one is done when done_count >= n
        self.done_count = 0  # records written or dropped, in the order they were taken
        self._done = asyncio.Condition()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()

    @staticmethod
    def _size(record: CheckRecord) -> int:
        return len(record.raw_blob or b"") + len(record.content_blob or b"") + 512

    async def put(self, record: CheckRecord) -> int:
        """Take a record to write; its sequence number (see `wait_written`)."""
        # back-pressure: checks wait while the buffer is full (by count or by bytes); nothing is dropped
        while self.pending and (len(self.pending) >= self.max_pending
                                or self.pending_bytes >= self.max_pending_bytes):
            self._room.clear()
            await self._room.wait()
        self.pending.append(record)
        self.pending_bytes += self._size(record)
        self._idle.clear()
        self._wake.set()
        self.put_count += 1
        return self.put_count

    async def wait_written(self, seq: int, timeout_s: float | None = None) -> bool:
        """Wait until the record numbered `seq` by `put` is written (or dropped); False on timeout."""
        async with self._done:
            try:
                await asyncio.wait_for(self._done.wait_for(lambda: self.done_count >= seq), timeout_s)
            except TimeoutError:
                return False
        return True

    async def _advance(self, n: int) -> None:
        self.done_count += n
        async with self._done:
            self._done.notify_all()

    async def run(self) -> None:
        """The writer loop; cancel it after `drain()` to stop."""
        delay = 0.5
        while True:
            if not self.pending:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            if len(self.pending) < self.batch and self.db_ok and self.linger_s:
                await asyncio.sleep(self.linger_s)
            batch = [self.pending[i] for i in range(min(self.batch, len(self.pending)))]
            try:
                batch = await self._completed(batch)
                await asyncio.to_thread(self.store.write, batch)
            except StoreUnavailable as exc:
                if self.db_ok:
                    logger.error("database unreachable, buffering checks: %s", exc)
                self.db_ok, self.last_error, self.last_exception = False, str(exc), exc
                await asyncio.sleep(delay)
                delay = min(self.retry_max_s, delay * 2)
                continue
            except StoreError as exc:  # one bad record must not block the others: write them one by one
                logger.error("a batch could not be written (%s); writing its records one by one", exc)
                for rec in batch:
                    try:
                        await asyncio.to_thread(self.store.write, [rec])
                        self.written += 1
                    except StoreUnavailable:
                        break
                    except StoreError:
                        logger.exception("dropping an unwritable check record for page %s", rec.page_id)
                    self.pending.remove(rec)
                    self.pending_bytes -= self._size(rec)
                    await self._advance(1)
                self._room.set()
                continue
            for rec in batch:
                self.pending.popleft()
                self.pending_bytes -= self._size(rec)
            self.written += len(batch)
            await self._advance(len(batch))
            if not self.db_ok:
                logger.warning("database reachable again; wrote %d buffered checks", len(batch))
            self.db_ok, self.last_error, self.last_exception, delay = True, "", None, 0.5
            self._room.set()

    async def _completed(self, batch: list[CheckRecord]) -> list[CheckRecord]:
        """The evidence of the changes decided while the database was away, made now that it answers again
        (raises StoreUnavailable while it does not). The buffer keeps the completed records."""
        if self.complete is None or not any(r.evidence_pending for r in batch):
            return batch
        out = []
        for i, rec in enumerate(batch):
            if rec.evidence_pending:
                try:
                    rec = await self.complete(rec)
                except StoreUnavailable:
                    raise
                except Exception:  # a bug must not hold the buffer: the change is written without its diff
                    logger.exception("the evidence of a change of page %s could not be made", rec.page_id)
                    rec = replace(rec, evidence_pending=False)
                self.pending[i] = rec
            out.append(rec)
        return out

    async def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until every pending record is written; False if the timeout passed first."""
        if not self.pending:
            return True
        self._wake.set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True
