"""Bytes -> text: the byte-order mark, the declared charset, the <meta> tag, then detection."""

from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.I)
XML_DECL = re.compile(rb"""^\s*<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_\-.]+)["']""", re.I)
BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
# Labels browsers map to other codecs (WHATWG Encoding): latin-1 is really windows-1252, etc.
ALIASES = {"iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "us-ascii": "cp1252",
           "ascii": "cp1252", "x-cp1251": "cp1251", "win-1251": "cp1251", "windows-1251": "cp1251",
           "koi8_u": "koi8-u", "koi8_r": "koi8-r", "utf8": "utf-8", "unicode": "utf-8"}


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().lower()
    label = ALIASES.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def _try(data: bytes, codec: str | None) -> str | None:
    if codec is None:
        return None
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def sniff(data: bytes, declared: str | None = None) -> str:
    """Which codec the page is in, for logs and tests."""
    return decode(data, declared)[1]


def decode(data: bytes, declared: str | None = None) -> tuple[str, str]:
    """Decode a page; returns (text, codec). Never raises: undecodable bytes are replaced."""
    for bom, codec in BOMS:
        if data.startswith(bom):
            return data[len(bom):].decode(codec, errors="replace"), codec
    head = data[:4096]
    for candidate in (_codec(declared),
                      _codec(m.group(1).decode("ascii", "replace")) if (m := XML_DECL.search(head)) else None,
                      _codec(m.group(1).decode("ascii", "replace")) if (m := META_CHARSET.search(head)) else None):
        # A declaration is trusted only if the bytes decode under it (mis-declared pages exist).
        # A single-byte codec accepts almost any bytes, so a UTF-8 page declared as windows-1251
        # would pass: prefer UTF-8 when the bytes are valid UTF-8 and contain non-ASCII.
        text = _try(data, candidate)
        if text is not None:
            if candidate != "utf-8" and not data.isascii() and (utf8 := _try(data, "utf-8")) is not None:
                return utf8, "utf-8"
            return text, candidate  # type: ignore[return-value]
    utf8 = _try(data, "utf-8")
    if utf8 is not None:
        return utf8, "utf-8"
    best = from_bytes(data[:65536], cp_isolation=["cp1251", "koi8_u", "koi8_r", "cp1252", "iso8859_2",
                                                  "cp1250", "iso8859_5", "mac_cyrillic", "cp866"]).best()
    detected = (_codec(best.encoding) if best is not None else None) or "cp1251"
    return data.decode(detected, errors="replace"), detected
