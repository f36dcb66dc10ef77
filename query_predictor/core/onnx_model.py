"""The exported heavy-query model as serving and evaluation load it: ONNX plus its metadata.

    >>> model = HeavyQueryModel.load("models/model.onnx")   # reads models/metadata.json too
    >>> scores, heavy = model.predict(matrix)   # probability, and True: route to heavy cluster

The model takes one float32 row per query: the dense features (:data:`FEATURE_NAMES`)
then the TF-IDF vector, as laid out in ``metadata.json``. A zero in a row means "absent",
exactly as in the sparse matrices the model was trained on; the graph itself turns zeros into
XGBoost's missing value, so callers pass plain dense rows. Anything wrong with the files
(corrupted bytes, a different width, features in another order) is a :class:`ModelError`
that says which file and what to do, never a runtime traceback halfway through a batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from .bundle import MODEL, BundleMetadata, check_file
from .errors import ModelError
from .featurizer import FEATURE_NAMES

if TYPE_CHECKING:
    import onnxruntime as ort

INPUT = "features"
SCORE = "heavy_probability"
DECISION = "is_heavy"
CHUNK_ROWS = 8192  # rows densified at a time: 8k x 1k float32 columns is 32 MB


def metadata_path_for(model_path: str | Path) -> Path:
    return Path(model_path).with_name("metadata.json")


def _session(path: Path) -> ort.InferenceSession:
    import onnxruntime as ort  # here, so that stages which never load a model start fast

    options = ort.SessionOptions()
    # one thread: a tree ensemble sums in a fixed order, so scores repeat to the bit
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only; a bad file is reported by ModelError
    try:
        return ort.InferenceSession(
            path.read_bytes(), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except FileNotFoundError:
        raise
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        reason = str(exc).strip().splitlines()[0][:200]
        raise ModelError(
            f"{path} is not a loadable ONNX model ({reason}); restore it with "
            f"`dvc checkout {path}` or rebuild it with `dvc repro export`"
        ) from None


def _check_layout(path: Path, session: ort.InferenceSession, metadata: BundleMetadata) -> int:
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    if INPUT not in inputs or not {SCORE, DECISION} <= outputs:
        raise ModelError(
            f"{path} has inputs {sorted(inputs)} and outputs {sorted(outputs)}; expected input "
            f"{INPUT!r} and outputs {SCORE!r}, {DECISION!r}: it was not written by `export`"
        )
    width = inputs[INPUT].shape[-1]
    names = metadata.feature_names
    if width != len(names):
        raise ModelError(
            f"{path} takes {width} features but its metadata lists {len(names)}: the model "
            "and metadata.json come from different runs; check both out from one commit"
        )
    dense = list(names[: len(FEATURE_NAMES)])
    if dense != list(FEATURE_NAMES):
        at = next(
            (i for i, (a, b) in enumerate(zip(dense, FEATURE_NAMES, strict=False)) if a != b),
            min(len(dense), len(FEATURE_NAMES)),
        )
        model_name = dense[at] if at < len(dense) else "nothing"
        raise ModelError(
            f"feature {at} of the model is {model_name!r} but this featurizer puts "
            f"{FEATURE_NAMES[at]!r} there: the model was trained by another version; "
            "retrain (`dvc repro`) or install the matching query_predictor"
        )
    return int(width)


@dataclass
class HeavyQueryModel:
    session: ort.InferenceSession
    metadata: BundleMetadata
    width: int

    @classmethod
    def load(
        cls, model_path: str | Path, metadata_path: str | Path | None = None
    ) -> HeavyQueryModel:
        """The ONNX model at ``model_path`` with its metadata (``metadata.json`` beside it by
        default), after checking that the model is the one the metadata was written with."""
        model_path = Path(model_path)
        metadata_path = Path(metadata_path or metadata_path_for(model_path))
        metadata = BundleMetadata.read(metadata_path)
        check_file(model_path, metadata.files[MODEL], metadata_path=metadata_path)
        return cls.with_metadata(model_path, metadata)

    @classmethod
    def with_metadata(cls, model_path: str | Path, metadata: BundleMetadata) -> HeavyQueryModel:
        """The model at ``model_path`` whose metadata (and hash) the caller already checked."""
        session = _session(Path(model_path))
        return cls(session, metadata, _check_layout(Path(model_path), session, metadata))

    @property
    def threshold(self) -> float:
        return self.metadata.threshold

    @property
    def feature_names(self) -> list[str]:
        return list(self.metadata.feature_names)

    def _chunks(self, matrix: np.ndarray | sp.spmatrix) -> Iterator[np.ndarray]:
        if matrix.ndim != 2 or matrix.shape[1] != self.width:
            raise ModelError(
                f"rows have shape {matrix.shape}; the model takes {self.width} features "
                "per row (dense features, then the TF-IDF vector)"
            )
        for start in range(0, matrix.shape[0], CHUNK_ROWS):
            chunk = matrix[start : start + CHUNK_ROWS]
            chunk = chunk.toarray() if sp.issparse(chunk) else np.asarray(chunk)
            yield np.ascontiguousarray(chunk, dtype=np.float32)

    def predict_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict` of a few rows the caller built (float32, shape ``(n, width)``),
        in one run and without the chunking: what serving calls for each batch of requests."""
        return self.session.run([SCORE, DECISION], {INPUT: rows})

    def predict(self, matrix: np.ndarray | sp.spmatrix) -> tuple[np.ndarray, np.ndarray]:
        """Heavy probability (float32) and decision (score >= the exported threshold) of each
        row, from one pass of the model."""
        scores, decisions = [], []
        for chunk in self._chunks(matrix):
            score, decision = self.session.run([SCORE, DECISION], {INPUT: chunk})
            scores.append(score)
            decisions.append(decision)
        if not scores:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=bool)
        return np.concatenate(scores), np.concatenate(decisions).astype(bool)
