"""HTML pages -> Content: the only module that parses HTML (selectolax's Lexbor engine).

Drops what is not content, finds the main content (a configured selector; else main/role=main;
else the articles; else the densest block of text), keeps the page chrome (header, navigation,
footer, asides) apart, and produces ordered text blocks with their structural path, the canonical
links and the linked documents of the main content.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from monitor.domain import Block, Content, Link, Quality, Region
from monitor.extract.normalize import normalise

NON_CONTENT = ["script", "style", "noscript", "template", "svg", "iframe", "object", "embed", "canvas", "math",
               "select", "button", "input", "textarea", "link", "meta", "frameset", "frame"]
BLOCK_TAGS = frozenset("""address article aside blockquote body caption center dd details dialog div dl dt fieldset
figcaption figure footer form h1 h2 h3 h4 h5 h6 header hgroup hr li main menu nav ol p pre section summary table
tbody td tfoot th thead tr ul option legend""".split())
_CHROME_TOKENS = ("menu main-menu top-menu mainmenu navbar nav navigation sidebar side-bar breadcrumb breadcrumbs "
                  "cookie cookies cookie-banner cookie-notice footer header site-header site-footer topbar top-bar "
                  "social social-links share sharing social-share accessibility a11y skip-link lang-switcher "
                  "language-switcher widget-area").split()
# strong: chrome even inside the main content; weak: chrome only outside it (an article's own header is content)
CHROME_STRONG = ", ".join(
    ["nav", "aside", "[role=navigation]", "[role=complementary]", "[role=search]"]
    + [f"[class~={t}]" for t in _CHROME_TOKENS] + [f"[id={t}]" for t in _CHROME_TOKENS])
CHROME_WEAK = "header, footer, [role=banner], [role=contentinfo]"
# Markup that changes by itself: the numbers in it (a view counter next to an eye icon), or all of it.
VOLATILE_NUMBERS = ", ".join(
    [".fa-eye", ".icon-eye", "[class*=eye-icon]"]
    + [f"[class*={w}]" for w in ("view-count", "views-count", "viewcount", "post-views", "pageviews", "counter",
                                  "hits", "views")]
    + [f"[id*={w}]" for w in ("counter", "views", "hits")])
VOLATILE_ALL = ", ".join(
    [f"[class*={w}]" for w in ("clock", "weather", "currency", "exchange-rate", "carousel", "slider", "ticker",
                               "marquee", "countdown", "banner", "poll", "random", "rotator")]
    + [f"[id*={w}]" for w in ("clock", "weather", "currency", "carousel", "slider", "banner", "poll")])
DOC_EXTENSIONS = frozenset("pdf doc docx xls xlsx xlsm odt ods odp ppt pptx rtf zip rar 7z csv txt xml json "
                           "geojson kml kmz shp djvu tif tiff".split())
SESSION_PARAMS = re.compile(r"^(?:utm_\w+|fbclid|gclid|yclid|dclid|msclkid|_ga|_gl|mc_cid|mc_eid|phpsessid|jsessionid|"
                            r"sid|sessionid|session_id|aspsessionid\w*|cfid|cftoken|_|cb|cachebuster|cache_buster|"
                            r"nocache|rnd|rand|random|timestamp|_dc|_t)$", re.I)
BUSTER_PARAMS = re.compile(r"^(?:v|ver|version|t|ts|time|r)$", re.I)
BUSTER_VALUE = re.compile(r"^(?:\d{6,}|[0-9a-f]{8,}|[A-Za-z0-9_-]{20,})$")
PATH_SESSION = re.compile(r";(?:jsessionid|phpsessid|sid)=[^/?#]*", re.I)
DECLARED = re.compile(r"(?:оновлено|оновлення|змінено|updated|last modified|обновлено|изменено|дата зміни)\s*:?\s*"
                      r"(\d{1,2})[./](\d{1,2})[./](\d{4})(?:\D{1,4}(\d{1,2})[:.](\d{2}))?", re.I)


@dataclass(frozen=True, slots=True, kw_only=True)
class HtmlOptions:
    content: str | None = None  # CSS selector of the main content
    exclude: tuple[str, ...] = ()
    tz: str = "Europe/Kyiv"


def validate_selector(selector: str) -> str | None:
    """None if the CSS selector is usable, else the parser's complaint."""
    try:
        LexborHTMLParser("<p></p>").css(selector)
    except (SelectolaxError, ValueError, TypeError) as exc:
        return str(exc) or "invalid selector"
    return None


def canonical_url(href: str, base: str) -> str | None:
    """Absolute URL without fragment, session ids or cache-busters; None for non-navigational links."""
    href = href.strip()
    if not href or href.startswith(("#", "javascript:", "data:", "about:")):
        return None
    try:
        parts = urlsplit(urljoin(base, href))
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme in ("mailto", "tel"):
        return f"{scheme}:{parts.path.strip().lower()}"
    if scheme not in ("http", "https"):
        return None
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        return None
    netloc = host if port in (None, 80, 443) else f"{host}:{port}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not SESSION_PARAMS.match(k) and not (BUSTER_PARAMS.match(k) and BUSTER_VALUE.match(v))]
    path = PATH_SESSION.sub("", parts.path) or "/"
    return urlunsplit((scheme, netloc, path, urlencode(sorted(query)), ""))


def document_extension(url: str) -> str | None:
    path = urlsplit(url).path.lower()
    ext = path.rsplit(".", 1)[-1] if "." in path.rsplit("/", 1)[-1] else ""
    return ext if ext in DOC_EXTENSIONS else None


class _Frame:
    __slots__ = ("block", "counts", "in_chrome", "in_main", "is_block", "is_link", "path", "volatile")

    def __init__(self, path: str, block: str, in_main: bool, in_chrome: bool, volatile: str,
                 is_block: bool, is_link: bool) -> None:
        self.path = path
        self.block = block
        self.in_main = in_main
        self.in_chrome = in_chrome
        self.volatile = volatile
        self.is_block = is_block
        self.is_link = is_link
        self.counts: dict[str, int] | None = None


@dataclass(slots=True)
class _RawBlock:
    path: str
    text: str
    in_main: bool
    in_chrome: bool
    volatile: str


def _ids(tree: LexborHTMLParser | LexborNode, selector: str) -> set[int]:
    return {n.mem_id for n in tree.css(selector)}


def _ancestors(node: LexborNode) -> list[int]:
    chain = []
    current: LexborNode | None = node
    while current is not None:
        chain.append(current.mem_id)
        current = current.parent
    return chain[::-1]


def _main_ids(tree: LexborHTMLParser, selector: str | None) -> tuple[set[int], bool]:
    """mem_ids of the main-content containers, and whether a configured selector matched nothing."""
    if selector:
        nodes = tree.css(selector)
        return {n.mem_id for n in nodes}, not nodes
    nodes = tree.css("main, [role=main]")
    if nodes:
        return {n.mem_id for n in nodes}, False
    articles = tree.css("article")
    if len(articles) == 1:
        return {articles[0].mem_id}, False
    if len(articles) > 1:  # a listing: the articles' nearest common container
        chains = [_ancestors(a) for a in articles]
        common = None
        for level in zip(*chains, strict=False):
            if all(x == level[0] for x in level):
                common = level[0]
            else:
                break
        if common is not None:
            return {common}, False
    return set(), False


def _walk(body: LexborNode, main_ids: set[int], strong: set[int], weak: set[int], numbers: set[int],
          everything: set[int]) -> tuple[list[_RawBlock], list[tuple[str, str, bool, bool]]]:
    """One pass over the body: text blocks with paths and flags, and every link with its text."""
    blocks: list[_RawBlock] = []
    links: list[tuple[str, str, bool, bool]] = []  # href, text, in_main, in_chrome
    buffer: list[str] = []
    captures: list[list[str]] = []
    root = _Frame("body", "body", body.mem_id in main_ids, False, "", True, False)
    state = [root]  # the frame whose block is collecting text

    def flush(frame: _Frame) -> None:
        if buffer:
            text = normalise("".join(buffer))
            buffer.clear()
            if text:
                blocks.append(_RawBlock(frame.block, text, frame.in_main, frame.in_chrome, frame.volatile))

    stack: list[tuple[LexborNode | None, _Frame, LexborNode | None]] = [(body.child, root, None)]
    while stack:
        node, frame, owner = stack[-1]
        if node is None:
            stack.pop()
            if frame.is_block:
                flush(frame)
            if frame.is_link and captures:
                parts = captures.pop()
                href = owner.attributes.get("href") if owner is not None else None
                if href:
                    links.append((href, normalise("".join(parts)), frame.in_main, frame.in_chrome))
            continue
        stack[-1] = (node.next, frame, owner)
        tag = node.tag
        if tag == "-text":
            text = node.text_content
            if text and not text.isspace():
                buffer.append(text)
                for c in captures:
                    c.append(text)
            continue
        if tag is None or tag.startswith("-"):
            continue
        if tag == "br" or tag == "hr":
            flush(frame if frame.is_block else _current_block(stack))
            continue
        counts = frame.counts
        if counts is None:
            counts = frame.counts = {}
        n = counts.get(tag, 0) + 1
        counts[tag] = n
        path = f"{frame.path}/{tag}[{n}]"
        mid = node.mem_id
        in_main = frame.in_main or mid in main_ids
        in_chrome = frame.in_chrome
        if mid in main_ids:
            in_chrome = False
        elif mid in strong or (mid in weak and not in_main):
            in_chrome = True
        is_block = tag in BLOCK_TAGS
        vol = "all" if (frame.volatile == "all" or mid in everything) else frame.volatile
        if mid in numbers:
            vol = vol or "numbers"
            if not is_block:  # an eye icon or a counter span: the numbers of the enclosing block change
                enclosing = _current_block(stack)
                enclosing.volatile = enclosing.volatile or "numbers"
        if is_block:
            flush(_current_block(stack))
        is_link = tag == "a"
        if is_link:
            captures.append([])
        child = _Frame(path, path if is_block else frame.block, in_main, in_chrome, vol, is_block, is_link)
        stack.append((node.child, child, node))
    flush(root)
    return blocks, links


def _current_block(stack: list[tuple[LexborNode | None, _Frame, LexborNode | None]]) -> _Frame:
    for _node, frame, _owner in reversed(stack):
        if frame.is_block:
            return frame
    return stack[0][1]


def _densest(blocks: list[_RawBlock]) -> str | None:
    """The container with the most paragraph text (Readability's scoring, simplified)."""
    scores: dict[str, float] = {}
    for b in blocks:
        if b.in_chrome or len(b.text) < 25:
            continue
        parent = b.path.rsplit("/", 1)[0]
        scores[parent] = scores.get(parent, 0.0) + len(b.text)
        grand = parent.rsplit("/", 1)[0]
        if grand != parent:
            scores[grand] = scores.get(grand, 0.0) + len(b.text) / 2
    if not scores:
        return None
    return max(scores.items(), key=lambda kv: (kv[1], -len(kv[0])))[0]


def _declared(tree: LexborHTMLParser, blocks: Iterable[Block], tz: str) -> datetime | None:
    zone = ZoneInfo(tz)
    for sel in ('meta[property="article:modified_time"]', 'meta[itemprop=dateModified]',
                'meta[name=last-modified]', 'meta[http-equiv=last-modified]'):
        node = tree.css_first(sel)
        if node is not None:
            value = (node.attributes.get("content") or "").strip()
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)
    for b in blocks:
        m = DECLARED.search(b.text)
        if m:
            d, mo, y, hh, mm = m.groups()
            try:
                return datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0), tzinfo=zone)
            except ValueError:
                continue
    return None


def extract_html(html: str, url: str, options: HtmlOptions | None = None) -> Content:
    """Parse one HTML page into the common content model. Never raises on bad markup."""
    opts = options or HtmlOptions()
    tree = LexborHTMLParser(html)
    title_node = tree.css_first("title")
    title = normalise(title_node.text(deep=True)) if title_node is not None else ""
    base_node = tree.css_first("base[href]")
    base = urljoin(url, base_node.attributes.get("href") or "") if base_node is not None else url
    declared_meta = _declared(tree, (), opts.tz)
    tree.strip_tags(NON_CONTENT)
    for node in tree.css("[hidden], [aria-hidden=true]"):
        node.decompose()
    for selector in opts.exclude:
        for node in tree.css(selector):
            node.decompose()
    body = tree.body
    if body is None:
        return Content(title=title, quality=Quality.EMPTY, quality_reason="no body")
    main_ids, selector_missed = _main_ids(tree, opts.content)
    raw_blocks, raw_links = _walk(body, main_ids, _ids(tree, CHROME_STRONG), _ids(tree, CHROME_WEAK),
                                  _ids(tree, VOLATILE_NUMBERS), _ids(tree, VOLATILE_ALL))
    if main_ids:
        is_main = [b.in_main and not b.in_chrome for b in raw_blocks]
        main_text = sum(len(b.text) for b, m in zip(raw_blocks, is_main, strict=True) if m)
        if main_text == 0 and not opts.content:  # an empty <main>: fall back to the densest block
            main_ids = set()
    if not main_ids:
        top = _densest(raw_blocks)
        if top is None:
            is_main = [not b.in_chrome for b in raw_blocks]
        else:
            prefix = top + "/"
            is_main = [(b.path == top or b.path.startswith(prefix)) and not b.in_chrome for b in raw_blocks]
    blocks = tuple(Block(path=b.path, text=b.text, region=Region.MAIN if m else Region.CHROME, volatile=b.volatile)
                   for b, m in zip(raw_blocks, is_main, strict=True))
    links: dict[str, Link] = {}
    documents: dict[str, Link] = {}
    for href, text, in_main, in_chrome in raw_links:
        canonical = canonical_url(href, base)
        if canonical is None:
            continue
        main_link = (in_main and not in_chrome) if main_ids else not in_chrome
        if not main_link:
            continue
        links.setdefault(canonical, Link(url=canonical, text=text))
        if document_extension(canonical):
            documents.setdefault(canonical, Link(url=canonical, text=text))
    quality, reason = Quality.OK, ""
    if selector_missed:
        quality, reason = Quality.UNREADABLE, f"content selector {opts.content!r} matched nothing"
    return Content(title=title, blocks=blocks, links=tuple(sorted(links.values(), key=lambda x: x.url)),
                   documents=tuple(sorted(documents.values(), key=lambda x: x.url)),
                   declared_at=declared_meta or _declared(tree, (b for b in blocks if b.region is Region.MAIN),
                                                          opts.tz),
                   quality=quality, quality_reason=reason)
