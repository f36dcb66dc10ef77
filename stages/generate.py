"""Stage generate: write the synthetic Trino query log (params: synth, engine.workers).

python stages/generate.py --out data/raw --metrics metrics/generate.json
"""

from __future__ import annotations

import time

from query_predictor.storage import write_json
from query_predictor.summary import print_summary, run_stage, start_stage
from query_predictor.synth.generator import generate, summarize


def main() -> None:
    args, params = start_stage(__doc__, ("--out", "--metrics"))
    started = time.perf_counter()
    generate(params.synth, output_dir=args.out, workers=params.engine.workers)
    elapsed = time.perf_counter() - started
    summary = summarize(args.out)
    write_json(args.metrics, summary)
    print_summary(
        "generate",
        {
            "rows": summary["rows"],
            "users": summary["users"],
            "curated share": summary["curated_share"],
            "metadata share": summary["metadata_share"],
            "heavy share (non-curated, raw)": summary["heavy_share_non_curated"],
            "CPU burnt by heavy queries": summary["heavy_cpu_share_non_curated"],
            "seconds": round(elapsed, 1),
        },
    )


if __name__ == "__main__":
    run_stage(main)
