"""Content kinds: bytes of one capture -> the common Content model. The only place that parses content."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.domain import Block, Content, Kind, PageConfig, Quality
from monitor.extract.data import extract_ckan, extract_geo, extract_json, validate_jmespath
from monitor.extract.decode import decode
from monitor.extract.feed import extract_feed
from monitor.extract.files import extract_file
from monitor.extract.html import HtmlOptions, extract_html, validate_selector

__all__ = ["ExtractOptions", "extract", "options_for", "validate_jmespath", "validate_selector"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractOptions:
    content: str | None = None
    exclude: tuple[str, ...] = ()
    tz: str = "Europe/Kyiv"
    select: str | None = None
    ignore: tuple[str, ...] = ()
    expect: str | None = None


def options_for(page: PageConfig, tz: str) -> ExtractOptions:
    return ExtractOptions(content=page.content, exclude=page.exclude, tz=tz, select=page.select, ignore=page.ignore,
                          expect=page.expect)


def _availability(body: bytes, charset: str | None, expect: str | None) -> Content:
    """Up or down, and the expected marker: never a content change (the content is always the same)."""
    if expect:
        text, _codec = decode(body, charset)
        if expect.casefold() not in text.casefold():
            return Content(quality=Quality.UNREADABLE, quality_reason=f"the expected text {expect!r} is not there")
    return Content(blocks=(Block(path="availability", text="available"),), mask=False)


# the "binary data bytes" of the WHATWG MIME sniffing standard: no text, in any encoding, holds them
_BINARY = frozenset([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20)])


def looks_binary(body: bytes) -> bool:
    """Whether a body is binary (an image, a PDF, an archive) rather than text: MIME sniffing's rule."""
    head = body[:1445]
    if head.startswith((b"\xfe\xff", b"\xff\xfe", b"\xef\xbb\xbf")):  # UTF-16 and UTF-8 byte-order marks
        return False
    return not _BINARY.isdisjoint(head)


def extract(kind: Kind, body: bytes, *, url: str, charset: str | None = None, content_type: str = "",
            options: ExtractOptions | None = None) -> Content:
    """Read one capture. Never raises on bad input: an unreadable capture has quality UNREADABLE."""
    opts = options or ExtractOptions()
    if kind is Kind.HTML:
        if looks_binary(body):
            return Content(quality=Quality.UNREADABLE, quality_reason="binary data where a web page was expected "
                           f"({content_type or 'no content type'})")
        text, _codec = decode(body, charset)
        return extract_html(text, url, HtmlOptions(content=opts.content, exclude=opts.exclude, tz=opts.tz))
    if kind is Kind.FEED:
        return extract_feed(body, url, charset)
    if kind is Kind.JSON:
        return extract_json(body, select=opts.select, ignore=opts.ignore)
    if kind is Kind.CKAN:
        return extract_ckan(body, url, ignore=opts.ignore)
    if kind is Kind.GEO:
        return extract_geo(body, ignore=opts.ignore)
    if kind is Kind.FILE:
        return extract_file(body, url=url, content_type=content_type, charset=charset)
    return _availability(body, charset, opts.expect)
