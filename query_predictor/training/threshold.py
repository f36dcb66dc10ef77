"""The decision threshold: cheapest under a false-negative : false-positive cost, and the PRD.

A query is predicted heavy when its score is ``>= threshold``. Missing a heavy query costs
``cost_fn`` (100 by default: it hurts the shared cluster), over-routing a light one costs
``cost_fp`` (1: it runs somewhere slower). :func:`cost_curve` evaluates every distinct score as
a threshold (plus one above the highest score, routing nothing) in one sort and two cumulative
sums; :func:`choose_threshold` picks the cheapest (the highest threshold among equal costs)
and, when the cheapest misses the required recall, also the highest threshold that meets it.
:func:`prd_check` judges a threshold on a window with natural class balance. The train and
evaluate stages (seed notebook 04) build on these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CostCurve:
    """Arrays over candidate thresholds, in decreasing threshold order."""

    threshold: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray
    cost: np.ndarray

    @property
    def recall(self) -> np.ndarray:
        positives = self.tp + self.fn
        return np.divide(self.tp, positives, out=np.zeros(len(self.tp)), where=positives > 0)


@dataclass(frozen=True)
class ThresholdChoice:
    cost_optimal: float
    cost_optimal_cost: float
    cost_optimal_recall: float
    recall_threshold: float | None  # highest threshold meeting min_recall (None: unreachable)
    chosen: float
    policy: str


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels but {s.size} scores")
    if y.size == 0:
        raise ValueError("no rows: cannot choose or judge a threshold on an empty window")
    if not np.isfinite(s).all():
        raise ValueError(f"{int((~np.isfinite(s)).sum())} scores are NaN or infinite")
    return y, s


def cost_curve(
    labels: np.ndarray, scores: np.ndarray, *, cost_fn: float, cost_fp: float
) -> CostCurve:
    """Confusion counts and cost at every distinct score used as the threshold."""
    y, s = _check(labels, scores)
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp_cum = np.cumsum(y_sorted)
    fp_cum = np.cumsum(~y_sorted)
    # the last index of each run of equal scores: everything up to it is predicted heavy
    last = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
    positives, negatives = int(y.sum()), int((~y).sum())
    threshold = np.r_[np.nextafter(s_sorted[0], np.inf), s_sorted[last]]
    tp = np.r_[0, tp_cum[last]]
    fp = np.r_[0, fp_cum[last]]
    fn = positives - tp
    tn = negatives - fp
    return CostCurve(threshold, tp, fp, fn, tn, cost_fn * fn + cost_fp * fp)


def thin(n: int, points: int) -> np.ndarray:
    """At most ``points`` indices into ``n`` rows, evenly spaced, first and last kept."""
    return np.unique(np.linspace(0, n - 1, num=min(points, n)).round().astype(int))


def curve_table(curve: CostCurve, *, points: int = 400) -> list[dict[str, float]]:
    """At most ``points`` rows of the curve (evenly spaced by index, ends kept), for a plot."""
    keep = thin(len(curve.threshold), points)
    recall = curve.recall
    return [
        {
            "threshold": float(curve.threshold[i]),
            "cost": float(curve.cost[i]),
            "recall": round(float(recall[i]), 6),
            "false_positives": int(curve.fp[i]),
            "false_negatives": int(curve.fn[i]),
        }
        for i in keep
    ]


def choose_threshold(
    labels: np.ndarray,
    scores: np.ndarray,
    *,
    cost_fn: float,
    cost_fp: float,
    min_recall: float,
    policy: str = "cost_optimal",
) -> ThresholdChoice:
    """The cheapest threshold (highest among ties) and the highest one meeting ``min_recall``.

    ``policy`` picks which is used: ``cost_optimal``, or ``recall`` (the highest threshold
    meeting the recall, falling back to the cost-optimal one when none does).
    """
    if policy not in ("cost_optimal", "recall"):
        raise ValueError(f"policy={policy!r} must be 'cost_optimal' or 'recall'")
    curve = cost_curve(labels, scores, cost_fn=cost_fn, cost_fp=cost_fp)
    best = int(np.argmin(curve.cost))  # first minimum = highest threshold among ties
    recall = curve.recall
    meeting = np.flatnonzero(recall >= min_recall)
    recall_threshold = float(curve.threshold[meeting[0]]) if meeting.size else None
    chosen = float(curve.threshold[best])
    if policy == "recall" and recall_threshold is not None:
        chosen = recall_threshold
    return ThresholdChoice(
        float(curve.threshold[best]),
        float(curve.cost[best]),
        float(recall[best]),
        recall_threshold,
        chosen,
        policy,
    )


def prd_verdict(
    labels: np.ndarray, predicted: np.ndarray, *, min_recall: float, max_fnr: float
) -> dict[str, object]:
    """Recall, FNR and compliance with the PRD (recall >= min_recall and FNR <= max_fnr) of
    decisions already made (True: routed to the heavy cluster)."""
    y = np.asarray(labels).astype(bool).ravel()
    routed = np.asarray(predicted).astype(bool).ravel()
    if y.shape != routed.shape:
        raise ValueError(f"{y.size} labels but {routed.size} decisions")
    heavy = int(y.sum())
    if heavy == 0:
        raise ValueError(
            "the window has no heavy query: recall and FNR are undefined; widen the test window "
            "(splits.test_days) or check the labels"
        )
    tp = int((routed & y).sum())
    recall = tp / heavy
    fnr = (heavy - tp) / heavy  # not 1 - recall: 98/100 must meet a 2 % FNR exactly
    return {
        "recall": recall,
        "fnr": fnr,
        "heavy": heavy,
        "missed": heavy - tp,
        "min_recall": min_recall,
        "max_fnr": max_fnr,
        "prd_compliant": bool(recall >= min_recall and fnr <= max_fnr),
    }


def prd_check(
    labels: np.ndarray, scores: np.ndarray, *, threshold: float, min_recall: float, max_fnr: float
) -> dict[str, object]:
    """:func:`prd_verdict` of routing every score ``>= threshold``."""
    y, s = _check(labels, scores)
    verdict = prd_verdict(y, s >= threshold, min_recall=min_recall, max_fnr=max_fnr)
    return {**verdict, "threshold": threshold}
