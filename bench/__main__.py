"""`python -m bench [crawl|extract|metrics|quality|soak|web] [options]`: run one benchmark, or all, print JSON."""

from __future__ import annotations

import importlib
import json
import sys

BENCHES = ("extract", "quality", "crawl", "metrics", "soak", "web", "scale")


def main() -> None:
    argv = sys.argv[1:]
    names = [argv.pop(0)] if argv and not argv[0].startswith("-") else list(BENCHES)
    for name in names:
        if name not in BENCHES:
            sys.exit(f"unknown benchmark {name!r} (known: {', '.join(BENCHES)})")
        module = importlib.import_module(f"bench.{name}")
        result = module.main(argv)
        if result:
            print(json.dumps({name: result}, ensure_ascii=False, indent=2))


main()
