"""The raw Trino query log: one schema, one validator.

Every reader of raw data (the ``load`` stage, ``query-predictor ingest``, the generator's
writer, tests) goes through this module, so a column is named, typed and checked in one
place. Columns follow Trino's ``QueryCompletedEvent`` as the MySQL/HTTP/Kafka event
listeners persist it, in snake_case.

Two kinds of problems are told apart:

* a *file* problem (a required column is missing, or has a type that cannot be converted)
  raises :class:`SchemaError` naming the column, because no row can be trusted;
* a *row* problem (null id, negative CPU, end before create...) quarantines that row with a
  reason, so one bad event never stops the stage and never vanishes silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

__all__ = [
    "QUARANTINE_REASON",
    "RAW_COLUMNS",
    "RAW_SCHEMA",
    "Column",
    "SchemaError",
    "conform",
    "split_valid",
]

UTC_TS = pl.Datetime("us", "UTC")
STR = pl.String
INT = pl.Int64


@dataclass(frozen=True)
class Column:
    """One raw-log column: its name, polars type, whether a reader needs it, and meaning."""

    name: str
    dtype: pl.DataType
    required: bool
    doc: str


RAW_COLUMNS: tuple[Column, ...] = (
    Column("query_id", STR, True, "Trino query id, e.g. 20250601_101512_00042_x7k2p"),
    Column("query_state", STR, True, "FINISHED or FAILED"),
    Column("query", STR, True, "SQL text as submitted"),
    Column("query_type", STR, True, "Trino QueryType: SELECT, INSERT, DESCRIBE, EXPLAIN..."),
    Column("update_type", STR, False, "e.g. INSERT, CREATE TABLE, SET SESSION; null for reads"),
    Column("user", STR, True, "session user"),
    Column("principal", STR, False, "authenticated principal"),
    Column("source", STR, False, "client-declared source: superset, trino-cli, airflow..."),
    Column("client_info", STR, False, "free-form client info, often JSON"),
    Column("client_tags", pl.List(STR), False, "client tags"),
    Column("catalog", STR, False, "session default catalog"),
    Column("schema", STR, False, "session default schema"),
    Column("resource_group_id", STR, True, "dotted resource group, e.g. global.adhoc.analysts"),
    Column("session_properties", STR, False, "session properties as a JSON object"),
    Column("environment", STR, False, "Trino node.environment"),
    Column("server_version", STR, False, "Trino version of the coordinator"),
    Column("create_time", UTC_TS, True, "when the coordinator received the query (UTC)"),
    Column("execution_start_time", UTC_TS, False, "when execution started (UTC)"),
    Column("end_time", UTC_TS, False, "when the query finished or failed (UTC)"),
    Column("cpu_time_millis", INT, True, "total CPU time over all tasks, ms, >= 0"),
    Column("wall_time_millis", INT, False, "wall time, ms, >= 0"),
    Column("queued_time_millis", INT, False, "time queued in its resource group, ms, >= 0"),
    Column("peak_memory_bytes", INT, True, "peak user memory of the query, bytes, >= 0"),
    Column("peak_task_memory_bytes", INT, False, "peak user memory of one task, bytes, >= 0"),
    Column("physical_input_bytes", INT, False, "bytes read from storage, >= 0"),
    Column("physical_input_rows", INT, False, "rows read from storage, >= 0"),
    Column("total_bytes", INT, False, "bytes processed by source operators, >= 0"),
    Column("total_rows", INT, False, "rows processed by source operators, >= 0"),
    Column("output_bytes", INT, False, "bytes returned to the client, >= 0"),
    Column("output_rows", INT, False, "rows returned to the client, >= 0"),
    Column("written_bytes", INT, False, "bytes written by INSERT/CTAS, >= 0"),
    Column("written_rows", INT, False, "rows written by INSERT/CTAS, >= 0"),
    Column("cumulative_memory", pl.Float64, False, "integral of memory over time, byte-seconds"),
    Column("completed_splits", INT, False, "splits completed"),
    Column("error_code", STR, False, "Trino error code name, e.g. EXCEEDED_LOCAL_MEMORY_LIMIT"),
    Column(
        "error_type", STR, False, "USER_ERROR, INTERNAL_ERROR, INSUFFICIENT_RESOURCES, EXTERNAL"
    ),
    Column("failure_type", STR, False, "Java exception class of the failure"),
    Column("failure_message", STR, False, "failure message"),
    Column("inputs", pl.List(STR), False, "tables read, as catalog.schema.table"),
)

RAW_SCHEMA: dict[str, pl.DataType] = {c.name: c.dtype for c in RAW_COLUMNS}
_NON_NEGATIVE = [c.name for c in RAW_COLUMNS if c.dtype in (INT, pl.Float64)]
QUERY_STATES = ("FINISHED", "FAILED")
QUARANTINE_REASON = "quarantine_reason"
# A single query burning more than 30 CPU-days, or holding more than 1 PiB, is a corrupt
# record (unit mix-up, overflow), not a workload.
MAX_CPU_MILLIS = 30 * 24 * 3600 * 1000
MAX_MEMORY_BYTES = 1 << 50


class SchemaError(ValueError):
    """The raw log as a whole cannot be read: a required column is missing or mistyped."""


def conform(frame: pl.LazyFrame | pl.DataFrame, *, origin: str = "raw log") -> pl.LazyFrame:
    """Return ``frame`` with every schema column present and typed as in :data:`RAW_SCHEMA`.

    Missing optional columns are added as nulls; extra columns are dropped. Integer widths,
    naive or zoned timestamps (naive ones are taken as UTC), ISO-8601 timestamp strings and
    binary text are converted. A value that does not convert (a malformed timestamp string)
    becomes null, and in a required column :func:`split_valid` then quarantines the row as
    ``null_<column>``; bytes that are not UTF-8 are decoded with U+FFFD replacements.

    Raises
    ------
    SchemaError
        A required column is missing, or a column's type cannot be converted; the message
        names the column, the type found and the type expected.
    """
    lazy = frame.lazy()
    found = lazy.collect_schema()
    missing = [c.name for c in RAW_COLUMNS if c.required and c.name not in found]
    if missing:
        raise SchemaError(
            f"{origin} is missing required column(s) {', '.join(repr(m) for m in missing)}; "
            f"found columns: {', '.join(found.names()) or '(none)'}. "
            "See query_predictor/core/schema.py for the raw log schema."
        )
    exprs = []
    for column in RAW_COLUMNS:
        if column.name not in found:
            exprs.append(pl.lit(None, dtype=column.dtype).alias(column.name))
        else:
            exprs.append(_convert(column, found[column.name], origin))
    return lazy.select(exprs)


def _convert(column: Column, have: pl.DataType, origin: str) -> pl.Expr:
    name, want = column.name, column.dtype
    col = pl.col(name)
    if have == want:
        return col
    if want == UTC_TS:
        if isinstance(have, pl.Datetime):
            if have.time_zone is None:
                return col.dt.replace_time_zone("UTC").dt.cast_time_unit("us")
            return col.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
        if have == pl.Date:
            return col.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        if have == STR:
            return _parse_iso(col)
    elif want == STR and have == pl.Binary:
        # Parquet written by other tools may hold text as bytes. Invalid UTF-8 is replaced
        # with U+FFFD rather than failing the file: the row stays, its bad bytes do not.
        return col.map_elements(_decode_lossy, return_dtype=STR)
    elif want == STR and isinstance(have, pl.Categorical | pl.Enum):
        return col.cast(STR)
    elif (want in (INT, pl.Float64) and (have.is_integer() or have.is_float())) or (
        isinstance(want, pl.List) and isinstance(have, pl.List)
    ):
        return col.cast(want, strict=False)
    raise SchemaError(
        f"{origin}: column {name!r} has type {have}, expected {want} ({column.doc}); "
        "convert it before loading, or check that the right files are being read."
    )


# ISO-8601 with "T" or " ", optional fraction, "Z", an offset or no zone (taken as UTC). Each
# row is parsed on its own: one column may mix styles.
_ISO_FORMATS = ("%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d")


def _parse_iso(col: pl.Expr) -> pl.Expr:
    text = col.str.strip_chars().str.replace("T", " ").str.replace(r"Z$", "+00:00")
    return pl.coalesce(
        text.str.to_datetime(format=f, time_unit="us", time_zone="UTC", strict=False)
        for f in _ISO_FORMATS
    )


def _decode_lossy(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


def _row_problems() -> list[tuple[str, pl.Expr]]:
    """(reason, condition) pairs, checked in order; a row gets the first reason that holds."""
    checks: list[tuple[str, pl.Expr]] = []
    for column in RAW_COLUMNS:
        if column.required:
            checks.append((f"null_{column.name}", pl.col(column.name).is_null()))
    checks.append(("empty_query", pl.col("query").str.strip_chars().str.len_bytes() == 0))
    checks.append(("bad_query_state", ~pl.col("query_state").is_in(QUERY_STATES)))
    for name in _NON_NEGATIVE:
        checks.append((f"negative_{name}", pl.col(name) < 0))
    checks.append(("absurd_cpu_time_millis", pl.col("cpu_time_millis") > MAX_CPU_MILLIS))
    checks.append(("absurd_peak_memory_bytes", pl.col("peak_memory_bytes") > MAX_MEMORY_BYTES))
    checks.append(("end_before_create", pl.col("end_time") < pl.col("create_time")))
    checks.append(
        (
            "failed_without_error_code",
            (pl.col("query_state") == "FAILED") & pl.col("error_code").is_null(),
        )
    )
    return checks


def quarantine_reason() -> pl.Expr:
    """Expression giving each row's first problem, or null for a valid row."""
    expr: pl.Expr = pl.lit(None, dtype=STR)
    for reason, condition in reversed(_row_problems()):
        expr = pl.when(condition.fill_null(False)).then(pl.lit(reason)).otherwise(expr)
    return expr.alias(QUARANTINE_REASON)


def split_valid(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a conformed frame into (valid rows, quarantined rows with ``quarantine_reason``)."""
    tagged = frame.with_columns(quarantine_reason())
    bad = tagged.filter(pl.col(QUARANTINE_REASON).is_not_null())
    good = tagged.filter(pl.col(QUARANTINE_REASON).is_null()).drop(QUARANTINE_REASON)
    return good, bad
