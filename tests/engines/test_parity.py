"""polars and Spark (local mode) give the same rows, splits, features and model on one log.

Spark runs the same functions on its partitions, so every comparison here is exact (bytes
where a stage writes files); the feature matrices are also held to 1e-9 column by column.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from polars.testing import assert_frame_equal

from query_predictor.params import Model, Params
from query_predictor.storage import write_json, write_parquet
from query_predictor.training import zero_cost
from query_predictor.training.engines import PolarsEngine
from query_predictor.training.export import to_onnx
from query_predictor.training.featurize import FeatureSet, convention_options, featurize
from query_predictor.training.model import cross_validate_and_fit, load_features
from query_predictor.training.partitions import LoadOutcome, load_partitions, write_outputs
from query_predictor.training.spark_engine import SparkEngine
from query_predictor.training.splitting import SplitResult, run_split
from query_predictor.training.windows import SPLITS, Window, read_labeled, windows_for

ENGINES = ("polars", "spark")


@pytest.fixture(scope="module")
def engines(spark: SparkEngine) -> dict[str, object]:
    return {"polars": PolarsEngine(), "spark": spark}


def _files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def loaded(
    engines: dict, small_log: tuple[Path, Params], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, LoadOutcome]]:
    _, params = small_log
    out = {}
    for name in ENGINES:
        root = tmp_path_factory.mktemp(f"load-{name}")
        outcome = load_partitions(
            params.data_loading,
            params.filters,
            runner=engines[name].load_runner(),
            checkpoint_dir=root / "checkpoint",
        )
        write_outputs(outcome, labeled_dir=root / "labeled", quarantine_file=root / "q.parquet")
        out[name] = (root, outcome)
    return out


def test_load_gives_the_same_files_and_metrics(loaded: dict) -> None:
    (pol, pol_out), (spk, spk_out) = loaded["polars"], loaded["spark"]
    assert spk_out.metrics == pol_out.metrics
    assert pol_out.metrics["rows_labeled"] > 1500
    assert _files(spk / "labeled") == _files(pol / "labeled")
    assert _files(spk / "labeled")  # not two empty folders
    assert (spk / "q.parquet").read_bytes() == (pol / "q.parquet").read_bytes()


@pytest.fixture(scope="module")
def zero_costs(engines: dict, loaded: dict, small_log: tuple[Path, Params]) -> dict[str, Path]:
    from query_predictor.core.classifier import QueryClassifier

    _, params = small_log
    train = windows_for(params)["train"]
    out = {}
    for name in ENGINES:
        root = loaded[name][0]
        frame = engines[name].categorized(
            root / "labeled", train, QueryClassifier(small_limit=params.zero_cost.small_limit)
        )
        verdicts = zero_cost.decide(zero_cost.category_table(frame), params.zero_cost)
        validated = [c for c, v in verdicts.items() if v["validated"]]
        write_json(
            root / "zero_cost.json",
            {"validated": validated, "small_limit": params.zero_cost.small_limit},
        )
        out[name] = frame
    return out


def test_zero_cost_categories_are_the_same(zero_costs: dict, loaded: dict) -> None:
    assert_frame_equal(zero_costs["spark"], zero_costs["polars"])
    pol, spk = loaded["polars"][0], loaded["spark"][0]
    assert json.loads((spk / "zero_cost.json").read_text()) == json.loads(
        (pol / "zero_cost.json").read_text()
    )
    assert json.loads((pol / "zero_cost.json").read_text())["validated"]


@pytest.fixture(scope="module")
def splits(
    engines: dict, loaded: dict, zero_costs: dict, small_log: tuple[Path, Params]
) -> dict[str, SplitResult]:
    _, params = small_log
    return {
        name: run_split(
            loaded[name][0] / "labeled",
            loaded[name][0] / "zero_cost.json",
            params,
            categorized=engines[name].categorized,
        )
        for name in ENGINES
    }


def test_splits_hold_the_same_query_ids_and_rows(splits: dict) -> None:
    for name in SPLITS:
        pol, spk = splits["polars"].frames[name], splits["spark"].frames[name]
        assert set(spk["query_id"]) == set(pol["query_id"])
        assert_frame_equal(spk, pol)
    assert splits["spark"].metrics == splits["polars"].metrics


@pytest.fixture(scope="module")
def features(
    engines: dict, loaded: dict, splits: dict, small_log: tuple[Path, Params]
) -> dict[str, FeatureSet]:
    _, params = small_log
    windows = windows_for(params)
    f = params.features
    out = {}
    for name in ENGINES:
        labeled = read_labeled(
            loaded[name][0] / "labeled",
            Window("all", params.data_loading.start_date, windows["test"].end),
        )
        out[name] = featurize(
            labeled,
            splits[name].frames,
            train_end=windows["train"].end,
            vocab_size=f.tfidf_vocab_size,
            prior_weight=f.history_prior_weight,
            parity_sample=f.parity_sample,
            seed=f.seed,
            conventions=convention_options(f),
            workers=1,
            analyze=engines[name].analyze,
        )
    return out


def test_features_vocabulary_and_history_are_the_same(features: dict) -> None:
    pol, spk = features["polars"], features["spark"]
    assert spk.vocabulary.to_payload() == pol.vocabulary.to_payload()
    assert len(pol.vocabulary) > 50
    assert_frame_equal(spk.history, pol.history)
    assert spk.conventions.to_payload() == pol.conventions.to_payload()
    for name in SPLITS:
        a, b = pol.matrices[name], spk.matrices[name]
        assert a.columns == b.columns and a.height == b.height > 0
        dense = [c for c, t in a.schema.items() if t.is_float()]
        left = a.select(dense).to_numpy().astype(np.float64)
        right = b.select(dense).to_numpy().astype(np.float64)
        assert np.array_equal(np.isnan(left), np.isnan(right))
        assert np.nanmax(np.abs(left - right)) <= 1e-9
        assert_frame_equal(b, a)  # and the rest (ids, labels, sparse TF-IDF) exactly


def _model_hash(result: FeatureSet, folder: Path) -> str:
    for name, matrix in result.matrices.items():
        write_parquet(matrix, folder / f"{name}.parquet")
    n_terms = len(result.vocabulary)
    x, y = load_features(folder / "train.parquet", n_terms=n_terms)
    params = Model(n_estimators=10, cv_folds=2, cv_split="random")
    fitted = cross_validate_and_fit(x, y, params, threads=1)
    width = x.shape[1]
    onnx = to_onnx(fitted.model, width=width, threshold=0.5).SerializeToString()
    return hashlib.sha256(onnx).hexdigest()


def test_training_on_either_engines_features_gives_the_same_onnx_model(
    features: dict, tmp_path: Path
) -> None:
    hashes = {}
    for name in ENGINES:
        (tmp_path / name).mkdir()
        hashes[name] = _model_hash(features[name], tmp_path / name)
    assert hashes["spark"] == hashes["polars"]
