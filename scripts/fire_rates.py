"""Each base feature's fire rate on the synthetic log beside a foreign log, into the docs.

    make fire-rates    # = python scripts/fire_rates.py --synthetic data/raw \\
                       #       --foreign .cache/foreign-log (built by tests/foreign_log.py)

Both logs go through the same path: every parquet file under the path, conformed to the raw
schema, invalid rows left out (:func:`~query_predictor.core.schema.split_valid`), at most
``--max-rows`` rows kept by a hash of ``query_id``, then the one shared featurizer
(:meth:`FeatureExtractor.analyze_many`, with each row's context as the featurize stage builds
it). For each of the 78 base features it records the share of rows where the feature is not
zero and the number of distinct values, writes ``docs/feature_fire_rates.json`` and
regenerates ``docs/features.md`` (:mod:`query_predictor.catalogue`). Features constant on one
log and varied on the other are printed; their reason goes in ``FIRE_RATE_NOTES`` there.

Without ``--synthetic``, the default synthetic log (``params.yaml``'s ``synth``: same world,
same window) is generated at ``--queries-per-day`` into a temporary folder: the rates of a
share, not the volume, are what is compared.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from query_predictor.catalogue import FIRE_RATES, constant_on, render
from query_predictor.core.features import BASE_NAMES, FeatureExtractor
from query_predictor.core.schema import split_valid
from query_predictor.params import load_params
from query_predictor.storage import write_json
from query_predictor.training.featurize import CONTEXT_COLUMNS, contexts_of
from query_predictor.training.hashing import unit_hashes
from query_predictor.training.loading import scan_raw

SAMPLE_SEED = 11


def base_matrix(path: str, *, max_rows: int) -> np.ndarray:
    """The base features (rows x 78) of the valid rows of the raw log under ``path``, at most
    ``max_rows`` of them, chosen by a hash of ``query_id``."""
    frame, _ = split_valid(scan_raw(path).collect())
    if frame.height > max_rows:
        keep = unit_hashes(frame["query_id"], SAMPLE_SEED)
        frame = frame.filter(pl.Series(keep <= np.sort(keep)[max_rows - 1]))
    frame = frame.select(CONTEXT_COLUMNS)
    analyses = FeatureExtractor().analyze_many(frame["query"].to_list(), contexts_of(frame))
    rows = [a.base for a in analyses]
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(BASE_NAMES))


def rates(matrix: np.ndarray) -> list[dict[str, float | int]]:
    """Per feature (column): ``fired`` (share of rows not zero) and ``distinct`` values."""
    out = []
    for column in matrix.T:
        values = column[~np.isnan(column)]
        fired = float(np.mean(values != 0)) if len(values) else 0.0
        out.append({"fired": round(fired, 6), "distinct": len(np.unique(values))})
    return out


def measure(logs: dict[str, tuple[str, str]], *, max_rows: int) -> dict:
    """``logs``: name -> (path, description). The JSON the catalogue renders."""
    features: list[dict] = [{"name": name} for name in BASE_NAMES]  # catalogue order
    measured: dict = {"logs": {}, "features": features}
    for log, (path, description) in logs.items():
        matrix = base_matrix(path, max_rows=max_rows)
        measured["logs"][log] = {"description": description, "rows": len(matrix)}
        for feature, values in zip(features, rates(matrix), strict=True):
            feature[log] = values
    return measured


def describe(path: str) -> str:
    """What the log under ``path`` is: its ``description.txt`` when it has one."""
    about = Path(path) / "description.txt"
    return about.read_text().strip() if about.is_file() else f"the raw log at {path}"


def _generate_synthetic(out: Path, queries_per_day: int) -> str:
    from query_predictor.synth.generator import generate

    synth = load_params("params.yaml").synth.model_copy(update={"queries_per_day": queries_per_day})
    generate(synth, output_dir=out, workers=0)
    return (
        f"the generator with params.yaml's synth ({synth.start_date} .. {synth.end_date}, "
        f"seed {synth.seed}) at {queries_per_day:,} queries per day"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--synthetic", help="raw synthetic log (default: generate one)")
    parser.add_argument("--foreign", required=True, help="raw foreign log (tests/foreign_log)")
    parser.add_argument("--queries-per-day", type=int, default=2000)
    parser.add_argument("--max-rows", type=int, default=200_000)
    parser.add_argument("--json", type=Path, default=FIRE_RATES)
    parser.add_argument("--docs", type=Path, default=Path("docs/features.md"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="synthetic-log-") as scratch:
        if args.synthetic:
            synthetic = (args.synthetic, describe(args.synthetic))
        else:
            out = Path(scratch) / "raw"
            synthetic = (str(out), _generate_synthetic(out, args.queries_per_day))
        logs = {"synthetic": synthetic, "foreign": (args.foreign, describe(args.foreign))}
        measured = measure(logs, max_rows=args.max_rows)
    write_json(args.json, measured)
    args.docs.write_text(render(measured))
    width = max(map(len, BASE_NAMES))
    print(f"{'feature'.ljust(width)}  synthetic fired/distinct  foreign fired/distinct")
    for r in measured["features"]:
        name, side = r["name"], constant_on(r)
        cells = [f"{r[log]['fired']:7.1%} {r[log]['distinct']:>8,}" for log in logs]
        print(f"{name.ljust(width)}  {cells[0]:>24}  {cells[1]:>22}  {side or ''}")
    rows = {log: measured["logs"][log]["rows"] for log in logs}
    print(f"rows: {rows}; wrote {args.json} and {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
