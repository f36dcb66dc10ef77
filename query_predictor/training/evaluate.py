"""Stage ``evaluate``: the exported model judged on the test split, as metrics and plots.

Scores come from the ONNX model through :class:`HeavyQueryModel`, the same code serving runs,
so what is reported is what will be deployed. The test window keeps the natural class balance;
the training split was boundary-sampled, so scores overstate the heavy probability, which the
calibration table shows (the threshold, chosen on validation, already accounts for it).
"""

from __future__ import annotations

import numpy as np
import xgboost as xgb
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from .threshold import prd_verdict, thin

PLOT_POINTS = 400


def routing_rates(
    labels: np.ndarray, routed: np.ndarray, *, min_recall: float, max_fnr: float
) -> dict[str, object]:
    """Recall, FNR, FPR, precision, routed share and PRD compliance of decisions already made
    (True: routed to the heavy cluster), and the confusion counts; what evaluate and replay
    report, the PRD judged by the one rule train uses too."""
    y = np.asarray(labels, dtype=bool)
    routed = np.asarray(routed, dtype=bool)
    prd = prd_verdict(y, routed, min_recall=min_recall, max_fnr=max_fnr)
    tp, fp = int((routed & y).sum()), int((routed & ~y).sum())
    fn, tn = int((~routed & y).sum()), int((~routed & ~y).sum())
    return {
        "recall": prd["recall"],
        "fnr": prd["fnr"],
        "fpr": fp / (fp + tn) if fp + tn else 0.0,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "routed_share": (tp + fp) / y.size,
        "prd_compliant": prd["prd_compliant"],
        "counts": {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "rows": int(y.size)},
    }


def headline(
    labels: np.ndarray,
    scores: np.ndarray,
    decisions: np.ndarray,
    *,
    threshold: float,
    cost_fn: float,
    cost_fp: float,
    min_recall: float,
    max_fnr: float,
) -> dict[str, object]:
    """The top-level metrics of ``metrics/evaluate.json`` (docs/pipeline.md explains each key)."""
    y = np.asarray(labels, dtype=bool)
    routed = np.asarray(decisions, dtype=bool)
    rates = routing_rates(y, routed, min_recall=min_recall, max_fnr=max_fnr)
    cost = cost_fn * rates["counts"]["fn"] + cost_fp * rates["counts"]["fp"]
    return {
        **rates,
        "threshold": threshold,
        "expected_cost": cost / y.size,  # per query, in units of one over-routed light query
        "roc_auc": float(roc_auc_score(y, scores)),
        "pr_auc": float(average_precision_score(y, scores)),
        "cost": {"total": cost, "cost_fn": cost_fn, "cost_fp": cost_fp},
        "prd": {"min_recall": min_recall, "max_fnr": max_fnr},
    }


def cold_start(
    labels: np.ndarray, scores: np.ndarray, decisions: np.ndarray, unseen: np.ndarray
) -> dict[str, dict[str, object]]:
    """Recall, routed share and PR-AUC of the test rows whose template the training history
    had seen, and of those it had not (``unseen``: cold start), with each group's share of
    the rows and heavy share. A group without rows, or without heavy rows, reports what it
    can (``None`` for the rest)."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    routed = np.asarray(decisions, dtype=bool)
    new = np.asarray(unseen, dtype=bool)
    out: dict[str, dict[str, object]] = {}
    for name, rows in (("seen", ~new), ("unseen", new)):
        n, heavy = int(rows.sum()), int((rows & y).sum())
        caught = int((rows & y & routed).sum())
        out[name] = {
            "rows": n,
            "share": n / y.size if y.size else 0.0,
            "heavy_share": heavy / n if n else None,
            "recall": caught / heavy if heavy else None,
            "routed_share": int((rows & routed).sum()) / n if n else None,
            "pr_auc": float(average_precision_score(y[rows], s[rows])) if 0 < heavy < n else None,
        }
    return out


def roc_table(labels: np.ndarray, scores: np.ndarray) -> list[dict[str, float]]:
    fpr, tpr, _ = roc_curve(labels, scores)
    return [
        {
            "false_positive_rate": round(float(fpr[i]), 6),
            "true_positive_rate": round(float(tpr[i]), 6),
        }
        for i in thin(len(fpr), PLOT_POINTS)
    ]


def pr_table(labels: np.ndarray, scores: np.ndarray) -> list[dict[str, float]]:
    precision, recall, _ = precision_recall_curve(labels, scores)
    return [
        {"recall": round(float(recall[i]), 6), "precision": round(float(precision[i]), 6)}
        for i in thin(len(recall), PLOT_POINTS)
    ]


def confusion_table(labels: np.ndarray, decisions: np.ndarray) -> list[dict[str, object]]:
    """Four rows: actual x predicted class with the number of test queries in each."""
    y = np.asarray(labels, dtype=bool)
    routed = np.asarray(decisions, dtype=bool)
    name = {True: "heavy", False: "light"}
    return [
        {"actual": name[a], "predicted": name[p], "queries": int(((y == a) & (routed == p)).sum())}
        for a in (True, False)
        for p in (True, False)
    ]


def calibration_table(
    labels: np.ndarray, scores: np.ndarray, *, bins: int = 10
) -> list[dict[str, float]]:
    """Observed heavy rate against mean score, in equal-width score bins (empty bins left out)."""
    y = np.asarray(labels, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    which = np.minimum((s * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        if inside.any():
            mean = float(s[inside].mean())
            rows.append(
                {
                    "mean_score": round(mean, 6),
                    "observed_heavy_rate": round(float(y[inside].mean()), 6),
                    "perfectly_calibrated": round(mean, 6),
                    "queries": int(inside.sum()),
                }
            )
    return rows


def importance_table(
    booster: xgb.Booster, names: list[str], *, top: int = 20
) -> list[dict[str, object]]:
    """The ``top`` features by total gain (XGBoost's ``f<i>`` keys mapped to our names)."""
    gain = booster.get_score(importance_type="total_gain")
    ranked = sorted(
        ((names[int(key[1:])], value) for key, value in gain.items()),
        key=lambda item: (-item[1], item[0]),
    )
    total = sum(value for _, value in ranked) or 1.0
    return [
        {"feature": name, "gain_share": round(value / total, 6)} for name, value in ranked[:top]
    ]
