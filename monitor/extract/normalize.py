"""Text normalisation: NFC, whitespace, zero-width characters, apostrophes, quotes and dashes."""

from __future__ import annotations

import re
import unicodedata

# Ukrainian text stores the apostrophe in several forms: ' ’ ʼ ` ′ ‘. All become U+02BC (ʼ).
_TABLE = str.maketrans({
    "'": "ʼ", "’": "ʼ", "‘": "ʼ", "`": "ʼ", "′": "ʼ", "ʹ": "ʼ",
    "“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "‟": '"', "″": '"',
    "–": "-", "—": "-", "‒": "-", "−": "-", "‑": "-", "―": "-",
    "\u00a0": " ", "\u2007": " ", "\u202f": " ", "\u2009": " ", "\u200a": " ", "\u3000": " ",
    "\u200b": None, "\u200c": None, "\u200d": None, "\u2060": None, "\ufeff": None, "\u00ad": None,
    "\u200e": None, "\u200f": None,
})
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Canonical form of a text block: the same words always give the same string."""
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    return _SPACE.sub(" ", text.translate(_TABLE)).strip()
