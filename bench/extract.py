"""Extraction plus all fingerprints over the corpus, beside selectolax's parse alone and beside the way
changedetection.io reads a page (inscriptis to text, then one MD5), in one run: pages/s, MB/s, ratios.

Times are the process's CPU time, best of N passes, the contenders taking turns pass by pass: on a machine
shared with other work (two cores, a test suite beside) wall time, or one contender's passes all run while the
neighbours were busy, measured the neighbours as much as the code and moved the ratios by 15 % and more."""

from __future__ import annotations

import argparse
import hashlib
import time

from bench.common import corpus_pages


def _one(fn, texts: list[str], raws: list[bytes]) -> float:  # type: ignore[no-untyped-def]
    t0 = time.process_time()
    for text, raw in zip(texts, raws, strict=True):
        fn(text, raw)
    return time.process_time() - t0


def _race(fns: dict, texts: list[str], raws: list[bytes], rounds: int) -> dict[str, float]:  # type: ignore[type-arg]
    """The best time of each contender over `rounds` passes, taking turns."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = min(best[name], _one(fn, texts, raws))
    return best


def main(argv: list[str]) -> dict[str, object]:
    ap = argparse.ArgumentParser(prog="python -m bench extract")
    ap.add_argument("--rounds", type=int, default=5, help="best of N passes over the corpus")
    args = ap.parse_args(argv)
    from selectolax.lexbor import LexborHTMLParser

    from monitor.extract.decode import decode
    from monitor.extract.html import extract_html
    from monitor.fingerprint import fingerprints, layers

    raws = [p.read_bytes() for p in corpus_pages()]
    texts = [decode(r)[0] for r in raws]
    mb = sum(map(len, raws)) / 1e6

    def parse_only(text: str, raw: bytes) -> None:
        LexborHTMLParser(text)

    def ours(text: str, raw: bytes) -> None:
        content = extract_html(text, "https://city.example/page")
        fingerprints(content, raw, lay=layers(content))

    results: dict[str, object] = {"pages": len(raws), "megabytes": round(mb, 1)}
    contenders = {"parse_only": parse_only, "extract_and_fingerprint": ours}
    try:
        from inscriptis import get_text

        def changedetection(text: str, raw: bytes) -> None:
            hashlib.md5(get_text(text).encode()).hexdigest()

        contenders["inscriptis_md5"] = changedetection
    except ImportError:
        results["inscriptis"] = "skipped: pip install inscriptis (the bench extra)"
    timings = _race(contenders, texts, raws, args.rounds)
    for name, seconds in timings.items():
        results[name] = {"seconds": round(seconds, 3), "pages_per_s": round(len(raws) / seconds, 1),
                         "mb_per_s": round(mb / seconds, 1)}
    results["ours_vs_parse_only"] = round(timings["extract_and_fingerprint"] / timings["parse_only"], 2)
    if "inscriptis_md5" in timings:
        results["inscriptis_vs_ours"] = round(timings["inscriptis_md5"] / timings["extract_and_fingerprint"], 2)
    return results
