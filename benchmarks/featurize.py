"""Throughput of base features + TF-IDF on one core, beside a sqlglot parse of the same SQL.

    python benchmarks/featurize.py [--split test] [--rows 20000] [--repeat 3]

Reads statements and their context from ``data/splits/<split>.parquet`` and the fitted
vocabulary from ``models/tfidf_vocab.json`` (run ``dvc repro featurize`` first). Every path
goes from raw SQL and context to the 78 base features, tables, template and TF-IDF vector:

- batch: the featurize stage's own code on one core over a frame of ``--rows`` rows:
  :func:`analyze_frame` (workers=1), :func:`tfidf_vectors` and :func:`with_tfidf`. A text
  that repeats in the frame is scanned and weighed once; every row still gets its own
  context features and its TF-IDF vector.
- per statement: :meth:`FeatureExtractor.analyze` and :meth:`TfidfVocabulary.transform`, one
  query at a time, nothing shared between calls but the bounded caches of table and code
  features (what serving does);
- ``sqlglot.parse_one(sql, read="trino")`` (a parse alone, no features) on a subset.

Each path is timed ``--repeat`` times; the best and the median run are printed, because a
shared virtual machine can slow any single run by a third. Peak RSS of the process is
printed at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

from query_predictor.core import _textscan
from query_predictor.core.features import FeatureExtractor
from query_predictor.core.tfidf import TfidfVocabulary
from query_predictor.training.featurize import (
    analyze_frame,
    contexts_of,
    tfidf_vectors,
    with_tfidf,
)

REPO = Path(__file__).resolve().parents[1]


def timed(run: Callable[[], object], repeat: int) -> list[float]:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return seconds


def report(label: str, count: int, seconds: list[float]) -> None:
    best, median = min(seconds), statistics.median(seconds)
    print(
        f"{label:<44} {count:>7,} {count / best:>9,.0f} q/s {count / median:>9,.0f} q/s "
        f"{best / count * 1e6:>7.1f} us"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sqlglot-rows", type=int, default=2_000)
    args = parser.parse_args()
    frame = pl.read_parquet(REPO / "data" / "splits" / f"{args.split}.parquet").head(args.rows)
    vocab = TfidfVocabulary.from_json(REPO / "models" / "tfidf_vocab.json")
    statements = frame["query"].to_list()
    contexts = contexts_of(frame)
    n, distinct = len(statements), frame["query"].n_unique()
    chars = sum(map(len, statements)) / n
    print(
        f"{n:,} statements of the {args.split} split, {distinct:,} distinct texts, "
        f"{chars:.0f} characters on average; one core; {dt.datetime.now(dt.UTC):%Y-%m-%d}"
    )
    print(f"{'':<44} {'queries':>7} {'best':>13} {'median':>13} {'per query':>10}")

    def batch() -> None:
        analyzed = analyze_frame(frame, workers=1)
        with_tfidf(analyzed.rows, tfidf_vectors(analyzed.terms, vocab))

    report("batch: the featurize stage's functions", n, timed(batch, args.repeat))

    def single() -> None:
        extractor = FeatureExtractor()
        for sql, context in zip(statements, contexts, strict=True):
            vocab.transform(extractor.analyze(sql, context).terms)

    report("per statement: analyze + transform", n, timed(single, args.repeat))

    texts = frame["query"].unique(maintain_order=True).to_list()
    lowered = [sql.lower() for sql in texts]
    report(
        "  of which the compiled scan, per distinct",
        len(texts),
        timed(lambda: [_textscan.scan(sql) for sql in lowered], args.repeat),
    )

    import sqlglot  # the baseline; a dev dependency

    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # it warns on every fallback
    subset = statements[: args.sqlglot_rows]
    failed = 0

    def parse() -> None:
        nonlocal failed
        failed = 0
        for sql in subset:
            try:
                sqlglot.parse_one(sql, read="trino")
            except sqlglot.errors.SqlglotError:
                failed += 1

    report(f"sqlglot {sqlglot.__version__} parse_one (no features)", len(subset), timed(parse, 1))
    if failed:
        print(f"  sqlglot could not parse {failed} of {len(subset)} statements")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MB")


if __name__ == "__main__":
    main()
