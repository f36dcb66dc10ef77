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

from .errors import PipelineError

__all__ = [
    "FAILURE_COLUMNS",
    "QUARANTINE_REASON",
    "RAW_COLUMNS",
    "RAW_SCHEMA",
    "Column",
    "SchemaError",
    "absent_columns",
    "conform",
    "derive_state",
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
    Column("query_state", STR, False, "FINISHED or FAILED; derived from error_code when absent"),
    Column("query", STR, True, "SQL text as submitted"),
    Column(
        "query_type",
        STR,
        False,
        "Trino QueryType: SELECT, INSERT, DESCRIBE, EXPLAIN...; derived from the SQL when absent",
    ),
    Column("update_type", STR, False, "e.g. INSERT, CREATE TABLE, SET SESSION; null for reads"),
    Column("user", STR, True, "session user"),
    Column("principal", STR, False, "authenticated principal"),
    Column("source", STR, False, "client-declared source: superset, trino-cli, airflow..."),
    Column("client_info", STR, False, "free-form client info, often JSON"),
    Column("client_tags", pl.List(STR), False, "client tags"),
    Column("catalog", STR, False, "session default catalog"),
    Column("schema", STR, False, "session default schema"),
    Column("resource_group_id", STR, False, "dotted resource group, e.g. global.adhoc.analysts"),
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


class SchemaError(PipelineError, ValueError):
    """The raw log as a whole cannot be read: a required column is missing or mistyped."""


# A log says whether a query failed through its state or its error code: one is enough.
FAILURE_COLUMNS = ("query_state", "error_code")


def conform(frame: pl.LazyFrame | pl.DataFrame, *, origin: str = "raw log") -> pl.LazyFrame:
    """Return ``frame`` with every schema column present and typed as in :data:`RAW_SCHEMA`.

    Missing optional columns, and columns with no values at all (parquet type Null), are
    added as typed nulls; extra columns are dropped. Integer widths, naive or zoned
    timestamps (naive ones are taken as UTC), ISO-8601 timestamp strings and binary text are
    converted. A value that does not convert (a malformed timestamp string) becomes null, and
    in a required column :func:`split_valid` then quarantines the row as ``null_<column>``;
    bytes that are not UTF-8 are decoded with U+FFFD replacements.

    Raises
    ------
    SchemaError
        A required column is missing or has no values, neither ``query_state`` nor
        ``error_code`` is there, or a column's type cannot be converted; the message names
        the column, the type found and the type expected.
    """
    lazy = frame.lazy()
    found = {name: dtype for name, dtype in lazy.collect_schema().items()}
    empty = [c.name for c in RAW_COLUMNS if c.required and found.get(c.name) == pl.Null]
    if empty:
        raise SchemaError(
            f"{origin}: required column(s) {', '.join(repr(m) for m in empty)} have no values "
            "(parquet type Null); see docs/bring-your-own-logs.md for the required columns"
        )
    present = {name for name, dtype in found.items() if dtype != pl.Null}
    missing = [c.name for c in RAW_COLUMNS if c.required and c.name not in present]
    if not any(name in present for name in FAILURE_COLUMNS):
        missing.append(" or ".join(repr(name) for name in FAILURE_COLUMNS))
    if missing:
        raise SchemaError(
            f"{origin} is missing required column(s) "
            f"{', '.join(m if ' or ' in m else repr(m) for m in missing)}; "
            f"found columns: {', '.join(found) or '(none)'}. "
            "See docs/bring-your-own-logs.md for the required and optional columns."
        )
    exprs = []
    for column in RAW_COLUMNS:
        if column.name not in present:
            exprs.append(pl.lit(None, dtype=column.dtype).alias(column.name))
        else:
            exprs.append(_convert(column, found[column.name], origin))
    return lazy.select(exprs)


def absent_columns(frame: pl.DataFrame) -> tuple[str, ...]:
    """The optional columns of a conformed frame that hold no value at all (schema order).

    The pipeline treats such a column as missing from the log: the rules and steps that need
    it are skipped, and the load stage reports which."""
    if frame.is_empty():
        return ()
    counts = frame.select(pl.col(c.name).null_count() for c in RAW_COLUMNS if not c.required)
    return tuple(name for name in counts.columns if counts[name][0] == frame.height)


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


def _row_problems(absent: tuple[str, ...]) -> list[tuple[str, pl.Expr]]:
    """(reason, condition) pairs, checked in order; a row gets the first reason that holds.
    Rules on a column of ``absent`` (see :func:`absent_columns`) are not checked."""
    checks: list[tuple[str, pl.Expr]] = []
    for column in RAW_COLUMNS:
        if column.required:
            checks.append((f"null_{column.name}", pl.col(column.name).is_null()))
    if "query_state" not in absent:
        checks.append(("null_query_state", pl.col("query_state").is_null()))
    checks.append(("empty_query", pl.col("query").str.strip_chars().str.len_bytes() == 0))
    checks.append(("bad_query_state", ~pl.col("query_state").is_in(QUERY_STATES)))
    for name in _NON_NEGATIVE:
        checks.append((f"negative_{name}", pl.col(name) < 0))
    checks.append(("absurd_cpu_time_millis", pl.col("cpu_time_millis") > MAX_CPU_MILLIS))
    checks.append(("absurd_peak_memory_bytes", pl.col("peak_memory_bytes") > MAX_MEMORY_BYTES))
    checks.append(("end_before_create", pl.col("end_time") < pl.col("create_time")))
    if "error_code" not in absent:
        checks.append(
            (
                "failed_without_error_code",
                (pl.col("query_state") == "FAILED") & pl.col("error_code").is_null(),
            )
        )
    return checks


def quarantine_reason(absent: tuple[str, ...] = ()) -> pl.Expr:
    """Expression giving each row's first problem, or null for a valid row."""
    expr: pl.Expr = pl.lit(None, dtype=STR)
    for reason, condition in reversed(_row_problems(absent)):
        expr = pl.when(condition.fill_null(False)).then(pl.lit(reason)).otherwise(expr)
    return expr.alias(QUARANTINE_REASON)


def derive_state(absent: tuple[str, ...]) -> pl.Expr:
    """``query_state`` as the log gives it, or, in a log without states, FAILED exactly when
    the query has an error code."""
    if "query_state" not in absent:
        return pl.col("query_state")
    failed = pl.col("error_code").is_not_null()
    return pl.when(failed).then(pl.lit("FAILED")).otherwise(pl.lit("FINISHED")).alias("query_state")


def split_valid(
    frame: pl.DataFrame, *, absent: tuple[str, ...] = ()
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a conformed frame into (valid rows, quarantined rows with ``quarantine_reason``).

    ``absent`` names optional columns the log does not have (:func:`absent_columns`): their
    rules are skipped, and a missing ``query_state`` is derived from ``error_code``."""
    tagged = frame.with_columns(derive_state(absent)).with_columns(quarantine_reason(absent))
    bad = tagged.filter(pl.col(QUARANTINE_REASON).is_not_null())
    good = tagged.filter(pl.col(QUARANTINE_REASON).is_null()).drop(QUARANTINE_REASON)
    return good, bad
