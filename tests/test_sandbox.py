"""Reading captures in worker processes within limits: the same readings as in the monitor's own process; a
hostile page refused with the reason (CPU time, memory) while its worker is replaced; and a round of healthy
pages beside the worst hostile pages, all checked normally."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from monitor.core import capture_of, read
from monitor.domain import Kind, Outcome, Quality
from monitor.errors import ReadRefused
from monitor.fetch import Fetcher
from monitor.runner import Runner
from monitor.sandbox import Limits, Sandbox
from tests.conftest import catalogue_toml
from tests.helpers import catalogue, html, open_store
from tests.siteserver import Site, page

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "extract").glob("*.html"))
ATTRIBUTES = ("<html><body><div " + " ".join(f"a{i}=x" for i in range(200_000)) + ">Текст</div></body></html>")
NESTED = "<html><body>" + "<div>Текст " * 100_000 + "</div>" * 100_000 + "</body></html>"
LINKS = ("<html><body><main>" + "".join(f"<a href='/p/{i}'>Посилання {i}</a>" for i in range(200_000))
         + "</main></body></html>")


async def test_a_worker_reads_exactly_as_the_monitor_does() -> None:
    box = Sandbox(2, Limits(cpu_s=30))
    try:
        bodies = [p.read_bytes() for p in FIXTURES] + [html("Новина", "Ще одна")]
        readings = await asyncio.gather(*(box.read(capture_of(b), Kind.HTML, noise=frozenset({"x"}))
                                          for b in bodies))
        assert readings == [read(capture_of(b), Kind.HTML, noise=frozenset({"x"})) for b in bodies]
        assert readings and box.refused == 0
    finally:
        box.close()


@pytest.mark.parametrize(("body", "limits", "reason"), [
    (ATTRIBUTES, Limits(cpu_s=1), "s of CPU"),
    (NESTED, Limits(cpu_s=1), "s of CPU"),
    (LINKS, Limits(cpu_s=60, memory_bytes=160 << 20), "MB"),
    (LINKS, Limits(cpu_s=60, wall_s=0.5), "took more than 0.5 s"),
], ids=["200k-attributes", "100k-nested", "200k-links-memory", "wall-clock"])
async def test_a_capture_over_a_limit_is_refused_and_its_worker_replaced(body: str, limits: Limits,
                                                                        reason: str) -> None:
    box = Sandbox(1, limits)
    try:
        with pytest.raises(ReadRefused, match=reason):
            await box.read(capture_of(body.encode()), Kind.HTML)
        after = await box.read(capture_of(html("Новина")), Kind.HTML)  # the next capture finds a fresh worker
        assert after.quality is Quality.OK and box.refused == 1
    finally:
        box.close()


async def test_healthy_pages_beside_the_worst_hostile_ones_are_checked_normally(tmp_path: Path) -> None:
    """Ten healthy pages and three hostile ones (each took minutes or gigabytes inside the parser, on the
    event loop: nine of ten healthy pages of the round timed out) in one round: the healthy ones are all `ok`
    within their 10-second deadline, the hostile ones bad captures with the reason."""
    with Site() as site:
        for i in range(10):
            site.routes[f"/ok/{i}"] = page(html(f"Новина {i}", "Засідання виконкому"))
        for name, body in (("attributes", ATTRIBUTES), ("nested", NESTED), ("links", LINKS)):
            site.routes[f"/hostile/{name}"] = page(body)
        urls = [site.url(f"/hostile/{n}") for n in ("attributes", "nested", "links")]
        urls += [site.url(f"/ok/{i}") for i in range(10)]
        cat = catalogue(catalogue_toml(urls, db=f"sqlite:///{tmp_path / 'm.db'}",
                                       extra_settings='concurrency = 16\nper_host_concurrency = 16'))
        store = open_store(cat.settings.database_url)
        box = Sandbox(2, Limits(cpu_s=2))
        try:
            async with Fetcher(cat.settings) as fetcher:
                runner = Runner(cat, store, fetcher, reader=box.read)
                targets = runner.prepare()
                writer = asyncio.create_task(runner.recorder.run())
                started = time.perf_counter()
                records = await runner.round(targets)
                took = time.perf_counter() - started
                assert await runner.recorder.drain(30)
                writer.cancel()
        finally:
            box.close()
            store.close()
    by_url = {t.page.url: r for t, r in zip(targets, records, strict=True)}
    healthy = [r for url, r in by_url.items() if "/ok/" in url]
    assert [r.outcome for r in healthy] == [Outcome.OK] * 10
    for name in ("attributes", "nested", "links"):
        r = by_url[site.url(f"/hostile/{name}")]
        assert r.outcome is Outcome.BAD_CAPTURE and r.quality is Quality.TOO_COSTLY, (name, r.fetch.error)
        assert "of CPU" in r.fetch.error or "MB" in r.fetch.error
    print(f"round of 13 pages, 3 hostile: {took:.1f} s")
