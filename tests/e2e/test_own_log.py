"""Someone else's query log through the real ``dvc`` CLI: params changes only, no generator.

Three logs a team could bring, each made from the first run's synthetic log so the pipeline
has enough rows: one with only the required columns, one whose optional columns are there
but entirely null (a log without failures has no error codes), and the raw log that
``query-predictor ingest`` writes from event-listener JSON (HTTP objects and Kafka
envelopes, the way Trino's listeners deliver them).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from .conftest import FirstRun
from .project import run

pytestmark = pytest.mark.slow

REQUIRED = ["query_id", "query", "user", "create_time", "cpu_time_millis", "peak_memory_bytes"]
DOWNSTREAM = ("load", "zero_cost", "split", "featurize", "train", "export", "evaluate", "replay")


def raw_log(first_run: FirstRun) -> pl.DataFrame:
    return pl.read_parquet(sorted((first_run.path / "data" / "raw").rglob("*.parquet")))


def fit_and_run(project: Path, raw: Path, *, make: bool = False) -> str:
    """Point params.yaml at ``raw`` with `query-predictor dates`, then run the pipeline as
    the docs say (`make pipeline`, or `dvc repro evaluate replay`); returns its output."""
    run(["query-predictor", "dates", "--raw", str(raw), "--replay-days", "1", "--write"], project)
    if make:
        venv = Path(sys.executable).parent.parent
        # the project's venv is this one: its stamp says it is installed, so setup is a no-op
        command = ["make", "-f", str(Path(__file__).parents[2] / "Makefile"), "pipeline"]
        done = run([*command, f"VENV={venv}", "-o", str(venv / ".installed")], project)
    else:
        done = run(["dvc", "repro", "evaluate", "replay"], project)
    assert "Running stage 'load'" in done.stdout
    assert "Running stage 'generate'" not in done.stdout
    locked = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    assert set(DOWNSTREAM) <= set(locked)  # each ran, or DVC found its inputs unchanged
    assert "up to date" in run(["dvc", "status", "evaluate", "replay"], project).stdout
    return done.stdout


def test_a_log_with_only_the_required_columns(
    first_run: FirstRun, project: Path, tmp_path: Path
) -> None:
    path = tmp_path / "export" / "part-0.parquet"
    path.parent.mkdir()
    raw_log(first_run).select(*REQUIRED, "query_state").write_parquet(path)
    (project / "data" / "raw").rename(tmp_path / "generated")  # no generated log to fall on
    fit_and_run(project, path.parent, make=True)
    load = json.loads((project / "metrics" / "load.json").read_text())
    assert {"curated_filter", "query_type"} <= set(load["skipped"])
    assert "resource_group_id" in load["absent_columns"]
    assert load["query_type_derived"] > 0 and load["rows_labeled"] > 500
    evaluated = json.loads((project / "metrics" / "evaluate.json").read_text())
    assert 0.0 <= evaluated["recall"] <= 1.0


def test_optional_columns_present_but_entirely_null(
    first_run: FirstRun, project: Path, tmp_path: Path
) -> None:
    nulled = ("schema", "source", "error_code", "error_type", "resource_group_id", "query_type")
    log = raw_log(first_run).filter(pl.col("query_state") == "FINISHED")
    log = log.with_columns(pl.lit(None).alias(name) for name in nulled)
    assert log.schema["schema"] == pl.Null
    path = tmp_path / "export" / "part-0.parquet"
    path.parent.mkdir()
    log.write_parquet(path)
    fit_and_run(project, path.parent)
    load = json.loads((project / "metrics" / "load.json").read_text())
    assert set(nulled) <= set(load["absent_columns"])
    assert "resource_error_label" in load["skipped"]


def test_listener_json_through_ingest(first_run: FirstRun, project: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    # the listener never sends a null id, time or statistic: leave the corrupt records out
    rows = (
        raw_log(first_run)
        .drop_nulls(REQUIRED)
        .filter((pl.col("cpu_time_millis") >= 0) & (pl.col("peak_memory_bytes") >= 0))
    )
    with events.open("w") as out:
        for i, row in enumerate(rows.iter_rows(named=True)):
            event = listener_event(row)
            if i % 2:  # the Kafka listener wraps the same event in an envelope
                event = {"eventPayload": event, "eventMetadata": {"eventType": "QueryCompleted"}}
            out.write(json.dumps(event) + "\n")
    ingested = tmp_path / "ingested" / "queries.parquet"
    run(["query-predictor", "ingest", str(events), "-o", str(ingested)], project)
    assert pl.read_parquet(ingested).height == rows.height
    model = (project / "models" / "model.onnx").read_bytes()
    done = fit_and_run(project, ingested.parent)
    load = json.loads((project / "metrics" / "load.json").read_text())
    assert load["skipped"] == {}  # the listener's events carry every column the load uses
    assert load["rows_read"] == rows.height
    # the JSON round trip lost nothing the model sees: DVC finds the features unchanged
    assert "Stage 'train' didn't change" in done
    assert (project / "models" / "model.onnx").read_bytes() == model


def listener_event(row: dict[str, Any]) -> dict[str, Any]:
    """A raw-log row as Trino's HTTP event listener would have posted its QueryCompletedEvent."""

    def iso(value: Any) -> str | None:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None

    failure = None
    if row["error_code"]:
        failure = {
            "errorCode": {"code": 1, "name": row["error_code"], "type": row["error_type"]},
            "failureType": row["failure_type"],
            "failureMessage": row["failure_message"],
        }
    inputs = []
    for name in row["inputs"] or []:
        catalog, schema, table = name.split(".", 2)
        inputs.append({"catalogName": catalog, "schema": schema, "table": table, "columns": []})
    group = row["resource_group_id"]
    return {
        "metadata": {
            "queryId": row["query_id"],
            "query": row["query"],
            "queryState": row["query_state"],
            "updateType": row["update_type"],
        },
        "statistics": {
            "cpuTime": f"PT{row['cpu_time_millis'] / 1000:.3f}S",
            "wallTime": f"PT{(row['wall_time_millis'] or 0) / 1000:.3f}S",
            "queuedTime": f"PT{(row['queued_time_millis'] or 0) / 1000:.3f}S",
            "peakUserMemoryBytes": row["peak_memory_bytes"],
            "physicalInputBytes": row["physical_input_bytes"],
            "outputRows": row["output_rows"],
            "completedSplits": row["completed_splits"],
        },
        "context": {
            "user": row["user"],
            "principal": row["principal"],
            "source": row["source"],
            "catalog": row["catalog"],
            "schema": row["schema"],
            "clientTags": row["client_tags"] or [],
            "resourceGroupId": group.split(".") if group else None,
            "sessionProperties": json.loads(row["session_properties"] or "{}"),
            "queryType": row["query_type"],
            "serverVersion": row["server_version"],
            "environment": row["environment"],
        },
        "ioMetadata": {"inputs": inputs},
        "failureInfo": failure,
        "createTime": iso(row["create_time"]),
        "executionStartTime": iso(row["execution_start_time"]),
        "endTime": iso(row["end_time"]),
    }
