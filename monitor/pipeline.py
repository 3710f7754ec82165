"""Check one page: fetch -> extract -> quality gate -> fingerprint -> detect -> a CheckRecord for the store."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta

from monitor.collect import collect
from monitor.detect import verdict as make_verdict
from monitor.domain import (
    ChangeClass,
    CheckRecord,
    Content,
    Fetch,
    FetchResult,
    Kind,
    Outcome,
    PageState,
    Quality,
    Settings,
    Target,
    Validators,
    Verdict,
    VersionRef,
    dump_content,
    load_content,
)
from monitor.extract import extract, options_for
from monitor.fingerprint import fingerprints, layers, version_key
from monitor.quality import assess

logger = logging.getLogger(__name__)

WAF_HEADERS = ("cf-mitigated",)


ContentLoader = Callable[[int, str], Awaitable[bytes | None]]


class Checker:
    """Runs the check of one page and returns what to store and the page's next state."""

    def __init__(self, fetcher: Fetch, settings: Settings, *, load_previous: ContentLoader, worker: str = "") -> None:
        self.fetcher = fetcher
        self.settings = settings
        self.load_previous = load_previous
        self.worker = worker

    def _validators(self, state: PageState, now: datetime) -> Validators | None:
        """Conditional GET only as an optimisation: at least one full fetch every full_fetch_every_s."""
        v = state.validators
        if state.current is None or not (v.etag or v.last_modified) or state.last_full_fetch_at is None:
            return None
        if now - state.last_full_fetch_at >= timedelta(seconds=self.settings.full_fetch_every_s):
            return None
        return v

    async def check(self, target: Target, state: PageState, now: datetime) -> tuple[CheckRecord, PageState]:
        result = await collect(self.fetcher, target.page, self._validators(state, now))
        record = await self._process(target, state, result)
        return record, next_state(state, record, keep=self.settings.anti_flap_versions + 1,
                                  noise=target.noise_paths)

    async def _process(self, target: Target, state: PageState, result: FetchResult) -> CheckRecord:
        base = CheckRecord(page_id=target.page_id, fetch=result, outcome=result.outcome, worker=self.worker)
        if result.outcome is Outcome.NOT_MODIFIED:
            current = state.current
            if current is None:  # cannot happen: validators are only sent with a stored version
                return replace(base, outcome=Outcome.PROTOCOL)
            return replace(base, fingerprints=current.fingerprints, version_key=current.key_hash,
                           verdict=Verdict(change_class=ChangeClass.NONE))
        if not result.outcome.success or result.body is None:
            return base
        current = state.current
        last = state.last_fingerprints
        if (current is not None and last is not None and state.last_noise == target.noise_paths
                and last.raw == hashlib.sha256(result.body).hexdigest()):
            # the very same bytes as last time: nothing to extract, nothing changed
            return replace(base, quality=Quality.OK, fingerprints=last, version_key=current.key_hash,
                           window_start=state.last_success_at, full_fetch=True,
                           verdict=Verdict(change_class=ChangeClass.NONE))
        try:
            content = extract(target.page.kind, result.body, url=result.final_url, charset=result.charset,
                              content_type=result.content_type,
                              options=options_for(target.page, self.settings.timezone))
        except Exception:  # a bug in an extractor must not stop the monitor
            logger.exception("extraction failed for %s", target.page.url)
            return replace(base, outcome=Outcome.ERROR)
        if target.page.kind is Kind.HTML:  # soft 404s, bot walls, maintenance pages: the gate of web pages
            quality, reason = assess(content, url=result.url, final_url=result.final_url, body=result.body,
                                     previous_size=state.last_size, error_headers=result.challenge)
        else:  # data, feeds and documents say themselves whether they could be read
            quality, reason = content.quality, content.quality_reason
        if quality is not Quality.OK:
            fetch = replace(result, error=reason)
            return replace(base, fetch=fetch, outcome=Outcome.BAD_CAPTURE, quality=quality)
        lay = layers(content, target.noise_paths)
        fp = fingerprints(content, result.body, target.noise_paths, lay)
        key = version_key(fp)
        known = {ref.key_hash for ref in state.recent}
        record = replace(base, quality=Quality.OK, fingerprints=fp, version_key=key, declared_at=content.declared_at,
                         window_start=state.last_success_at, full_fetch=True)
        if current is None:  # the first capture is the baseline, not a change
            return replace(record, new_version=True, content_blob=dump_content(content), raw_blob=result.body,
                           verdict=Verdict(change_class=ChangeClass.NONE))
        prev_content = None
        prev_fp = current.fingerprints
        if key != current.key_hash:
            prev_content = await self._previous(target.page_id, current.key_hash)
        prev_layers = layers(prev_content, target.noise_paths) if prev_content is not None else None
        if prev_content is not None and prev_layers is not None and state.last_noise != target.noise_paths:
            # newly learned noise: compare with the previous version read under the same rules
            prev_fp = replace(fingerprints(prev_content, b"", target.noise_paths, prev_layers),
                              raw=current.fingerprints.raw)
        verdict = make_verdict(prev_fp, fp, key=key, recent=state.recent, prev_content=prev_content,
                               cur_content=content, prev_layers=prev_layers, cur_layers=lay)
        is_real = verdict.change_class in target.service.real_update_classes and not verdict.flapped
        new = key not in known
        return replace(record, verdict=verdict, is_real=is_real, new_version=new,
                       content_blob=dump_content(content) if new else None,
                       raw_blob=result.body if new else None)

    async def _previous(self, page_id: int, key: str) -> Content | None:
        try:
            data = await self.load_previous(page_id, key)
        except Exception as exc:  # the store may be down: the change is still detected, its diff is not
            logger.warning("cannot load the previous version of page %s for the diff: %s", page_id, exc)
            return None
        return load_content(data) if data else None


def next_state(state: PageState, record: CheckRecord, *, keep: int,
               noise: frozenset[str] = frozenset()) -> PageState:
    """The page's state after this check: validators, and the `keep` most recent versions (newest last)."""
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

