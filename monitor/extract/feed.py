"""RSS 2.0, RSS 1.0 (RDF), Atom and sitemaps -> Content: one block per entry. XML is parsed safely
(defusedxml: no entity expansion, no external entities, no DTD retrieval)."""

from __future__ import annotations

import gzip
import re
from datetime import datetime
from email.utils import parsedate_to_datetime
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from monitor.domain import Block, Content, Link, Quality, Region
from monitor.extract.decode import decode
from monitor.extract.html import canonical_url, document_extension
from monitor.extract.normalize import normalise

MAX_ENTRIES = 5000


def _local(tag: object) -> str:
    return str(tag).rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def _child(el: Element, *names: str) -> Element | None:
    for child in el:
        if _local(child.tag) in names:
            return child
    return None


def _text(el: Element | None) -> str:
    return normalise("".join(el.itertext())) if el is not None else ""


def parse_date(value: str) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)  # RFC 822 (RSS)
    except (TypeError, ValueError, IndexError):
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))  # RFC 3339 (Atom, sitemaps)
    except ValueError:
        return None


def _root(body: bytes, charset: str | None) -> Element:
    if body[:2] == b"\x1f\x8b":  # a gzipped sitemap served as-is
        body = gzip.decompress(body)[: 50 * 1024 * 1024]
    stripped = body.lstrip()  # a newline before <?xml is common and strict parsers refuse it
    try:
        return fromstring(stripped, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except ParseError:
        # undeclared or mis-declared encodings: decode as a page would, then parse the text
        text, _codec = decode(stripped, charset)
        text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text)
        return fromstring(text, forbid_dtd=False, forbid_entities=True, forbid_external=True)


def extract_feed(body: bytes, url: str, charset: str | None = None) -> Content:
    try:
        root = _root(body, charset)
    except (ParseError, DefusedXmlException, OSError, EOFError, ValueError) as exc:
        return Content(quality=Quality.UNREADABLE, quality_reason=f"not a readable feed or sitemap: {exc}")
    kind = _local(root.tag)
    blocks: list[Block] = []
    links: dict[str, Link] = {}
    documents: dict[str, Link] = {}
    dates: list[datetime] = []
    title = ""
    if kind in ("rss", "rdf"):
        channel = _child(root, "channel")
        title = _text(_child(channel, "title")) if channel is not None else ""
        entries = [e for e in root.iter() if _local(e.tag) == "item"]  # RSS 1.0 keeps items beside the channel
        for item in entries[:MAX_ENTRIES]:
            link = _text(_child(item, "link"))
            key = _text(_child(item, "guid")) or link or _text(_child(item, "title"))
            date = parse_date(_text(_child(item, "pubdate", "date", "updated")))
            _entry(blocks, links, documents, dates, url, key, _text(_child(item, "title")), date,
                   _text(_child(item, "description", "summary"))[:500], link,
                   [e.get("url", "") for e in item if _local(e.tag) == "enclosure"])
    elif kind == "feed":  # Atom
        title = _text(_child(root, "title"))
        for entry in [e for e in root if _local(e.tag) == "entry"][:MAX_ENTRIES]:
            link_el = next((e for e in entry if _local(e.tag) == "link" and e.get("rel", "alternate") == "alternate"),
                           None)
            link = link_el.get("href", "") if link_el is not None else ""
            key = _text(_child(entry, "id")) or link
            date = parse_date(_text(_child(entry, "updated", "published")))
            enclosures = [e.get("href", "") for e in entry if _local(e.tag) == "link" and e.get("rel") == "enclosure"]
            _entry(blocks, links, documents, dates, url, key, _text(_child(entry, "title")), date,
                   _text(_child(entry, "summary"))[:500], link, enclosures)
    elif kind in ("urlset", "sitemapindex"):
        for entry in [e for e in root if _local(e.tag) in ("url", "sitemap")][:MAX_ENTRIES]:
            loc = _text(_child(entry, "loc"))
            date = parse_date(_text(_child(entry, "lastmod")))
            _entry(blocks, links, documents, dates, url, loc, "", date, "", loc, [])
    else:
        return Content(quality=Quality.UNREADABLE, quality_reason=f"XML, but not RSS, Atom or a sitemap (<{kind}>)")
    return Content(title=title, blocks=tuple(blocks), visible_text=title,
                   links=tuple(sorted(links.values(), key=lambda x: x.url)),
                   documents=tuple(sorted(documents.values(), key=lambda x: x.url)),
                   declared_at=max(dates) if dates else None)


def _entry(blocks: list[Block], links: dict[str, Link], documents: dict[str, Link], dates: list[datetime],
           base: str, key: str, title: str, date: datetime | None, summary: str, link: str,
           enclosures: list[str]) -> None:
    """One entry = one block, keyed by its id: an added, removed or edited entry is a change of that block."""
    stamp = date.isoformat() if date else ""
    text = " | ".join(x for x in (title, stamp, summary) if x) or key
    blocks.append(Block(path=f"entry/{key[:200]}", text=text, region=Region.MAIN))
    if date is not None and date.tzinfo is not None:
        dates.append(date)
    for href in [link, *enclosures]:
        canonical = canonical_url(href, base) if href else None
        if canonical:
            links.setdefault(canonical, Link(url=canonical, text=title))
            if document_extension(canonical):
                documents.setdefault(canonical, Link(url=canonical, text=title))
