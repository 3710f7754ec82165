"""Self-calibration: a page's own noise is learned (two captures seconds apart, and history), stored with
evidence, listed by `monitor noise`, and masked from then on."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from click.testing import CliRunner

from monitor.calibrate import learn_from_history, learn_from_pair
from monitor.cli import main
from monitor.compare import read
from monitor.domain import ChangeClass, Outcome
from monitor.fetch import Fetcher
from monitor.runner import Runner
from monitor.store.engine import make_engine, upgrade
from monitor.store.repository import Store
from tests.conftest import catalogue_toml
from tests.helpers import Clock, StubFetcher, catalogue, html
from tests.siteserver import Request, Site, respond

QUOTES = ["Хто рано встає, тому Бог дає", "Без праці нема колача", "Терпи, козаче, отаманом будеш"]


def page_with_quote(quote: str, news: tuple[str, ...] = ("Засідання виконкому", "Ремонт доріг")) -> bytes:
    return html(*news, extra=f"<div class='tip'><p>Мудрість дня: {quote}</p></div>")


def test_learn_from_pair_marks_only_what_differs() -> None:
    a = read(page_with_quote(QUOTES[0])).content
    b = read(page_with_quote(QUOTES[1])).content
    (learned,) = learn_from_pair(a, b, when="2026-11-30T10:00:00+00:00")
    assert learned.path.endswith("div.tip/p")
    assert QUOTES[0] in learned.evidence and QUOTES[1] in learned.evidence
    assert learn_from_pair(a, a) == []


def test_a_page_that_changed_wholesale_teaches_nothing() -> None:
    a = read(html("Перша", "Друга", "Третя")).content
    b = read(html("Четверта", "Пʼята", "Шоста")).content
    assert learn_from_pair(a, b) == []


def test_learn_from_history_needs_a_still_page_around_a_busy_block() -> None:
    versions = [read(page_with_quote(f"цитата номер {i}")).content for i in range(7)]
    (learned,) = learn_from_history(versions)
    assert learned.path.endswith("div.tip/p") and "6 of the last 6" in learned.evidence
    assert learn_from_history(versions[:4]) == []  # too little history


def _store(tmp_path: Path) -> Store:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine)
    return Store(engine)


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
        writer = asyncio.create_task(runner.recorder.run())
        (target,) = runner.targets.values()
        first = await runner.check(target)
        await runner.settle()
        rules = store.noise_rules("portal")
        assert [r.source for r in rules] == ["calibration"] and rules[0].path.endswith("div.tip/p")
        assert runner.targets[target.page_id].noise_paths == {rules[0].path}
        second = await runner.check(runner.targets[target.page_id])  # the quote changed again: not an update
        await runner.recorder.drain(5)
        writer.cancel()
    assert first.outcome is Outcome.OK
    assert second.verdict is not None and second.verdict.change_class.rank > ChangeClass.DATE_ONLY.rank
    assert store.changes(service_id="portal") == []
    assert len(site.hits("/uk")) == 4  # check, two calibration captures, check
    store.close()


async def test_history_learning_stops_a_busy_block_counting(tmp_path: Path) -> None:
    store = _store(tmp_path)
    clock = Clock()
    fetcher = StubFetcher(clock)
    cat = catalogue(catalogue_toml(["https://city.example/uk"]))
    runner = Runner(cat, store, fetcher, clock=clock)
    runner.prepare()
    runner._calibrated = {pid: clock() for pid in runner.targets}  # only history learning in this test
    writer = asyncio.create_task(runner.recorder.run())
    classes = []
    for i in range(9):
        fetcher.pages["https://city.example/uk"] = (200, page_with_quote(f"цитата номер {i}"))
        (target,) = runner.targets.values()
        record = await runner.check(target)
        await runner.recorder.drain(5)
        await runner.settle()
        classes.append(record.verdict.change_class if record.verdict else None)
        clock.advance(hours=3)
    writer.cancel()
    # until the pattern is clear (HISTORY_MIN_TRANSITIONS transitions, the newest version included: learning
    # waits until the check that brought it is written) it counts...
    assert classes[1:6] == [ChangeClass.CONTENT] * 5
    assert all(c is not ChangeClass.CONTENT for c in classes[6:])  # ...then the block is masked
    (rule,) = store.noise_rules("portal")
    assert rule.source == "history"
    store.close()


def test_noise_command_lists_confirms_and_drops(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    cat_path = tmp_path / "t.toml"
    cat_path.write_text(catalogue_toml(["https://city.example/uk"], db=f"sqlite:///{db}"), encoding="utf-8")
    store = Store.open(f"sqlite:///{db}")
    ids = store.sync_catalogue(catalogue(cat_path.read_text()), Clock()())
    store.add_noise_rules(ids["portal#1"], [("body/main/div.tip/p", "calibration: 'a' -> 'b'")],
                          source="calibration", now=Clock()())
    store.close()
    runner = CliRunner()
    out = runner.invoke(main, ["-t", str(cat_path), "noise", "portal", "--json"])
    (rule,) = __import__("json").loads(out.stdout)
    assert rule["status"] == "active" and rule["evidence"] == "calibration: 'a' -> 'b'"
    out = runner.invoke(main, ["-t", str(cat_path), "noise", "portal", "--drop", str(rule["id"])])
    assert out.exit_code == 0 and "dropped" in out.stdout
    out = runner.invoke(main, ["-t", str(cat_path), "noise", "portal", "--confirm", "999"])
    assert out.exit_code == 2 and "rule 999 is not a rule of portal" in out.stderr
    store = Store.open(f"sqlite:///{db}")
    assert store.noise_paths(ids.values()) == {}  # dropped rules are not applied...
    assert store.add_noise_rules(ids["portal#1"], [("body/main/div.tip/p", "again")], source="calibration",
                                 now=Clock()()) == []  # ...and never learned again
    store.close()
