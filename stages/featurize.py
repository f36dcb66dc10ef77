"""Stage featurize: base, history and TF-IDF features for each split, with a parity check.

    python stages/featurize.py --labeled data/labeled --splits data/splits \
        --out data/features --models models --metrics metrics/featurize.json
"""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl

from query_predictor.core.featurizer import FEATURE_NAMES
from query_predictor.core.history import HISTORY_NAMES
from query_predictor.storage import atomic_dir, write_json, write_parquet
from query_predictor.summary import print_summary, run_stage, start_stage
from query_predictor.training.engines import open_engine
from query_predictor.training.featurize import (
    LABELED_COLUMNS,
    convention_options,
    featurize,
)
from query_predictor.training.windows import SPLITS, Window, labeled_parts, windows_for


def main() -> None:
    args, params = start_stage(__doc__, ("--labeled", "--splits", "--out", "--models", "--metrics"))
    data, features = params.data_loading, params.features
    windows = windows_for(params)
    started = time.perf_counter()
    span = Window("all", data.start_date, windows["test"].end)
    splits = {name: pl.scan_parquet(Path(args.splits) / f"{name}.parquet") for name in SPLITS}
    with atomic_dir(args.out) as tmp, open_engine(params) as engine:
        result = featurize(
            labeled_parts(args.labeled, span, columns=LABELED_COLUMNS),  # a day at a time
            splits,
            train_end=windows["train"].end,
            history_end=windows["val"].end,
            vocab_size=features.tfidf_vocab_size,
            prior_weight=features.history_prior_weight,
            parity_sample=features.parity_sample,
            seed=features.seed,
            conventions=convention_options(features),
            workers=params.engine.workers,
            analyze=engine.analyze,
            sink=lambda name, matrix: write_parquet(matrix, tmp / f"{name}.parquet"),
            analyzed=engine.close,  # its workers are idle from then on
        )
    models = Path(args.models)
    result.vocabulary.to_json(models / "tfidf_vocab.json")
    write_parquet(result.history, models / "history_stats.parquet")
    result.conventions.to_json(models / "sql_conventions.json")
    nnz = result.tfidf_mean_nonzero
    absent = result.context_absent  # context the log does not have: its features are constant
    write_json(
        args.metrics,
        {
            "base_features": len(FEATURE_NAMES) - len(HISTORY_NAMES),
            "historical_features": len(HISTORY_NAMES),
            "tfidf_terms": len(result.vocabulary),
            "dense_features": len(FEATURE_NAMES),
            "rows": result.rows,
            "tfidf_mean_nonzero": {n: round(v, 3) for n, v in nnz.items()},
            "history_keys": result.history.group_by("kind").len().sort("kind").to_dicts(),
            "conventions": result.conventions.stats,
            "context_columns_absent": absent,
            "parity": result.parity,
        },
    )
    print_summary(
        "featurize",
        {
            "rows": result.rows,
            "features": f"{len(FEATURE_NAMES) - len(HISTORY_NAMES)} base + "
            f"{len(HISTORY_NAMES)} history + {len(result.vocabulary)} TF-IDF terms",
            "conventions": result.conventions.stats,
            "context without values": ", ".join(absent) or "none",
            "parity": result.parity,
            "seconds": round(time.perf_counter() - started, 1),
        },
    )


if __name__ == "__main__":
    run_stage(main)
