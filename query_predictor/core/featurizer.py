"""One query in, one feature row out: what serving calls, and what training must agree with.

    >>> featurizer = QueryFeaturizer.from_bundle("models", prior_weight=20.0)
    >>> row = featurizer.featurize("SELECT 1", QueryContext(user="alice"))

A row is the 78 base features, the 24 historical features (:data:`FEATURE_NAMES`, in that
order) and the sparse TF-IDF vector. The fitted state (vocabulary, history snapshot, the
site's conventions) is read
from the model bundle; nothing is re-implemented here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .conventions import Conventions
from .features import (
    BASE_NAMES,
    Analysis,
    FeatureExtractor,
    QueryContext,
    _Statement,
    days_read,
)
from .history import HISTORY_NAMES, HistoryLookup
from .tfidf import TfidfVocabulary

FEATURE_NAMES: tuple[str, ...] = (*BASE_NAMES, *HISTORY_NAMES)
_PARTITION = BASE_NAMES.index("has_partition_predicate")


@dataclass(frozen=True)
class FeatureRow:
    dense: list[float]  # FEATURE_NAMES order
    tfidf_index: list[int]
    tfidf_value: list[float]
    template: str
    tables: list[str]


@dataclass(frozen=True)
class PreparedText:
    """The context-free part of a row (:meth:`QueryFeaturizer.prepare`); read-only."""

    statement: Any  # the extractor's analysis of the text alone
    vector: tuple[list[int], list[float]]  # TF-IDF (column indices, weights)

    def record(self) -> tuple[Any, ...] | None:
        """This as one flat tuple the garbage collector stops tracking at its first pass (for
        a cache that keeps thousands: see ``_Statement.record``, None when there is none);
        :meth:`from_record` undoes it."""
        statement = self.statement.record()
        if statement is None:
            return None
        index, value = self.vector
        return (*statement, np.array(index, dtype=np.int64), np.array(value, dtype=np.float64))

    @classmethod
    def from_record(cls, record: Sequence[Any]) -> PreparedText:
        index, value = record[-2:]
        return cls(_Statement.from_record(record[:-2]), (index.tolist(), value.tolist()))


@dataclass
class QueryFeaturizer:
    extractor: FeatureExtractor
    vocabulary: TfidfVocabulary
    history: HistoryLookup

    @classmethod
    def from_bundle(cls, directory: str | Path, *, prior_weight: float) -> QueryFeaturizer:
        directory = Path(directory)
        return cls(
            FeatureExtractor(Conventions.from_json(directory / "sql_conventions.json")),
            TfidfVocabulary.from_json(directory / "tfidf_vocab.json"),
            HistoryLookup.from_parquet(directory / "history_stats.parquet", weight=prior_weight),
        )

    def featurize(self, sql: str | bytes | None, context: QueryContext) -> FeatureRow:
        analysis = self.extractor.analyze(sql, context)
        return self._row(analysis, context, self.vocabulary.transform(analysis.terms))

    def prepare(self, sql: str | bytes | None) -> PreparedText:
        """What :meth:`featurize` takes from the text alone (analysis and TF-IDF vector), for
        a caller that keeps it for texts that come again; :meth:`complete` finishes a row."""
        statement = self.extractor.statement(sql)
        return PreparedText(statement, self.vocabulary.transform(statement.terms))

    def complete(self, prepared: PreparedText, context: QueryContext) -> FeatureRow:
        """:meth:`featurize` of the text ``prepared`` came from, in ``context``."""
        analysis = self.extractor.complete(prepared.statement, context)
        return self._row(analysis, context, prepared.vector)

    def featurize_many(
        self, statements: Sequence[str | bytes | None], contexts: Sequence[QueryContext]
    ) -> Iterator[FeatureRow]:
        """:meth:`featurize` of each statement with its context, in order; a text that repeats
        is analysed and weighed once (callers pass a bounded batch)."""
        vectors: dict[str | bytes | None, tuple[list[int], list[float]]] = {}
        analyses = self.extractor.analyze_many(statements, contexts)
        for sql, context, analysis in zip(statements, contexts, analyses, strict=True):
            vector = vectors.get(sql)
            if vector is None:
                vector = vectors[sql] = self.vocabulary.transform(analysis.terms)
            yield self._row(analysis, context, vector)

    def _row(
        self, analysis: Analysis, context: QueryContext, vector: tuple[list[int], list[float]]
    ) -> FeatureRow:
        history = self.history.features(
            user=context.user,
            template=analysis.template,
            tables=analysis.tables,
            source=context.source,
            partition_filtered=analysis.base[_PARTITION] > 0,
            days=days_read(analysis.base),
        )
        index, value = vector
        return FeatureRow(
            [*analysis.base, *history], index, value, analysis.template, analysis.tables
        )
