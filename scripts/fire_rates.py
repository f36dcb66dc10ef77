"""Each base feature's fire rate on the synthetic log beside a foreign log, into the docs.

    make fire-rates    # = python scripts/fire_rates.py --synthetic data/raw \\
                       #       --foreign .cache/foreign-log (built by tests/foreign_log.py)

Both logs go through the same path: every parquet file under the path, conformed to the raw
schema, invalid rows left out (:func:`~query_predictor.core.schema.split_valid`), the query
type derived from the SQL where the log has none (as ``load`` does), then the featurize
stage's own code (:func:`analyze_frame`, the one shared ``FeatureExtractor``), with the
partition columns and service users learned from that log (``params.yaml``'s ``features``
settings; the pipeline learns them on its training window). For each of the 78 base features
it records the share of rows where the feature is not zero and the number of distinct values,
writes ``docs/feature_fire_rates.json`` and regenerates ``docs/features.md``
(:mod:`query_predictor.catalogue`). Features constant on one log and varied on the other are
printed; their reason goes in ``FIRE_RATE_NOTES`` there.

Without ``--synthetic``, the default synthetic log (``params.yaml``'s ``synth``: same world,
same window) is generated at ``--queries-per-day`` into a temporary folder: the rates of a
share, not the volume, are what is compared.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from query_predictor.catalogue import FIRE_RATES, constant_on, render
from query_predictor.core.conventions import fit_conventions
from query_predictor.core.features import BASE_NAMES
from query_predictor.core.schema import absent_columns, split_valid
from query_predictor.params import Features, Synth, load_params
from query_predictor.storage import write_json
from query_predictor.training.featurize import CONTEXT_COLUMNS, analyze_frame, with_conventions
from query_predictor.training.loading import scan_raw, with_query_types

CONVENTION_PARAMS = {
    "partition_min_templates",
    "service_min_queries",
    "service_repeat_share",
    "service_user_pattern",
}


def base_matrix(path: str, *, features: Features, workers: int) -> np.ndarray:
    """The base features (rows x 78) of the valid rows of the raw log under ``path``, as the
    pipeline computes them: ``query_type`` derived from the SQL where the log has none, the
    batch featurizer, then the partition columns and service users learned from this log."""
    conformed = scan_raw(path).collect()
    frame, _ = split_valid(conformed, absent=absent_columns(conformed))
    frame = with_query_types(frame).select(CONTEXT_COLUMNS)
    rows = analyze_frame(frame, workers=workers).rows
    learned = fit_conventions(rows, **features.model_dump(include=CONVENTION_PARAMS))
    return with_conventions(rows, learned).select(BASE_NAMES).to_numpy().astype(np.float64)


def rates(matrix: np.ndarray) -> list[dict[str, float | int]]:
    """Per feature (column): ``fired`` (share of rows not zero) and ``distinct`` values."""
    out = []
    for column in matrix.T:
        values = column[~np.isnan(column)]
        fired = float(np.mean(values != 0)) if len(values) else 0.0
        out.append({"fired": round(fired, 6), "distinct": len(np.unique(values))})
    return out


def measure(logs: dict[str, tuple[str, str]], *, features: Features) -> dict:
    """``logs``: name -> (path, description). The JSON the catalogue renders."""
    table: list[dict] = [{"name": name} for name in BASE_NAMES]  # catalogue order
    measured: dict = {"logs": {}, "features": table}
    for log, (path, description) in logs.items():
        matrix = base_matrix(path, features=features, workers=os.cpu_count() or 1)
        measured["logs"][log] = {"description": description, "rows": len(matrix)}
        for feature, values in zip(table, rates(matrix), strict=True):
            feature[log] = values
    return measured


def describe(path: str) -> str:
    """What the log under ``path`` is: its ``description.txt`` when it has one."""
    about = Path(path) / "description.txt"
    return about.read_text().strip() if about.is_file() else f"the raw log at {path}"


def _generate_synthetic(out: Path, synth: Synth, queries_per_day: int) -> str:
    from query_predictor.synth.generator import generate

    synth = synth.model_copy(update={"queries_per_day": queries_per_day})
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
    parser.add_argument("--json", type=Path, default=FIRE_RATES)
    parser.add_argument("--docs", type=Path, default=Path("docs/features.md"))
    parser.add_argument("--params", default="params.yaml", help="synth and features settings")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    with tempfile.TemporaryDirectory(prefix="synthetic-log-") as scratch:
        if args.synthetic:
            synthetic = (args.synthetic, describe(args.synthetic))
        else:
            out = Path(scratch) / "raw"
            synthetic = (str(out), _generate_synthetic(out, params.synth, args.queries_per_day))
        logs = {"synthetic": synthetic, "foreign": (args.foreign, describe(args.foreign))}
        measured = measure(logs, features=params.features)
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
