"""ONNX export: parity with XGBoost on random and real features, identical bytes, and clear
errors for corrupted or mismatched model files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import xgboost as xgb

from query_predictor.core import bundle as files_of
from query_predictor.core.featurizer import FEATURE_NAMES
from query_predictor.core.onnx_model import HeavyQueryModel, ModelError
from query_predictor.params import Params
from query_predictor.storage import write_parquet
from query_predictor.training.export import MAX_ABS_DIFF, bundle_metadata, compare, to_onnx
from query_predictor.training.model import load_features

from .test_featurize import run, split, synthetic_labeled

DENSE = len(FEATURE_NAMES)


def random_matrix(rows: int, terms: int, seed: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Sparse rows like the featurizer's: many exact zeros (absent), counts, logs, TF-IDF."""
    rng = np.random.default_rng(seed)
    dense = rng.poisson(0.7, size=(rows, DENSE)).astype(np.float32)
    dense[:, :10] = rng.normal(3, 2, size=(rows, 10)).astype(np.float32)
    dense[rng.random((rows, DENSE)) < 0.3] = 0.0
    tfidf = sp.random(rows, terms, density=0.05, random_state=seed, dtype=np.float32).tocsr()
    x = sp.hstack([sp.csr_matrix(dense), tfidf], format="csr")
    score = dense[:, 0] - 0.8 * dense[:, 11] + 3 * tfidf[:, 0].toarray().ravel()
    return x, score + rng.normal(0, 1, rows) > 2.5


def train(x: sp.csr_matrix, y: np.ndarray, trees: int = 40) -> xgb.XGBClassifier:
    model = xgb.XGBClassifier(n_estimators=trees, max_depth=5, tree_method="hist", n_jobs=1)
    return model.fit(x, y)


def export(
    directory: Path,
    model: xgb.XGBClassifier,
    terms: int | list[str],
    threshold: float,
    params: Params | None = None,
) -> Path:
    """Write ``model.onnx`` and its metadata as the export stage does; the other bundle files
    are hashed when ``directory`` holds them (else a placeholder digest stands in)."""
    names = [f"t{i}" for i in range(terms)] if isinstance(terms, int) else terms
    path = directory / files_of.MODEL
    model_bytes = to_onnx(model, width=DENSE + len(names), threshold=threshold).SerializeToString()
    path.write_bytes(model_bytes)
    files = {
        name: files_of.sha256_file(directory / name) if (directory / name).is_file() else "0" * 64
        for name in files_of.HASHED_FILES
    }
    metadata = bundle_metadata(params or Params(), terms=names, threshold=threshold, files=files)
    (directory / files_of.METADATA).write_text(metadata.to_json())
    return path


@pytest.fixture(scope="module")
def random_case(tmp_path_factory: pytest.TempPathFactory):
    x, y = random_matrix(3000, 40, seed=3)
    model = train(x, y)
    threshold = 0.3
    path = export(tmp_path_factory.mktemp("random"), model, 40, threshold)
    return x, model, HeavyQueryModel.load(path), threshold


def test_random_features_match_xgboost(random_case) -> None:
    x, model, onnx_model, threshold = random_case
    reference = model.get_booster().inplace_predict(x)
    parity = compare(reference, *onnx_model.predict(x), threshold)
    assert parity.rows == 3000
    assert parity.max_abs_diff < MAX_ABS_DIFF
    assert parity.decision_flips == 0
    assert parity.ok
    # zeros must mean "absent": fed as plain values the same rows would score differently
    assert np.abs(reference - model.predict_proba(x.toarray())[:, 1]).max() > 1e-3


def test_dense_and_sparse_rows_give_the_same_scores(random_case) -> None:
    x, _, onnx_model, _ = random_case
    sparse_scores, sparse_decisions = onnx_model.predict(x[:500])
    dense_scores, dense_decisions = onnx_model.predict(x[:500].toarray())
    assert np.array_equal(sparse_scores, dense_scores)
    assert np.array_equal(sparse_decisions, dense_decisions)


def test_decision_is_score_at_or_above_threshold(random_case) -> None:
    x, _, onnx_model, threshold = random_case
    scores, decisions = onnx_model.predict(x)
    assert decisions.dtype == bool
    assert np.array_equal(decisions, scores >= np.float32(threshold))
    assert 0 < decisions.sum() < len(decisions)


def test_real_features_match_xgboost(tmp_path: Path) -> None:
    labeled = synthetic_labeled(n=600, seed=9)
    result = run(labeled, split(labeled))
    terms = len(result.vocabulary)
    for name, matrix in result.matrices.items():
        write_parquet(matrix, tmp_path / f"{name}.parquet")
    x_train, y_train = load_features(tmp_path / "train.parquet", n_terms=terms)
    x_test, _ = load_features(tmp_path / "test.parquet", n_terms=terms)
    assert x_test.shape[0] > 50
    model = train(x_train, y_train, trees=30)
    onnx_model = HeavyQueryModel.load(export(tmp_path, model, terms, threshold=0.5))
    for x in (x_train, x_test):
        reference = model.get_booster().inplace_predict(x)
        parity = compare(reference, *onnx_model.predict(x), 0.5)
        assert parity.ok, parity


def test_export_is_byte_identical(random_case) -> None:
    _, model, _, _ = random_case
    first = to_onnx(model, width=DENSE + 40, threshold=0.25).SerializeToString()
    second = to_onnx(model, width=DENSE + 40, threshold=0.25).SerializeToString()
    assert first == second
    assert to_onnx(model, width=DENSE + 40, threshold=0.5).SerializeToString() != first


def test_compare_allows_flips_only_next_to_the_threshold() -> None:
    reference = np.array([0.1, 0.5 - 5e-7, 0.5 + 5e-7, 0.9])
    scores = reference.astype(np.float32)
    decisions = np.array([False, True, False, True])  # the two near 0.5 flipped
    parity = compare(reference, scores, decisions, 0.5)
    assert (parity.decision_flips, parity.flips_near_threshold) == (0, 2)
    assert parity.ok
    decisions[0] = True
    assert compare(reference, scores, decisions, 0.5).decision_flips == 1
    assert not compare(reference, scores + 1e-4, decisions, 0.5).ok


# --------------------------------------------------------------------------- bad files


def rehash(model: Path) -> None:
    """Record the model file's current sha256 in its metadata, as if export had written it."""
    meta = model.with_name(files_of.METADATA)
    payload = json.loads(meta.read_text())
    payload["files"][files_of.MODEL] = files_of.sha256_file(model)
    meta.write_text(json.dumps(payload))


@pytest.fixture
def bundle(tmp_path: Path, random_case) -> Path:
    _, model, _, _ = random_case
    return export(tmp_path, model, 40, threshold=0.3)


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],
        lambda data: b"\x00" * 64 + data[64:],
        lambda data: b"not a model at all",
        lambda data: b"",
    ],
    ids=["truncated", "overwritten-header", "text", "empty"],
)
def test_corrupted_model_is_a_clear_error(bundle: Path, damage) -> None:
    bundle.write_bytes(damage(bundle.read_bytes()))
    with pytest.raises(ModelError, match=r"model\.onnx does not belong to this bundle"):
        HeavyQueryModel.load(bundle)
    rehash(bundle)  # corrupt when export wrote it: the ONNX loader says so
    with pytest.raises(ModelError, match=r"model\.onnx is not a loadable ONNX model.*dvc"):
        HeavyQueryModel.load(bundle)


def test_metadata_of_another_width_is_named(bundle: Path) -> None:
    meta = bundle.with_name("metadata.json")
    payload = json.loads(meta.read_text())
    payload["feature_names"] = payload["feature_names"][:-5]
    payload["input"] |= {"width": DENSE + 35, "tfidf_terms": 35}
    meta.write_text(json.dumps(payload))
    with pytest.raises(ModelError, match=f"takes {DENSE + 40} features but its metadata lists"):
        HeavyQueryModel.load(bundle)
    payload["input"]["width"] = DENSE + 40
    meta.write_text(json.dumps(payload))
    with pytest.raises(ModelError, match=r"input\.width=.* but feature_names lists"):
        HeavyQueryModel.load(bundle)


def test_features_in_another_order_are_named(bundle: Path) -> None:
    meta = bundle.with_name("metadata.json")
    payload = json.loads(meta.read_text())
    names = payload["feature_names"]
    names[3], names[4] = names[4], names[3]
    meta.write_text(json.dumps(payload))
    with pytest.raises(ModelError, match=f"feature 3 of the model is '{FEATURE_NAMES[4]}'"):
        HeavyQueryModel.load(bundle)


def test_missing_or_broken_metadata(bundle: Path) -> None:
    meta = bundle.with_name("metadata.json")
    meta.write_text("{not json")
    with pytest.raises(ModelError, match=r"metadata\.json is not valid JSON"):
        HeavyQueryModel.load(bundle)
    meta.write_text(json.dumps({"feature_names": []}))
    with pytest.raises(ModelError, match=r"metadata\.json: .*Field required.*rerun `dvc repro"):
        HeavyQueryModel.load(bundle)
    meta.unlink()
    with pytest.raises(ModelError, match=r"metadata\.json not found"):
        HeavyQueryModel.load(bundle)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: 42, r"holds a JSON int, not an object"),
        (lambda m: m | {"feature_names": 5}, r"feature_names=5: Input should be a valid"),
        (lambda m: m | {"threshold": "abc"}, r"threshold='abc': Input should be a valid number"),
        (lambda m: m | {"threshold": 1.5}, r"threshold=1.5: Input should be less than or equal"),
        (lambda m: m | {"files": {}}, r"files lists \[\], expected"),
        (lambda m: m | {"label": {"cpu_threshold_seconds": -1}}, r"label\.cpu_threshold_seconds"),
        (lambda m: m | {"surprise": 1}, r"surprise=1: Extra inputs are not permitted"),
    ],
    ids=[
        "not-an-object",
        "feature-names",
        "threshold-text",
        "threshold-range",
        "files",
        "label",
        "unknown-key",
    ],
)
def test_metadata_of_wrong_types_is_one_named_error(bundle: Path, change, message: str) -> None:
    meta = bundle.with_name("metadata.json")
    meta.write_text(json.dumps(change(json.loads(meta.read_text()))))
    with pytest.raises(ModelError, match=message) as raised:
        HeavyQueryModel.load(bundle)
    assert "\n" not in str(raised.value)
    assert str(meta) in str(raised.value)


def test_an_onnx_model_of_another_kind_is_refused(tmp_path: Path, bundle: Path) -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "other",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
    )
    other = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    bundle.write_bytes(other.SerializeToString())
    rehash(bundle)
    with pytest.raises(ModelError, match="not written by `export`"):
        HeavyQueryModel.load(bundle)


def test_rows_of_the_wrong_width_are_refused(random_case) -> None:
    _, _, onnx_model, _ = random_case
    with pytest.raises(ModelError, match=f"the model takes {DENSE + 40} features"):
        onnx_model.predict(np.zeros((2, DENSE + 39), dtype=np.float32))
