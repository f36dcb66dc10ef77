"""Latency of one prediction in process: zero-cost check, features, TF-IDF, ONNX model.

    python benchmarks/predict.py [--rows 5000] [--models models]

Loads the model bundle (``dvc repro`` or ``dvc pull`` first) and answers, one call at a time
as a router would, ``--rows`` statements of the test split with their context, then as many
zero-cost statements. Prints the latency percentiles of each kind of answer, the calls per
second of one core, and the peak RSS. The design's target: p99 <= 1 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import time
from pathlib import Path

import numpy as np
import polars as pl

from query_predictor.service.predictor import Predictor
from query_predictor.training.featurize import contexts_of

REPO = Path(__file__).resolve().parents[1]
ZERO_COST = [
    "SHOW TABLES FROM hive.sales",
    "DESCRIBE hive.sales.orders",
    "SELECT 1",
    "SET SESSION query_max_run_time = '1h'",
    "SHOW CATALOGS",
]


def report(label: str, seconds: list[float]) -> None:
    us = np.array(seconds) * 1e6
    p50, p90, p99 = np.percentile(us, [50, 90, 99])
    print(
        f"{label:<30} {len(us):>6,} calls  p50 {p50:7.1f} us  p90 {p90:7.1f} us  "
        f"p99 {p99:7.1f} us  max {us.max():8.1f} us  {len(us) / us.sum() * 1e6:>8,.0f} calls/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000)
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    started = time.perf_counter()
    predictor = Predictor.from_bundle(args.models)
    loaded = time.perf_counter() - started
    frame = pl.read_parquet(REPO / "data" / "splits" / f"{args.split}.parquet").head(args.rows)
    statements, contexts = frame["query"].to_list(), contexts_of(frame)
    print(
        f"model {predictor.version}, bundle loaded in {loaded * 1e3:.0f} ms; "
        f"{len(statements):,} statements of the {args.split} split; one core; "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d}"
    )
    for sql, context in zip(statements[:200], contexts, strict=False):  # warm up
        predictor.predict(sql, context)
    by_stage: dict[str, list[float]] = {}
    heavy = 0
    for sql, context in zip(statements, contexts, strict=True):
        begin = time.perf_counter()
        prediction = predictor.predict(sql, context)
        by_stage.setdefault(prediction.stage, []).append(time.perf_counter() - begin)
        heavy += prediction.heavy
    zero = []
    for i in range(len(statements)):
        begin = time.perf_counter()
        predictor.predict(ZERO_COST[i % len(ZERO_COST)], contexts[i])
        zero.append(time.perf_counter() - begin)
    for stage, seconds in sorted(by_stage.items()):
        report(f"{args.split} split, answered by {stage}", seconds)
    report("zero-cost statements", zero)
    print(f"{heavy:,} of {len(statements):,} test statements predicted heavy")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MB")


if __name__ == "__main__":
    main()
