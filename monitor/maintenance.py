"""The maintenance jobs: link checks and retention (daily, in `monitor run`), and the aggregates a scrape
reads (every few minutes, in `monitor run` and `monitor exporter`): the self-report audit's verdicts and
the open-data datasets' grades, kept in the store so that no scrape computes them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from monitor import kinds
from monitor.auditing import report_stats
from monitor.domain import Catalogue, Content, Grade, Outcome, Target, load_content, redact_text, redact_url
from monitor.ports import HistoryReader, LinkCheck, Stores
from monitor.runner import Runner
from monitor.status import dataset_statuses

logger = logging.getLogger(__name__)

REPORT_WINDOW_DAYS = 90
AGGREGATES_EVERY_S = 300.0  # the audit behind the self-report metrics changes with imports, not with scrapes


def refresh_aggregates(catalogue: Catalogue, stores: Stores, now: datetime, *,
                       unless_younger_than_s: float = 0.0) -> bool:
    """Recompute what the exporter serves but must not compute at scrape time. Several processes keep them
    (each `monitor run`, each `monitor exporter`): with `unless_younger_than_s`, a process leaves aggregates
    that another one refreshed that recently (False: nothing done)."""
    if unless_younger_than_s > 0:
        kept = stores.metrics.aggregates("self_reports")
        newest = max((a.computed_at for a in kept.values()), default=None)
        if newest is not None and 0 <= (now - newest).total_seconds() < unless_younger_than_s:
            return False
    stores.maintenance.put_aggregates("self_reports", report_stats(catalogue, stores.audit, now, REPORT_WINDOW_DAYS),
                                      now)
    stores.maintenance.put_aggregates("datasets", dataset_grades(catalogue, stores.history, now), now)
    return True


def dataset_grades(catalogue: Catalogue, history: HistoryReader, now: datetime) -> dict[str, dict[str, int]]:
    """Per service with dataset pages: its datasets counted by grade against their own update frequency."""
    out: dict[str, dict[str, int]] = {}
    for svc in catalogue.services:
        if not any(kinds.spec(p.kind).datasets for p in svc.pages):
            continue
        counts = {g.value: 0 for g in Grade}
        for ref in history.current_contents(svc.id):
            blob = history.blob(ref.sha)
            for st in dataset_statuses(load_content(blob).records if blob else (), now,
                                       tz=catalogue.settings.timezone):
                counts[st.grade.value] += 1
        out[svc.id] = counts
    return out


class Maintenance:
    """The daily job of a running monitor (see `monitor db prune`), over the runner's pages."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.settings = runner.settings
        self.clock = runner.clock
        self.stores = runner.stores

    async def daily(self) -> None:
        try:
            await self.check_links()
        except Exception as exc:  # a failed link check must not stop retention
            logger.warning("link checks failed: %s", exc)
        await self.prune()

    async def prune(self) -> Mapping[str, int]:
        now = self.clock.now()
        report = await asyncio.to_thread(
            self.stores.maintenance.prune, checks_before=now - timedelta(seconds=self.settings.keep_checks_s),
            raw_before=now - timedelta(seconds=self.settings.keep_raw_s), slow_s=self.settings.slow_s, now=now)
        logger.info("retention: %s", ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in report.items()))
        return report

    async def aggregates(self) -> None:
        await asyncio.to_thread(lambda: refresh_aggregates(self.runner.catalogue, self.stores, self.clock.now(),
                                                           unless_younger_than_s=AGGREGATES_EVERY_S / 2))

    async def check_links(self) -> int:
        """Check the same-site links of the current content of each page whose kind has link checks, politely
        (through the per-host gate, HEAD first) and capped at link_check_max per page, rotating through the rest
        day by day. A page's links are checked at most every link_check_every. Returns how many were checked."""
        s = self.settings
        if s.link_check_max <= 0 or s.link_check_every_s <= 0:
            return 0
        now = self.clock.now()
        last = await asyncio.to_thread(self.stores.maintenance.last_link_checks)
        due = [t for t in self.runner.targets.values() if kinds.spec(t.page.kind).link_checks and (
            t.page_id not in last or (now - last[t.page_id]).total_seconds() >= 0.9 * s.link_check_every_s)]

        async def one(target: Target) -> list[LinkCheck]:
            content = await self.runner.current_content(target.page_id)
            if content is None:
                return []
            urls = same_site_links(target.page.url, content, s.link_check_max,
                                   offset=now.toordinal() * s.link_check_max)
            rows = []
            for url in urls:
                async with self.runner.slots:
                    r = await self.runner.fetcher.fetch(url, headers=target.page.headers,
                                                        timeout_s=target.page.timeout_s,
                                                        allow_private=target.page.allow_private, probe=True,
                                                        forward_headers=target.page.forward_headers)
                rows.append(LinkCheck(page_id=target.page_id, url=redact_url(url), checked_at=now,
                                      outcome=r.outcome.value,
                                      status=r.status, error=redact_text(r.error)[:500]))
            return rows

        rows = [row for rows in await asyncio.gather(*(one(t) for t in due)) for row in rows]
        await asyncio.to_thread(self.stores.maintenance.add_link_checks, rows)
        logger.info("link checks: %d links of %d pages, %d broken", len(rows), len(due),
                    sum(r.outcome != Outcome.OK.value for r in rows))
        return len(rows)


def same_site_links(page_url: str, content: Content, limit: int, *, offset: int = 0) -> list[str]:
    """The distinct http(s) links and documents of `content` on the page's own site (the host, with or
    without www.), without fragments; at most `limit`, a window starting at `offset` (mod their number)."""
    def site(url: str) -> str:
        host = (urlsplit(url).hostname or "").lower()
        return host.removeprefix("www.")

    home = site(page_url)
    seen: dict[str, None] = {}
    for link in (*content.links, *content.documents):
        parts = urlsplit(link.url)
        if parts.scheme in ("http", "https") and site(link.url) == home:
            seen.setdefault(urlunsplit(parts._replace(fragment="")), None)
    urls = sorted(seen)
    if len(urls) <= limit:
        return urls
    start = offset % len(urls)
    return (urls[start:] + urls[:start])[:limit]
