"""The decision threshold: cheapest under a false-negative : false-positive cost, and the PRD.

A query is predicted heavy when its score is ``>= threshold``. Missing a heavy query costs
``cost_fn`` (100 by default: it hurts the shared cluster), over-routing a light one costs
``cost_fp`` (1: it runs somewhere slower). :func:`cost_curve` evaluates every distinct score as
a threshold (plus one above the highest score, routing nothing) in one sort and two cumulative
sums; :func:`choose_threshold` picks the cheapest (the highest threshold among equal costs)
and, when the cheapest misses the required recall, also the highest threshold that meets it.
:func:`prd_check` judges a threshold on a window with natural class balance. The train and
evaluate stages build on these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from query_predictor.core.errors import DataError


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
    confidence: Confidence


@dataclass(frozen=True)
class Confidence:
    """How sure validation makes us of the chosen threshold's recall."""

    level: float  # e.g. 0.9: the bound holds with this probability
    heavy: int  # heavy validation queries the choice rests on
    missed: int  # of those, scored below the chosen threshold
    recall_lower_bound: float  # one-sided Clopper-Pearson bound on recall at ``level``
    heavy_needed: int | None  # fewest heavy queries that could show min_recall at ``level``
    resolvable: bool  # heavy >= heavy_needed
    meets_min_recall: bool  # recall_lower_bound >= min_recall

    def as_dict(self) -> dict[str, object]:
        return {
            "level": self.level,
            "heavy": self.heavy,
            "missed": self.missed,
            "recall_lower_bound": round(self.recall_lower_bound, 6),
            "heavy_needed": self.heavy_needed,
            "resolvable": self.resolvable,
            "meets_min_recall": self.meets_min_recall,
        }


def recall_lower_bound(caught: int, heavy: int, *, level: float) -> float:
    """One-sided Clopper-Pearson lower bound on recall: with probability ``level`` the true
    recall is at least this, having caught ``caught`` of ``heavy`` heavy queries."""
    from scipy.stats import beta  # scipy comes with scikit-learn

    if heavy <= 0:
        return 0.0
    if caught <= 0:
        return 0.0
    return float(beta.ppf(1.0 - level, caught, heavy - caught + 1))


def heavy_needed(min_recall: float, *, level: float) -> int | None:
    """Fewest heavy queries whose bound can reach ``min_recall`` (all caught): the n with
    ``(1 - level) ** (1 / n) >= min_recall``; None for ``min_recall`` 1, which no finite
    sample shows."""
    if min_recall >= 1.0:
        return None
    if min_recall <= 0.0:
        return 0
    return int(np.ceil(np.log(1.0 - level) / np.log(min_recall)))


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
    level: float = 0.9,
) -> ThresholdChoice:
    """The cheapest threshold (highest among ties) and the highest one meeting ``min_recall``.

    ``policy`` picks which is used: ``cost_optimal``; ``recall`` (the highest threshold
    meeting the recall, falling back to the cost-optimal one when none does); or
    ``confident_recall``: the highest threshold whose recall's lower bound at ``level``
    (:func:`recall_lower_bound`) reaches ``min_recall``, never above the cost-optimal one;
    when validation holds too few heavy queries to show that at all, the ``recall`` choice.
    Whatever the policy, :attr:`ThresholdChoice.confidence` states the bound at the choice.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy={policy!r} must be one of {list(POLICIES)}")
    curve = cost_curve(labels, scores, cost_fn=cost_fn, cost_fp=cost_fp)
    best = int(np.argmin(curve.cost))  # first minimum = highest threshold among ties
    recall = curve.recall
    meeting = np.flatnonzero(recall >= min_recall)
    recall_threshold = float(curve.threshold[meeting[0]]) if meeting.size else None
    at = best
    if policy == "recall" and meeting.size:
        at = int(meeting[0])
    heavy = int(curve.tp[0] + curve.fn[0])
    needed = heavy_needed(min_recall, level=level)
    resolvable = needed is not None and heavy >= needed
    if policy == "confident_recall":
        if resolvable:
            # resolvable: catching every heavy query (the lowest threshold) meets the bound,
            # so some threshold always does
            confident = np.flatnonzero(_bounds(curve, heavy, level=level) >= min_recall)
            at = max(best, int(confident[0]))
        elif meeting.size:
            at = int(meeting[0])
    caught = int(curve.tp[at])
    bound = recall_lower_bound(caught, heavy, level=level)
    confidence = Confidence(
        level, heavy, heavy - caught, bound, needed, resolvable, bound >= min_recall
    )
    return ThresholdChoice(
        float(curve.threshold[best]),
        float(curve.cost[best]),
        float(recall[best]),
        recall_threshold,
        float(curve.threshold[at]),
        policy,
        confidence,
    )


POLICIES = ("cost_optimal", "recall", "confident_recall")


def _bounds(curve: CostCurve, heavy: int, *, level: float) -> np.ndarray:
    """:func:`recall_lower_bound` at every threshold of ``curve`` (vectorised)."""
    from scipy.stats import beta

    caught = curve.tp.astype(np.float64)
    out = np.zeros(len(caught))
    some = caught > 0
    out[some] = beta.ppf(1.0 - level, caught[some], heavy - caught[some] + 1)
    return out


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
        raise DataError(
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
