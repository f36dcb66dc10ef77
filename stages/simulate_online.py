"""Stage simulate_online: the synthetic log's replay window, tagged as a deployed service would.

    python stages/simulate_online.py --models models --generated data/raw \
        --out data/online/client_tags.parquet

Writes ``query_id`` -> ``client_tags`` (the row's tags plus the decision tag) for replay to
join in. Only on the generated log (``data_loading.raw_path`` is ``--generated``) and with
``simulate_online.enabled``; otherwise it writes an empty table and replay reads the log's
own ``client_tags`` as they are.
"""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl

from query_predictor.service.predictor import Predictor
from query_predictor.storage import write_parquet
from query_predictor.summary import print_summary, run_stage, start_stage
from query_predictor.synth.online import TAGS_SCHEMA, simulate_tags
from query_predictor.training.replay import load_window


def main() -> None:
    args, params = start_stage(__doc__, ("--models", "--generated", "--out"))
    started = time.perf_counter()
    raw = params.data_loading.raw_path
    generated = (
        not raw.startswith("s3://") and Path(raw).resolve() == Path(args.generated).resolve()
    )
    if not (params.simulate_online.enabled and generated):
        why = "simulate_online.enabled is false" if generated else f"{raw} is not the generated log"
        write_parquet(pl.DataFrame(schema=TAGS_SCHEMA), args.out)
        print_summary("simulate_online", {"skipped": f"{why}; replay reads the log's own tags"})
        return
    predictor = Predictor.from_bundle(args.models)
    labeled = load_window(
        params.data_loading,
        params.filters,
        start=params.replay.start_date,
        end=params.replay.end_date,
    )
    tags, counts = simulate_tags(
        labeled,
        predictor,
        skew_share=params.simulate_online.skew_share,
        seed=params.simulate_online.seed,
    )
    write_parquet(tags, args.out)
    print_summary(
        "simulate_online",
        {**counts, "out": args.out, "seconds": round(time.perf_counter() - started, 1)},
    )


if __name__ == "__main__":
    run_stage(main)
