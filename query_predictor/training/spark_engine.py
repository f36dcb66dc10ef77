"""``engine.name: spark``: the pipeline's data-parallel steps as Spark jobs.

    # params.yaml: engine.name: spark, spark.master: local[*] (or spark://..., yarn)
    dvc repro featurize

Spark only schedules: every task calls the polars functions the polars engine calls, on Arrow
batches (``mapInArrow``), so there is one implementation of each rule and feature and both
engines give the same rows and the same bytes.

* ``load``: one task per day partition runs
  :func:`~query_predictor.training.partitions.process_partition`; each task reads its day's
  row groups straight from the raw log with the polars reader (local, ``s3://`` or any
  store polars reads, without Spark's S3A connector) and writes the day to the checkpoint
  folder, which the driver assembles into the stage's outputs.
* ``zero_cost`` and ``split``: Spark reads the labeled parquet and every partition gets its
  statement category from :func:`~query_predictor.training.zero_cost.categorize`, then the
  stage's ``compact`` (the SQL text dropped, or kept only where the stage reports it).
* ``featurize``: each labeled day is a job whose partitions go through the compiled
  featurizer (:func:`~query_predictor.training.featurize.analyze_chunk`: base features,
  tables, template and TF-IDF terms); the driver reduces each day before the next.
* replay's reading is the load on the replay window.

The driver keeps what is small or global: per-day counts, the zero-cost verdicts, the
boundary-sampling rate, per-day history sums, the vocabulary and the training split
(training stays on one machine: after sampling the training split is about 6x the heavy
count). Results it needs whole come back through parquet files when the executors share its
file system (:func:`_collect`), not through the JVM's heap.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from query_predictor.params import Spark

# Imported where used, so that a stage depends only on the steps it runs (dvc.yaml deps).
if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

    from query_predictor.core.classifier import QueryClassifier

    from .featurize import Analyzed
    from .partitions import Checkpoint, PartitionDone, Plan
    from .windows import Window


def spark_session(settings: Spark) -> SparkSession:
    """A session from the ``spark`` params section. Local masters run the Python workers with
    this interpreter; on a cluster ``spark.archives`` carries the environment (docs/spark.md).
    """
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(settings.master)
        .appName(settings.app_name)
        .config("spark.driver.memory", settings.driver_memory)
        .config("spark.executor.memory", settings.executor_memory)
        .config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    )
    if same_machine(settings.master):
        builder = builder.config("spark.pyspark.python", sys.executable)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in settings.conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def _arrow_schema(schema: StructType) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(schema, timezone="UTC")


def to_batches(frame: pl.DataFrame, target: pa.Schema) -> list[pa.RecordBatch]:
    """``frame`` as Arrow batches of exactly ``target``'s types (Spark reads no large types)."""
    return frame.to_arrow().cast(target).to_batches()


def same_machine(master: str) -> bool:
    """Whether the executors share this machine's file system (local mode, or a standalone
    master on this host)."""
    return master.startswith(("local", "spark://127.0.0.1", "spark://localhost"))


def _collect(
    frame: DataFrame, like: pl.Schema | None = None, *, spill: Path | None = None
) -> pl.DataFrame:
    """A Spark result on the driver as polars, cast back to ``like`` where given.

    With ``spill`` (a folder the executors can write to), the executors write the result as
    parquet there and polars reads it: no row passes through the driver's JVM, whose heap
    would otherwise hold the whole result at once (``toArrow``)."""
    if spill is None:
        out = pl.from_arrow(frame.toArrow())
        assert isinstance(out, pl.DataFrame)
    else:
        target = Path(tempfile.mkdtemp(prefix="collect-", dir=spill))
        try:
            frame.write.mode("overwrite").parquet(str(target))
            files = sorted(target.glob("part-*.parquet"))
            empty = pl.from_arrow(_arrow_schema(frame.schema).empty_table())
            assert isinstance(empty, pl.DataFrame)
            out = pl.read_parquet(files) if files else empty
            out = out.cast({k: v for k, v in empty.schema.items() if k in out.columns})
        finally:
            shutil.rmtree(target, ignore_errors=True)
    if like is not None:
        out = out.cast({k: v for k, v in like.items() if k in out.columns})
    return out


def _labeled_schema(labeled_dir: str | Path) -> pl.Schema:
    first = min(Path(labeled_dir).rglob("*.parquet"))
    return pl.read_parquet_schema(first)


class SparkRunner:
    """Runs load partitions as Spark tasks, one task per day."""

    name = "spark"

    def __init__(self, session: SparkSession) -> None:
        self.session = session

    def run(self, plan: Plan, keys: list[str], store: Checkpoint) -> Iterable[PartitionDone]:
        from .partitions import PartitionDone, process_partition

        todo = [k for k in keys if not store.has(k)]
        for key in keys:
            if key not in todo:
                yield PartitionDone(key, store.counts(key), reused=True)
        if not todo:
            return
        import pyarrow as pa

        out = pa.schema([("key", pa.string()), ("counts", pa.string())])

        def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for batch in batches:
                for index in batch.column("id").to_pylist():
                    done = process_partition(plan, todo[index], store)
                    payload = {"key": [done.key], "counts": [json.dumps(done.counts)]}
                    yield pa.RecordBatch.from_pydict(payload, schema=out)

        ids = self.session.range(len(todo), numPartitions=len(todo))
        for row in ids.mapInArrow(task, "key string, counts string").toLocalIterator():
            yield PartitionDone(row["key"], json.loads(row["counts"]), reused=False)


class SparkEngine:
    """The Spark side of :class:`~query_predictor.training.engines.Engine`."""

    name = "spark"

    def __init__(self, settings: Spark) -> None:
        self.session = spark_session(settings)
        self._closed = False
        # results the driver needs whole come back through files when the executors can
        # write where it reads (:func:`_collect`)
        self._spill = (
            Path(tempfile.mkdtemp(prefix="spark-results-"))
            if same_machine(settings.master)
            else None
        )

    def load_runner(self) -> SparkRunner:
        return SparkRunner(self.session)

    def _labeled(self, labeled_dir: str | Path, window: Window) -> DataFrame:
        from pyspark.sql import functions as F

        frame = self.session.read.parquet(str(labeled_dir))
        if "date" in frame.columns:  # the day folders' partition column, not ours
            frame = frame.drop("date")
        return frame.filter(F.col("event_date").between(window.start, window.end))

    def categorized(
        self,
        labeled_dir: str | Path,
        window: Window,
        classifier: QueryClassifier,
        *,
        columns: Sequence[str] | None = None,
        compact: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
    ) -> pl.DataFrame:
        """:func:`categorize` of the labeled rows in ``window``, in the order the polars
        engine reads them (create_time, query_id); ``compact`` runs in the tasks, so the
        driver receives only what it keeps."""
        from pyspark.sql.types import StringType, StructField, StructType

        from .zero_cost import categorize

        rows = self._labeled(labeled_dir, window)
        if columns is not None:
            rows = rows.select(*columns)
        schema = StructType([*rows.schema.fields, StructField("category", StringType())])
        if compact is not None:  # the schema of a compacted empty batch
            kept = compact(pl.from_arrow(_arrow_schema(schema).empty_table()))  # type: ignore[arg-type]
            schema = StructType([f for f in schema.fields if f.name in kept.columns])
        target = _arrow_schema(schema)

        def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for batch in batches:
                done = categorize(_from_arrow(batch), classifier)
                if compact is not None:
                    done = compact(done)
                yield from to_batches(done.select(target.names), target)

        out = _collect(
            rows.mapInArrow(task, schema), _labeled_schema(labeled_dir), spill=self._spill
        )
        return out.sort("create_time", "query_id")

    def analyze(self, frame: pl.DataFrame, *, full: pl.Series, workers: int) -> Analyzed:
        """:func:`~query_predictor.training.featurize.analyze_frame` with the chunks analysed
        by Spark tasks. ``workers`` is Spark's business here (its cores)."""
        del workers
        from pyspark.sql.types import StructType

        from .featurize import CONTEXT_COLUMNS, Analyzed, analyze_chunk

        source = frame.select(*CONTEXT_COLUMNS, "query_id").with_columns(full=full)
        rows = self.session.createDataFrame(source.to_arrow())
        parallel = max(1, self.session.sparkContext.defaultParallelism)
        rows = rows.repartition(max(parallel, source.height // 20_000 + 1))
        probe_rows, probe_texts = analyze_chunk(source.head(1))
        probe = probe_rows.with_columns(source.head(1).select("query_id"))
        row_schema = _struct(self.session, probe)
        text_schema = _struct(self.session, probe_texts.drop("text_key"))
        combined = StructType([*row_schema.fields, *text_schema.fields])
        target = _arrow_schema(combined)

        def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for batch in batches:
                chunk = _from_arrow(batch)
                analyzed, texts = analyze_chunk(chunk)
                analyzed = analyzed.with_columns(chunk.select("query_id", "full"))
                # the terms ride on the first full row of each distinct text in the chunk
                first = pl.col("full") & pl.struct("full", "text_key").is_first_distinct()
                joined = analyzed.join(
                    texts, on="text_key", how="left", nulls_equal=True, maintain_order="left"
                ).with_columns(
                    pl.when(first).then(pl.col(c)).alias(c) for c in ("term_keys", "term_counts")
                )
                yield from to_batches(joined.select(target.names), target)

        out = _collect(rows.mapInArrow(task, combined), spill=self._spill)
        texts = (
            out.filter(pl.col("term_keys").is_not_null())
            .select("text_key", "term_keys", "term_counts")
            .unique("text_key", keep="first")
            .sort("text_key")
        )
        features = out.drop("term_keys", "term_counts")
        joined = frame.select("query_id").join(
            features, on="query_id", how="left", maintain_order="left"
        )
        return Analyzed(frame.hstack(joined.drop("query_id")), texts)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.session.stop()
        if self._spill is not None:
            shutil.rmtree(self._spill, ignore_errors=True)


def _from_arrow(batch: Any) -> pl.DataFrame:
    out = pl.from_arrow(batch)
    assert isinstance(out, pl.DataFrame)
    return out


def _struct(session: SparkSession, frame: pl.DataFrame) -> StructType:
    """The Spark schema of a polars frame (through an empty Arrow table of its types)."""
    return session.createDataFrame(frame.head(0).to_arrow()).schema
