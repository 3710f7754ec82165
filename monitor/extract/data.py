"""Structured sources -> Content: any JSON API (a JMESPath selection, ignored keys, canonical form), CKAN
catalogues (datasets and resources, with their own dates and update frequency) and GIS layers (GeoJSON and
ArcGIS REST: features by id). Values are compared exactly: nothing is masked."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from monitor.domain import Block, Content, Link, Quality, Record, Region
from monitor.extract.html import canonical_url

MAX_LEAVES = 20_000
MAX_FEATURES = 100_000
DATE_KEYS = ("currentVersionReleaseDate", "releaseDate", "metadata_modified", "dateModified", "lastModified",
             "last_modified", "modified", "updated", "updated_at", "lastEditDate")
ID_KEYS = ("id", "ID", "Id", "OBJECTID", "objectid", "ObjectID", "FID", "fid", "gid", "GlobalID", "globalid", "uuid")


class Unreadable(ValueError):
    """The source is not what its kind says it is; the message says why."""


def validate_jmespath(expression: str) -> str | None:
    try:
        jmespath.compile(expression)
    except JMESPathError as exc:
        return str(exc).splitlines()[0]
    return None


def load_json(body: bytes) -> Any:
    try:
        try:
            return json.loads(body.decode("utf-8-sig"))
        except UnicodeDecodeError:
            return json.loads(body.decode("cp1251"))
    except RecursionError:
        raise Unreadable("JSON nested too deeply") from None
    except ValueError as exc:  # invalid JSON, an undecodable body, an integer of thousands of digits
        raise Unreadable(f"not valid JSON: {str(exc)[:200]}") from exc


def drop_keys(value: Any, ignore: frozenset[str]) -> Any:
    if not ignore:
        return value
    if isinstance(value, dict):
        return {k: drop_keys(v, ignore) for k, v in value.items() if k not in ignore}
    if isinstance(value, list):
        return [drop_keys(v, ignore) for v in value]
    return value


def canonical(value: Any) -> str:
    """One text for one value: keys sorted, numbers as the shortest exact form (1.0 and 1 are the same)."""
    def norm(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
            return int(v)
        if isinstance(v, dict):
            return {str(k): norm(x) for k, x in v.items()}
        if isinstance(v, list):
            return [norm(x) for x in v]
        return v

    return json.dumps(norm(value), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _leaves(value: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        for k in sorted(value, key=str):
            yield from _leaves(value[k], f"{path}.{k}")
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, value


def parse_when(value: Any) -> datetime | None:
    """ISO 8601 text, or milliseconds since the epoch (ArcGIS)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value.strip():
        try:
            t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    return None


def _declared(value: Any) -> datetime | None:
    found: list[datetime] = []

    def walk(v: Any, depth: int = 0) -> None:
        if depth > 8 or len(found) > 10_000:
            return
        if isinstance(v, dict):
            for k, x in v.items():
                if k in DATE_KEYS and (t := parse_when(x)) is not None:
                    found.append(t)
                else:
                    walk(x, depth + 1)
        elif isinstance(v, list):
            for x in v[:10_000]:
                walk(x, depth + 1)

    walk(value)
    return max(found) if found else None


def extract_json(body: bytes, *, select: str | None = None, ignore: Iterable[str] = ()) -> Content:
    try:
        doc = load_json(body)
    except Unreadable as exc:
        return Content(quality=Quality.UNREADABLE, quality_reason=str(exc))
    declared = _declared(doc)  # the source's own date, whatever part of it is compared
    if select:
        try:
            doc = jmespath.search(select, doc)
        except JMESPathError as exc:
            return Content(quality=Quality.UNREADABLE, quality_reason=f"the selection failed: {exc}")
        if doc is None:
            return Content(quality=Quality.UNREADABLE, quality_reason=f"the selection {select!r} matched nothing")
    doc = drop_keys(doc, frozenset(ignore))
    blocks = []
    for i, (path, value) in enumerate(_leaves(doc)):
        if i >= MAX_LEAVES:
            rest = hashlib.sha256(canonical(doc).encode()).hexdigest()
            blocks.append(Block(path="$…", text=f"… and more values (digest of all: {rest})"))
            break
        blocks.append(Block(path=path, text=f"{path} = {canonical(value)}"))
    return Content(blocks=tuple(blocks), declared_at=declared)


# --- CKAN -----------------------------------------------------------------------------------------


def _datasets(doc: Any) -> list[dict[str, Any]]:
    if isinstance(doc, dict) and doc.get("success") is False:
        error = doc.get("error") or {}
        raise Unreadable(f"the catalogue answered with an error: {canonical(error)[:300]}")
    if isinstance(doc, dict) and "result" in doc:
        doc = doc["result"]
    if isinstance(doc, dict) and isinstance(doc.get("results"), list):  # package_search
        doc = doc["results"]
    elif isinstance(doc, dict) and isinstance(doc.get("datasets"), list):  # our collector's pages joined
        doc = doc["datasets"]
    if isinstance(doc, dict) and ("resources" in doc or "metadata_modified" in doc or "name" in doc):
        doc = [doc]  # package_show
    if not isinstance(doc, list) or not all(isinstance(d, dict) for d in doc):
        raise Unreadable("not a CKAN response (package_show, package_search or a list of datasets)")
    return doc


def extract_ckan(body: bytes, url: str, *, ignore: Iterable[str] = ()) -> Content:
    try:
        datasets = _datasets(drop_keys(load_json(body), frozenset(ignore)))
    except Unreadable as exc:
        return Content(quality=Quality.UNREADABLE, quality_reason=str(exc))
    blocks: list[Block] = []
    records: list[Record] = []
    documents: dict[str, Link] = {}
    for ds in sorted(datasets, key=lambda d: str(d.get("name") or d.get("id") or "")):
        key = str(ds.get("name") or ds.get("id") or "")
        modified = parse_when(ds.get("metadata_modified"))
        frequency = str(ds.get("update_frequency") or ds.get("data_update_frequency") or ds.get("frequency") or "")
        resources: list[Any] = ds["resources"] if isinstance(ds.get("resources"), list) else []
        res_text = []
        for r in sorted((r for r in resources if isinstance(r, dict)), key=lambda r: str(r.get("id", ""))):
            res_text.append(f"{r.get('name') or r.get('id')} (modified {r.get('last_modified') or '-'}, "
                            f"size {r.get('size') or '-'}, hash {r.get('hash') or '-'})")
            link = canonical_url(str(r.get("url") or ""), url) if r.get("url") else None
            if link:
                documents.setdefault(link, Link(url=link, text=str(r.get("name") or "")))
        text = (f"{ds.get('title') or key} [{key}]: metadata modified {ds.get('metadata_modified') or '-'}; "
                f"frequency {frequency or '-'}; resources: {'; '.join(res_text) or '-'}")
        blocks.append(Block(path=f"dataset/{key}", text=text))
        records.append(Record(key=key, title=str(ds.get("title") or key), modified_at=modified, frequency=frequency))
    dates = [r.modified_at for r in records if r.modified_at is not None]
    return Content(blocks=tuple(blocks), records=tuple(records), declared_at=max(dates) if dates else None,
                   documents=tuple(sorted(documents.values(), key=lambda x: x.url)))


# --- GIS ------------------------------------------------------------------------------------------


def _feature_id(props: dict[str, Any], feature: dict[str, Any]) -> str | None:
    if feature.get("id") not in (None, ""):
        return str(feature["id"])
    for key in ID_KEYS:
        if props.get(key) not in (None, ""):
            return str(props[key])
    return None


def _geometry_digest(geometry: Any) -> str:
    def rounded(v: Any) -> Any:
        if isinstance(v, float):
            return round(v, 7)  # ~1 cm: re-projection noise is not an edit
        if isinstance(v, list):
            return [rounded(x) for x in v]
        if isinstance(v, dict):
            return {k: rounded(x) for k, x in v.items()}
        return v

    return hashlib.sha256(canonical(rounded(geometry)).encode()).hexdigest()[:16] if geometry else "-"


def extract_geo(body: bytes, *, ignore: Iterable[str] = ()) -> Content:
    try:
        doc = drop_keys(load_json(body), frozenset(ignore))
    except Unreadable as exc:
        return Content(quality=Quality.UNREADABLE, quality_reason=str(exc))
    if not isinstance(doc, dict):
        return Content(quality=Quality.UNREADABLE, quality_reason="not a GeoJSON or ArcGIS document")
    if isinstance(doc.get("error"), dict):
        err = doc["error"]
        return Content(quality=Quality.UNREADABLE,
                       quality_reason=f"the GIS server answered with an error {err.get('code', '')}: "
                                      f"{str(err.get('message', ''))[:200]}")
    declared = parse_when((doc.get("editingInfo") or {}).get("lastEditDate")) if isinstance(
        doc.get("editingInfo"), dict) else None
    blocks: list[Block] = []
    if isinstance(doc.get("features"), list):
        features = doc["features"][:MAX_FEATURES]
        for f in features:
            if not isinstance(f, dict):
                continue
            props = f.get("properties") if isinstance(f.get("properties"), dict) else f.get("attributes")
            props = props if isinstance(props, dict) else {}
            fid = _feature_id(props, f) or f"#{hashlib.sha256(canonical(f).encode()).hexdigest()[:12]}"
            blocks.append(Block(path=f"feature/{fid}",
                                text=f"{fid}: {canonical(props)} geometry {_geometry_digest(f.get('geometry'))}"))
        blocks.sort(key=lambda b: b.path)
        if len(doc["features"]) > MAX_FEATURES:
            blocks.append(Block(path="feature/…", text=f"… {len(doc['features']) - MAX_FEATURES} more features"))
        blocks.insert(0, Block(path="count", text=f"features: {len(doc['features'])}"))
    elif "count" in doc:
        blocks.append(Block(path="count", text=f"features: {doc['count']}"))
    elif isinstance(doc.get("objectIds"), list):
        blocks.extend(Block(path=f"feature/{i}", text=str(i)) for i in sorted(doc["objectIds"], key=str))
    elif doc.get("type") in ("Feature Layer", "Table") or "fields" in doc or isinstance(doc.get("layers"), list):
        fields = ", ".join(str(f.get("name")) for f in doc.get("fields") or [] if isinstance(f, dict))
        blocks.append(Block(path="layer", text=f"{doc.get('name', '')}: fields {fields}"))
        if declared is not None:
            blocks.append(Block(path="layer/lastEditDate", text=f"last edit {declared.isoformat()}"))
        for layer in doc.get("layers") or []:
            if isinstance(layer, dict):
                blocks.append(Block(path=f"layer/{layer.get('id')}", text=f"{layer.get('id')}: {layer.get('name')}"))
    else:
        return Content(quality=Quality.UNREADABLE,
                       quality_reason="not a GeoJSON FeatureCollection or an ArcGIS layer or query response")
    return Content(blocks=tuple(blocks), declared_at=declared, title=str(doc.get("name") or ""))


__all__ = ["Region", "Unreadable", "extract_ckan", "extract_geo", "extract_json", "validate_jmespath"]
