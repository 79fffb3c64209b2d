"""Benchmark: classifying the IMS images document against an upstream-Glance-style variant.

Baseline (same run): parsing and canonicalising both documents, the work every poll does anyway.
Prints the median time of each and the ratio, so the cost of deepdiff + classification is visible
relative to what a poll already pays.

    python bench/bench_classify.py [--repeat 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.judge.canonical import canonical_json, parse_document
from monitor.judge.kinds.schema.rules import classify

CASE = Path(__file__).resolve().parent.parent / "tests" / "data" / "diff_cases" / "seed-glance-train-combined"


def median_seconds(work: Callable[[], object], repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    old_bytes, new_bytes = (CASE / "old.json").read_bytes(), (CASE / "new.json").read_bytes()
    old, new = json.loads(old_bytes), json.loads(new_bytes)

    def baseline() -> None:
        canonical_json(parse_document(old_bytes))
        canonical_json(parse_document(new_bytes))

    base = median_seconds(baseline, args.repeat)
    diff = median_seconds(lambda: classify(old, new), args.repeat)
    changes = len(classify(old, new))
    print(f"document: {len(old_bytes)} bytes, {changes} changes, median of {args.repeat}")
    print(f"baseline  parse + canonicalise both: {base * 1000:7.2f} ms   1.00x")
    print(f"classify  deepdiff + rules:          {diff * 1000:7.2f} ms  {diff / base:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
