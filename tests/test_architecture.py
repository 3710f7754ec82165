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


@pytest.mark.parametrize("command", [
    ["lint-imports"],
    ["ruff", "check", "monitor", "tests", "bench"],
    ["mypy"],
], ids=["import-contracts", "ruff", "mypy-strict"])
def test_static_checks(command: list[str]) -> None:
    result = subprocess.run([tool(command[0]), *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
