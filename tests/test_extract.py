"""Extraction cases as data: tests/fixtures/extract/<case>.html with <case>.json holding the expectations."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from monitor.domain import Kind, Quality, Region
from monitor.extract import ExtractOptions
from monitor.extract.html import canonical_url, document_extension
from monitor.kinds import extract
from monitor.quality import assess
from tests.helpers import run_bounded

CASES = Path(__file__).parent / "fixtures" / "extract"


def cases() -> list[str]:
    return sorted(p.stem for p in CASES.glob("*.json"))


@pytest.mark.parametrize("case", cases())
def test_extraction_case(case: str) -> None:
    spec = json.loads((CASES / f"{case}.json").read_text(encoding="utf-8"))
    body = (CASES / spec.get("source", f"{case}.html")).read_bytes()
    opts = spec.get("options", {})
    content = extract(Kind.HTML, body, url=spec["url"],
                      options=ExtractOptions(content=opts.get("content"), exclude=tuple(opts.get("exclude", ()))))
    quality, reason = assess(content, url=spec["url"], final_url=spec["url"], body=body)
    assert quality.value == spec["quality"], reason
    if spec["quality"] != "ok":
        return
    main = [b.text for b in content.blocks if b.region is Region.MAIN]
    chrome = [b.text for b in content.blocks if b.region is Region.CHROME]
    everything = " ".join([content.visible_text, *main, *chrome])
    if "title" in spec:
        assert content.title == spec["title"]
    for text in spec.get("main_contains", []):
        assert text in main, f"{text!r} not in main: {main}"
    for text in spec.get("chrome_contains", []):
        assert text in chrome or text in content.visible_text, f"{text!r} not in the chrome"
        assert text not in main
    for text in spec.get("not_main", []):
        assert text not in main, f"{text!r} is in main"
    for text in spec.get("not_anywhere", []):
        assert text not in everything
    for text, flag in spec.get("volatile", {}).items():
        (block,) = [b for b in content.blocks if b.text == text]
        assert block.volatile == flag
    if "documents" in spec:
        assert [d.url for d in content.documents] == spec["documents"]
    links = {x.url for x in content.links}
    for url in spec.get("links_include", []):
        assert url in links, links
    for url in spec.get("links_exclude", []):
        assert url not in links
    if "declared_at" in spec:
        assert content.declared_at == datetime.fromisoformat(spec["declared_at"])


def test_same_page_fingerprints_identically_run_after_run() -> None:
    from monitor.compare import read_bytes as read

    body = (CASES / "portal-article.html").read_bytes()
    first = read(body, url="https://pokrovsk-rada.gov.ua/uk/a")
    for _ in range(3):
        assert read(body, url="https://pokrovsk-rada.gov.ua/uk/a").fingerprints == first.fingerprints


@pytest.mark.parametrize(("href", "expected"), [
    ("/files/a.pdf?v=1732700000", "https://city.example/files/a.pdf"),
    ("a.php?id=5&PHPSESSID=abc123", "https://city.example/news/a.php?id=5"),
    ("/x;jsessionid=ABCDEF?b=2&a=1", "https://city.example/x?a=1&b=2"),
    ("HTTPS://City.Example:443/Path#frag", "https://city.example/Path"),
    ("/p?utm_source=fb&utm_medium=x&q=1", "https://city.example/p?q=1"),
    ("/p?v=2", "https://city.example/p?v=2"),  # a short v is a real parameter, not a cache-buster
    ("mailto:Info@City.Example", "mailto:info@city.example"),
    ("javascript:void(0)", None),
    ("#top", None),
    ("http://[::1", None),
    # absolute addresses skip urljoin: the same result as joining them
    ("https://#", "https://city.example/news/index.php"),
    ("https://other.example/a/../b?", "https://other.example/a/../b"),
    ("http://Host.Example:8080/x;sid=1?b=&a=1#f", "http://host.example:8080/x?a=1&b="),
    ("https://x.example?q=1", "https://x.example/?q=1"),
])
def test_canonical_urls(href: str, expected: str | None) -> None:
    assert canonical_url(href, "https://city.example/news/index.php") == expected


def test_document_extensions() -> None:
    assert document_extension("https://a/b/Rishennia.PDF") == "pdf"
    assert document_extension("https://a/b/table.xlsx?x=1") == "xlsx"
    assert document_extension("https://a/b/page.php") is None
    assert document_extension("https://a/b.pdf/view") is None


def test_deeply_nested_and_broken_markup_does_not_raise() -> None:
    deep = "<div>" * 5000 + "Текст" + "</div>" * 10 + "<p><b><i>незакрите <table><td>клітинка"
    content = extract(Kind.HTML, deep.encode(), url="https://city.example/")
    assert any("Текст" in b.text for b in content.blocks)
    garbage = extract(Kind.HTML, b"\x00\xff\xfe<html", url="https://city.example/")
    assert garbage.quality is Quality.UNREADABLE and "binary data" in garbage.quality_reason and not garbage.blocks


NESTING = """
import json, sys, time
from monitor.extract.html import extract_html
from monitor.fingerprint import fingerprints, layers
text = "Рішення виконавчого комітету номер один"
out = {}
for tag, attrs in (("div", ""), ("main", ""), ("article", ""), ("div", " class=slider"), ("div", " class=counter")):
    html = "<html><body>" + f"<{tag}{attrs}>{text}" * 20_000 + f"</{tag}>" * 20_000 + "</body></html>"
    started = time.perf_counter()
    content = extract_html(html, "https://city.example/")
    fingerprints(content, html.encode(), lay=layers(content))
    out[tag + attrs] = [time.perf_counter() - started, len(content.blocks),
                        max(b.path.count("/") + 1 for b in content.blocks), max(len(b.path) for b in content.blocks)]
print(json.dumps(out))
"""


def test_hostile_nesting_costs_linear_time_and_bounded_paths() -> None:
    """20,000 nested elements (1 MB), each with text. Walks up the tree from every block, structural paths
    as long as the nesting, and measuring the text of every nested widget or counter made these cost time
    (and path memory) squared: tens of seconds to minutes each. Each element is now walked once, a path keeps
    its 64 nearest steps and text measurement has a page budget. Loose bounds, in a child process: this
    proves a page cannot stall the monitor, it does not measure speed."""
    for case, (seconds, blocks, steps, chars) in run_bounded(NESTING, 120, "extracting the nested pages").items():
        assert seconds < 15 and blocks >= 20_000, (case, seconds, blocks)
        assert steps <= 65 and chars <= 65 * 30, (case, steps, chars)  # "…/" and the 64 nearest steps


def test_paths_keep_their_nearest_steps() -> None:
    from monitor.extract.html import MAX_PATH_STEPS, extract_html

    content = extract_html("<html><body>" + "<div class=box>" * 100 + "<p id=last>Текст рішення</p>"
                           + "</div>" * 100 + "</body></html>", "https://city.example/")
    (block,) = content.blocks
    steps = block.path.split("/")
    assert steps[0] == "…" and steps[-1] == "p#last" and len(steps) == MAX_PATH_STEPS + 1
    assert set(steps[1:-1]) == {"div.box"}


def test_text_directly_in_the_main_container_is_one_block() -> None:
    from monitor.extract.html import extract_html

    content = extract_html("<html><body><nav><a href=/>Головна</a></nav><main>Оголошення про прийом документів"
                           "<p>Прийом заяв триває до 15 грудня у ЦНАП за адресою вул. Центральна, 1.</p></main>"
                           "</body></html>", "https://cnap.example/uk/")
    main = [(b.path, b.text) for b in content.blocks if b.region is Region.MAIN]
    assert main == [("body/main", "Оголошення про прийом документів"),
                    ("body/main/p", "Прийом заяв триває до 15 грудня у ЦНАП за адресою вул. Центральна, 1.")]
