"""``query-predictor ingest``: Trino event-listener JSON -> raw query log parquet."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from query_predictor.cli import main
from query_predictor.core.schema import RAW_COLUMNS, RAW_SCHEMA, split_valid
from query_predictor.ingest import (
    FieldError,
    event_to_row,
    ingest,
    parse_duration_millis,
    parse_timestamp,
    rejected_path,
)

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "query_predictor.cli"]
INSTANT = datetime(2025, 6, 1, 10, 15, 12, 345000, tzinfo=UTC)


def completed_event(query_id: str = "20250601_101512_00042_x7k2p", **top: Any) -> dict[str, Any]:
    """A QueryCompletedEvent as Trino's HTTP event listener posts it (Jackson, ISO style)."""
    event: dict[str, Any] = {
        "metadata": {
            "queryId": query_id,
            "transactionId": "5a1c0f7e-0d0b-4a51-9d5e-2b7c8f0e9a11",
            "query": "SELECT region, count(*) FROM hive.sales.orders GROUP BY 1",
            "updateType": None,
            "preparedQuery": None,
            "queryState": "FINISHED",
            "tables": [],
            "routines": [],
            "uri": f"http://coordinator:8080/v1/query/{query_id}",
            "plan": None,
            "payload": None,
        },
        "statistics": {
            "cpuTime": "PT12.5S",
            "failedCpuTime": "PT0S",
            "wallTime": "PT3.2S",
            "queuedTime": "PT0.015S",
            "scheduledTime": "PT20S",
            "peakUserMemoryBytes": 268435456,
            "peakTaskUserMemory": 67108864,
            "peakTaskTotalMemory": 70000000,
            "physicalInputBytes": 1073741824,
            "physicalInputRows": 5000000,
            "processedInputBytes": 1073741824,
            "processedInputRows": 5000000,
            "internalNetworkBytes": 1024,
            "internalNetworkRows": 12,
            "totalBytes": 1073741824,
            "totalRows": 5000000,
            "outputBytes": 2048,
            "outputRows": 12,
            "writtenBytes": 0,
            "writtenRows": 0,
            "cumulativeMemory": 1.5e9,
            "failedCumulativeMemory": 0.0,
            "stageGcStatistics": [],
            "completedSplits": 42,
            "complete": True,
            "cpuTimeDistribution": [],
            "operatorSummaries": [],
            "planNodeStatsAndCosts": None,
        },
        "context": {
            "user": "alice",
            "originalUser": "alice",
            "principal": "alice@EXAMPLE.COM",
            "enabledRoles": [],
            "groups": ["analysts"],
            "traceToken": None,
            "remoteClientAddress": "10.0.0.7",
            "userAgent": "StatementClientV1/435",
            "clientInfo": '{"dashboard": 17}',
            "clientTags": ["team:growth", "adhoc"],
            "clientCapabilities": ["PATH", "PARAMETRIC_DATETIME"],
            "source": "superset",
            "timezone": "UTC",
            "catalog": "hive",
            "schema": "sales",
            "resourceGroupId": ["global", "adhoc", "analysts"],
            "sessionProperties": {
                "query_max_run_time": "1h",
                "join_distribution_type": "AUTOMATIC",
            },
            "resourceEstimates": {},
            "serverAddress": "coordinator",
            "serverVersion": "435",
            "environment": "production",
            "queryType": "SELECT",
            "retryPolicy": "NONE",
        },
        "ioMetadata": {
            "inputs": [
                {
                    "catalogName": "hive",
                    "catalogVersion": {},
                    "schema": "sales",
                    "table": "orders",
                    "columns": [{"column": "region", "masks": []}],
                    "connectorInfo": None,
                    "physicalInputBytes": 1073741824,
                    "physicalInputRows": 5000000,
                },
                {"catalogName": "iceberg", "schema": "ref", "table": "regions", "columns": []},
            ],
            "output": None,
        },
        "failureInfo": None,
        "warnings": [],
        "createTime": "2025-06-01T10:15:12.345Z",
        "executionStartTime": "2025-06-01T10:15:12.360Z",
        "endTime": "2025-06-01T10:15:15.560Z",
    }
    event.update(top)
    return event


def with_stat(event: dict[str, Any], **stats: Any) -> dict[str, Any]:
    event = copy.deepcopy(event)
    event["statistics"].update(stats)
    return event


def with_context(event: dict[str, Any], **context: Any) -> dict[str, Any]:
    event = copy.deepcopy(event)
    event["context"].update(context)
    return event


def kafka(event: dict[str, Any]) -> dict[str, Any]:
    """The Kafka event listener's record: the event inside an envelope."""
    return {
        "eventPayload": event,
        "eventMetadata": {"eventType": "QueryCompletedEvent", "envName": "production"},
    }


def failed_event(query_id: str = "20250601_101600_00043_x7k2p") -> dict[str, Any]:
    event = completed_event(
        query_id,
        createTime="2025-06-01T10:16:00Z",
        executionStartTime="2025-06-01T10:16:00.020Z",
        endTime="2025-06-01T10:16:41.500Z",
    )
    event["metadata"]["queryState"] = "FAILED"
    event["failureInfo"] = {
        "errorCode": {
            "code": 131079,
            "name": "EXCEEDED_LOCAL_MEMORY_LIMIT",
            "type": "INSUFFICIENT_RESOURCES",
            "fatal": False,
        },
        "failureType": "io.trino.ExceededMemoryLimitException",
        "failureMessage": "Query exceeded per-node memory limit of 8GB",
        "failureTask": "20250601_101600_00043_x7k2p.1.0.0",
        "failureHost": "worker-3",
        "failuresJson": "{}",
    }
    return event


def write_lines(path: Path, items: list[Any]) -> Path:
    """Write JSON lines; a str item is written verbatim (for malformed lines)."""
    path.write_text(
        "".join((item if isinstance(item, str) else json.dumps(item)) + "\n" for item in items)
    )
    return path


def read_rejects(output: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in rejected_path(output).read_text().splitlines()]


# --------------------------------------------------------------------------- small parsers


@pytest.mark.parametrize(
    "value",
    [
        "PT12.5S",
        "pt12.500s",
        "PT0M12.5S",
        12.5,
        "12.500000000",
        12.500000000,
        "12.50s",
        "12500ms",
        "12500000us",
        "12500000000ns",
        " 12.5 s ",
    ],
)
def test_duration_forms_agree(value: Any) -> None:
    assert parse_duration_millis(value) == 12_500


@pytest.mark.parametrize(
    ("value", "millis"),
    [
        ("PT1H2M3.004S", 3_723_004),
        ("P1DT2H", 93_600_000),
        ("P2D", 172_800_000),
        ("PT0S", 0),
        (0, 0),
        ("PT0.0005S", 1),  # rounded half up
        ("150ms", 150),
        ("250us", 0),
        ("10ns", 0),
        ("3.2m", 192_000),
        ("1.5h", 5_400_000),
        ("2d", 172_800_000),
        (3723.004, 3_723_004),
    ],
)
def test_duration_values(value: Any, millis: int) -> None:
    assert parse_duration_millis(value) == millis


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", r"cannot parse duration 'abc'"),
        ("-PT0.5S", r"negative duration '-PT0\.5S'"),
        ("PT-0.5S", r"negative duration 'PT-0\.5S'"),
        (-1, r"negative duration -1"),
        ("-150ms", r"negative duration '-150ms'"),
        ("PT", r"cannot parse duration 'PT'"),
        ("P1DT", r"cannot parse duration 'P1DT'"),
        ("P1Y", r"cannot parse duration 'P1Y'"),
        ("12 parsecs", r"cannot parse duration '12 parsecs'"),
        (True, r"cannot parse duration True"),
        ({"seconds": 1}, r"cannot parse duration \{'seconds': 1\}"),
        (math.nan, r"cannot parse duration nan: not a finite number"),
        ("1e999999", r"duration '1e999999' is out of range"),
        ("PT9999999999999999999H", r"duration 'PT9999999999999999999H' is out of range"),
    ],
)
def test_duration_rejects(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration_millis(value)


@pytest.mark.parametrize(
    "value",
    [
        "2025-06-01T10:15:12.345Z",
        "2025-06-01T10:15:12.345+00:00",
        "2025-06-01T12:15:12.345+02:00",
        "2025-06-01T05:15:12.345-05:00",
        "2025-06-01T10:15:12.345",  # no zone: UTC
        "2025-06-01 10:15:12.345000",
        "2025-06-01T10:15:12.345000999Z",  # nanoseconds beyond microseconds are dropped
        1748772912.345,  # epoch seconds
        "1748772912.345000000",
        1748772912345,  # > 1e11: epoch milliseconds
        "1748772912345",
    ],
)
def test_timestamp_forms_agree(value: Any) -> None:
    parsed = parse_timestamp(value)
    assert parsed == INSTANT
    assert parsed.tzinfo == UTC


def test_epoch_seconds_and_millis_heuristic() -> None:
    assert parse_timestamp(0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert parse_timestamp(1e11) == datetime(5138, 11, 16, 9, 46, 40, tzinfo=UTC)
    assert parse_timestamp(1e11 + 1) == datetime(1973, 3, 3, 9, 46, 40, 1000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("yesterday", r"cannot parse timestamp 'yesterday'"),
        ("2025-13-01T00:00:00Z", r"cannot parse timestamp '2025-13-01T00:00:00Z'"),
        ("", r"cannot parse timestamp ''"),
        (False, r"cannot parse timestamp False"),
        ([2025, 6, 1], r"cannot parse timestamp \[2025, 6, 1\]"),
        (1e30, r"timestamp 1e\+30 is out of range"),
        ("1e999999", r"timestamp '1e999999' is out of range"),
        ("9999-12-31T23:59:59-01:00", r"is out of range"),
    ],
)
def test_timestamp_rejects(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_timestamp(value)


# --------------------------------------------------------------------------- event_to_row


def test_http_event_maps_every_column() -> None:
    row = event_to_row(completed_event())
    assert list(row) == [c.name for c in RAW_COLUMNS]
    assert row == {
        "query_id": "20250601_101512_00042_x7k2p",
        "query_state": "FINISHED",
        "query": "SELECT region, count(*) FROM hive.sales.orders GROUP BY 1",
        "query_type": "SELECT",
        "update_type": None,
        "user": "alice",
        "principal": "alice@EXAMPLE.COM",
        "source": "superset",
        "client_info": '{"dashboard": 17}',
        "client_tags": ["team:growth", "adhoc"],
        "catalog": "hive",
        "schema": "sales",
        "resource_group_id": "global.adhoc.analysts",
        "session_properties": '{"join_distribution_type":"AUTOMATIC","query_max_run_time":"1h"}',
        "environment": "production",
        "server_version": "435",
        "create_time": INSTANT,
        "execution_start_time": datetime(2025, 6, 1, 10, 15, 12, 360000, tzinfo=UTC),
        "end_time": datetime(2025, 6, 1, 10, 15, 15, 560000, tzinfo=UTC),
        "cpu_time_millis": 12_500,
        "wall_time_millis": 3_200,
        "queued_time_millis": 15,
        "peak_memory_bytes": 268435456,
        "peak_task_memory_bytes": 67108864,
        "physical_input_bytes": 1073741824,
        "physical_input_rows": 5000000,
        "total_bytes": 1073741824,
        "total_rows": 5000000,
        "output_bytes": 2048,
        "output_rows": 12,
        "written_bytes": 0,
        "written_rows": 0,
        "cumulative_memory": 1.5e9,
        "completed_splits": 42,
        "error_code": None,
        "error_type": None,
        "failure_type": None,
        "failure_message": None,
        "inputs": ["hive.sales.orders", "iceberg.ref.regions"],
    }


def test_kafka_envelope_gives_the_same_row() -> None:
    assert event_to_row(kafka(completed_event())) == event_to_row(completed_event())


def test_jackson_timestamp_style_gives_the_same_row() -> None:
    """Numbers instead of strings: decimal seconds for durations and instants."""
    numeric = completed_event(
        createTime=1748772912.345, executionStartTime=1748772912.36, endTime=1748772915560
    )
    numeric = with_stat(numeric, cpuTime=12.5, wallTime="3.20s", queuedTime=0.015)
    assert event_to_row(numeric) == event_to_row(completed_event())


def test_counts_may_be_numeric_strings() -> None:
    event = with_stat(
        completed_event(),
        peakUserMemoryBytes="268435456",
        outputRows="12",
        cumulativeMemory="1.5e9",
    )
    row = event_to_row(event)
    assert row["peak_memory_bytes"] == 268435456
    assert row["output_rows"] == 12
    assert row["cumulative_memory"] == 1.5e9


@pytest.mark.parametrize(
    "group", [["global", "adhoc", "analysts"], "global.adhoc.analysts"], ids=["list", "string"]
)
def test_resource_group_as_list_or_string(group: Any) -> None:
    row = event_to_row(with_context(completed_event(), resourceGroupId=group))
    assert row["resource_group_id"] == "global.adhoc.analysts"


def test_failed_query_keeps_failure_info() -> None:
    row = event_to_row(failed_event())
    assert row["query_state"] == "FAILED"
    assert row["error_code"] == "EXCEEDED_LOCAL_MEMORY_LIMIT"
    assert row["error_type"] == "INSUFFICIENT_RESOURCES"
    assert row["failure_type"] == "io.trino.ExceededMemoryLimitException"
    assert row["failure_message"] == "Query exceeded per-node memory limit of 8GB"


def test_optional_parts_may_be_absent() -> None:
    event = completed_event()
    for key in ("failureInfo", "ioMetadata", "executionStartTime"):
        del event[key]
    event["context"]["resourceGroupId"] = None
    row = event_to_row(event)
    assert row["inputs"] == []
    assert row["error_code"] is None
    assert row["execution_start_time"] is None
    assert row["resource_group_id"] is None  # the load stage quarantines it as null_...


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"metadata": {"query": "SELECT 1"}}, r"^metadata\.queryId: missing$"),
        ({"statistics": {}}, r"^metadata\.queryId: missing$"),
        ({"metadata": []}, r"^metadata: expected a JSON object, got list$"),
        ({"eventPayload": "oops"}, r"^eventPayload: expected a JSON object, got str$"),
        (
            {"metadata": {"queryId": "q1"}, "createTime": "2025-06-01T10:15:12Z"},
            r"^statistics: missing \(not a QueryCompletedEvent\)$",
        ),
        (
            with_stat(completed_event(), cpuTime="abc"),
            r"^statistics\.cpuTime: cannot parse duration 'abc'$",
        ),
        (
            with_stat(completed_event(), wallTime="-PT0.5S"),
            r"^statistics\.wallTime: negative duration '-PT0\.5S'$",
        ),
        (
            completed_event(endTime="soon"),
            r"^endTime: cannot parse timestamp 'soon'$",
        ),
        (
            with_stat(completed_event(), outputRows="12 rows"),
            r"^statistics\.outputRows: cannot parse integer '12 rows'$",
        ),
        (
            with_stat(completed_event(), totalBytes=1.5),
            r"^statistics\.totalBytes: cannot parse integer 1\.5: has a fractional part$",
        ),
        (
            with_stat(completed_event(), totalBytes=2**64),
            r"^statistics\.totalBytes: integer \d+ is out of the int64 range$",
        ),
        (
            with_stat(completed_event(), cumulativeMemory="1e400"),
            r"^statistics\.cumulativeMemory: number '1e400' is out of range$",
        ),
        (
            with_context(completed_event(), resourceGroupId=7),
            r"^context\.resourceGroupId: expected a list of segments or a string, got int$",
        ),
        (
            completed_event(failureInfo={"errorCode": "OOPS"}),
            r"^failureInfo\.errorCode: expected a JSON object, got str$",
        ),
        (
            completed_event(ioMetadata={"inputs": [{"catalogName": "hive", "schema": "s"}]}),
            r"^ioMetadata\.inputs\[0\]\.table: missing or not a string$",
        ),
    ],
)
def test_event_to_row_names_the_field(event: dict[str, Any], message: str) -> None:
    with pytest.raises(FieldError, match=message):
        event_to_row(event)


# --------------------------------------------------------------------------- ingest


def test_ingest_writes_raw_schema_sorted(tmp_path: Path) -> None:
    early = completed_event("q_b", createTime="2025-06-01T09:00:00Z")
    same_time = completed_event("q_a", createTime="2025-06-01T09:00:00Z")
    source = write_lines(
        tmp_path / "events.jsonl", [failed_event("q_c"), kafka(early), "", same_time]
    )
    output = tmp_path / "raw" / "queries.parquet"

    report = ingest([source], output=output)

    assert (report.files_read, report.events_read, report.rows_written) == (1, 3, 3)
    assert report.rejected_total == 0
    frame = pl.read_parquet(output)
    assert frame.schema == pl.Schema(RAW_SCHEMA)
    assert frame["query_id"].to_list() == ["q_a", "q_b", "q_c"]
    assert frame["inputs"][0].to_list() == ["hive.sales.orders", "iceberg.ref.regions"]
    assert frame["create_time"][0] == datetime(2025, 6, 1, 9, tzinfo=UTC)
    _, bad = split_valid(frame)
    assert bad.height == 0, bad["quarantine_reason"].to_list()
    assert rejected_path(output).read_text() == ""


def test_ingest_is_deterministic(tmp_path: Path) -> None:
    events = [
        completed_event(f"q{i}", createTime=f"2025-06-01T10:{59 - i:02d}:00Z") for i in range(5)
    ]
    write_lines(tmp_path / "a.jsonl", events)
    write_lines(tmp_path / "b.jsonl", list(reversed(events)))
    ingest([tmp_path / "a.jsonl"], output=tmp_path / "a.parquet")
    ingest([tmp_path / "b.jsonl"], output=tmp_path / "b.parquet")
    assert pl.read_parquet(tmp_path / "a.parquet").equals(pl.read_parquet(tmp_path / "b.parquet"))


def test_malformed_lines_are_rejected_and_good_lines_land(tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "events.jsonl",
        [
            completed_event("good_1"),  # line 1
            '{"metadata": {"queryId": "truncated"',  # line 2
            completed_event(None),  # line 3
            with_stat(completed_event("bad_duration"), cpuTime="abc"),  # line 4
            with_stat(completed_event("negative"), queuedTime="-PT0.5S"),  # line 5
            completed_event("bad_time", createTime="2025-06-01 at noon"),  # line 6
            "[1, 2, 3]",  # line 7
            kafka(completed_event("good_2")),  # line 8
        ],
    )
    output = tmp_path / "queries.parquet"

    report = ingest([source], output=output)

    assert (report.events_read, report.rows_written, report.rejected_total) == (8, 2, 6)
    assert report.rejected == {
        "invalid JSON": 1,
        "metadata.queryId": 1,
        "statistics.cpuTime": 1,
        "statistics.queuedTime": 1,
        "createTime": 1,
        "not a JSON object": 1,
    }
    assert sorted(pl.read_parquet(output)["query_id"]) == ["good_1", "good_2"]
    rejects = read_rejects(output)
    assert [r["line"] for r in rejects] == [2, 3, 4, 5, 6, 7]
    assert all(r["source"] == str(source) for r in rejects)
    reasons = [r["reason"] for r in rejects]
    assert reasons[0].startswith("line 2: invalid JSON: ")
    assert reasons[1:] == [
        "line 3: metadata.queryId: missing",
        "line 4: statistics.cpuTime: cannot parse duration 'abc'",
        "line 5: statistics.queuedTime: negative duration '-PT0.5S'",
        "line 6: createTime: cannot parse timestamp '2025-06-01 at noon'",
        "line 7: not a JSON object: got list",
    ]
    assert rejects[0]["text"] == '{"metadata": {"queryId": "truncated"'
    assert "line 4" in reasons[2] and "statistics.cpuTime" in reasons[2]


def test_rejected_text_is_truncated(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "e.jsonl", ["x" * 5000])
    ingest([source], output=tmp_path / "q.parquet")
    (reject,) = read_rejects(tmp_path / "q.parquet")
    assert reject["text"] == "x" * 2000


def test_json_array_file(tmp_path: Path) -> None:
    events = [completed_event("q1"), with_stat(completed_event("q2"), cpuTime="abc")]
    source = tmp_path / "dump.json"
    source.write_text(json.dumps(events, indent=2))
    output = tmp_path / "q.parquet"

    report = ingest([source], output=output)

    assert (report.events_read, report.rows_written, report.rejected_total) == (2, 1, 1)
    (reject,) = read_rejects(output)
    second_line = source.read_text().splitlines().index("  {", 2) + 1
    assert reject["line"] == second_line
    assert (
        reject["reason"] == f"line {second_line}: statistics.cpuTime: cannot parse duration 'abc'"
    )
    assert reject["text"].startswith('{\n    "metadata": {\n      "queryId": "q2",')


def test_directory_input_reads_json_files_sorted(tmp_path: Path) -> None:
    events = tmp_path / "events"
    (events / "2025-06-02").mkdir(parents=True)
    write_lines(events / "b.jsonl", [completed_event("q_b")])
    write_lines(events / "a.ndjson", [completed_event("q_a")])
    (events / "2025-06-02" / "c.json").write_text(json.dumps([completed_event("q_c")]))
    write_lines(events / "notes.txt", ["not an event"])
    output = events / "raw.parquet"
    write_lines(rejected_path(output), ["a stale sidecar must not be read back"])

    report = ingest([events, events / "a.ndjson"], output=output)

    assert (report.files_read, report.events_read, report.rows_written) == (3, 3, 3)
    assert rejected_path(output).read_text() == ""


def test_no_input_writes_an_empty_raw_log(tmp_path: Path) -> None:
    (tmp_path / "events").mkdir()
    output = tmp_path / "q.parquet"
    report = ingest([tmp_path / "events"], output=output)
    assert (report.files_read, report.events_read, report.rows_written) == (0, 0, 0)
    frame = pl.read_parquet(output)
    assert frame.height == 0
    assert frame.schema == pl.Schema(RAW_SCHEMA)


def test_missing_input_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"input not found: .*nope\.jsonl"):
        ingest([tmp_path / "nope.jsonl"], output=tmp_path / "q.parquet")


# --------------------------------------------------------------------------- CLI


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_cli_ingests_and_prints_summary(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "e.jsonl", [completed_event("q1"), "{bad", failed_event()])
    output = tmp_path / "q.parquet"
    result = run_cli("ingest", source, "--output", output)
    assert result.returncode == 0, result.stderr
    assert "1 file(s) read, 3 event(s) read, 2 row(s) written" in result.stderr
    assert "1 rejected" in result.stderr
    assert "invalid JSON" in result.stderr
    assert pl.read_parquet(output).height == 2


def test_cli_exit_1_when_every_event_is_rejected(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "e.jsonl", ["{bad", completed_event(None)])
    result = run_cli("ingest", source, "--output", tmp_path / "q.parquet")
    assert result.returncode == 1
    assert "every event was rejected" in result.stderr
    assert len(read_rejects(tmp_path / "q.parquet")) == 2


def test_cli_exit_0_without_input(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n\n")
    result = run_cli("ingest", tmp_path / "empty.jsonl", "--output", tmp_path / "q.parquet")
    assert result.returncode == 0, result.stderr
    assert "0 event(s) read" in result.stderr


def test_cli_exit_2_for_missing_input(tmp_path: Path) -> None:
    result = run_cli("ingest", tmp_path / "nope.jsonl", "--output", tmp_path / "q.parquet")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"query-predictor ingest: error: input not found: {tmp_path}/nope.jsonl"
    )
    assert not (tmp_path / "q.parquet").exists()


@pytest.mark.parametrize("argv", [[], ["ingest"], ["ingest", "x.jsonl"], ["predict"]])
def test_cli_usage_errors_return_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage: query-predictor" in capsys.readouterr().err


def test_console_script_is_installed(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("query-predictor")
    if not script.exists():
        pytest.skip("console script not installed in this environment")
    source = write_lines(tmp_path / "e.jsonl", [completed_event()])
    result = subprocess.run(
        [str(script), "ingest", str(source), "-o", str(tmp_path / "q.parquet")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "1 row(s) written" in result.stderr


def test_a_lone_surrogate_quarantines_its_line_and_the_others_land(tmp_path: Path) -> None:
    """JSON can spell half a surrogate pair ("\\ud800"); no parquet string can hold it."""
    bad_query = completed_event("bad_query")
    bad_query["metadata"]["query"] = "SELECT '\ud800' FROM hive.sales.orders"
    bad_user = with_context(completed_event("bad_user"), user="al\udfffice")
    source = write_lines(
        tmp_path / "events.jsonl",
        [completed_event("good_1"), bad_query, bad_user, completed_event("good_2")],
    )
    assert "\\ud800" in source.read_text()  # json.dumps wrote the escape
    output = tmp_path / "queries.parquet"

    report = ingest([source], output=output)

    assert (report.events_read, report.rows_written, report.rejected_total) == (4, 2, 2)
    assert report.rejected == {"metadata.query": 1, "context.user": 1}
    assert sorted(pl.read_parquet(output)["query_id"]) == ["good_1", "good_2"]
    assert [r["reason"] for r in read_rejects(output)] == [
        "line 2: metadata.query: lone surrogate \\ud800 at character 8 is not Unicode text",
        "line 3: context.user: lone surrogate \\udfff at character 2 is not Unicode text",
    ]


def test_bytes_that_are_not_utf8_are_replaced_and_the_line_lands(tmp_path: Path) -> None:
    source = tmp_path / "events.jsonl"
    line = json.dumps(completed_event("latin1")).replace("GROUP BY 1", "GROUP BY 1 -- caf\\u00e9")
    source.write_bytes(line.encode().replace(b"caf\\u00e9", b"caf\xe9") + b"\n")
    report = ingest([source], output=tmp_path / "queries.parquet")
    assert (report.rows_written, report.rejected_total) == (1, 0)
    [query] = pl.read_parquet(tmp_path / "queries.parquet")["query"]
    assert query.endswith("-- caf\ufffd")
