"""One query in, one routing decision out: what a router asks of the model bundle.

    >>> predictor = Predictor.from_bundle("models")
    >>> predictor.predict("SHOW TABLES FROM hive.sales", QueryContext(user="alice")).stage
    'zero_cost'

The bundle is the ``models/`` directory the pipeline writes and DVC versions:
``model.onnx`` and ``metadata.json`` (stage ``export``), ``tfidf_vocab.json`` and
``history_stats.parquet`` and ``sql_conventions.json`` (``featurize``),
``zero_cost_categories.json`` (``zero_cost``).
A statement in a category the zero_cost stage validated on data is answered "not heavy"
without the model. Any other goes through the featurizer that training used and the ONNX
model, and is heavy when its probability reaches the threshold exported with the model.

What the text alone decides (its category, the stage, the text's analysis and TF-IDF vector)
is kept for the texts seen last (:class:`TextCache`, bounded): a statement that comes again
(a dashboard's, a scheduled job's) is only finished with its context (user, time, catalog,
the history) and scored. The cache belongs to the predictor, so a reloaded bundle starts
with an empty one; answers are the same with or without it.
"""

from __future__ import annotations

import gc
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from query_predictor.core import bundle
from query_predictor.core.bundle import BUNDLE_FILES, BundleMetadata, load_bundle
from query_predictor.core.classifier import QueryClassifier
from query_predictor.core.features import QueryContext
from query_predictor.core.featurizer import (
    FEATURE_NAMES,
    FeatureRow,
    PreparedText,
    QueryFeaturizer,
)
from query_predictor.core.history import Bands, resource_bands
from query_predictor.core.onnx_model import CHUNK_ROWS, HeavyQueryModel, ModelError
from query_predictor.core.sql_tokens import decoded, is_comment, tokenize

ZERO_COST, MODEL = "zero_cost", "model"
# an empty, whitespace-only or comments-only statement: nothing runs, the model is not asked
NO_SQL_STAGE = "no_sql"
_SURROGATE = re.compile("[\ud800-\udfff]")
# texts kept by default (serve --statement-cache), and the characters they may hold in all:
# about 10 KB each with its analysis on the test split's statements (740 characters on
# average), so 40 MB per worker when full
STATEMENT_CACHE = 4096
STATEMENT_CACHE_CHARS = 4_000_000
# records a TextCache keeps between two passes of the collector over the youngest generation
SWEEP_EVERY = 32
__all__ = [
    "BUNDLE_FILES",
    "MODEL",
    "NO_SQL_STAGE",
    "SWEEP_EVERY",
    "ZERO_COST",
    "Prediction",
    "Predictions",
    "Predictor",
    "TextCache",
]


@dataclass(frozen=True)
class Prediction:
    heavy: bool
    probability: float  # 0.0 for a zero-cost statement (the model did not run)
    stage: str  # ZERO_COST, MODEL or NO_SQL_STAGE: what decided
    threshold: float  # probability at which a query is heavy
    model_version: str  # name@sha256 prefix of the ONNX model
    category: str  # the classifier's statement category (query_predictor.core.classifier)
    # expected CPU and memory from the history the statement resembles most (model stage only)
    bands: Bands | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["bands"] = self.bands.as_dict() if self.bands is not None else None
        return out


@dataclass(frozen=True)
class _Known:
    """What the text of a statement alone decides."""

    category: str
    stage: str
    prepared: PreparedText | None  # for the model stage only
    # the TF-IDF vector where it goes in the model's row (after the dense features)
    columns: np.ndarray | None = None  # int64
    weights: np.ndarray | None = None  # float32

    def record(self) -> tuple[Any, ...] | None:
        """What :class:`TextCache` keeps: one flat tuple of strings and arrays, which the
        garbage collector stops tracking at its first pass over it (``_Statement.record``).
        Kept as objects (this dataclass, the analysis's named tuple, its sets and lists),
        4,096 cached texts were 50,000 tracked objects, and every collection that reached
        them paused a worker for up to 20-60 ms (docs/serving.md). None: not to be kept."""
        if self.prepared is None:
            return (self.category, self.stage)
        prepared = self.prepared.record()
        if prepared is None:
            return None
        return (self.category, self.stage, self.columns, self.weights, *prepared)

    @classmethod
    def from_record(cls, record: tuple[Any, ...]) -> _Known:
        if len(record) == 2:
            return cls(record[0], record[1], None)
        category, stage, columns, weights = record[:4]
        return cls(category, stage, PreparedText.from_record(record[4:]), columns, weights)


class TextCache:
    """The :meth:`_Known.record` of the texts used last, least recently used out first; bounded
    by ``entries`` and by ``chars``, the total length of the texts kept (a longer text than
    ``chars // 64`` is never kept). ``entries=0``: nothing kept. Safe across threads.

    A record is tracked by the garbage collector until its first pass over the youngest
    generation. That pass is due after 700 allocations *net of deallocations*; once the cache
    is full, each record kept frees an old one, so the count hardly moves, the pass did not
    come for thousands of requests, and then walked the records of all of them at once (a
    worker paused 2-17 ms every second or two at 500 requests/s, docs/serving.md). So the
    cache runs that pass itself, every :data:`SWEEP_EVERY` records it keeps (0.2-0.5 ms).
    """

    def __init__(self, entries: int = STATEMENT_CACHE, chars: int = STATEMENT_CACHE_CHARS) -> None:
        if entries < 0 or chars < 0:
            raise ValueError(f"entries={entries} and chars={chars} must be >= 0")
        self.entries, self.chars = entries, chars
        self._items: OrderedDict[str, tuple[Any, ...]] = OrderedDict()
        self._held = 0  # characters
        self._lock = threading.Lock()
        self.hits = self.misses = 0
        self._unswept = 0  # records kept since the last pass of the collector

    def __len__(self) -> int:
        return len(self._items)

    def get(self, text: str) -> tuple[Any, ...] | None:
        with self._lock:
            known = self._items.get(text)
            if known is None:
                self.misses += 1
            else:
                self.hits += 1
                self._items.move_to_end(text)
            return known

    def put(self, text: str, known: tuple[Any, ...]) -> None:
        if self.entries == 0 or len(text) > self.chars // 64:
            return
        with self._lock:
            if text in self._items:
                return
            self._items[text] = known
            self._held += len(text)
            while len(self._items) > self.entries or self._held > self.chars:
                old, _ = self._items.popitem(last=False)
                self._held -= len(old)
            self._unswept += 1
            sweep = self._unswept >= SWEEP_EVERY
            if sweep:
                self._unswept = 0
        if sweep:
            gc.collect(0)  # untracks the records kept since the last one

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._held = 0


@dataclass
class Predictor:
    classifier: QueryClassifier
    zero_cost: frozenset[str]
    featurizer: QueryFeaturizer
    model: HeavyQueryModel
    statement_cache: int = STATEMENT_CACHE  # texts predict() keeps (0: none)
    # built anew with every instance (dataclasses.replace too): never shared with other parts
    cache: TextCache = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.cache = TextCache(self.statement_cache)

    @classmethod
    def from_bundle(
        cls, directory: str | Path, *, statement_cache: int = STATEMENT_CACHE
    ) -> Predictor:
        """Load the bundle in ``directory``; a missing or broken file is a :class:`ModelError`
        that names it. ``statement_cache``: texts :meth:`predict` keeps (0: none)."""
        directory = Path(directory)
        metadata = load_bundle(directory)  # every file present, and all from one run
        model = HeavyQueryModel.with_metadata(directory / bundle.MODEL, metadata)
        weight = metadata.featurizer.history_prior_weight
        try:
            featurizer = QueryFeaturizer.from_bundle(directory, prior_weight=weight)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{directory}: the featurizer's files do not load ({exc})") from None
        width = len(FEATURE_NAMES) + len(featurizer.vocabulary)
        if width != model.width:
            raise ModelError(
                f"{directory}: the model takes {model.width} features but the featurizer "
                f"gives {width}; the files come from different runs (dvc checkout)"
            )
        classifier, zero_cost = _zero_cost(directory / bundle.ZERO_COST)
        return cls(classifier, zero_cost, featurizer, model, statement_cache)

    @property
    def metadata(self) -> BundleMetadata:
        return self.model.metadata

    @property
    def version(self) -> str:
        return self.metadata.version

    def predict(
        self, sql: str | bytes | None, context: QueryContext | None = None, *, bands: bool = True
    ) -> Prediction:
        """The routing decision for one statement and what the router knows of it;
        ``bands=False``: without :attr:`Prediction.bands` (None), for a caller that does not
        use them."""
        return self.predict_batch([(sql, context)], bands=bands)[0]

    def predict_batch(
        self,
        statements: Sequence[tuple[str | bytes | None, QueryContext | None]],
        *,
        bands: bool = True,
    ) -> list[Prediction]:
        """:meth:`predict` of each (statement, context), the model run once for all of them:
        what a server answering several requests at once calls. The answers are those of
        :meth:`predict` one at a time, to the bit (the ensemble sums each row's trees in
        the same order whatever the batch)."""
        answers: list[Any] = []  # a Prediction each; None until the model has spoken
        scored: list[tuple[int, _Known, FeatureRow, QueryContext]] = []
        for sql, context in statements:
            known = self._known(readable(sql))  # the classifier sees the whole text
            if known.prepared is None:
                answers.append(
                    Prediction(
                        False, 0.0, known.stage, self.model.threshold, self.version, known.category
                    )
                )
                continue
            context = context or QueryContext()
            scored.append(
                (len(answers), known, self.featurizer.complete(known.prepared, context), context)
            )
            answers.append(None)
        if not scored:
            return answers
        matrix = np.zeros((len(scored), self.model.width), dtype=np.float32)
        for r, (_, known, row, _) in enumerate(scored):
            matrix[r, : len(row.dense)] = row.dense
            matrix[r, known.columns] = known.weights  # what _matrix does, from the kept arrays
        probability, heavy = self.model.predict_rows(matrix)
        history = self.featurizer.history
        for r, (i, known, row, context) in enumerate(scored):
            expected = None
            if bands:
                expected = resource_bands(
                    history, user=context.user, template=row.template, tables=row.tables
                )
            answers[i] = Prediction(
                bool(heavy[r]),
                float(probability[r]),
                MODEL,
                self.model.threshold,
                self.version,
                known.category,
                expected,
            )
        return answers

    def _known(self, text: str) -> _Known:
        """What ``text`` alone decides, from the cache or worked out (and kept)."""
        kept = self.cache.get(text)
        if kept is not None:
            return _Known.from_record(kept)
        category = self.classifier.classify(text)
        stage = self._stage(text, category)
        known = _Known(category, stage, None)
        if stage == MODEL:
            prepared = self.featurizer.prepare(text)
            index, value = prepared.vector
            columns = np.asarray(index, dtype=np.int64) + len(FEATURE_NAMES)
            weights = np.asarray(value, dtype=np.float32)
            known = _Known(category, stage, prepared, columns, weights)
        record = known.record()
        if record is not None:
            self.cache.put(text, record)
        return known

    def predict_many(
        self, statements: Sequence[str | bytes | None], contexts: Sequence[QueryContext]
    ) -> Predictions:
        """:meth:`predict` of each statement with its context, as columns, with the dense
        features the model saw. A text that repeats is featurized once; the model runs on
        chunks of rows, so memory stays bounded whatever the number of statements."""
        if len(statements) != len(contexts):
            raise ValueError(f"{len(statements)} statements but {len(contexts)} contexts")
        texts = [readable(sql) for sql in statements]
        categories = self.classifier.classify_many(texts)
        stage = [self._stage(t, c) for t, c in zip(texts, categories, strict=True)]
        scored = [i for i, decided in enumerate(stage) if decided == MODEL]
        n = len(texts)
        probability = np.zeros(n, dtype=np.float32)
        heavy = np.zeros(n, dtype=bool)
        dense = np.full((n, len(FEATURE_NAMES)), np.nan, dtype=np.float32)
        templates: list[str | None] = [None] * n
        tables: list[list[str]] = [[] for _ in range(n)]
        for start in range(0, len(scored), CHUNK_ROWS):
            rows = scored[start : start + CHUNK_ROWS]
            features = list(
                self.featurizer.featurize_many(
                    [texts[i] for i in rows], [contexts[i] for i in rows]
                )
            )
            matrix = self._matrix(features)
            probability[rows], heavy[rows] = self.model.predict(matrix)
            dense[rows] = matrix[:, : len(FEATURE_NAMES)]
            for i, feature in zip(rows, features, strict=True):
                templates[i], tables[i] = feature.template, feature.tables
        return Predictions(probability, heavy, stage, categories, dense, templates, tables)

    def _stage(self, text: str, category: str) -> str:
        """What decides: nothing to run, a zero-cost category, or the model."""
        if not has_sql(text):
            return NO_SQL_STAGE
        return ZERO_COST if category in self.zero_cost else MODEL

    def _matrix(self, rows: Sequence[FeatureRow]) -> np.ndarray:
        """The model's input: dense features, then the TF-IDF vector (zeros are absent)."""
        matrix = np.zeros((len(rows), self.model.width), dtype=np.float32)
        for i, row in enumerate(rows):
            matrix[i, : len(row.dense)] = row.dense
            matrix[i, np.asarray(row.tfidf_index, dtype=np.int64) + len(row.dense)] = (
                row.tfidf_value
            )
        return matrix


@dataclass(frozen=True)
class Predictions:
    """:meth:`Predictor.predict_many`'s answers, one entry per statement."""

    probability: np.ndarray  # float32; 0 where a zero-cost category answered
    heavy: np.ndarray  # bool
    stage: list[str]  # ZERO_COST, MODEL or NO_SQL_STAGE
    category: list[str]
    dense: np.ndarray  # float32 (statements x FEATURE_NAMES); NaN where not featurized
    template: list[str | None]  # the history's template key; None where not featurized
    tables: list[list[str]]  # the history's table keys; empty where not featurized


def readable(sql: str | bytes | None) -> str:
    """``sql`` as text every later step can encode: bytes decoded (invalid UTF-8 replaced),
    None as "", and a lone surrogate (``"\\ud800"`` in JSON, or undecodable bytes in a
    command line) replaced by U+FFFD."""
    text = decoded(sql) or ""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def has_sql(text: str) -> bool:
    """Whether ``text`` holds anything but whitespace, comments and semicolons."""
    head = text.lstrip()
    if head[:1].isalnum() or head[:1] == "(":  # the common case, without a scan
        return True
    return any(not is_comment(token) and token != ";" for token in tokenize(head))


def _zero_cost(path: Path) -> tuple[QueryClassifier, frozenset[str]]:
    """The classifier and the categories validated as zero-cost, from the zero_cost stage's
    output."""
    try:
        payload = json.loads(path.read_text())
        validated = frozenset(payload["validated"])
        small_limit = int(payload["small_limit"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path} is not the zero_cost stage's output ({exc!r})") from None
    return QueryClassifier(small_limit=small_limit), validated
