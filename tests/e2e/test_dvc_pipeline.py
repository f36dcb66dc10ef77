"""The real ``dvc`` CLI runs the pipeline on a tiny configuration in a temporary copy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

TINY = {
    "synth": {"queries_per_day": 600, "start_date": "2025-06-01", "end_date": "2025-06-06"},
    "data_loading": {"start_date": "2025-06-01", "end_date": "2025-06-05"},
    "splits": {"train_days": 3, "val_days": 1, "test_days": 1},
    "zero_cost": {"min_support": 20},
    "model": {"n_estimators": 20},
}


STAGES = ("generate", "load", "zero_cost", "split", "featurize", "train", "export", "evaluate")
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


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["DVC_NO_ANALYTICS"] = "1"
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("stages", "query_predictor"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["git", "init", "-q"], tmp_path)
    _run(["git", "config", "user.email", "ci@example.com"], tmp_path)
    _run(["git", "config", "user.name", "CI"], tmp_path)
    _run(["dvc", "init", "-q"], tmp_path)
    _run(["dvc", "config", "core.analytics", "false"], tmp_path)
    shutil.copytree(REPO / ".dvc" / "plots", tmp_path / ".dvc" / "plots")  # plot templates
    return tmp_path


def test_repro_runs_once_then_only_what_changed(project: Path) -> None:
    first = _run(["dvc", "repro"], project)
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first.stdout
    trained = json.loads((project / "metrics" / "train.json").read_text())
    assert len(trained["folds"]) == 5 and "prd_compliant" in trained["test"]
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
    _run(["git", "add", "-A"], project)
    _run(["git", "commit", "-qm", "first run"], project)

    started = time.perf_counter()
    second = _run(["dvc", "repro"], project)
    assert time.perf_counter() - started < 5.0
    assert "Running stage" not in second.stdout
    status = _run(["dvc", "status"], project)
    assert "up to date" in status.stdout

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data_loading"]["cpu_threshold_seconds"] = 60
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = _run(["dvc", "repro"], project)
    assert "Running stage 'load'" in third.stdout
    assert "Running stage 'generate'" not in third.stdout
    relabeled = json.loads((project / "metrics" / "load.json").read_text())
    assert relabeled["heavy_share"] > metrics["heavy_share"]

    params["boundary_sampling"]["balance_ratio"] = 3.0
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    fourth = _run(["dvc", "repro"], project)
    assert "Running stage 'split'" in fourth.stdout
    for upstream in ("generate", "load", "zero_cost"):
        assert f"Running stage '{upstream}'" not in fourth.stdout
    resampled = json.loads((project / "metrics" / "split.json").read_text())
    assert abs(resampled["sampling"]["achieved_ratio"] - 3.0) <= 0.1
    assert "Running stage 'featurize'" in fourth.stdout

    params["features"]["tfidf_vocab_size"] = 50
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    fifth = _run(["dvc", "repro"], project)
    assert "Running stage 'featurize'" in fifth.stdout
    for upstream in ("generate", "load", "zero_cost", "split"):
        assert f"Running stage '{upstream}'" not in fifth.stdout
    vocab = json.loads((project / "models" / "tfidf_vocab.json").read_text())
    assert len(vocab["terms"]) == 50


def test_bad_params_fail_with_the_key_named(project: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data_loading"]["sample_fraction"] = 0
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(
        [
            sys.executable,
            "stages/load.py",
            "--out",
            "o",
            "--quarantine",
            "q",
            "--metrics",
            "m",
            "--analysis",
            "a",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "data_loading.sample_fraction=0" in done.stderr
    assert "Traceback" not in done.stderr


def _set_param(project: Path, section: str, key: str, value: object) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params[section][key] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _metric_rows(markdown: str) -> set[tuple[str, str]]:
    """(path, metric) of each row of a `dvc metrics diff --md` table."""
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in markdown.splitlines()]
    return {(row[0], row[1]) for row in cells if len(row) >= 2 and row[0].startswith("metrics/")}


def test_model_change_reruns_training_only_and_shows_in_metrics_diff(project: Path) -> None:
    _run(["dvc", "repro"], project)
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
    _run(["git", "add", "-A"], project)
    _run(["git", "commit", "-qm", "baseline model"], project)

    _set_param(project, "model", "n_estimators", 5)
    rerun = _run(["dvc", "repro"], project)
    for stage in ("train", "export", "evaluate"):
        assert f"Running stage '{stage}'" in rerun.stdout
    for upstream in ("generate", "load", "zero_cost", "split", "featurize"):
        assert f"Running stage '{upstream}'" not in rerun.stdout
    assert (project / "models" / "model.onnx").read_bytes() != onnx_first
    changed = _metric_rows(_run(["dvc", "metrics", "diff", "HEAD", "--md"], project).stdout)
    assert any(path == "metrics/evaluate.json" for path, _ in changed)
    assert ("metrics/train.json", "n_trees") in changed
    listed = _metric_rows(_run(["dvc", "metrics", "diff", "HEAD", "--md", "--all"], project).stdout)
    assert {("metrics/evaluate.json", "recall"), ("metrics/evaluate.json", "fnr")} <= listed

    _set_param(project, "model", "n_estimators", 20)  # back to the committed model
    _run(["dvc", "repro"], project)
    assert (project / "models" / "model.onnx").read_bytes() == onnx_first
    forced = _run(["dvc", "repro", "--force"], project)
    assert "Running stage 'generate'" in forced.stdout
    assert (project / "models" / "model.onnx").read_bytes() == onnx_first
    assert _run(["git", "status", "--porcelain"], project).stdout == ""  # same lock, metrics

    check = REPO / "scripts" / "check_plots.py"
    assets = REPO / "scripts" / "plots" / "node_modules" / "vega" / "build" / "vega.min.js"
    if shutil.which("chromium") and assets.exists():
        out = project / "plots-html"
        drawn = _run(
            [sys.executable, str(check), "--repo", str(project), "--out", str(out)], project
        )
        assert "0 plots drew" not in drawn.stdout and "BLANK" not in drawn.stdout
        assert " plots drew" in drawn.stdout
