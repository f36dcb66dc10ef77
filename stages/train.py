"""Stage train: cross-validated XGBoost, threshold on validation, refit on training +
validation (model.refit_on_validation), PRD check on test.

    python stages/train.py --features data/features --vocab models/tfidf_vocab.json \
        --model models/xgb_model.json --metrics metrics/train.json --plots plots/train
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import polars as pl

from query_predictor.storage import atomic_dir, atomic_file, write_json
from query_predictor.summary import print_summary, run_stage, start_stage
from query_predictor.training.model import (
    cross_validate_and_fit,
    load_features,
    refit_with_validation,
    summarize_folds,
    vocabulary_size,
)
from query_predictor.training.sampling import sample_as_configured
from query_predictor.training.threshold import (
    choose_threshold,
    cost_curve,
    curve_table,
    prd_check,
)

log = logging.getLogger("train")


def main() -> None:
    args, params = start_stage(
        __doc__, ("--features", "--vocab", "--model", "--metrics", "--plots")
    )
    model, prd = params.model, params.prd
    started = time.perf_counter()
    terms = vocabulary_size(args.vocab)
    x_train, y_train = load_features(Path(args.features) / "train.parquet", n_terms=terms)
    x_val, y_val = load_features(Path(args.features) / "val.parquet", n_terms=terms)
    x_test, y_test = load_features(Path(args.features) / "test.parquet", n_terms=terms)
    days = pl.read_parquet(Path(args.features) / "train.parquet", columns=["event_date"])
    result = cross_validate_and_fit(
        x_train,
        y_train,
        model,
        days=days["event_date"].to_numpy(),
        threads=params.engine.workers,
    )
    val_scores = result.model.predict_proba(x_val)[:, 1]
    choice = choose_threshold(
        y_val,
        val_scores,
        cost_fn=model.cost_fn,
        cost_fp=model.cost_fp,
        min_recall=prd.min_recall,
        policy=model.threshold_policy,
        level=model.threshold_confidence,
    )
    confidence = choice.confidence

    def judged(scored: np.ndarray) -> dict[str, object]:
        return prd_check(
            y_test, scored, threshold=choice.chosen, min_recall=prd.min_recall,
            max_fnr=prd.max_fnr,
        )  # fmt: skip

    exported, refit = result.model, None
    if model.refit_on_validation:
        labels = pl.read_parquet(  # the few columns sampling reads (x_val has no ids)
            Path(args.features) / "val.parquet",
            columns=["query_id", "is_heavy", "cpu_time_millis", "peak_memory_bytes"],
        )
        keep = sample_as_configured(labels, params).keep.to_numpy()
        exported = refit_with_validation(
            (x_train, y_train), (x_val, y_val), keep, model, result.n_trees,
            threads=params.engine.workers,
        )  # fmt: skip
        refit = {
            "validation_rows": int(keep.sum()),
            "validation_heavy": int(y_val[keep].sum()),
            # the model fitted on the training days alone, judged on test the same way
            "test_before_refit": judged(result.model.predict_proba(x_test)[:, 1]),
        }
    with atomic_file(args.model) as tmp:  # XGBoost's own JSON format, never pickle
        tmp.write_bytes(exported.get_booster().save_raw(raw_format="json"))
    check = judged(exported.predict_proba(x_test)[:, 1])
    curve = cost_curve(y_val, val_scores, cost_fn=model.cost_fn, cost_fp=model.cost_fp)
    with atomic_dir(args.plots) as tmp:
        pl.DataFrame(curve_table(curve)).write_csv(Path(tmp) / "cost_curve.csv")
        pl.DataFrame(
            {
                "trees": range(1, result.cv_rounds + 1),
                "mean_held_out_pr_auc": [round(v, 6) for v in result.cv_curve],
            }
        ).write_csv(Path(tmp) / "cv_curve.csv")
    write_json(
        args.metrics,
        {
            **summarize_folds(result.folds),
            "folds": result.folds,
            "n_trees": result.n_trees,
            # trees the folds grew before their mean held-out PR-AUC stopped rising (the
            # budget, model.n_estimators, when it never did)
            "cv_rounds": result.cv_rounds,
            "threshold": {
                "chosen": choice.chosen,
                "policy": choice.policy,
                "cost_optimal": choice.cost_optimal,
                "cost_optimal_validation_cost": choice.cost_optimal_cost,
                "cost_optimal_validation_recall": choice.cost_optimal_recall,
                "highest_meeting_min_recall": choice.recall_threshold,
                "confidence": confidence.as_dict(),
            },
            "test": check,
            "refit_on_validation": refit,
        },
    )
    verdict = "MET" if check["prd_compliant"] else "NOT MET"
    print_summary(
        "train",
        {
            "folds": len(result.folds),
            **summarize_folds(result.folds),
            "trees": f"{result.n_trees} (the folds stopped at {result.cv_rounds} of "
            f"{model.n_estimators})",
            "threshold": f"{choice.chosen:.6f} ({choice.policy})",
            "validation recall bound": (
                f"{confidence.recall_lower_bound:.4f} at {confidence.level:.0%} confidence, "
                f"from {confidence.heavy} heavy queries ({confidence.missed} missed)"
            ),
            "refit": "off (the exported model saw the training days only)"
            if refit is None
            else f"on training + {refit['validation_rows']:,} validation rows "
            f"({refit['validation_heavy']:,} heavy), {result.n_trees} trees; before it, test "
            f"recall {refit['test_before_refit']['recall']:.4f}",
            "PRD on test": f"{verdict}: recall {check['recall']:.4f} (>= {prd.min_recall}), "
            f"FNR {check['fnr']:.4f} (<= {prd.max_fnr})",
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
    if not confidence.resolvable:
        log.warning(
            "validation holds %d heavy queries; at least %d are needed to show recall >= %s "
            "with %.0f%% confidence: widen splits.val_days",
            confidence.heavy,
            confidence.heavy_needed,
            prd.min_recall,
            100 * confidence.level,
        )
    if prd.enforce and not check["prd_compliant"]:
        raise SystemExit("error: the PRD is not met and prd.enforce is true")


if __name__ == "__main__":
    run_stage(main)
