"""Stage load: validate, label, filter and deduplicate the raw log (params: data_loading, filters).

python stages/load.py --out data/labeled --quarantine data/quarantine --metrics metrics/load.json

Day by day, with the engine of ``engine.name``; an interrupted run resumes from
``data_loading.checkpoint_dir``.
"""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl

from query_predictor.storage import atomic_dir, write_json
from query_predictor.summary import print_summary, run_stage, start_stage
from query_predictor.training.analysis import ANALYSIS_COLUMNS, distributions, write_tables
from query_predictor.training.engines import open_engine
from query_predictor.training.partitions import load_partitions, write_outputs
from query_predictor.training.windows import check_coverage


def main() -> None:
    args, params = start_stage(__doc__, ("--out", "--quarantine", "--metrics", "--analysis"))
    started = time.perf_counter()
    data = params.data_loading
    with open_engine(params) as engine:
        outcome = load_partitions(
            data, params.filters, runner=engine.load_runner(), checkpoint_dir=data.checkpoint_dir
        )
    check_coverage(outcome.first_day, outcome.last_day, params)  # before anything is written
    with atomic_dir(args.out) as labeled, atomic_dir(args.quarantine) as quarantine:
        write_outputs(
            outcome, labeled_dir=labeled, quarantine_file=quarantine / "quarantine.parquet"
        )
    metrics = outcome.metrics
    write_json(args.metrics, metrics)
    with atomic_dir(args.analysis) as tmp:
        write_json(Path(tmp) / "analysis.json", {"enabled": params.analysis.enabled})
        if params.analysis.enabled and metrics["rows_labeled"]:
            files = sorted(Path(args.out).rglob("*.parquet"))
            frame = pl.scan_parquet(files).select(ANALYSIS_COLUMNS).collect()
            write_tables(distributions(frame, top_users=params.analysis.top_users), tmp)
    outcome.store.remove()
    print_summary(
        "load",
        {
            "engine": params.engine.name,
            "days": f"{outcome.processed} processed, {outcome.reused} from the checkpoint",
            "rows read": metrics["rows_read"],
            "rows labeled": metrics["rows_labeled"],
            "heavy share": metrics["heavy_share"],
            "heavy by reason": metrics["heavy_by_reason"],
            "quarantined": metrics["quarantine_by_reason"],
            "columns without values": ", ".join(metrics["absent_columns"]) or "none",
            "skipped": metrics["skipped"] or "nothing",
            "dropped": metrics["dropped"],
            "seconds": round(time.perf_counter() - started, 1),
        },
    )


if __name__ == "__main__":
    run_stage(main)
