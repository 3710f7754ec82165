"""Detection quality on real pages with written mutations: recall on real edits, false "real update"
verdicts on noise-only pairs, per mutation class. The same evaluation backs tests/test_detect_quality.py.

The corpus is split once and for all by a hash of each file name: about 30 % is held out (`held_out`), never
looked at while tuning the detector; its figures are the ones reported."""

from __future__ import annotations

import argparse
import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import corpus_pages
from monitor.compare import compare
from monitor.compare import read_bytes as read
from monitor.domain import ChangeClass
from tests.mutations import MUTATIONS, REAL, Mutation, pair, with_noise

REAL_CLASSES = frozenset({ChangeClass.CONTENT, ChangeClass.DOCUMENTS})
HELD_OUT_BELOW = 77  # first byte of sha256(file name) below this: held out (66 of the 211 pages)
PARTS = ("held-out", "tuning", "all")


def held_out(name: str) -> bool:
    """Whether a corpus page (by file name) belongs to the held-out part: a fixed rule, not a choice."""
    return hashlib.sha256(name.encode("utf-8")).digest()[0] < HELD_OUT_BELOW


def part(pages: list[Path], which: str) -> list[Path]:
    """The pages of one part of the split: "held-out", "tuning" or "all"."""
    if which == "all":
        return pages
    return [p for p in pages if held_out(p.name) == (which == "held-out")]


@dataclass
class Tally:
    pairs: int = 0
    real_verdicts: int = 0
    classes: Counter[str] = field(default_factory=Counter)
    misses: list[str] = field(default_factory=list)


def all_mutations() -> list[Mutation]:
    return [*MUTATIONS, *(with_noise(m) for m in [Mutation(r.__name__, True, r) for r in REAL])]


def evaluate(pages: list[Path], mutations: list[Mutation] | None = None) -> dict[str, Tally]:
    results: dict[str, Tally] = {}
    for index, path in enumerate(pages):
        html = path.read_bytes().decode("utf-8", errors="replace")
        for mutation in mutations or all_mutations():
            made = pair(html, mutation, seed=index)
            if made is None:
                continue
            before, after = made
            url = f"https://city.example/{path.stem}"
            verdict = compare(read(before.encode(), url=url), read(after.encode(), url=url))
            tally = results.setdefault(mutation.name, Tally())
            tally.pairs += 1
            tally.classes[verdict.change_class.value] += 1
            is_real = verdict.change_class in REAL_CLASSES
            tally.real_verdicts += is_real
            if is_real != mutation.real:
                tally.misses.append(path.name)
    return results


def table(results: dict[str, Tally]) -> str:
    lines = ["| mutation | kind | pairs | counted as a real update | classes |", "|---|---|---:|---:|---|"]
    for name, t in results.items():
        real = any(m.name == name and m.real for m in all_mutations())
        classes = ", ".join(f"{k} {v}" for k, v in t.classes.most_common())
        lines.append(f"| {name} | {'real edit' if real else 'noise'} | {t.pairs} | "
                     f"{t.real_verdicts / t.pairs:.1%} | {classes} |")
    return "\n".join(lines)


def summary(results: dict[str, Tally]) -> dict[str, float]:
    names = {m.name: m.real for m in all_mutations()}
    real = [t for n, t in results.items() if names[n]]
    noise = [t for n, t in results.items() if not names[n]]
    real_pairs = sum(t.pairs for t in real)
    noise_pairs = sum(t.pairs for t in noise)
    return {"real_pairs": real_pairs, "recall": sum(t.real_verdicts for t in real) / real_pairs,
            "noise_pairs": noise_pairs,
            "noise_real_rate": sum(t.real_verdicts for t in noise) / noise_pairs}


def main(argv: list[str]) -> dict[str, object]:
    ap = argparse.ArgumentParser(prog="python -m bench quality")
    ap.add_argument("--limit", type=int, default=0, help="only the first N corpus pages")
    ap.add_argument("--part", choices=PARTS, default="all", help="which part of the fixed split (default: all)")
    args = ap.parse_args(argv)
    pages = part(corpus_pages(), args.part)[: args.limit or None]
    t0 = time.perf_counter()
    results = evaluate(pages)
    out: dict[str, object] = {"part": args.part, "pages": len(pages), "seconds": round(time.perf_counter() - t0, 1),
                              **summary(results)}
    print(table(results))
    for name, t in results.items():
        if t.misses:
            print(f"{name}: {len(t.misses)} wrong: {', '.join(sorted(set(t.misses))[:8])}")
    return out
