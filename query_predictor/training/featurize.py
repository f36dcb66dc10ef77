"""Stage ``featurize``: feature matrices for train / validation / test, and parity proof.

    python stages/featurize.py

1. Every labeled row from ``data_loading.start_date`` to the end of the test window goes
   once through :meth:`FeatureExtractor.analyze` (base features, tables, template, terms),
   in parallel over chunks (``engine.workers``).
2. History: each split row gets statistics from the labeled rows *strictly before its day*,
   with the history cut at the end of the training window, so validation and test rows see
   exactly the training-window snapshot that serving loads (``models/history_stats.parquet``).
3. TF-IDF: the vocabulary is fitted on the training split only (``models/tfidf_vocab.json``).
4. Parity: a hash-chosen sample of validation and test rows is featurized again through the
   single-query serving path (:class:`~query_predictor.core.featurizer.QueryFeaturizer`) and
   compared, feature by feature, with the batch rows; any difference fails the stage.

Matrices are parquet: 95 float32 columns plus the sparse TF-IDF vector as two list columns
(``tfidf_index``, ``tfidf_value``): one columnar file per split, a few percent of a dense
1,000-column matrix, read straight into CSR by the trainer.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import multiprocessing
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import chain
from typing import TypeVar

import numpy as np
import polars as pl
from tqdm import tqdm

from query_predictor.core.features import BASE_NAMES, FeatureExtractor, QueryContext
from query_predictor.core.featurizer import FEATURE_NAMES, QueryFeaturizer, day_number
from query_predictor.core.history import HistoryLookup, history_features
from query_predictor.core.tfidf import TfidfVocabulary, fit_vocabulary

from .hashing import unit_hashes
from .history import point_in_time, snapshot

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


def context_of(row: dict) -> QueryContext:
    """The router's view of a raw-log row (the same fields Trino Gateway passes)."""
    return QueryContext(
        user=row["user"],
        source=row["source"],
        catalog=row["catalog"],
        schema=row["schema"],
        query_type=row["query_type"],
        time=row["create_time"],
        session_properties=QueryContext.session_from_json(row["session_properties"]),
    )


def _analyze_chunk(chunk: pl.DataFrame) -> pl.DataFrame:
    """Analyze one chunk (a batch: a text repeated in it is analysed once); the result holds
    query_id, tables and template for every row, and base features and TF-IDF terms only
    where ``full`` is true (split rows), so the history-only rows cost no memory beyond
    their keys."""
    extractor = FeatureExtractor()
    full = chunk["full"].to_list()
    missing = [math.nan] * len(BASE_NAMES)
    base: list[list[float]] = []
    tables, templates = [], []
    term_keys: list[list[str] | None] = []
    term_counts: list[list[int] | None] = []
    contexts = [context_of(row) for row in chunk.select(CONTEXT_COLUMNS).iter_rows(named=True)]
    analyses = extractor.analyze_many(chunk["query"].to_list(), contexts)
    for keep, a in zip(full, analyses, strict=True):
        tables.append(a.tables)
        templates.append(a.template)
        if keep:
            base.append(a.base)
            term_keys.append(list(a.terms))
            term_counts.append(list(a.terms.values()))
        else:
            base.append(missing)
            term_keys.append(None)
            term_counts.append(None)
    block = np.array(base, dtype=np.float32).reshape(len(base), len(BASE_NAMES))
    return pl.DataFrame(block, schema=list(BASE_NAMES)).with_columns(
        tables=list_series(tables, pl.String),
        template=pl.Series(templates, dtype=pl.String),
        term_keys=list_series(term_keys, pl.String),
        term_counts=list_series(term_counts, pl.Int32),
    )


def _progress(items: Iterable[T], total: int) -> Iterable[T]:
    """A progress bar over chunks of 20,000 statements (quiet when not a terminal)."""
    return tqdm(items, total=total, desc="featurize", unit="chunk", disable=None)


def analyze_frame(
    frame: pl.DataFrame, *, workers: int, full: pl.Series | None = None
) -> pl.DataFrame:
    """``frame`` with base features, ``tables``, ``template`` and TF-IDF terms added (base
    features and terms only where ``full``, default every row; NaN / null elsewhere). Chunks go
    to ``workers`` processes; each returns a compact frame, so memory stays near the size of
    the result."""
    flags = full if full is not None else pl.Series("full", [True] * frame.height)
    source = frame.select(*CONTEXT_COLUMNS).with_columns(full=flags)
    size = 20_000
    chunks = [source.slice(i, size) for i in range(0, source.height, size)] or [source]
    if workers > 1 and len(chunks) > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            parts = list(_progress(pool.map(_analyze_chunk, chunks), len(chunks)))
    else:
        parts = [_analyze_chunk(c) for c in _progress(chunks, len(chunks))]
    return frame.hstack(pl.concat(parts))


def list_series(lists: Sequence[Sequence[object] | None], inner: type[pl.DataType]) -> pl.Series:
    """A list column of ``inner`` from Python lists (None -> null).

    Built flat and regrouped in polars: given nested Python lists, polars makes one Series
    per row, which cost more than the featurizer itself (about 12 us a row per column)."""
    n = len(lists)
    lengths = np.fromiter((len(x) if x is not None else 0 for x in lists), np.int64, count=n)
    flat = pl.Series("value", list(chain.from_iterable(x for x in lists if x)), dtype=inner)
    grouped = (
        pl.DataFrame([pl.Series("row", np.repeat(np.arange(n), lengths)), flat])
        .group_by("row")
        .agg("value")
    )
    missing = pl.Series("missing", [x is None for x in lists], dtype=pl.Boolean)
    return (
        pl.DataFrame([pl.Series("row", np.arange(n)), missing])
        .join(grouped, on="row", how="left", maintain_order="left")
        .select(
            pl.when(pl.col("missing"))
            .then(None)
            .otherwise(pl.col("value").fill_null(pl.lit([], dtype=pl.List(inner))))
        )
        .to_series()
        .rechunk()
    )


def _terms(frame: pl.DataFrame) -> list[dict[str, int]]:
    return [
        dict(zip(k, c, strict=True))
        for k, c in zip(frame["term_keys"].to_list(), frame["term_counts"].to_list(), strict=True)
    ]


@dataclass
class FeatureSet:
    matrices: dict[str, pl.DataFrame]
    vocabulary: TfidfVocabulary
    history: pl.DataFrame
    parity: dict[str, object]


def history_block(rows: pl.DataFrame, history: pl.DataFrame, *, weight: float) -> np.ndarray:
    """17 history features per row, point in time against ``history``."""
    stats = point_in_time(rows, history)
    days = [day_number(d) for d in rows["event_date"]]
    out = np.empty((rows.height, 17), dtype=np.float64)
    for i, ((user, template, tables, prior), day) in enumerate(zip(stats, days, strict=True)):
        out[i] = history_features(user, template, tables, prior=prior, weight=weight, day=day)
    return out


def tfidf_block(rows: pl.DataFrame, vocab: TfidfVocabulary) -> pl.DataFrame:
    """``tfidf_index`` and ``tfidf_value`` of each row of ``rows`` (which has ``query`` and the
    terms of :func:`analyze_frame`). A statement's terms depend on its text alone, so each
    distinct text is transformed once and joined back to its rows."""
    distinct = rows.select("query", "term_keys", "term_counts").unique(
        "query", keep="first", maintain_order=True
    )
    index, value = (
        zip(*(vocab.transform(t) for t in _terms(distinct)), strict=True)
        if distinct.height
        else ((), ())
    )
    vectors = distinct.select("query").with_columns(
        tfidf_index=list_series(index, pl.Int32),
        tfidf_value=list_series(value, pl.Float32),
    )
    return (
        rows.select("query")
        .join(vectors, on="query", how="left", nulls_equal=True, maintain_order="left")
        .drop("query")
    )


def build_matrix(rows: pl.DataFrame, block: np.ndarray, vocab: TfidfVocabulary) -> pl.DataFrame:
    dense = rows.select(BASE_NAMES).with_columns(
        pl.DataFrame(block.astype(np.float32), schema=list(FEATURE_NAMES[len(BASE_NAMES) :]))
    )
    return pl.concat(
        [
            rows.select(
                "query_id", "event_date", "is_heavy", "cpu_time_millis", "peak_memory_bytes"
            ),
            dense,
            tfidf_block(rows, vocab),
        ],
        how="horizontal",
    )


def check_parity(
    matrices: dict[str, pl.DataFrame],
    splits: dict[str, pl.DataFrame],
    featurizer: QueryFeaturizer,
    *,
    sample: int,
    seed: int,
) -> dict[str, object]:
    """Featurize a sample of validation and test rows one by one through the serving path and
    compare with the batch rows; raise ValueError naming the first differing row and feature."""
    checked = 0
    for name in ("val", "test"):
        rows, matrix = splits[name], matrices[name]
        u = unit_hashes(rows["query_id"], seed)
        take = np.argsort(u, kind="stable")[: max(1, sample // 2)]
        for i in sorted(take.tolist()):
            row = rows.row(i, named=True)
            single = featurizer.featurize(row["query"], context_of(row))
            batch = matrix.row(i, named=True)
            want = np.asarray(single.dense, dtype=np.float32)
            for j, feature in enumerate(FEATURE_NAMES):
                if want[j] != np.float32(batch[feature]):
                    raise ValueError(
                        f"parity: {name} row {row['query_id']}: feature {feature} is "
                        f"{batch[feature]!r} in batch but {float(want[j])!r} in serving"
                    )
            if single.tfidf_index != batch["tfidf_index"] or not np.array_equal(
                np.asarray(single.tfidf_value, dtype=np.float32),
                np.asarray(batch["tfidf_value"], dtype=np.float32),
            ):
                raise ValueError(f"parity: {name} row {row['query_id']}: TF-IDF vectors differ")
            checked += 1
    return {
        "rows_checked": checked,
        "features_checked": len(FEATURE_NAMES) + 1,
        "mismatches": 0,
        "passed": True,
    }


def featurize(
    labeled: pl.DataFrame,
    splits: dict[str, pl.DataFrame],
    *,
    train_end: dt.date,
    vocab_size: int,
    prior_weight: float,
    parity_sample: int,
    seed: int,
    workers: int = 0,
) -> FeatureSet:
    """Run steps 1-4 of the module docstring."""
    workers = workers or os.cpu_count() or 1
    in_splits = pl.concat([s.select("query_id") for s in splits.values()])["query_id"]
    analyzed = analyze_frame(
        labeled, workers=workers, full=labeled["query_id"].is_in(in_splits.implode())
    )
    history = analyzed.filter(pl.col("event_date") <= train_end).select(
        "event_date",
        "user",
        "is_heavy",
        "cpu_time_millis",
        "peak_memory_bytes",
        "tables",
        "template",
    )
    keyed = analyzed.select(
        "query_id", *BASE_NAMES, "tables", "template", "term_keys", "term_counts"
    )
    rows = {
        n: s.join(keyed, on="query_id", how="left", maintain_order="left")
        for n, s in splits.items()
    }
    missing = {n: r["template"].null_count() for n, r in rows.items()}
    if any(missing.values()):
        raise ValueError(f"split rows missing from the labeled data: {missing}")
    vocab = fit_vocabulary(_terms(rows["train"]), size=vocab_size)
    matrices = {
        n: build_matrix(r, history_block(r, history, weight=prior_weight), vocab)
        for n, r in rows.items()
    }
    snap = snapshot(history, until=train_end)
    # the serving side reads the bundle from files: check parity against what they hold
    served_vocab = TfidfVocabulary.from_payload(json.loads(json.dumps(vocab.to_payload())))
    featurizer = QueryFeaturizer(
        FeatureExtractor(), served_vocab, HistoryLookup.from_frame(snap, weight=prior_weight)
    )
    parity = check_parity(matrices, rows, featurizer, sample=parity_sample, seed=seed)
    return FeatureSet(matrices, vocab, snap, parity)
