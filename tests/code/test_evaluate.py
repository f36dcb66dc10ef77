"""Evaluation metrics and plot tables on small arrays with answers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

from query_predictor.training.evaluate import (
    PLOT_POINTS,
    calibration_table,
    cold_start,
    confusion_table,
    headline,
    importance_table,
    pr_table,
    roc_table,
)

# 10 queries, 4 heavy; threshold 0.5 routes rows 0-4: 3 heavy caught, 1 missed, 2 light routed
LABELS = np.array([1, 1, 1, 0, 0, 1, 0, 0, 0, 0], dtype=bool)
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.55, 0.4, 0.3, 0.2, 0.1, 0.05], dtype=np.float32)


def judged(labels: np.ndarray, threshold: float) -> dict[str, object]:
    """The headline metrics at ``threshold``, with the default costs and PRD."""
    routed = np.greater_equal(SCORES, threshold)
    return headline(
        labels,
        SCORES,
        routed,
        threshold=threshold,
        cost_fn=100,
        cost_fp=1,
        min_recall=0.98,
        max_fnr=0.02,
    )


def test_headline_by_hand() -> None:
    metrics = judged(LABELS, 0.5)
    assert metrics["counts"] == {"tp": 3, "fp": 2, "fn": 1, "tn": 4, "rows": 10}
    assert metrics["recall"] == pytest.approx(0.75)
    assert metrics["fnr"] == pytest.approx(0.25)
    assert metrics["fpr"] == pytest.approx(2 / 6)
    assert metrics["precision"] == pytest.approx(3 / 5)
    assert metrics["routed_share"] == pytest.approx(0.5)
    assert metrics["expected_cost"] == pytest.approx((100 * 1 + 2) / 10)
    assert metrics["roc_auc"] == pytest.approx(22 / 24)  # 22 of 24 heavy-light pairs ordered
    assert metrics["prd_compliant"] is False
    for key in ("recall", "fnr", "fpr", "precision", "routed_share", "threshold"):
        assert key in metrics


def test_headline_meets_the_prd_when_everything_heavy_is_routed() -> None:
    metrics = judged(LABELS, 0.4)
    assert metrics["recall"] == 1.0 and metrics["fnr"] == 0.0
    assert metrics["prd_compliant"] is True


def test_headline_without_heavy_rows_is_a_clear_error() -> None:
    light = np.zeros(10, dtype=bool)
    with pytest.raises(ValueError, match="no heavy query"):
        judged(light, 0.5)


def test_confusion_table_counts_every_row_once() -> None:
    table = {
        (r["actual"], r["predicted"]): r["queries"] for r in confusion_table(LABELS, SCORES >= 0.5)
    }
    assert table == {
        ("heavy", "heavy"): 3,
        ("heavy", "light"): 1,
        ("light", "heavy"): 2,
        ("light", "light"): 4,
    }


def test_calibration_bins() -> None:
    rows = calibration_table(LABELS, SCORES, bins=2)  # [0, 0.5) and [0.5, 1]
    assert [r["queries"] for r in rows] == [5, 5]
    assert rows[0]["observed_heavy_rate"] == pytest.approx(1 / 5)
    assert rows[1]["observed_heavy_rate"] == pytest.approx(3 / 5)
    assert rows[1]["mean_score"] == pytest.approx(np.mean(SCORES[:5]), abs=1e-6)
    assert calibration_table(LABELS, np.full(10, 1.0), bins=10)[0]["queries"] == 10  # 1.0 fits


def test_curves_are_thinned_and_keep_their_ends() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random(20_000) < 0.1
    scores = np.clip(labels * 0.3 + rng.random(20_000) * 0.7, 0, 1)
    roc = roc_table(labels, scores)
    pr = pr_table(labels, scores)
    assert len(roc) <= PLOT_POINTS and len(pr) <= PLOT_POINTS
    assert roc[0] == {"false_positive_rate": 0.0, "true_positive_rate": 0.0}
    assert roc[-1] == {"false_positive_rate": 1.0, "true_positive_rate": 1.0}
    assert pr[0]["recall"] == 1.0 and pr[-1]["recall"] == 0.0


def test_importance_maps_xgboost_keys_to_feature_names() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 4))
    y = x[:, 2] > 0.3  # only the third column matters
    model = xgb.XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1).fit(x, y)
    rows = importance_table(model.get_booster(), ["a", "b", "c", "d"], top=2)
    assert rows[0]["feature"] == "c"
    assert rows[0]["gain_share"] > 0.5
    assert len(rows) <= 2


def test_cold_start_splits_seen_and_unseen_templates() -> None:
    y = np.array([1, 0, 0, 0, 1, 1, 0, 0], dtype=bool)
    s = np.array([0.9, 0.1, 0.2, 0.6, 0.8, 0.3, 0.7, 0.1])
    routed = s >= 0.5
    unseen = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=bool)
    groups = cold_start(y, s, routed, unseen)
    assert groups["seen"] == {
        "rows": 4,
        "share": 0.5,
        "heavy_share": 0.25,
        "recall": 1.0,
        "routed_share": 0.5,
        "pr_auc": pytest.approx(1.0),
    }
    assert groups["unseen"]["recall"] == 0.5 and groups["unseen"]["routed_share"] == 0.5
    assert groups["unseen"]["heavy_share"] == 0.5


def test_cold_start_without_unseen_rows_reports_none() -> None:
    y = np.array([1, 0, 0], dtype=bool)
    groups = cold_start(y, np.array([0.9, 0.1, 0.2]), np.array([1, 0, 0], bool), np.zeros(3, bool))
    assert groups["unseen"]["rows"] == 0 and groups["unseen"]["recall"] is None
    assert groups["unseen"]["pr_auc"] is None and groups["seen"]["recall"] == 1.0
