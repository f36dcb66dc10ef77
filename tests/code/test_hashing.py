"""Deterministic sampling: a keyed BLAKE2b hash of ``query_id`` mapped to [0, 1)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from query_predictor.training.hashing import keep_fraction, unit_hash, unit_hashes

QUERY_ID = "20250601_101512_00042_x7k2p"
KEYS = [f"20250601_{i:06d}_00000_hash" for i in range(5_000)]


# Computed once from the current implementation and hard-coded: a change of hash function,
# digest size, salt layout or scaling changes every sample and must be a deliberate decision.
@pytest.mark.parametrize(
    ("key", "seed", "value"),
    [
        (QUERY_ID, 0, 0.2761581364678404),
        (QUERY_ID, 42, 0.9282240994110972),
        ("", 0, 0.7058483037031943),
    ],
)
def test_pinned_values(key: str, seed: int, value: float) -> None:
    assert unit_hash(key, seed) == value


def test_values_lie_in_the_unit_interval() -> None:
    values = [unit_hash(k, seed) for k in KEYS[:1_000] for seed in (0, 1, -1, 2**63 - 1)]
    assert all(0.0 <= v < 1.0 for v in values)


def test_identical_across_calls() -> None:
    assert [unit_hash(k, 3) for k in KEYS[:100]] == [unit_hash(k, 3) for k in KEYS[:100]]


@pytest.mark.parametrize(("seed_a", "seed_b"), [(0, 1), (0, -1), (1, 2), (42, 2**63 - 1)])
def test_seeds_give_different_values(seed_a: int, seed_b: int) -> None:
    a = [unit_hash(k, seed_a) for k in KEYS[:200]]
    b = [unit_hash(k, seed_b) for k in KEYS[:200]]
    assert all(x != y for x, y in zip(a, b, strict=True))


def test_different_keys_give_different_values() -> None:
    values = [unit_hash(k, 0) for k in KEYS]
    assert len(set(values)) == len(KEYS)


def test_text_is_hashed_as_utf8() -> None:
    assert unit_hash("é", 0) != unit_hash("e", 0)
    assert 0.0 <= unit_hash("\U0001f600 query", 0) < 1.0


def test_roughly_uniform() -> None:
    values = np.array([unit_hash(k, 0) for k in KEYS])
    n = len(values)
    assert abs(values.mean() - 0.5) < 4 * math.sqrt(1 / 12 / n)  # 4 sigma of the mean
    counts, _ = np.histogram(values, bins=10, range=(0.0, 1.0))
    expected = n / 10
    assert all(abs(c - expected) < 4 * math.sqrt(expected * 0.9) for c in counts)


def test_unit_hashes_match_unit_hash_and_map_null_to_nan() -> None:
    keys = pl.Series("query_id", [QUERY_ID, None, ""], dtype=pl.String)
    values = unit_hashes(keys, 0)
    assert values.dtype == np.float64
    assert values.shape == (3,)
    assert values[0] == unit_hash(QUERY_ID, 0)
    assert math.isnan(values[1])
    assert values[2] == unit_hash("", 0)
    assert unit_hashes(pl.Series([], dtype=pl.String), 0).shape == (0,)


def frame(keys: list[str | None]) -> pl.DataFrame:
    return pl.DataFrame({"query_id": keys}, schema={"query_id": pl.String})


@pytest.mark.parametrize("fraction", [1.0, 1.5])
def test_fraction_one_keeps_every_row(fraction: float) -> None:
    mask = keep_fraction(frame([*KEYS[:50], None]), fraction=fraction, seed=0)
    assert mask.dtype == pl.Boolean
    assert mask.to_list() == [True] * 51
    assert keep_fraction(frame([]), fraction=fraction, seed=0).len() == 0


@pytest.mark.parametrize("fraction", [1e-9, 0.1, 0.5])
def test_null_keys_are_kept(fraction: float) -> None:
    mask = keep_fraction(frame([None, KEYS[0], None]), fraction=fraction, seed=0)
    assert mask.to_list()[0] is True
    assert mask.to_list()[2] is True


def test_keep_fraction_is_the_hash_below_the_fraction() -> None:
    keys = KEYS[:500]
    mask = keep_fraction(frame(keys), fraction=0.3, seed=5)
    assert mask.len() == len(keys)
    assert mask.to_list() == [unit_hash(k, 5) < 0.3 for k in keys]


def test_keep_fraction_ignores_row_order() -> None:
    keys = KEYS[:500]
    forward = keep_fraction(frame(keys), fraction=0.3, seed=5)
    backward = keep_fraction(frame(keys[::-1]), fraction=0.3, seed=5)
    kept_forward = {k for k, keep in zip(keys, forward, strict=True) if keep}
    kept_backward = {k for k, keep in zip(keys[::-1], backward, strict=True) if keep}
    assert kept_forward == kept_backward


def test_keep_fraction_is_nested_across_fractions() -> None:
    keys = frame(KEYS[:1_000])
    small = keep_fraction(keys, fraction=0.1, seed=0)
    large = keep_fraction(keys, fraction=0.4, seed=0)
    assert (small & ~large).sum() == 0
    assert small.sum() < large.sum()


def test_keep_fraction_is_about_the_fraction() -> None:
    n, fraction = len(KEYS), 0.25
    kept = keep_fraction(frame(KEYS), fraction=fraction, seed=11).sum()
    assert abs(kept - n * fraction) < 4 * math.sqrt(n * fraction * (1 - fraction))


def test_keep_fraction_by_another_key() -> None:
    data = pl.DataFrame({"query_id": ["a", "b"], "user": ["alice", None]})
    mask = keep_fraction(data, fraction=0.5, seed=0, key="user")
    assert mask.to_list() == [unit_hash("alice", 0) < 0.5, True]
