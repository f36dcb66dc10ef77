"""Stage generate: write the synthetic Trino query log (params: synth, engine.workers).

python stages/generate.py --out data/raw --metrics metrics/generate.json
"""

from __future__ import annotations

import argparse
import logging
import time

from query_predictor.params import load_params
from query_predictor.storage import write_json
from query_predictor.summary import print_summary, run_stage
from query_predictor.synth.generator import generate, summarize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory of day files")
    parser.add_argument("--metrics", required=True, help="summary JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params()
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
