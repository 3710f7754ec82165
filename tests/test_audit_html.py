"""The HTML audit report: one self-contained file, opened in headless Chromium; page content that carries
<script> (or an event handler) is shown as text and nothing runs. Driven by Playwright at a desk's width
and a phone's: every in-page link lands on its target, nothing but wide tables scrolls sideways, the
timeline's verdicts are written out (no hovering), and it prints. Screenshots and the PDF go to
test-output/ (or $MONITOR_TEST_OUTPUT)."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import main
from tests.conftest import which
from tests.test_audit import _history

HOSTILE = ("&lt;script&gt;document.body.setAttribute('data-pwned','script')&lt;/script&gt; "
           "&lt;img src=x onerror=\"document.body.setAttribute('data-pwned','img')\"&gt;")

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = Path(os.environ.get("MONITOR_TEST_OUTPUT", ROOT / "test-output"))
REPORTS = ("Timestamp,Назва веб-сервісу,Дата оновлення,Що оновлено,Посилання\n"
           "10/10/2026 12:00:00,SMART-портал,10/10/2026,Ремонт доріг,https://city.example/uk/news/1\n"
           "10/20/2026 12:00:00,smart-портал,10/20/2026,Новини,\n"
           "10/27/2026 12:00:00,smart-портал,10/27/2026,Оновили все,\n"
           "10/21/2026 12:00:00,КЦ,10/21/2026,Новини,\n")

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("html")
    targets = _history(tmp, hostile=HOSTILE)
    (tmp / "reports.csv").write_text(REPORTS, encoding="utf-8")
    imported = CliRunner().invoke(main, ["-t", str(targets), "reports", "import", str(tmp / "reports.csv"),
                                         "--skip-bad", "--date-order", "mdy"])
    assert imported.exit_code == 0, imported.output
    out = tmp / "audit.html"
    result = CliRunner().invoke(main, ["-t", str(targets), "audit", "--from", "2026-10-05", "--to", "2026-11-16",
                                       "--format", "html", "-o", str(out)])
    assert result.exit_code in (0, 1), result.output
    return out


def test_the_report_is_self_contained_and_escaped(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    assert "<script" not in html.lower().replace("&lt;script", "")  # not one script element
    assert "onerror=" not in html.replace("onerror=&#34;", "").replace("onerror=&quot;", "")
    assert "&lt;script&gt;" in html  # the page's text is shown, escaped
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert "src=\"http" not in html and "<link" not in html  # nothing is loaded from outside
    # the report's link, to follow
    assert 'href="https://city.example/uk/news/1" rel="noreferrer noopener nofollow"' in html
    assert "Аудит оновлень веб-сервісів" in html and "<svg" in html


def test_the_ukrainian_report_says_everything_in_ukrainian(report: Path) -> None:
    """Codes, rejection reasons, the diff's own words: in the report's language (the page's content and the
    form's answers stay as written)."""
    html = report.read_text(encoding="utf-8")
    assert "невідомий сервіс «КЦ»" in html and "unknown service" not in html
    assert "--- було" in html and "+++ стало" in html and "--- before" not in html
    assert "не розпізнано (сервіс невідомий)" in html  # the department of the row whose service is unknown
    body = re.sub(r"<style.*?</style>|<[^>]+>|https?://\S+|[0-9a-f]{64}", " ", html, flags=re.S)
    english = set(re.findall(r"\b(?:content|reported|unreported|compliant|missed|confirmed|yes|no|rejected|"
                             r"weekly|real|before|after)\b", body))
    assert not english, f"English words in the Ukrainian report: {english}"


def test_chromium_renders_it_and_nothing_runs(report: Path) -> None:
    chromium = which("chromium")
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=3000",
                              "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body_tag = re.search(r"<body[^>]*>", dom.stdout)
    assert body_tag is not None and "data-pwned" not in body_tag.group(0), "a script from page content ran"
    assert "setAttribute(" in dom.stdout  # the hostile text is there, as text
    assert "Аудит оновлень веб-сервісів" in dom.stdout
    shot = report.with_suffix(".png")
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,2400",
                               f"--screenshot={shot}", report.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.exists() and shot.stat().st_size > 20_000, done.stderr[-2000:]


def test_in_a_browser_at_a_desk_and_on_a_phone(report: Path) -> None:
    chromium = which("chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[test])")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[f for f in CHROMIUM_FLAGS if f != "--headless"])
        try:
            for width in (1400, 420):
                page = browser.new_page(viewport={"width": width, "height": 900})
                requests: list[str] = []
                page.on("request", lambda r, seen=requests: seen.append(r.url))
                page.goto(report.as_uri())
                assert page.get_attribute("body", "data-pwned") is None, "a script from page content ran"
                dangling = page.evaluate("""() => [...document.querySelectorAll('a[href^="#"]')]
                    .map(a => a.getAttribute('href').slice(1))
                    .filter(id => !document.getElementById(decodeURIComponent(id)))""")
                assert dangling == [], f"links to nothing: {dangling[:5]}"
                links = page.evaluate("""() => ({
                    periods: document.querySelectorAll('.chips a[href^="#p-"]').length,
                    toChanges: document.querySelectorAll(
                        'tr[id^="p-"] a[href^="#c-"], tr[id^="r-"] a[href^="#c-"]').length,
                    toc: document.querySelectorAll('nav.toc a[href^="#"]').length})""")
                assert links["periods"] >= 6 and links["toChanges"] >= 2 and links["toc"] >= 3, links
                # the timeline's chips say their verdict in words, not only by colour or on hover
                chips = page.locator(".chips li").all_inner_texts()
                assert chips and all(re.search(r"\w", c) for c in chips)
                assert "не підтверджено" in page.inner_text("body") or "підтверджено" in page.inner_text("body")
                overflow = page.evaluate("""() => {
                    const w = document.documentElement.clientWidth;
                    return [...document.body.querySelectorAll('*')]
                      .filter(e => !e.closest('.scroll, pre') && e.getBoundingClientRect().right > w + 1)
                      .map(e => e.tagName + '.' + e.className).slice(0, 5)}""")
                assert overflow == [], f"sticks out of a {width}px screen: {overflow}"
                assert page.evaluate("document.documentElement.scrollWidth") <= width
                page.screenshot(path=str(OUTPUT / f"audit-{width}.png"), full_page=True)
                # a report's link to the change that decides it lands on that change
                target = page.locator('tr[id^="r-"] a[href^="#c-"]').first
                href = target.get_attribute("href")
                target.click()
                assert page.evaluate("location.hash") == href
                assert page.locator(f"[id='{href[1:]}']").is_visible()
                assert all(u.startswith("file:") for u in requests), requests  # nothing fetched from outside
                if width == 1400:
                    page.emulate_media(media="print")
                    pdf = page.pdf(path=str(OUTPUT / "audit.pdf"), format="A4")
                    assert pdf.startswith(b"%PDF") and len(pdf) > 20_000
                page.close()
        finally:
            browser.close()
    assert (OUTPUT / "audit-1400.png").stat().st_size > 20_000 and (OUTPUT / "audit-420.png").stat().st_size > 20_000
