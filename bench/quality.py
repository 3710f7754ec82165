"""Detection quality on real pages with written mutations: recall on real edits, false "real update"
verdicts on noise-only pairs, per mutation class. The same evaluation backs tests/test_detect_quality.py.

The corpus is split once and for all by a hash of each file name: about 30 % is held out (`held_out`), never
looked at while tuning the detector; its figures are the ones reported."""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

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
    real: bool = False
    pairs: int = 0
    real_verdicts: int = 0
    classes: Counter[str] = field(default_factory=Counter)
    misses: list[str] = field(default_factory=list)


class Generator(NamedTuple):
    mutations: list[Any]  # each with .name, .real and what `pair` applies
    pair: Callable[[str, Any, int], tuple[str, str] | None]


def all_mutations() -> list[Mutation]:
    return [*MUTATIONS, *(with_noise(m) for m in [Mutation(r.__name__, True, r) for r in REAL])]


def generators() -> dict[str, Generator]:
    """ours: tests/mutations.py (shares the detector's notions); independent: tests/mutations_independent.py."""
    from tests import mutations_independent

    return {"ours": Generator(all_mutations(), pair),
            "independent": Generator(mutations_independent.ALL, mutations_independent.pair)}


def evaluate(pages: list[Path], mutations: list[Any] | None = None, generator: str = "ours") -> dict[str, Tally]:
    gen = generators()[generator]
    results: dict[str, Tally] = {}
    for index, path in enumerate(pages):
        html = path.read_bytes().decode("utf-8", errors="replace")
        for mutation in mutations or gen.mutations:
            made = gen.pair(html, mutation, index)
            if made is None:
                continue
            before, after = made
            url = f"https://city.example/{path.stem}"
            verdict = compare(read(before.encode(), url=url), read(after.encode(), url=url))
            tally = results.setdefault(mutation.name, Tally(real=mutation.real))
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
        classes = ", ".join(f"{k} {v}" for k, v in t.classes.most_common())
        lines.append(f"| {name} | {'real edit' if t.real else 'noise'} | {t.pairs} | "
                     f"{t.real_verdicts / t.pairs:.1%} | {classes} |")
    return "\n".join(lines)


def summary(results: dict[str, Tally]) -> dict[str, float]:
    real = [t for t in results.values() if t.real]
    noise = [t for t in results.values() if not t.real]
    real_pairs = sum(t.pairs for t in real)
    noise_pairs = sum(t.pairs for t in noise)
    return {"real_pairs": real_pairs, "recall": round(sum(t.real_verdicts for t in real) / max(real_pairs, 1), 4),
            "noise_pairs": noise_pairs,
            "noise_real_rate": round(sum(t.real_verdicts for t in noise) / max(noise_pairs, 1), 4)}


def main(argv: list[str]) -> dict[str, object]:
    ap = argparse.ArgumentParser(prog="python -m bench quality")
    ap.add_argument("--limit", type=int, default=0, help="only the first N corpus pages")
    ap.add_argument("--part", choices=PARTS, default="all", help="which part of the fixed split (default: all)")
    ap.add_argument("--generator", choices=("ours", "independent", "both"), default="both",
                    help="which mutation generator (default: both)")
    ap.add_argument("--save", metavar="FILE", help="also write the figures as JSON (e.g. bench/results/quality.json)")
    args = ap.parse_args(argv)
    pages = part(corpus_pages(), args.part)[: args.limit or None]
    out: dict[str, object] = {"part": args.part, "pages": len(pages)}
    for name in ("ours", "independent") if args.generator == "both" else (args.generator,):
        t0 = time.perf_counter()
        results = evaluate(pages, generator=name)
        out[name] = {"seconds": round(time.perf_counter() - t0, 1), **summary(results),
                     "by_mutation": {m: {"real": t.real, "pairs": t.pairs, "real_verdicts": t.real_verdicts,
                                         "classes": dict(t.classes)} for m, t in results.items()}}
        print(f"## {name} generator, {args.part} pages\n" + table(results))
        for m, t in results.items():
            if t.misses:
                print(f"{m}: {len(t.misses)} wrong: {', '.join(sorted(set(t.misses))[:8])}")
    if args.save:
        Path(args.save).write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return {k: ({kk: vv for kk, vv in v.items() if kk != "by_mutation"} if isinstance(v, dict) else v)
            for k, v in out.items()}
