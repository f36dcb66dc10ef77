"""Throughput of base features + TF-IDF, one core, beside a sqlglot parse of the same SQL.

    python benchmarks/featurize.py [--split test] [--rows 20000]

Reads statements from ``data/splits/<split>.parquet`` and the fitted vocabulary from
``models/tfidf_vocab.json`` (run ``dvc repro featurize`` first). Reports queries per second,
each from raw SQL and its context to the 78 base features, tables, template fingerprint and
TF-IDF vector, for:

- per statement: :meth:`FeatureExtractor.analyze` one query at a time (what serving does);
- batch: :meth:`FeatureExtractor.analyze_many` over all the rows at once, the API the
  featurize stage runs on each chunk; it analyses the text of a statement that repeats in
  the batch once (the count of distinct texts is printed), and every row still gets its
  own context features and its own TF-IDF vector;
- ``sqlglot.parse_one(sql, read="trino")`` (a parse alone, no features) on a subset.

Each is timed once, from nothing: no state is kept between them. Peak RSS of the process is
printed at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import time
from pathlib import Path

import polars as pl

from query_predictor.core.features import FeatureExtractor, QueryContext
from query_predictor.core.tfidf import TfidfVocabulary

REPO = Path(__file__).resolve().parents[1]


def rate(label: str, count: int, seconds: float) -> None:
    print(
        f"{label:<48} {count:>8,} queries {seconds:>7.2f} s {count / seconds:>10,.0f} q/s "
        f"{seconds / count * 1e6:>8.1f} us/q"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--sqlglot-rows", type=int, default=2_000)
    args = parser.parse_args()
    frame = pl.read_parquet(REPO / "data" / "splits" / f"{args.split}.parquet").head(args.rows)
    statements = frame["query"].to_list()
    contexts = [
        QueryContext(user=u, source=s, catalog=c, schema=sc, query_type=q, time=t)
        for u, s, c, sc, q, t in frame.select(
            "user", "source", "catalog", "schema", "query_type", "create_time"
        ).iter_rows()
    ]
    vocab = TfidfVocabulary.from_json(REPO / "models" / "tfidf_vocab.json")
    extractor = FeatureExtractor()
    chars = sum(map(len, statements)) / len(statements)
    distinct = frame["query"].n_unique()
    print(
        f"{len(statements):,} statements from the {args.split} split ({distinct:,} distinct "
        f"texts), {chars:.0f} characters on average; {dt.datetime.now(dt.UTC):%Y-%m-%d}"
    )

    n = len(statements)
    started = time.perf_counter()
    for sql, ctx in zip(statements, contexts, strict=True):
        vocab.transform(extractor.analyze(sql, ctx).terms)
    rate("per statement: analyze + TF-IDF", n, time.perf_counter() - started)

    started = time.perf_counter()
    for analysis in extractor.analyze_many(statements, contexts):
        vocab.transform(analysis.terms)
    rate("batch: analyze_many + TF-IDF (featurize stage)", n, time.perf_counter() - started)

    import logging

    import sqlglot  # the baseline; a dev dependency

    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # it warns on every fallback

    subset = statements[: args.sqlglot_rows]
    failed = 0
    started = time.perf_counter()
    for sql in subset:
        try:
            sqlglot.parse_one(sql, read="trino")
        except sqlglot.errors.SqlglotError:
            failed += 1
    rate(
        f"sqlglot {sqlglot.__version__} parse_one (no features)",
        len(subset),
        time.perf_counter() - started,
    )
    if failed:
        print(f"  sqlglot could not parse {failed} of {len(subset)} statements")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MB")


if __name__ == "__main__":
    main()
