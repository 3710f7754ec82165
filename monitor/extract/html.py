"""HTML pages -> Content: the only module that parses HTML (selectolax's Lexbor engine).

Drops what is not content, finds the main content (a configured selector; else main/role=main;
else the articles; else the densest block of text), keeps the page chrome (header, navigation,
footer, asides) apart, and produces ordered text blocks of the whole body with their structural path,
the canonical links and the linked documents of the main content. Every visible text run lands in a
block. Class and id words ("sidebar", "share") are only a prior: prose-sized text is content wherever
it sits, unless HTML itself declares its place chrome (nav, aside, header/footer outside the main).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from monitor.domain import Block, Content, Link, Quality, Region
from monitor.extract.normalize import normalise
from monitor.mask import fold

NON_CONTENT = ["script", "style", "noscript", "template", "svg", "iframe", "object", "embed", "canvas", "math",
               "select", "button", "input", "textarea", "link", "meta", "frameset", "frame"]
BLOCK_TAGS = frozenset((
    "address", "article", "aside", "blockquote", "body", "caption", "center", "dd", "details", "dialog",
    "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
    "h6", "header", "hgroup", "hr", "li", "main", "menu", "nav", "ol", "p", "pre", "section", "summary",
    "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul", "option", "legend",
))
_CHROME_TOKENS = (
    "menu", "main-menu", "top-menu", "mainmenu", "navbar", "nav", "navigation", "sidebar", "side-bar",
    "breadcrumb", "breadcrumbs", "cookie", "cookies", "cookie-banner", "cookie-notice", "footer", "header",
    "site-header", "site-footer", "topbar", "top-bar", "social", "social-links", "share", "sharing",
    "social-share", "accessibility", "a11y", "skip-link", "lang-switcher", "language-switcher",
    "widget-area",
)
CHROME_CLASSES = frozenset(_CHROME_TOKENS)
# Words that mark chrome even as a part of a longer class or id ("mix1_navigation", "footer-widgets"); "header"
# and "nav" are not among them ("article-header" holds the title, "nav-tabs" may hold content).
CHROME_PARTS = frozenset({"navigation", "navbar", "menu", "breadcrumb", "breadcrumbs", "sidebar", "cookie", "cookies",
                          "share", "sharing", "social", "footer", "topbar", "toolbar"})
_PARTS = re.compile(r"[-_\s]+")
# strong: chrome even inside the main content; weak: chrome only outside it (an article's own header is content).
# Tags and roles are matched by CSS; class and id tokens (CHROME_CLASSES) while walking up from the text.
CHROME_STRONG = "nav, aside, [role=navigation], [role=complementary], [role=search]"
CHROME_WEAK = "header, footer, [role=banner], [role=contentinfo]"
# Markup that changes by itself: the numbers in it (a view counter next to an eye icon), or all of it.
VOLATILE_NUMBERS = ", ".join(
    [".fa-eye", ".icon-eye", "[class*=eye-icon]"]
    + [f"[class*={w}]" for w in ("view-count", "views-count", "viewcount", "post-views", "pageviews", "counter",
                                  "hits")]
    + [f"[id*={w}]" for w in ("counter", "hits", "views-count")])
VOLATILE_WORDS = re.compile(r"(?:^|[-_\s])(?:clock|weather|currency|exchange|rates|carousel|slider|ticker|marquee|"
                            r"countdown|banner|poll|polls|random|rotator)(?:$|[-_\s])").search
# A path holds at most this many steps (the nearest ones, after "…/"), each at most this long: real pages
# nest 35 deep at most in the corpus; a page nested thousands deep must not cost time and memory squared.
MAX_PATH_STEPS = 64
MAX_STEP_CHARS = 256
# Prose: a block of at least this many words and characters is content even where class or id words
# suggest chrome, or outside the main container (a documentation section id'd "sharing-with-a-team").
PROSE_WORDS = 6
PROSE_CHARS = 40
WIDGET_MAX_TEXT = 600  # a "slider" holding more text than this is the content itself, not a widget
# Telling a small widget or counter from content measures the element's text; nested ones measure the same
# text again and again. Past this many characters measured on a page (real pages measure a few thousand)
# further candidates count as content: the cost stays linear in the page, whatever its nesting.
TEXT_BUDGET = 4_000_000
DOC_EXTENSIONS = frozenset((
    "pdf", "doc", "docx", "xls", "xlsx", "xlsm", "odt", "ods", "odp", "ppt", "pptx", "rtf", "zip", "rar",
    "7z", "csv", "txt", "xml", "json", "geojson", "kml", "kmz", "shp", "djvu", "tif", "tiff",
))
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
    try:  # an absolute address needs no joining (urljoin would parse it and put it together again)
        parts = urlsplit(href) if href.startswith(("http://", "https://")) else None
        if parts is None or not parts.netloc:
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
    query = parts.query
    if query:
        query = urlencode(sorted((k, v) for k, v in parse_qsl(query, keep_blank_values=True)
                                 if not SESSION_PARAMS.match(k) and not (BUSTER_PARAMS.match(k)
                                                                          and BUSTER_VALUE.match(v))))
    path = parts.path
    if ";" in path:
        path = PATH_SESSION.sub("", path)
    return urlunsplit((scheme, netloc, path or "/", query, ""))


def document_extension(url: str) -> str | None:
    path = urlsplit(url).path.lower()
    ext = path.rsplit(".", 1)[-1] if "." in path.rsplit("/", 1)[-1] else ""
    return ext if ext in DOC_EXTENSIONS else None


INLINE_TAGS = [
    "a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "dfn", "em", "font", "i", "kbd", "label", "mark", "q",
    "s", "samp", "small", "span", "strong", "sub", "sup", "time", "u", "var", "big", "strike", "tt", "nobr", "img",
    "picture", "source", "wbr", "ins", "del", "acronym",
]
INLINE_SELECTOR = ", ".join(INLINE_TAGS)
COMMENT = re.compile(r"<!--[^<>]*?-->")  # simple comments only: a stray "<!--" must not eat the page
T = TypeVar("T")
SEPARATOR = "\x1f"  # between an element's own text runs (split by <br> or by a child block); never in text


@dataclass(slots=True)
class _RawBlock:
    path: str
    text: str
    in_main: bool
    in_chrome: bool  # chrome by its tag or role, or by class and id words
    volatile: str
    element: int  # Lexbor's identity of the block element
    declared: bool  # chrome by its tag or role (nav, aside, header/footer outside the main): HTML says so


class _Tree:
    """Where each element stands: its structural path, whether it is main content or chrome, whether it is
    volatile. Computed once per element from its parent's answer (memoised by Lexbor's node identity)."""

    def __init__(self, main: set[int], strong: set[int], weak: set[int], numbers: set[int]) -> None:
        self.main, self.strong, self.weak = main, strong, weak
        self.numbers = numbers
        self.memo: dict[int, tuple[str, bool, bool, str]] = {}
        self.declared: set[int] = set()  # elements inside chrome that HTML declares (tags and roles)
        self.parent: dict[int, int] = {}  # element -> its parent element
        self.classes: dict[tuple[str, str, str], tuple[str, bool, bool]] = {}
        self.budget = TEXT_BUDGET  # characters measured to tell a small widget from content

    def _classify(self, tag: str, ident: str, class_attr: str) -> tuple[str, bool, bool]:
        """What an element's tag, id and classes say: its path step, chrome, a volatile widget (memoised: a
        page repeats the same few class lists many times)."""
        key = (tag, ident, class_attr)
        known = self.classes.get(key)
        if known is not None:
            return known
        classes = class_attr.lower()
        tokens = classes.split()
        step = (f"{tag}#{ident}" if ident else f"{tag}.{tokens[0]}" if tokens else tag)[:MAX_STEP_CHARS]
        low_ident = ident.lower()
        # classes of <body> describe the page ("one-sidebar", "menu-type-dropdown"), not the element
        chrome = bool((classes or ident) and step[:4] != "body" and (
            low_ident in CHROME_CLASSES or not CHROME_CLASSES.isdisjoint(tokens)
            or not CHROME_PARTS.isdisjoint(_PARTS.split(f"{classes} {low_ident}"))))
        widget = bool((classes or ident) and step[:4] not in ("body", "main") and (
            VOLATILE_WORDS(classes) or VOLATILE_WORDS(low_ident)))
        self.classes[key] = known = (step, chrome, widget)
        return known

    def info(self, node: LexborNode) -> tuple[str, bool, bool, str]:
        memo = self.memo
        known = memo.get(node.mem_id)
        if known is not None:
            return known
        chain = []
        current: LexborNode | None = node
        while current is not None and current.mem_id not in memo:
            tag = current.tag
            if tag is None or tag == "html" or tag[0] == "#":
                break
            chain.append(current)
            current = current.parent
        base = memo[current.mem_id] if current is not None and current.mem_id in memo else ("", False, False, "")
        parent_id = current.mem_id if current is not None else 0
        declared = parent_id in self.declared
        for n in reversed(chain):
            path, in_main, in_chrome, vol = base
            mid = n.mem_id
            self.parent[mid] = parent_id
            parent_id = mid
            attrs = n.attributes  # a plain dict: cheaper than the attrs view
            step, chrome, widget = self._classify(n.tag or "?", attrs.get("id") or "", attrs.get("class") or "")
            if mid in self.main:
                in_main, in_chrome, declared = True, False, False
            elif mid in self.strong or (mid in self.weak and not in_main):
                in_chrome = declared = True
            elif chrome:
                in_chrome = True
            if declared:
                self.declared.add(mid)
            if widget and vol != "all" and self.budget > 0:  # (inside a volatile widget: volatile already)
                size = len(n.text(deep=True))
                self.budget -= size
                if size <= WIDGET_MAX_TEXT:
                    vol = "all"
            elif mid in self.numbers and not vol:
                vol = "numbers"
            path = f"{path}/{step}" if path else step
            if path.count("/") >= MAX_PATH_STEPS:  # hostile nesting: "…/" and the nearest steps only
                path = "…/" + path.split("/", 2 if path.startswith("…/") else 1)[-1]
            base = (path, in_main, in_chrome, vol)
            memo[mid] = base
        return base


def _up(node: LexborNode | None, known: dict[int, T], stop: Callable[[LexborNode], T | None], top: T) -> T:
    """Walk from node up to the first element that `known` remembers or `stop` answers for (`top` past the
    root), and remember that answer for every element walked: nested elements share one walk, so a page
    nested thousands deep costs one pass, not one walk per element."""
    walked = []
    answer = top
    while node is not None:
        if node.mem_id in known:
            answer = known[node.mem_id]
            break
        walked.append(node.mem_id)
        found = stop(node)
        if found is not None:
            answer = found
            break
        node = node.parent
    known.update(dict.fromkeys(walked, answer))
    return answer


def _outermost(nodes: list[LexborNode], ids: set[int]) -> list[LexborNode]:
    """The nodes with no ancestor among ids."""
    above: dict[int, bool] = {}  # element -> whether it or one of its ancestors is among ids
    return [n for n in nodes if not _up(n.parent, above, lambda a: True if a.mem_id in ids else None, False)]


def _nearest_block(node: LexborNode, known: dict[int, LexborNode | None]) -> LexborNode | None:
    """The node's nearest block element (itself if it is one)."""
    return _up(node, known, lambda n: n if n.tag in BLOCK_TAGS else None, None)


def _blocks(root: LexborNode, tree: _Tree) -> list[_RawBlock]:
    """Text blocks in document order: each element's own text (inline markup already unwrapped, so every
    element left holds its text as a block: the known block tags and any other, <noindex> or <my-widget>)."""
    out: list[_RawBlock] = []
    for el in root.traverse():  # the root, then its descendants in document order
        own = el.text(deep=False, separator=SEPARATOR)
        if not own or own.isspace():
            continue
        tag = el.tag
        if not tag or tag[0] in "-_!#":  # text and comment nodes are read through their element
            continue
        path, in_main, in_chrome, vol = tree.info(el)
        declared = el.mem_id in tree.declared
        for line in own.split(SEPARATOR) if SEPARATOR in own else (own,):
            text = normalise(line)
            if text:
                out.append(_RawBlock(path, text, in_main, in_chrome, vol, el.mem_id, declared))
    return out


def _prose(text: str) -> bool:
    """Sentence-sized text: content wherever it sits unless HTML declares its place chrome."""
    return len(text) >= PROSE_CHARS and text.count(" ") >= PROSE_WORDS - 1


def _anchors(roots: list[LexborNode], tree: _Tree) -> list[tuple[str, str, tuple[str, bool, bool, str], int]]:
    """The links outside the chrome: href, text (not normalised yet: most links repeat or are left out), where
    their holder stands, the holder's identity."""
    out = []
    for root in roots:
        for a in root.css("a[href]"):
            up = a.parent
            if up is None:
                continue
            info = tree.info(up)
            if not info[2]:
                out.append((a.attributes.get("href") or "", a.text(deep=True), info, up.mem_id))
    return out


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
        chain = _ancestors(articles[0])  # from the top down to the first article
        joined: dict[int, int | None] = {mid: i for i, mid in enumerate(chain)}  # -> deepest chain element above
        keep = len(chain)
        for a in articles[1:]:
            at = _up(a, joined, lambda _: None, None)
            if at is None:
                return set(), False
            keep = min(keep, at + 1)
        return {chain[keep - 1]}, False
    return set(), False


COVERAGE = 0.85  # the main container holds at least this share of the page's substantial text


def _densest(blocks: list[_RawBlock], parent: dict[int, int]) -> int | None:
    """The densest block of text, widened until it holds most of the page's substantial text.

    Each substantial block (25+ characters outside the chrome) scores its parent fully and its
    grandparent by half (Readability's scoring, simplified); from the best-scoring element we climb to
    the smallest ancestor holding COVERAGE of all substantial text, so that content spread over several
    boxes of a page builder stays main content while headers, menus and footers stay out.
    """
    scores: dict[int, float] = {}
    held: dict[int, int] = {}
    total = 0
    for b in blocks:
        if b.in_chrome or len(b.text) < 25:
            continue
        size = len(b.text)
        total += size
        up = parent.get(b.element, 0)
        scores[up] = scores.get(up, 0.0) + size
        grand = parent.get(up, 0)
        if grand:
            scores[grand] = scores.get(grand, 0.0) + size / 2
        held[b.element] = held.get(b.element, 0) + size
    scores.pop(0, None)
    if not scores:
        return None
    # what each element holds: its children's sums added in, children before parents (`parent` lists every
    # element after its parent), so a page nested thousands deep costs one pass, not one walk per block
    for child in reversed(parent):
        if child in held and parent[child]:
            held[parent[child]] = held.get(parent[child], 0) + held[child]
    top = max(scores.items(), key=lambda kv: kv[1])[0]
    while held.get(top, 0) < COVERAGE * total and parent.get(top, 0):
        top = parent[top]
    return top


def _subtree(top: int, parent: dict[int, int]) -> set[int]:
    """The element and every element below it (in one pass: `parent` lists every element after its parent)."""
    inside = {top}
    for child, up in parent.items():
        if up in inside:
            inside.add(child)
    return inside


DECLARED_WITNESSES = ("оновл", "змінено", "updated", "last modified", "обновлено", "изменено", "дата зміни")


def _declared_meta(tree: LexborHTMLParser, tz: str) -> datetime | None:
    """The modification time the page's metadata declares."""
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
    return None


def _declared_text(blocks: Iterable[Block], tz: str) -> datetime | None:
    """The first "оновлено 30.11.2026 10:00"-style date in the main content."""
    zone = ZoneInfo(tz)
    texts = [b.text for b in blocks]
    low = fold("\x00".join(texts))
    if not any(w in low for w in DECLARED_WITNESSES):
        return None  # the pattern cannot match: not run over every block
    for text in texts:
        m = DECLARED.search(text)
        if m:
            d, mo, y, hh, mm = m.groups()
            try:
                return datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0), tzinfo=zone)
            except ValueError:
                continue
    return None


def extract_html(html: str, url: str, options: HtmlOptions | None = None, *, ignore_main: bool = False) -> Content:
    """Parse one HTML page into the common content model. Never raises on bad markup.

    ignore_main: read the page as if it had no main/article container. A page whose <main> holds no content
    (a script-built page's mount point) is read again this way, for the densest block of text of the body."""
    opts = options or HtmlOptions()
    source = html
    if "<!--" in html:  # comments split text runs (a cache stamp between two words would look like an edit)
        html = COMMENT.sub("", html)
    tree = LexborHTMLParser(html)
    title_node = tree.css_first("title")
    title = normalise(title_node.text(deep=True)) if title_node is not None else ""
    base_node = tree.css_first("base[href]")
    base = urljoin(url, base_node.attributes.get("href") or "") if base_node is not None else url
    declared_meta = _declared_meta(tree, opts.tz)
    tree.strip_tags(NON_CONTENT)
    for node in tree.css("[hidden], [aria-hidden=true]"):
        node.decompose()
    for selector in opts.exclude:
        for node in tree.css(selector):
            node.decompose()
    body = tree.body
    if body is None:
        return Content(title=title, quality=Quality.EMPTY, quality_reason="no body")
    main_ids, selector_missed = (set(), False) if ignore_main else _main_ids(tree, opts.content)
    numbers: set[int] = set()
    nearest: dict[int, LexborNode | None] = {}
    small: dict[int, bool] = {}  # block -> whether it is small enough to be a counter
    budget = TEXT_BUDGET
    for node in tree.css(VOLATILE_NUMBERS):  # an eye icon or a counter span: its block's numbers change
        block = _nearest_block(node, nearest)
        if block is None:
            continue
        if block.mem_id not in small:  # a counter is small; a large "counter" (a CSS-numbered list) is content
            size = len(block.text(deep=True)) if budget > 0 else WIDGET_MAX_TEXT + 1
            budget -= size
            small[block.mem_id] = size <= WIDGET_MAX_TEXT
        if small[block.mem_id]:
            numbers.update((node.mem_id, block.mem_id))
    where = _Tree(main_ids, _ids(tree, CHROME_STRONG), _ids(tree, CHROME_WEAK), numbers)
    # With a main container only its subtree is walked; the rest of the page counts through one digest.
    roots = _outermost([n for n in tree.css(opts.content or "main, [role=main], article") if n.mem_id in main_ids],
                       main_ids)
    scope = roots or [body]
    anchors_text = _anchors(scope, where)  # read before the inline markup (the <a> elements too) is unwrapped
    for node in tree.root.css(INLINE_SELECTOR) if tree.root is not None else ():  # one pass, not one per tag
        node.unwrap()
    tree.merge_text_nodes()
    raw_blocks = _blocks(body, where)  # the whole body: no visible text is lost
    if roots and not opts.content and not any(b.in_main and not b.in_chrome for b in raw_blocks):
        return extract_html(source, url, options, ignore_main=True)  # an empty <main>: the densest block instead
    inside: set[int] | None = None  # without a main container: the densest block's subtree
    if main_ids:
        placed = [b.in_main and not b.in_chrome for b in raw_blocks]
    else:
        top = _densest(raw_blocks, where.parent)
        inside = _subtree(top, where.parent) if top is not None else None
        placed = [not b.in_chrome and (inside is None or b.element in inside) for b in raw_blocks]
    # Outside the main content, or where only class words say chrome, prose is content all the same (a
    # configured content selector is the operator's word, and stands)
    is_main = placed if opts.content else [m or (not b.declared and _prose(b.text))
                                           for b, m in zip(raw_blocks, placed, strict=True)]
    # A widget's class words ("slider", "banner") make its small texts volatile, never its prose: a sentence in a
    # carousel is content unless calibration or history shows that very block changing by itself.
    blocks = tuple(Block(path=b.path, text=b.text, region=Region.MAIN if m else Region.CHROME,
                         volatile="" if b.volatile == "all" and _prose(b.text) else b.volatile)
                   for b, m in zip(raw_blocks, is_main, strict=True))
    links: dict[str, Link] = {}
    documents: dict[str, Link] = {}
    canonical_of: dict[str, str | None] = {}  # a page repeats its links (menus, "read more"): each href read once
    for href, text, (_path, in_main, in_chrome, vol), holder in anchors_text:
        if in_chrome or vol == "all" or not (in_main if main_ids else (inside is None or holder in inside)):
            continue
        if href in canonical_of:
            canonical = canonical_of[href]
        else:
            canonical = canonical_of[href] = canonical_url(href, base)
        if canonical is None or canonical in links:
            continue
        link = links[canonical] = Link(url=canonical, text=normalise(text))
        if document_extension(canonical):
            documents[canonical] = link
    quality, reason = Quality.OK, ""
    if selector_missed:
        quality, reason = Quality.UNREADABLE, f"content selector {opts.content!r} matched nothing"
    # the blocks hold every visible text of the body (main and chrome alike): no separate visible text to keep
    return Content(title=title, blocks=blocks, visible_text="",
                   links=tuple(sorted(links.values(), key=lambda x: x.url)),
                   documents=tuple(sorted(documents.values(), key=lambda x: x.url)),
                   declared_at=declared_meta or _declared_text((b for b in blocks if b.region is Region.MAIN),
                                                               opts.tz),
                   quality=quality, quality_reason=reason)
