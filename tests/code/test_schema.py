"""The raw-log schema: ``conform`` (file problems raise) and ``split_valid`` (row problems)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from query_predictor.core.schema import (
    QUARANTINE_REASON,
    RAW_COLUMNS,
    RAW_SCHEMA,
    SchemaError,
    absent_columns,
    conform,
    split_valid,
)

from .rawlog import CREATED, failed_row, raw_frame, raw_row

REQUIRED = [c.name for c in RAW_COLUMNS if c.required]
OPTIONAL = [c.name for c in RAW_COLUMNS if not c.required]
MAX_CPU_MILLIS = 30 * 24 * 3600 * 1000


def conformed(frame: pl.DataFrame) -> pl.DataFrame:
    return conform(frame).collect()


# --------------------------------------------------------------------------- the schema


def test_schema_tables_agree() -> None:
    assert list(RAW_SCHEMA) == [c.name for c in RAW_COLUMNS]
    assert len(set(RAW_SCHEMA)) == len(RAW_COLUMNS)
    assert REQUIRED == [
        "query_id",
        "query",
        "user",
        "create_time",
        "cpu_time_millis",
        "peak_memory_bytes",
    ]
    assert RAW_SCHEMA["create_time"] == pl.Datetime("us", "UTC")
    assert RAW_SCHEMA["cpu_time_millis"] == pl.Int64
    assert RAW_SCHEMA["inputs"] == pl.List(pl.String)
    assert QUARANTINE_REASON not in RAW_SCHEMA


def test_rawlog_helper_row_is_valid() -> None:
    frame = raw_frame([raw_row(), failed_row("SYNTAX_ERROR", query_id="q2")])
    assert frame.schema == pl.Schema(RAW_SCHEMA)
    good, bad = split_valid(frame)
    assert (good.height, bad.height) == (2, 0)


# --------------------------------------------------------------------------- conform: errors


@pytest.mark.parametrize("name", REQUIRED)
def test_missing_required_column_is_named(name: str) -> None:
    frame = raw_frame([raw_row()]).drop(name)
    with pytest.raises(SchemaError, match=rf"missing required column\(s\) '{name}';"):
        conform(frame)


def test_several_missing_required_columns_are_all_named_in_schema_order() -> None:
    frame = raw_frame([raw_row()]).drop("peak_memory_bytes", "query_id", "user")
    with pytest.raises(SchemaError) as info:
        conform(frame, origin="raw log at data/raw")
    message = str(info.value)
    assert message.startswith(
        "raw log at data/raw is missing required column(s) "
        "'query_id', 'user', 'peak_memory_bytes'; found columns: query_state, query, "
    )
    assert "query_id," not in message.split("found columns:")[1]


def test_frame_without_columns_names_every_required_column() -> None:
    with pytest.raises(SchemaError, match=r"found columns: \(none\)") as info:
        conform(pl.DataFrame())
    for name in REQUIRED:
        assert f"'{name}'" in str(info.value)


def test_missing_optional_columns_do_not_raise() -> None:
    frame = raw_frame([raw_row()]).select(*REQUIRED, "query_state")
    assert conformed(frame).height == 1


@pytest.mark.parametrize("failure", ["query_state", "error_code"])
def test_either_failure_column_is_enough(failure: str) -> None:
    frame = raw_frame([raw_row()]).select(*REQUIRED, failure)
    assert conformed(frame).height == 1


def test_a_log_without_state_and_error_code_is_refused() -> None:
    with pytest.raises(
        SchemaError, match=r"missing required column.*'query_state' or 'error_code'"
    ):
        conform(raw_frame([raw_row()]).select(REQUIRED))


def test_a_column_without_values_is_a_missing_optional_column() -> None:
    frame = raw_frame([raw_row()]).with_columns(
        pl.lit(None).alias(name) for name in ("schema", "error_code", "error_type", "query_type")
    )
    assert frame.schema["schema"] == pl.Null
    out = conformed(frame)
    assert out.schema == pl.Schema(RAW_SCHEMA)
    assert out["schema"].null_count() == 1


def test_a_required_column_without_values_is_refused() -> None:
    frame = raw_frame([raw_row()]).with_columns(pl.lit(None).alias("user"))
    with pytest.raises(SchemaError, match=r"required column.*'user' have no values"):
        conform(frame)


def test_absent_columns_are_those_without_any_value() -> None:
    out = conformed(
        raw_frame([raw_row(), raw_row(query_id="q2", source=None)]).with_columns(
            pl.lit(None, dtype=pl.String).alias("schema")
        )
    )
    absent = absent_columns(out)
    assert "schema" in absent and "source" not in absent
    assert not set(absent) & set(REQUIRED)


def test_state_is_derived_from_the_error_code_when_the_log_has_no_state() -> None:
    rows = [raw_row(query_id="ok"), failed_row("EXCEEDED_CPU_LIMIT", "INSUFFICIENT_RESOURCES")]
    frame = conformed(raw_frame(rows).drop("query_state"))
    good, bad = split_valid(frame, absent=absent_columns(frame))
    assert bad.is_empty()
    assert dict(zip(good["query_id"], good["query_state"], strict=True))["ok"] == "FINISHED"
    assert sorted(good["query_state"]) == ["FAILED", "FINISHED"]


def test_failures_without_codes_are_kept_when_the_log_has_no_codes() -> None:
    frame = conformed(raw_frame([raw_row(query_state="FAILED")]).drop("error_code"))
    good, bad = split_valid(frame, absent=absent_columns(frame))
    assert good.height == 1 and bad.is_empty()


@pytest.mark.parametrize(
    ("name", "values", "have", "want"),
    [
        ("cpu_time_millis", ["1000"], "String", "Int64"),
        ("peak_memory_bytes", [True], "Boolean", "Int64"),
        ("query_id", [42], "Int64", "String"),
        ("create_time", [12.5], "Float64", re.escape("Datetime(time_unit='us', time_zone='UTC')")),
        ("inputs", ["hive.sales.orders"], "String", re.escape("List(String)")),
        ("wall_time_millis", ["4s"], "String", "Int64"),  # optional columns are checked too
    ],
)
def test_uncastable_type_names_column_and_both_types(
    name: str, values: list[Any], have: str, want: str
) -> None:
    frame = raw_frame([raw_row()]).with_columns(pl.Series(name, values))
    with pytest.raises(SchemaError, match=rf"column '{name}' has type {have}, expected {want} \("):
        conform(frame, origin="part-7.parquet")
    with pytest.raises(SchemaError, match=r"^part-7\.parquet: "):
        conform(frame, origin="part-7.parquet")


def test_schema_error_is_a_value_error() -> None:
    assert issubclass(SchemaError, ValueError)


# --------------------------------------------------------------------------- conform: output


def test_output_schema_and_order_equal_raw_schema() -> None:
    shuffled = raw_frame([raw_row()]).select(list(reversed(RAW_SCHEMA)))
    shuffled = shuffled.with_columns(pl.lit("x").alias("extra_a"), pl.lit(1).alias("extra_b"))
    out = conformed(shuffled)
    assert out.schema == pl.Schema(RAW_SCHEMA)
    assert out.columns == list(RAW_SCHEMA)
    assert out.row(0, named=True) == raw_row()


def test_conform_accepts_lazy_frames_and_keeps_valid_frames_unchanged() -> None:
    frame = raw_frame([raw_row(), raw_row(query_id="q2", cpu_time_millis=7)])
    lazy = conform(frame.lazy())
    assert isinstance(lazy, pl.LazyFrame)
    assert lazy.collect().equals(frame)


def test_missing_optional_columns_become_typed_nulls() -> None:
    out = conformed(raw_frame([raw_row(), raw_row(query_id="q2")]).select(*REQUIRED, "error_code"))
    assert out.schema == pl.Schema(RAW_SCHEMA)
    for name in OPTIONAL:
        if name != "error_code":
            assert out[name].null_count() == 2, name
    assert out["query_id"].to_list() == ["20250601_101512_00001_aaaaa", "q2"]


def test_extra_columns_are_dropped() -> None:
    frame = raw_frame([raw_row()]).with_columns(
        pl.lit("secret").alias("password"), pl.lit(3).alias("retry_count")
    )
    out = conformed(frame)
    assert "password" not in out.columns
    assert "retry_count" not in out.columns
    assert out.width == len(RAW_SCHEMA)


@pytest.mark.parametrize(
    ("name", "series", "expected"),
    [
        ("cpu_time_millis", pl.Series([1_000, 2**31 - 1], dtype=pl.Int32), [1_000, 2**31 - 1]),
        ("cpu_time_millis", pl.Series([1_000, 7], dtype=pl.UInt16), [1_000, 7]),
        ("cpu_time_millis", pl.Series([1_500.0, 2.0]), [1_500, 2]),
        ("peak_memory_bytes", pl.Series([2**40, 0], dtype=pl.UInt64), [2**40, 0]),
        ("cumulative_memory", pl.Series([3, 4], dtype=pl.Int32), [3.0, 4.0]),
        ("output_rows", pl.Series([5, None], dtype=pl.Int8), [5, None]),
        ("query_state", pl.Series(["FINISHED", "FAILED"], dtype=pl.Categorical), None),
        (
            "inputs",
            pl.Series([["a.b.c"], []], dtype=pl.List(pl.Categorical)),
            [["a.b.c"], []],
        ),
    ],
    ids=["int32", "uint16", "float", "uint64", "int->float", "int8-null", "categorical", "list"],
)
def test_numeric_and_categorical_columns_are_cast(
    name: str, series: pl.Series, expected: list[Any] | None
) -> None:
    rows = [raw_row(query_id="q1"), failed_row("SYNTAX_ERROR", query_id="q2")]
    frame = raw_frame(rows).with_columns(series.alias(name))
    out = conformed(frame)
    assert out.schema == pl.Schema(RAW_SCHEMA)
    assert out[name].to_list() == (expected if expected is not None else series.cast(str).to_list())


def test_integer_out_of_int64_range_becomes_null_and_is_quarantined() -> None:
    frame = raw_frame([raw_row()]).with_columns(
        pl.Series("cpu_time_millis", [2**63], dtype=pl.UInt64)
    )
    good, bad = split_valid(conformed(frame))
    assert good.height == 0
    assert bad[QUARANTINE_REASON].to_list() == ["null_cpu_time_millis"]


@pytest.mark.parametrize("unit", ["ns", "us", "ms"])
def test_naive_datetime_is_taken_as_utc(unit: str) -> None:
    naive = pl.Series("create_time", [CREATED.replace(tzinfo=None)], dtype=pl.Datetime(unit))
    out = conformed(raw_frame([raw_row()]).with_columns(naive))
    assert out.schema["create_time"] == pl.Datetime("us", "UTC")
    assert out["create_time"].to_list() == [CREATED]


@pytest.mark.parametrize(
    ("zone", "unit"),
    [("Europe/Berlin", "us"), ("America/New_York", "ns"), ("Asia/Kolkata", "ms"), ("UTC", "ns")],
)
def test_zoned_datetime_keeps_the_instant(zone: str, unit: str) -> None:
    zoned = (
        pl.Series("end_time", [CREATED + timedelta(seconds=5)], dtype=pl.Datetime(unit, "UTC"))
        .dt.convert_time_zone(zone)
        .alias("end_time")
    )
    frame = raw_frame([raw_row()]).with_columns(zoned)
    assert frame.schema["end_time"] == pl.Datetime(unit, zone)
    out = conformed(frame)
    assert out.schema["end_time"] == pl.Datetime("us", "UTC")
    assert out["end_time"].to_list() == [CREATED + timedelta(seconds=5)]


def test_berlin_wall_clock_is_converted_not_relabelled() -> None:
    berlin = pl.Series("create_time", [datetime(2025, 6, 1, 12, 15, 12)]).dt.replace_time_zone(
        "Europe/Berlin"
    )
    out = conformed(raw_frame([raw_row()]).with_columns(berlin))
    assert out["create_time"].to_list() == [datetime(2025, 6, 1, 10, 15, 12, tzinfo=UTC)]


def test_date_column_becomes_utc_midnight() -> None:
    dates = pl.Series("create_time", [date(2025, 6, 1)])
    out = conformed(raw_frame([raw_row()]).with_columns(dates))
    assert out["create_time"].to_list() == [datetime(2025, 6, 1, tzinfo=UTC)]


@pytest.mark.parametrize(
    "text",
    [
        "2025-06-01T10:15:12Z",
        "2025-06-01T10:15:12+00:00",
        "2025-06-01T12:15:12+02:00",
        "2025-06-01T05:15:12-05:00",
        "2025-06-01T10:15:12",
        "2025-06-01 10:15:12",
    ],
)
def test_iso_strings_become_utc_datetimes(text: str) -> None:
    frame = raw_frame([raw_row()]).with_columns(pl.Series("create_time", [text]))
    out = conformed(frame)
    assert out.schema["create_time"] == pl.Datetime("us", "UTC")
    assert out["create_time"].to_list() == [CREATED]


def test_iso_string_with_fraction() -> None:
    frame = raw_frame([raw_row()]).with_columns(
        pl.Series("create_time", ["2025-06-01T10:15:12.345678Z"])
    )
    assert conformed(frame)["create_time"].to_list() == [CREATED.replace(microsecond=345678)]


def test_malformed_timestamp_string_becomes_null_and_quarantines_the_row() -> None:
    frame = raw_frame([raw_row(query_id="q1"), raw_row(query_id="q2")]).with_columns(
        pl.Series("create_time", ["2025-06-01T10:15:12Z", "yesterday at noon"])
    )
    good, bad = split_valid(conformed(frame))
    assert good["query_id"].to_list() == ["q1"]
    assert bad["query_id"].to_list() == ["q2"]
    assert bad[QUARANTINE_REASON].to_list() == ["null_create_time"]


def test_mixed_iso_styles_in_one_column_all_convert() -> None:
    frame = raw_frame([raw_row(query_id="q1"), raw_row(query_id="q2")]).with_columns(
        pl.Series("create_time", ["2025-06-01T10:15:12Z", "2025-06-01 10:15:12"])
    )
    assert conformed(frame)["create_time"].to_list() == [CREATED, CREATED]


def test_binary_text_is_decoded_with_replacement_and_row_kept() -> None:
    raw_sql = b"SELECT '\xff\xfe' AS x FROM t"
    frame = raw_frame([raw_row(query_id="q1"), raw_row(query_id="q2")]).with_columns(
        pl.Series("query", [raw_sql, "SELECT 1 -- é".encode()], dtype=pl.Binary),
        pl.Series("user", [b"alice", b"bob"], dtype=pl.Binary),
        pl.Series("error_code", [None, None], dtype=pl.Binary),
    )
    out = conformed(frame)
    assert out.schema == pl.Schema(RAW_SCHEMA)
    assert out["query"].to_list() == ["SELECT '\ufffd\ufffd' AS x FROM t", "SELECT 1 -- é"]
    assert out["user"].to_list() == ["alice", "bob"]
    assert out["error_code"].to_list() == [None, None]
    good, bad = split_valid(out)
    assert (good.height, bad.height) == (2, 0)


# --------------------------------------------------------------------------- split_valid


def ended(seconds: float) -> datetime:
    return CREATED + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"query_id": None}, "null_query_id"),
        ({"query_state": None}, "null_query_state"),
        ({"query": None}, "null_query"),
        ({"user": None}, "null_user"),
        ({"create_time": None}, "null_create_time"),
        ({"cpu_time_millis": None}, "null_cpu_time_millis"),
        ({"peak_memory_bytes": None}, "null_peak_memory_bytes"),
        ({"query": "   "}, "empty_query"),
        ({"query": ""}, "empty_query"),
        ({"query": "\n\t "}, "empty_query"),
        ({"query_state": "RUNNING"}, "bad_query_state"),
        ({"query_state": "finished"}, "bad_query_state"),
        ({"cpu_time_millis": -1}, "negative_cpu_time_millis"),
        ({"peak_memory_bytes": -1}, "negative_peak_memory_bytes"),
        ({"wall_time_millis": -5}, "negative_wall_time_millis"),
        ({"output_rows": -1}, "negative_output_rows"),
        ({"cumulative_memory": -0.5}, "negative_cumulative_memory"),
        ({"cpu_time_millis": MAX_CPU_MILLIS + 1}, "absurd_cpu_time_millis"),
        ({"peak_memory_bytes": 2**50 + 1}, "absurd_peak_memory_bytes"),
        ({"end_time": ended(-0.001)}, "end_before_create"),
        ({"query_state": "FAILED"}, "failed_without_error_code"),
    ],
)
def test_each_row_problem_gets_its_reason(overrides: dict[str, Any], reason: str) -> None:
    frame = raw_frame([raw_row(query_id="good"), raw_row(**{"query_id": "bad", **overrides})])
    good, bad = split_valid(frame)
    assert good["query_id"].to_list() == ["good"]
    assert bad[QUARANTINE_REASON].to_list() == [reason]
    assert bad.drop(QUARANTINE_REASON).equals(frame.filter(pl.arange(0, 2) == 1))


@pytest.mark.parametrize(
    "overrides",
    [
        {"cpu_time_millis": 0, "peak_memory_bytes": 0},
        {"cpu_time_millis": MAX_CPU_MILLIS},
        {"peak_memory_bytes": 2**50},
        {"end_time": CREATED},
        {"end_time": None, "execution_start_time": None},
        {"query": " SELECT 1 "},
        {"wall_time_millis": None, "cumulative_memory": None},
        {"query_state": "FAILED", "error_code": "SYNTAX_ERROR"},
        {"query_state": "FINISHED", "error_code": "SOMETHING"},
        {"resource_group_id": ""},
    ],
    ids=lambda o: ",".join(o),
)
def test_boundary_rows_are_valid(overrides: dict[str, Any]) -> None:
    good, bad = split_valid(raw_frame([raw_row(**overrides)]))
    assert bad.height == 0, bad[QUARANTINE_REASON].to_list()
    assert good.height == 1


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"query_id": None, "user": None, "cpu_time_millis": -1}, "null_query_id"),
        ({"user": None, "cpu_time_millis": -1}, "null_user"),
        ({"cpu_time_millis": None, "query": "  "}, "null_cpu_time_millis"),
        ({"query": "  ", "query_state": "FAILED"}, "empty_query"),
        ({"query_state": "QUEUED", "cpu_time_millis": -1}, "bad_query_state"),
        (
            {"cpu_time_millis": -1, "peak_memory_bytes": -1, "end_time": ended(-1)},
            "negative_cpu_time_millis",
        ),
        (
            {"peak_memory_bytes": -1, "cpu_time_millis": MAX_CPU_MILLIS + 1},
            "negative_peak_memory_bytes",
        ),
        (
            {"cpu_time_millis": MAX_CPU_MILLIS + 1, "peak_memory_bytes": 2**51},
            "absurd_cpu_time_millis",
        ),
        ({"peak_memory_bytes": 2**51, "end_time": ended(-1)}, "absurd_peak_memory_bytes"),
        ({"end_time": ended(-1), "query_state": "FAILED"}, "end_before_create"),
    ],
)
def test_first_applicable_reason_wins(overrides: dict[str, Any], reason: str) -> None:
    _, bad = split_valid(raw_frame([raw_row(**overrides)]))
    assert bad[QUARANTINE_REASON].to_list() == [reason]


def test_valid_rows_are_untouched_and_counts_add_up() -> None:
    rows = [
        raw_row(query_id="ok1"),
        raw_row(query_id=None),
        failed_row("EXCEEDED_LOCAL_MEMORY_LIMIT", "INSUFFICIENT_RESOURCES", query_id="ok2"),
        raw_row(query_id="neg", cpu_time_millis=-3),
        raw_row(query_id="ok3", cpu_time_millis=MAX_CPU_MILLIS, end_time=None),
        raw_row(query_id="state", query_state="RUNNING"),
        raw_row(query_id="late", end_time=ended(-60)),
    ]
    frame = raw_frame(rows)
    good, bad = split_valid(frame)
    assert good.height + bad.height == frame.height
    assert good.schema == frame.schema
    assert good.equals(frame.filter(pl.col("query_id").is_in(["ok1", "ok2", "ok3"])))
    assert bad.columns == [*RAW_SCHEMA, QUARANTINE_REASON]
    assert bad.select("query_id", QUARANTINE_REASON).rows() == [
        (None, "null_query_id"),
        ("neg", "negative_cpu_time_millis"),
        ("state", "bad_query_state"),
        ("late", "end_before_create"),
    ]


def test_split_valid_on_empty_frame() -> None:
    good, bad = split_valid(raw_frame([]))
    assert (good.height, bad.height) == (0, 0)
    assert good.schema == pl.Schema(RAW_SCHEMA)
    assert bad.schema[QUARANTINE_REASON] == pl.String


def test_the_bring_your_own_log_guide_lists_every_column_as_the_schema_does() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "bring-your-own-logs.md").read_text()
    required_table = guide.split("Required:", 1)[1].split("Optional:", 1)[0]
    optional_table = guide.split("Optional:", 1)[1].split("## ", 1)[0]
    documented_required = set(re.findall(r"^\| `(\w+)`", required_table, re.M))
    assert documented_required == {*REQUIRED, "query_state"}  # "`query_state` **or** `error_code`"
    for name in OPTIONAL:
        assert f"`{name}`" in optional_table, name
