"""Text normalisation: NFC, whitespace, zero-width characters, apostrophes, quotes and dashes."""

from __future__ import annotations

import re
import unicodedata

# Ukrainian text stores the apostrophe in several forms: ' ’ ʼ ` ′ ‘. All become U+02BC (ʼ).
_MAP = {
    "'": "ʼ", "’": "ʼ", "‘": "ʼ", "`": "ʼ", "′": "ʼ", "ʹ": "ʼ",
    "“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "‟": '"', "″": '"',
    "–": "-", "—": "-", "‒": "-", "−": "-", "‑": "-", "―": "-",
    "\u200b": "", "\u200c": "", "\u200d": "", "\u2060": "", "\ufeff": "", "\u00ad": "", "\u200e": "", "\u200f": "",
}
_SPECIAL = re.compile("[" + "".join(re.escape(c) for c in _MAP) + "]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # never shown; a terminal escape must not pass


def _replace(m: re.Match[str]) -> str:
    return _MAP[m.group()]


def normalise(text: str) -> str:
    """Canonical form of a text block: the same words always give the same string."""
    if not text.isascii() and not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    text = _SPECIAL.sub(_replace, text)
    if not text.isprintable():
        text = _CONTROL.sub("", text)
    return " ".join(text.split())  # every Unicode space (NBSP, thin space...) collapses to one
