"""Stage split: time windows, zero-cost categories removed, boundary sampling of train.

    python stages/split.py --labeled data/labeled --zero-cost models/zero_cost_categories.json \
        --out data/splits --metrics metrics/split.json --plots plots/split \
        --analysis plots/analysis/split
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from query_predictor.storage import atomic_dir, write_json, write_parquet
from query_predictor.summary import print_summary, run_stage, start_stage
from query_predictor.training.analysis import distributions, write_tables
from query_predictor.training.engines import open_engine
from query_predictor.training.splitting import run_split


def main() -> None:
    args, params = start_stage(
        __doc__, ("--labeled", "--zero-cost", "--out", "--metrics", "--plots", "--analysis")
    )
    with open_engine(params) as engine:
        result = run_split(args.labeled, args.zero_cost, params, categorized=engine.categorized)
    with atomic_dir(args.out) as tmp:
        for name in result.decided:  # one split's full rows in memory at a time
            write_parquet(result.rows(name), Path(tmp) / f"{name}.parquet")
    with atomic_dir(args.plots) as tmp:
        pl.DataFrame(result.curve).write_csv(Path(tmp) / "sampling_curve.csv")
        pl.DataFrame(result.buckets).write_csv(Path(tmp) / "kept_by_distance.csv")
    write_json(args.metrics, result.metrics)
    with atomic_dir(args.analysis) as tmp:
        write_json(Path(tmp) / "analysis.json", {"enabled": params.analysis.enabled})
        if params.analysis.enabled:
            top = params.analysis.top_users
            before, after = result.before_sampling, result.decided["train"]
            write_tables(distributions(before, top_users=top), tmp, prefix="train_before_")
            write_tables(distributions(after, top_users=top), tmp, prefix="train_after_")
    splits = result.metrics["splits"]
    sampling = result.metrics["sampling"]
    summary = {
        f"{name} ({s['start']} .. {s['end']})": f"{s['rows']:>8} rows, heavy {s['heavy_share']:.2%}"
        for name, s in splits.items()
    }
    print_summary(
        "split",
        {
            "rows": result.metrics["rows"],
            **summary,
            "zero-cost rows removed": result.metrics["zero_cost_removed"],
            "light:heavy in train": sampling["achieved_ratio"],
            "ratio reachable": sampling["ratio_reachable"],
        },
    )


if __name__ == "__main__":
    run_stage(main)
