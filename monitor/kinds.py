"""What a kind of page is, declared once: its options, how it is captured and read, whether the web-page
quality gate applies, how its text is masked, and which extras (link checks, dataset grades) it has.

In the spirit of blackbox_exporter's prober map and urlwatch's job declarations: the catalogue's
validation, the core, the maintenance job, the metrics and the kinds table of docs/operators.md all read this
registry. Adding a kind is a value in `domain.Kind` and an entry here.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from monitor.collect import collect_ckan, collect_geo, fetch_one
from monitor.domain import Content, Fetch, FetchResult, Kind, PageConfig, Validators
from monitor.extract import (
    ExtractOptions,
    Reader,
    read_availability,
    read_ckan,
    read_feed,
    read_file,
    read_geo,
    read_html,
    read_json,
)

Capture = Callable[[Fetch, PageConfig, Validators | None], Awaitable[FetchResult]]


class Masking(StrEnum):
    """How a kind's text is compared."""

    TEXT = "text"  # volatile tokens (clocks, counters, tokens, dates for the masked layer) are masked
    EXACT = "exact"  # data values are compared exactly
    BY_FORMAT = "by_format"  # the reader decides per format (documents masked, spreadsheet values exact)


@dataclass(frozen=True, slots=True, kw_only=True)
class KindSpec:
    kind: Kind
    reads: str  # for the docs: what it reads
    change: str  # for the docs: what a change is
    declared: str  # for the docs: where the source's own date comes from
    read: Reader
    capture: Capture = fetch_one
    options: frozenset[str] = frozenset()  # page keys that only some kinds accept
    gated: bool = False  # the web-page quality gate (soft 404s, bot walls, maintenance pages) applies
    masking: Masking = Masking.TEXT
    link_checks: bool = False  # the links of its content on its own site are checked for the faults list
    datasets: bool = False  # its records are graded against their own declared update frequency
    check: Callable[[Mapping[str, Any]], str | None] | None = None  # a problem with a page's keys, or None


def _ckan_page(values: Mapping[str, Any]) -> str | None:
    if "organization" in values or re.search(r"package_(show|search)", str(values.get("url", ""))):
        return None
    return "a ckan page needs 'organization' (or a package_show / package_search URL)"


REGISTRY: dict[Kind, KindSpec] = {spec.kind: spec for spec in (
    KindSpec(kind=Kind.HTML, reads="a web page",
             change="main text, links or documents (see [How detection works](#how-detection-works))",
             declared="`article:modified_time`, \"оновлено …\"", read=read_html,
             options=frozenset({"content", "exclude"}), gated=True, link_checks=True),
    KindSpec(kind=Kind.FEED, reads="RSS 2.0, RSS 1.0/RDF, Atom, `sitemap.xml` (gzipped too)",
             change="an entry added, removed or edited; a changed entry date alone is `date_only`",
             declared="the newest entry date", read=read_feed),
    KindSpec(kind=Kind.JSON, reads="any JSON API; `select` (JMESPath) chooses the part compared, `ignore` drops "
             "keys", change="the selected values (exact, canonical form: key order and `1.0`/`1` do not matter)",
             declared="release/modified keys of the document", read=read_json,
             options=frozenset({"select", "ignore"}), masking=Masking.EXACT),
    KindSpec(kind=Kind.CKAN, reads="a CKAN catalogue (data.gov.ua): `organization`'s datasets via `package_search`, "
             "100 at a time", change="a dataset or resource added, removed or modified (`metadata_modified`, "
             "resource `last_modified`/size/hash)", declared="the newest `metadata_modified`", read=read_ckan,
             capture=collect_ckan, options=frozenset({"organization", "ignore"}), masking=Masking.EXACT,
             datasets=True, check=_ckan_page),
    KindSpec(kind=Kind.GEO, reads="GeoJSON, ArcGIS REST query (pages joined while `exceededTransferLimit`), layer "
             "metadata", change="a feature added, removed or edited (by id; coordinates to 1e-7)",
             declared="`editingInfo.lastEditDate`", read=read_geo, capture=collect_geo,
             options=frozenset({"ignore"}), masking=Masking.EXACT),
    KindSpec(kind=Kind.FILE, reads="PDF, DOCX, ODT (text), XLSX, XLS, ODS, CSV (cell values per sheet and row)",
             change="the text or the values; a spreadsheet saved again with the same values is not a change",
             declared="the document's modified date", read=read_file, masking=Masking.BY_FORMAT),
    KindSpec(kind=Kind.AVAILABILITY, reads="reachability and an `expect`ed text (a login form's label)",
             change="never: only up or down", declared="—", read=read_availability,
             options=frozenset({"expect"}), masking=Masking.EXACT),
)}


def spec(kind: Kind) -> KindSpec:
    return REGISTRY[kind]


def kinds_accepting(option: str) -> tuple[Kind, ...]:
    """The kinds that accept a kind-specific page key, in the order of `Kind`."""
    return tuple(k for k in Kind if option in REGISTRY[k].options)


KIND_OPTIONS: frozenset[str] = frozenset().union(*(s.options for s in REGISTRY.values()))


def options_for(page: PageConfig, tz: str) -> ExtractOptions:
    return ExtractOptions(content=page.content, exclude=page.exclude, tz=tz, select=page.select, ignore=page.ignore,
                          expect=page.expect)


def extract(kind: Kind, body: bytes, *, url: str, charset: str | None = None, content_type: str = "",
            options: ExtractOptions | None = None) -> Content:
    """Read one capture as its kind. Never raises on bad input: an unreadable capture has quality UNREADABLE."""
    s = REGISTRY[kind]
    content = s.read(body, url=url, charset=charset, content_type=content_type, options=options or ExtractOptions())
    if s.masking is not Masking.BY_FORMAT and content.mask != (s.masking is Masking.TEXT):
        content = replace(content, mask=s.masking is Masking.TEXT)
    return content


def kinds_reference() -> str:
    """docs/operators.md's table of kinds, generated from the registry."""
    rows = ["| kind | reads | a change is | declared date | its own keys |", "|---|---|---|---|---|"]
    for k in Kind:
        s = REGISTRY[k]
        keys = ", ".join(f"`{o}`" for o in sorted(s.options)) or "—"
        name = f"`{k.value}`" + (" (default)" if k is Kind.HTML else "")
        rows.append(f"| {name} | {s.reads} | {s.change} | {s.declared} | {keys} |")
    return "\n".join(rows) + "\n"
