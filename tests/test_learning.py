"""Learning while the monitor runs: calibration against a real server and the history of versions, both read
through the core, stored with their evidence and masked from the page's next check on."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from monitor.domain import ChangeClass, Outcome
from monitor.fetch import Fetcher
from monitor.learning import Learner
from monitor.runner import Runner
from monitor.store import Store
from tests.conftest import catalogue_toml
from tests.helpers import Clock, StubFetcher, catalogue, open_store
from tests.siteserver import Request, Site, respond
from tests.test_calibrate import QUOTES, page_of_site, page_with_quote, page_with_stamp


def _store(tmp_path: Path) -> Store:
    return open_store(f"sqlite:///{tmp_path / 'm.db'}")


async def test_calibration_against_a_real_server_learns_and_masks(tmp_path: Path, site: Site) -> None:
    counter = itertools.count()

    async def changing(req: Request, w: asyncio.StreamWriter) -> None:
        await respond(w, 200, page_with_quote(QUOTES[next(counter) % 3]))

    site.routes["/uk"] = changing
    store = _store(tmp_path)
    cat = catalogue(catalogue_toml([site.url("/uk")], extra_settings='calibration_delay = "0.05s"'))
    async with Fetcher(cat.settings) as fetcher:
        runner = Runner(cat, store, fetcher)
        runner.prepare()
        learner = Learner(runner).attach()
        writer = asyncio.create_task(runner.recorder.run())
        (target,) = runner.targets.values()
        first = await runner.check(target)
        await learner.settle()
        rules = store.noise.noise_rules("portal")
        assert [r.source for r in rules] == ["calibration"] and rules[0].path.endswith("div.tip/p")
        assert runner.targets[target.page_id].noise_paths == {rules[0].path}
        second = await runner.check(target)  # the quote changed again: not an update (the rule applies at once)
        await runner.recorder.drain(5)
        writer.cancel()
    assert first.outcome is Outcome.OK
    assert second.verdict is not None and not second.verdict.change_class.is_change
    assert store.history.changes(service_id="portal") == []
    assert len(site.hits("/uk")) == 4  # check, two calibration captures, check
    store.close()


async def test_history_learning_stops_a_busy_block_counting(tmp_path: Path) -> None:
    store = _store(tmp_path)
    clock = Clock()
    fetcher = StubFetcher(clock)
    cat = catalogue(catalogue_toml(["https://city.example/uk"]))
    runner = Runner(cat, store, fetcher, clock=clock)
    runner.prepare()
    for pid in runner.targets:  # calibrated just now: only history learning in this test
        store.noise.mark_calibrated(pid, clock.now())
    learner = Learner(runner).attach()
    writer = asyncio.create_task(runner.recorder.run())
    classes = []
    for i in range(9):
        fetcher.pages["https://city.example/uk"] = (200, page_with_stamp(i + 1))
        (target,) = runner.targets.values()
        record = await runner.check(target)
        await runner.recorder.drain(5)
        await learner.settle()
        classes.append(record.verdict.change_class if record.verdict else None)
        clock.advance(hours=3)
    writer.cancel()
    # until the pattern is clear (HISTORY_MIN_TRANSITIONS transitions, the newest version included: learning
    # waits until the check that brought it is written) it counts as a date bump...
    assert classes[1:6] == [ChangeClass.DATE_ONLY] * 5
    assert all(c is not None and not c.is_change for c in classes[6:])  # ...then the block is masked
    (rule,) = store.noise.noise_rules("portal")
    assert rule.source == "history"
    store.close()


async def test_history_learning_never_masks_real_updates(tmp_path: Path) -> None:
    """A quote edited at every check is a real update each time: history learning counts only the changes the
    detector classes as noise, so the block keeps counting (issue 13)."""
    store = _store(tmp_path)
    clock = Clock()
    fetcher = StubFetcher(clock)
    cat = catalogue(catalogue_toml(["https://city.example/uk"]))
    runner = Runner(cat, store, fetcher, clock=clock)
    runner.prepare()
    for pid in runner.targets:
        store.noise.mark_calibrated(pid, clock.now())
    learner = Learner(runner).attach()
    writer = asyncio.create_task(runner.recorder.run())
    classes = []
    for i in range(9):
        fetcher.pages["https://city.example/uk"] = (200, page_with_quote(f"цитата номер {i}"))
        (target,) = runner.targets.values()
        record = await runner.check(target)
        await runner.recorder.drain(5)
        await learner.settle()
        classes.append(record.verdict.change_class if record.verdict else None)
        clock.advance(hours=3)
    writer.cancel()
    assert classes[1:] == [ChangeClass.CONTENT] * 8
    assert store.noise.noise_rules("portal") == []
    store.close()




async def test_calibration_learns_the_sites_template_from_its_other_pages(tmp_path: Path) -> None:
    """The "latest news" box under every monitored page of one host is the site's template: learned at the
    page's calibration from the other pages' stored versions, so a new item in it is no update of this page."""
    store = _store(tmp_path)
    clock = Clock()
    fetcher = StubFetcher(clock)
    urls = [f"https://city.example/uk/page/{slug}" for slug in ("subsydii", "pilhy", "dovidky")]
    cat = catalogue(catalogue_toml(urls))
    runner = Runner(cat, store, fetcher, clock=clock)
    runner.prepare()
    for pid in runner.targets:
        store.noise.mark_calibrated(pid, clock.now())
    learner = Learner(runner).attach()
    writer = asyncio.create_task(runner.recorder.run())
    for url, own in zip(urls, ("Субсидії", "Пільги", "Довідки"), strict=True):
        fetcher.pages[url] = (200, page_of_site(own))
    for target in runner.targets.values():
        await runner.check(target)
    await runner.recorder.drain(5)
    first = next(t for t in runner.targets.values() if t.page.url == urls[0])
    await learner.calibrate(first.page_id)
    (rule,) = store.noise.noise_rules("portal")
    assert rule.source == "template" and rule.path == "body/div.bottom/ul/li"
    fetcher.pages[urls[0]] = (200, page_of_site("Субсидії", ("Відключення світла 3 грудня на лівому березі міста",
                                                             "Сесія міської ради скликається 5 грудня")))
    clock.advance(hours=1)
    record = await runner.check(runner.targets[first.page_id])
    await runner.recorder.drain(5)
    writer.cancel()
    assert record.verdict is not None and not record.verdict.change_class.is_change
    store.close()
