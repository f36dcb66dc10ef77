"""Stage ``load``: labelling, deduplication, filters and the metrics of ``run_load``."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from query_predictor.core.errors import EmptyWindowError, PipelineError, UnreadableFileError
from query_predictor.core.label import LabelRule
from query_predictor.core.schema import QUARANTINE_REASON, RAW_SCHEMA, SchemaError
from query_predictor.params import DataLoading, Params, ParamsError, parse_params
from query_predictor.storage import write_parquet
from query_predictor.training.hashing import unit_hash
from query_predictor.training.loading import (
    LABEL_COLUMNS,
    LoadResult,
    dedup_bursts,
    dedup_query_id,
    log_days,
    run_load,
    scan_raw,
    workload,
    write_by_day,
)

from .rawlog import CREATED, failed_row, raw_frame, raw_row

GIB = 2**30
DEFAULTS = DataLoading()
STEPS = [
    "0_read",
    "1_window",
    "2_sample",
    "3_valid",
    "4_unique_id",
    "5_complete",
    "6_workload",
    "7_query_type",
    "8_dedup_burst",
]


def at(seconds: float = 0, day: date = date(2025, 6, 1)) -> datetime:
    return datetime(day.year, day.month, day.day, 10, tzinfo=UTC) + timedelta(seconds=seconds)


def after(seconds: float) -> datetime:
    """An instant ``seconds`` after the default ``create_time`` of :func:`raw_row`."""
    return CREATED + timedelta(seconds=seconds)


def row(query_id: str, **overrides: Any) -> dict[str, Any]:
    """A valid row whose SQL text is unique to ``query_id`` (no accidental burst dedup)."""
    overrides.setdefault("query", f"SELECT * FROM hive.sales.orders WHERE id = '{query_id}'")
    return raw_row(query_id=query_id, **overrides)


def failed(query_id: str, error_code: str, error_type: str = "USER_ERROR", **kw: Any) -> dict:
    kw.setdefault("query", f"SELECT * FROM hive.sales.orders WHERE id = '{query_id}'")
    return failed_row(error_code, error_type, query_id=query_id, **kw)


def labelled(rows: list[dict[str, Any]], **thresholds: Any) -> pl.DataFrame:
    options: dict[str, Any] = {
        "cpu_threshold_seconds": DEFAULTS.cpu_threshold_seconds,
        "memory_threshold_gb": DEFAULTS.memory_threshold_gb,
        "resource_error_codes": DEFAULTS.resource_error_codes,
        **thresholds,
    }
    return LabelRule(**options).apply(raw_frame(rows))


def params_for(raw_dir: Path, **sections: dict[str, Any]) -> Params:
    data = {"raw_path": str(raw_dir), "start_date": "2025-06-01", "end_date": "2025-06-02"}
    data.update(sections.pop("data_loading", {}))
    return parse_params({"data_loading": data, **sections})


def load(tmp_path: Path, rows: list[dict[str, Any]], **sections: dict[str, Any]) -> LoadResult:
    raw_dir = tmp_path / "raw"
    write_parquet(raw_frame(rows), raw_dir / "part-0.parquet")
    params = params_for(raw_dir, **sections)
    return run_load(params.data_loading, params.filters)


def ids(frame: pl.DataFrame) -> list[str]:
    return sorted(frame["query_id"].to_list())


# --------------------------------------------------------------------------- label


@pytest.mark.parametrize(
    ("overrides", "heavy", "reason"),
    [
        ({"cpu_time_millis": 300_000}, True, "cpu"),
        ({"cpu_time_millis": 299_999}, False, None),
        ({"cpu_time_millis": 3_600_000}, True, "cpu"),
        ({"cpu_time_millis": 0, "peak_memory_bytes": 0}, False, None),
        ({"peak_memory_bytes": 10 * GIB}, False, None),
        ({"peak_memory_bytes": 10 * GIB + 1}, True, "memory"),
        ({"peak_memory_bytes": 10 * 10**9 + 1}, False, None),  # decimal GB is below 10 GiB
        (
            {"query_state": "FAILED", "error_code": "EXCEEDED_LOCAL_MEMORY_LIMIT"},
            True,
            "resource_error",
        ),
        (
            {"query_state": "FAILED", "error_code": "EXCEEDED_SCAN_LIMIT", "cpu_time_millis": 0},
            True,
            "resource_error",
        ),
        (
            {
                "query_state": "FAILED",
                "error_code": "QUERY_QUEUE_FULL",
                "error_type": "INSUFFICIENT_RESOURCES",
            },
            False,
            None,
        ),
        ({"query_state": "FAILED", "error_code": "USER_CANCELED"}, False, None),
        ({"error_code": None, "error_type": "INSUFFICIENT_RESOURCES"}, False, None),
        (
            {"cpu_time_millis": 300_000, "peak_memory_bytes": 10 * GIB + 1},
            True,
            "cpu+memory",
        ),
        (
            {"cpu_time_millis": 300_000, "error_code": "CLUSTER_OUT_OF_MEMORY"},
            True,
            "cpu+resource_error",
        ),
        (
            {"peak_memory_bytes": 11 * GIB, "error_code": "EXCEEDED_GLOBAL_MEMORY_LIMIT"},
            True,
            "memory+resource_error",
        ),
        (
            {
                "query_state": "FAILED",
                "cpu_time_millis": 400_000,
                "peak_memory_bytes": 20 * GIB,
                "error_code": "EXCEEDED_CPU_LIMIT",
            },
            True,
            "cpu+memory+resource_error",
        ),
    ],
)
def test_label_with_default_thresholds(
    overrides: dict[str, Any], heavy: bool, reason: str | None
) -> None:
    out = labelled([raw_row(**overrides)])
    assert out.row(0, named=True)["is_heavy"] is heavy
    assert out.row(0, named=True)["heavy_reason"] == reason


@pytest.mark.parametrize(
    ("thresholds", "overrides", "heavy", "reason"),
    [
        ({"cpu_threshold_seconds": 60}, {"cpu_time_millis": 60_000}, True, "cpu"),
        ({"cpu_threshold_seconds": 60}, {"cpu_time_millis": 59_999}, False, None),
        ({"cpu_threshold_seconds": 0.0015}, {"cpu_time_millis": 2}, True, "cpu"),
        ({"cpu_threshold_seconds": 0.0015}, {"cpu_time_millis": 1}, False, None),
        ({"cpu_threshold_seconds": 600}, {"cpu_time_millis": 300_000}, False, None),
        ({"memory_threshold_gb": 0.5}, {"peak_memory_bytes": GIB // 2}, False, None),
        ({"memory_threshold_gb": 0.5}, {"peak_memory_bytes": GIB // 2 + 1}, True, "memory"),
        ({"memory_threshold_gb": 100}, {"peak_memory_bytes": 11 * GIB}, False, None),
        (
            {"resource_error_codes": ("QUERY_QUEUE_FULL",)},
            {"query_state": "FAILED", "error_code": "QUERY_QUEUE_FULL"},
            True,
            "resource_error",
        ),
        (
            {"resource_error_codes": ("QUERY_QUEUE_FULL",)},
            {"query_state": "FAILED", "error_code": "EXCEEDED_LOCAL_MEMORY_LIMIT"},
            False,
            None,
        ),
        (
            {"resource_error_codes": ()},
            {"query_state": "FAILED", "error_code": "EXCEEDED_LOCAL_MEMORY_LIMIT"},
            False,
            None,
        ),
    ],
)
def test_label_takes_thresholds_from_arguments(
    thresholds: dict[str, Any], overrides: dict[str, Any], heavy: bool, reason: str | None
) -> None:
    out = labelled([raw_row(**overrides)], **thresholds)
    assert out.row(0, named=True)["is_heavy"] is heavy
    assert out.row(0, named=True)["heavy_reason"] == reason


def test_label_adds_two_typed_columns_and_keeps_rows() -> None:
    rows = [row("a"), row("b", cpu_time_millis=500_000), row("c", peak_memory_bytes=0)]
    frame = raw_frame(rows)
    out = labelled(rows)
    assert out.columns == [*RAW_SCHEMA, "is_heavy", "heavy_reason"]
    assert out.schema["is_heavy"] == pl.Boolean
    assert out.schema["heavy_reason"] == pl.String
    assert out.drop("is_heavy", "heavy_reason").equals(frame)
    assert out["is_heavy"].to_list() == [False, True, False]
    assert out["is_heavy"].null_count() == 0
    # every heavy row has a reason and every light row has none
    assert out.filter(pl.col("is_heavy") != pl.col("heavy_reason").is_not_null()).height == 0


# --------------------------------------------------------------------------- dedup / workload


def test_dedup_query_id_keeps_the_latest_end_then_the_costliest() -> None:
    frame = raw_frame(
        [
            row("q1", end_time=after(5), cpu_time_millis=9_000),
            row("q1", end_time=after(9), cpu_time_millis=1_000),
            row("q1", end_time=None, cpu_time_millis=99_000),
            row("q2", end_time=after(5), cpu_time_millis=1_000),
            row("q2", end_time=after(5), cpu_time_millis=2_000),
            row("q3"),
        ]
    )
    out = dedup_query_id(frame).sort("query_id")
    assert out.select("query_id", "end_time", "cpu_time_millis").rows() == [
        ("q1", after(9), 1_000),
        ("q2", after(5), 2_000),
        ("q3", after(5), 1_000),
    ]


def test_dedup_query_id_without_duplicates_keeps_every_row() -> None:
    frame = raw_frame([row(f"q{i}") for i in range(5)])
    out = dedup_query_id(frame)
    assert out.sort("query_id").equals(frame.sort("query_id"))


@pytest.mark.parametrize(
    ("gaps", "users", "kept"),
    [
        ([0, 30], ["alice", "alice"], 1),
        ([0, 59.999], ["alice", "alice"], 1),
        ([0, 60], ["alice", "alice"], 1),  # a gap of exactly the window is still one burst
        ([0, 60.001], ["alice", "alice"], 2),
        ([0, 61], ["alice", "alice"], 2),
        ([0, 30], ["alice", "bob"], 2),
        ([0, 0], ["alice", "alice"], 1),
        ([0, 30, 60, 90], ["alice"] * 4, 1),  # each retry within 60 s of the previous one
        ([0, 30, 3_600, 3_630], ["alice"] * 4, 2),
    ],
)
def test_dedup_bursts(gaps: list[float], users: list[str], kept: int) -> None:
    frame = raw_frame(
        raw_row(query_id=f"q{i}", user=user, create_time=at(gap))
        for i, (gap, user) in enumerate(zip(gaps, users, strict=True))
    )
    out = dedup_bursts(frame, window_seconds=60)
    assert out.height == kept
    assert "q0" in out["query_id"].to_list()  # the first submission is the one kept


def test_dedup_bursts_different_text_is_not_a_burst() -> None:
    frame = raw_frame([row("q1", create_time=at(0)), row("q2", create_time=at(1))])
    assert dedup_bursts(frame, window_seconds=60).height == 2


def test_dedup_bursts_window_zero_keeps_all() -> None:
    frame = raw_frame([raw_row(query_id="a"), raw_row(query_id="b")])
    assert dedup_bursts(frame, window_seconds=0).equals(frame)


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        ("global.curated.x", "CURATED"),
        ("global.curated", "CURATED"),
        ("global.curated.etl.daily", "CURATED"),
        ("global.curatedx", "NON-CURATED"),
        ("global.adhoc.curated", "NON-CURATED"),
        ("curated", "NON-CURATED"),
        ("global.adhoc.analysts", "NON-CURATED"),
        (None, "NON-CURATED"),
    ],
)
def test_workload(group: str | None, expected: str) -> None:
    frame = raw_frame([raw_row(resource_group_id=group)])
    assert frame.select(workload(Params().filters))["literal"].to_list() == [expected]


# --------------------------------------------------------------------------- run_load


def test_window_is_inclusive_utc_days_and_drops_are_counted(tmp_path: Path) -> None:
    rows = [
        row("before", create_time=datetime(2025, 5, 31, 23, 59, 59, tzinfo=UTC)),
        row("first", create_time=datetime(2025, 6, 1, tzinfo=UTC)),
        row("last", create_time=datetime(2025, 6, 2, 23, 59, 59, 999999, tzinfo=UTC)),
        row("after", create_time=datetime(2025, 6, 3, tzinfo=UTC)),
        row("much_later", create_time=datetime(2025, 7, 1, 12, tzinfo=UTC)),
    ]
    result = load(tmp_path, rows)
    assert ids(result.labeled) == ["first", "last"]
    assert result.metrics["dropped"]["outside_window"] == 3
    assert result.metrics["rows_read"] == 5
    assert result.metrics["days"] == 2
    assert result.metrics["window"] == {"start_date": "2025-06-01", "end_date": "2025-06-02"}


def test_quarantined_rows_are_counted_by_reason_and_returned(tmp_path: Path) -> None:
    rows = [
        row("ok"),
        row("no_user", user=None),
        row("neg1", cpu_time_millis=-1),
        row("neg2", cpu_time_millis=-2),
        row("blank", query="   "),
        row("late", end_time=after(-1)),
        row("nocode", query_state="FAILED"),
        row(None),
        failed("syntax", "SYNTAX_ERROR"),  # the log has error codes, so "nocode" is corrupt
    ]
    result = load(tmp_path, rows)
    assert ids(result.labeled) == ["ok"]
    assert result.metrics["quarantined"] == 7
    assert result.metrics["quarantine_by_reason"] == {
        "empty_query": 1,
        "end_before_create": 1,
        "failed_without_error_code": 1,
        "negative_cpu_time_millis": 2,
        "null_query_id": 1,
        "null_user": 1,
    }
    quarantined = result.quarantined
    assert quarantined.columns == [*RAW_SCHEMA, QUARANTINE_REASON]
    reasons = dict(quarantined.select("query_id", QUARANTINE_REASON).rows())
    assert reasons == {
        "no_user": "null_user",
        "neg1": "negative_cpu_time_millis",
        "neg2": "negative_cpu_time_millis",
        "blank": "empty_query",
        "late": "end_before_create",
        "nocode": "failed_without_error_code",
        None: "null_query_id",
    }


def test_null_create_time_is_quarantined_not_dropped_by_the_window(tmp_path: Path) -> None:
    result = load(tmp_path, [row("ok"), row("no_time", create_time=None)])
    assert result.metrics["dropped"]["outside_window"] == 0
    assert result.metrics["quarantine_by_reason"] == {"null_create_time": 1}


def test_exact_duplicate_ids_keep_the_later_end_time(tmp_path: Path) -> None:
    rows = [
        row("dup", end_time=after(5), cpu_time_millis=2_000),
        row("dup", end_time=after(30), cpu_time_millis=1_000),
        row("other"),
    ]
    result = load(tmp_path, rows)
    assert ids(result.labeled) == ["dup", "other"]
    kept = result.labeled.filter(pl.col("query_id") == "dup").row(0, named=True)
    assert kept["end_time"] == after(30)
    assert kept["cpu_time_millis"] == 1_000
    assert result.metrics["dropped"]["duplicate_query_id"] == 1


def test_failed_queries_with_truncated_cost_are_dropped_unless_already_heavy(
    tmp_path: Path,
) -> None:
    rows = [
        row("ok"),
        failed("cancel_light", "USER_CANCELED", cpu_time_millis=10_000),
        failed("cancel_light2", "USER_CANCELED", cpu_time_millis=0),
        failed("syntax", "SYNTAX_ERROR", cpu_time_millis=0),
        failed("queue", "QUERY_QUEUE_FULL", "INSUFFICIENT_RESOURCES"),
        failed("cancel_heavy", "USER_CANCELED", cpu_time_millis=400_000),
        failed("cancel_big", "USER_CANCELED", peak_memory_bytes=12 * GIB),
        failed("oom", "EXCEEDED_LOCAL_MEMORY_LIMIT", "INSUFFICIENT_RESOURCES"),
    ]
    result = load(tmp_path, rows)
    assert ids(result.labeled) == ["cancel_big", "cancel_heavy", "ok", "oom"]
    assert result.metrics["dropped"]["failed_truncated"] == {
        "QUERY_QUEUE_FULL": 1,
        "SYNTAX_ERROR": 1,
        "USER_CANCELED": 2,
    }
    assert result.metrics["failed_kept_as_heavy"] == 2  # resource errors are not counted here
    reasons = dict(result.labeled.select("query_id", "heavy_reason").rows())
    assert reasons == {
        "ok": None,
        "cancel_heavy": "cpu",
        "cancel_big": "memory",
        "oom": "resource_error",
    }
    assert result.metrics["heavy_by_reason"] == {"cpu": 1, "memory": 1, "resource_error": 1}
    assert result.metrics["heavy_count"] == 3
    assert result.metrics["heavy_share"] == 0.75


@pytest.mark.parametrize(
    ("keep", "expected", "dropped"),
    [
        ("NON-CURATED", ["adhoc", "lookalike"], 1),
        ("CURATED", ["curated"], 2),
        ("ALL", ["adhoc", "curated", "lookalike"], 0),
    ],
)
def test_workload_filter(tmp_path: Path, keep: str, expected: list[str], dropped: int) -> None:
    rows = [
        row("adhoc"),
        row("curated", resource_group_id="global.curated.x"),
        row("lookalike", resource_group_id="global.curatedx"),
    ]
    result = load(tmp_path, rows, filters={"keep_workload": keep})
    assert ids(result.labeled) == expected
    assert result.metrics["dropped"]["workload"] == dropped
    by_id = dict(result.labeled.select("query_id", "workload").rows())
    if "curated" in by_id:
        assert by_id["curated"] == "CURATED"


def test_curated_rows_are_dropped_with_default_filters(tmp_path: Path) -> None:
    rows = [row("adhoc"), row("curated", resource_group_id="global.curated.x")]
    result = load(tmp_path, rows)
    assert ids(result.labeled) == ["adhoc"]
    assert result.labeled["workload"].to_list() == ["NON-CURATED"]


def test_query_types_outside_the_filter_are_dropped_and_counted(tmp_path: Path) -> None:
    rows = [
        row("select"),
        row("insert", query_type="INSERT", update_type="INSERT"),
        row("analyze1", query_type="ANALYZE"),
        row("analyze2", query_type="ANALYZE"),
        row("alter", query_type="ALTER_TABLE"),
        row("lower", query_type="select"),
    ]
    result = load(tmp_path, rows)
    assert ids(result.labeled) == ["insert", "select"]
    assert result.metrics["dropped"]["query_type"] == {"ALTER_TABLE": 1, "ANALYZE": 2, "select": 1}

    only_select = load(tmp_path, rows, filters={"query_types": ["SELECT"]})
    assert ids(only_select.labeled) == ["select"]


def test_bursts_are_collapsed_in_run_load(tmp_path: Path) -> None:
    text = "SELECT count(*) FROM hive.web.events"
    rows = [
        raw_row(query_id="burst_1", query=text, user="alice", create_time=at(0)),
        raw_row(query_id="burst_2", query=text, user="alice", create_time=at(30)),
        raw_row(query_id="apart_1", query=text, user="bob", create_time=at(0)),
        raw_row(query_id="apart_2", query=text, user="bob", create_time=at(61)),
        raw_row(query_id="users_1", query=text, user="carol", create_time=at(5)),
        raw_row(query_id="users_2", query=text, user="dave", create_time=at(5)),
    ]
    result = load(tmp_path, rows)
    assert ids(result.labeled) == ["apart_1", "apart_2", "burst_1", "users_1", "users_2"]
    assert result.metrics["dropped"]["duplicate_burst"] == 1

    no_dedup = load(tmp_path, rows, filters={"dedup_window_seconds": 0})
    assert no_dedup.labeled.height == 6


def test_full_run_metrics_are_consistent(tmp_path: Path) -> None:
    text = "SELECT 1"
    rows = [
        *(row(f"light{i}", create_time=at(i * 100)) for i in range(6)),
        row("heavy", cpu_time_millis=900_000),
        row("outside", create_time=datetime(2025, 6, 5, tzinfo=UTC)),
        row("bad", cpu_time_millis=-1),
        row("dup", end_time=after(1)),
        row("dup", end_time=after(2)),
        failed("cancel", "USER_CANCELED"),
        row("curated", resource_group_id="global.curated.etl"),
        row("analyze", query_type="ANALYZE"),
        raw_row(query_id="b1", query=text, create_time=at(0)),
        raw_row(query_id="b2", query=text, create_time=at(10)),
    ]
    result = load(tmp_path, rows)
    metrics = result.metrics
    steps = metrics["steps"]
    assert list(steps) == STEPS
    counts = [steps[name]["rows"] for name in STEPS]
    assert counts == [16, 15, 15, 14, 13, 12, 11, 10, 9]
    assert all(a >= b for a, b in itertools.pairwise(counts))
    assert counts[-1] == metrics["rows_labeled"] == result.labeled.height
    assert steps["0_read"]["heavy_share"] is None
    assert steps["5_complete"]["heavy_share"] == round(1 / 12, 6)
    assert steps["8_dedup_burst"]["heavy_share"] == metrics["heavy_share"] == round(1 / 9, 6)
    dropped = metrics["dropped"]
    accounted = (
        dropped["outside_window"]
        + dropped["sampled_out"]
        + metrics["quarantined"]
        + dropped["duplicate_query_id"]
        + sum(dropped["failed_truncated"].values())
        + dropped["workload"]
        + sum(dropped["query_type"].values())
        + dropped["duplicate_burst"]
    )
    assert accounted + metrics["rows_labeled"] == metrics["rows_read"]


def test_labeled_output_columns_order_and_dates(tmp_path: Path) -> None:
    rows = [
        row("late", create_time=datetime(2025, 6, 2, 23, 59, tzinfo=UTC)),
        row("b", create_time=at(0)),
        row("a", create_time=at(0)),
    ]
    labeled = load(tmp_path, rows).labeled
    assert labeled.columns == [*RAW_SCHEMA, "is_heavy", "heavy_reason", "workload", "event_date"]
    assert set(LABEL_COLUMNS) <= set(labeled.columns)
    assert labeled.schema["event_date"] == pl.Date
    assert labeled["query_id"].to_list() == ["a", "b", "late"]  # sorted by create_time, id
    assert labeled["event_date"].to_list() == [date(2025, 6, 1), date(2025, 6, 1), date(2025, 6, 2)]


def test_a_window_with_no_data_is_named(tmp_path: Path) -> None:
    outside = [row("outside", create_time=datetime(2025, 8, 1, tzinfo=UTC))]
    with pytest.raises(EmptyWindowError, match=r"window 2025-06-01\.\.2025-06-02 \(1 rows read\)"):
        load(tmp_path, outside)
    assert issubclass(EmptyWindowError, PipelineError)


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"not parquet at all",
        lambda data: data[: len(data) // 2],  # no footer
        # the footer is intact, so only reading the pages finds it
        lambda data: data[:4] + bytes([0xAB]) * (len(data) // 2 - 4) + data[len(data) // 2 :],
    ],
    ids=["garbage", "truncated", "corrupt-pages"],
)
def test_a_corrupt_raw_file_is_named(tmp_path: Path, damage) -> None:
    raw_dir = tmp_path / "raw"
    rows = [row(f"q{i:04d}", query=f"SELECT {i} FROM hive.sales.orders") for i in range(2000)]
    write_parquet(raw_frame(rows), raw_dir / "a-good.parquet")
    write_parquet(raw_frame(rows), raw_dir / "b-bad.parquet")
    bad = raw_dir / "b-bad.parquet"
    bad.write_bytes(damage(bad.read_bytes()))
    params = params_for(raw_dir)
    with pytest.raises(UnreadableFileError, match=r"raw log file .*b-bad\.parquet cannot be read"):
        run_load(params.data_loading, params.filters)


def sample_rows(n: int) -> list[dict[str, Any]]:
    return [row(f"20250601_{i:06d}_00000_smpl", create_time=at(i)) for i in range(n)]


def test_sampling_is_deterministic_and_about_the_fraction(tmp_path: Path) -> None:
    n, fraction = 2_000, 0.5
    rows = sample_rows(n)
    sections = {"data_loading": {"sample_fraction": fraction, "sample_seed": 7}}
    first = load(tmp_path / "a", rows, **sections)
    second = load(tmp_path / "b", rows, **sections)
    kept = ids(first.labeled)
    assert kept == ids(second.labeled)
    tolerance = 4 * math.sqrt(n * fraction * (1 - fraction))  # 4 sigma: ~89 rows
    assert abs(len(kept) - n * fraction) < tolerance
    assert first.metrics["dropped"]["sampled_out"] == n - len(kept)
    assert first.metrics["steps"]["2_sample"]["rows"] == len(kept)
    expected = sorted(r["query_id"] for r in rows if unit_hash(r["query_id"], 7) < fraction)
    assert kept == expected

    other_seed = load(tmp_path / "c", rows, data_loading={"sample_fraction": fraction})
    assert ids(other_seed.labeled) != kept


def test_smaller_fraction_keeps_a_subset(tmp_path: Path) -> None:
    rows = sample_rows(400)
    half = set(
        load(tmp_path / "a", rows, data_loading={"sample_fraction": 0.5}).labeled["query_id"]
    )
    tenth = set(
        load(tmp_path / "b", rows, data_loading={"sample_fraction": 0.1}).labeled["query_id"]
    )
    assert tenth < half


def test_sampling_keeps_null_ids_for_quarantine(tmp_path: Path) -> None:
    rows = [*sample_rows(20), row(None)]
    result = load(tmp_path, rows, data_loading={"sample_fraction": 0.1})
    assert result.metrics["quarantine_by_reason"] == {"null_query_id": 1}


def test_missing_raw_directory_names_the_param(tmp_path: Path) -> None:
    params = params_for(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"nowhere.* data_loading\.raw_path"):
        run_load(params.data_loading, params.filters)


def test_empty_raw_directory_names_the_param(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "notes.txt").write_text("no parquet here")
    params = params_for(tmp_path / "raw")
    with pytest.raises(FileNotFoundError, match=r"no parquet files .*data_loading\.raw_path"):
        run_load(params.data_loading, params.filters)


def test_raw_file_missing_a_required_column_raises(tmp_path: Path) -> None:
    raw_dir = tmp_path / "raw"
    write_parquet(raw_frame([row("a")]).drop("cpu_time_millis"), raw_dir / "part-0.parquet")
    params = params_for(raw_dir)
    with pytest.raises(
        SchemaError, match=r"raw log file .*\.parquet is missing .*'cpu_time_millis'"
    ):
        run_load(params.data_loading, params.filters)


def test_raw_file_with_other_types_is_conformed(tmp_path: Path) -> None:
    raw_dir = tmp_path / "raw"
    frame = raw_frame([row("a"), row("b", cpu_time_millis=400_000)]).with_columns(
        pl.col("cpu_time_millis").cast(pl.Int32),
        pl.col("create_time").dt.convert_time_zone("Europe/Berlin"),
        pl.col("end_time").dt.replace_time_zone(None),
    )
    write_parquet(frame.drop("inputs", "client_tags"), raw_dir / "part-0.parquet")
    result = run_load(params_for(raw_dir).data_loading, params_for(raw_dir).filters)
    assert ids(result.labeled) == ["a", "b"]
    assert result.labeled["is_heavy"].to_list() == [False, True]
    assert result.labeled["create_time"].to_list() == [CREATED, CREATED]


# --------------------------------------------------------------------------- scan_raw / write


def test_scan_raw_reads_nested_files_and_skips_hidden_ones(tmp_path: Path) -> None:
    raw_dir = tmp_path / "raw"
    write_parquet(raw_frame([row("a")]), raw_dir / "date=2025-06-01" / "part-0.parquet")
    write_parquet(raw_frame([row("b")]), raw_dir / "part-1.parquet")
    write_parquet(raw_frame([row("tmp")]), raw_dir / ".part-2.parquet.abc.tmp.parquet")
    frame = scan_raw(str(raw_dir)).collect()
    assert ids(frame) == ["a", "b"]
    assert "date" not in frame.columns  # no hive partition column is invented
    assert ids(scan_raw(str(raw_dir / "part-1.parquet")).collect()) == ["b"]


def test_several_raw_files_are_read_together(tmp_path: Path) -> None:
    raw_dir = tmp_path / "raw"
    write_parquet(raw_frame([row("a"), row("b")]), raw_dir / "2025-06-01.parquet")
    write_parquet(raw_frame([row("c", create_time=at(0, date(2025, 6, 2)))]), raw_dir / "x.parquet")
    result = run_load(params_for(raw_dir).data_loading, params_for(raw_dir).filters)
    assert ids(result.labeled) == ["a", "b", "c"]
    assert result.metrics["days"] == 2


def test_optional_column_absent_from_the_first_file_is_kept_from_later_files(
    tmp_path: Path,
) -> None:
    raw_dir = tmp_path / "raw"
    old = raw_frame([row("a")]).drop("error_code", "error_type", "failure_type")
    write_parquet(old, raw_dir / "2025-06-01.parquet")
    write_parquet(raw_frame([failed("b", "EXCEEDED_CPU_LIMIT")]), raw_dir / "2025-06-02.parquet")
    result = run_load(params_for(raw_dir).data_loading, params_for(raw_dir).filters)
    assert result.metrics["quarantined"] == 0
    assert ids(result.labeled) == ["a", "b"]


def test_integer_width_may_differ_between_files(tmp_path: Path) -> None:
    raw_dir = tmp_path / "raw"
    write_parquet(raw_frame([row("a")]), raw_dir / "a.parquet")
    narrow = raw_frame([row("b")]).with_columns(pl.col("cpu_time_millis").cast(pl.Int32))
    write_parquet(narrow, raw_dir / "b.parquet")
    result = run_load(params_for(raw_dir).data_loading, params_for(raw_dir).filters)
    assert ids(result.labeled) == ["a", "b"]


def test_write_by_day_partitions_by_event_date(tmp_path: Path) -> None:
    rows = [
        row("a", create_time=at(0)),
        row("b", create_time=at(0, date(2025, 6, 2))),
        row("c", create_time=at(60)),
    ]
    labeled = load(tmp_path, rows).labeled
    out = tmp_path / "labeled"
    write_by_day(labeled, out)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet"))
    assert files == ["date=2025-06-01/part-0.parquet", "date=2025-06-02/part-0.parquet"]
    first = pl.read_parquet(out / "date=2025-06-01" / "part-0.parquet")
    assert first["query_id"].to_list() == ["a", "c"]
    assert first.schema == labeled.schema
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temp files left


# --------------------------------------------------------------------------- minimal logs


def write_log(tmp_path: Path, frame: pl.DataFrame) -> Path:
    raw_dir = tmp_path / "raw"
    write_parquet(frame, raw_dir / "part-0.parquet")
    return raw_dir


def test_a_log_with_only_the_required_columns_loads_and_says_what_it_skipped(
    tmp_path: Path,
) -> None:
    rows = [
        row("select"),
        row("show", query="SHOW TABLES FROM hive.sales"),
        row("insert", query="INSERT INTO t SELECT * FROM hive.sales.orders"),
        row("delete", query="DELETE FROM hive.sales.orders WHERE id = 1"),
        failed("oom", "EXCEEDED_LOCAL_MEMORY_LIMIT", "INSUFFICIENT_RESOURCES"),
        failed("typo", "SYNTAX_ERROR"),
    ]
    minimal = raw_frame(rows).select(
        "query_id",
        "query",
        "user",
        "create_time",
        "cpu_time_millis",
        "peak_memory_bytes",
        "error_code",
    )
    params = params_for(write_log(tmp_path, minimal))
    result = run_load(params.data_loading, params.filters)
    types = dict(zip(result.labeled["query_id"], result.labeled["query_type"], strict=True))
    assert types == {"select": "SELECT", "show": "DESCRIBE", "insert": "INSERT", "oom": "SELECT"}
    assert result.metrics["dropped"]["query_type"] == {"DELETE": 1}
    assert result.metrics["dropped"]["failed_truncated"] == {"SYNTAX_ERROR": 1}
    assert result.labeled.filter(pl.col("query_id") == "oom")["heavy_reason"].item() == (
        "resource_error"
    )
    assert result.metrics["query_type_derived"] == 5
    assert set(result.metrics["skipped"]) == {"query_state", "curated_filter", "query_type"}
    assert "resource_group_id" in result.metrics["absent_columns"]


def test_all_null_optional_columns_count_as_absent(tmp_path: Path) -> None:
    rows = [row("a", resource_group_id="global.curated.x"), row("b")]
    frame = raw_frame(rows).with_columns(
        pl.lit(None).alias(name)
        for name in ("resource_group_id", "schema", "error_code", "error_type", "query_type")
    )
    params = params_for(write_log(tmp_path, frame))
    result = run_load(params.data_loading, params.filters)
    assert ids(result.labeled) == ["a", "b"]  # no curated filter without its column
    assert {"resource_error_label", "curated_filter", "query_type"} <= set(
        result.metrics["skipped"]
    )


def test_keeping_curated_queries_needs_the_curated_column(tmp_path: Path) -> None:
    frame = raw_frame([row("a")]).drop("resource_group_id")
    params = params_for(write_log(tmp_path, frame), filters={"keep_workload": "CURATED"})
    with pytest.raises(
        SchemaError, match=r"keep_workload=CURATED needs column 'resource_group_id'"
    ):
        run_load(params.data_loading, params.filters)


def test_the_curated_column_must_be_a_text_column_of_the_log() -> None:
    with pytest.raises(ParamsError, match=r"filters.*curated_column='pool'.*not a text column"):
        parse_params({"filters": {"curated_column": "pool"}})


def test_log_days_reads_the_first_and_last_day(tmp_path: Path) -> None:
    rows = [
        row("a", create_time=datetime(2025, 6, 3, 5, tzinfo=UTC)),
        row("b", create_time=datetime(2025, 6, 9, 23, tzinfo=UTC)),
    ]
    assert log_days(str(write_log(tmp_path, raw_frame(rows)))) == (
        date(2025, 6, 3),
        date(2025, 6, 9),
    )
