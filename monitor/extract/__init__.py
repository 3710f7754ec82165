"""Content formats: bytes of one capture -> the common Content model. The only place that parses content.

Every reader has the same signature (`Reader`), so that the kinds registry (monitor.kinds) can pair each
kind with its reader; which reader a page uses is decided there, not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from monitor.domain import Block, Content, Quality
from monitor.extract.data import extract_ckan, extract_geo, extract_json, validate_jmespath
from monitor.extract.decode import decode
from monitor.extract.feed import extract_feed
from monitor.extract.files import extract_file
from monitor.extract.html import HtmlOptions, extract_html, validate_selector

__all__ = ["ExtractOptions", "Reader", "looks_binary", "read_availability", "read_ckan", "read_feed", "read_file",
           "read_geo", "read_html", "read_json", "validate_jmespath", "validate_selector"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractOptions:
    content: str | None = None
    exclude: tuple[str, ...] = ()
    tz: str = "Europe/Kyiv"
    select: str | None = None
    ignore: tuple[str, ...] = ()
    expect: str | None = None


class Reader(Protocol):
    """Reads one capture. Never raises on bad input: an unreadable capture has quality UNREADABLE."""

    def __call__(self, body: bytes, *, url: str, charset: str | None, content_type: str,
                 options: ExtractOptions) -> Content: ...


# the "binary data bytes" of the WHATWG MIME sniffing standard: no text, in any encoding, holds them
_BINARY = frozenset([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20)])


def looks_binary(body: bytes) -> bool:
    """Whether a body is binary (an image, a PDF, an archive) rather than text: MIME sniffing's rule."""
    head = body[:1445]
    if head.startswith((b"\xfe\xff", b"\xff\xfe", b"\xef\xbb\xbf")):  # UTF-16 and UTF-8 byte-order marks
        return False
    return not _BINARY.isdisjoint(head)


def read_html(body: bytes, *, url: str, charset: str | None, content_type: str, options: ExtractOptions) -> Content:
    if looks_binary(body):
        return Content(quality=Quality.UNREADABLE, quality_reason="binary data where a web page was expected "
                       f"({content_type or 'no content type'})")
    text, _codec = decode(body, charset)
    return extract_html(text, url, HtmlOptions(content=options.content, exclude=options.exclude, tz=options.tz))


def read_feed(body: bytes, *, url: str, charset: str | None, content_type: str, options: ExtractOptions) -> Content:
    return extract_feed(body, url, charset)


def read_json(body: bytes, *, url: str, charset: str | None, content_type: str, options: ExtractOptions) -> Content:
    return extract_json(body, select=options.select, ignore=options.ignore)


def read_ckan(body: bytes, *, url: str, charset: str | None, content_type: str, options: ExtractOptions) -> Content:
    return extract_ckan(body, url, ignore=options.ignore)


def read_geo(body: bytes, *, url: str, charset: str | None, content_type: str, options: ExtractOptions) -> Content:
    return extract_geo(body, ignore=options.ignore)


def read_file(body: bytes, *, url: str, charset: str | None, content_type: str, options: ExtractOptions) -> Content:
    return extract_file(body, url=url, content_type=content_type, charset=charset)


def read_availability(body: bytes, *, url: str, charset: str | None, content_type: str,
                      options: ExtractOptions) -> Content:
    """Up or down, and the expected marker: never a content change (the content is always the same)."""
    if options.expect:
        text, _codec = decode(body, charset)
        if options.expect.casefold() not in text.casefold():
            return Content(quality=Quality.UNREADABLE,
                           quality_reason=f"the expected text {options.expect!r} is not there")
    return Content(blocks=(Block(path="availability", text="available"),))
