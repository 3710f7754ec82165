"""Docs become tests: the README's examples load and its reference tables are true."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from monitor.config import keys_reference, parse_catalogue

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_readme_toml_examples_load() -> None:
    blocks = re.findall(r"```toml\n(.*?)```", README, re.S)
    assert blocks, "the README has no targets.toml example"
    for block in blocks:
        data = tomllib.loads(block)
        if "services" in data:
            parse_catalogue(data, environ={"CONSULT_TOKEN": "x"})


def test_readme_key_reference_is_current() -> None:
    section = README.split("<!-- keys:start -->", 1)[1].split("<!-- keys:end -->", 1)[0]
    assert section.strip() == keys_reference().strip(), "run `monitor targets keys` and paste it into the README"


def test_readme_kinds_table_is_the_registry() -> None:
    from monitor.kinds import kinds_reference

    section = README.split("<!-- kinds:start -->", 1)[1].split("<!-- kinds:end -->", 1)[0]
    assert section.strip() == kinds_reference().strip(), "paste monitor.kinds.kinds_reference() into the README"


def test_readme_lists_every_outcome() -> None:
    from monitor.domain import Outcome

    for outcome in Outcome:
        assert f"`{outcome.value}`" in README


def test_every_test_the_readme_cites_exists() -> None:
    root = Path(__file__).resolve().parents[1]
    cited = set(re.findall(r"(tests/test_\w+\.py)::(\w+)", README))
    assert cited
    for path, name in cited:
        assert re.search(rf"def {name}\(", (root / path).read_text(encoding="utf-8")), f"{path}::{name}"
