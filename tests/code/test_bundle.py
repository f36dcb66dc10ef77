"""The model bundle's contract (query_predictor.core.bundle): typed metadata that round-trips,
hashes that tie the files to one run, and a publish that never leaves a mixed bundle."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from query_predictor.core import bundle
from query_predictor.core.bundle import BundleError, BundleMetadata, load_bundle, publish
from query_predictor.core.errors import ModelError
from query_predictor.core.label import LabelRule
from query_predictor.params import Params, parse_params
from query_predictor.training.export import bundle_hashes, bundle_metadata


def make_bundle(directory: Path, model: bytes = b"model one") -> BundleMetadata:
    """The bundle's files and metadata that hashes them (the model bytes stand in for ONNX)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / bundle.VOCABULARY).write_text('{"terms": ["a"], "idf": [1.0]}')
    (directory / bundle.HISTORY).write_bytes(b"history")
    (directory / bundle.CONVENTIONS).write_text("{}")
    (directory / bundle.ZERO_COST).write_text('{"validated": []}')
    (directory / bundle.MODEL).write_bytes(model)
    metadata = bundle_metadata(
        Params(), terms=["a"], threshold=0.25, files=bundle_hashes(directory, model)
    )
    (directory / bundle.METADATA).write_text(metadata.to_json())
    return metadata


def test_metadata_round_trips_and_is_stable(tmp_path: Path) -> None:
    written = make_bundle(tmp_path)
    read = load_bundle(tmp_path)
    assert read == written
    assert read.to_json() == (tmp_path / bundle.METADATA).read_text()
    assert read.label == LabelRule.from_params(Params().data_loading)
    assert (
        read.version == f"heavy-query-classifier@{bundle.sha256_file(tmp_path / 'model.onnx')[:12]}"
    )


@pytest.mark.parametrize("name", bundle.HASHED_FILES)
def test_a_file_of_another_run_is_refused_by_name(tmp_path: Path, name: str) -> None:
    make_bundle(tmp_path)
    (tmp_path / name).write_bytes((tmp_path / name).read_bytes() + b" ")
    with pytest.raises(BundleError, match=rf"{name} does not belong to this bundle") as raised:
        load_bundle(tmp_path)
    assert "\n" not in str(raised.value)


def test_publish_moves_the_metadata_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_bundle(tmp_path)
    moved: list[str] = []
    replace = os.replace

    def recording(src: str | Path, dst: str | Path) -> None:
        moved.append(Path(dst).name)
        replace(src, dst)

    monkeypatch.setattr(os, "replace", recording)
    with publish(tmp_path) as staging:
        (staging / bundle.METADATA).write_text("{}")
        (staging / bundle.MODEL).write_bytes(b"model two")
    assert moved == [bundle.MODEL, bundle.METADATA]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_failed_export_leaves_the_bundle_as_it_was(tmp_path: Path) -> None:
    make_bundle(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(RuntimeError), publish(tmp_path) as staging:
        (staging / bundle.MODEL).write_bytes(b"model two")
        raise RuntimeError("parity failed")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    load_bundle(tmp_path)


def test_an_export_killed_between_the_moves_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_bundle(tmp_path)
    new = tmp_path / "new"
    metadata = make_bundle(new, model=b"model two")
    replace = os.replace

    def dies_before_metadata(src: str | Path, dst: str | Path) -> None:
        if Path(dst).name == bundle.METADATA:
            raise KeyboardInterrupt
        replace(src, dst)

    monkeypatch.setattr(os, "replace", dies_before_metadata)
    with pytest.raises(KeyboardInterrupt), publish(tmp_path) as staging:
        (staging / bundle.MODEL).write_bytes(b"model two")
        (staging / bundle.METADATA).write_text(metadata.to_json())
    with pytest.raises(BundleError, match=r"model\.onnx does not belong to this bundle"):
        load_bundle(tmp_path)


def test_the_label_rule_of_the_model_is_checked(tmp_path: Path) -> None:
    metadata = make_bundle(tmp_path)
    same = LabelRule.from_params(Params().data_loading)
    metadata.require_label(same, origin="models/metadata.json")
    other = LabelRule.from_params(
        parse_params({"data_loading": {"cpu_threshold_seconds": 600}}).data_loading
    )
    with pytest.raises(BundleError, match=r"trained to the label rule .*cpu_threshold_seconds"):
        metadata.require_label(other, origin="models/metadata.json")


def test_export_needs_the_upstream_files(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"tfidf_vocab\.json.*dvc repro"):
        bundle_hashes(tmp_path, b"model")
