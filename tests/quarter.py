"""A quarter of 2021 for six services of the order, scripted: pages on 127.0.0.1 whose content follows a
virtual clock (real edits, a bare date bump, noise on every fetch, an outage), and the catalogue naming them
as targets.toml does. Used by the simulated-quarter test and by the web interface's browser tests."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from zoneinfo import ZoneInfo

from monitor.clock import VirtualClock
from tests.siteserver import Request, Site, respond

KYIV = ZoneInfo("Europe/Kyiv")


def kyiv(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2021, month, day, hour, tzinfo=KYIV).astimezone(UTC)


START, END = kyiv(1, 1), kyiv(4, 1)
DAYS = [datetime.combine(date(2021, 1, 1) + timedelta(days=d), dt_time(), KYIV).astimezone(UTC)
        for d in range(90)]  # the local midnights of the quarter (the clocks go forward on 28 March)


@dataclass
class Scripted:
    """A page whose content follows the virtual clock: edits appear at their time, the declared date follows
    the last edit or bump, a clock, a view counter and a CSRF token change on every fetch."""

    clock: VirtualClock
    title: str
    edits: list[datetime]
    bumps: list[datetime] = field(default_factory=list)
    down: tuple[datetime, datetime] | None = None
    kind: str = "html"
    fetches: itertools.count[int] = field(default_factory=itertools.count)

    def status_and_body(self) -> tuple[int, bytes, str]:
        now = self.clock.now()
        if self.down and self.down[0] <= now < self.down[1]:
            return 503, b"<h1>Service Unavailable</h1>", "text/html; charset=utf-8"
        done = [t for t in self.edits if t <= now]
        stamp = max([START, *done, *(b for b in self.bumps if b <= now)]).astimezone(KYIV)
        n = next(self.fetches)
        if self.kind == "json":
            sessions = [{"number": i + 1, "date": f"{t.astimezone(KYIV):%Y-%m-%d}", "votes": 20 + i}
                        for i, t in enumerate(done)]
            doc = {"sessions": sessions, "generated_at": now.isoformat(), "request": n}
            return 200, json.dumps(doc, ensure_ascii=False).encode(), "application/json"
        if self.kind == "feed":
            items = "".join(f"<item><title>Петиція №{i + 1}: про благоустрій двору {i + 1}</title>"
                            f"<link>https://petition.example/{i + 1}</link>"
                            f"<pubDate>{t:%a, %d %b %Y %H:%M:%S} +0000</pubDate></item>" for i, t in enumerate(done))
            return 200, (f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>{self.title}"
                         f"</title><link>https://petition.example/</link>{items}</channel></rss>").encode(), \
                "application/rss+xml"
        items = "".join(f"<li>Рішення №{i + 1} від {t.astimezone(KYIV):%d.%m.%Y}: про роботу служби у "
                        f"{'ранковий' if i % 2 else 'вечірній'} час, пункт {i + 1}</li>" for i, t in enumerate(done))
        body = (f"<!doctype html><html lang='uk'><head><meta charset='utf-8'><title>{self.title}</title></head>"
                f"<body><header><a href='/'>Покровська міська рада</a><div class='clock'>Зараз "
                f"{now.astimezone(KYIV):%d.%m.%Y %H:%M}</div></header>"
                f"<main><h1>{self.title}</h1><p>Оновлено: {stamp:%d.%m.%Y}</p><ul>{items}</ul>"
                f"<p class='views'>Переглядів: {1000 + n}</p>"
                f"<form><input type='hidden' name='csrf' value='{n * 7919:x}'></form></main>"
                "<footer>© 2021 Покровська міська рада</footer></body></html>")
        return 200, body.encode(), "text/html; charset=utf-8"

    def handler(self) -> Callable[[Request, asyncio.StreamWriter], Awaitable[None]]:
        async def handle(req: Request, w: asyncio.StreamWriter) -> None:
            status, body, content_type = self.status_and_body()
            await respond(w, status, body, {"Content-Type": content_type})

        return handle


def script(clock: VirtualClock) -> dict[str, Scripted]:
    mondays = [d + timedelta(hours=12) for d in DAYS if d.astimezone(KYIV).weekday() == 0]
    return {
        # daily: an edit every morning but three days in January
        "contact-center": Scripted(clock, "Контакт центр", [d + timedelta(hours=10) for d in DAYS
                                                            if not kyiv(1, 15) <= d <= kyiv(1, 17)]),
        # weekly: every Monday but the week of 8 February
        "open-data": Scripted(clock, "Опен дата", [m for m in mondays if m.astimezone(KYIV).date().isoformat()
                                                   != "2021-02-08"]),
        # monthly: two edits, then silence; in March only the date is bumped
        "property-registry": Scripted(clock, "Реєстр комунального майна", [kyiv(1, 20, 11), kyiv(2, 10, 15)],
                                      bumps=[kyiv(3, 15, 9)]),
        # quarterly: one edit
        "invest-portal": Scripted(clock, "Інвест-портал", [kyiv(2, 1, 9)]),
        # as needed, a feed: two petitions, and three days down
        "e-petitions": Scripted(clock, "Електронні петиції", [kyiv(1, 5, 14), kyiv(3, 3, 16)],
                                down=(kyiv(2, 10), kyiv(2, 13)), kind="feed"),
        # monthly, a JSON API whose own timestamp and request counter are ignored
        "roll-call-voting": Scripted(clock, "Поіменне голосування", [kyiv(1, 12, 17), kyiv(2, 11, 17),
                                                                      kyiv(3, 11, 17)], kind="json"),
    }


REGULATIONS = {"contact-center": "daily", "open-data": "weekly", "property-registry": "monthly",
               "invest-portal": "quarterly", "e-petitions": "as_needed", "roll-call-voting": "monthly"}
# the names and departments the order gives them (as in targets.toml), which the form's answers are matched to
NAMES = {"contact-center": "Контакт центр", "open-data": "Опен дата",
         "property-registry": "Реєстр комунального майна та землі", "invest-portal": "Інвест-портал",
         "e-petitions": "Електронні петиції", "roll-call-voting": "Поіменне голосування"}
DEPARTMENTS = {"contact-center-dept": "Відділ “Контактний центр”",
               "records-appeals": "Відділ з питань діловодства, контролю та роботи зі зверненнями громадян",
               "finance-assets": "Департамент фінансово-економічної політики та управління активами",
               "economic-analysis": "Відділ економічного аналізу та прогнозу",
               "deputies-support": "Відділ забезпечення депутатської діяльності",
               "it-sector": "Сектор інформаційних технологій та автоматизованих систем"}
OWNERS = {"contact-center": "contact-center-dept", "open-data": "records-appeals",
          "property-registry": "finance-assets", "invest-portal": "economic-analysis",
          "e-petitions": "records-appeals", "roll-call-voting": "deputies-support"}
FORMS = Path(__file__).parent / "fixtures" / "forms"


def catalogue_text(site: Site, db: str) -> str:
    out = [f'[settings]\ndatabase_url = "{db}"\nuser_agent = "quarter (+mailto:it@example.org)"\n'
           'timeout = "10s"\nretries = 0\nlink_check_max = 5\n\n[reports]\nsince = "2021-01-01"\n\n']
    out += [f'[departments.{did}]\nname = "{name}"\n\n' for did, name in DEPARTMENTS.items()]
    for sid, regulation in REGULATIONS.items():
        out.append(f'[[services]]\nid = "{sid}"\nname = "{NAMES[sid]}"\ndepartment = "{DEPARTMENTS[OWNERS[sid]]}"\n'
                   f'regulation = "{regulation}"\n'
                   f'  [[services.pages]]\n  url = "{site.url("/" + sid)}"\n  allow_private = true\n')
        if sid == "e-petitions":
            out.append('  kind = "feed"\n')
        if sid == "roll-call-voting":
            out.append('  kind = "json"\n  ignore = ["generated_at", "request"]\n')
    return "".join(out)


async def simulate(site: Site, folder: Path) -> Path:
    """The quarter, checked on the schedule's grid in virtual time, into folder/quarter.db (the site must stay
    open for as long as the pages are to answer); returns the targets.toml that names them."""
    from monitor.fetch import Fetcher
    from monitor.runner import Runner
    from monitor.schedule import replay
    from tests.helpers import catalogue, open_store

    clock = VirtualClock(START)
    for sid, scripted in script(clock).items():
        site.routes[f"/{sid}"] = scripted.handler()
    text = catalogue_text(site, f"sqlite:///{folder / 'quarter.db'}")
    cat = catalogue(text)
    store = open_store(cat.settings.database_url)
    async with Fetcher(cat.settings, clock=clock) as fetcher:
        runner = Runner(cat, store, fetcher, clock=clock, worker="quarter")
        targets = runner.prepare()
        writer = asyncio.create_task(runner.recorder.run())
        await replay(lambda t, at: runner.check(t, scheduled_at=at), targets, runner.states, clock, END, [])
        assert await runner.recorder.drain(60)
        writer.cancel()
    store.close()
    (folder / "targets.toml").write_text(text, encoding="utf-8")
    return folder / "targets.toml"
