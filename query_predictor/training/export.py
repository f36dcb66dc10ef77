"""Stage ``export``: the XGBoost model as ONNX, checked against XGBoost on the test split.

onnxmltools turns the booster into one ``TreeEnsembleClassifier``. Around it the graph adds
what serving should not have to know: zeros become missing values (the training matrices are
sparse, so XGBoost never saw a stored zero and sends absent values down each split's default
branch), the heavy-class probability is its own output, and the decision at the exported
threshold is a second one. The bytes depend only on the model and the threshold (the
converter's random graph name is replaced), so two runs write the same file.

Parity: on every test row, ONNX Runtime and XGBoost must agree to ``MAX_ABS_DIFF`` and make
the same decision, except where XGBoost's score lies within ``NEAR_THRESHOLD`` of the
threshold (float32 arithmetic may put such a row on either side).
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import onnx
import xgboost as xgb
from onnx import TensorProto, helper
from onnxmltools.convert import convert_xgboost
from onnxmltools.convert.common.data_types import FloatTensorType

from query_predictor import __version__
from query_predictor.core import bundle
from query_predictor.core.bundle import (
    BundleMetadata,
    FeaturizerSettings,
    InputLayout,
    WindowDates,
    sha256_file,
)
from query_predictor.core.errors import ModelError, ParityError
from query_predictor.core.featurizer import FEATURE_NAMES
from query_predictor.core.label import LabelRule
from query_predictor.core.onnx_model import DECISION, INPUT, SCORE
from query_predictor.params import Params

from .windows import windows_for

__all__ = [
    "MODEL_SECTIONS",
    "Parity",
    "ParityError",
    "bundle_hashes",
    "bundle_metadata",
    "compare",
    "load_classifier",
    "parity_failures",
    "to_onnx",
]

# the params that shaped the model, hashed into its metadata
MODEL_SECTIONS = (
    "data_loading",
    "filters",
    "zero_cost",
    "splits",
    "boundary_sampling",
    "features",
    "model",
    "prd",
)
MAX_ABS_DIFF = 1e-5
NEAR_THRESHOLD = 1e-6
OPSET = 17  # default-domain operators around the tree ensemble
GRAPH_NAME = "heavy_query_classifier"


def load_classifier(path: str | Path) -> xgb.XGBClassifier:
    """The trained model from XGBoost's JSON, in the wrapper onnxmltools converts."""
    classifier = xgb.XGBClassifier()
    classifier.load_model(path)
    return classifier


def to_onnx(classifier: xgb.XGBClassifier, *, width: int, threshold: float) -> onnx.ModelProto:
    """The model as an ONNX graph: dense float32 rows in, probability and decision out."""
    converted = convert_xgboost(
        classifier, initial_types=[("trees_input", FloatTensorType([None, width]))]
    )
    trees = converted.graph.node
    if len(trees) != 1 or trees[0].op_type != "TreeEnsembleClassifier":
        raise ValueError(f"unexpected converter output: {[n.op_type for n in trees]}")
    ensemble = helper.make_node(
        "TreeEnsembleClassifier",
        ["with_missing"],
        ["ensemble_label", "probabilities"],
        domain="ai.onnx.ml",
        name="trees",
    )
    ensemble.attribute.extend(trees[0].attribute)
    nodes = [
        helper.make_node("Equal", [INPUT, "zero"], ["is_zero"], name="absent"),
        helper.make_node("Where", ["is_zero", "nan", INPUT], ["with_missing"], name="missing"),
        ensemble,
        helper.make_node("Gather", ["probabilities", "heavy_class"], [SCORE], axis=1),
        helper.make_node("GreaterOrEqual", [SCORE, "threshold"], [DECISION], name="decide"),
    ]
    constants = [
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("nan", TensorProto.FLOAT, [], [float("nan")]),
        helper.make_tensor("heavy_class", TensorProto.INT64, [], [1]),
        helper.make_tensor("threshold", TensorProto.FLOAT, [], [threshold]),
    ]
    graph = helper.make_graph(
        nodes,
        GRAPH_NAME,
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["rows", width])],
        [
            helper.make_tensor_value_info(SCORE, TensorProto.FLOAT, ["rows"]),
            helper.make_tensor_value_info(DECISION, TensorProto.BOOL, ["rows"]),
        ],
        initializer=constants,
    )
    ml_opset = next(o.version for o in converted.opset_import if o.domain == "ai.onnx.ml")
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ml_opset)],
        producer_name="query-predictor",
        producer_version=__version__,
        doc_string="Heavy Trino query classifier: XGBoost exported by onnxmltools",
    )
    model.ir_version = 8  # what ONNX Runtime releases of the last years all load
    # the threshold is a float32 constant in the graph; the metadata keeps the exact value
    helper.set_model_props(model, {"threshold": repr(threshold), "width": str(width)})
    onnx.checker.check_model(model)
    return model


@dataclass(frozen=True)
class Parity:
    rows: int
    max_abs_diff: float
    mean_abs_diff: float
    decision_flips: int  # away from the threshold: must be 0
    flips_near_threshold: int  # within NEAR_THRESHOLD of it: allowed

    @property
    def ok(self) -> bool:
        return self.max_abs_diff < MAX_ABS_DIFF and self.decision_flips == 0

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "ok": self.ok, "tolerance": MAX_ABS_DIFF}


def compare(
    reference: np.ndarray, onnx_scores: np.ndarray, onnx_decisions: np.ndarray, threshold: float
) -> Parity:
    """XGBoost's scores against ONNX Runtime's scores and decisions on the same rows."""
    reference = np.asarray(reference, dtype=np.float64)
    diff = np.abs(reference - np.asarray(onnx_scores, dtype=np.float64))
    flipped = (reference >= threshold) != np.asarray(onnx_decisions, dtype=bool)
    near = np.abs(reference - threshold) <= NEAR_THRESHOLD
    return Parity(
        rows=int(reference.size),
        max_abs_diff=float(diff.max()) if diff.size else 0.0,
        mean_abs_diff=float(diff.mean()) if diff.size else 0.0,
        decision_flips=int((flipped & ~near).sum()),
        flips_near_threshold=int((flipped & near).sum()),
    )


def parity_failures(
    parity: Parity, reference: np.ndarray, onnx_scores: np.ndarray, threshold: float, limit=5
) -> str:
    """The worst rows, for the error message when parity fails."""
    reference = np.asarray(reference, dtype=np.float64)
    diff = np.abs(reference - onnx_scores)
    worst = np.argsort(-diff, kind="stable")[:limit]
    rows = ", ".join(
        f"row {i}: xgboost {reference[i]:.8f} onnx {onnx_scores[i]:.8f}" for i in worst
    )
    return (
        f"ONNX parity failed on {parity.rows} test rows: max |diff| {parity.max_abs_diff:.3g} "
        f"(limit {MAX_ABS_DIFF}), {parity.decision_flips} decisions flipped at threshold "
        f"{threshold:.6f}; worst {rows}"
    )


def bundle_hashes(directory: str | Path, model_bytes: bytes) -> dict[str, str]:
    """sha256 of the new model and of the bundle files upstream stages wrote in ``directory``."""
    directory = Path(directory)
    upstream = tuple(name for name in bundle.HASHED_FILES if name != bundle.MODEL)
    missing = [name for name in upstream if not (directory / name).is_file()]
    if missing:
        raise ModelError(
            f"{directory} lacks {', '.join(missing)}: run `dvc repro` up to `featurize` first"
        )
    return {
        bundle.MODEL: hashlib.sha256(model_bytes).hexdigest(),
        **{name: sha256_file(directory / name) for name in upstream},
    }


def bundle_metadata(
    params: Params, *, terms: Sequence[str], threshold: float, files: dict[str, str]
) -> BundleMetadata:
    """The metadata ``export`` writes for a model over :data:`FEATURE_NAMES` then ``terms``."""
    names = (*FEATURE_NAMES, *(f"tfidf:{term}" for term in terms))
    dumped = params.model_dump(mode="json")
    return BundleMetadata(
        input=InputLayout(
            width=len(names), dense_features=len(FEATURE_NAMES), tfidf_terms=len(terms)
        ),
        featurizer=FeaturizerSettings(history_prior_weight=params.features.history_prior_weight),
        threshold=threshold,
        threshold_policy=params.model.threshold_policy,
        label=LabelRule.from_params(params.data_loading),
        windows={
            name: WindowDates(start=w.start, end=w.end) for name, w in windows_for(params).items()
        },
        params_hash=params_hash({s: dumped[s] for s in MODEL_SECTIONS}),
        versions=versions(),
        feature_names=names,
        files=files,
    )


def params_hash(sections: dict[str, object]) -> str:
    """BLAKE2b of the params that shaped the model, canonical JSON (key order irrelevant)."""
    text = json.dumps(sections, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def versions() -> dict[str, str]:
    packages = ("xgboost-cpu", "onnx", "onnxmltools", "onnxruntime")
    return {
        "python": platform.python_version(),
        "query_predictor": __version__,
        **{p: version(p) for p in packages},
    }
