"""Speed of the zero-cost QueryClassifier on real statements of the labeled log.

    python benchmarks/classifier.py [--day 2025-06-02]

Reports microseconds per statement (mean, median, p99) per category, measured one statement
at a time as serving calls it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from pathlib import Path

import polars as pl

from query_predictor.core.classifier import QueryClassifier

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day", default="2025-06-02", help="labeled day to read")
    args = parser.parse_args()
    path = REPO / "data" / "labeled" / f"date={args.day}" / "part-0.parquet"
    statements = pl.read_parquet(path, columns=["query"])["query"].to_list()
    classifier = QueryClassifier()
    timings: dict[str, list[float]] = defaultdict(list)
    clock = time.perf_counter_ns
    for _ in range(3):  # warm caches, then keep the last pass
        timings.clear()
        for sql in statements:
            started = clock()
            category = classifier.classify(sql)
            timings[category].append((clock() - started) / 1000)
    every = sorted(t for ts in timings.values() for t in ts)
    print(f"{len(statements):,} statements from {args.day}")
    print(f"{'category':<20} {'count':>7} {'mean us':>8} {'median':>7} {'p99':>7}")
    rows = [*sorted(timings.items(), key=lambda kv: -len(kv[1])), ("(all)", every)]
    for category, ts in rows:
        ts = sorted(ts)
        p99 = ts[min(len(ts) - 1, int(0.99 * len(ts)))]
        print(
            f"{category:<20} {len(ts):>7} {statistics.fmean(ts):>8.1f} "
            f"{statistics.median(ts):>7.1f} {p99:>7.1f}"
        )


if __name__ == "__main__":
    main()
