"""The maintenance jobs: link checks against a real local site (same-site only, polite, capped, rotating),
retention, and the aggregates a scrape reads (self-report verdicts, dataset grades) kept in the store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.domain import Content, Link
from monitor.fetch import Fetcher
from monitor.maintenance import Maintenance, same_site_links
from monitor.runner import Runner
from monitor.store import Store
from tests.conftest import catalogue_toml
from tests.helpers import catalogue, html
from tests.siteserver import Request, Site, page, respond


def test_same_site_links_are_distinct_capped_and_rotate() -> None:
    links = tuple(Link(url=u) for u in (
        "https://www.city.example/uk/a#top", "https://city.example/uk/a", "https://city.example/uk/b",
        "https://other.example/x", "mailto:x@city.example", "https://city.example/uk/c"))
    content = Content(blocks=(), links=links, documents=(Link(url="https://city.example/docs/d.pdf"),))
    everything = same_site_links("https://city.example/uk", content, 10)
    assert everything == ["https://city.example/docs/d.pdf", "https://city.example/uk/a",
                          "https://city.example/uk/b", "https://city.example/uk/c",
                          "https://www.city.example/uk/a"]
    day1 = same_site_links("https://city.example/uk", content, 2, offset=0)
    day2 = same_site_links("https://city.example/uk", content, 2, offset=2)
    assert len(day1) == 2 and set(day1).isdisjoint(day2)


async def _check_then_check_links(site: Site, db: Path, *, link_check_max: int, runs: int) -> tuple[Store, list[int]]:
    """Check the site's /uk page once, then run the link checks `runs` times; returns how many each checked."""
    url = f"sqlite:///{db}"
    cat = catalogue(catalogue_toml([site.url("/uk")], db=url, extra_settings=f"link_check_max = {link_check_max}"))
    store = Store.open(url, auto_upgrade=True)
    async with Fetcher(cat.settings) as fetcher:
        runner = Runner(cat, store, fetcher)
        writer = asyncio.create_task(runner.recorder.run())
        (record,) = await runner.round(runner.prepare())
        assert record.outcome.value == "ok"
        await runner.recorder.drain(10)
        maintenance = Maintenance(runner)
        counts = [await maintenance.check_links() for _ in range(runs)]
        writer.cancel()
    return store, counts


async def test_link_checks_against_a_real_site_are_polite_and_capped(tmp_path: Path) -> None:
    with Site() as site:
        items = "".join(f"<li><a href='/uk/news/{i}'>Новина {i}</a></li>" for i in range(1, 8))
        body = html(extra=f"<ul>{items}</ul><a href='/docs/budget.pdf'>Бюджет</a>"
                          "<a href='https://example.org/elsewhere'>Деінде</a><a href='/uk/head-refused'>HEAD</a>")
        site.routes["/uk"] = page(body)
        for i in range(1, 8):
            site.routes[f"/uk/news/{i}"] = page("<p>ok</p>")
        site.routes["/docs/budget.pdf"] = page(b"", status=404)

        async def head_refused(req: Request, w: asyncio.StreamWriter) -> None:
            await respond(w, 405 if req.method == "HEAD" else 200, b"" if req.method == "HEAD" else b"<p>ok</p>")

        site.routes["/uk/head-refused"] = head_refused
        store, (checked, again) = await _check_then_check_links(site, tmp_path / "m.db", link_check_max=20, runs=2)
        rows = store.faults.link_checks(datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(hours=1))
        store.close()
        by_url = {r.url.rsplit(str(site.port), 1)[1]: (r.outcome, r.status) for r in rows}
        assert checked == len(rows) and again == 0  # the second run the same day: not due
        assert by_url["/docs/budget.pdf"] == ("http_status", 404)
        assert by_url["/uk/head-refused"] == ("ok", 200)  # HEAD refused: asked again with GET
        assert not any("example.org" in r.url for r in rows)  # other sites are not ours to check
        assert site.hits("/uk/news/1")[0].method == "HEAD"
        gets = [r for path in by_url for r in site.hits(path) if r.method == "GET"]
        assert {r.path for r in gets} == {"/uk/head-refused", "/docs/budget.pdf"}  # GET only after a refusal

    with Site() as small:  # the cap: at most link_check_max links of a page per run
        small.routes["/uk"] = page(html(extra="".join(f"<a href='/uk/n/{i}'>Н {i}</a>" for i in range(50))))
        store, (checked,) = await _check_then_check_links(small, tmp_path / "cap.db", link_check_max=5, runs=1)
        store.close()
        assert checked == 5
        assert len({r.path for r in small.requests if r.path.startswith("/uk/n/")}) == 5
