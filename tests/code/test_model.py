"""Training: feature matrices read back as CSR, deterministic cross-validated XGBoost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from sklearn.metrics import average_precision_score

from query_predictor.core.featurizer import FEATURE_NAMES
from query_predictor.params import parse_params
from query_predictor.training.model import (
    _classifier,
    cross_validate_and_fit,
    cv_splits,
    fit_final,
    load_features,
    refit_with_validation,
    summarize_folds,
)


def write_split(path: Path, rows: int, seed: int) -> np.ndarray:
    """A feature parquet like the featurize stage's: heavy rows have larger feature 0."""
    rng = np.random.default_rng(seed)
    heavy = rng.random(rows) < 0.2
    dense = rng.normal(size=(rows, len(FEATURE_NAMES))).astype(np.float32)
    dense[:, 0] += heavy * 2.5
    index = [sorted(rng.choice(30, size=3, replace=False).tolist()) for _ in range(rows)]
    value = [[0.5, 0.5, 0.7071] for _ in range(rows)]
    frame = pl.DataFrame(dense, schema=list(FEATURE_NAMES)).with_columns(
        query_id=pl.Series([f"q{seed}_{i}" for i in range(rows)]),
        is_heavy=pl.Series(heavy),
        tfidf_index=pl.Series(index, dtype=pl.List(pl.Int32)),
        tfidf_value=pl.Series(value, dtype=pl.List(pl.Float32)),
    )
    frame.write_parquet(path)
    return heavy


def test_load_features_builds_dense_then_sparse_columns(tmp_path: Path) -> None:
    heavy = write_split(tmp_path / "train.parquet", 50, seed=1)
    x, y = load_features(tmp_path / "train.parquet", n_terms=30)
    assert x.shape == (50, len(FEATURE_NAMES) + 30)
    assert (y == heavy).all()
    frame = pl.read_parquet(tmp_path / "train.parquet")
    row = x[7].toarray().ravel()
    assert row[: len(FEATURE_NAMES)] == pytest.approx(frame.select(FEATURE_NAMES).row(7))
    for column, weight in zip(frame["tfidf_index"][7], frame["tfidf_value"][7], strict=True):
        assert row[len(FEATURE_NAMES) + column] == pytest.approx(weight)


def test_cross_validation_is_deterministic_and_learns(tmp_path: Path) -> None:
    write_split(tmp_path / "train.parquet", 600, seed=2)
    x, y = load_features(tmp_path / "train.parquet", n_terms=30)
    days = np.arange(600) % 9
    params = parse_params({"model": {"n_estimators": 30, "cv_folds": 3}}).model
    first = cross_validate_and_fit(x, y, params, days=days, threads=2)
    second = cross_validate_and_fit(x, y, params, days=days, threads=1)
    assert len(first.folds) == 3
    assert first.folds == second.folds
    assert bytes(first.model.get_booster().save_raw(raw_format="json")) == bytes(
        second.model.get_booster().save_raw(raw_format="json")
    )
    summary = summarize_folds(first.folds)
    assert summary["mean_roc_auc"] > 0.8  # feature 0 separates the classes
    assert 1 <= first.n_trees <= 30


def test_folds_stop_together_at_their_best_mean_held_out_pr_auc(tmp_path: Path) -> None:
    """The folds grow together and stop ``early_stopping_rounds`` trees after the best of
    their mean held-out PR-AUC, well before a large budget; the final model has the trees of
    that best point, and each fold's figures are those of the classifier the final model's
    settings grow on that fold's rows."""
    write_split(tmp_path / "train.parquet", 600, seed=2)
    x, y = load_features(tmp_path / "train.parquet", n_terms=30)
    days = np.arange(600) % 9
    model = {"n_estimators": 300, "cv_folds": 3, "early_stopping_rounds": 5}
    params = parse_params({"model": model}).model
    result = cross_validate_and_fit(x, y, params, days=days, threads=1)
    assert result.cv_rounds == result.n_trees + 5 < 300
    assert result.model.get_booster().num_boosted_rounds() == result.n_trees
    assert result.cv_curve[result.n_trees - 1] == max(result.cv_curve)
    for fold, (fit_rows, held_rows) in zip(
        result.folds, cv_splits(y, params, days=days), strict=True
    ):
        alone = _classifier(params, result.n_trees, early_stopping=False, threads=1)
        alone.fit(x[fit_rows], y[fit_rows])
        scores = alone.predict_proba(x[held_rows])[:, 1]
        assert fold["pr_auc"] == pytest.approx(average_precision_score(y[held_rows], scores))
        assert 0 <= fold["best_iteration"] < result.cv_rounds


def test_a_rise_below_the_min_delta_does_not_keep_the_folds_growing(tmp_path: Path) -> None:
    write_split(tmp_path / "train.parquet", 600, seed=2)
    x, y = load_features(tmp_path / "train.parquet", n_terms=30)
    model = {"n_estimators": 300, "cv_folds": 3, "early_stopping_rounds": 5}
    days = np.arange(600) % 9
    strict = parse_params({"model": {**model, "early_stopping_min_delta": 0.5}}).model
    result = cross_validate_and_fit(x, y, strict, days=days, threads=1)
    assert (result.n_trees, result.cv_rounds) == (1, 6)  # no tree adds 0.5 of PR-AUC
    assert max(result.cv_curve) > result.cv_curve[0]  # though later trees did add a little


def test_too_few_heavy_rows_for_the_folds_is_named(tmp_path: Path) -> None:
    write_split(tmp_path / "train.parquet", 12, seed=3)
    x, y = load_features(tmp_path / "train.parquet", n_terms=30)
    params = parse_params({"model": {"cv_folds": 10}}).model
    with pytest.raises(ValueError, match=r"too few for model\.cv_folds=10"):
        cross_validate_and_fit(x, y, params, days=np.arange(12))


def test_day_folds_never_split_a_day_and_random_folds_do() -> None:
    """cv_split: day holds out whole days (each day in exactly one held-out part, every fold
    keeping both classes); random folds cut days; too few days for the folds is named."""
    rng = np.random.default_rng(5)
    days = rng.integers(0, 20, size=2000)
    y = rng.random(2000) < 0.15
    params = parse_params({"model": {"cv_folds": 4}}).model
    held_days = []
    for fit, held in cv_splits(y, params, days=days):
        assert not set(days[fit]) & set(days[held])
        assert y[held].any() and (~y[held]).any()
        held_days += sorted(set(days[held]))
    assert sorted(held_days) == list(range(20))
    rows = parse_params({"model": {"cv_folds": 4, "cv_split": "random"}}).model
    fit, held = next(iter(cv_splits(y, rows)))
    assert set(days[fit]) & set(days[held])
    with pytest.raises(ValueError, match=r"covers 3 day\(s\): too few for model\.cv_folds=4"):
        cv_splits(y, params, days=days % 3)
    with pytest.raises(ValueError, match="needs each training row's day"):
        cv_splits(y, params)


def test_the_refit_adds_the_kept_validation_rows_and_keeps_the_tree_count(
    tmp_path: Path,
) -> None:
    write_split(tmp_path / "train.parquet", 400, seed=4)
    write_split(tmp_path / "val.parquet", 300, seed=5)
    train = load_features(tmp_path / "train.parquet", n_terms=30)
    val = load_features(tmp_path / "val.parquet", n_terms=30)
    params = parse_params({"model": {"n_estimators": 30}}).model
    keep = np.arange(300) % 3 == 0  # any subset: the stage's is boundary-sampled

    def raw(model: object) -> bytes:
        return bytes(model.get_booster().save_raw(raw_format="json"))  # type: ignore[attr-defined]

    refit = refit_with_validation(train, val, keep, params, 12, threads=1)
    assert refit.get_booster().num_boosted_rounds() == 12
    stacked = sp.vstack([train[0], val[0][keep]], format="csr")
    by_hand = fit_final(stacked, np.concatenate([train[1], val[1][keep]]), params, 12)
    assert raw(refit) == raw(by_hand)  # exactly the training rows and the kept ones
    alone = fit_final(train[0], train[1], params, 12)
    assert raw(refit) != raw(alone)
    nothing_kept = refit_with_validation(train, val, np.zeros(300, bool), params, 12)
    assert raw(nothing_kept) == raw(alone)
    with pytest.raises(ValueError, match="keep has 299 entries for 300 validation rows"):
        refit_with_validation(train, val, keep[:-1], params, 12)
