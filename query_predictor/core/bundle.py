"""The model bundle: which files it holds, its typed metadata, and the check that they belong
together.

    >>> metadata = load_bundle("models")          # every file present and from one run
    >>> metadata.threshold, metadata.input.width

The bundle is one directory (``models/`` in the pipeline) holding six files written by three
stages: ``zero_cost_categories.json`` (``zero_cost``), ``tfidf_vocab.json``,
``history_stats.parquet`` and ``sql_conventions.json`` (``featurize``), ``model.onnx`` and
``metadata.json`` (``export``). ``export`` writes the metadata last, with the sha256 of every
other file; every reader
(``evaluate``, ``replay``, ``query-predictor predict`` and ``serve``) checks the hashes of
the files it uses, so a bundle mixed from two runs (a ``dvc repro`` interrupted after
``featurize`` refitted the vocabulary, a file copied from elsewhere) is refused with one line
naming the file, instead of answering with misaligned features.

:func:`publish` is how ``export`` writes: the new model and metadata are staged beside the
bundle and moved in with ``os.replace``, the metadata last. A reader sees the old bundle, the
new one, or (if the process dies between the two moves) a model whose hash the metadata does
not know, which it refuses.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ModelError
from .label import LabelRule

__all__ = [
    "BUNDLE_FILES",
    "HASHED_FILES",
    "BundleError",
    "BundleMetadata",
    "load_bundle",
    "publish",
    "sha256_file",
    "verify_files",
]

MODEL = "model.onnx"
METADATA = "metadata.json"
VOCABULARY = "tfidf_vocab.json"
HISTORY = "history_stats.parquet"
CONVENTIONS = "sql_conventions.json"
ZERO_COST = "zero_cost_categories.json"
BUNDLE_FILES = (MODEL, METADATA, VOCABULARY, HISTORY, CONVENTIONS, ZERO_COST)
HASHED_FILES = (MODEL, VOCABULARY, HISTORY, CONVENTIONS, ZERO_COST)  # all but the metadata
FORMAT_VERSION = 1
_SHA256 = r"^[0-9a-f]{64}$"


class BundleError(ModelError):
    """The bundle's files are missing, of another format, or come from different runs."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputLayout(_Strict):
    """The model's single input: float32 rows, dense features then the TF-IDF vector."""

    name: Literal["features"] = "features"
    dtype: Literal["float32"] = "float32"
    width: int = Field(gt=0)
    dense_features: int = Field(gt=0)
    tfidf_terms: int = Field(ge=0)
    zero_means_absent: bool = True


class FeaturizerSettings(_Strict):
    """What serving needs to featurize as training did."""

    history_prior_weight: float = Field(gt=0)


class WindowDates(_Strict):
    start: dt.date
    end: dt.date


class BundleMetadata(_Strict):
    """``metadata.json``: written by ``export``, read by every user of the bundle."""

    format_version: Literal[1] = FORMAT_VERSION
    name: str = "heavy-query-classifier"
    input: InputLayout
    outputs: dict[str, str] = {
        "heavy_probability": "float32",
        "is_heavy": "bool (score >= threshold)",
    }
    featurizer: FeaturizerSettings
    threshold: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    threshold_policy: str
    label: LabelRule
    windows: dict[str, WindowDates]
    params_hash: str
    versions: dict[str, str]
    feature_names: tuple[str, ...]
    files: dict[str, str]  # file name -> sha256 hex, for each of HASHED_FILES

    @model_validator(mode="after")
    def _consistent(self) -> BundleMetadata:
        layout = self.input
        if layout.width != len(self.feature_names):
            raise ValueError(
                f"input.width={layout.width} but feature_names lists {len(self.feature_names)}"
            )
        if layout.dense_features + layout.tfidf_terms != layout.width:
            raise ValueError(
                f"input.dense_features={layout.dense_features} + input.tfidf_terms="
                f"{layout.tfidf_terms} != input.width={layout.width}"
            )
        if sorted(self.files) != sorted(HASHED_FILES):
            raise ValueError(f"files lists {sorted(self.files)}, expected {sorted(HASHED_FILES)}")
        bad = [name for name, digest in self.files.items() if not re.match(_SHA256, digest)]
        if bad:
            raise ValueError(f"files.{bad[0]} is not a sha256 hex digest")
        return self

    @property
    def model_sha256(self) -> str:
        return self.files[MODEL]

    @property
    def version(self) -> str:
        """``name@`` the first 12 hex digits of the model's sha256: names a model in answers."""
        return f"{self.name}@{self.model_sha256[:12]}"

    @classmethod
    def read(cls, path: str | Path) -> BundleMetadata:
        """Parse and validate ``path``; any problem is one :class:`BundleError` line."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise BundleError(
                f"{path} not found: the bundle has no metadata (run `dvc pull` or `dvc repro "
                "export`)"
            ) from None
        except (ValueError, OSError) as exc:  # UnicodeDecodeError and JSONDecodeError
            raise BundleError(f"{path} is not valid JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise BundleError(
                f"{path} holds a JSON {type(raw).__name__}, not an object: not written by "
                "`export`; rerun `dvc repro export`"
            )
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(p) for p in first["loc"]) or "(top level)"
            value = "" if isinstance(first.get("input"), dict) else f"={first.get('input')!r}"
            message = str(first["msg"]).removeprefix("Value error, ")
            more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
            raise BundleError(
                f"{path}: {key}{value[:80]}: {message}{more}; not written by this version of "
                "`export`: rerun `dvc repro export`"
            ) from None

    def to_json(self) -> str:
        payload = self.model_dump(mode="json")
        return json.dumps(payload, indent=2, sort_keys=True) + "\n"

    def require_label(self, rule: LabelRule, *, origin: str) -> None:
        """Raise :class:`BundleError` unless the model was trained on ``rule``."""
        if rule != self.label:
            raise BundleError(
                f"{origin}: the model was trained to the label rule {self.label.model_dump()} "
                f"but params.yaml data_loading sets {rule.model_dump()}; rerun `dvc repro`"
            )


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_files(
    directory: str | Path, metadata: BundleMetadata, names: Sequence[str] = HASHED_FILES
) -> None:
    """Check that each of ``names`` in ``directory`` is the file ``metadata`` was written with.

    Raises :class:`BundleError` naming the first file that is missing or of another run."""
    directory = Path(directory)
    for name in names:
        check_file(directory / name, metadata.files[name], metadata_path=directory / METADATA)


def check_file(path: Path, expected: str, *, metadata_path: Path) -> None:
    """Raise :class:`BundleError` unless ``path`` exists and its sha256 is ``expected``."""
    if not path.is_file():
        raise BundleError(
            f"{path} missing: the bundle is incomplete (run `dvc pull` or `dvc repro`)"
        )
    actual = sha256_file(path)
    if actual != expected:
        raise BundleError(
            f"{path} does not belong to this bundle: its sha256 is {actual[:12]}... but "
            f"{metadata_path} was written with {expected[:12]}...; the files come from two "
            "runs (an interrupted `dvc repro`?): rerun `dvc repro` or `dvc checkout`"
        )


def load_bundle(directory: str | Path, names: Sequence[str] = HASHED_FILES) -> BundleMetadata:
    """The metadata of the bundle in ``directory``, after checking the files in ``names``."""
    directory = Path(directory)
    missing = [name for name in (METADATA, *names) if not (directory / name).is_file()]
    if missing:
        raise BundleError(
            f"{directory} is not a model bundle: {', '.join(missing)} missing "
            "(run `dvc pull` or `dvc repro`, or pass the directory that holds them)"
        )
    metadata = BundleMetadata.read(directory / METADATA)
    verify_files(directory, metadata, names)
    return metadata


@contextlib.contextmanager
def publish(directory: str | Path) -> Iterator[Path]:
    """Stage new bundle files in a temporary directory beside ``directory``; on success move
    each into the bundle, ``metadata.json`` last (see the module docstring). On an exception,
    nothing in ``directory`` changes."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".bundle.", suffix=".tmp", dir=directory))
    try:
        yield staging
        staged = sorted(p.name for p in staging.iterdir())
        unknown = sorted(set(staged) - set(BUNDLE_FILES))
        if unknown:
            raise ValueError(f"{unknown} are not bundle files")
        for name in sorted(staged, key=lambda n: n == METADATA):
            os.replace(staging / name, directory / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
