"""Captures that take more than one request: a CKAN organisation's datasets (package_search, page by page)
and an ArcGIS query whose answer exceeds the server's transfer limit (resultOffset). The pages are joined
into one JSON document, so the core sees one capture."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from monitor.domain import Fetch, FetchResult, Outcome, PageConfig, Validators

CKAN_ROWS = 100
MAX_DATASETS = 10_000
MAX_GIS_PAGES = 200


def _with_params(url: str, **params: Any) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update({k: str(v) for k, v in params.items()})
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def _ckan_search_url(page: PageConfig) -> str:
    if "package_search" in page.url:
        return page.url
    return page.url.rstrip("/") + "/package_search"


async def fetch_one(fetcher: Fetch, page: PageConfig, validators: Validators | None) -> FetchResult:
    """The capture of most kinds: one request (conditional when validators are given)."""
    return await fetcher.fetch(page.url, headers=page.headers, timeout_s=page.timeout_s, validators=validators,
                               allow_private=page.allow_private, forward_headers=page.forward_headers)


async def collect_ckan(fetcher: Fetch, page: PageConfig, validators: Validators | None) -> FetchResult:
    """An organisation's datasets, page by page; a package_show / package_search URL alone is one request."""
    if not page.organization:
        return await fetch_one(fetcher, page, validators)
    return await _ckan(fetcher, page)


async def collect_geo(fetcher: Fetch, page: PageConfig, validators: Validators | None) -> FetchResult:
    """A GIS layer: an ArcGIS answer over the server's transfer limit is followed page by page."""
    result = await fetch_one(fetcher, page, validators)
    if result.outcome is Outcome.OK and b"exceededTransferLimit" in (result.body or b""):
        return await _arcgis(fetcher, page, result)
    return result


async def _get(fetcher: Fetch, page: PageConfig, url: str) -> FetchResult:
    return await fetcher.fetch(url, headers=page.headers, timeout_s=page.timeout_s, allow_private=page.allow_private,
                               forward_headers=page.forward_headers)


def _joined(first: FetchResult, body: dict[str, Any], elapsed_s: float, requests: int) -> FetchResult:
    """One capture of the pages fetched: the time is what the fetches took, on the fetcher's clock."""
    data = json.dumps(body, ensure_ascii=False, sort_keys=True).encode()
    return replace(first, body=data, elapsed_s=elapsed_s, attempts=requests, etag=None,
                   last_modified=None, content_type="application/json")


async def _ckan(fetcher: Fetch, page: PageConfig) -> FetchResult:
    """package_search?fq=organization:<org>, 100 at a time, until the count is reached."""
    elapsed = 0.0
    base = _ckan_search_url(page)
    datasets: list[Any] = []
    first: FetchResult | None = None
    start, requests = 0, 0
    while True:
        result = await _get(fetcher, page, _with_params(base, fq=f"organization:{page.organization}",
                                                        rows=CKAN_ROWS, start=start, sort="name asc"))
        requests += 1
        elapsed += result.elapsed_s
        first = first or result
        if not result.outcome.success or result.body is None:
            return replace(result, attempts=requests, elapsed_s=elapsed)
        try:
            doc = json.loads(result.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return result  # let the extractor say what is wrong with it
        if not isinstance(doc, dict) or doc.get("success") is False or not isinstance(doc.get("result"), dict):
            return result
        found = doc["result"].get("results") or []
        datasets.extend(found)
        count = int(doc["result"].get("count") or 0)
        start += CKAN_ROWS
        if not found or start >= count or len(datasets) >= MAX_DATASETS:
            break
    return _joined(first, {"datasets": datasets}, elapsed, requests)


async def _arcgis(fetcher: Fetch, page: PageConfig, first: FetchResult) -> FetchResult:
    """Follow resultOffset while the server says the transfer limit was exceeded."""
    elapsed = first.elapsed_s
    try:
        doc = json.loads(first.body or b"")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return first
    if not isinstance(doc, dict) or not isinstance(doc.get("features"), list):
        return first
    features = list(doc["features"])
    requests = 1
    while doc.get("exceededTransferLimit") and requests < MAX_GIS_PAGES:
        result = await _get(fetcher, page, _with_params(page.url, resultOffset=len(features)))
        requests += 1
        elapsed += result.elapsed_s
        if not result.outcome.success or result.body is None:
            return replace(result, attempts=requests, elapsed_s=elapsed)
        try:
            doc = json.loads(result.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return replace(result, outcome=Outcome.BAD_CAPTURE, error="a page of the layer is not JSON")
        if not isinstance(doc, dict) or not doc.get("features"):
            break
        features.extend(doc["features"])
    merged = {k: v for k, v in json.loads(first.body or b"{}").items() if k != "exceededTransferLimit"}
    merged["features"] = features
    return _joined(first, merged, elapsed, requests)
