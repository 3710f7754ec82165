"""Docs become tests: the examples of the README and of docs/ load, and their reference tables are true.

(Their shell blocks run in tests/test_docs_shell.py.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from monitor.config import keys_reference, parse_catalogue

ROOT = Path(__file__).resolve().parents[1]
PAGES = {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8")
         for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}
OPERATORS = PAGES["docs/operators.md"]


def between(text: str, name: str) -> str:
    return text.split(f"<!-- {name}:start -->", 1)[1].split(f"<!-- {name}:end -->", 1)[0]


def test_toml_examples_load() -> None:
    blocks = [(page, b) for page, text in PAGES.items() for b in re.findall(r"```toml\n(.*?)```", text, re.S)]
    assert any(page == "docs/operators.md" for page, _ in blocks), "the operator's guide has no targets.toml example"
    for page, block in blocks:
        try:
            data = tomllib.loads(block)
            if "services" in data:
                parse_catalogue(data, environ={"CONSULT_TOKEN": "x"})
        except Exception as exc:
            raise AssertionError(f"a TOML example of {page}: {exc}") from exc


def test_key_reference_is_current() -> None:
    assert between(OPERATORS, "keys").strip() == keys_reference().strip(), (
        "run `monitor targets keys` and paste it into docs/operators.md")


def test_kinds_table_is_the_registry() -> None:
    from monitor.kinds import kinds_reference

    assert between(OPERATORS, "kinds").strip() == kinds_reference().strip(), (
        "paste monitor.kinds.kinds_reference() into docs/operators.md")


def test_every_outcome_is_listed() -> None:
    from monitor.domain import Outcome

    for outcome in Outcome:
        assert f"`{outcome.value}`" in OPERATORS


def test_every_test_the_docs_cite_exists() -> None:
    cited = {c for text in PAGES.values() for c in re.findall(r"(tests/test_\w+\.py)::(\w+)", text)}
    assert cited
    for path, name in cited:
        assert re.search(rf"def {name}\(", (ROOT / path).read_text(encoding="utf-8")), f"{path}::{name}"


def test_links_between_the_pages_resolve() -> None:
    """Every relative link of the README and docs/ names a file that exists, and an anchor that page has."""
    def anchors(text: str) -> set[str]:
        heads = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
                 for h in re.findall(r"^#+ (.*)$", text, re.M)}
        return heads | set(re.findall(r'<a id="([^"]+)"', text))

    broken = []
    for page, text in PAGES.items():
        base = (ROOT / page).parent
        for target in re.findall(r"\]\(([^)\s]+)\)|src=\"([^\"]+)\"", text):
            link = target[0] or target[1]
            if re.match(r"[a-z]+:", link):
                continue
            path, _, anchor = link.partition("#")
            file = (base / path).resolve() if path else ROOT / page
            if not file.exists():
                broken.append(f"{page}: {link} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text(encoding="utf-8")):
                broken.append(f"{page}: {link} (no such anchor)")
    assert not broken, "\n".join(broken)


def test_every_command_is_in_the_operators_table() -> None:
    from monitor.cli import main

    table = OPERATORS.split("## Commands", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in main.commands if f"`monitor {name}" not in table]
    assert not missing, f"docs/operators.md, Commands: add {', '.join(missing)}"
