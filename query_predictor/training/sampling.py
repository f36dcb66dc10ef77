"""Boundary-focused sampling of the training split.

Every heavy query is kept. A light query at normalised distance ``d`` from the label boundary,

    d = max(cpu_time / cpu_threshold, peak_memory / memory_threshold)  clipped to [0, 1),

is kept with probability ``clip(base_rate * m(d), 0, 1)`` where

    m(d) = min_multiplier + (max_boost - min_multiplier) * d

rises continuously from ``min_multiplier`` far from the boundary to ``max_boost`` at it, so
light queries that nearly crossed the threshold (the ones a model confuses) are kept up to
``max_boost / min_multiplier`` times more often than trivial ones. ``base_rate`` is solved so
that kept light : heavy is exactly ``balance_ratio`` (or every light row is kept, and the
metrics say the ratio was unreachable).

The decision for a row is ``u < base_rate * m(d)`` with ``u`` a keyed hash of its
``query_id`` (:mod:`query_predictor.training.hashing`): no RNG state, so any engine and any
row order keep the same rows. Equivalently a light row is kept when ``u / m(d) <= base_rate``,
which is how the base rate is solved exactly: it is the k-th smallest ``u / m(d)``.

Only the training split is resampled; validation and test keep the natural class
distribution, because a threshold tuned on resampled data is wrong in production.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from query_predictor.core.errors import DataError
from query_predictor.core.label import LabelRule
from query_predictor.params import Params, ParamsError

from .hashing import unit_hashes

BUCKETS = 10


@dataclass(frozen=True)
class SamplingResult:
    keep: pl.Series  # boolean, one per input row
    distance: np.ndarray
    base_rate: float
    achieved_ratio: float | None
    reachable: bool


def multiplier(distance: np.ndarray, *, min_multiplier: float, max_boost: float) -> np.ndarray:
    """m(d): ``min_multiplier`` at d = 0 rising linearly to ``max_boost`` at d = 1."""
    return min_multiplier + (max_boost - min_multiplier) * np.asarray(distance, dtype=np.float64)


def keep_probability(
    distance: np.ndarray, *, base_rate: float, min_multiplier: float, max_boost: float
) -> np.ndarray:
    """Probability that a light row at ``distance`` is kept, for a given base rate."""
    m = multiplier(distance, min_multiplier=min_multiplier, max_boost=max_boost)
    return np.clip(base_rate * m, 0.0, 1.0)


def boundary_sample(
    frame: pl.DataFrame,
    *,
    balance_ratio: float,
    max_boost: float,
    min_multiplier: float,
    seed: int,
    rule: LabelRule,
) -> SamplingResult:
    """Choose the rows to keep (see the module docstring); ``frame`` needs ``query_id``,
    ``is_heavy``, ``cpu_time_millis`` and ``peak_memory_bytes``."""
    if min_multiplier > max_boost:
        raise ParamsError(
            f"min_multiplier={min_multiplier} must not exceed max_boost={max_boost}; "
            "fix boundary_sampling in params.yaml"
        )
    missing = frame["query_id"].null_count()
    if missing:
        raise DataError(
            f"{missing} rows have a null query_id; sampling decides by its hash (the load stage "
            "quarantines such rows)"
        )
    heavy = frame["is_heavy"].to_numpy()
    distance = rule.boundary_distance(frame)
    u = unit_hashes(frame["query_id"], seed)
    score = u / multiplier(distance, min_multiplier=min_multiplier, max_boost=max_boost)
    light_scores = np.sort(score[~heavy])
    n_heavy, n_light = int(heavy.sum()), len(light_scores)
    target = round(balance_ratio * n_heavy)
    reachable = target <= n_light
    if n_light == 0 or target == 0:
        base_rate = 0.0
    elif not reachable:
        base_rate = float(light_scores[-1])
    else:
        base_rate = float(light_scores[target - 1])
    keep = heavy | (score <= base_rate) if n_light and target else heavy.copy()
    kept_light = int(keep.sum()) - n_heavy
    achieved = kept_light / n_heavy if n_heavy else None
    return SamplingResult(pl.Series("keep", keep), distance, base_rate, achieved, reachable)


def sample_as_configured(frame: pl.DataFrame, params: Params) -> SamplingResult:
    """:func:`boundary_sample` with ``params.yaml``'s ``boundary_sampling`` section and label
    rule: the split stage's sampling of the training window, and the train stage's of the
    validation rows the model is refit on."""
    sampling = params.boundary_sampling
    return boundary_sample(
        frame,
        balance_ratio=sampling.balance_ratio,
        max_boost=sampling.max_boost,
        min_multiplier=sampling.min_multiplier,
        seed=sampling.seed,
        rule=LabelRule.from_params(params.data_loading),
    )


def kept_by_bucket(result: SamplingResult, heavy: np.ndarray) -> list[dict[str, object]]:
    """Light rows before and after sampling per distance decile (for metrics and plots)."""
    light = ~heavy
    keep = result.keep.to_numpy()
    bucket = np.minimum((result.distance * BUCKETS).astype(int), BUCKETS - 1)
    rows = []
    for b in range(BUCKETS):
        mask = light & (bucket == b)
        before, kept = int(mask.sum()), int((mask & keep).sum())
        rows.append(
            {
                "bucket": f"{b / BUCKETS:.1f}-{(b + 1) / BUCKETS:.1f}",
                "distance_mid": round((b + 0.5) / BUCKETS, 2),
                "light_before": before,
                "light_kept": kept,
                "kept_share": round(kept / before, 6) if before else None,
            }
        )
    return rows


def curve(
    *, base_rate: float, min_multiplier: float, max_boost: float, points: int = 101
) -> list[dict[str, float]]:
    """The sampling curve on a grid of distances: multiplier and keep probability."""
    grid = np.linspace(0.0, 1.0, points)
    m = multiplier(grid, min_multiplier=min_multiplier, max_boost=max_boost)
    p = keep_probability(
        grid, base_rate=base_rate, min_multiplier=min_multiplier, max_boost=max_boost
    )
    return [
        {
            "distance": round(float(d), 4),
            "multiplier": round(float(x), 6),
            "keep_probability": round(float(y), 6),
        }
        for d, x, y in zip(grid, m, p, strict=True)
    ]
