"""The one capture -> record path: the complete decision (class, real or not, flapped, the version it changed
from), conditional GET, the raw shortcut, 304s, bad captures, and a capture judged at its own time."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from monitor import core
from monitor.domain import (
    ChangeClass,
    CheckRecord,
    FetchResult,
    Outcome,
    PageState,
    Quality,
    Target,
    Validators,
    dump_content,
)
from tests.helpers import Clock, StubFetcher, capture, html
from tests.test_schedule import targets

TZ = "Europe/Kyiv"


async def _no_previous(page_id: int, key: str) -> bytes | None:
    return None


async def _check(fetcher: StubFetcher, target: Target, state: PageState, now: datetime,
                 load: core.ContentLoader = _no_previous) -> tuple[CheckRecord, PageState]:
    """What the runner does for one check, without a store."""
    captured = await core.capture(fetcher, target, state, now=now, full_fetch_every_s=86_400)
    record = await core.process(captured, state, target=target, tz=TZ, load=load)
    return record, core.advance(state, record, keep=6, noise=target.noise_paths)


async def test_conditional_get_only_between_full_fetches() -> None:
    clock = Clock()
    fetcher = StubFetcher(clock)
    (target,) = targets(1)
    fetcher.pages[target.page.url] = (200, html("Новина"))
    _, state = await _check(fetcher, target, PageState(page_id=1), clock.now())
    assert fetcher.calls[-1][1] is None  # nothing stored yet: a full fetch
    state = replace(state, validators=Validators(etag='"abc"'))
    clock.advance(hours=1)
    _, state = await _check(fetcher, target, state, clock.now())
    assert fetcher.calls[-1][1] == Validators(etag='"abc"')
    clock.advance(hours=24)  # a day since the last full fetch: validators are left out once
    await _check(fetcher, target, replace(state, last_full_fetch_at=clock.now() - timedelta(days=1),
                                          validators=Validators(etag='"abc"')), clock.now())
    assert fetcher.calls[-1][1] is None


async def test_same_bytes_skip_extraction_but_count_as_a_check() -> None:
    clock = Clock()
    fetcher = StubFetcher(clock)
    (target,) = targets(1)
    fetcher.pages[target.page.url] = (200, html("Новина"))
    first, state = await _check(fetcher, target, PageState(page_id=1), clock.now())
    clock.advance(hours=1)
    second, state = await _check(fetcher, target, state, clock.now())
    assert second.outcome is Outcome.OK and second.verdict is not None
    assert second.verdict.change_class is ChangeClass.NONE and second.fingerprints == first.fingerprints
    assert second.version_key == first.version_key and not second.new_version and not second.is_change
    assert second.previous_key == first.version_key


async def test_not_modified_keeps_the_current_version() -> None:
    clock = Clock()
    fetcher = StubFetcher(clock)
    (target,) = targets(1)
    fetcher.pages[target.page.url] = (200, html("Новина"))
    first, state = await _check(fetcher, target, PageState(page_id=1), clock.now())
    fetcher.failures[target.page.url] = Outcome.NOT_MODIFIED
    clock.advance(hours=1)
    second, state = await _check(fetcher, target, state, clock.now())
    assert second.outcome is Outcome.NOT_MODIFIED and second.version_key == first.version_key
    assert second.verdict is not None and second.verdict.change_class is ChangeClass.NONE


async def test_the_record_carries_the_whole_decision() -> None:
    """The first capture is a baseline; a new item is a real content change from the previous version, with
    its evidence; a flap back to an older version is no change; a date bump is a change but not real — unless
    the service counts date_only as real."""
    clock = Clock()
    fetcher = StubFetcher(clock)
    (target,) = targets(1)
    stored: dict[str, bytes] = {}

    async def load(page_id: int, key: str) -> bytes | None:
        return stored.get(key)

    async def check(body: bytes, t: Target = target, state: PageState | None = None) -> tuple[CheckRecord, PageState]:
        fetcher.pages[t.page.url] = (200, body)
        clock.advance(hours=1)
        record, after = await _check(fetcher, t, state or PageState(page_id=1), clock.now(), load)
        if record.content_blob is not None and record.version_key is not None:
            stored[record.version_key] = record.content_blob
        return record, after

    a = html("Засідання виконкому", extra="<p>Оновлено 01.11.2026</p>")
    base, state = await check(a)
    assert base.new_version and base.verdict is not None and base.verdict.change_class is ChangeClass.NONE
    assert not base.is_change and base.previous_key is None and not base.is_real

    b = html("Засідання виконкому", "Новий конкурс", extra="<p>Оновлено 01.11.2026</p>")
    real, state = await check(b, state=state)
    assert real.verdict is not None and real.verdict.change_class is ChangeClass.CONTENT
    assert real.is_change and real.is_real and real.previous_key == base.version_key
    assert real.verdict.evidence.added == 1 and "+Новий конкурс" in real.verdict.evidence.diff
    assert real.window_start == base.fetch.started_at

    back, state = await check(a, state=state)
    assert back.verdict is not None and back.verdict.flapped and not back.is_change and not back.is_real

    bumped = html("Засідання виконкому", extra="<p>Оновлено 02.11.2026</p>")
    date_only, state = await check(bumped, state=state)
    assert date_only.verdict is not None and date_only.verdict.change_class is ChangeClass.DATE_ONLY
    assert date_only.is_change and not date_only.is_real
    lenient = replace(target, service=replace(target.service, real_update_classes=frozenset(
        {ChangeClass.CONTENT, ChangeClass.DATE_ONLY})))
    again, _ = await check(html("Засідання виконкому", extra="<p>Оновлено 03.11.2026</p>"), lenient, state)
    assert again.is_change and again.is_real


async def test_a_change_is_still_decided_when_the_previous_content_cannot_be_loaded() -> None:
    clock = Clock()
    fetcher = StubFetcher(clock)
    (target,) = targets(1)

    async def down(page_id: int, key: str) -> bytes | None:
        raise ConnectionError("the database is away")

    fetcher.pages[target.page.url] = (200, html("Перша"))
    _, state = await _check(fetcher, target, PageState(page_id=1), clock.now(), down)
    fetcher.pages[target.page.url] = (200, html("Перша", "Друга"))
    record, _ = await _check(fetcher, target, state, clock.advance(hours=1), down)
    assert record.is_change and record.is_real and record.verdict is not None
    assert record.verdict.change_class is ChangeClass.CONTENT and record.verdict.evidence.diff == ""


async def test_a_bug_in_a_reader_is_an_error_outcome_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    (target,) = targets(1)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(core, "read", broken)
    record = await core.process(capture(html("x")), PageState(page_id=1), target=target, tz=TZ)
    assert record.outcome is Outcome.ERROR and record.verdict is None


async def test_a_capture_is_judged_against_the_state_it_is_given_not_the_newest() -> None:
    """The core has no notion of "now": a capture of 2021 judged against the page's state of 2021 is a change
    from that state, dated 2021, whatever the page became since."""
    (target,) = targets(1)
    jan = capture(html("Січень"), at=datetime(2021, 1, 5, tzinfo=UTC))
    first = await core.process(jan, PageState(page_id=1), target=target, tz=TZ)
    state_2021 = core.advance(PageState(page_id=1), first, keep=6)
    blob = dump_content(core.read(jan).content)

    async def load(page_id: int, key: str) -> bytes | None:
        return blob if key == first.version_key else None

    feb = capture(html("Січень", "Лютий"), at=datetime(2021, 2, 5, tzinfo=UTC))
    record = await core.process(feb, state_2021, target=target, tz=TZ, load=load)
    assert record.is_change and record.fetch.started_at == datetime(2021, 2, 5, tzinfo=UTC)
    assert record.window_start == datetime(2021, 1, 5, tzinfo=UTC) and record.previous_key == first.version_key


def test_a_fetch_result_keeps_its_size_without_its_body() -> None:
    r = FetchResult(url="u", final_url="u", outcome=Outcome.OK, started_at=datetime(2026, 11, 30, tzinfo=UTC),
                    elapsed_s=0.1, body=b"12345")
    assert r.size == 5
    assert replace(r, body=None).size == 5  # the writer's buffer drops bodies, the check row keeps the size
    assert replace(r, body=b"12").size == 2  # a new body is always measured, never copied from the old one
    assert replace(r, body=None, outcome=Outcome.TIMEOUT).body is None


@pytest.mark.parametrize("body", [os.urandom(50_000), b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\x00\x01stream",
                                  b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"], ids=["random", "pdf", "png"])
async def test_binary_where_a_page_is_expected_is_a_bad_capture_not_content(body: bytes) -> None:
    clock = Clock()
    fetcher = StubFetcher(clock)
    (target,) = targets(1)
    fetcher.pages[target.page.url] = (200, body)
    record, _state = await _check(fetcher, target, PageState(page_id=1), clock.now())
    assert record.outcome is Outcome.BAD_CAPTURE and record.quality is Quality.UNREADABLE
    assert "binary data" in record.fetch.error and record.version_key is None
