"""Learning a page's own noise while the monitor runs: calibration (two captures seconds apart, and the
blocks the site repeats on its other monitored pages) and the history of versions. All read captures through
the core and store what they learn with its evidence; the runner masks the learned blocks from the page's
next check on. Learning never disturbs checking."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from monitor import core
from monitor.calibrate import Learned, learn_from_history, learn_from_pair, learn_from_siblings
from monitor.domain import CheckRecord, Content, Kind, Outcome, Quality, Target, load_content, redact_url
from monitor.errors import ReadRefused
from monitor.runner import Runner

logger = logging.getLogger(__name__)

HISTORY_WAIT_S = 600.0  # history learning waits this long for the new version to be written
HISTORY_VERSIONS = 12
SIBLING_PAGES = 8  # the site's other monitored pages compared with a page for its template
PARSED_KEPT = 256  # sibling contents kept parsed, the oldest dropped first


class Learner:
    """Hooked after each check of a runner: calibrates a page when it is due, learns from its history when a
    new version comes."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.clock = runner.clock
        self.noise = runner.stores.noise
        self.settings = runner.settings
        self._calibrated: dict[int, datetime | None] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._by_host: dict[tuple[str | None, Kind], list[int]] = {}  # the monitored pages of each host, by kind
        self._parsed: dict[str, Content] = {}  # sibling contents by their sha256

    def attach(self) -> Learner:
        """Load when each page was last calibrated and follow the runner's checks."""
        self._calibrated = self.noise.calibrated(self.runner.targets)
        for t in self.runner.targets.values():
            self._by_host.setdefault((urlsplit(t.page.url).hostname, t.page.kind), []).append(t.page_id)
        self.runner.after_check.append(self.after_check)
        return self

    def after_check(self, target: Target, record: CheckRecord, seq: int) -> None:
        if record.outcome is not Outcome.OK or record.quality is not Quality.OK:
            return
        now = record.fetch.started_at
        last = self._calibrated.get(target.page_id)
        if last is None or (now - last).total_seconds() >= self.settings.calibration_every_s:
            self._calibrated[target.page_id] = now
            self._spawn(self.calibrate(target.page_id))
        if record.new_version and record.verdict is not None and record.verdict.change_class.is_change:
            self._spawn(self.learn_history(target.page_id, seq))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def settle(self) -> None:
        """Wait for the learning under way (calibrations, history) to finish."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def cancel(self) -> None:
        for task in list(self._background):
            task.cancel()

    def _add_rules(self, page_id: int, learned: list[Learned], source: str) -> None:
        if not learned:
            return
        target = self.runner.targets[page_id]
        added = self.noise.add_noise_rules(page_id, [(x.path, x.evidence) for x in learned], source=source,
                                           now=self.clock.now())
        if added:
            self.runner.add_noise(page_id, added)
            logger.info("service=%s url=%s learned %d volatile block(s) from %s: %s", target.service.id,
                        redact_url(target.page.url), len(added), source, ", ".join(added))

    async def _content(self, target: Target) -> Content | None:
        """One capture of the page read by the core, or None if it is not the page's content."""
        captured = await core.capture(self.runner.fetcher, target)
        if captured.outcome is not Outcome.OK or captured.body is None:
            return None
        try:
            reading = await self.runner.read(captured, replace(target, noise_paths=frozenset()))
        except ReadRefused:
            return None
        return reading.content if reading.ok else None

    async def calibrate(self, page_id: int) -> None:
        """Capture the page twice a few seconds apart: blocks that differ change by themselves."""
        target = self.runner.targets[page_id]
        try:
            async with self.runner.slots:
                first = await self._content(target)
            await self.clock.sleep(self.settings.calibration_delay_s)
            async with self.runner.slots:
                second = await self._content(target)
            if first is None or second is None:
                return
            when = self.clock.now().isoformat(timespec="seconds")
            learned = learn_from_pair(first, second, self.runner.targets[page_id].noise_paths, when=when)
            await asyncio.to_thread(self._add_rules, page_id, learned, "calibration")
            siblings = await asyncio.to_thread(self._siblings, page_id)
            template = learn_from_siblings(second, siblings, self.runner.targets[page_id].noise_paths, when=when)
            await asyncio.to_thread(self._add_rules, page_id, template, "template")
            await asyncio.to_thread(self.noise.mark_calibrated, page_id, self.clock.now())
        except Exception as exc:  # learning is an extra: it must never disturb checking
            logger.warning("calibration of page %s failed: %s", page_id, exc)

    def _siblings(self, page_id: int) -> list[Content]:
        """The newest stored content of up to SIBLING_PAGES other monitored pages of the page's kind on its host
        (read in one query; each content parsed once while it stays the newest and among the recent ones)."""
        target = self.runner.targets[page_id]
        same = self._by_host.get((urlsplit(target.page.url).hostname, target.page.kind), [])
        others = [pid for pid in same if pid != page_id][:4 * SIBLING_PAGES]  # some not captured yet
        out: list[Content] = []
        for _, (sha, blob) in sorted(self.noise.newest_contents(others).items())[:SIBLING_PAGES]:
            content = self._parsed.get(sha)  # one dict operation at a time: calibrations run this in threads
            if content is None:
                content = load_content(blob)
                self._parsed[sha] = content
                while len(self._parsed) > PARSED_KEPT:
                    with contextlib.suppress(KeyError, StopIteration, RuntimeError):
                        self._parsed.pop(next(iter(self._parsed)))
            out.append(content)
        return out

    async def learn_history(self, page_id: int, seq: int) -> None:
        """A block that changes at nearly every version while the rest stays still is the page's noise.
        Read once the check numbered `seq` by the writer, which brought the new version, is written."""
        try:
            if not await self.runner.recorder.wait_written(seq, HISTORY_WAIT_S):
                return  # the database is unreachable: the next new version will try again
            blobs = await asyncio.to_thread(self.noise.recent_contents, page_id, HISTORY_VERSIONS)
            learned = learn_from_history([load_content(b) for b in blobs], self.runner.targets[page_id].noise_paths)
            await asyncio.to_thread(self._add_rules, page_id, learned, "history")
        except Exception as exc:
            logger.warning("learning from the history of page %s failed: %s", page_id, exc)
