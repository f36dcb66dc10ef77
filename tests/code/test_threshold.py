"""Threshold search and PRD checks against brute force on small arrays."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from query_predictor.training.threshold import (
    choose_threshold,
    cost_curve,
    curve_table,
    heavy_needed,
    prd_check,
    recall_lower_bound,
)


def brute_force(y: np.ndarray, s: np.ndarray, cost_fn: float, cost_fp: float):
    """Every candidate threshold tried the slow way: (threshold, cost, recall) list."""
    candidates = sorted({*s.tolist(), float(np.nextafter(s.max(), np.inf))}, reverse=True)
    out = []
    for t in candidates:
        predicted = s >= t
        fn = int((~predicted & y).sum())
        fp = int((predicted & ~y).sum())
        recall = (predicted & y).sum() / y.sum() if y.sum() else 0.0
        out.append((t, cost_fn * fn + cost_fp * fp, recall))
    return out


cases = st.integers(min_value=1, max_value=40).flatmap(
    lambda n: st.tuples(
        st.lists(st.booleans(), min_size=n, max_size=n),
        st.lists(
            st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5, 0.75, 0.9, 1.0]), min_size=n, max_size=n
        ),
    )
)


@settings(max_examples=300, deadline=None)
@given(cases, st.sampled_from([1.0, 5.0, 100.0]), st.sampled_from([0.5, 0.9, 0.98, 1.0]))
def test_matches_brute_force(case, cost_fn: float, min_recall: float) -> None:
    y, s = np.array(case[0]), np.array(case[1])
    reference = brute_force(y, s, cost_fn, 1.0)
    curve = cost_curve(y, s, cost_fn=cost_fn, cost_fp=1.0)
    assert curve.threshold.tolist() == [t for t, _, _ in reference]
    assert curve.cost.tolist() == [c for _, c, _ in reference]
    assert (curve.tp + curve.fn == y.sum()).all() and (curve.fp + curve.tn == (~y).sum()).all()
    choice = choose_threshold(y, s, cost_fn=cost_fn, cost_fp=1.0, min_recall=min_recall)
    cheapest = min(c for _, c, _ in reference)
    # the highest threshold among the cheapest
    assert choice.cost_optimal == max(t for t, c, _ in reference if c == cheapest)
    assert choice.cost_optimal_cost == cheapest
    meeting = [t for t, _, r in reference if y.sum() and r >= min_recall]
    assert choice.recall_threshold == (max(meeting) if meeting else None)


def test_missing_heavy_costs_a_hundred_times_more() -> None:
    y = np.array([1, 0, 0, 0, 0, 0], dtype=bool)
    s = np.array([0.2, 0.3, 0.4, 0.5, 0.6, 0.9])
    choice = choose_threshold(y, s, cost_fn=100.0, cost_fp=1.0, min_recall=0.98)
    assert choice.cost_optimal == 0.2  # route five light queries rather than miss the heavy one
    assert choice.cost_optimal_cost == 5.0
    balanced = choose_threshold(y, s, cost_fn=1.0, cost_fp=1.0, min_recall=0.98)
    assert balanced.cost_optimal > 0.9  # at equal costs, routing nothing is cheapest
    assert balanced.recall_threshold == 0.2


def test_recall_policy_uses_the_recall_threshold() -> None:
    y = np.array([1, 1, 0, 0], dtype=bool)
    s = np.array([0.9, 0.1, 0.5, 0.05])
    cheap = choose_threshold(y, s, cost_fn=1.0, cost_fp=1.0, min_recall=1.0)
    assert cheap.chosen == cheap.cost_optimal == 0.9
    strict = choose_threshold(y, s, cost_fn=1.0, cost_fp=1.0, min_recall=1.0, policy="recall")
    assert strict.chosen == strict.recall_threshold == 0.1
    with pytest.raises(ValueError, match="policy='other'"):
        choose_threshold(y, s, cost_fn=1.0, cost_fp=1.0, min_recall=1.0, policy="other")


@pytest.mark.parametrize(
    ("scores", "threshold", "compliant", "recall"),
    [
        ([0.9] * 98 + [0.1] * 2, 0.5, True, 0.98),  # exactly at the PRD
        ([0.9] * 97 + [0.1] * 3, 0.5, False, 0.97),
        ([0.9] * 100, 0.9, True, 1.0),  # a score equal to the threshold is routed
    ],
)
def test_prd_edges(scores: list[float], threshold: float, compliant: bool, recall: float) -> None:
    y = np.ones(len(scores), dtype=bool)
    result = prd_check(y, np.array(scores), threshold=threshold, min_recall=0.98, max_fnr=0.02)
    assert result["prd_compliant"] is compliant
    assert result["recall"] == pytest.approx(recall)
    assert result["fnr"] == pytest.approx(1 - recall)


def test_prd_without_heavy_rows_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no heavy query: recall and FNR are undefined"):
        prd_check(np.zeros(5, dtype=bool), np.ones(5), threshold=0.5, min_recall=0.98, max_fnr=0.02)


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        ([], [], "no rows"),
        ([1, 0], [0.5], "2 labels but 1 scores"),
        ([1, 0], [0.5, float("nan")], "1 scores are NaN or infinite"),
    ],
)
def test_bad_input_is_named(labels, scores, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cost_curve(np.array(labels, dtype=bool), np.array(scores), cost_fn=100.0, cost_fp=1.0)


def test_curve_table_keeps_the_ends_and_at_most_the_points_asked() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(5000) < 0.1
    s = rng.random(5000)
    curve = cost_curve(y, s, cost_fn=100.0, cost_fp=1.0)
    table = curve_table(curve, points=50)
    assert len(table) == 50
    assert table[0]["threshold"] == curve.threshold[0] and table[0]["recall"] == 0.0
    assert table[-1]["threshold"] == curve.threshold[-1] and table[-1]["recall"] == 1.0
    assert [r["threshold"] for r in table] == sorted((r["threshold"] for r in table), reverse=True)
    small = curve_table(cost_curve(y[:3], s[:3], cost_fn=1.0, cost_fp=1.0), points=50)
    assert len(small) == len(set(s[:3])) + 1


# --------------------------------------------------------------------------- confidence


def test_recall_lower_bound_is_clopper_pearson() -> None:
    # all 150 caught: the 90 % bound is 0.1 ** (1 / 150)
    assert recall_lower_bound(150, 150, level=0.9) == pytest.approx(0.1 ** (1 / 150))
    assert recall_lower_bound(0, 10, level=0.9) == 0.0
    assert recall_lower_bound(98, 100, level=0.9) < 0.98 < 98 / 100 + 0.001


def test_heavy_needed_to_show_98_percent() -> None:
    assert heavy_needed(0.98, level=0.9) == 114  # 0.98 ** 114 < 0.1 <= 0.98 ** 113
    assert heavy_needed(0.98, level=0.95) == 149
    assert recall_lower_bound(114, 114, level=0.9) >= 0.98 > recall_lower_bound(113, 113, level=0.9)


def scores_with(heavy: int, light: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(heavy), np.zeros(light)].astype(bool)
    s = np.r_[rng.beta(5, 2, heavy), rng.beta(2, 5, light)]
    return y, s


def test_confident_recall_meets_the_bound_and_states_it() -> None:
    y, s = scores_with(400, 4000)
    choice = choose_threshold(
        y, s, cost_fn=100.0, cost_fp=1.0, min_recall=0.98, policy="confident_recall", level=0.9
    )
    confidence = choice.confidence
    assert confidence.resolvable and confidence.heavy == 400
    assert confidence.meets_min_recall and confidence.recall_lower_bound >= 0.98
    caught = int((s[y] >= choice.chosen).sum())
    assert confidence.missed == 400 - caught
    assert choice.chosen <= choice.cost_optimal
    # the highest such threshold: one step up breaks the bound
    higher = np.sort(np.unique(s))[np.searchsorted(np.sort(np.unique(s)), choice.chosen) + 1]
    assert recall_lower_bound(int((s[y] >= higher).sum()), 400, level=0.9) < 0.98


def test_too_few_heavy_queries_cannot_resolve_the_target() -> None:
    y, s = scores_with(30, 3000)
    choice = choose_threshold(
        y, s, cost_fn=100.0, cost_fp=1.0, min_recall=0.98, policy="confident_recall", level=0.9
    )
    assert not choice.confidence.resolvable and not choice.confidence.meets_min_recall
    assert choice.confidence.heavy_needed == 114
    assert choice.chosen == choice.recall_threshold  # falls back to the point estimate


def test_every_policy_states_its_confidence() -> None:
    y, s = scores_with(200, 2000)
    for policy in ("cost_optimal", "recall"):
        choice = choose_threshold(y, s, cost_fn=100.0, cost_fp=1.0, min_recall=0.98, policy=policy)
        assert choice.confidence.heavy == 200
        assert 0.0 <= choice.confidence.recall_lower_bound <= 1.0
