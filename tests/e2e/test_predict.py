"""The installed ``query-predictor predict`` command on the bundle a real ``dvc repro`` wrote."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from .conftest import FirstRun
from .project import run

pytestmark = pytest.mark.slow


def predict(first_run: FirstRun, sql: str, *extra: str) -> dict[str, object]:
    done = run(["query-predictor", "predict", "--sql", sql, *extra], first_run.path)
    return json.loads(done.stdout)


def test_predict_answers_from_the_pipeline_bundle(first_run: FirstRun) -> None:
    metadata = json.loads((first_run.path / "models" / "metadata.json").read_text())
    validated = json.loads((first_run.path / "models" / "zero_cost_categories.json").read_text())
    version = f"heavy-query-classifier@{metadata['files']['model.onnx'][:12]}"

    light = predict(first_run, "SHOW TABLES FROM hive.sales")
    if "SHOW" in validated["validated"]:
        assert light["stage"] == "zero_cost"
        assert light["heavy"] is False
    assert light["model_version"] == version
    assert light["threshold"] == metadata["threshold"]

    test_rows = pl.read_parquet(first_run.path / "data" / "splits" / "test.parquet")
    row = test_rows.row(0, named=True)
    scored = predict(
        first_run,
        row["query"],
        "--user", row["user"] or "",
        "--catalog", row["catalog"] or "",
        "--schema", row["schema"] or "",
        "--query-type", row["query_type"] or "",
    )  # fmt: skip
    assert scored["stage"] == "model"
    assert 0.0 <= scored["probability"] <= 1.0
    # the model compares its float32 score with the threshold in float32
    assert scored["heavy"] is (scored["probability"] >= float(np.float32(metadata["threshold"])))


def test_predict_without_a_bundle_says_what_to_do(first_run: FirstRun, tmp_path) -> None:
    done = run(
        ["query-predictor", "predict", "--sql", "SELECT 1", "--models", str(tmp_path)],
        first_run.path,
        ok=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("query-predictor predict: error:")
    assert "dvc pull" in done.stderr
    assert "Traceback" not in done.stderr
