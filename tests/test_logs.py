"""The process's log as text and as JSON lines: the event's fields as fields, secrets redacted."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from monitor import logs
from tests.conftest import catalogue_toml
from tests.siteserver import Site, page


@pytest.fixture
def root_logger():  # type: ignore[no-untyped-def]
    """The root logger as the test found it, afterwards (setup replaces its handler and level)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("root_logger")
def test_json_lines_carry_the_event_fields_and_the_exception(capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup("INFO", "json")
    log = logging.getLogger("monitor.test")
    log.info("checked %s", "portal", extra={"service": "portal", "status": 200, "real": True, "at": Path("/x")})
    log.debug("not shown at INFO")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("it failed")
    logging.getLogger("httpx").info("quiet libraries are quiet")
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert [x["message"] for x in lines] == ["checked portal", "it failed"]
    first = lines[0]
    assert first["level"] == "info" and first["logger"] == "monitor.test" and first["time"].endswith("+00:00")
    assert (first["service"], first["status"], first["real"], first["at"]) == ("portal", 200, True, "/x")
    assert "ValueError: boom" in lines[1]["exception"]
    logs.setup("WARNING", "text")
    log.warning("plain")
    assert capsys.readouterr().err.rstrip().endswith("WARNING monitor.test: plain")
    with pytest.raises(ValueError, match="log format 'xml'"):
        logs.setup("INFO", "xml")


def test_a_failed_check_is_one_json_warning_with_where_and_why(site: Site, tmp_path: Path) -> None:
    site.routes["/gone"] = page("нема", status=404)
    cat = tmp_path / "t.toml"
    cat.write_text(catalogue_toml([site.url("/gone?token=s3cr3t")], db=f"sqlite:///{tmp_path / 'm.db'}"),
                   encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "MONITOR_LOG_FORMAT": "json"}
    done = subprocess.run([sys.executable, "-m", "monitor", "-t", str(cat), "check"], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, env=env)
    events = [json.loads(x) for x in done.stderr.splitlines() if x.startswith("{")]
    assert events and len(events) == len(done.stderr.splitlines()), done.stderr  # every line is JSON
    (failed,) = [e for e in events if e["message"].startswith("check failed")]
    assert failed["level"] == "warning" and failed["service"] == "portal" and failed["outcome"] == "http_status"
    assert failed["status"] == 404 and failed["url"].endswith("/gone?token=REDACTED") and failed["reason"]
    assert len(failed["page"]) == 10 and "s3cr3t" not in done.stderr
    bad = subprocess.run([sys.executable, "-m", "monitor", "--log-format", "xml", "-t", str(cat), "check"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert bad.returncode == 2 and "xml" in bad.stderr
