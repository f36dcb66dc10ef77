"""Hand-built raw query log rows for tests: one valid row, then override what matters."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from query_predictor.core.schema import RAW_SCHEMA

CREATED = datetime(2025, 6, 1, 10, 15, 12, tzinfo=UTC)


def raw_row(**overrides: Any) -> dict[str, Any]:
    """One valid, light, FINISHED raw-log row with every :data:`RAW_SCHEMA` column.

    ``create_time`` moves ``execution_start_time`` and ``end_time`` with it unless those are
    overridden too, so a row never ends before it was created by accident.
    """
    created = overrides.get("create_time", CREATED)
    row: dict[str, Any] = {
        "query_id": "20250601_101512_00001_aaaaa",
        "query_state": "FINISHED",
        "query": "SELECT region, count(*) FROM hive.sales.orders GROUP BY 1",
        "query_type": "SELECT",
        "update_type": None,
        "user": "alice",
        "principal": "alice@EXAMPLE.COM",
        "source": "superset",
        "client_info": None,
        "client_tags": ["adhoc"],
        "catalog": "hive",
        "schema": "sales",
        "resource_group_id": "global.adhoc.analysts",
        "session_properties": "{}",
        "environment": "production",
        "server_version": "435",
        "create_time": created,
        "execution_start_time": None if created is None else created + timedelta(seconds=1),
        "end_time": None if created is None else created + timedelta(seconds=5),
        "cpu_time_millis": 1_000,
        "wall_time_millis": 4_000,
        "queued_time_millis": 10,
        "peak_memory_bytes": 64 * 2**20,
        "peak_task_memory_bytes": 16 * 2**20,
        "physical_input_bytes": 2**30,
        "physical_input_rows": 1_000_000,
        "total_bytes": 2**30,
        "total_rows": 1_000_000,
        "output_bytes": 2_048,
        "output_rows": 12,
        "written_bytes": 0,
        "written_rows": 0,
        "cumulative_memory": 1.5e9,
        "completed_splits": 42,
        "error_code": None,
        "error_type": None,
        "failure_type": None,
        "failure_message": None,
        "inputs": ["hive.sales.orders"],
    }
    unknown = set(overrides) - set(row)
    if unknown:
        raise KeyError(f"not raw log columns: {sorted(unknown)}")
    row.update(overrides)
    return row


def failed_row(error_code: str, error_type: str = "USER_ERROR", **overrides: Any) -> dict[str, Any]:
    """A FAILED row with ``error_code`` set (valid for :func:`split_valid`)."""
    return raw_row(
        query_state="FAILED",
        error_code=error_code,
        error_type=error_type,
        failure_type="io.trino.spi.TrinoException",
        failure_message=error_code,
        **overrides,
    )


def raw_frame(rows: Iterable[dict[str, Any]]) -> pl.DataFrame:
    """Rows as a frame typed exactly as :data:`RAW_SCHEMA` (empty input -> empty frame)."""
    return pl.DataFrame(list(rows), schema=RAW_SCHEMA, orient="row")
