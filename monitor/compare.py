"""Offline comparison of two captures: extract, fingerprint and classify without a database."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.detect import verdict as make_verdict
from monitor.domain import ChangeClass, Content, Fingerprints, Kind, Quality, Verdict, VersionRef
from monitor.extract import ExtractOptions, extract
from monitor.fingerprint import Layers, fingerprints, layers, version_key
from monitor.quality import assess


@dataclass(frozen=True, slots=True)
class Capture:
    """One capture read and fingerprinted."""

    content: Content
    layers: Layers
    fingerprints: Fingerprints
    key: str
    quality: Quality
    quality_reason: str


def read(body: bytes, *, url: str = "https://example.org/", kind: Kind = Kind.HTML,
         options: ExtractOptions | None = None, noise: frozenset[str] = frozenset()) -> Capture:
    content = extract(kind, body, url=url, options=options)
    quality, reason = (assess(content, url=url, final_url=url, body=body) if kind is Kind.HTML
                       else (content.quality, content.quality_reason))
    lay = layers(content, noise)
    fp = fingerprints(content, body, noise, lay)
    return Capture(content=content, layers=lay, fingerprints=fp, key=version_key(fp), quality=quality,
                   quality_reason=reason)


def compare(before: Capture, after: Capture) -> Verdict:
    """The class and evidence of the change from `before` to `after`."""
    if after.quality is not Quality.OK:
        return Verdict(change_class=ChangeClass.NONE)
    ref = VersionRef(key_hash=before.key, fingerprints=before.fingerprints)
    return make_verdict(before.fingerprints, after.fingerprints, key=after.key, recent=(ref,),
                        prev_content=before.content, cur_content=after.content, prev_layers=before.layers,
                        cur_layers=after.layers)


def classify_pair(before: bytes, after: bytes, *, url: str = "https://example.org/",
                  kind: Kind = Kind.HTML) -> ChangeClass:
    return compare(read(before, url=url, kind=kind), read(after, url=url, kind=kind)).change_class
