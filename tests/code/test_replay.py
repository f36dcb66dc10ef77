"""Stage replay: PSI, the router's answers judged over days, drift reasons, the window rule."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from query_predictor.core.featurizer import FEATURE_NAMES
from query_predictor.params import DataLoading, Filters, ParamsError
from query_predictor.service.predictor import Predictor
from query_predictor.training.evaluate import headline
from query_predictor.training.featurize import context_of
from query_predictor.training.model import load_features
from query_predictor.training.replay import Reference, load_window, psi, replay

from .test_serving import built, predictor  # noqa: F401 (fixtures)

RNG = np.random.default_rng(5)


def judge(rows: pl.DataFrame, predictor: Predictor, reference: Reference):  # noqa: F811
    """:func:`replay` with the default PSI alert, PRD and costs."""
    return replay(
        rows,
        predictor,
        reference,
        bins=10,
        psi_alert=0.25,
        min_recall=0.98,
        max_fnr=0.02,
        cost_fn=100.0,
        cost_fp=1.0,
        min_queries=100,
        cost_ratio_alert=1.5,
        new_user_heavy_share=0.05,
    )


def test_psi_of_the_same_distribution_is_near_zero() -> None:
    reference = RNG.normal(size=20_000)
    assert psi(reference, RNG.normal(size=20_000), bins=10) < 0.01


def test_psi_grows_with_the_shift() -> None:
    reference = RNG.normal(size=20_000)
    small = psi(reference, RNG.normal(0.1, 1, size=20_000), bins=10)
    large = psi(reference, RNG.normal(1.0, 1, size=20_000), bins=10)
    assert 0.0 < small < 0.1 < 0.25 < large


def test_psi_of_few_values_uses_each_value_as_a_bin() -> None:
    flags = np.array([0.0] * 900 + [1.0] * 100)
    assert psi(flags, flags.copy(), bins=10) == pytest.approx(0.0)
    flipped = np.array([0.0] * 500 + [1.0] * 500)
    # by hand: (0.5-0.9) ln(0.5/0.9) + (0.5-0.1) ln(0.5/0.1)
    assert psi(flags, flipped, bins=10) == pytest.approx(0.4 * np.log(0.9 / 0.5) + 0.4 * np.log(5))
    # a value the reference never had lands in a bin of its own
    assert psi(flags, np.array([2.0] * 1000), bins=10) > 1.0


def test_psi_ignores_missing_values_and_empty_sides() -> None:
    reference = RNG.normal(size=5_000)
    current = np.concatenate([RNG.normal(size=5_000), [np.nan] * 3_000])
    assert psi(reference, current, bins=10) < 0.02
    assert psi(reference, np.array([np.nan]), bins=10) == 0.0


def test_the_replay_window_must_follow_the_training_data() -> None:
    data = DataLoading(start_date=dt.date(2025, 6, 1), end_date=dt.date(2025, 7, 15))
    with pytest.raises(ParamsError, match=r"must come after data_loading\.end_date 2025-07-15"):
        load_window(data, Filters(), start=dt.date(2025, 7, 10), end=dt.date(2025, 7, 20))


@pytest.fixture(scope="module")
def replayed(built, predictor: Predictor):  # noqa: F811
    directory, splits = built
    x, y = load_features(directory / "test.parquet", n_terms=len(predictor.featurizer.vocabulary))
    scores, _ = predictor.model.predict(x)
    dense = pl.read_parquet(directory / "test.parquet", columns=list(FEATURE_NAMES)).to_numpy()
    reference = Reference(dense.astype(np.float32), scores, float(np.mean(y)))
    labeled = pl.concat([splits["val"], splits["test"]])
    result = judge(labeled, predictor, reference)
    return labeled, result


def test_replay_judges_every_answer_of_the_router(replayed, predictor: Predictor) -> None:  # noqa: F811
    labeled, result = replayed
    answers = [predictor.predict(r["query"], context_of(r)) for r in labeled.iter_rows(named=True)]
    labels = labeled["is_heavy"].to_numpy()
    want = headline(
        labels,
        np.array([a.probability for a in answers]),
        np.array([a.heavy for a in answers]),
        threshold=predictor.model.threshold,
        cost_fn=100.0,
        cost_fp=1.0,
        min_recall=0.98,
        max_fnr=0.02,
    )
    metrics = result.metrics
    for key in ("recall", "fnr", "fpr", "precision", "routed_share", "prd_compliant", "counts"):
        assert metrics[key] == want[key]
    zero_cost = [a.stage == "zero_cost" for a in answers]
    assert metrics["zero_cost"]["answered"] == sum(zero_cost)
    assert metrics["zero_cost"]["heavy_missed"] == int(
        sum(z and h for z, h in zip(zero_cost, labels, strict=True))
    )


def test_replay_reports_each_day(replayed) -> None:
    labeled, result = replayed
    days = sorted({str(d) for d in labeled["event_date"].to_list()})
    assert [d["date"] for d in result.daily] == days
    assert sum(d["queries"] for d in result.daily) == labeled.height
    for day in result.daily:
        assert 0.0 <= day["heavy_rate"] <= 1.0
        assert day["score_psi"] >= 0.0
        if "recall" in day:
            assert 0.0 <= day["recall"] <= 1.0
    assert result.metrics["window"] == {"start": days[0], "end": days[-1], "days": len(days)}


def test_replay_reports_the_bundle_age_of_each_day(replayed, predictor: Predictor) -> None:  # noqa: F811
    _, result = replayed
    cutoff = predictor.featurizer.history.cutoff
    for day in result.daily:
        assert day["bundle_age_days"] == (dt.date.fromisoformat(day["date"]) - cutoff).days
    bundle = result.metrics["bundle"]
    assert bundle["history_cutoff"] == cutoff.isoformat()
    assert bundle["age_days_first"] == result.daily[0]["bundle_age_days"] >= 1
    assert bundle["age_days_last"] == result.daily[-1]["bundle_age_days"]
    low = [d["date"] for d in result.daily if "recall" in d and d["recall"] < 0.98]
    assert result.metrics["days_below_min_recall"] == low  # judged apart from drift
    assert not any("recall" in reason for reason in result.metrics["drift"]["reasons"])


def test_replay_ranks_the_features_that_moved(replayed) -> None:
    _, result = replayed
    shifts = [f["psi"] for f in result.features]
    assert shifts == sorted(shifts, reverse=True)
    assert {f["feature"] for f in result.features} <= set(FEATURE_NAMES)
    drift = result.metrics["drift"]
    assert drift["top_features"] == result.features[:5]
    assert drift["detected"] is bool(drift["reasons"])


def test_drift_is_reported_when_the_scores_move(built, predictor: Predictor) -> None:  # noqa: F811
    """A reference whose scores all sit near 1 makes every real day look shifted."""
    directory, splits = built
    dense = pl.read_parquet(directory / "test.parquet", columns=list(FEATURE_NAMES)).to_numpy()
    shifted = Reference(dense.astype(np.float32), RNG.uniform(0.95, 1.0, size=500), 0.5)
    result = judge(splits["test"], predictor, shifted)
    drift = result.metrics["drift"]
    assert drift["detected"]
    assert any(reason.startswith("score PSI") for reason in drift["reasons"])


def test_an_empty_window_is_a_clear_error(built, predictor: Predictor, tmp_path: Path) -> None:  # noqa: F811
    _, splits = built
    reference = Reference(np.zeros((1, len(FEATURE_NAMES)), np.float32), np.zeros(1), 0.0)
    with pytest.raises(ValueError, match="holds no labeled query"):
        judge(splits["test"].head(0), predictor, reference)


def test_a_window_without_heavy_queries_is_a_clear_error(built, predictor: Predictor) -> None:  # noqa: F811
    _, splits = built
    light = splits["test"].filter(~pl.col("is_heavy"))
    reference = Reference(np.zeros((1, len(FEATURE_NAMES)), np.float32), np.zeros(1), 0.0)
    with pytest.raises(ValueError, match="has no heavy query"):
        judge(light, predictor, reference)


def test_a_day_of_heavy_queries_only_still_gets_its_rates(built, predictor: Predictor) -> None:  # noqa: F811
    """Per-day rates need no light query (no per-day ROC-AUC, which would)."""
    directory, splits = built
    x, y = load_features(directory / "test.parquet", n_terms=len(predictor.featurizer.vocabulary))
    dense = pl.read_parquet(directory / "test.parquet", columns=list(FEATURE_NAMES)).to_numpy()
    reference = Reference(dense.astype(np.float32), predictor.model.predict(x)[0], float(y.mean()))
    heavy_day = splits["test"].filter(pl.col("is_heavy"))
    heavy_day = heavy_day.filter(pl.col("event_date") == heavy_day["event_date"].min())
    result = judge(pl.concat([splits["val"], heavy_day]), predictor, reference)
    day = next(d for d in result.daily if d["date"] == str(heavy_day["event_date"][0]))
    assert day["heavy_rate"] == 1.0
    assert day["fpr"] == 0.0
    assert 0.0 <= day["recall"] <= 1.0
