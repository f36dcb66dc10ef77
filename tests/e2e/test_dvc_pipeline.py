"""The real ``dvc`` CLI runs the pipeline on a tiny configuration in a temporary copy."""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import yaml

from .conftest import FirstRun
from .project import REPO, metric_rows, run, set_param

pytestmark = pytest.mark.slow

STAGES = (
    "check_params",
    "generate",
    "load",
    "zero_cost",
    "split",
    "featurize",
    "train",
    "export",
    "evaluate",
    "simulate_online",
    "replay",
)
HEADLINE = (
    "recall",
    "fnr",
    "fpr",
    "precision",
    "routed_share",
    "threshold",
    "expected_cost",
    "roc_auc",
    "pr_auc",
    "prd_compliant",
)


def test_repro_runs_once_then_only_what_changed(first_run: FirstRun, project: Path) -> None:
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first_run.stdout
    trained = json.loads((project / "metrics" / "train.json").read_text())
    folds = yaml.safe_load((project / "params.yaml").read_text())["model"]["cv_folds"]
    assert len(trained["folds"]) == folds and "prd_compliant" in trained["test"]
    featurized = json.loads((project / "metrics" / "featurize.json").read_text())
    assert featurized["parity"]["passed"] and featurized["parity"]["rows_checked"] > 50
    metrics = json.loads((project / "metrics" / "load.json").read_text())
    assert metrics["rows_labeled"] > 500
    assert metrics["steps"]["0_read"]["rows"] == metrics["rows_read"]
    assert (project / "data" / "labeled" / "date=2025-06-05").is_dir()
    assert not (project / "data" / "labeled" / "date=2025-06-06").exists()
    assert (project / "dvc.lock").exists()
    split = json.loads((project / "metrics" / "split.json").read_text())
    assert abs(split["sampling"]["achieved_ratio"] - 5.0) <= 0.1
    assert {p.name for p in (project / "data" / "splits").iterdir()} == {
        "train.parquet",
        "val.parquet",
        "test.parquet",
    }
    # A no-op repro costs what checking the status costs (timed side by side: the machine is
    # shared, so an absolute bound would measure the neighbours).
    started = time.perf_counter()
    status = run(["dvc", "status"], project)
    checked = time.perf_counter() - started
    assert "up to date" in status.stdout
    started = time.perf_counter()
    second = run(["dvc", "repro"], project)
    assert time.perf_counter() - started < 2 * checked + 1.0
    assert "Running stage" not in second.stdout

    set_param(project, "data_loading", "cpu_threshold_seconds", 60)
    third = run(["dvc", "repro"], project)
    assert "Running stage 'load'" in third.stdout
    assert "Running stage 'generate'" not in third.stdout
    relabeled = json.loads((project / "metrics" / "load.json").read_text())
    assert relabeled["heavy_share"] > metrics["heavy_share"]

    set_param(project, "boundary_sampling", "balance_ratio", 3.0)
    fourth = run(["dvc", "repro"], project)
    assert "Running stage 'split'" in fourth.stdout
    for upstream in ("generate", "load", "zero_cost"):
        assert f"Running stage '{upstream}'" not in fourth.stdout
    resampled = json.loads((project / "metrics" / "split.json").read_text())
    assert abs(resampled["sampling"]["achieved_ratio"] - 3.0) <= 0.1
    assert "Running stage 'featurize'" in fourth.stdout

    set_param(project, "features", "tfidf_vocab_size", 50)
    fifth = run(["dvc", "repro"], project)
    assert "Running stage 'featurize'" in fifth.stdout
    for upstream in ("generate", "load", "zero_cost", "split"):
        assert f"Running stage '{upstream}'" not in fifth.stdout
    vocab = json.loads((project / "models" / "tfidf_vocab.json").read_text())
    assert len(vocab["terms"]) == 50


# a date inside an identifier: 20250603, 2025_06_03, 2025-06-03
DATE_IN_NAME = re.compile(r"20\d\d[_-]?[01]\d[_-]?[0-3]\d")


def test_the_vocabulary_of_the_default_run_has_no_date(first_run: FirstRun) -> None:
    """Date-stamped table names (one per day) reach the log, never the TF-IDF vocabulary:
    the shared normalisation maps them to one placeholder term."""
    raw = pl.read_parquet(first_run.path / "data" / "raw" / "**" / "*.parquet")
    stamped = raw["query"].str.contains(r"[A-Za-z]_20\d{6}\b|[A-Za-z]_20\d\d_\d\d_\d\d\b")
    assert stamped.sum() > 10  # the log does name such tables
    terms = json.loads((first_run.path / "models" / "tfidf_vocab.json").read_text())["terms"]
    assert len(terms) > 100
    assert [t for t in terms if DATE_IN_NAME.search(t)] == []


def test_bad_params_fail_with_the_key_named(project: Path) -> None:
    set_param(project, "data_loading", "sample_fraction", 0)
    done = run(["dvc", "repro", "load"], project, ok=False)
    assert done.returncode != 0
    assert "data_loading.sample_fraction=0" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr + done.stdout


def test_model_change_reruns_training_only_and_shows_in_metrics_diff(project: Path) -> None:
    evaluated = json.loads((project / "metrics" / "evaluate.json").read_text())
    assert set(HEADLINE) <= set(evaluated)
    exported = json.loads((project / "metrics" / "export.json").read_text())
    assert exported["parity"]["ok"] and exported["parity"]["max_abs_diff"] < 1e-5
    metadata = json.loads((project / "models" / "metadata.json").read_text())
    assert len(metadata["feature_names"]) == exported["width"]
    assert metadata["threshold"] == evaluated["threshold"]
    assert {p.name for p in (project / "plots" / "evaluate").iterdir()} == {
        f"{name}.csv"
        for name in (
            "roc",
            "precision_recall",
            "cost_curve",
            "confusion",
            "calibration",
            "importance",
        )
    }
    onnx_first = (project / "models" / "model.onnx").read_bytes()

    set_param(project, "model", "n_estimators", 5)
    rerun = run(["dvc", "repro"], project)
    for stage in ("train", "export", "evaluate", "simulate_online", "replay"):
        assert f"Running stage '{stage}'" in rerun.stdout
    for upstream in ("generate", "load", "zero_cost", "split", "featurize"):
        assert f"Running stage '{upstream}'" not in rerun.stdout
    assert (project / "models" / "model.onnx").read_bytes() != onnx_first
    changed = metric_rows(run(["dvc", "metrics", "diff", "HEAD", "--md"], project).stdout)
    assert any(path == "metrics/evaluate.json" for path, _ in changed)
    assert any(path == "metrics/replay.json" for path, _ in changed)
    assert ("metrics/train.json", "n_trees") in changed
    listed = metric_rows(run(["dvc", "metrics", "diff", "HEAD", "--md", "--all"], project).stdout)
    assert {("metrics/evaluate.json", "recall"), ("metrics/evaluate.json", "fnr")} <= listed

    set_param(project, "model", "n_estimators", 20)  # back to the committed model
    run(["dvc", "repro"], project)
    assert (project / "models" / "model.onnx").read_bytes() == onnx_first
    forced = run(["dvc", "repro", "--force"], project)
    assert "Running stage 'generate'" in forced.stdout
    assert (project / "models" / "model.onnx").read_bytes() == onnx_first
    assert run(["git", "status", "--porcelain"], project).stdout == ""  # same lock, metrics


def test_plots_draw_in_headless_chromium(project: Path) -> None:
    assets = REPO / "scripts" / "plots" / "node_modules" / "vega" / "build" / "vega.min.js"
    if not shutil.which("chromium") or not assets.exists():
        pytest.skip("needs Chromium (apt-get install chromium) and `make plot-assets`")
    out = project / "plots-html"
    check = [sys.executable, str(REPO / "scripts" / "check_plots.py"), "--repo", str(project)]
    drawn = run([*check, "--out", str(out), "--screenshot", str(out / "plots.png")], project)
    assert "BLANK" not in drawn.stdout
    plots = len(yaml.safe_load((project / "dvc.yaml").read_text())["plots"])
    assert f"{plots} of {plots} plots drew" in drawn.stdout
    assert (out / "plots.png").stat().st_size > 50_000


def test_an_unknown_params_section_stops_dvc_repro(project: Path) -> None:
    """No stage reads `replay_typo`, so only the whole-file check notices it."""
    params = project / "params.yaml"
    params.write_text(params.read_text() + "replay_typo:\n  psi_alert: 0.3\n")
    done = run(["dvc", "repro"], project, ok=False)
    assert done.returncode != 0
    assert "Running stage 'check_params'" in done.stdout
    assert "replay_typo: unknown key" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr + done.stdout


def test_a_bundle_left_by_an_interrupted_repro_is_refused(project: Path) -> None:
    """`featurize` refits the vocabulary (same size, other terms) and the run stops before
    `train` and `export`: the old model must not be served with the new vocabulary."""
    set_param(project, "features", "tfidf_vocab_size", 50)  # fewer than the log's terms
    run(["dvc", "repro"], project)  # a complete bundle
    vocab_path = project / "models" / "tfidf_vocab.json"
    before = json.loads(vocab_path.read_text())
    assert run(["query-predictor", "predict", "--sql", "SELECT 1"], project).returncode == 0
    set_param(project, "boundary_sampling", "seed", 7)  # other training rows, other terms
    run(["dvc", "repro", "--single-item", "split"], project)
    run(["dvc", "repro", "--single-item", "featurize"], project)  # then the run is killed
    after = json.loads(vocab_path.read_text())
    assert len(after["terms"]) == len(before["terms"]) and after["terms"] != before["terms"]
    done = run(["query-predictor", "predict", "--sql", "SELECT 1"], project, ok=False)
    assert done.returncode == 2, done.stdout
    assert done.stderr.count("\n") == 1
    assert "models/tfidf_vocab.json does not belong to this bundle" in done.stderr
    replayed = run(["dvc", "repro", "--single-item", "replay"], project, ok=False)
    assert replayed.returncode != 0
    assert "tfidf_vocab.json does not belong to this bundle" in replayed.stderr + replayed.stdout
