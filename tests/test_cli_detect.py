"""`monitor history`, `monitor diff` and `monitor compare`: evidence a person can read, page text never
interpreted (no markup, no script)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from monitor.cli import main
from tests.conftest import catalogue_toml
from tests.helpers import html
from tests.siteserver import Site, page

HOSTILE = "[bold red]OWNED[/] <script>alert(1)</script> \x1b[31mred"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_history_and_diff_after_real_checks(site: Site, tmp_path: Path) -> None:
    cat = tmp_path / "t.toml"
    cat.write_text(catalogue_toml([site.url("/uk")], db=f"sqlite:///{tmp_path / 'm.db'}"), encoding="utf-8")
    site.routes["/uk"] = page(html("Засідання виконкому"))
    assert invoke("-t", str(cat), "check")[0] == 0
    code, _, err = invoke("-t", str(cat), "diff", "portal")
    assert code == 1 and "no change recorded for portal" in err
    site.routes["/uk"] = page(html("Засідання виконкому", HOSTILE, extra="<p><a href='/f/r-12.pdf'>Рішення</a></p>"))
    assert invoke("-t", str(cat), "check")[0] == 0

    code, out, _ = invoke("-t", str(cat), "history", "portal", "--json")
    (change,) = json.loads(out)
    assert change["class"] == "content" and change["real_update"] and change["added"] == 2
    code, out, _ = invoke("-t", str(cat), "history", "portal")
    assert code == 0 and "content" in out

    code, out, _ = invoke("-t", str(cat), "diff", "portal", str(change["id"]))
    assert code == 0
    assert "+[bold red]OWNED[/] [31mred" in out  # printed literally, not as markup; the script never extracted
    assert "\x1b" not in out and "alert(1)" not in out
    assert "+ document http" in out and "/f/r-12.pdf" in out
    assert invoke("-t", str(cat), "diff", "portal", "9999")[0] == 2
    assert invoke("-t", str(cat), "history", "nope")[0] == 2


def test_compare_files(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.html", tmp_path / "b.html", tmp_path / "c.html"
    a.write_bytes(html("Новина", extra="<p>Переглядів: 10</p><p>Оновлено: 28.11.2026</p>"))
    b.write_bytes(html("Новина", extra="<p>Переглядів: 97</p><p>Оновлено: 30.11.2026</p>"))
    c.write_bytes(html("Новина", "Нова подія"))
    code, out, _ = invoke("compare", str(a), str(b), "--json")
    data = json.loads(out)
    assert code == 0 and data["class"] == "date_only" and not data["real_update"]
    code, out, _ = invoke("compare", str(a), str(c))
    assert code == 0 and "content (a real update)" in out and "+Нова подія" in out
    code, _, err = invoke("compare", str(a), str(tmp_path / "missing.html"))
    assert code == 2 and "cannot read" in err


def test_compare_pairs_prints_one_class_per_line_in_order(tmp_path: Path) -> None:
    files = {}
    for name, body in {"a": html("Новина"), "b": html("Новина", "Ще одна"),
                       "c": html("Новина", extra="<p>Оновлено: 30.11.2026</p>"),
                       "d": html("Новина", extra="<p>Оновлено: 01.12.2026</p>")}.items():
        files[name] = tmp_path / f"{name}.html"
        files[name].write_bytes(body)
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{files[x]}\t{files[y]}\n" for x, y in ["ab", "aa", "cd", "ba"])
                     + f"{files['a']}\n{files['a']}\t{tmp_path / 'nope.html'}\n", encoding="utf-8")
    code, out, _ = invoke("compare", "--pairs", str(pairs))
    lines = out.splitlines()
    assert code == 0
    assert lines[:4] == ["content", "none", "date_only", "content"]
    assert lines[4] == "error: line 5: expected 'before<TAB>after'"
    assert lines[5].startswith("error: line 6: No such file or directory")


def test_compare_urls(site: Site) -> None:
    site.routes["/a"] = page(html("Новина"))
    site.routes["/b"] = page(html("Новина", "Друга"))
    code, out, _ = invoke("compare", site.url("/a"), site.url("/b"), "--allow-private", "--json")
    assert code == 0 and json.loads(out)["class"] == "content"
    code, _, err = invoke("compare", site.url("/a"), site.url("/b"))
    assert code == 1 and "blocked" in err
