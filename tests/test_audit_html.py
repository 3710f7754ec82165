"""The HTML audit report: one self-contained file, opened in headless Chromium; page content that carries
<script> (or an event handler) is shown as text and nothing runs."""

from __future__ import annotations

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

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("html")
    targets = _history(tmp, hostile=HOSTILE)
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
    assert "src=\"http" not in html and "href=\"http" not in html  # nothing is loaded from outside
    assert "Аудит оновлень веб-сервісів" in html and "<svg" in html


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
