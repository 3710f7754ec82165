"""The architecture stays visible: each library behind one module, types checked, lint clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: install the test extra (pip install -e '.[test]')")
    return found


# the tests whose fakes stand in for the store's interfaces (monitor.ports): they type-check as they are
FAKES = ["tests/test_recorder.py", "tests/test_status.py", "tests/test_metrics.py", "tests/test_core.py",
         "tests/test_clock.py"]


@pytest.mark.parametrize("command", [
    ["lint-imports"],
    ["ruff", "check", "monitor", "tests", "bench"],
    ["mypy"],
    ["mypy", "--follow-imports=silent", *FAKES],
], ids=["import-contracts", "ruff", "mypy-strict", "mypy-strict-fakes"])
def test_static_checks(command: list[str]) -> None:
    result = subprocess.run([tool(command[0]), *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


# where a module's behaviour is tested when the file is not named after it
TESTED_IN = {
    "auditing": ["test_audit", "test_audit_html"], "cli": ["test_cli", "test_cli_detect"],
    "collect": ["test_kinds"], "compare": ["test_cli_detect", "test_detect_quality"],
    "detect": ["test_detect_quality"], "fingerprint": ["test_detect_quality", "test_mask"],
    "exporter": ["test_metrics"], "faults": ["test_faults_report"], "ports": ["test_store"],
    "render": ["test_audit_html", "test_faults_report"],
}
RECORDS_ONLY = {"__init__", "__main__", "domain", "errors"}  # records and the error tree: exercised everywhere
THROUGH_THE_CLI = {"alerting", "auditing", "render"}  # their tests drive the commands that use them


def test_every_module_of_behaviour_has_its_tests() -> None:
    """Tests mirror the package: monitor/x.py (or the package monitor/x/) is tested in tests/test_x.py, or in
    the files TESTED_IN names, and those files import it."""
    modules = sorted({p.stem for p in (ROOT / "monitor").glob("*.py")} | {
        p.parent.name for p in (ROOT / "monitor").glob("*/__init__.py")})
    missing = []
    for name in modules:
        if name in RECORDS_ONLY:
            continue
        files = [ROOT / "tests" / f"{t}.py" for t in TESTED_IN.get(name, [f"test_{name}"])]
        wanted = [f"monitor.{name}", f"monitor import {name}", *(["monitor.cli"] if name in THROUGH_THE_CLI else [])]
        if not any(f.exists() and any(w in f.read_text(encoding="utf-8") for w in wanted) for f in files):
            missing.append(name)
    assert not missing, f"modules without their test file: {missing}"
