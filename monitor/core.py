"""The one capture -> record path. A live check, a calibration capture, `monitor compare` and an archived
capture are all read, gated, fingerprinted and judged here, and nowhere else.

`read` turns a capture into a Reading (content, layers, fingerprints, quality). `process` judges a capture
against the page's state *at the capture's time* — its predecessor in time, not whatever the page's newest
state is — and returns the complete CheckRecord, the change decision included (class, real or not,
flapped, and the version it changed from), so that the store only records what was decided here.
`advance` is the page's state after a record.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from monitor import kinds
from monitor.detect import evidence as make_evidence
from monitor.detect import verdict as make_verdict
from monitor.domain import (
    ChangeClass,
    CheckRecord,
    Content,
    Fetch,
    FetchResult,
    Fingerprints,
    Kind,
    Outcome,
    PageState,
    Quality,
    Revision,
    Successor,
    Target,
    Validators,
    Verdict,
    VersionRef,
    dump_content,
    load_content,
    redact_url,
)
from monitor.errors import ReadRefused
from monitor.extract import ExtractOptions
from monitor.fingerprint import Layers, fingerprints, layers, version_key
from monitor.quality import assess

logger = logging.getLogger(__name__)

ContentLoader = Callable[[int, str], Awaitable[bytes | None]]
"""(page id, version key) -> the serialised Content of a stored version, or None."""


class Reader(Protocol):
    """Reads a capture somewhere else (monitor.sandbox: in a worker process, within limits); raises ReadRefused
    for a capture over a limit."""

    async def __call__(self, capture: FetchResult, kind: Kind, *, options: ExtractOptions | None = None,
                       noise: frozenset[str] = frozenset(), previous_size: int | None = None) -> Reading: ...

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    """One capture read: its content, what it is compared by, and whether it is the page's content at all."""

    content: Content
    layers: Layers
    fingerprints: Fingerprints
    key: str  # the version key: equal keys are the same version
    quality: Quality
    quality_reason: str = ""

    @property
    def ok(self) -> bool:
        return self.quality is Quality.OK


def capture_of(body: bytes, *, url: str = "https://example.org/", content_type: str = "",
               charset: str | None = None, at: datetime = _EPOCH) -> FetchResult:
    """A capture that did not come from a fetch (a file, an archive record): what `read` and `process` take."""
    return FetchResult(url=url, final_url=url, outcome=Outcome.OK, started_at=at, elapsed_s=0.0, status=200,
                       body=body, content_type=content_type, charset=charset)


def read(capture: FetchResult, kind: Kind = Kind.HTML, *, options: ExtractOptions | None = None,
         noise: frozenset[str] = frozenset(), previous_size: int | None = None) -> Reading:
    """Extract, gate and fingerprint one capture with a body. An unreadable capture is a Reading whose
    quality says why; only a bug in a reader raises."""
    body = capture.body or b""
    content = kinds.extract(kind, body, url=capture.final_url, charset=capture.charset,
                            content_type=capture.content_type, options=options)
    if kinds.spec(kind).gated:  # soft 404s, bot walls, maintenance pages: the gate of web pages
        quality, reason = assess(content, url=capture.url, final_url=capture.final_url, body=body,
                                 previous_size=previous_size, error_headers=capture.challenge)
    else:  # data, feeds and documents say themselves whether they could be read
        quality, reason = content.quality, content.quality_reason
    lay = layers(content, noise)
    fp = fingerprints(content, body, noise, lay)
    return Reading(content=content, layers=lay, fingerprints=fp, key=version_key(fp), quality=quality,
                   quality_reason=reason)


def decide(before: Reading | None, after: Reading, *, recent: Sequence[VersionRef] = (),
           before_fingerprints: Fingerprints | None = None) -> Verdict:
    """The class and evidence of the change from `before` to `after`. `recent` are the page's versions before
    this capture (newest last) for telling a flap back to an older one; `before_fingerprints` stand in for
    those of `before` when its content is not at hand (the change is still classified, without evidence)."""
    if not after.ok:
        return Verdict(change_class=ChangeClass.NONE)
    prev_fp = before.fingerprints if before is not None else before_fingerprints
    if prev_fp is None:  # the first capture is the baseline, not a change
        return Verdict(change_class=ChangeClass.NONE)
    if not recent and before is not None:
        recent = (VersionRef(key_hash=before.key, fingerprints=before.fingerprints),)
    return make_verdict(prev_fp, after.fingerprints, key=after.key, recent=recent,
                        prev_content=before.content if before else None, cur_content=after.content,
                        prev_layers=before.layers if before else None, cur_layers=after.layers)


def conditional(state: PageState, now: datetime, full_fetch_every_s: float) -> Validators | None:
    """Conditional GET only as an optimisation: at least one full fetch every `full_fetch_every_s`."""
    v = state.validators
    if state.current is None or not (v.etag or v.last_modified) or state.last_full_fetch_at is None:
        return None
    if now - state.last_full_fetch_at >= timedelta(seconds=full_fetch_every_s):
        return None
    return v


async def capture(fetcher: Fetch, target: Target, state: PageState | None = None, *, now: datetime | None = None,
                  full_fetch_every_s: float = 86_400) -> FetchResult:
    """Capture a page as its kind does (one request, or several joined); conditional when `state` allows."""
    validators = conditional(state, now, full_fetch_every_s) if state is not None and now is not None else None
    return await kinds.spec(target.page.kind).capture(fetcher, target.page, validators)


async def process(capture: FetchResult, before: PageState, *, target: Target, tz: str,
                  load: ContentLoader | None = None, worker: str = "", reader: Reader | None = None) -> CheckRecord:
    """The complete record of one capture, judged against `before`: the page's state at the capture's time
    (`capture.started_at`). `load` fetches a stored version's content for the evidence of a change."""
    base = CheckRecord(page_id=target.page_id, fetch=capture, outcome=capture.outcome, worker=worker)
    current = before.current
    if capture.outcome is Outcome.NOT_MODIFIED:
        if current is None:  # cannot happen: validators are only sent with a stored version
            return replace(base, outcome=Outcome.PROTOCOL)
        return replace(base, fingerprints=current.fingerprints, version_key=current.key_hash,
                       previous_key=current.key_hash, verdict=Verdict(change_class=ChangeClass.NONE))
    if not capture.outcome.success or capture.body is None:
        return base
    last = before.last_fingerprints
    if (current is not None and last is not None and before.last_noise == target.noise_paths
            and last.raw == hashlib.sha256(capture.body).hexdigest()):
        # the very same bytes as the predecessor: nothing to extract, nothing changed
        return replace(base, quality=Quality.OK, fingerprints=last, version_key=current.key_hash,
                       previous_key=current.key_hash, window_start=before.last_success_at, full_fetch=True,
                       verdict=Verdict(change_class=ChangeClass.NONE))
    options = kinds.options_for(target.page, tz)
    try:
        if reader is None:
            reading = read(capture, target.page.kind, options=options, noise=target.noise_paths,
                           previous_size=before.last_size)
        else:
            reading = await reader(capture, target.page.kind, options=options, noise=target.noise_paths,
                                   previous_size=before.last_size)
    except ReadRefused as exc:
        return replace(base, fetch=replace(capture, error=str(exc)), outcome=Outcome.BAD_CAPTURE,
                       quality=Quality.TOO_COSTLY)
    except Exception:  # a bug in a reader must not stop the monitor
        logger.exception("extraction failed for %s", redact_url(target.page.url))
        return replace(base, outcome=Outcome.ERROR)
    if not reading.ok:
        return replace(base, fetch=replace(capture, error=reading.quality_reason), outcome=Outcome.BAD_CAPTURE,
                       quality=reading.quality)
    record = replace(base, quality=Quality.OK, fingerprints=reading.fingerprints, version_key=reading.key,
                     declared_at=reading.content.declared_at, window_start=before.last_success_at, full_fetch=True)
    new = reading.key not in {ref.key_hash for ref in before.recent}
    if new:
        record = replace(record, new_version=True, content_blob=dump_content(reading.content),
                         raw_blob=capture.body)
    if current is None:  # the first capture is the baseline, not a change
        return replace(record, verdict=Verdict(change_class=ChangeClass.NONE))
    previous, unavailable = None, False
    if reading.key != current.key_hash and load is not None:
        try:
            previous = await _previous(load, target.page_id, current.key_hash, target)
        except Exception as exc:  # the store is away: the change is decided now, its evidence when it is back
            logger.warning("the previous version of page %s is out of reach for now (%s): its diff will be made "
                           "when the database is back", target.page_id, exc)
            unavailable = True
    prev_fp = current.fingerprints
    if previous is not None and before.last_noise != target.noise_paths:
        # newly learned noise: compare with the previous version read under the same rules
        previous = replace(previous, fingerprints=replace(previous.fingerprints, raw=current.fingerprints.raw))
    elif previous is not None:
        previous = replace(previous, fingerprints=prev_fp)
    verdict = decide(previous, reading, recent=before.recent, before_fingerprints=prev_fp)
    return replace(record, verdict=verdict, previous_key=current.key_hash, evidence_pending=unavailable
                   and verdict.is_change, is_real=verdict.is_change and verdict.change_class in
                   target.service.real_update_classes)


async def complete(record: CheckRecord, *, target: Target, load: ContentLoader) -> CheckRecord:
    """The evidence of a change decided while the previous version was out of reach, made from the stored
    contents (the class and the decision stand). `load` raises when they are still out of reach."""
    if not record.evidence_pending or record.verdict is None or record.previous_key is None:
        return record
    before = await _previous(load, target.page_id, record.previous_key, target)
    data = record.content_blob or (await load(target.page_id, record.version_key) if record.version_key else None)
    if before is None or data is None:
        return replace(record, evidence_pending=False)  # nothing to make it from: the change stands without
    after = _reading(load_content(data), record.version_key or "", target)
    evidence = make_evidence(before.content, after.content, before.layers, after.layers, record.verdict.change_class)
    return replace(record, verdict=replace(record.verdict, evidence=evidence), evidence_pending=False)


async def place(capture: FetchResult, before: PageState, after: Successor | None, *, target: Target, tz: str,
                load: ContentLoader, worker: str = "", reader: Reader | None = None) -> CheckRecord:
    """The record of a capture that arrives late, between stored ones: judged against `before` (the page's
    state at the capture's time) like any other, and carrying the revision of the change recorded at its
    successor `after`, which the capture may prove wrong. Jan A, Mar B (a change A->B recorded in March),
    then February's capture of B: the change happened by February, and March's record is superseded."""
    record = await process(capture, before, target=target, tz=tz, load=load, worker=worker, reader=reader)
    key = record.version_key
    if after is None or key is None or not record.outcome.success or record.fingerprints is None:
        return record
    if after.version_key == key:
        if after.change_id is None or after.change_from == key:
            return record
        verdict = Verdict(change_class=ChangeClass.NONE)  # the successor's change happened by this capture
    elif after.change_id is not None and after.change_from == key:
        return record  # already recorded as coming from this version
    else:
        data = await load(target.page_id, after.version_key)
        if data is None:
            return record  # nothing to judge the successor by: its record stands
        options = kinds.options_for(target.page, tz)
        late = (read(capture, target.page.kind, options=options, noise=target.noise_paths) if reader is None else
                await reader(capture, target.page.kind, options=options, noise=target.noise_paths))
        successor = _reading(load_content(data), after.version_key, target)
        recent = [*before.recent, VersionRef(key_hash=key, fingerprints=record.fingerprints)]
        verdict = decide(late, successor, recent=recent)
        if not verdict.is_change and after.change_id is None:
            return record
    return replace(record, revision=Revision(
        supersedes=after.change_id, from_key=key, to_key=after.version_key, detected_at=after.checked_at,
        window_start=capture.started_at, verdict=verdict,
        is_real=verdict.is_change and verdict.change_class in target.service.real_update_classes))


def _reading(content: Content, key: str, target: Target) -> Reading:
    """A stored version read under the page's current noise rules."""
    lay = layers(content, target.noise_paths)
    fp = fingerprints(content, b"", target.noise_paths, lay)
    return Reading(content=content, layers=lay, fingerprints=fp, key=key, quality=Quality.OK)


async def _previous(load: ContentLoader, page_id: int, key: str, target: Target) -> Reading | None:
    """The predecessor's stored content, read under the page's current noise rules (raises when the store
    cannot be reached)."""
    data = await load(page_id, key)
    return _reading(load_content(data), key, target) if data else None


def advance(state: PageState, record: CheckRecord, *, keep: int, noise: frozenset[str] = frozenset()) -> PageState:
    """The page's state after this record: validators, and the `keep` most recent versions (newest last)."""
    f = record.fetch
    now = f.started_at
    if not record.outcome.success:
        return replace(state, last_check_at=now)
    recent = list(state.recent)
    if record.version_key is not None and record.fingerprints is not None:
        recent = [r for r in recent if r.key_hash != record.version_key]
        recent.append(VersionRef(key_hash=record.version_key, fingerprints=record.fingerprints))
        recent = recent[-keep:]
    validators = state.validators
    last_full = state.last_full_fetch_at
    last_size = state.last_size
    if record.full_fetch:
        validators = Validators(etag=f.etag, last_modified=f.last_modified)
        last_full, last_size = now, f.size
    last_fp = state.last_fingerprints
    if record.full_fetch and record.fingerprints is not None:
        last_fp = record.fingerprints
    return replace(state, last_check_at=now, last_success_at=now, last_full_fetch_at=last_full,
                   validators=validators, last_size=last_size, recent=tuple(recent),
                   last_fingerprints=last_fp, last_noise=noise)
