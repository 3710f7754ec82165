"""The web interface on a store holding a simulated quarter, served by uvicorn on 127.0.0.1 and driven by
Playwright in Debian's Chromium: the public page and its feeds, sign-in and roles, a service's evidence, the
audit from a period to the change that decides it, "check now" and notes (CSRF-protected, rate-limited,
logged), hostile page content inert, no serious accessibility violation (axe-core), keyboard use; screenshots
at 1400 and 390 px in test-output/."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.clock import VirtualClock
from monitor.config import load_catalogue
from monitor.domain import Catalogue
from monitor.fetch import Fetcher
from monitor.runner import Runner
from monitor.status import service_statuses
from monitor.store import Store
from monitor.web import Web, create_app, hash_password
from monitor.web.app import grade_word
from monitor.web.auth import RateLimit, Session, Sessions, check_password, csrf_ok
from tests.conftest import which
from tests.helpers import free_port
from tests.quarter import END, simulate
from tests.siteserver import Site, page

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = Path(os.environ.get("MONITOR_TEST_OUTPUT", ROOT / "test-output"))
PASSWORD = "correct horse battery"
HOSTILE = ("<!doctype html><html lang='uk'><head><meta charset='utf-8'><title>Інвест-портал</title></head><body>"
           "<main><h1>Інвест-портал</h1><p>Інвестиційний паспорт міста оновлено: нові земельні ділянки для "
           "інвесторів у промисловій зоні.</p><p>Оголошення <script>document.body.setAttribute('data-pwned','s')"
           "</script><a href=\"javascript:document.body.setAttribute('data-pwned','link')\">натисніть тут, щоб "
           "побачити перелік</a> <img src=x onerror=\"document.body.setAttribute('data-pwned','img')\"> для "
           "ознайомлення з умовами конкурсу</p></main></body></html>")
ACCOUNTS = {"petro": "viewer", "olena": "operator", "iryna": "auditor"}



class Served:
    """uvicorn in a thread of its own, on a free loopback port."""

    def __init__(self, web: Web) -> None:
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(create_app(web), host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="off", proxy_headers=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@dataclass
class World:
    site: Site
    served: Served
    store: Store
    catalogue: Catalogue
    clock: VirtualClock
    web: Web


def _checker(catalogue: Catalogue, store: Store, clock: VirtualClock) -> Any:
    async def check(page_id: int) -> str:
        async with Fetcher(catalogue.settings, clock=clock) as fetcher:
            runner = Runner(catalogue, store, fetcher, clock=clock, worker="web")
            runner.prepare()
            writer = asyncio.create_task(runner.recorder.run())
            record = await runner.check(runner.targets[page_id])
            await runner.recorder.drain(30)
            writer.cancel()
            return record.outcome.value

    return check


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("web")
    with Site() as site:
        targets = asyncio.run(simulate(site, folder))
        catalogue = load_catalogue(str(targets))
        catalogue = replace(catalogue, settings=replace(catalogue.settings, read_workers=0))
        store = Store.open(catalogue.settings.database_url)
        for name, role in ACCOUNTS.items():
            store.web.put_user(name, role=role, password_hash=hash_password(PASSWORD), now=END)
        clock = VirtualClock(END + timedelta(hours=1))
        web = Web(catalogue, store, clock=clock, secret="a test secret", checker=_checker(catalogue, store, clock))
        with Served(web) as served:
            yield World(site, served, store, catalogue, clock, web)
        store.close()


@pytest.fixture(scope="module")
def browser(world: World) -> Iterator[Any]:
    chromium = which("chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield b
        b.close()


def get(url: str, **headers: str) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, headers=headers)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=30) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, dict(e.headers), e.read().decode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


def post_login(served: Served, user: str, password: str, next_: str = "/", *, token: bool = True) -> int:
    """Sign in as a browser does: the form (and its token cookie) first, then the post."""
    import http.cookiejar
    import re

    opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(served.url("/login"), timeout=60) as r:
        found = re.search(r'name="csrf" value="([^"]+)"', r.read().decode())
    fields = {"user": user, "password": password, "next": next_}
    if token and found:
        fields["csrf"] = found.group(1)
    request = urllib.request.Request(served.url("/login"), data=urllib.parse.urlencode(fields).encode(), method="POST")
    try:
        with opener.open(request, timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as e:
        with e:
            return e.code


def sign_in(browser: Any, world: World, user: str, width: int = 1400) -> Any:
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(world.served.url("/login"))
    page.fill("#user", user)
    page.fill("#password", PASSWORD)
    page.click("form.login button")
    page.wait_for_load_state()
    return page


def axe_serious(page: Any) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [f"{v['id']}: {v['help']}" for v in results.response["violations"]
            if v.get("impact") in ("serious", "critical")]


# --- the pieces of access control --------------------------------------------------------------


def test_passwords_sessions_tokens_and_limits() -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith("scrypt$") and PASSWORD not in stored
    assert check_password(PASSWORD, stored) and not check_password("wrong horse battery", stored)
    assert not check_password(PASSWORD, "md5$abc") and not check_password(PASSWORD, "garbage")
    sessions = Sessions("one secret")
    accounts = {"olena": ("operator", stored, False)}
    cookie = sessions.issue("olena", stored)
    session = sessions.read(cookie, accounts.get)
    assert session is not None and session.user == "olena" and session.may("check") and not session.may("audit")
    assert Sessions("another secret").read(cookie, accounts.get) is None  # signed with our secret only
    assert sessions.read(cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB"), accounts.get) is None
    assert sessions.read(None, accounts.get) is None and sessions.read("", accounts.get) is None
    accounts["olena"] = ("viewer", stored, False)  # demoted: at once, not in 12 hours
    demoted = sessions.read(cookie, accounts.get)
    assert demoted is not None and not demoted.may("check")
    accounts["olena"] = ("operator", stored, True)  # disabled: every session ends
    assert sessions.read(cookie, accounts.get) is None
    accounts["olena"] = ("operator", hash_password("a new password 2"), False)  # new password: likewise
    assert sessions.read(cookie, accounts.get) is None
    assert sessions.read(cookie, {}.get) is None  # the account is gone
    assert csrf_ok(session, session.csrf) and not csrf_ok(session, "x") and not csrf_ok(None, session.csrf)
    assert not csrf_ok(session, None)
    assert Session("a", "viewer", "t").may("read") and not Session("a", "viewer", "t").may("check")
    now = [0.0]
    limit = RateLimit(2, 60, clock=lambda: now[0])
    assert limit.allow("k") and limit.allow("k") and not limit.allow("k") and limit.allow("other")
    now[0] = 61
    assert limit.allow("k")
    limit.refund("k")
    assert limit.allow("k") and limit.allow("k") and not limit.allow("k")


# --- the public page -----------------------------------------------------------------------------


def test_the_public_page_shows_every_service_and_nothing_internal(world: World) -> None:
    code, headers, html = get(world.served.url("/"))
    assert code == 200 and "script-src" not in headers["content-security-policy"]
    assert "default-src 'none'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"
    assert "<script" not in html.lower()
    statuses = service_statuses(world.catalogue, world.store.metrics.service_aggregates(), world.clock.now())
    for s in statuses:
        row = html.split(f'id="s-{s.id}"')[1].split("</tr>")[0]
        assert s.name in row and f"g-{grade_word(s)}" in row, (s.id, row)
    assert {grade_word(s) for s in statuses} >= {"fresh", "overdue"}
    assert "127.0.0.1" not in html and "mailto" not in html and "/services/" not in html  # nothing internal
    code, _, en = get(world.served.url("/?lang=en"))
    assert code == 200 and '<html lang="en">' in en and "Update regulation" in en
    doc = json.loads(get(world.served.url("/status.json"))[2])
    assert {s["id"] for s in doc["services"]} == {s.id for s in statuses}
    assert all(s["periods"] for s in doc["services"])
    assert all(not {"contact", "responsible", "url", "pages"} & set(s) for s in doc["services"])
    feed = ET.fromstring(get(world.served.url("/updates.atom"))[2])
    entries = feed.findall("{http://www.w3.org/2005/Atom}entry")
    real = [c for c in world.store.history.changes(since=world.clock.now() - timedelta(days=90), limit=500)
            if c.is_real]
    assert len(entries) == min(len(real), 200) > 0


def test_the_public_page_in_a_browser_at_a_desk_and_on_a_phone(world: World, browser: Any) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for width in (1400, 390):
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(world.served.url("/"))
        assert page.locator("table.services tbody tr").count() == len(world.catalogue.services)
        assert page.evaluate("document.documentElement.scrollWidth") <= width  # wide tables scroll inside
        page.screenshot(path=str(OUTPUT / f"web-status-{width}.png"), full_page=True)
        assert axe_serious(page) == []
        page.keyboard.press("Tab")  # the first stop is the skip link, and it leads to the content
        assert page.evaluate("document.activeElement.className") == "skip"
        page.keyboard.press("Enter")
        assert page.evaluate("location.hash") == "#main"
        page.close()


def test_every_alert_links_to_its_runbook_here(world: World, browser: Any) -> None:
    from monitor.alerting import RULES, Links

    code, _, html = get(world.served.url("/runbooks"))
    assert code == 200
    links = Links(world.served.url("/").rstrip("/"))
    for rule in RULES:
        anchor = rule.render(links)["annotations"]["runbook_url"].split("#", 1)[1]
        section = html.split(f'<section id="{anchor}">')[1].split("</section>")[0]
        assert rule.alert in section and "<code>" in section, rule.alert  # the steps, commands as code
    page = browser.new_page(viewport={"width": 390, "height": 900})
    page.goto(world.served.url("/runbooks#freshness-page-down"))
    assert page.locator("#freshness-page-down h2").inner_text() == "FreshnessPageDown"
    assert axe_serious(page) == []
    page.close()


# --- signed in -----------------------------------------------------------------------------------


def test_staff_pages_need_a_sign_in_and_the_right_role(world: World, browser: Any) -> None:
    code, headers, _ = get(world.served.url("/services/open-data"))
    assert code == 303 and headers["location"].startswith("/login?next=%2Fservices%2Fopen-data")
    page = browser.new_page()
    page.goto(world.served.url("/login"))
    assert axe_serious(page) == []
    page.focus("#user")  # by keyboard alone: type, Tab, type, Enter
    page.keyboard.type("petro")
    page.keyboard.press("Tab")
    page.keyboard.type("not the password")
    page.keyboard.press("Enter")
    assert "Невірне ім'я або пароль" in page.wait_for_selector("p.error").inner_text()
    page.close()
    page = sign_in(browser, world, "petro")
    page.goto(world.served.url("/services/open-data"))
    assert "Опен дата" in page.inner_text("h1") and page.locator("article.change").count() > 5
    missed = page.locator("tr#p-2021-W06")  # the week the department skipped: from it to the evidence
    assert "пропущено" in missed.inner_text() and "остання зміна до" in missed.inner_text()
    link = missed.locator("a").first
    target = link.get_attribute("href")
    link.click()
    assert page.evaluate("location.hash") == target
    change = page.locator(f"article[id='{target[1:]}']")
    change.locator("summary").click()
    assert change.locator("pre").is_visible() and "зміст" in change.inner_text()
    assert page.locator("text=Перевірити зараз").count() == 0  # a viewer cannot
    assert axe_serious(page) == []
    page.goto(world.served.url("/audit"))
    assert "Недостатньо прав" in page.inner_text("main")
    for path in ("/faults", "/departments", "/departments/records-appeals"):
        page.goto(world.served.url(path))
        assert page.title() and "Недостатньо прав" not in page.content(), path
        assert axe_serious(page) == [], path
    page.click("text=Вийти")
    page.goto(world.served.url("/services/open-data"))
    assert "/login" in page.url
    page.close()


def test_an_auditor_goes_from_a_period_to_the_change_that_decides_it(world: World, browser: Any) -> None:
    page = sign_in(browser, world, "iryna")
    page.goto(world.served.url("/audit?from=2021-01-01&to=2021-04-01&service=open-data"))
    missed = page.locator("tr#p-open-data-2021-W06")
    assert "пропущено" in missed.inner_text()
    link = page.locator("tr#p-open-data-2021-W05 a[href^='#c-']").first
    target = link.get_attribute("href")
    link.click()
    assert page.evaluate("location.hash") == target
    change = page.locator(f"[id='{target[1:]}']")
    assert change.is_visible() and "+" in change.inner_text()
    assert axe_serious(page) == []
    for fmt, kind in (("json", "application/json"), ("csv", "text/csv"), ("xlsx", "spreadsheetml")):
        response = page.request.get(world.served.url(f"/audit?from=2021-01-01&to=2021-04-01&format={fmt}"))
        assert response.status == 200 and kind in response.headers["content-type"]
        assert "attachment" in response.headers["content-disposition"]
    page.close()


def test_an_operator_checks_now_and_notes_a_change_and_hostile_content_stays_inert(world: World,
                                                                                   browser: Any) -> None:
    world.site.routes["/invest-portal"] = page(HOSTILE)
    before = len(world.site.hits("/invest-portal"))
    ui = sign_in(browser, world, "olena")
    ui.goto(world.served.url("/services/invest-portal"))
    ui.click("text=Перевірити зараз")
    ui.wait_for_load_state()
    assert "Перевірено" in ui.inner_text("main") and len(world.site.hits("/invest-portal")) == before + 1
    newest = ui.locator("article.change").first
    newest.locator("summary").click()  # the evidence, folded until asked for
    assert "натисніть тут" in newest.locator("pre").inner_text()
    assert ui.get_attribute("body", "data-pwned") is None  # nothing from the page ran
    assert ui.locator("article.change a[href^='javascript']").count() == 0
    ui.select_option(f"#{newest.locator('select').get_attribute('id')}", "our_update")
    newest.locator("input[name=text]").fill("Оновили паспорт <b>сьогодні</b>")
    newest.locator("form.note-form button").click()
    ui.wait_for_load_state()
    assert "наше оновлення: Оновили паспорт <b>сьогодні</b> — olena" in ui.inner_text("main")
    assert ui.get_attribute("body", "data-pwned") is None
    ui.click("text=Перевірити зараз")  # again, within the minute
    assert "Забагато перевірок" in ui.inner_text("main")
    actions = world.store.web.actions()
    assert [(a.who, a.action) for a in actions[:2]] == [("olena", "note"), ("olena", "check")]
    assert world.store.maintenance.verify().intact  # the actions are chained
    cookie = next(c["value"] for c in ui.context.cookies() if c["name"] == "monitor_session")
    forged = ui.request.post(world.served.url("/pages/1/check"), form={"csrf": "guessed"},
                             headers={"Cookie": f"monitor_session={cookie}"})
    assert forged.status == 403
    ui.close()
    viewer = sign_in(browser, world, "petro")
    csrf = viewer.locator("form.inline input[name=csrf]").first.get_attribute("value")
    refused = viewer.request.post(world.served.url("/pages/1/check"), form={"csrf": csrf})
    assert refused.status == 403
    viewer.close()


def test_sign_in_is_rate_limited_and_next_never_leaves_the_site(world: World) -> None:
    with Served(Web(world.catalogue, world.store, clock=world.clock, secret="s")) as served:
        _rate_limited(served)


def _rate_limited(served: Served) -> None:
    assert post_login(served, "petro", PASSWORD, token=False) == 403  # a sign-in forged by another site
    codes = [post_login(served, "nobody", "x", "//evil.example/") for _ in range(6)]
    assert codes[:5] == [401] * 5 and codes[5] == 429  # five attempts a minute, then refused
    assert post_login(served, "petro", PASSWORD) == 429  # even the right password, from this address
    _, _, html = get(served.url("/login?next=//evil.example/"))
    assert 'name="next" value="/"' in html


def test_many_wrong_passwords_at_once_do_not_all_get_a_try(world: World) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with Served(Web(world.catalogue, world.store, clock=world.clock, secret="s")) as served:
        def attempt(_: int) -> int:
            return post_login(served, "olena", "guess")

        with ThreadPoolExecutor(20) as pool:
            codes = list(pool.map(attempt, range(20)))
    assert codes.count(401) <= 5 and codes.count(429) >= 15  # counted before the slow password check


def test_odd_queries_get_an_answer_not_an_error(world: World, browser: Any) -> None:
    ui = sign_in(browser, world, "iryna")
    for query in ("from=0001-01-01&to=9999-12-31", "from=0100-01-01", "from=2021-03-01&to=2021-01-01"):
        response = ui.request.get(world.served.url(f"/audit?{query}&format=json"))
        assert response.status == 200, query
        meta = json.loads(response.text())
        assert meta["from"] >= "1996-01-01" and meta["to"] <= "2027-12-31", query
    response = ui.request.get(world.served.url("/audit?format=csv&view=" + urllib.parse.quote('x"\r\nSet-Cookie: a=b')))
    assert response.status == 200 and 'filename="audit-' in response.headers["content-disposition"]
    assert response.headers["content-disposition"].endswith('-periods.csv"')  # the view's name, never the query's
    assert all("a=b" not in v for v in response.headers.values())
    for path in ("/services/no-such", "/departments/no-such", "/faults?from=nonsense"):
        assert ui.request.get(world.served.url(path)).status in (200, 404), path
    ui.close()


def test_a_trusted_proxy_signs_people_in_by_header(world: World) -> None:
    settings = replace(world.catalogue.settings, web_user_header="X-Remote-User",
                       web_trusted_proxies=("127.0.0.1",))
    web = Web(replace(world.catalogue, settings=settings), world.store, clock=world.clock, secret="s")
    with Served(web) as served:
        code, _, html = get(served.url("/services/open-data"), **{"X-Remote-User": "petro"})
        assert code == 200 and "petro (viewer)" in html
        code, _, _ = get(served.url("/services/open-data"), **{"X-Remote-User": "stranger"})
        assert code == 303
    untrusted = replace(settings, web_trusted_proxies=("10.0.0.1",), metrics_clients=("10.0.0.1",))
    web = Web(replace(world.catalogue, settings=untrusted), world.store, clock=world.clock, secret="s",
              metrics=lambda: (b"freshness_site_info{responsible=\"x\"} 1\n", "text/plain"))
    with Served(web) as served:
        code, _, _ = get(served.url("/services/open-data"), **{"X-Remote-User": "petro"})
        assert code == 303  # the header of a client that is no trusted proxy is not believed
        code, _, _ = get(served.url("/services/open-data"),
                         **{"X-Remote-User": "petro", "X-Forwarded-For": "10.0.0.1"})
        assert code == 303  # nor does a forwarded-for header make it one
        code, _, body = get(served.url("/metrics"))
        assert code == 403 and "responsible" not in body  # names and addresses: for Prometheus only


def test_the_browser_pages_of_a_signed_in_user_on_a_phone(world: World, browser: Any) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for width in (1400, 390):
        ui = sign_in(browser, world, "olena", width=width)
        ui.goto(world.served.url("/services/open-data"))
        assert ui.evaluate("document.documentElement.scrollWidth") <= width
        ui.screenshot(path=str(OUTPUT / f"web-service-{width}.png"), full_page=False)
        ui.close()
    assert (OUTPUT / "web-service-390.png").stat().st_size > 10_000


def test_serve_and_accounts_from_the_command_line(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from tests.conftest import catalogue_toml
    from tests.helpers import html

    with Site() as site:
        site.routes["/uk"] = page(html("Новина"))
        targets = tmp_path / "targets.toml"
        targets.write_text(catalogue_toml([site.url("/uk")], db=f"sqlite:///{tmp_path / 'm.db'}"), encoding="utf-8")
        monitor = [sys.executable, "-m", "monitor", "-t", str(targets)]

        def users(*args: str, password: str = "") -> subprocess.CompletedProcess[str]:
            return subprocess.run([*monitor, "users", *args], input=password, capture_output=True, text=True,
                                  timeout=60)

        assert users("add", "anna", "--role", "operator", "--password-stdin", password="short\n").returncode == 2
        added = users("add", "anna", "--role", "operator", "--password-stdin", password=PASSWORD + "\n")
        assert added.returncode == 0 and "added anna (operator)" in added.stdout
        assert "updated anna (auditor)" in users("add", "anna", "--role", "auditor", "--password-stdin",
                                                 password=PASSWORD + "\n").stdout
        assert users("list").stdout.split() == ["anna", "auditor"]
        assert users("disable", "anna").returncode == 0 and "disabled" in users("list").stdout
        assert users("disable", "nobody").returncode == 2
        port = free_port()
        proc = subprocess.Popen([*monitor, "serve", "--listen", f"127.0.0.1:{port}"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**os.environ, "MONITOR_WEB_SECRET": "s"})
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    code, _, health = get(f"http://127.0.0.1:{port}/healthz")
                    break
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline, "monitor serve did not start"
                    time.sleep(0.2)
            assert code == 200 and json.loads(health)["ok"] is True
            code, headers, body = get(f"http://127.0.0.1:{port}/")
            assert code == 200 and "default-src 'none'" in headers["content-security-policy"] and "SMART-ПОРТАЛ" in body
            code, _, metrics = get(f"http://127.0.0.1:{port}/metrics")
            assert code == 200 and "freshness_" in metrics
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err[-2000:]


def test_every_word_of_the_pages_is_there_in_both_languages() -> None:
    from monitor.web.app import WORDS

    assert set(WORDS["uk"]) == set(WORDS["en"]), set(WORDS["uk"]) ^ set(WORDS["en"])
    assert all(WORDS[lang][k].strip() for lang in WORDS for k in WORDS[lang])
