"""Content -> layered fingerprints (pure): raw bytes, visible text, main text, dated, masked, links, documents."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from monitor.domain import Content, Fingerprints, Region
from monitor.mask import DATE, DATE_WORDS, TIME, mask_dates, mask_volatile

VOLATILE = "⟨volatile⟩"
_NUMBER = re.compile(r"\d[\d\s,.]*\d|\d")
_DATE_OR_TIME = re.compile(f"(?:{DATE.pattern})|(?:{TIME.pattern})|(?:{DATE_WORDS.pattern})")


def digest(parts: Iterable[str]) -> str:
    """SHA-256 of the parts, each followed by a record separator (one encode: a page has hundreds of parts)."""
    text = "".join(f"{part}\x1e" for part in parts)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _mask_numbers_keep_dates(text: str) -> str:
    """In a block whose numbers change by themselves: mask numbers, except inside dates and times."""
    out, last = [], 0
    for m in _DATE_OR_TIME.finditer(text):
        out.append(_NUMBER.sub("⟨n⟩", text[last:m.start()]))
        out.append(m.group(0))
        last = m.end()
    out.append(_NUMBER.sub("⟨n⟩", text[last:]))
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Layers:
    """The main content as three parallel lists of block texts."""

    main: tuple[str, ...]  # normalised text of every main block
    dated: tuple[str, ...]  # volatile tokens masked, dates kept (a run of volatile blocks is one entry)
    masked: tuple[str, ...]  # dates masked too


def layers(content: Content, noise_paths: frozenset[str] = frozenset()) -> Layers:
    main: list[str] = []
    dated: list[str] = []
    cells: list[bool] = []
    for b in content.blocks:
        if b.region is not Region.MAIN:
            continue
        if b.volatile == "all" or b.path in noise_paths:
            text = VOLATILE
        elif not content.mask:
            text = b.text  # data values are compared exactly
        elif b.volatile == "numbers":
            text = mask_volatile(_mask_numbers_keep_dates(b.text))
        else:
            text = mask_volatile(b.text)
        main.append(b.text)
        if not (text == VOLATILE and dated and dated[-1] == VOLATILE):  # a carousel's slides count as one
            dated.append(text)
            cells.append(_is_cell(b.path))
    masked = (tuple(_stamp_masked(t, cell=c) for t, c in zip(dated, cells, strict=True)) if content.mask
              else tuple(dated))
    return Layers(main=tuple(main), dated=tuple(dated), masked=masked)


def _is_cell(path: str) -> bool:
    """Whether a block is a table cell (its path ends in td or th): a date there is data, not a clock."""
    step = path[path.rfind("/") + 1:]
    return step[:2] in ("td", "th") and (len(step) == 2 or step[2] in ".#")


_PLACEHOLDER = re.compile(r"⟨\w+⟩")
_WORD = re.compile(r"[^\W\d_]{2,}")
STAMP_WORDS = 3  # a block of dates and times with at most this many other words is a stamp (or a clock)
STAMP_MAX_CHARS = 200
STAMP_BLOCK_WORDS = 12  # a short line that names itself a stamp ("Опубліковано ... | Автор ...") is one too
FIELDS = " | "  # how the feed and data readers join the fields of one record into a block
STAMP_WITNESSES = re.compile(r"оновл|опубл|змін|створ|дата|станом на|обновл|опублик|изменен|updated|published|"
                             r"posted|modified|last|as of|date|aktualisiert|veröffentlicht|stand", re.I)


def _stamp_masked(text: str, *, cell: bool = False) -> str:
    """Dates and times masked where the block is a stamp: a short line of dates and times with hardly a word
    beside them ("30.11.2026, 14:35": a clock, today's date), or one that says what it stamps ("Оновлено:
    30.11.2026"). A date inside a sentence ("приймаються до 15 грудня") is the sentence's content, and so is a
    bare date in a table cell (a meeting moved in a schedule): they stay."""
    if FIELDS in text:  # a record of fields (a feed item: title | date | summary): each field on its own
        return FIELDS.join(_stamp_masked(field, cell=cell) for field in text.split(FIELDS))
    if len(text) > STAMP_MAX_CHARS:  # a stamp is a short line: longer text is not masked at all (and not read)
        return text
    masked = mask_dates(text)
    if masked is text or masked == text:
        return text
    rest = _PLACEHOLDER.sub(" ", masked)
    words = len(_WORD.findall(rest))
    if (words <= STAMP_WORDS and not cell) or (words <= STAMP_BLOCK_WORDS and STAMP_WITNESSES.search(rest)):
        return masked
    return text


def fingerprints(content: Content, raw: bytes, noise_paths: frozenset[str] = frozenset(),
                 lay: Layers | None = None) -> Fingerprints:
    lay = lay or layers(content, noise_paths)
    return Fingerprints(
        raw=hashlib.sha256(raw).hexdigest(),
        text=digest([content.title, content.visible_text, *(b.text for b in content.blocks)]),
        main=digest(lay.main),
        main_dated=digest(lay.dated),
        main_masked=digest(lay.masked),
        links=digest(sorted(link.url for link in content.links)),
        documents=digest(sorted(d.url for d in content.documents)),
    )


def version_key(fp: Fingerprints) -> str:
    return digest(fp.version_key)
