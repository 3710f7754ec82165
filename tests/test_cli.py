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

import pytest
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


def test_targets_sync_applies_the_catalogue_once_and_retires_what_was_removed(tmp_path: Path) -> None:
    targets = tmp_path / "targets.toml"
    db = f"sqlite:///{tmp_path / 'm.db'}"
    targets.write_text(catalogue_toml(["https://rada.example.gov.ua/rishennia", "https://rada.example.gov.ua/novyny"],
                                      db=db), encoding="utf-8")
    code, out, _ = invoke("-t", str(targets), "targets", "sync")
    assert code == 0 and "1 services, 2 pages (2 added, 0 retired)" in out, out
    code, out, _ = invoke("-t", str(targets), "targets", "sync", "--json")
    assert code == 0 and json.loads(out) == {"services": 1, "pages": 2, "added": 0, "retired": 0}
    targets.write_text(catalogue_toml(["https://rada.example.gov.ua/rishennia"], db=db), encoding="utf-8")
    code, out, _ = invoke("-t", str(targets), "targets", "sync")
    assert code == 0 and "1 pages (0 added, 1 retired)" in out, out
    with sqlite3.connect(tmp_path / "m.db") as conn:  # retired, never deleted: its history stays
        assert conn.execute("SELECT count(*), count(retired_at) FROM pages").fetchone() == (2, 1)


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
    assert f"service=portal url={site.url('/uk')} outcome=ok" in err and "stopped" in err
    with sqlite3.connect(db) as conn:
        stopped = conn.execute("select stopped_at from workers").fetchone()[0]
        integrity = conn.execute("pragma integrity_check").fetchone()[0]
    assert stopped is not None and integrity == "ok"


def test_run_stops_when_it_cannot_serve_metrics_and_logs_why_a_check_failed(site: Site, tmp_path: Path) -> None:
    """A monitor nobody can scrape runs blind: the port taken is fatal, exit 1 with the reason. A failed check
    is a WARNING that names the page's address (its secret redacted) and the reason."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cat = tmp_path / "t.toml"
        cat.write_text(catalogue_toml([site.url("/uk")], db=f"sqlite:///{tmp_path / 'm.db'}", extra_settings=(
            f'metrics_listen = "127.0.0.1:{taken.getsockname()[1]}"')), encoding="utf-8")
        done = subprocess.run([sys.executable, "-m", "monitor", "-t", str(cat), "run"], capture_output=True,
                              text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 1 and "cannot serve /metrics on 127.0.0.1:" in done.stderr, done.stderr[-2000:]
    site.routes["/gone"] = page("нема", status=404)
    cat.write_text(catalogue_toml([site.url("/gone?token=s3cr3t")], db=f"sqlite:///{tmp_path / 'm.db'}"),
                   encoding="utf-8")
    checked = subprocess.run([sys.executable, "-m", "monitor", "-t", str(cat), "check"], capture_output=True,
                             text=True, timeout=120, cwd=tmp_path)
    (line,) = [x for x in checked.stderr.splitlines() if "check failed" in x]
    assert "WARNING" in line and "url=http://127.0.0.1:" in line and "/gone?token=REDACTED" in line
    assert "outcome=http_status status=404 reason=" in line and "s3cr3t" not in checked.stderr


def test_a_relative_database_is_beside_the_catalogue_wherever_the_command_runs(site: Site, tmp_path: Path) -> None:
    site.routes["/uk"] = page(html("Новина"))
    (tmp_path / "etc").mkdir()
    (tmp_path / "elsewhere").mkdir()
    cat = tmp_path / "etc" / "targets.toml"
    cat.write_text(catalogue_toml([site.url("/uk")], db="sqlite:///state/monitor.db"), encoding="utf-8")
    (tmp_path / "etc" / "state").mkdir()
    done = subprocess.run([sys.executable, "-m", "monitor", "-t", str(cat), "check"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path / "elsewhere")
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "etc" / "state" / "monitor.db").exists() and not list((tmp_path / "elsewhere").iterdir())


def test_sigterm_during_a_slow_check_finishes_and_stores_it(site: Site, tmp_path: Path) -> None:
    """The docs' promise: on SIGTERM the monitor finishes the running checks and writes them."""
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


def test_check_on_a_database_that_takes_no_writes_fails_with_the_reason(site: Site, tmp_path: Path) -> None:
    """It used to wait a minute, print "1 pages checked, 0 failed" and exit 0 with nothing stored."""
    site.routes["/uk"] = page(html("Новина"))
    db = tmp_path / "m.db"
    cat = tmp_path / "t.toml"
    cat.write_text(catalogue_toml([site.url("/uk")], db=f"sqlite:///{db}"), encoding="utf-8")
    assert invoke("-t", str(cat), "check")[0] == 0  # the schema and a first check
    cat.write_text(catalogue_toml([site.url("/uk")], db=f"sqlite:///file:{db}?mode=ro&uri=true"), encoding="utf-8")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "monitor", "-t", str(cat), "check"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1 and "could not be written" in done.stderr and "takes no writes" in done.stderr
    assert "0 failed" not in done.stdout and time.monotonic() - started < 30
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from checks").fetchone()[0] == 1
    # the monitor itself does not start on it: exit 1 and the reason, not a traceback
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ran = subprocess.run([sys.executable, "-m", "monitor", "-t", str(cat), "run"], capture_output=True, text=True,
                         timeout=120, cwd=elsewhere)
    assert ran.returncode == 1 and "error: cannot start:" in ran.stderr and "takes no writes" in ran.stderr
    assert "Traceback" not in ran.stderr, ran.stderr[-2000:]
    assert not list(elsewhere.iterdir())  # the URI's file is the database's: no stray "file:" folder for a lock


def test_a_second_monitor_on_one_sqlite_file_is_refused(site: Site, tmp_path: Path) -> None:
    site.routes["/uk"] = page(html("Новина"))
    db = tmp_path / "m.db"
    cat = tmp_path / "t.toml"
    cat.write_text(catalogue_toml([site.url("/uk")], db=f"sqlite:///{db}",
                                  extra_settings='metrics_listen = "127.0.0.1:0"'), encoding="utf-8")
    first = subprocess.Popen([sys.executable, "-m", "monitor", "-t", str(cat), "run"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (tmp_path / "m.db.lock").exists():
            time.sleep(0.2)
        time.sleep(1)
        second = subprocess.run([sys.executable, "-m", "monitor", "-t", str(cat), "run"], capture_output=True,
                                text=True, timeout=60)
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert second.returncode == 2 and "in use by another `monitor run` (pid" in second.stderr
    assert "Traceback" not in second.stderr


@pytest.mark.parametrize(("write", "message"), [
    (lambda p: p.write_text("[settings]\nx = " + "[" * 5000 + "1" + "]" * 5000 + "\n"), "nested too deeply"),
    (lambda p: p.write_bytes(b"\xff\xfe garbage"), "cannot read"),
    (lambda p: p.write_text(catalogue_toml(["http://city.example:99999/uk"])), "Port out of range"),
    (lambda p: p.write_text(catalogue_toml(["http://city.example:abc/uk"])), "Port could not be cast"),
    (lambda p: p.write_text(catalogue_toml(["http://[::1/uk"])), "Invalid IPv6 URL"),
    (lambda p: p.write_text(catalogue_toml(["http://bad host.example/uk"])), "spaces or control characters"),
    (lambda p: p.write_text(catalogue_toml(["http://-bad-.example/uk"])), "not a valid host name"),
], ids=["deep-toml", "not-utf8", "port-99999", "port-abc", "open-bracket", "space-in-host", "bad-label"])
def test_catalogues_that_cannot_work_are_refused_with_a_located_message(tmp_path: Path, write, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "t.toml"
    write(path)
    done = subprocess.run([sys.executable, "-m", "monitor", "-t", str(path), "targets", "check"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_catalogue_that_is_not_a_file_is_refused_at_once() -> None:
    done = subprocess.run([sys.executable, "-m", "monitor", "-t", "/dev/zero", "targets", "check"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "not a regular file" in done.stderr


def test_two_commands_starting_on_a_new_sqlite_file_take_turns_with_the_schema(site: Site, tmp_path: Path) -> None:
    site.routes["/uk"] = page(html("Новина"))
    cat = tmp_path / "t.toml"
    cat.write_text(catalogue_toml([site.url("/uk")], db=f"sqlite:///{tmp_path / 'new.db'}"), encoding="utf-8")
    procs = [subprocess.Popen([sys.executable, "-m", "monitor", "-t", str(cat), "check"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _out, err in results]
    assert not any("already exists" in err for _out, err in results)
