"""The command line: targets check, check, status and run (with SIGTERM), against local sites."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from monitor.cli import main
from tests.conftest import catalogue_toml
from tests.helpers import html
from tests.siteserver import Request, Site, page, respond

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_targets_check_on_the_real_catalogue() -> None:
    code, out, _ = invoke("-t", str(ROOT / "targets.toml"), "targets", "check")
    assert code == 0
    assert "23 services, 1 pages, 22 unmonitored, 0 suspended" in out


def test_targets_check_reports_problems_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(catalogue_toml(["https://a.example/"]).replace('regulation = "weekly"', 'regulation = "often"')
                   + '  content = "div[[["\n', encoding="utf-8")
    code, _, err = invoke("targets", "check", str(bad))
    assert code == 2
    assert "regulation': unknown value 'often'" in err


def test_bad_selector_is_a_config_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(catalogue_toml(["https://a.example/"]) + '  content = "div[[["\n', encoding="utf-8")
    code, _, err = invoke("targets", "check", str(bad))
    assert code == 2 and "invalid CSS selector 'div[[['" in err and "page 1 key 'content'" in err


def test_run_refuses_an_invalid_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[settings]\nconcurrency = 'x'\n", encoding="utf-8")
    code, _, err = invoke("-t", str(bad), "run")
    assert code == 2 and "concurrency" in err


def test_check_status_and_exit_codes(site: Site, tmp_path: Path) -> None:
    site.routes["/uk"] = page(html("Перша новина"))
    db = tmp_path / "m.db"
    cat = tmp_path / "t.toml"
    cat.write_text(catalogue_toml([site.url("/uk")], db=f"sqlite:///{db}"), encoding="utf-8")
    code, out, _ = invoke("-t", str(cat), "check")
    assert code == 0 and "1 pages checked, 0 failed" in out
    code, out, _ = invoke("-t", str(cat), "check", "--json")
    assert code == 0 and json.loads(out)[0]["outcome"] == "ok"
    code, _, err = invoke("-t", str(cat), "check", "nonexistent")
    assert code == 2 and "unknown service(s) nonexistent" in err

    site.routes["/uk"] = page("gone", status=500)
    code, out, _ = invoke("-t", str(cat), "check", "portal")
    assert code == 1 and "http_status" in out

    code, out, _ = invoke("-t", str(cat), "status", "--json")
    data = json.loads(out)
    (svc,) = data["services"]
    assert svc["id"] == "portal" and svc["state"] == "down" and svc["grade"] == "fresh"
    assert svc["monitoring_since"] is not None and svc["last_real_update_at"] is None


def test_status_shows_unmonitored_and_suspended(tmp_path: Path) -> None:
    cat = tmp_path / "t.toml"
    text = catalogue_toml([], db=f"sqlite:///{tmp_path / 'm.db'}") + """
[[services]]
id = "frozen"
name = "Безпечне Місто"
department = "Сектор інформаційних технологій та автоматизованих систем"
regulation = "weekly"
suspended = true
  [[services.pages]]
  url = "https://frozen.example/"
"""
    cat.write_text(text, encoding="utf-8")
    code, out, _ = invoke("-t", str(cat), "status", "--json")
    states = {s["id"]: s["state"] for s in json.loads(out)["services"]}
    assert code == 0 and states == {"portal": "unmonitored", "frozen": "suspended"}
    code, out, _ = invoke("-t", str(cat), "status")
    assert "unmonitored" in out and "suspended" in out


def test_run_checks_on_schedule_and_stops_cleanly_on_sigterm(site: Site, tmp_path: Path) -> None:
    site.routes["/uk"] = page(html("Перша новина"))
    db = tmp_path / "m.db"
    cat = tmp_path / "t.toml"
    cat.write_text(catalogue_toml([site.url("/uk")], db=f"sqlite:///{db}",
                                  extra_settings='metrics_listen = "127.0.0.1:0"'), encoding="utf-8")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "-t", str(cat), "run"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 90
        checks = 0
        while time.monotonic() < deadline and checks == 0:
            time.sleep(0.5)
            if db.exists():
                try:
                    with sqlite3.connect(db) as conn:
                        checks = conn.execute("select count(*) from checks").fetchone()[0]
                except sqlite3.OperationalError:
                    pass
        assert checks >= 1, proc.stderr.read() if proc.poll() is not None else "no check within 90 s"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "service=portal page=1 outcome=ok" in err and "stopped" in err
    with sqlite3.connect(db) as conn:
        stopped = conn.execute("select stopped_at from workers").fetchone()[0]
        integrity = conn.execute("pragma integrity_check").fetchone()[0]
    assert stopped is not None and integrity == "ok"


def test_sigterm_during_a_slow_check_finishes_and_stores_it(site: Site, tmp_path: Path) -> None:
    """The README's promise: on SIGTERM the monitor finishes the running checks and writes them."""
    async def slow(req: Request, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3)
        await respond(w, 200, html("Повільна сторінка"))

    site.routes["/slow"] = slow
    db = tmp_path / "m.db"
    cat = tmp_path / "t.toml"
    cat.write_text(catalogue_toml([site.url("/slow")], db=f"sqlite:///{db}",
                                  extra_settings='metrics_listen = "127.0.0.1:0"'), encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "-t", str(cat), "run"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            cwd=tmp_path)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not site.hits("/slow"):
            time.sleep(0.1)
        assert site.hits("/slow"), "the check never started"
        proc.send_signal(signal.SIGTERM)  # while the server is still thinking
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "CancelledError" not in err and "Traceback" not in err
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select outcome from checks").fetchall()
    assert rows == [("ok",)], err
