"""The buffered writer: batches, lingering for larger ones, sequence numbers, holding records while the
database is away. Its store is a fake of the one interface it needs (CheckWriter)."""

from __future__ import annotations

from collections.abc import Sequence

from monitor.domain import Outcome


async def test_the_recorder_says_when_a_given_record_is_written() -> None:
    """History learning waits for the check that brought the new version: wait_written(seq)."""
    import asyncio
    from datetime import UTC, datetime

    from monitor.domain import CheckRecord, FetchResult
    from monitor.errors import StoreUnavailable
    from monitor.recorder import Recorder

    class Store:
        def __init__(self) -> None:
            self.rows: list[int] = []
            self.down = True

        def write(self, batch: Sequence[CheckRecord]) -> None:
            if self.down:
                raise StoreUnavailable("down")
            self.rows += [r.page_id for r in batch]

    store = Store()
    recorder = Recorder(store, batch=2, retry_max_s=0.05)
    fetch = FetchResult(url="u", final_url="u", outcome=Outcome.OK, started_at=datetime(2026, 11, 30, tzinfo=UTC),
                        elapsed_s=0.1)
    seqs = [await recorder.put(CheckRecord(page_id=i, fetch=fetch, outcome=Outcome.OK)) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    writer = asyncio.create_task(recorder.run())
    assert not await recorder.wait_written(1, 0.2)  # the database is down: nothing is written
    store.down = False
    assert await recorder.wait_written(3, 5)
    assert store.rows[:3] == [0, 1, 2]  # written in the order taken
    assert await recorder.wait_written(5, 5) and store.rows == [0, 1, 2, 3, 4]
    writer.cancel()


async def test_the_recorder_lingers_for_larger_batches() -> None:
    """Checks finishing one after another are written together (a statement per table per batch, not per
    check); without the linger each arrives alone."""
    import asyncio
    from datetime import UTC, datetime

    from monitor.domain import CheckRecord, FetchResult
    from monitor.recorder import Recorder

    class Store:
        def __init__(self) -> None:
            self.batches: list[list[int]] = []

        def write(self, batch: Sequence[CheckRecord]) -> None:
            self.batches.append([r.page_id for r in batch])

    fetch = FetchResult(url="u", final_url="u", outcome=Outcome.OK, started_at=datetime(2026, 11, 30, tzinfo=UTC),
                        elapsed_s=0.1)
    for linger_s, gap_s, expected in ((0.5, 0.01, [list(range(6))]), (0.0, 0.05, [[i] for i in range(6)])):
        store = Store()
        recorder = Recorder(store, linger_s=linger_s)
        writer = asyncio.create_task(recorder.run())
        for i in range(6):
            await recorder.put(CheckRecord(page_id=i, fetch=fetch, outcome=Outcome.OK))
            await asyncio.sleep(gap_s)
        assert await recorder.drain(5)
        writer.cancel()
        assert store.batches == expected, linger_s


async def test_the_evidence_of_changes_made_while_the_database_was_away_is_made_before_writing() -> None:
    """A change decided while its previous version was out of reach waits in the buffer; the writer makes its
    evidence once the database answers again, and writes it with it. A bug in making it never holds the
    buffer: that record is written without a diff."""
    import asyncio
    from dataclasses import replace
    from datetime import UTC, datetime

    from monitor.domain import CheckRecord, Evidence, FetchResult, Verdict
    from monitor.errors import StoreUnavailable
    from monitor.recorder import Recorder

    class Store:
        def __init__(self) -> None:
            self.rows: list[CheckRecord] = []

        def write(self, batch: Sequence[CheckRecord]) -> None:
            self.rows += batch

    away = [True]

    async def complete(record: CheckRecord) -> CheckRecord:
        if away[0]:
            raise StoreUnavailable("down")
        if record.page_id == 2:
            raise RuntimeError("a bug")
        assert record.verdict is not None
        return replace(record, evidence_pending=False,
                       verdict=replace(record.verdict, evidence=Evidence(diff=f"+diff {record.page_id}")))

    store = Store()
    recorder = Recorder(store, retry_max_s=0.05, linger_s=0, complete=complete)
    fetch = FetchResult(url="u", final_url="u", outcome=Outcome.OK, started_at=datetime(2026, 11, 30, tzinfo=UTC),
                        elapsed_s=0.1)
    from monitor.domain import ChangeClass

    for pid in (1, 2, 3):
        await recorder.put(CheckRecord(page_id=pid, fetch=fetch, outcome=Outcome.OK, evidence_pending=pid != 3,
                                       verdict=Verdict(change_class=ChangeClass.CONTENT)))
    writer = asyncio.create_task(recorder.run())
    await asyncio.sleep(0.2)
    assert store.rows == [] and not recorder.db_ok  # nothing written while the evidence cannot be made
    away[0] = False
    assert await recorder.drain(5)
    writer.cancel()
    diffs = {r.page_id: (r.verdict.evidence.diff if r.verdict else None, r.evidence_pending) for r in store.rows}
    assert diffs == {1: ("+diff 1", False), 2: ("", False), 3: ("", False)}
