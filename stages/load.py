"""Stage load: validate, label, filter and deduplicate the raw log (params: data_loading, filters).

python stages/load.py --out data/labeled --quarantine data/quarantine --metrics metrics/load.json
"""

from __future__ import annotations

import time
from pathlib import Path

from query_predictor.storage import atomic_dir, write_json, write_parquet
from query_predictor.summary import print_summary, run_stage, start_stage
from query_predictor.training.analysis import distributions, write_tables
from query_predictor.training.loading import run_load, write_by_day
from query_predictor.training.windows import check_coverage


def main() -> None:
    args, params = start_stage(__doc__, ("--out", "--quarantine", "--metrics", "--analysis"))
    started = time.perf_counter()
    result = run_load(params.data_loading, params.filters)
    days = result.labeled["event_date"]
    check_coverage(days.min(), days.max(), params)  # before anything is written
    with atomic_dir(args.out) as tmp:
        write_by_day(result.labeled, tmp)
    with atomic_dir(args.quarantine) as tmp:
        write_parquet(result.quarantined, Path(tmp) / "quarantine.parquet")
    metrics = result.metrics
    write_json(args.metrics, metrics)
    with atomic_dir(args.analysis) as tmp:
        write_json(Path(tmp) / "analysis.json", {"enabled": params.analysis.enabled})
        if params.analysis.enabled:
            write_tables(distributions(result.labeled, top_users=params.analysis.top_users), tmp)
    print_summary(
        "load",
        {
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
