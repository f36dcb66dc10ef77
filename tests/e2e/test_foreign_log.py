"""The whole pipeline on a foreign log (SQL the generator did not write), by params only.

The log (``tests/foreign_log.py``: sqlglot's SQL fixtures, TPC left out, users, times and
costs by a hash rule) has only the columns the raw schema requires. The project copy changes
``params.yaml`` and nothing else: where the log is, its dates, small sizes.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from ..foreign_log import build_log, default_sdist, read_corpus, write_log
from .project import make_project, run, set_param
from .test_dvc_pipeline import STAGES

pytestmark = pytest.mark.slow

FOREIGN = {
    "data_loading": {
        "raw_path": "foreign/raw",
        "start_date": "2024-03-04",
        "end_date": "2024-03-20",
    },
    "splits": {"train_days": 11, "val_days": 3, "test_days": 3},
    "replay": {"start_date": "2024-03-21", "end_date": "2024-03-24"},
    "features": {"tfidf_vocab_size": 300, "parity_sample": 500},
}


def test_pipeline_runs_on_a_foreign_log_with_params_changes_only(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    corpus = read_corpus(default_sdist())
    log = build_log(corpus.statements, start=dt.date(2024, 3, 4), days=21)
    write_log(log, project / "foreign" / "raw")
    assert set(log.columns) >= {"query_id", "query", "user", "create_time"}
    for section, values in FOREIGN.items():
        for key, value in values.items():
            set_param(project, section, key, value)

    done = run(["dvc", "repro", "evaluate", "replay"], project)
    ran = {line.split("'")[1] for line in done.stdout.splitlines() if "Running stage" in line}
    assert ran == set(STAGES) - {"generate", "check_params"}  # not an ancestor of these two
    assert not (project / "data" / "raw").exists()

    def metrics(name: str) -> dict:
        return json.loads((project / "metrics" / f"{name}.json").read_text())

    loaded = metrics("load")
    days = pl.col("create_time").dt.date()
    in_window = log.filter(days.is_between(dt.date(2024, 3, 4), dt.date(2024, 3, 20))).height
    assert loaded["rows_read"] == log.height
    assert loaded["dropped"]["outside_window"] == log.height - in_window
    assert loaded["quarantined"] == 0
    assert {"curated_filter", "query_type"} <= set(loaded["skipped"])  # columns it lacks
    assert loaded["rows_labeled"] > 0.9 * in_window  # failed user errors, MERGE... dropped
    assert 0.02 < loaded["heavy_share"] < 0.2
    featurized = metrics("featurize")
    assert featurized["parity"]["passed"] and featurized["parity"]["rows_checked"] > 100
    evaluated = metrics("evaluate")
    assert 0.0 <= evaluated["routed_share"] <= 1.0 and 0.0 < evaluated["threshold"] < 1.0
    assert evaluated["roc_auc"] > 0.6  # costs follow size and joins, which the features see
    replayed = metrics("replay")
    in_replay = log.filter(days.is_between(dt.date(2024, 3, 21), dt.date(2024, 3, 24))).height
    assert 0.9 * in_replay < replayed["counts"]["rows"] <= in_replay
