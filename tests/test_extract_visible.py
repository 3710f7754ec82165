"""Nothing visible is lost (issue 13): every visible text node of every page lands in some block, or is dropped
on purpose (scripts, styles, form controls, embedded objects, hidden elements) — listed here, not guessed."""

from __future__ import annotations

from pathlib import Path

import pytest
from selectolax.lexbor import LexborHTMLParser, LexborNode

from monitor.extract.decode import decode
from monitor.extract.html import COMMENT, NON_CONTENT, extract_html
from monitor.extract.normalize import normalise
from tests.conftest import SHARED

PAGES = sorted((SHARED / "corpus" / "pages").glob("*.html")) if (SHARED / "corpus" / "pages").is_dir() else []
FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("**/*.html"))
DROPPED_TAGS = frozenset(NON_CONTENT) | {"head", "title"}  # never text of the page's content, by design


def _dropped(node: LexborNode) -> bool:
    current: LexborNode | None = node.parent
    while current is not None:
        if current.tag in DROPPED_TAGS:
            return True
        attrs = current.attributes if current.tag and not current.tag.startswith(("-", "#", "_")) else {}
        if "hidden" in attrs or attrs.get("aria-hidden") == "true":
            return True
        current = current.parent
    return False


def lost_text(html: str) -> list[str]:
    """The visible text nodes of the page's body that are in no block."""
    content = extract_html(html, "https://city.example/page")
    blocks = "\x00".join(b.text for b in content.blocks)
    tree = LexborHTMLParser(COMMENT.sub("", html) if "<!--" in html else html)
    if tree.body is None:
        return []
    lost = []
    for node in tree.body.traverse(include_text=True):
        if node.tag != "-text":
            continue
        text = normalise(node.text_content or "")
        if not text or _dropped(node):
            continue
        if text not in blocks:
            lost.append(text)
    return lost


@pytest.mark.parametrize("path", PAGES + FIXTURES, ids=lambda p: p.name)
def test_every_visible_text_node_lands_in_a_block(path: Path) -> None:
    html = decode(path.read_bytes())[0]
    lost = lost_text(html)
    assert not lost, f"{len(lost)} visible text nodes in no block: {lost[:5]}"


def test_text_of_elements_that_are_neither_block_nor_inline_is_kept() -> None:
    """<noindex> (common on Ukrainian sites), custom elements, <marquee>: their text was in no block."""
    html = ("<html><body><main><h1>Оголошення</h1><noindex>Прийом громадян щочетверга</noindex>"
            "<gov-notice>Зміна графіка роботи ЦНАП</gov-notice><marquee>Увага: відключення води</marquee>"
            "</main></body></html>")
    texts = [b.text for b in extract_html(html, "https://rada.example/uk").blocks]
    assert {"Прийом громадян щочетверга", "Зміна графіка роботи ЦНАП", "Увага: відключення води"} <= set(texts)
    assert lost_text(html) == []
