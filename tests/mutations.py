"""Mutations of real pages for the detection quality evaluation: noise that must not count as an update,
and real edits that must. Each mutation edits a parsed page in two phases: phase 0 gives the "before"
page, phase 1 the "after" page, so both are serialised by the same parser from the same original."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser, LexborNode

_CHROME_WORDS = ("menu", "sidebar", "footer", "header", "breadcrumb", "cookie", "share", "social", "comment", "related",
                 "widget", "banner", "slider", "carousel", "popular", "trending", "most-read", "recommend", "promo",
                 "navigation", "navbar", "pagination", "toolbar", "kommentar", "tooltip", "subscribe", "newsletter")
CHROME = ", ".join(["header", "nav", "footer", "aside", "[role=navigation]", "[role=banner]", "[role=contentinfo]",
                    "[role=complementary]", "[role=search]", "[role=dialog]", "[class*=modal i]",
                    "noscript", "template", "[hidden]", "[aria-hidden=true]", "button", "select", "label"]
                   + [f"[class*={w} i]" for w in _CHROME_WORDS] + [f"[id*={w} i]" for w in _CHROME_WORDS])
SENTENCES = ["Виконавчий комітет затвердив план ремонту доріг на наступний рік.",
             "Громадські слухання щодо бюджету участі відбудуться у міській раді.",
             "Відкрито прийом заяв на компенсацію вартості енергозберігаючого обладнання.",
             "Оголошено конкурс на заміщення вакантної посади в управлінні освіти."]
WORDS = ["рішення", "бюджет", "громада", "проєкт", "ремонт", "школа", "лікарня", "водогін"]
# The generator's own notion of a date, kept independent of the monitor's masks: a digit edit inside
# a date is a date change, so "one-digit edit" picks digits outside anything that looks like one.
_MONTHS = ("jan|feb|mär|mar|apr|mai|may|jun|jul|aug|sep|okt|oct|nov|dez|dec|januar|februar|märz|juni|juli|"
           "janvier|février|mars|avril|juin|juillet|août|septembre|octobre|novembre|décembre|"
           "січ|лют|бер|квіт|трав|черв|лип|серп|верес|жовт|листоп|груд|янв|фев|мар|апр|ма[йя]|июн|июл|авг|"
           "сен|окт|ноя|дек")
DATE_OR_TIME = re.compile(
    r"\d{1,4}[./:-]\d{1,2}(?:[./:-]\d{1,4})?"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\.?\s*(?i:{_MONTHS})\w*\.?(?:\s*\d{{2,4}})?"
    rf"|(?i:{_MONTHS})\w*\.?\s*\d{{1,4}}(?:,?\s*\d{{4}})?"
    r"|\b(?:19|20)\d{2}\b")


@dataclass(frozen=True)
class Mutation:
    name: str
    real: bool
    apply: Callable[[LexborHTMLParser, int, random.Random], bool]  # (tree, phase, rng) -> applicable


def _text(node: LexborNode) -> str:
    return node.text(deep=True, strip=True)


def content_root(tree: LexborHTMLParser) -> LexborNode | None:
    return tree.css_first("main, [role=main], article") or tree.body


def content_nodes(tree: LexborHTMLParser, selector: str = "p, li, td", min_len: int = 40) -> list[LexborNode]:
    """Elements a reader would call the page's content: substantial text outside the page chrome."""
    root = content_root(tree)
    if root is None:
        return []
    chrome = {n.mem_id for n in tree.css(CHROME)}
    main = root.mem_id
    out = []
    for node in root.css(selector):
        if len(_text(node)) < min_len:
            continue
        if node.tag == "p" and not _in_running_text(node, min_len):
            continue
        current: LexborNode | None = node
        inside_chrome = False
        while current is not None and current.mem_id != main:
            if current.mem_id in chrome:
                inside_chrome = True
                break
            current = current.parent
        if not inside_chrome:
            out.append(node)
    return out


INVISIBLE = frozenset({"script", "style", "noscript", "template", "select", "option", "button", "textarea"})


def _in_running_text(p: LexborNode, min_len: int) -> bool:
    """A paragraph of running text: its parent holds at least two other substantial paragraphs (an article
    body), unlike a lone notice, a teaser or a subscription box."""
    parent = p.parent
    if parent is None:
        return False
    return sum(1 for sib in parent.iter() if sib.tag == "p" and len(_text(sib)) >= min_len) >= 3


def _first_text_node(node: LexborNode) -> LexborNode | None:
    for child in node.traverse(include_text=True):
        if child.tag == "-text" and child.text_content and len(child.text_content.strip()) >= 20:
            parent = child.parent
            if parent is None or parent.tag not in INVISIBLE:
                return child
    return None


def _append_html(tree: LexborHTMLParser, parent: LexborNode | None, html: str) -> None:
    if parent is None:
        return
    fragment = LexborHTMLParser(f"<body>{html}</body>").body
    assert fragment is not None
    for child in list(fragment.iter()):
        parent.insert_child(child)


def _pick(rng: random.Random, nodes: list[LexborNode]) -> LexborNode | None:
    return nodes[rng.randrange(len(nodes))] if nodes else None


# --- noise -----------------------------------------------------------------------------------


def clock(tree: LexborHTMLParser, phase: int, rng: random.Random) -> bool:
    t = ["14:35", "14:36"][phase]
    d = ["30 листопада 2026", "1 грудня 2026"][phase]
    _append_html(tree, tree.css_first("header") or tree.body, f"<div class='clock'>Сьогодні: {d}, {t}</div>")
    _append_html(tree, content_root(tree), f"<p>Інформація станом на {t}</p>")
    return True


def counters(tree: LexborHTMLParser, phase: int, rng: random.Random) -> bool:
    views = [1234, 1291][phase]
    _append_html(tree, content_root(tree), f"<div class='meta'>Кількість переглядів: {views}</div>"
                 f"<div><span class='post-views'><i class='fa fa-eye'></i> {views - 700}</span></div>")
    _append_html(tree, tree.css_first("footer") or tree.body, f"<p>Відвідувачів онлайн: {[12, 17][phase]}</p>")
    return True


def tokens(tree: LexborHTMLParser, phase: int, rng: random.Random) -> bool:
    token = ["a8f3c2e9b1d74f6a9c0e5b2d8f1a3c7e", "0c7e1f9a2b8d4e6f3a5c9b1d7e2f8a4c"][phase]
    _append_html(tree, content_root(tree), f"<form action='/search'><input type='hidden' name='_token' "
                 f"value='{token}'><input type='hidden' name='nonce' value='{token[:12]}'></form>")
    head = tree.head
    if head is not None:
        _append_html(tree, head, f"<meta name='csrf-token' content='{token}'>")
    _append_html(tree, tree.body, f"<script nonce='{token[:16]}'>window.__t = '{token}';</script>")
    return True


def session_ids(tree: LexborHTMLParser, phase: int, rng: random.Random) -> bool:
    root = content_root(tree)
    links = root.css("a[href]") if root is not None else []
    if not links:
        return False
    sid = ["9f1c2d3e4b5a", "1a2b3c4d5e6f"][phase]
    for i, a in enumerate(links):
        href = a.attributes.get("href") or ""
        if href.startswith(("#", "javascript", "mailto")):
            continue
        sep = "&" if "?" in href else "?"
        a.attrs["href"] = href + (f"{sep}PHPSESSID={sid}" if i % 2 else f"{sep}v={1700000000 + phase * 3600}")
    return True


def scripts(tree: LexborHTMLParser, phase: int, rng: random.Random) -> bool:
    ts = ["2026-11-30T10:00:00+02:00", "2026-12-01T09:15:00+02:00"][phase]
    _append_html(tree, tree.body, f"<script type='application/ld+json'>{{\"@type\": \"WebPage\", "
                 f"\"dateModified\": \"{ts}\"}}</script><script>var build = {phase + 1000};</script>")
    return True


def banner(tree: LexborHTMLParser, phase: int, rng: random.Random) -> bool:
    n = phase + 1
    html = (f"<div class='banner'><a href='/promo/{n}'><img src='/img/banner-{n}.jpg' alt='Акція {n}'></a>"
            f"<p>{['Запрошуємо на ярмарок', 'Долучайтеся до толоки'][phase]}</p></div>")
    _append_html(tree, tree.css_first("header") or tree.body, html)
    root = content_root(tree)
    if root is not None and root.child is not None:
        fragment = LexborHTMLParser(f"<body>{html}</body>").body
        assert fragment is not None
        root.child.insert_before(fragment.child)  # type: ignore[arg-type]
    return True


def widgets(tree: LexborHTMLParser, phase: int, rng: random.Random) -> bool:
    temp = ["+5°C", "+7°C"][phase]
    usd, eur = [("41.25", "44.10"), ("41.38", "44.27")][phase]
    _append_html(tree, tree.css_first("aside") or tree.body,
                 f"<div class='weather'>Погода у Покровську: {temp}</div>"
                 f"<div class='rates'>Курс НБУ: USD {usd} EUR {eur}</div>")
    _append_html(tree, content_root(tree), f"<p>Температура повітря {temp}, курс USD {usd}</p>")
    return True


def markup(tree: LexborHTMLParser, phase: int, rng: random.Random) -> bool:
    if phase == 0:
        return True
    for i, node in enumerate(tree.css("div, p, li, a")):
        node.attrs["data-render"] = f"r{i}"
        if i % 7 == 0:
            node.insert_child(LexborHTMLParser("<body><!-- cache: hit --></body>").body.child)  # type: ignore[union-attr,arg-type]
    for node in content_nodes(tree)[:5]:
        text_node = _first_text_node(node)
        if text_node is not None:  # more of the whitespace that is already there: nothing a reader sees
            text_node.replace_with((text_node.text_content or "").replace(" ", " \n  "))
    return True


def updated_stamp(tree: LexborHTMLParser, phase: int, rng: random.Random) -> bool:
    d = ["28.11.2026 09:12", "30.11.2026 16:40"][phase]
    _append_html(tree, content_root(tree), f"<p class='date'>Оновлено: {d}</p>")
    _append_html(tree, tree.css_first("footer") or tree.body, f"<p>Дата останнього оновлення сайту: {d}</p>")
    return True


NOISE = [clock, counters, tokens, session_ids, scripts, banner, widgets, markup, updated_stamp]


def all_noise(tree: LexborHTMLParser, phase: int, rng: random.Random) -> bool:
    for m in NOISE:
        m(tree, phase, rng)
    return True


# --- real edits --------------------------------------------------------------------------------


def _insert_after(node: LexborNode, html: str) -> None:
    fragment = LexborHTMLParser(f"<body>{html}</body>").body
    assert fragment is not None
    for child in reversed(list(fragment.iter())):
        node.insert_after(child)


def _add_to_content(tree: LexborHTMLParser, rng: random.Random, item_html: str, block_html: str) -> bool:
    """Add next to existing content: a list item to a content list, else a block after a content paragraph.
    False when there is no such place or the edit did not land (the mutation then does not apply)."""
    items = _content_items(tree)
    before = tree.body.text() if tree.body is not None else ""
    if items:  # lists are content only inside a marked-up main content; elsewhere they are mostly menus
        _insert_after(items[-1], item_html)
    else:
        paragraphs = content_nodes(tree, "p")
        if not paragraphs:
            return False
        _insert_after(paragraphs[len(paragraphs) // 2], block_html)  # the last ones are often notices
    return tree.body is not None and tree.body.text() != before


def _content_items(tree: LexborHTMLParser) -> list[LexborNode]:
    return content_nodes(tree, "li", min_len=20) if tree.css_first("main, [role=main], article") else []


def new_item(tree: LexborHTMLParser, phase: int, rng: random.Random) -> bool:
    if phase == 0:
        return bool(_content_items(tree) or content_nodes(tree, "p"))
    text = rng.choice(SENTENCES)
    return _add_to_content(tree, rng, f"<li>{text}</li>", f"<p>{text}</p>")


def _edit_text(tree: LexborHTMLParser, phase: int, rng: random.Random, edit: Callable[[str], str | None]) -> bool:
    nodes = content_nodes(tree, "p") + _content_items(tree)
    rng.shuffle(nodes)
    for node in nodes:
        text_node = _first_text_node(node)
        if text_node is None:
            continue
        new = edit(text_node.text_content or "")
        if new is None:
            continue
        if phase == 1:
            text_node.replace_with(new)
        return True
    return False


def edited_sentence(tree: LexborHTMLParser, phase: int, rng: random.Random) -> bool:
    def edit(text: str) -> str | None:
        words = text.split()
        if len(words) < 6:
            return None
        k = len(words) // 2
        return " ".join([*words[:k], "(уточнено:", rng.choice(WORDS), "і", rng.choice(WORDS) + ")", *words[k + 2:]])

    return _edit_text(tree, phase, rng, edit)


def added_sentence(tree: LexborHTMLParser, phase: int, rng: random.Random) -> bool:
    return _edit_text(tree, phase, rng, lambda text: text.rstrip() + " " + rng.choice(SENTENCES))


def one_word(tree: LexborHTMLParser, phase: int, rng: random.Random) -> bool:
    def edit(text: str) -> str | None:
        words = text.split(" ")
        candidates = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
        if not candidates:
            return None
        i = rng.choice(candidates)
        replacement = next(w for w in WORDS if w != words[i].lower())
        words[i] = replacement
        return " ".join(words)

    return _edit_text(tree, phase, rng, edit)


def one_digit(tree: LexborHTMLParser, phase: int, rng: random.Random) -> bool:
    def edit(text: str) -> str | None:
        i = _digit_outside_dates(text, rng)
        if i is None:
            return None
        return text[:i] + str((int(text[i]) + 3) % 10) + text[i + 1:]

    return _edit_text(tree, phase, rng, edit)


def new_document(tree: LexborHTMLParser, phase: int, rng: random.Random) -> bool:
    if phase == 0:
        return bool(_content_items(tree) or content_nodes(tree, "p"))
    link = f"<a href='/files/rishennia-{rng.randrange(100, 999)}.pdf'>Рішення виконкому</a>"
    return _add_to_content(tree, rng, f"<li>{link}</li>", f"<p>{link}</p>")


def table_figure(tree: LexborHTMLParser, phase: int, rng: random.Random) -> bool:
    cells = [td for td in content_nodes(tree, "td", min_len=1) if re.search(r"\d", _text(td))
             and td.parent is not None and sum(1 for c in td.parent.iter() if c.tag in ("td", "th")) >= 2]
    cells = [td for td in cells if _digit_outside_dates(_text(td)) is not None]
    td = _pick(rng, cells)
    if td is None:
        return False
    for node in td.traverse(include_text=True):
        if node.tag == "-text" and re.search(r"\d", node.text_content or "") and (
                node.parent is None or node.parent.tag not in INVISIBLE):
            text = node.text_content or ""
            spot = _digit_outside_dates(text)
            if spot is None:
                continue
            if phase == 1:
                node.replace_with(text[:spot] + str((int(text[spot]) + 1) % 10) + text[spot + 1:])
            return True
    return False


def _digit_outside_dates(text: str, rng: random.Random | None = None) -> int | None:
    protected = set()
    for m in DATE_OR_TIME.finditer(text):
        protected.update(range(m.start(), m.end()))
    spots = [i for i, ch in enumerate(text) if ch.isdigit() and i not in protected]
    if not spots:
        return None
    return rng.choice(spots) if rng else spots[0]


def removed_item(tree: LexborHTMLParser, phase: int, rng: random.Random) -> bool:
    items = _content_items(tree) or content_nodes(tree, "p")
    node = _pick(rng, items)
    if node is None:
        return False
    if phase == 1:
        node.decompose()
    return True


REAL = [new_item, edited_sentence, added_sentence, new_document, table_figure, removed_item, one_word, one_digit]

MUTATIONS = ([Mutation(m.__name__, False, m) for m in [*NOISE, all_noise]]
             + [Mutation(m.__name__, True, m) for m in REAL])


def with_noise(real: Mutation) -> Mutation:
    def both(tree: LexborHTMLParser, phase: int, rng: random.Random) -> bool:
        ok = real.apply(tree, phase, random.Random(rng.random()))
        all_noise(tree, phase, rng)
        return ok

    return Mutation(f"{real.name}+noise", True, both)


def pair(html: str, mutation: Mutation, seed: int) -> tuple[str, str] | None:
    """(before, after) for one page and one mutation, or None where it does not apply."""
    trees = []
    for phase in (0, 1):
        tree = LexborHTMLParser(html)
        if tree.body is None:
            return None
        if not mutation.apply(tree, phase, random.Random(seed)):
            return None
        trees.append(tree.html or "")
    if trees[0] == trees[1]:
        return None  # the edit found nowhere to land
    return trees[0], trees[1]
