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

import polars as pl

from query_predictor.core.classifier import QueryClassifier
from query_predictor.core.errors import EmptyWindowError, MissingInputError, UnreadableFileError
from query_predictor.core.label import LabelRule, workload
from query_predictor.core.schema import (
    QUARANTINE_REASON,
    SchemaError,
    absent_columns,
    conform,
    split_valid,
)
from query_predictor.params import DataLoading, Filters
from query_predictor.storage import is_s3, s3_storage_options, write_parquet

from .hashing import keep_fraction

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
            raise _unreadable(f, exc) from None
    return pl.concat(frames, how="vertical")


def _unreadable(path: str, exc: BaseException) -> UnreadableFileError:
    reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return UnreadableFileError(
        f"raw log file {path} cannot be read ({reason}); replace or remove it, or point "
        "data_loading.raw_path elsewhere"
    )


def _collect(lazy: pl.LazyFrame, data: DataLoading) -> pl.DataFrame:
    """``lazy.collect()``; a file whose pages are corrupt (its footer was fine, so the scan
    did not notice) is found by reading the files one by one, and named."""
    try:
        return lazy.collect()
    except (pl.exceptions.PolarsError, OSError) as exc:
        options = s3_storage_options(endpoint_url=data.s3_endpoint_url, region=data.s3_region)
        options = options if is_s3(data.raw_path) else {}
        for f in list_raw_files(data.raw_path, storage_options=options):
            try:
                pl.read_parquet(f, hive_partitioning=False, storage_options=options or None)
            except (pl.exceptions.PolarsError, OSError) as found:
                raise _unreadable(f, found) from None
        raise _unreadable(data.raw_path, exc) from None


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


def _skipped_steps(absent: tuple[str, ...], filters: Filters) -> dict[str, str]:
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


def run_load(data: DataLoading, filters: Filters) -> LoadResult:
    """Run steps 1-9 (module docstring) and return labeled rows, quarantine and metrics."""
    lazy = scan_raw(data.raw_path, endpoint_url=data.s3_endpoint_url, region=data.s3_region)
    steps: dict[str, dict[str, object]] = {}
    dropped: dict[str, object] = {}

    def record(step: str, frame: pl.DataFrame) -> None:
        steps[f"{len(steps)}_{step}"] = {"rows": frame.height, "heavy_share": _heavy_share(frame)}
        log.info("%-12s %9d rows", step, frame.height)

    total = _collect(lazy.select(pl.len()), data).item()
    steps["0_read"] = {"rows": int(total), "heavy_share": None}
    in_window = pl.col("create_time").is_null() | pl.col("create_time").dt.date().is_between(
        data.start_date, data.end_date
    )
    frame = _collect(lazy.filter(in_window), data)
    dropped["outside_window"] = int(total) - frame.height
    record("window", frame)
    if frame.is_empty():
        raise EmptyWindowError(
            f"no query of {data.raw_path} was created in the window {data.start_date}.."
            f"{data.end_date} ({total} rows read); set data_loading.start_date/end_date to days "
            "the log covers"
        )

    before = frame.height
    frame = frame.filter(keep_fraction(frame, fraction=data.sample_fraction, seed=data.sample_seed))
    dropped["sampled_out"] = before - frame.height
    record("sample", frame)

    absent = absent_columns(frame)
    skipped = _skipped_steps(absent, filters)
    for step, why in skipped.items():
        log.info("skipped %s: %s", step, why)
    frame, quarantined = split_valid(frame, absent=absent)
    record("valid", frame)

    before = frame.height
    frame = dedup_query_id(frame)
    dropped["duplicate_query_id"] = before - frame.height
    record("unique_id", frame)

    rule = LabelRule.from_params(data)
    frame = rule.apply(frame)
    truncated = (pl.col("query_state") == "FAILED") & ~pl.col("is_heavy")
    failed_heavy = frame.filter(
        (pl.col("query_state") == "FAILED") & pl.col("is_heavy") & ~rule.resource_failure()
    )
    dropped["failed_truncated"] = _counts(
        frame.filter(truncated).with_columns(pl.col("error_code").fill_null("(no error code)")),
        "error_code",
    )
    frame = frame.filter(~truncated)
    record("complete", frame)

    frame = frame.with_columns(workload=workload(filters))
    before = frame.height
    if filters.keep_workload != "ALL" and "curated_filter" not in skipped:
        frame = frame.filter(pl.col("workload") == filters.keep_workload)
    dropped["workload"] = before - frame.height
    record("workload", frame)

    derived = frame["query_type"].null_count()
    if derived:
        frame = with_query_types(frame)
    dropped["query_type"] = _counts(
        frame.filter(~pl.col("query_type").is_in(list(filters.query_types))), "query_type"
    )
    frame = frame.filter(pl.col("query_type").is_in(list(filters.query_types)))
    record("query_type", frame)

    before = frame.height
    frame = dedup_bursts(frame, window_seconds=filters.dedup_window_seconds)
    dropped["duplicate_burst"] = before - frame.height
    record("dedup_burst", frame)

    frame = frame.with_columns(event_date=pl.col("create_time").dt.date()).sort(
        "create_time", "query_id"
    )
    heavy = frame.filter(pl.col("is_heavy"))
    metrics: dict[str, object] = {
        "rows_read": int(total),
        "rows_labeled": frame.height,
        "heavy_count": heavy.height,
        "heavy_share": _heavy_share(frame),
        "heavy_by_reason": _counts(heavy, "heavy_reason"),
        "quarantined": quarantined.height,
        "quarantine_by_reason": _counts(quarantined, QUARANTINE_REASON),
        "failed_kept_as_heavy": failed_heavy.height,
        "dropped": dropped,
        "steps": steps,
        "days": frame["event_date"].n_unique(),
        "absent_columns": list(absent),
        "skipped": skipped,
        "query_type_derived": derived,
        "window": {"start_date": str(data.start_date), "end_date": str(data.end_date)},
    }
    if frame.is_empty():
        raise EmptyWindowError(
            f"no query of {data.raw_path} in the window {data.start_date}..{data.end_date} is "
            f"left after the load steps (dropped: {dropped}); check data_loading and filters"
        )
    return LoadResult(frame, quarantined, metrics)


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
    "run_load",
    "scan_raw",
    "write_by_day",
]
