"""The check of one page end to end with an injected clock: conditional GET, state, the raw shortcut."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from monitor.domain import ChangeClass, Outcome, PageState, Validators
from monitor.pipeline import Checker
from tests.helpers import Clock, StubFetcher, html
from tests.test_schedule import targets

SETTINGS_KW = dict(user_agent="t (+mailto:a@b.c)")


async def _no_previous(page_id: int, key: str) -> bytes | None:
    return None


async def test_conditional_get_only_between_full_fetches() -> None:
    from monitor.domain import Settings

    clock = Clock()
    fetcher = StubFetcher(clock)
    (target,) = targets(1)
    fetcher.pages[target.page.url] = (200, html("Новина"))
    checker = Checker(fetcher, Settings(**SETTINGS_KW), load_previous=_no_previous)  # type: ignore[arg-type]
    state = PageState(page_id=1)
    _, state = await checker.check(target, state, clock())
    assert fetcher.calls[-1][1] is None  # nothing stored yet: a full fetch
    state = replace(state, validators=Validators(etag='"abc"'))
    clock.advance(hours=1)
    _, state = await checker.check(target, state, clock())
    assert fetcher.calls[-1][1] == Validators(etag='"abc"')
    clock.advance(hours=24)  # a day since the last full fetch: validators are left out once
    _record, state = await checker.check(target, replace(state, last_full_fetch_at=clock.now - timedelta(days=1),
                                                        validators=Validators(etag='"abc"')), clock())
    assert fetcher.calls[-1][1] is None


async def test_same_bytes_skip_extraction_but_count_as_a_check() -> None:
    from monitor.domain import Settings

    clock = Clock()
    fetcher = StubFetcher(clock)
    (target,) = targets(1)
    fetcher.pages[target.page.url] = (200, html("Новина"))
    checker = Checker(fetcher, Settings(**SETTINGS_KW), load_previous=_no_previous)  # type: ignore[arg-type]
    first, state = await checker.check(target, PageState(page_id=1), clock())
    second, state = await checker.check(target, state, clock.advance(hours=1))
    assert second.outcome is Outcome.OK and second.verdict is not None
    assert second.verdict.change_class is ChangeClass.NONE and second.fingerprints == first.fingerprints
    assert second.version_key == first.version_key and not second.new_version


async def test_not_modified_keeps_the_current_version() -> None:
    from monitor.domain import Settings

    clock = Clock()
    fetcher = StubFetcher(clock)
    (target,) = targets(1)
    fetcher.pages[target.page.url] = (200, html("Новина"))
    checker = Checker(fetcher, Settings(**SETTINGS_KW), load_previous=_no_previous)  # type: ignore[arg-type]
    first, state = await checker.check(target, PageState(page_id=1), clock())
    fetcher.failures[target.page.url] = Outcome.NOT_MODIFIED
    second, state = await checker.check(target, state, clock.advance(hours=1))
    assert second.outcome is Outcome.NOT_MODIFIED and second.version_key == first.version_key
    assert second.verdict is not None and second.verdict.change_class is ChangeClass.NONE


def test_a_fetch_result_keeps_its_size_without_its_body() -> None:
    from datetime import UTC, datetime

    from monitor.domain import FetchResult

    r = FetchResult(url="u", final_url="u", outcome=Outcome.OK, started_at=datetime(2026, 11, 30, tzinfo=UTC),
                    elapsed_s=0.1, body=b"12345")
    assert r.size == 5
    assert replace(r, body=None).size == 5  # the writer's buffer drops bodies, the check row keeps the size
    assert replace(r, body=b"12").size == 2  # a new body is always measured, never copied from the old one
    assert replace(r, body=None, outcome=Outcome.TIMEOUT).body is None


async def test_the_recorder_says_when_a_given_record_is_written() -> None:
    """History learning waits for the check that brought the new version: wait_written(seq)."""
    import asyncio
    from datetime import UTC, datetime

    from monitor.domain import CheckRecord, FetchResult
    from monitor.errors import StoreUnavailable
    from monitor.runner import Recorder

    class Store:
        def __init__(self) -> None:
            self.rows: list[int] = []
            self.down = True

        def write(self, batch: list[CheckRecord]) -> None:
            if self.down:
                raise StoreUnavailable("down")
            self.rows += [r.page_id for r in batch]

    store = Store()
    recorder = Recorder(store, batch=2, retry_max_s=0.05)  # type: ignore[arg-type]
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
    from monitor.runner import Recorder

    class Store:
        def __init__(self) -> None:
            self.batches: list[list[int]] = []

        def write(self, batch: list[CheckRecord]) -> None:
            self.batches.append([r.page_id for r in batch])

    fetch = FetchResult(url="u", final_url="u", outcome=Outcome.OK, started_at=datetime(2026, 11, 30, tzinfo=UTC),
                        elapsed_s=0.1)
    for linger_s, gap_s, expected in ((0.5, 0.01, [list(range(6))]), (0.0, 0.05, [[i] for i in range(6)])):
        store = Store()
        recorder = Recorder(store, linger_s=linger_s)  # type: ignore[arg-type]
        writer = asyncio.create_task(recorder.run())
        for i in range(6):
            await recorder.put(CheckRecord(page_id=i, fetch=fetch, outcome=Outcome.OK))
            await asyncio.sleep(gap_s)
        assert await recorder.drain(5)
        writer.cancel()
        assert store.batches == expected, linger_s
