"""Deterministic per-row sampling: a keyed hash of ``query_id`` mapped to [0, 1).

Sampling decisions must not depend on RNG state, row order or the engine that runs them
(polars today, Spark later), so they are a pure function of the id and a seed. BLAKE2b is in
every Python's standard library and is stable across versions and platforms, unlike
``polars.Expr.hash`` whose values may change between releases.
"""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl

_SCALE = float(2**64)


def unit_hash(key: str, seed: int) -> float:
    """Map ``key`` to a uniform-looking number in [0, 1), fixed for a given ``seed``."""
    digest = hashlib.blake2b(
        key.encode("utf-8"), digest_size=8, salt=seed.to_bytes(8, "little", signed=True)
    ).digest()
    return int.from_bytes(digest, "little") / _SCALE


def unit_hashes(keys: pl.Series, seed: int) -> np.ndarray:
    """Vector form of :func:`unit_hash`; null keys map to NaN (never kept by ``< fraction``)."""
    return np.fromiter(
        (np.nan if k is None else unit_hash(k, seed) for k in keys),
        dtype=np.float64,
        count=len(keys),
    )


def keep_fraction(
    frame: pl.DataFrame, *, fraction: float, seed: int, key: str = "query_id"
) -> pl.Series:
    """Boolean mask keeping a deterministic ``fraction`` of rows by the hash of ``key``.

    Rows whose key is null are kept, so that validation can quarantine them by name rather
    than the sampler dropping them silently.
    """
    if fraction >= 1.0:
        return pl.Series("keep", [True] * frame.height, dtype=pl.Boolean)
    values = unit_hashes(frame[key], seed)
    return pl.Series("keep", np.isnan(values) | (values < fraction))
