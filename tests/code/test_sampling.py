"""Boundary-focused sampling of the training split."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from query_predictor.core.label import LabelRule
from query_predictor.params import parse_params
from query_predictor.training.hashing import unit_hashes
from query_predictor.training.sampling import (
    BUCKETS,
    SamplingResult,
    boundary_sample,
    curve,
    keep_probability,
    kept_by_bucket,
    multiplier,
    sample_as_configured,
)

GIB = 2**30
THRESHOLDS: dict[str, float] = {"cpu_threshold_seconds": 300.0, "memory_threshold_gb": 10.0}
RULE = LabelRule(**THRESHOLDS, resource_error_codes=("EXCEEDED_LOCAL_MEMORY_LIMIT",))
DEFAULTS: dict[str, Any] = {
    "balance_ratio": 5.0,
    "max_boost": 2.0,
    "min_multiplier": 0.05,
    "seed": 42,
    "rule": RULE,
}
BELOW_ONE = math.nextafter(1.0, 0.0)


def frame(
    cpu_ms: list[int], memory: list[int] | None = None, heavy: list[bool] | None = None
) -> pl.DataFrame:
    n = len(cpu_ms)
    return pl.DataFrame(
        {
            "query_id": [f"20250601_000000_{i:05d}_test" for i in range(n)],
            "is_heavy": heavy if heavy is not None else [False] * n,
            "cpu_time_millis": cpu_ms,
            "peak_memory_bytes": memory if memory is not None else [0] * n,
        },
        schema={
            "query_id": pl.String,
            "is_heavy": pl.Boolean,
            "cpu_time_millis": pl.Int64,
            "peak_memory_bytes": pl.Int64,
        },
    )


def sample(data: pl.DataFrame, **overrides: Any) -> SamplingResult:
    return boundary_sample(data, **{**DEFAULTS, **overrides})


def kept_ids(data: pl.DataFrame, result: SamplingResult) -> set[str]:
    return set(data.filter(result.keep)["query_id"])


# --------------------------------------------------------------------------- distance


@pytest.mark.parametrize(
    ("cpu_ms", "memory", "thresholds", "distance"),
    [
        (150_000, 0, THRESHOLDS, 0.5),
        (0, 5 * GIB, THRESHOLDS, 0.5),
        (60_000, 8 * GIB, THRESHOLDS, 0.8),  # the larger of the two
        (240_000, 1 * GIB, THRESHOLDS, 0.8),
        (0, 0, THRESHOLDS, 0.0),
        (299_999, 0, THRESHOLDS, 299_999 / 300_000),
        (300_000, 0, THRESHOLDS, BELOW_ONE),  # heavy rows clip just below 1
        (3_600_000, 0, THRESHOLDS, BELOW_ONE),
        (0, 10 * GIB + 1, THRESHOLDS, BELOW_ONE),
        (0, 10 * GIB, THRESHOLDS, BELOW_ONE),
        (15_000, 0, {"cpu_threshold_seconds": 30.0, "memory_threshold_gb": 10.0}, 0.5),
        (0, GIB // 4, {"cpu_threshold_seconds": 300.0, "memory_threshold_gb": 0.5}, 0.5),
    ],
)
def test_boundary_distance(
    cpu_ms: int, memory: int, thresholds: dict[str, float], distance: float
) -> None:
    rule = LabelRule(**thresholds, resource_error_codes=())
    out = rule.boundary_distance(frame([cpu_ms], [memory]))
    assert out.dtype == np.float64
    assert out[0] == pytest.approx(distance, abs=1e-15)
    assert 0.0 <= out[0] < 1.0


@pytest.mark.parametrize(("low", "high"), [(0.05, 2.0), (1.0, 1.0), (0.5, 10.0)])
def test_multiplier_endpoints(low: float, high: float) -> None:
    m = multiplier(np.array([0.0, 0.5, 1.0]), min_multiplier=low, max_boost=high)
    assert m[0] == low
    assert m[2] == pytest.approx(high)
    assert m[1] == pytest.approx((low + high) / 2)


@pytest.mark.parametrize(
    ("base_rate", "distance", "probability"),
    [(0.1, 0.0, 0.005), (0.1, 1.0, 0.2), (0.0, 1.0, 0.0), (0.6, 1.0, 1.0), (100.0, 0.0, 1.0)],
)
def test_keep_probability_is_clipped(base_rate: float, distance: float, probability: float):
    p = keep_probability(
        np.array([distance]), base_rate=base_rate, min_multiplier=0.05, max_boost=2.0
    )
    assert p[0] == pytest.approx(probability)


def test_curve() -> None:
    points = curve(base_rate=0.3, min_multiplier=0.05, max_boost=2.0)
    assert len(points) == 101
    assert [p["distance"] for p in points] == [round(i / 100, 4) for i in range(101)]
    assert points[0]["multiplier"] == 0.05
    assert points[-1]["multiplier"] == 2.0
    assert points[0]["keep_probability"] == pytest.approx(0.015)
    assert points[-1]["keep_probability"] == 0.6
    assert all(p["keep_probability"] == min(1.0, round(0.3 * p["multiplier"], 6)) for p in points)
    assert len(curve(base_rate=0.3, min_multiplier=0.05, max_boost=2.0, points=11)) == 11


# --------------------------------------------------------------------------- a realistic day


def synthetic(n: int = 100_000, seed: int = 7) -> pl.DataFrame:
    """Log-normal CPU (median 5 s) and memory (median 256 MiB), a few resource failures:
    about 3 % heavy, most light rows far from the boundary."""
    rng = np.random.default_rng(seed)
    cpu_ms = np.rint(rng.lognormal(np.log(5_000), 2.0, n)).astype(np.int64)
    memory = np.rint(rng.lognormal(np.log(256 * 2**20), 1.6, n)).astype(np.int64)
    failed = rng.random(n) < 0.003
    heavy = (cpu_ms >= 300_000) | (memory > 10 * GIB) | failed
    return pl.DataFrame(
        {
            "query_id": [f"20250601_{i:06d}_{seed:05d}_synth" for i in range(n)],
            "is_heavy": heavy,
            "cpu_time_millis": cpu_ms,
            "peak_memory_bytes": memory,
        }
    )


@pytest.fixture(scope="module")
def day() -> pl.DataFrame:
    return synthetic()


@pytest.fixture(scope="module")
def sampled(day: pl.DataFrame) -> SamplingResult:
    return sample(day)


def test_synthetic_day_is_realistic(day: pl.DataFrame) -> None:
    assert 0.02 < day["is_heavy"].mean() < 0.05  # type: ignore[operator]


def test_ratio_is_met_to_the_row(day: pl.DataFrame, sampled: SamplingResult) -> None:
    heavy = day["is_heavy"].to_numpy()
    keep = sampled.keep.to_numpy()
    n_heavy = int(heavy.sum())
    kept_light = int((keep & ~heavy).sum())
    assert sampled.reachable
    assert kept_light == round(5.0 * n_heavy)
    assert sampled.achieved_ratio == pytest.approx(kept_light / n_heavy)
    assert abs(sampled.achieved_ratio - 5.0) / 5.0 < 0.02  # type: ignore[operator]
    assert sampled.keep.dtype == pl.Boolean
    assert len(sampled.keep) == day.height


def test_every_heavy_row_is_kept(day: pl.DataFrame, sampled: SamplingResult) -> None:
    assert sampled.keep.filter(day["is_heavy"]).all()


def test_light_rows_are_kept_by_the_documented_rule(
    day: pl.DataFrame, sampled: SamplingResult
) -> None:
    u = unit_hashes(day["query_id"], DEFAULTS["seed"])
    m = multiplier(sampled.distance, min_multiplier=0.05, max_boost=2.0)
    light = ~day["is_heavy"].to_numpy()
    rule = u / m <= sampled.base_rate
    assert np.array_equal(sampled.keep.to_numpy()[light], rule[light])


def test_same_rows_kept_across_calls_and_row_orders(
    day: pl.DataFrame, sampled: SamplingResult
) -> None:
    again = sample(day)
    assert again.keep.equals(sampled.keep)
    assert again.base_rate == sampled.base_rate
    shuffled = day.sample(fraction=1.0, shuffle=True, seed=3)
    assert not shuffled["query_id"].equals(day["query_id"])
    assert kept_ids(shuffled, sample(shuffled)) == kept_ids(day, sampled)


def test_another_seed_keeps_other_rows(day: pl.DataFrame, sampled: SamplingResult) -> None:
    other = sample(day, seed=43)
    a, b = kept_ids(day, sampled), kept_ids(day, other)
    assert len(a) == len(b)  # the ratio is exact for any seed ...
    heavy = set(day.filter("is_heavy")["query_id"])
    assert heavy <= a & b
    assert len(a - b) > 0.2 * (len(a) - len(heavy))  # ... but the light rows differ


def test_near_boundary_light_rows_are_kept_more_often(
    day: pl.DataFrame, sampled: SamplingResult
) -> None:
    buckets = kept_by_bucket(sampled, day["is_heavy"].to_numpy())
    assert len(buckets) == BUCKETS
    assert buckets[0]["bucket"] == "0.0-0.1"
    assert buckets[-1]["bucket"] == "0.9-1.0"
    assert sum(b["light_before"] for b in buckets) == int((~day["is_heavy"]).sum())
    assert sum(b["light_kept"] for b in buckets) == round(5.0 * int(day["is_heavy"].sum()))
    shares = [b["kept_share"] for b in buckets]
    assert all(s is not None for s in shares)
    assert all(later >= earlier - 0.03 for earlier, later in itertools.pairwise(shares))
    assert shares[-1] > 5 * shares[0]


def test_kept_share_per_bucket_matches_the_curve(
    day: pl.DataFrame, sampled: SamplingResult
) -> None:
    light = ~day["is_heavy"].to_numpy()
    p = keep_probability(
        sampled.distance, base_rate=sampled.base_rate, min_multiplier=0.05, max_boost=2.0
    )
    bucket = np.minimum((sampled.distance * BUCKETS).astype(int), BUCKETS - 1)
    for b, row in enumerate(kept_by_bucket(sampled, day["is_heavy"].to_numpy())):
        in_bucket = light & (bucket == b)
        expected = p[in_bucket].mean()
        sigma = math.sqrt(max(expected * (1 - expected), 1e-9) / in_bucket.sum())
        assert abs(row["kept_share"] - expected) < 5 * sigma + 1e-6, row


# --------------------------------------------------------------------------- edge cases


def test_unreachable_ratio_keeps_every_light_row() -> None:
    data = frame([400_000] * 10 + [1_000] * 20, heavy=[True] * 10 + [False] * 20)
    result = sample(data)
    assert result.keep.all()
    assert result.reachable is False
    assert result.achieved_ratio == 2.0


def test_a_null_query_id_is_a_clear_error() -> None:
    data = frame([1_000, 2_000, 3_000, 400_000], heavy=[False, False, False, True])
    data = data.with_columns(query_id=pl.Series(["a", "b", None, "h"]))
    with pytest.raises(ValueError, match=r"1 rows have a null query_id"):
        sample(data)


def test_no_heavy_row_keeps_no_light_row() -> None:
    result = sample(frame([1_000, 200_000, 299_999]))
    assert not result.keep.any()
    assert result.achieved_ratio is None
    assert result.base_rate == 0.0


def test_no_light_row_keeps_the_heavy_ones() -> None:
    result = sample(frame([400_000, 500_000], heavy=[True, True]))
    assert result.keep.all()
    assert result.reachable is False
    assert result.achieved_ratio == 0.0


def test_empty_frame() -> None:
    result = sample(frame([]))
    assert len(result.keep) == 0
    assert result.achieved_ratio is None


def test_equal_multipliers_sample_uniformly() -> None:
    data = frame([1_000] * 50 + [400_000] * 5, heavy=[False] * 50 + [True] * 5)
    result = sample(data, min_multiplier=1.0, max_boost=1.0, balance_ratio=2.0)
    assert int(result.keep.sum()) == 15


@pytest.mark.parametrize(("low", "high"), [(3.0, 2.0), (2.0000001, 2.0)])
def test_min_multiplier_above_max_boost_names_both(low: float, high: float) -> None:
    with pytest.raises(
        ValueError, match=rf"min_multiplier={low} must not exceed max_boost={high}.*params.yaml"
    ):
        sample(frame([1_000]), min_multiplier=low, max_boost=high)


# --------------------------------------------------------------------------- properties

ROWS = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=2_000_000),  # cpu ms
        st.integers(min_value=0, max_value=40 * GIB),  # memory
        st.booleans(),  # heavy (also for cheap rows: resource errors)
        st.text(max_size=12),  # id suffix
    ),
    max_size=60,
)
MULTIPLIERS = st.tuples(
    st.floats(min_value=1e-3, max_value=10.0), st.floats(min_value=1e-3, max_value=10.0)
).map(sorted)


@settings(max_examples=100, deadline=None)
@given(
    rows=ROWS,
    ratio=st.floats(min_value=0.01, max_value=50.0),
    multipliers=MULTIPLIERS,
    seed=st.integers(min_value=0, max_value=2**63 - 1),
)
def test_any_frame_keeps_every_heavy_row_and_the_ratio(
    rows: list[tuple[int, int, bool, str]], ratio: float, multipliers: list[float], seed: int
) -> None:
    data = pl.DataFrame(
        {
            "query_id": [f"{i}-{suffix}" for i, (*_, suffix) in enumerate(rows)],
            "is_heavy": [r[2] for r in rows],
            "cpu_time_millis": [r[0] for r in rows],
            "peak_memory_bytes": [r[1] for r in rows],
        },
        schema={
            "query_id": pl.String,
            "is_heavy": pl.Boolean,
            "cpu_time_millis": pl.Int64,
            "peak_memory_bytes": pl.Int64,
        },
    )
    low, high = multipliers
    result = sample(data, balance_ratio=ratio, min_multiplier=low, max_boost=high, seed=seed)
    heavy = data["is_heavy"].to_numpy().astype(bool)
    keep = result.keep.to_numpy()
    assert keep[heavy].all()
    n_heavy, n_light = int(heavy.sum()), int((~heavy).sum())
    assert int(keep[~heavy].sum()) == min(round(ratio * n_heavy), n_light)
    assert ((result.distance >= 0) & (result.distance < 1)).all()


@settings(max_examples=100, deadline=None)
@given(
    distances=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=50),
    base_rate=st.floats(min_value=0.0, max_value=1e6),
    multipliers=MULTIPLIERS,
)
def test_keep_probability_never_falls_with_distance(
    distances: list[float], base_rate: float, multipliers: list[float]
) -> None:
    low, high = multipliers
    grid = np.sort(np.array(distances))
    p = keep_probability(grid, base_rate=base_rate, min_multiplier=low, max_boost=high)
    assert (np.diff(p) >= 0).all()
    assert ((p >= 0) & (p <= 1)).all()


@settings(max_examples=200, deadline=None)
@given(
    u=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    d=st.floats(min_value=0.0, max_value=1.0),
    further=st.floats(min_value=0.0, max_value=1.0),
    base_rate=st.floats(min_value=0.0, max_value=100.0),
    multipliers=MULTIPLIERS,
)
def test_a_kept_light_row_stays_kept_nearer_the_boundary(
    u: float, d: float, further: float, base_rate: float, multipliers: list[float]
) -> None:
    low, high = multipliers
    nearer = d + (1.0 - d) * further  # d <= nearer <= 1
    m = multiplier(np.array([d, nearer]), min_multiplier=low, max_boost=high)
    if u / m[0] <= base_rate:
        assert u / m[1] <= base_rate


def test_sample_as_configured_reads_every_knob_from_params() -> None:
    """The split and train stages sample through params: each knob, changed there, changes
    the rows kept exactly as boundary_sample given it directly."""
    rng = np.random.default_rng(3)
    cpu = rng.integers(0, 600_000, 400).tolist()
    data = frame(cpu, heavy=[c >= 560_000 for c in cpu])
    knobs = {"balance_ratio": 2.0, "max_boost": 3.0, "min_multiplier": 0.2, "seed": 9}
    params = parse_params(
        {
            "boundary_sampling": knobs,
            "data_loading": {"cpu_threshold_seconds": 200, "memory_threshold_gb": 10},
        }
    )
    rule = LabelRule.from_params(params.data_loading)
    got = sample_as_configured(data, params)
    want = boundary_sample(data, **knobs, rule=rule)
    assert got.keep.to_list() == want.keep.to_list()
    assert got.base_rate == want.base_rate
    default = boundary_sample(data, **DEFAULTS)
    assert got.keep.to_list() != default.keep.to_list()
