"""A second mutation generator, independent of the detector's notions (issue 13).

tests/mutations.py picks its edits with the detector's own ideas (main/article containers, chrome class
words, a date pattern to keep digit edits away from). This one does not: it parses with lxml (not the
detector's Lexbor), edits visible text nodes chosen at random anywhere in the body, edits numbers and
dates inside sentences, edits sections whose ids and classes carry share/social/widget/sidebar/related/
comments words, and makes noise of recognisable volatile shapes (a clock, counters beside their word,
tokens, an "updated"/"оновлено" stamp, "5 хвилин тому"). Its only notion of chrome is what HTML itself
declares (nav, header, footer, aside and their ARIA roles): an edit of prose anywhere else is a real update.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from lxml import etree
from lxml import html as lhtml

INVISIBLE = frozenset({"script", "style", "noscript", "template", "head", "title", "select", "option", "button",
                       "textarea", "svg", "math", "iframe", "object", "canvas", "datalist"})
DECLARED_CHROME = frozenset({"nav", "header", "footer", "aside"})
DECLARED_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search"})
SECTION_WORDS = re.compile(r"share|sharing|social|widget|sidebar|related|comment", re.I)
SECTION_NAMES = ["sharing-with-a-single-developer", "widget-content", "sidebar-layout-main", "related-work",
                 "comments-policy", "social-programmes"]
WORD = re.compile(r"[^\W\d_]{5,}")
NUMBER = re.compile(r"(?<![\d.,:/-])\d{1,4}(?!\d)(?![.,:/-]\d)")
SENTENCES = ["Виконавчий комітет погодив зміни до порядку надання адміністративних послуг.",
             "Депутати міської ради підтримали звернення мешканців мікрорайону щодо освітлення вулиць.",
             "Управління освіти оголосило додатковий набір до гуртків позашкільної освіти."]
SECTIONS = frozenset({"div", "section", "article", "main", "td", "body"})
REPLACEMENTS = ["громада", "водопостачання", "капремонт", "субвенція", "опалення", "тротуар"]


@dataclass(frozen=True)
class Mutation:
    name: str
    real: bool
    apply: Callable[[lhtml.HtmlElement, int, random.Random], bool]  # (root, phase, rng) -> applicable


@dataclass(frozen=True)
class Spot:
    """A visible run of text: the element that holds it, and whether it is that element's tail."""

    element: lhtml.HtmlElement
    tail: bool

    def get(self) -> str:
        return (self.element.tail if self.tail else self.element.text) or ""

    def set(self, value: str) -> None:
        if self.tail:
            self.element.tail = value
        else:
            self.element.text = value

    @property
    def holder(self) -> lhtml.HtmlElement:
        """The element whose content the text is."""
        parent = self.element.getparent() if self.tail else self.element
        return parent if parent is not None else self.element


def _hidden(el: lhtml.HtmlElement) -> bool:
    style = (el.get("style") or "").replace(" ", "").lower()
    return (el.get("hidden") is not None or el.get("aria-hidden") == "true" or "display:none" in style
            or "visibility:hidden" in style or (el.tag == "input"))


def _tag(el: lhtml.HtmlElement) -> str:
    return el.tag.lower() if isinstance(el.tag, str) else ""


def _walk(el: lhtml.HtmlElement, chrome: bool) -> Iterator[tuple[lhtml.HtmlElement, bool]]:
    """Visible elements with whether HTML declares them chrome; invisible subtrees are skipped."""
    tag = _tag(el)
    if not tag or tag in INVISIBLE or _hidden(el):
        return
    chrome = chrome or tag in DECLARED_CHROME or (el.get("role") or "").lower() in DECLARED_ROLES
    yield el, chrome
    for child in el:
        yield from _walk(child, chrome)


def visible_spots(root: lhtml.HtmlElement, *, declared_chrome: bool = False) -> list[Spot]:
    """Every visible text run of the body, in document order (outside declared chrome unless asked)."""
    body = root.find(".//body")
    if body is None:
        return []
    out = []
    for el, chrome in _walk(body, False):
        if chrome and not declared_chrome:
            continue
        if el.text and el.text.strip():
            out.append(Spot(el, False))
        for child in el:  # a child's tail is text of el
            if _tag(child) and child.tail and child.tail.strip() and not (chrome and not declared_chrome):
                out.append(Spot(child, True))
    return out


def _prose(spot: Spot) -> bool:
    """Sentence-sized text: at least six words and forty characters, not a link's label."""
    text = spot.get()
    return len(text.strip()) >= 40 and len(text.split()) >= 6 and _tag(spot.holder) != "a"


def prose_spots(root: lhtml.HtmlElement) -> list[Spot]:
    return [s for s in visible_spots(root) if _prose(s)]


def _fragment(html: str) -> list[lhtml.HtmlElement]:
    return list(lhtml.fragments_fromstring(html))


def _append(parent: lhtml.HtmlElement, html: str) -> None:
    for el in _fragment(html):
        parent.append(el)


def _containers(root: lhtml.HtmlElement) -> list[lhtml.HtmlElement]:
    """Visible block containers outside declared chrome, where a small piece of page furniture can sit."""
    body = root.find(".//body")
    if body is None:
        return []
    return [el for el, chrome in _walk(body, False) if not chrome and _tag(el) in ("div", "section", "td", "main",
                                                                                  "article", "body", "li")]


def _pick_spot(rng: random.Random, spots: list[Spot]) -> Spot | None:
    return spots[rng.randrange(len(spots))] if spots else None


# --- real edits ----------------------------------------------------------------------------------------


def _edit_prose(root: lhtml.HtmlElement, phase: int, rng: random.Random, edit: Callable[[str], str | None],
                spots: list[Spot] | None = None) -> bool:
    candidates = prose_spots(root) if spots is None else spots
    rng.shuffle(candidates)
    for spot in candidates:
        new = edit(spot.get())
        if new is None or new == spot.get():
            continue
        if phase == 1:
            spot.set(new)
        return True
    return False


def word_anywhere(root: lhtml.HtmlElement, phase: int, rng: random.Random) -> bool:
    """One word of a random visible sentence replaced."""
    def edit(text: str) -> str | None:
        words = list(WORD.finditer(text))
        if not words:
            return None
        m = rng.choice(words)
        new = next(w for w in REPLACEMENTS if w != m.group(0).lower())
        return text[:m.start()] + new + text[m.end():]

    return _edit_prose(root, phase, rng, edit)


def sentence_anywhere(root: lhtml.HtmlElement, phase: int, rng: random.Random) -> bool:
    """A sentence added to a random visible sentence."""
    return _edit_prose(root, phase, rng, lambda text: text.rstrip() + " " + rng.choice(SENTENCES) + " ")


def number_in_sentence(root: lhtml.HtmlElement, phase: int, rng: random.Random) -> bool:
    """A number inside a sentence changed: a year moved by three (2014 -> 2017), a figure by twenty (16 -> 36)."""
    def edit(text: str) -> str | None:
        numbers = list(NUMBER.finditer(text))
        if not numbers:
            return None
        m = rng.choice(numbers)
        n = int(m.group(0))
        new = n + 3 if 1900 <= n <= 2100 else n + 20
        return text[:m.start()] + str(new) + text[m.end():]

    return _edit_prose(root, phase, rng, edit)


def deadline_in_sentence(root: lhtml.HtmlElement, phase: int, rng: random.Random) -> bool:
    """An announcement's deadline moved inside its sentence ("до 15 грудня" -> "до 20 грудня")."""
    spots = prose_spots(root)
    spot = _pick_spot(rng, spots)
    if spot is None:
        return False
    day, hour = [(15, 10), (20, 14)][phase]
    form = rng.randrange(3)
    sentence = [f"Прийом заяв на участь у конкурсі триває до {day} грудня 2026 року включно.",
                f"Засідання постійної комісії з питань бюджету відбудеться {day}.12.2026 о {hour}:00 у залі сесій.",
                f"Громадське обговорення проєкту рішення триватиме до {day} грудня, пропозиції приймає секретар ради."
                ][form]
    holder = spot.holder
    p = lhtml.Element("p")
    p.text = sentence
    parent = holder.getparent()
    if parent is None or _tag(holder) == "body":
        holder.append(p)
    else:
        holder.addnext(p)
        p.tail, holder.tail = holder.tail, None
    return True


def section_named_chrome(root: lhtml.HtmlElement, phase: int, rng: random.Random) -> bool:
    """An edit of prose inside a section whose id or class carries share/social/widget/sidebar/related/comments
    (documentation and article pages name sections so); where the page has none, the section around a random
    sentence is given such a name (in both versions) and the sentence is edited."""
    spots = prose_spots(root)
    named = []
    for s in spots:
        el: lhtml.HtmlElement | None = s.holder
        while el is not None:
            if SECTION_WORDS.search(f"{el.get('id') or ''} {el.get('class') or ''}"):
                named.append(s)
                break
            el = el.getparent()
    if not named:
        spot = _pick_spot(rng, spots)
        if spot is None:
            return False
        section = spot.holder
        while _tag(section) not in SECTIONS and section.getparent() is not None:
            section = section.getparent()
        name = rng.choice(SECTION_NAMES)
        if rng.random() < 0.5:
            section.set("id", name)
        else:
            section.set("class", f"{section.get('class') or ''} {name}".strip())
        named = [spot]
    return _edit_prose(root, phase, rng, lambda text: text.rstrip() + " " + rng.choice(SENTENCES) + " ", named)


def removed_sentence(root: lhtml.HtmlElement, phase: int, rng: random.Random) -> bool:
    """A random visible sentence's text removed."""
    spot = _pick_spot(rng, prose_spots(root))
    if spot is None:
        return False
    if phase == 1:
        spot.set(" ")
    return True


REAL = [word_anywhere, sentence_anywhere, number_in_sentence, deadline_in_sentence, section_named_chrome,
        removed_sentence]


# --- noise ------------------------------------------------------------------------------------------------


def _somewhere(root: lhtml.HtmlElement, rng: random.Random, html: str) -> bool:
    places = _containers(root)
    if not places:
        return False
    _append(places[rng.randrange(len(places))], html)
    return True


def clock(root: lhtml.HtmlElement, phase: int, rng: random.Random) -> bool:
    t = ["09:41", "09:47"][phase]
    return _somewhere(root, rng, f"<div><span>{t}</span></div>")


def counter(root: lhtml.HtmlElement, phase: int, rng: random.Random) -> bool:
    n = [1873, 1902][phase]
    word = rng.choice([f"Переглядів: {n}", f"{n} переглядів", f"Views: {n}", f"Відвідувачів сьогодні: {n // 10}"])
    return _somewhere(root, rng, f"<div><small>{word}</small></div>")


def token(root: lhtml.HtmlElement, phase: int, rng: random.Random) -> bool:
    value = ["5f0b6c1e9d2a47c3b8e1f4a7d6c2b9e0", "c2e9a41f7b3d58e6a0f9c1d4b7e2a853"][phase]
    ok = _somewhere(root, rng, f"<form method='post' action='/subscribe'><input type='hidden' name='csrf' "
                               f"value='{value}'></form>")
    for i, el in enumerate(root.iter("a")):
        if i % 5 == 0 and el.get("href") and not el.get("href", "").startswith(("#", "mailto", "javascript")):
            el.set("data-track", value[: 8 + i % 8])
    return ok


def stamp(root: lhtml.HtmlElement, phase: int, rng: random.Random) -> bool:
    text = rng.choice(["Оновлено: {}", "Дата оновлення: {}", "Last updated: {}"])
    return _somewhere(root, rng, f"<p>{text.format(['27.11.2026 08:05', '01.12.2026 17:20'][phase])}</p>")


def ago(root: lhtml.HtmlElement, phase: int, rng: random.Random) -> bool:
    return _somewhere(root, rng, f"<div><span>{['5 хвилин тому', '2 години тому'][phase]}</span></div>")


NOISE = [clock, counter, token, stamp, ago]


def all_noise(root: lhtml.HtmlElement, phase: int, rng: random.Random) -> bool:
    return all([m(root, phase, random.Random(rng.random())) for m in NOISE])


MUTATIONS = ([Mutation(m.__name__, False, m) for m in [*NOISE, all_noise]]
             + [Mutation(m.__name__, True, m) for m in REAL])


def with_noise(real: Mutation) -> Mutation:
    def both(root: lhtml.HtmlElement, phase: int, rng: random.Random) -> bool:
        ok = real.apply(root, phase, random.Random(rng.random()))
        all_noise(root, phase, random.Random(rng.random()))
        return ok

    return Mutation(f"{real.name}+noise", True, both)


ALL = [*MUTATIONS, *(with_noise(m) for m in MUTATIONS if m.real)]


def pair(html: str, mutation: Mutation, seed: int) -> tuple[str, str] | None:
    """(before, after) for one page and one mutation, or None where it does not apply. Both are parsed and
    serialised by lxml from the same original, with the same random choices."""
    out = []
    for phase in (0, 1):
        try:
            root = lhtml.document_fromstring(html)
        except (etree.ParserError, ValueError):
            return None
        if not mutation.apply(root, phase, random.Random(f"{seed}:{mutation.name}")):
            return None
        out.append(lhtml.tostring(root, encoding="unicode"))
    if out[0] == out[1]:
        return None
    return out[0], out[1]
