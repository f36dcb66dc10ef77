"""Stage ``featurize``: feature matrices for train / validation / test, and parity proof.

    python stages/featurize.py

1. Every labeled row from ``data_loading.start_date`` to the end of the test window goes
   once through :meth:`FeatureExtractor.analyze` (base features, tables, template, terms),
   in parallel over chunks (``engine.workers``).
2. History: each split row gets statistics from the labeled rows *strictly before its day*,
   validation rows with the history cut at the end of the training window, test rows at
   ``history_end`` (the stage: the validation window's end), the snapshot that serving
   loads (``models/history_stats.parquet``); conventions are learned on the training
   window.
3. TF-IDF: the vocabulary is fitted on the training split only (``models/tfidf_vocab.json``).
   Terms depend on the text alone, so each distinct text is weighed and looked up once, by
   a 128-bit hash of the text (:func:`text_key`), never by the text itself.
4. Parity: a hash-chosen sample of validation and test rows is featurized again through the
   single-query serving path (:class:`~query_predictor.core.featurizer.QueryFeaturizer`) and
   compared, feature by feature, with the batch rows; any difference fails the stage.

Memory follows a day of the log and one split's matrix, not the log: step 1 runs a day at
a time and keeps, for the whole log, only the history's daily sums, the conventions' inputs
and the training rows' per-day document frequencies; the split rows' features and their
texts' terms go to a scratch folder, one part a day, which steps 2-4 read back for batches
of split rows (:data:`BATCH_ROWS`).

Matrices are parquet: 102 float32 columns plus the sparse TF-IDF vector as two list columns
(``tfidf_index``, ``tfidf_value``): one columnar file per split, a few percent of a dense
1,000-column matrix, read straight into CSR by the trainer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import multiprocessing
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import chain, starmap
from pathlib import Path
from typing import TypeVar

import numpy as np
import polars as pl
from tqdm import tqdm

from query_predictor.core.conventions import Conventions, fit_conventions
from query_predictor.core.errors import DataError, ParityError
from query_predictor.core.features import (
    BASE_NAMES,
    FeatureExtractor,
    QueryContext,
    days_read,
    reads_data,
)
from query_predictor.core.featurizer import FEATURE_NAMES, QueryFeaturizer
from query_predictor.core.history import HISTORY_NAMES, HistoryLookup, history_features
from query_predictor.core.tfidf import TfidfVocabulary, vocabulary_of_frequencies
from query_predictor.params import Features

from .hashing import unit_hashes
from .history import (
    cumulative_by_kind,
    daily_sums,
    point_in_time_of_cumulative,
    resolve_partitions,
    snapshot_of_sums,
)

T = TypeVar("T")
CONTEXT_COLUMNS = (
    "query",
    "user",
    "source",
    "catalog",
    "schema",
    "query_type",
    "create_time",
    "session_properties",
)


# the labeled columns stage featurize reads (the split files carry every column)
LABELED_COLUMNS = (
    "query_id",
    "event_date",
    "is_heavy",
    "cpu_time_millis",
    "peak_memory_bytes",
    "physical_input_bytes",
    *CONTEXT_COLUMNS,
)


def convention_options(features: Features) -> dict[str, object]:
    """The ``conventions`` argument of :func:`featurize` from the ``features`` params."""
    return {
        "partition_min_templates": features.partition_min_templates,
        "service_min_queries": features.service_min_queries,
        "service_repeat_share": features.service_repeat_share,
        "service_user_pattern": features.service_user_pattern,
    }


def context_of(row: dict) -> QueryContext:
    """The router's view of a raw-log row (the same fields Trino Gateway passes)."""
    return _context(*(row[c] for c in CONTEXT_COLUMNS[1:]))


def contexts_of(frame: pl.DataFrame) -> list[QueryContext]:
    """:func:`context_of` of every row of ``frame``."""
    return list(starmap(_context, frame.select(CONTEXT_COLUMNS[1:]).iter_rows()))


def _context(
    user: str | None,
    source: str | None,
    catalog: str | None,
    schema: str | None,
    query_type: str | None,
    create_time: dt.datetime | None,
    session_properties: str | None,
) -> QueryContext:
    return QueryContext(
        user=user,
        source=source,
        catalog=catalog,
        schema=schema,
        query_type=query_type,
        time=create_time,
        session_properties=QueryContext.session_from_json(session_properties),
    )


def text_key(sql: str | None) -> bytes | None:
    """The 128-bit BLAKE2b digest of a statement text (None for None): what featurize keys
    a text's TF-IDF terms by, 16 bytes instead of the text (about 700 on average)."""
    return None if sql is None else hashlib.blake2b(sql.encode(), digest_size=16).digest()


def analyze_chunk(chunk: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Analyze one chunk (a batch: a text repeated in it is analysed once). Returns the rows
    (tables and template for every row, base features and :func:`text_key` only where
    ``full`` is true: split rows; the history-only rows cost no memory beyond their keys)
    and the TF-IDF terms of each distinct text of the full rows (``text_key``,
    ``term_keys``, ``term_counts``)."""
    extractor = FeatureExtractor()
    full = chunk["full"].to_list()
    queries = chunk["query"].to_list()
    missing = [math.nan] * len(BASE_NAMES)
    base: list[list[float]] = []
    tables, templates, compared, dated, days, data, keys = [], [], [], [], [], [], []
    terms: dict[str | None, dict[str, int]] = {}
    digests: dict[str | None, bytes | None] = {}
    analyses = extractor.analyze_many(queries, contexts_of(chunk))
    for keep, sql, a in zip(full, queries, analyses, strict=True):
        tables.append(a.tables)
        templates.append(a.template)
        dated.append(sorted(a.dated))
        compared.append(sorted(a.compared))  # every row: history keys on partition filters
        days.append(days_read(a.base))  # every row: history sizes a table per day read ...
        data.append(reads_data(a.base))  # ... from the statements that read its data
        if keep:
            base.append(a.base)
            if sql not in terms:
                terms[sql] = a.terms
                digests[sql] = text_key(sql)
            keys.append(digests[sql])
        else:
            base.append(missing)
            keys.append(None)
    block = np.array(base, dtype=np.float32).reshape(len(base), len(BASE_NAMES))
    rows = pl.DataFrame(block, schema=list(BASE_NAMES)).with_columns(
        tables=list_series(tables, pl.String),
        template=pl.Series(templates, dtype=pl.String),
        compared=list_series(compared, pl.String),
        dated=list_series(dated, pl.String),
        days_read=pl.Series(days, dtype=pl.Float64),
        data_read=pl.Series(data, dtype=pl.Boolean),
        text_key=pl.Series(keys, dtype=pl.Binary),
    )
    texts = pl.DataFrame(
        {
            "text_key": pl.Series(list(digests.values()), dtype=pl.Binary),
            "term_keys": list_series([list(t) for t in terms.values()], pl.String),
            "term_counts": list_series([list(t.values()) for t in terms.values()], pl.Int32),
        }
    )
    return rows, texts


@dataclass
class Analyzed:
    """:func:`analyze_frame`'s result: the rows with their features, and the TF-IDF terms of
    each distinct statement text (a text's terms are the same wherever it repeats), keyed by
    the :func:`text_key` the full rows carry."""

    rows: pl.DataFrame
    terms: pl.DataFrame  # text_key, term_keys, term_counts


def _progress(items: Iterable[T], total: int) -> Iterable[T]:
    """A progress bar over chunks of 20,000 statements (quiet when not a terminal)."""
    return tqdm(items, total=total, desc="featurize", unit="chunk", disable=None)


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """The processes :func:`analyze_frame` sends chunks to (spawned: no forked polars state)."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def analyze_frame(
    frame: pl.DataFrame,
    *,
    workers: int,
    full: pl.Series | None = None,
    pool: ProcessPoolExecutor | None = None,
) -> Analyzed:
    """``frame`` with base features, ``tables`` and ``template`` added (base features only
    where ``full``, default every row; NaN elsewhere), and the terms of the distinct texts of
    the full rows. Chunks go to ``workers`` processes (``pool``, kept across calls, or one
    for this call); each returns compact frames, so memory stays near the size of the result."""
    flags = full if full is not None else pl.Series("full", [True] * frame.height)
    source = frame.select(*CONTEXT_COLUMNS).with_columns(full=flags)
    # chunks of at most 20,000 rows, and at least one per worker (a day of the default log
    # is one chunk of 20,000)
    size = max(1, min(20_000, -(-source.height // max(workers, 1))))
    chunks = [source.slice(i, size) for i in range(0, source.height, size)] or [source]
    if pool is not None and len(chunks) > 1:
        parts = list(_progress(pool.map(analyze_chunk, chunks), len(chunks)))
    elif workers > 1 and len(chunks) > 1:
        with worker_pool(workers) as own:
            parts = list(_progress(own.map(analyze_chunk, chunks), len(chunks)))
    else:
        parts = [analyze_chunk(c) for c in _progress(chunks, len(chunks))]
    rows = frame.hstack(pl.concat([r for r, _ in parts]))
    terms = pl.concat([t for _, t in parts]).unique("text_key", keep="first", maintain_order=True)
    return Analyzed(rows, terms)


def list_series(lists: Sequence[Sequence[object]], inner: type[pl.DataType]) -> pl.Series:
    """A list column of ``inner`` from Python lists.

    Built flat and regrouped in polars: given nested Python lists, polars makes one Series
    per row, which cost more than the featurizer itself (about 12 us a row per column)."""
    n = len(lists)
    lengths = np.fromiter(map(len, lists), np.int64, count=n)
    flat = pl.Series(list(chain.from_iterable(lists)), dtype=inner)
    return regroup(np.repeat(np.arange(n), lengths), flat, n)


def regroup(row: np.ndarray, values: pl.Series, n: int) -> pl.Series:
    """The list column of ``n`` rows whose row ``i`` holds, in order, the ``values`` at the
    positions where ``row`` is ``i`` (an empty list where there are none)."""
    inner = values.dtype
    grouped = (
        pl.DataFrame([pl.Series("row", row, dtype=pl.Int64), values.alias("value")])
        .group_by("row")
        .agg("value")
    )
    empty = pl.lit([], dtype=pl.List(inner))
    return (
        pl.DataFrame([pl.Series("row", np.arange(n), dtype=pl.Int64)])
        .join(grouped, on="row", how="left", maintain_order="left")["value"]
        .fill_null(empty)
        .rechunk()
    )


def document_frequencies(rows: pl.DataFrame, terms: pl.DataFrame) -> pl.DataFrame:
    """``term`` and ``df``, the number of ``rows`` (each row one document, by its
    ``text_key``) whose text has the term, from the ``terms`` of their texts. The counts of
    disjoint batches of rows add up to those of all the rows."""
    repeats = rows.group_by("text_key").len()
    return (
        repeats.join(terms, on="text_key", how="inner", nulls_equal=True)
        .select(pl.col("len").cast(pl.Int64).alias("df"), pl.col("term_keys").alias("term"))
        .explode("term")
        .drop_nulls("term")
        .group_by("term")
        .agg(pl.col("df").sum())
    )


def vocabulary_of(
    frequencies: Iterable[pl.DataFrame], *, documents: int, size: int
) -> TfidfVocabulary:
    """The vocabulary from batches of :func:`document_frequencies` over ``documents`` rows."""
    parts = [f for f in frequencies if f.height]
    total = pl.concat(parts).group_by("term").agg(pl.col("df").sum()) if parts else None
    counts = {} if total is None else dict(zip(total["term"], total["df"], strict=True))
    return vocabulary_of_frequencies(counts, documents=int(documents), size=size)


def fit_on(rows: pl.DataFrame, terms: pl.DataFrame, *, size: int) -> TfidfVocabulary:
    """The vocabulary of ``rows`` (each row one document), from the terms of their texts."""
    return vocabulary_of([document_frequencies(rows, terms)], documents=rows.height, size=size)


@dataclass
class FeatureSet:
    matrices: dict[str, pl.DataFrame]  # empty when featurize had a sink
    vocabulary: TfidfVocabulary
    history: pl.DataFrame
    conventions: Conventions
    parity: dict[str, object]
    rows: dict[str, int]  # per split
    tfidf_mean_nonzero: dict[str, float]  # per split
    context_absent: list[str]  # context columns without a value in the labeled rows


def with_conventions(rows: pl.DataFrame, conventions: Conventions) -> pl.DataFrame:
    """The two base features that depend on the learned ``conventions``, set on ``rows``
    (columns ``compared`` and ``user``) by the methods serving calls."""
    partition = map(conventions.partition_predicate, rows["compared"].to_list())
    service = map(conventions.is_service, rows["user"].to_list())
    return rows.with_columns(
        has_partition_predicate=pl.Series(list(partition), dtype=pl.Float32),
        user_is_service=pl.Series(list(service), dtype=pl.Float32),
    )


def history_block(
    rows: pl.DataFrame, history: pl.DataFrame, *, weight: float, until: dt.date | None = None
) -> np.ndarray:
    """The history features per row (:data:`HISTORY_NAMES`), point in time against
    ``history`` (which ends on ``until``; None: complete up to the day before each row)."""
    return history_block_of_sums(rows, daily_sums(history), weight=weight, until=until)


def history_block_of_sums(
    rows: pl.DataFrame, sums: pl.DataFrame, *, weight: float, until: dt.date | None = None
) -> np.ndarray:
    """:func:`history_block` from the history's
    :func:`~query_predictor.training.history.daily_sums` ``sums``. ``rows`` carry
    ``has_partition_predicate`` where known (else: no partition filter) and ``days_read``
    (else: one day)."""
    return history_block_of_cumulative(rows, cumulative_by_kind(sums), weight=weight, until=until)


def history_block_of_cumulative(
    rows: pl.DataFrame,
    cumulative: dict[str, tuple[pl.DataFrame, pl.DataFrame]],
    *,
    weight: float,
    until: dt.date | None = None,
) -> np.ndarray:
    """:func:`history_block_of_sums` from the history's
    :func:`~query_predictor.training.history.cumulative_by_kind` (rows may come in batches)."""
    if "has_partition_predicate" in rows.columns:
        rows = rows.with_columns(partition=pl.col("has_partition_predicate"))
    stats = point_in_time_of_cumulative(rows, cumulative, until=until)
    out = np.empty((rows.height, len(HISTORY_NAMES)), dtype=np.float64)
    ones = pl.Series([1.0] * rows.height, dtype=pl.Float64)
    partition = rows["partition"] if "partition" in rows.columns else ones * 0
    days = rows["days_read"] if "days_read" in rows.columns else ones
    for i, ((user, template, tables, prior, modes, source, size), flag, read) in enumerate(
        zip(stats, partition.fill_null(0.0).to_list(), days.to_list(), strict=True)
    ):
        out[i] = history_features(
            user,
            template,
            tables,
            prior=prior,
            weight=weight,
            modes=modes,
            source=source,
            size_prior=size,
            partition_filtered=flag > 0,
            days=read,
        )
    return out


def tfidf_vectors(terms: pl.DataFrame, vocab: TfidfVocabulary) -> pl.DataFrame:
    """``text_key``, ``tfidf_index`` and ``tfidf_value`` of each distinct text in ``terms``.

    The terms are matched to the vocabulary by a polars join, and the weights of all texts
    are worked out in one compiled call (:meth:`TfidfVocabulary.weigh_batch`, the arithmetic
    of :meth:`TfidfVocabulary.transform`), so no term becomes a Python string."""
    vocabulary = pl.DataFrame(
        {"term": list(vocab.terms), "column": np.arange(len(vocab), dtype=np.int64)},
        schema={"term": pl.String, "column": pl.Int64},
    )
    pairs = (
        terms.select(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("text"),
            pl.col("term_keys").alias("term"),
            pl.col("term_counts").alias("count"),
        )
        .explode("term", "count")
        .join(vocabulary, on="term", how="inner")
        .sort("text", "column")
    )
    text = pairs["text"].to_numpy()
    ends = np.cumsum(np.bincount(text, minlength=terms.height))
    weights = vocab.weigh_batch(ends, pairs["column"].to_numpy(), pairs["count"].to_numpy())
    return terms.select("text_key").with_columns(
        tfidf_index=regroup(text, pairs["column"].cast(pl.Int32), terms.height),
        tfidf_value=regroup(text, pl.Series(weights, dtype=pl.Float32), terms.height),
    )


def with_tfidf(rows: pl.DataFrame, vectors: pl.DataFrame) -> pl.DataFrame:
    """The TF-IDF vector of each row of ``rows``, looked up by its ``text_key`` in
    ``vectors``."""
    return (
        rows.select("text_key")
        .join(vectors, on="text_key", how="left", nulls_equal=True, maintain_order="left")
        .drop("text_key")
    )


def build_matrix(rows: pl.DataFrame, block: np.ndarray, vectors: pl.DataFrame) -> pl.DataFrame:
    dense = rows.select(BASE_NAMES).with_columns(
        pl.DataFrame(block.astype(np.float32), schema=list(FEATURE_NAMES[len(BASE_NAMES) :]))
    )
    return pl.concat(
        [
            rows.select(
                "query_id", "event_date", "is_heavy", "cpu_time_millis", "peak_memory_bytes"
            ),
            dense,
            with_tfidf(rows, vectors),
        ],
        how="horizontal",
    )


def check_parity(
    matrices: Mapping[str, pl.DataFrame],
    splits: Mapping[str, pl.DataFrame],
    featurizer: QueryFeaturizer,
    *,
    sample: int,
    seed: int,
) -> dict[str, object]:
    """Featurize a sample of validation and test rows one by one through the serving path and
    compare with the batch rows; raise ParityError naming the first differing row and feature."""
    checked = sum(
        check_split_parity(name, matrices[name], splits[name], featurizer, sample=sample, seed=seed)
        for name in PARITY_SPLITS
    )
    return parity_summary(checked)


PARITY_SPLITS = ("val", "test")
# scored with the bundle's history snapshot (through history_end); earlier splits with the
# training window's
BUNDLE_HISTORY_SPLIT = "test"


def parity_summary(checked: int) -> dict[str, object]:
    return {
        "rows_checked": checked,
        "features_checked": len(FEATURE_NAMES) + 1,
        "mismatches": 0,
        "passed": True,
    }


def check_split_parity(
    name: str,
    matrix: pl.DataFrame,
    rows: pl.DataFrame,
    featurizer: QueryFeaturizer,
    *,
    sample: int,
    seed: int,
) -> int:
    """:func:`check_parity` of one split (``sample // 2`` hash-chosen rows); rows checked."""
    return check_rows(name, matrix, rows, featurizer, parity_rows(rows["query_id"], sample, seed))


def parity_rows(ids: pl.Series, sample: int, seed: int) -> list[int]:
    """The positions (ascending) of the ``sample // 2`` split rows, chosen by the hash of
    their ``ids``, that :func:`check_split_parity` checks."""
    u = unit_hashes(ids, seed)
    return sorted(np.argsort(u, kind="stable")[: max(1, sample // 2)].tolist())


def check_rows(
    name: str,
    matrix: pl.DataFrame,
    rows: pl.DataFrame,
    featurizer: QueryFeaturizer,
    positions: Iterable[int],
) -> int:
    """Compare the batch ``matrix`` with the serving path at ``positions`` of ``rows``;
    raise ParityError naming the first differing row and feature; rows checked."""
    checked = 0
    for i in positions:
        row = rows.row(i, named=True)
        single = featurizer.featurize(row["query"], context_of(row))
        batch = matrix.row(i, named=True)
        want = np.asarray(single.dense, dtype=np.float32)
        for j, feature in enumerate(FEATURE_NAMES):
            if want[j] != np.float32(batch[feature]):
                raise ParityError(
                    f"parity: {name} row {row['query_id']}: feature {feature} is "
                    f"{batch[feature]!r} in batch but {float(want[j])!r} in serving"
                )
        if single.tfidf_index != batch["tfidf_index"] or not np.array_equal(
            np.asarray(single.tfidf_value, dtype=np.float32),
            np.asarray(batch["tfidf_value"], dtype=np.float32),
        ):
            raise ParityError(
                f"parity: {name} row {row['query_id']}: TF-IDF vectors differ between the "
                "batch and the serving featurizer"
            )
        checked += 1
    return checked


# split rows go through history, TF-IDF and the parity check this many at a time
BATCH_ROWS = 50_000
_KEPT = ("query_id", "user", "compared", *BASE_NAMES, "tables", "template", "days_read", "text_key")


class _Spill:
    """The split rows' features and their texts' terms, one pair of parquet files per
    labeled part (a day), in a scratch folder: the later steps read back the parts of the
    days a batch of split rows covers, so nothing is held for the whole log."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.spans: list[tuple[dt.date, dt.date]] = []  # event_date range of each part
        self._loaded: dict[int, tuple[pl.DataFrame, pl.DataFrame]] = {}

    def add(self, rows: pl.DataFrame, terms: pl.DataFrame) -> None:
        index = len(self.spans)
        for kind, frame in (("rows", rows), ("terms", terms)):
            frame.write_parquet(self.folder / f"{kind}-{index:05d}.parquet", compression="lz4")
        dates = rows["event_date"]
        self.spans.append((dates.min(), dates.max()))  # type: ignore[arg-type]

    def covering(self, dates: pl.Series) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The spilled rows and terms of every part holding a day of ``dates``; the parts
        stay loaded while consecutive batches need them (split rows come in time order)."""
        days = set(dates.unique().to_list())
        wanted = [
            i for i, (low, high) in enumerate(self.spans) if any(low <= d <= high for d in days)
        ]
        self._loaded = {i: self._loaded.get(i) or self._read(i) for i in wanted}
        frames = list(self._loaded.values())
        if not frames:
            return self._read_empty()
        return pl.concat([r for r, _ in frames]), pl.concat([t for _, t in frames])

    def _read(self, index: int) -> tuple[pl.DataFrame, pl.DataFrame]:
        return tuple(  # type: ignore[return-value]
            pl.read_parquet(self.folder / f"{kind}-{index:05d}.parquet")
            for kind in ("rows", "terms")
        )

    def _read_empty(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        rows, terms = self._read(0)
        return rows.head(0), terms.head(0)


@dataclass
class _Gathered:
    """What featurize keeps of the labeled rows, gathered day by day: history sums, the
    conventions' inputs, the training rows' document frequencies; the split rows' features
    and terms go to the :class:`_Spill`."""

    sums: list[pl.DataFrame]
    convention_rows: list[pl.DataFrame]
    frequencies: list[pl.DataFrame]
    found: dict[str, np.ndarray]  # per split, which of its ids the labeled rows hold
    documents: int = 0
    rows: int = 0
    nulls: dict[str, int] | None = None


def _gather(
    labeled: Iterable[pl.DataFrame],
    split_ids: Mapping[str, pl.Series],
    spill: _Spill,
    *,
    train_end: dt.date,
    history_end: dt.date,
    workers: int,
    analyze: Callable[..., Analyzed],
) -> _Gathered:
    out = _Gathered([], [], [], {n: np.zeros(len(i), dtype=bool) for n, i in split_ids.items()})
    nulls = dict.fromkeys(CONTEXT_COLUMNS, 0)
    wanted = pl.concat(list(split_ids.values())).implode()
    training = split_ids["train"].implode()
    for part in labeled:
        out.rows += part.height
        for c in CONTEXT_COLUMNS:
            nulls[c] += part[c].null_count()
        full = part["query_id"].is_in(wanted)
        analyzed = analyze(part, workers=workers, full=full)
        rows = analyzed.rows
        history = rows.filter(pl.col("event_date") <= history_end)
        if history.height:
            out.sums.append(daily_sums(history))
        learned_from = history.filter(pl.col("event_date") <= train_end)
        if learned_from.height:
            out.convention_rows.append(learned_from.select("user", "template", "dated"))
        kept = rows.filter(full).select("event_date", *_KEPT)
        if not kept.height:
            continue
        spill.add(kept, analyzed.terms)
        ids = kept["query_id"].implode()
        for name, series in split_ids.items():
            out.found[name] |= series.is_in(ids).to_numpy()
        train = kept.filter(pl.col("query_id").is_in(training))
        out.documents += train.height
        out.frequencies.append(document_frequencies(train, analyzed.terms))
    out.nulls = nulls
    return out


def featurize(
    labeled: pl.DataFrame | Iterable[pl.DataFrame],
    splits: Mapping[str, pl.DataFrame | pl.LazyFrame],
    *,
    train_end: dt.date,
    vocab_size: int,
    prior_weight: float,
    parity_sample: int,
    seed: int,
    conventions: dict[str, object],
    history_end: dt.date | None = None,
    workers: int = 0,
    analyze: Callable[..., Analyzed] = analyze_frame,
    sink: Callable[[str, pl.DataFrame], None] | None = None,
    scratch: str | Path | None = None,
    analyzed: Callable[[], None] | None = None,
) -> FeatureSet:
    """Run steps 1-4 of the module docstring; ``history_end`` (default ``train_end``, not
    before it) is the last day of the bundle's history snapshot and of what test rows see;
    ``conventions`` are the keyword arguments of
    :func:`~query_predictor.core.conventions.fit_conventions` but the rows; ``analyze`` runs
    step 1 (:func:`analyze_frame`, or an engine's version calling :func:`analyze_chunk` on its
    own partitions).

    ``labeled`` may come in parts (one day each, in order: the stage reads it so): each part
    is analysed and reduced to what later steps use (history :func:`daily_sums`, the training
    rows' :func:`document_frequencies`) before the next is read; the split rows' features and
    their texts' terms are written to a folder under ``scratch`` (default: the system's
    temporary folder) and read back a day at a time. ``splits`` may be lazy (read in batches
    of :data:`BATCH_ROWS`); ``sink`` receives each split's matrix as soon as it is built
    (default: kept in :attr:`FeatureSet.matrices`), so one matrix is in memory at a time.
    ``analyzed`` is called once every labeled row is analysed (``analyze`` is not called
    again): e.g. the engine's close, so its worker processes free their memory for the rest."""
    workers = workers or os.cpu_count() or 1
    parts = [labeled] if isinstance(labeled, pl.DataFrame) else labeled
    lazy = {n: s.lazy() for n, s in splits.items()}
    split_ids = {n: s.select("query_id").collect()["query_id"] for n, s in lazy.items()}
    history_end = history_end or train_end
    if history_end < train_end:
        raise ValueError(f"history_end {history_end} is before train_end {train_end}")
    with tempfile.TemporaryDirectory(prefix="featurize-", dir=scratch) as folder:
        spill = _Spill(Path(folder))
        gathered = _gather(
            parts,
            split_ids,
            spill,
            train_end=train_end,
            history_end=history_end,
            workers=workers,
            analyze=analyze,
        )
        if analyzed is not None:
            analyzed()
        missing = {n: int((~found).sum()) for n, found in gathered.found.items()}
        if any(missing.values()):
            raise DataError(
                f"split rows missing from the labeled data: {missing}; data/splits and "
                "data/labeled come from different runs: rerun `dvc repro split`"
            )
        sums = pl.concat(gathered.sums) if gathered.sums else daily_sums(_EMPTY_HISTORY)
        learned = fit_conventions(
            _concat(gathered.convention_rows, ("user", "template", "dated")), **conventions
        )
        gathered.convention_rows.clear()
        # the tables' reads with / without a partition filter, as the learned conventions say
        sums = resolve_partitions(sums, learned.partition_predicate)
        vocab = vocabulary_of(gathered.frequencies, documents=gathered.documents, size=vocab_size)
        # the bundle's snapshot ends on history_end; validation rows see the training
        # window's (the threshold is chosen on them), test rows the bundle's
        until = {name: history_end if name == BUNDLE_HISTORY_SPLIT else train_end for name in lazy}
        snaps = {end: snapshot_of_sums(sums, until=end) for end in {train_end, history_end}}
        snap = snaps[history_end]
        cumulative = cumulative_by_kind(sums)
        del sums
        # the serving side reads the bundle from files: check parity against what they hold
        served_vocab = TfidfVocabulary.from_payload(json.loads(json.dumps(vocab.to_payload())))
        served_conventions = Conventions.from_payload(json.loads(json.dumps(learned.to_payload())))
        featurizers = {
            end: QueryFeaturizer(
                FeatureExtractor(served_conventions),
                served_vocab,
                HistoryLookup.from_frame(frame, weight=prior_weight),
            )
            for end, frame in snaps.items()
        }
        matrices: dict[str, pl.DataFrame] = {}
        heights: dict[str, int] = {}
        nonzero: dict[str, float] = {}
        checked = 0
        for name in lazy:
            positions = (
                parity_rows(split_ids[name], parity_sample, seed) if name in PARITY_SPLITS else []
            )
            pieces = []
            for offset in range(0, max(len(split_ids[name]), 1), BATCH_ROWS):
                split = lazy[name].select(LABELED_COLUMNS).slice(offset, BATCH_ROWS).collect()
                kept, terms = spill.covering(split["event_date"])
                features = with_conventions(kept.drop("event_date"), learned)
                rows = split.join(
                    features.select(
                        "query_id", *BASE_NAMES, "tables", "template", "days_read", "text_key"
                    ),
                    on="query_id",
                    how="left",
                    maintain_order="left",
                )
                block = history_block_of_cumulative(
                    rows, cumulative, weight=prior_weight, until=until[name]
                )
                # a text the parts share is in each of them: weigh it once
                texts = terms.join(rows.select("text_key"), on="text_key", how="semi").unique(
                    "text_key"
                )
                piece = build_matrix(rows, block, tfidf_vectors(texts, vocab))
                here = [p - offset for p in positions if offset <= p < offset + split.height]
                checked += check_rows(name, piece, rows, featurizers[until[name]], here)
                pieces.append(piece)
                del split, kept, terms, features, rows, block, texts
            matrix = _assemble(pieces)
            heights[name] = matrix.height
            nonzero[name] = float(matrix["tfidf_index"].list.len().mean() or 0)
            if sink is None:
                matrices[name] = matrix
            else:
                sink(name, matrix)
            del matrix
    absent = [c for c, n in (gathered.nulls or {}).items() if n == gathered.rows]
    return FeatureSet(
        matrices, vocab, snap, learned, parity_summary(checked), heights, nonzero, absent
    )


def _assemble(pieces: list[pl.DataFrame]) -> pl.DataFrame:
    """One frame of ``pieces`` (emptied), one contiguous chunk per column, as one frame
    built whole would be (a parquet file's row groups follow the chunks): column by column,
    so the copy costs one column on top of the matrix, not a second matrix."""
    columns = []
    for name in pieces[0].columns:
        columns.append(pl.concat([p.get_column(name) for p in pieces], rechunk=True))
        pieces[:] = [p.drop(name) for p in pieces]
    pieces.clear()
    return pl.DataFrame(columns)


_EMPTY_HISTORY = pl.DataFrame(
    schema={
        "event_date": pl.Date,
        "user": pl.String,
        "is_heavy": pl.Boolean,
        "cpu_time_millis": pl.Int64,
        "peak_memory_bytes": pl.Int64,
        "template": pl.String,
        "tables": pl.List(pl.String),
    }
)


def _concat(frames: list[pl.DataFrame], columns: Sequence[str]) -> pl.DataFrame:
    return pl.concat(frames) if frames else pl.DataFrame(schema=dict.fromkeys(columns, pl.String))
