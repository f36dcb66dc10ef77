"""Stage evaluate: the ONNX model on the test split; headline metrics and the review plots.

    python stages/evaluate.py --onnx models/model.onnx --metadata models/metadata.json \
        --model models/xgb_model.json --features data/features \
        --metrics metrics/evaluate.json --plots plots/evaluate
"""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl

from query_predictor.core.featurizer import FEATURE_NAMES
from query_predictor.core.onnx_model import HeavyQueryModel
from query_predictor.storage import atomic_dir, write_json
from query_predictor.summary import print_summary, run_stage, start_stage
from query_predictor.training.evaluate import (
    calibration_table,
    cold_start,
    confusion_table,
    headline,
    importance_table,
    pr_table,
    roc_table,
)
from query_predictor.training.export import load_classifier
from query_predictor.training.model import load_features
from query_predictor.training.threshold import cost_curve, curve_table


def main() -> None:
    args, params = start_stage(
        __doc__, ("--onnx", "--metadata", "--model", "--features", "--metrics", "--plots")
    )
    started = time.perf_counter()
    model = HeavyQueryModel.load(args.onnx, args.metadata)
    terms = model.metadata.input.tfidf_terms
    x_test, y_test = load_features(Path(args.features) / "test.parquet", n_terms=terms)
    scores, decisions = model.predict(x_test)
    costs = {"cost_fn": params.model.cost_fn, "cost_fp": params.model.cost_fp}
    metrics = headline(
        y_test,
        scores,
        decisions,
        threshold=model.threshold,
        min_recall=params.prd.min_recall,
        max_fnr=params.prd.max_fnr,
        **costs,
    )
    unseen = x_test[:, FEATURE_NAMES.index("template_unseen")].toarray().ravel() > 0.5
    metrics["cold_start"] = cold_start(y_test, scores, decisions, unseen)
    tables = {
        "roc": roc_table(y_test, scores),
        "precision_recall": pr_table(y_test, scores),
        "cost_curve": curve_table(cost_curve(y_test, scores, **costs)),
        "confusion": confusion_table(y_test, decisions),
        "calibration": calibration_table(y_test, scores),
        "importance": importance_table(
            load_classifier(args.model).get_booster(), model.feature_names
        ),
    }
    with atomic_dir(args.plots) as tmp:
        for name, rows in tables.items():
            pl.DataFrame(rows).write_csv(Path(tmp) / f"{name}.csv")
    write_json(args.metrics, metrics)
    counts = metrics["counts"]
    print_summary(
        "evaluate",
        {
            "test rows": f"{counts['rows']:,} ({counts['tp'] + counts['fn']:,} heavy)",
            "threshold": f"{model.threshold:.6f}",
            "recall / FNR": f"{metrics['recall']:.4f} / {metrics['fnr']:.4f}",
            "FPR / precision": f"{metrics['fpr']:.4f} / {metrics['precision']:.4f}",
            "routed to heavy cluster": f"{metrics['routed_share']:.2%} of queries",
            "ROC-AUC / PR-AUC": f"{metrics['roc_auc']:.4f} / {metrics['pr_auc']:.4f}",
            "expected cost": f"{metrics['expected_cost']:.4f} per query",
            "PRD": "MET" if metrics["prd_compliant"] else "NOT MET",
            **{f"template {name}": _group(group) for name, group in metrics["cold_start"].items()},
            "plots": ", ".join(tables),
            "seconds": round(time.perf_counter() - started, 1),
        },
    )


def _group(group: dict[str, object]) -> str:
    def pct(value: object) -> str:
        return f"{value:.2%}" if isinstance(value, float) else "n/a"

    return (
        f"{pct(group['share'])} of rows, heavy {pct(group['heavy_share'])}, "
        f"recall {pct(group['recall'])}, routed {pct(group['routed_share'])}"
    )


if __name__ == "__main__":
    run_stage(main)
