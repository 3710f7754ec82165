"""Content kinds: bytes of one capture -> the common Content model. The only place that parses content."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.domain import Content, Kind, PageConfig, Quality
from monitor.extract.decode import decode
from monitor.extract.html import HtmlOptions, extract_html, validate_selector

__all__ = ["ExtractOptions", "extract", "options_for", "validate_selector"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractOptions:
    content: str | None = None
    exclude: tuple[str, ...] = ()
    tz: str = "Europe/Kyiv"


def options_for(page: PageConfig, tz: str) -> ExtractOptions:
    return ExtractOptions(content=page.content, exclude=page.exclude, tz=tz)


def extract(kind: Kind, body: bytes, *, url: str, charset: str | None = None, content_type: str = "",
            options: ExtractOptions | None = None) -> Content:
    """Read one capture. Never raises on bad input: an unreadable capture has quality UNREADABLE."""
    opts = options or ExtractOptions()
    if kind is Kind.HTML:
        text, _codec = decode(body, charset)
        return extract_html(text, url, HtmlOptions(content=opts.content, exclude=opts.exclude, tz=opts.tz))
    return Content(quality=Quality.UNREADABLE, quality_reason=f"no extractor for kind {kind.value!r}")
