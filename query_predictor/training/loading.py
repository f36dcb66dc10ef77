"""Stage ``load``: read the raw Trino log, validate, label, filter and deduplicate.

    python stages/load.py

Order of steps, with the row count recorded after each in ``metrics/load.json``:

1. ``read``: every parquet file under ``data_loading.raw_path`` (local or ``s3://``).
2. ``window``: queries created (UTC) between ``start_date`` and ``end_date`` inclusive.
3. ``sample``: a deterministic hash-based ``sample_fraction`` of ``query_id`` (quick runs).
4. ``valid``: rows breaking the schema's row rules go to ``data/quarantine`` with a reason.
5. ``unique_id``: exact ``query_id`` duplicates (at-least-once delivery from Kafka or a
   re-ingested file) keep one record, the most complete one.
6. ``complete``: failures for reasons that say nothing about the query's cost (syntax errors,
   cancels, metastore outages, queue full...) stopped early, so their cost is truncated and
   their label unknown: dropped, counted by error code. If the truncated cost already
   crossed a threshold the query is heavy whatever happened next: kept.
7. ``workload``: ``CURATED`` vs ``NON-CURATED`` from ``filters.curated_column`` matched against
   ``filters.curated_pattern``; only ``filters.keep_workload`` stays.
8. ``query_type``: only ``filters.query_types`` stay.
9. ``dedup_burst``: the same user submitting the same text again within
   ``filters.dedup_window_seconds`` of the previous submission (client retries, a dashboard
   double-firing) is one decision for a router, not several training rows: keep the first.
   Identical text hours or days apart is a recurring query and stays.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from query_predictor.core.classifier import QueryClassifier
from query_predictor.core.errors import EmptyWindowError, MissingInputError, UnreadableFileError
from query_predictor.core.label import LabelRule, workload
from query_predictor.core.schema import (
    QUARANTINE_REASON,
    SchemaError,
    conform,
    split_valid,
)
from query_predictor.params import DataLoading, Filters
from query_predictor.storage import is_s3, s3_storage_options, write_parquet

from .hashing import keep_fraction

if TYPE_CHECKING:
    from .partitions import Runner

log = logging.getLogger(__name__)

LABEL_COLUMNS = ("workload", "is_heavy", "heavy_reason", "event_date")


@dataclass
class LoadResult:
    labeled: pl.DataFrame
    quarantined: pl.DataFrame
    metrics: dict[str, object]


def list_raw_files(path: str, *, storage_options: dict[str, str] | None = None) -> list[str]:
    """Every ``*.parquet`` under ``path`` (a file, a directory or an ``s3://`` prefix), sorted."""
    if is_s3(path):
        import fsspec  # installed with dvc-s3 (s3fs); only needed for S3 sources

        options = dict(storage_options or {})
        client: dict[str, str] = {}
        if "aws_endpoint_url" in options:
            client["endpoint_url"] = options["aws_endpoint_url"]
        if "aws_region" in options:
            client["region_name"] = options["aws_region"]
        fs = fsspec.filesystem("s3", client_kwargs=client)
        if path.endswith(".parquet"):
            return [path]
        scheme = path.split("://", 1)[0]
        found = fs.glob(f"{path.rstrip('/')}/**/*.parquet")
        files = sorted(f"{scheme}://{p}" for p in found)
    else:
        local = Path(path)
        if local.is_file():
            return [str(local)]
        if not local.is_dir():
            raise MissingInputError(
                f"raw log path {path!r} does not exist; set data_loading.raw_path in "
                "params.yaml or run `dvc repro generate`"
            )
        files = sorted(str(p) for p in local.rglob("*.parquet") if not p.name.startswith("."))
    if not files:
        raise MissingInputError(f"no parquet files under {path!r} (data_loading.raw_path)")
    return files


def scan_raw(
    path: str, *, endpoint_url: str | None = None, region: str | None = None
) -> pl.LazyFrame:
    """Lazily scan the raw log under ``path``, each file conformed to the schema on its own.

    Files written at different times may differ (a column added later, Int32 versus Int64):
    conforming file by file keeps every column of every file and names the file at fault.
    """
    options = s3_storage_options(endpoint_url=endpoint_url, region=region) if is_s3(path) else {}
    frames = []
    for f in list_raw_files(path, storage_options=options):
        try:
            scanned = pl.scan_parquet(f, hive_partitioning=False, storage_options=options or None)
            frames.append(conform(scanned, origin=f"raw log file {f}"))
        except (pl.exceptions.PolarsError, OSError) as exc:  # a bad footer shows here
            raise unreadable(f, exc) from None
    return pl.concat(frames, how="vertical")


def unreadable(path: str, exc: BaseException) -> UnreadableFileError:
    """The one-line error naming a raw file that polars cannot read, and why."""
    reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return UnreadableFileError(
        f"raw log file {path} cannot be read ({reason}); replace or remove it, or point "
        "data_loading.raw_path elsewhere"
    )


def log_days(
    path: str, *, endpoint_url: str | None = None, region: str | None = None
) -> tuple[dt.date, dt.date]:
    """The first and last UTC day of ``create_time`` in the raw log under ``path``."""
    days = (
        scan_raw(path, endpoint_url=endpoint_url, region=region)
        .select(
            pl.col("create_time").dt.date().min().alias("first"),
            pl.col("create_time").dt.date().max().alias("last"),
        )
        .collect()
    )
    first, last = days["first"][0], days["last"][0]
    if first is None:
        raise SchemaError(f"raw log {path!r} has no create_time value: it holds no query")
    return first, last


def _counts(frame: pl.DataFrame, column: str) -> dict[str, int]:
    if frame.is_empty():
        return {}
    counted = frame.group_by(column).len().sort(column, nulls_last=True)
    return {str(k): int(v) for k, v in zip(counted[column], counted["len"], strict=True)}


def _heavy_share(frame: pl.DataFrame) -> float | None:
    if "is_heavy" not in frame.columns or frame.is_empty():
        return None
    return round(float(frame["is_heavy"].mean()), 6)  # type: ignore[arg-type]


def dedup_query_id(frame: pl.DataFrame) -> pl.DataFrame:
    """Keep one row per ``query_id``: the one that finished last, then the costliest."""
    ordered = frame.sort(
        ["query_id", "end_time", "cpu_time_millis", "peak_memory_bytes"],
        descending=[False, True, True, True],
        nulls_last=True,
    )
    return ordered.unique("query_id", keep="first", maintain_order=True)


def dedup_bursts(frame: pl.DataFrame, *, window_seconds: float) -> pl.DataFrame:
    """Drop a submission of the same text by the same user within ``window_seconds`` of the
    previous one (see the module docstring)."""
    if window_seconds <= 0 or frame.is_empty():
        return frame
    ordered = frame.sort(["user", "query", "create_time", "query_id"])
    gap = pl.col("create_time").diff().over(["user", "query"])
    keep = gap.is_null() | (gap > pl.duration(microseconds=int(window_seconds * 1e6)))
    return ordered.filter(keep)


def with_query_types(frame: pl.DataFrame) -> pl.DataFrame:
    """``query_type`` where the log has none, derived from the SQL text the way Trino maps
    statements to query types (:meth:`QueryClassifier.query_type`)."""
    missing = frame.filter(pl.col("query_type").is_null())["query"].unique()
    types = QueryClassifier().query_types(missing.to_list())
    lookup = pl.DataFrame(
        {"query": missing, "_derived_type": types}, schema_overrides={"_derived_type": pl.String}
    )
    return (
        frame.join(lookup, on="query", how="left", maintain_order="left")
        .with_columns(pl.coalesce("query_type", "_derived_type").alias("query_type"))
        .drop("_derived_type")
    )


def skipped_steps(absent: tuple[str, ...], filters: Filters) -> dict[str, str]:
    """The steps and rules this log cannot support, each with the reason (for the metrics
    and the summary); a step that the params require but the log cannot support fails."""
    skipped: dict[str, str] = {}
    if "query_state" in absent:
        skipped["query_state"] = "no query_state: FAILED is derived from error_code"
    if "error_code" in absent:
        skipped["resource_error_label"] = (
            "no error_code: failures cannot be told apart; a failed query is heavy only by "
            "its CPU or memory"
        )
    if filters.curated_column in absent:
        if filters.keep_workload == "CURATED":
            raise SchemaError(
                f"filters.keep_workload=CURATED needs column {filters.curated_column!r} "
                "(filters.curated_column), which has no values in this log; set "
                "filters.keep_workload to ALL or point filters.curated_column at another column"
            )
        skipped["curated_filter"] = (
            f"no {filters.curated_column}: every query counts as NON-CURATED, none is filtered"
        )
    if "query_type" in absent:
        skipped["query_type"] = "no query_type: derived from the SQL text"
    return skipped


def _tally(frame: pl.DataFrame, context: pl.Series | None) -> dict[str, object]:
    """Rows (and heavy rows, once labelled) of ``frame`` outside the context rows."""
    own = frame if context is None else frame.filter(~context)
    heavy = int(own["is_heavy"].sum()) if "is_heavy" in own.columns else None
    return {"rows": own.height, "heavy": heavy}


def load_rows(
    frame: pl.DataFrame,
    data: DataLoading,
    filters: Filters,
    *,
    absent: tuple[str, ...] = (),
    context_before: dt.datetime | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, object]]:
    """Steps 3-9 (module docstring) on one partition of the conformed raw log.

    ``frame`` holds the rows of one UTC day of ``create_time`` (or the rows without one)
    and, when ``context_before`` is set, the rows created in the ``dedup_window_seconds``
    before it: they go through the same steps so that a burst spanning midnight is seen,
    then are dropped from the output and from the counts (their own day counts them).
    Returns (labeled rows sorted by create_time and query_id, quarantined rows, counts);
    counts of partitions add up with :func:`merge_counts`. ``absent`` are the optional
    columns without a value in the whole window (:func:`absent_columns`: a property of the
    log, not of one day). Both engines call this function.
    """
    skipped = skipped_steps(absent, filters)
    frame = frame.sort(_CANONICAL, nulls_last=True, maintain_order=True)

    def context() -> pl.Series | None:
        if context_before is None:
            return None
        return (frame["create_time"] < context_before).fill_null(False)

    steps: dict[str, object] = {"window": _tally(frame, context())}
    dropped: dict[str, object] = {}
    before = frame.height
    frame = frame.filter(keep_fraction(frame, fraction=data.sample_fraction, seed=data.sample_seed))
    steps["sample"] = _tally(frame, context())
    dropped["sampled_out"] = int(steps["window"]["rows"]) - int(steps["sample"]["rows"])  # type: ignore[index]
    frame, quarantined = split_valid(frame, absent=absent)
    if context_before is not None:
        quarantined = quarantined.filter(
            ~(quarantined["create_time"] < context_before).fill_null(False)
        )
    steps["valid"] = _tally(frame, context())

    before = int(steps["valid"]["rows"])  # type: ignore[index]
    frame = dedup_query_id(frame)
    steps["unique_id"] = _tally(frame, context())
    dropped["duplicate_query_id"] = before - int(steps["unique_id"]["rows"])  # type: ignore[index]

    rule = LabelRule.from_params(data)
    frame = rule.apply(frame)
    own = frame if context_before is None else frame.filter(~context())  # type: ignore[operator]
    truncated = (pl.col("query_state") == "FAILED") & ~pl.col("is_heavy")
    failed_heavy = own.filter(
        (pl.col("query_state") == "FAILED") & pl.col("is_heavy") & ~rule.resource_failure()
    )
    dropped["failed_truncated"] = _counts(
        own.filter(truncated).with_columns(pl.col("error_code").fill_null("(no error code)")),
        "error_code",
    )
    frame = frame.filter(~truncated)
    steps["complete"] = _tally(frame, context())

    frame = frame.with_columns(workload=workload(filters))
    before = int(steps["complete"]["rows"])  # type: ignore[index]
    if filters.keep_workload != "ALL" and "curated_filter" not in skipped:
        frame = frame.filter(pl.col("workload") == filters.keep_workload)
    steps["workload"] = _tally(frame, context())
    dropped["workload"] = before - int(steps["workload"]["rows"])  # type: ignore[index]

    own = frame if context_before is None else frame.filter(~context())  # type: ignore[operator]
    derived = own["query_type"].null_count()
    if frame["query_type"].null_count():
        frame = with_query_types(frame)
        own = frame if context_before is None else frame.filter(~context())  # type: ignore[operator]
    types = pl.col("query_type").is_in(list(filters.query_types))
    dropped["query_type"] = _counts(own.filter(~types), "query_type")
    frame = frame.filter(types)
    steps["query_type"] = _tally(frame, context())

    before = int(steps["query_type"]["rows"])  # type: ignore[index]
    frame = dedup_bursts(frame, window_seconds=filters.dedup_window_seconds)
    if context_before is not None:
        frame = frame.filter(~context())  # type: ignore[operator]
    steps["dedup_burst"] = _tally(frame, None)
    dropped["duplicate_burst"] = before - frame.height

    frame = frame.with_columns(event_date=pl.col("create_time").dt.date()).sort(
        "create_time", "query_id"
    )
    heavy = frame.filter(pl.col("is_heavy"))
    counts: dict[str, object] = {
        "steps": steps,
        "dropped": dropped,
        "heavy_by_reason": _counts(heavy, "heavy_reason"),
        "quarantine_by_reason": _counts(quarantined, QUARANTINE_REASON),
        "failed_kept_as_heavy": failed_heavy.height,
        "query_type_derived": derived,
    }
    return frame, quarantined, counts


# A total order of raw rows: partitions reach this module in any order (files, Spark tasks).
_CANONICAL = [
    "create_time",
    "query_id",
    "end_time",
    "cpu_time_millis",
    "peak_memory_bytes",
    "user",
    "query",
]


def merge_counts(a: dict[str, object], b: dict[str, object]) -> dict[str, object]:
    """Add two :func:`load_rows` counts (nested dicts of integers; None stays None)."""
    out: dict[str, object] = dict(a)
    for key, value in b.items():
        mine = out.get(key)
        if isinstance(value, dict):
            out[key] = merge_counts(mine if isinstance(mine, dict) else {}, value)
        elif value is None:
            out.setdefault(key, None)
        else:
            out[key] = (mine or 0) + value  # type: ignore[operator]
    return out


def load_metrics(
    counts: dict[str, object],
    *,
    total: int,
    days: int,
    absent: tuple[str, ...],
    data: DataLoading,
    filters: Filters,
) -> dict[str, object]:
    """``metrics/load.json`` from the merged counts of every partition."""
    steps: dict[str, dict[str, object]] = {"0_read": {"rows": total, "heavy_share": None}}
    raw_steps: dict[str, dict[str, int | None]] = counts.get("steps", {})  # type: ignore[assignment]
    for i, name in enumerate(STEP_NAMES, start=1):
        step = raw_steps.get(name, {"rows": 0, "heavy": None})
        rows, heavy = int(step["rows"] or 0), step["heavy"]
        share = round(heavy / rows, 6) if heavy is not None and rows else None
        steps[f"{i}_{name}"] = {"rows": rows, "heavy_share": share}
    dropped: dict[str, object] = {"outside_window": total - int(steps["1_window"]["rows"])}  # type: ignore[arg-type]
    raw_dropped: dict[str, object] = counts.get("dropped", {})  # type: ignore[assignment]
    for key in DROP_NAMES:
        value = raw_dropped.get(key, {} if key in ("failed_truncated", "query_type") else 0)
        dropped[key] = _sorted(value) if isinstance(value, dict) else value
    labeled = steps[f"{len(STEP_NAMES)}_dedup_burst"]
    heavy_by_reason = _sorted(counts.get("heavy_by_reason", {}))  # type: ignore[arg-type]
    quarantine_by_reason = _sorted(counts.get("quarantine_by_reason", {}))  # type: ignore[arg-type]
    return {
        "rows_read": total,
        "rows_labeled": labeled["rows"],
        "heavy_count": sum(heavy_by_reason.values()),
        "heavy_share": labeled["heavy_share"],
        "heavy_by_reason": heavy_by_reason,
        "quarantined": sum(quarantine_by_reason.values()),
        "quarantine_by_reason": quarantine_by_reason,
        "failed_kept_as_heavy": int(counts.get("failed_kept_as_heavy", 0)),  # type: ignore[arg-type]
        "dropped": dropped,
        "steps": steps,
        "days": days,
        "absent_columns": list(absent),
        "skipped": skipped_steps(absent, filters),
        "query_type_derived": int(counts.get("query_type_derived", 0)),  # type: ignore[arg-type]
        "window": {"start_date": str(data.start_date), "end_date": str(data.end_date)},
    }


STEP_NAMES = (
    "window",
    "sample",
    "valid",
    "unique_id",
    "complete",
    "workload",
    "query_type",
    "dedup_burst",
)
DROP_NAMES = (
    "sampled_out",
    "duplicate_query_id",
    "failed_truncated",
    "workload",
    "query_type",
    "duplicate_burst",
)


def _sorted(counts: dict[str, int]) -> dict[str, int]:
    """Keys in the order :func:`_counts` gives them (sorted, the null key "None" last)."""
    return dict(sorted(counts.items(), key=lambda kv: (kv[0] == "None", kv[0])))


def run_load(data: DataLoading, filters: Filters, *, runner: Runner | None = None) -> LoadResult:
    """Run steps 1-9 (module docstring) day by day with ``runner`` (default: polars in this
    process) and return everything in memory. The load stage writes day by day instead
    (:mod:`.partitions`)."""
    from .partitions import PolarsRunner, load_partitions

    parts: list[tuple[pl.DataFrame, pl.DataFrame]] = []
    outcome = load_partitions(data, filters, runner=runner or PolarsRunner(), keep=parts.append)
    outcome.store.remove()
    labeled = [p[0] for p in parts]
    frame = pl.concat(labeled) if labeled else pl.DataFrame()
    quarantined = pl.concat([p[1] for p in parts])
    if frame.is_empty():
        raise EmptyWindowError(
            f"no query of {data.raw_path} in the window {data.start_date}..{data.end_date} is "
            f"left after the load steps (dropped: {outcome.metrics['dropped']}); check "
            "data_loading and filters"
        )
    return LoadResult(frame, quarantined, outcome.metrics)


def write_by_day(frame: pl.DataFrame, out_dir: Path) -> None:
    """One ``date=YYYY-MM-DD/part-0.parquet`` per ``event_date`` under ``out_dir``."""
    for (day,), part in frame.group_by(["event_date"], maintain_order=True):
        write_parquet(part, out_dir / f"date={day}" / "part-0.parquet")


__all__ = [
    "LABEL_COLUMNS",
    "LoadResult",
    "SchemaError",
    "dedup_bursts",
    "dedup_query_id",
    "load_metrics",
    "load_rows",
    "merge_counts",
    "run_load",
    "scan_raw",
    "write_by_day",
]
