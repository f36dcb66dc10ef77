"""The load stage day by day: bounded memory, either engine, resumable after an interruption.

    python stages/load.py      # engine.name: polars or spark

The raw log is cut into partitions, one per UTC day of ``create_time`` in the window (plus one
for rows without a ``create_time``, which validation quarantines). Each partition is read
on its own, only from the files whose ``create_time`` range overlaps it, and goes through
:func:`~query_predictor.training.loading.load_rows`; the ``dedup_window_seconds`` before
midnight come along as context, so a burst of retries spanning midnight is collapsed exactly
as a whole-window load would. Memory is bounded by one day, not by the window.

A finished partition is written to a checkpoint folder (``data_loading.checkpoint_dir``)
under a fingerprint of the load's code, its params and the raw files' names, sizes and
modification times. A rerun after an interruption reuses the partitions of the same
fingerprint and processes only the rest; any change to the code, the params or the raw files
gives a new fingerprint, so stale days are never reused. The folder is removed once the
stage's outputs are in place.

Engines differ only in who runs :func:`process_partition`: :class:`PolarsRunner` calls it
in this process, one partition after another; the Spark runner
(:mod:`query_predictor.training.spark_engine`) runs it as Spark tasks.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import polars as pl
from tqdm import tqdm

from query_predictor.core import schema
from query_predictor.core.errors import EmptyWindowError
from query_predictor.params import DataLoading, Filters
from query_predictor.storage import PARQUET_OPTIONS, is_s3, s3_storage_options

from . import hashing, loading

log = logging.getLogger(__name__)

NO_DATE = "none"  # the partition of rows without a create_time
_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class RawFile:
    """A raw parquet file with its row count and ``create_time`` range (None when empty)."""

    path: str
    rows: int
    first: dt.datetime | None
    last: dt.datetime | None
    has_null_time: bool


@dataclass(frozen=True)
class Plan:
    """What to read for each partition: every raw file, and the load's params."""

    files: tuple[RawFile, ...]
    data: DataLoading
    filters: Filters
    absent: tuple[str, ...]  # optional columns without a value in the window

    @property
    def total_rows(self) -> int:
        return sum(f.rows for f in self.files)

    def keys(self) -> list[str]:
        """Partition keys in order: every day of the window, then :data:`NO_DATE`."""
        days = (self.data.end_date - self.data.start_date).days + 1
        keys = [str(self.data.start_date + dt.timedelta(days=i)) for i in range(days)]
        return [*keys, NO_DATE]


def _options(data: DataLoading) -> dict[str, str] | None:
    if not is_s3(data.raw_path):
        return None
    return s3_storage_options(endpoint_url=data.s3_endpoint_url, region=data.s3_region) or None


def _scan(path: str, data: DataLoading) -> pl.LazyFrame:
    lazy = pl.scan_parquet(path, hive_partitioning=False, storage_options=_options(data))
    return schema.conform(lazy, origin=f"raw log file {path}")


def plan_load(data: DataLoading, filters: Filters) -> Plan:
    """List the raw files and read each one's row count and ``create_time`` range (parquet
    statistics make this cheap); raises as :func:`loading.list_raw_files` does."""
    found = loading.list_raw_files(data.raw_path, storage_options=_options(data) or {})
    # absolute: Spark executors do not run in this directory
    found = [f if is_s3(f) else str(Path(f).resolve()) for f in found]
    files = []
    for path in found:
        time = pl.col("create_time")
        try:
            row = (
                _scan(path, data)
                .select(rows=pl.len(), first=time.min(), last=time.max(), nulls=time.null_count())
                .collect()
                .row(0, named=True)
            )
        except (pl.exceptions.PolarsError, OSError) as exc:  # a corrupt footer or page
            raise loading.unreadable(path, exc) from None
        files.append(RawFile(path, int(row["rows"]), row["first"], row["last"], row["nulls"] > 0))
    return Plan(tuple(files), data, filters, _absent(found, data))


def _meets(file: RawFile, data: DataLoading) -> bool:
    """Whether ``file`` may hold a row of the window (its create_time range overlaps it)."""
    if file.has_null_time:
        return True
    if file.first is None or file.last is None:
        return False
    return file.first.date() <= data.end_date and file.last.date() >= data.start_date


def _absent(paths: list[str], data: DataLoading) -> tuple[str, ...]:
    """:func:`~query_predictor.core.schema.absent_columns` of the window's rows, computed
    lazily over every file (a property of the log, so each day is loaded with the same)."""
    time = pl.col("create_time")
    window = time.is_null() | time.dt.date().is_between(data.start_date, data.end_date)
    optional = [c.name for c in schema.RAW_COLUMNS if not c.required]
    lazy = pl.concat([_scan(p, data) for p in paths], how="vertical").filter(window)
    counts = lazy.select(pl.len().alias("_rows"), *(pl.col(c).null_count() for c in optional))
    row = counts.collect().row(0, named=True)
    if not row["_rows"]:
        return ()
    return tuple(c for c in optional if row[c] == row["_rows"])


def _bounds(key: str, filters: Filters) -> tuple[dt.datetime, dt.datetime, dt.datetime]:
    """(context start, day start, day end) of a day partition, UTC."""
    day = dt.date.fromisoformat(key)
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return start - dt.timedelta(seconds=filters.dedup_window_seconds), start, start + _DAY


def read_partition(plan: Plan, key: str) -> tuple[pl.DataFrame, dt.datetime | None]:
    """The conformed raw rows of partition ``key`` and the instant before which rows are
    context (None when there is none: the window's first day, or no ``create_time``)."""
    time = pl.col("create_time")
    if key == NO_DATE:
        wanted = [f for f in plan.files if f.has_null_time]
        keep = time.is_null()
        context = None
    else:
        lo, start, end = _bounds(key, plan.filters)
        if start.date() == plan.data.start_date:
            lo = start  # rows before the window never reach the load
        wanted = [
            f
            for f in plan.files
            if f.first is not None and f.last is not None and f.first < end and f.last >= lo
        ]
        keep = (time >= lo) & (time < end)
        context = start if lo < start else None
    if not wanted:
        empty = schema.conform(pl.DataFrame(schema=schema.RAW_SCHEMA)).collect()
        return empty, context
    parts = []
    for f in wanted:
        try:  # corrupt pages behind a sound footer show only when read: name the file
            parts.append(_scan(f.path, plan.data).filter(keep).collect())
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise loading.unreadable(f.path, exc) from None
    return pl.concat(parts, how="vertical"), context


@dataclass(frozen=True)
class PartitionDone:
    key: str
    counts: dict[str, object]
    reused: bool


def process_partition(plan: Plan, key: str, store: Checkpoint) -> PartitionDone:
    """Load partition ``key`` into ``store`` unless it is already there."""
    if store.has(key):
        return PartitionDone(key, store.counts(key), reused=True)
    frame, context = read_partition(plan, key)
    labeled, quarantined, counts = loading.load_rows(
        frame, plan.data, plan.filters, absent=plan.absent, context_before=context
    )
    store.put(key, labeled, quarantined, counts)
    return PartitionDone(key, counts, reused=False)


# --------------------------------------------------------------------------- checkpoint


_CODE = (loading, hashing, schema)


def fingerprint(plan: Plan) -> str:
    """Hash of what a partition's output depends on: code, params, raw files' identity."""
    digest = hashlib.sha256()
    for module in (*_CODE, __import__(__name__, fromlist=["_"])):
        digest.update(Path(module.__file__ or "").read_bytes())
    params = {
        "data_loading": plan.data.model_dump(mode="json", exclude={"checkpoint_dir"}),
        "filters": plan.filters.model_dump(mode="json"),
        "absent": plan.absent,
    }
    digest.update(json.dumps(params, sort_keys=True).encode())
    for f in plan.files:
        stamp = ""
        if not is_s3(f.path):
            info = os.stat(f.path)
            stamp = f"{info.st_size}:{info.st_mtime_ns}"
        digest.update(f"{f.path}|{stamp}|{f.rows}\n".encode())
    return digest.hexdigest()[:16]


class Checkpoint:
    """Finished partitions under ``root/<fingerprint>/part=<key>/`` (a local folder shared by
    every worker: a path on one machine, or a mounted/shared file system on a cluster)."""

    def __init__(self, root: str | Path, plan: Plan) -> None:
        self.root = Path(root).resolve()  # absolute: Spark executors run elsewhere
        self.dir = self.root / fingerprint(plan)

    def prepare(self) -> None:
        """Create the folder and drop checkpoints of other fingerprints (stale)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for other in self.root.iterdir():
            if other != self.dir and other.is_dir():
                shutil.rmtree(other, ignore_errors=True)

    def _part(self, key: str) -> Path:
        return self.dir / f"part={key}"

    def has(self, key: str) -> bool:
        return (self._part(key) / "counts.json").exists()

    def counts(self, key: str) -> dict[str, object]:
        return json.loads((self._part(key) / "counts.json").read_text())

    def frames(self, key: str) -> tuple[pl.DataFrame, pl.DataFrame]:
        return pl.read_parquet(self.labeled_file(key)), pl.read_parquet(self.quarantine_file(key))

    def labeled_file(self, key: str) -> Path:
        return self._part(key) / "labeled.parquet"

    def quarantine_file(self, key: str) -> Path:
        return self._part(key) / "quarantine.parquet"

    def put(self, key: str, labeled: pl.DataFrame, quarantined: pl.DataFrame, counts: dict) -> None:
        """Write one partition atomically: all three files appear at once, or none. When
        another run of the same plan (one left behind by an interrupted ``dvc repro``) has
        written it meanwhile, its copy stays: a partition depends only on the plan and key."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".part={key}.", suffix=".tmp", dir=self.dir))
        try:
            labeled.write_parquet(tmp / "labeled.parquet", **PARQUET_OPTIONS)
            quarantined.write_parquet(tmp / "quarantine.parquet", **PARQUET_OPTIONS)
            (tmp / "counts.json").write_text(json.dumps(counts, sort_keys=True))
            try:
                os.replace(tmp, self._part(key))
            except OSError as exc:  # a directory in the way: not empty, so written
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not self.has(key):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


# --------------------------------------------------------------------------- runners


class Runner(Protocol):
    name: str

    def run(self, plan: Plan, keys: list[str], store: Checkpoint) -> Iterable[PartitionDone]:
        """Process ``keys`` into ``store``, yielding each partition as it finishes."""
        ...


class PolarsRunner:
    """Partitions one after another in this process (peak memory: about one day)."""

    name = "polars"

    def run(self, plan: Plan, keys: list[str], store: Checkpoint) -> Iterable[PartitionDone]:
        for key in keys:
            yield process_partition(plan, key, store)


@dataclass
class LoadOutcome:
    metrics: dict[str, object]
    keys: list[str]  # partitions in output order
    processed: int  # partitions computed in this run
    reused: int  # partitions taken from the checkpoint
    store: Checkpoint
    first_day: dt.date | None  # first and last day with labeled rows
    last_day: dt.date | None


def load_partitions(
    data: DataLoading,
    filters: Filters,
    *,
    runner: Runner,
    checkpoint_dir: str | Path | None = None,
    keep: Callable[[tuple[pl.DataFrame, pl.DataFrame]], None] | None = None,
) -> LoadOutcome:
    """Load every partition with ``runner`` (resuming from ``checkpoint_dir`` when given, a
    temporary folder otherwise) and merge their counts into the stage's metrics. ``keep``
    receives each partition's (labeled, quarantined) frames in order. The caller removes
    the folder (``outcome.store.remove()``) once it has the outputs."""
    plan = plan_load(data, filters)
    if not any(f.rows and _meets(f, data) for f in plan.files):
        raise EmptyWindowError(
            f"no query of {data.raw_path} was created in the window {data.start_date}.."
            f"{data.end_date} ({plan.total_rows} rows read); set data_loading.start_date/"
            "end_date to days the log covers (`query-predictor dates`)"
        )
    for step, why in loading.skipped_steps(plan.absent, filters).items():
        log.info("skipped %s: %s", step, why)
    root = Path(checkpoint_dir or tempfile.mkdtemp(prefix="load-"))
    store = Checkpoint(root, plan)
    store.prepare()
    keys = plan.keys()
    done: dict[str, PartitionDone] = {}
    bar = tqdm(total=len(keys), desc=f"load ({runner.name})", unit="day", disable=None)
    for part in runner.run(plan, keys, store):
        done[part.key] = part
        bar.update()
    bar.close()
    counts: dict[str, object] = {}
    days: list[dt.date] = []
    for key in keys:
        counts = loading.merge_counts(counts, done[key].counts)
        labeled_rows = int(done[key].counts["steps"]["dedup_burst"]["rows"])  # type: ignore[index]
        if key != NO_DATE and labeled_rows > 0:
            days.append(dt.date.fromisoformat(key))
        if keep is not None:
            keep(store.frames(key))
    metrics = loading.load_metrics(
        counts,
        total=plan.total_rows,
        days=len(days),
        absent=plan.absent,
        data=data,
        filters=filters,
    )
    reused = sum(p.reused for p in done.values())
    first, last = (days[0], days[-1]) if days else (None, None)
    return LoadOutcome(metrics, keys, len(keys) - reused, reused, store, first, last)


def write_outputs(outcome: LoadOutcome, *, labeled_dir: Path, quarantine_file: Path) -> None:
    """The stage's layout from the checkpoint: ``date=YYYY-MM-DD/part-0.parquet`` per day
    with rows (the bytes of the checkpoint's file) and one quarantine file."""
    store = outcome.store
    quarantined = []
    for key in outcome.keys:
        quarantined.append(pl.read_parquet(store.quarantine_file(key)))
        if (
            key != NO_DATE
            and pl.scan_parquet(store.labeled_file(key)).select(pl.len()).collect().item()
        ):
            target = labeled_dir / f"date={key}" / "part-0.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(store.labeled_file(key), target)
    pl.concat(quarantined).write_parquet(quarantine_file, **PARQUET_OPTIONS)
