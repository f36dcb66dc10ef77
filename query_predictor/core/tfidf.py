"""TF-IDF over a query's word tokens, with a vocabulary saved as JSON (never pickle).

Terms are the keyword and identifier tokens of :meth:`FeatureExtractor.analyze` (literals are
never terms, so no value, secret or e-mail can enter the vocabulary); a term must also look
like a plain identifier (``[a-z_][a-z0-9_]*``, at most 64 characters). Weights are
``(1 + ln tf) * idf`` with ``idf = ln((1 + N) / (1 + df)) + 1``, L2-normalised per query.

The vocabulary is fitted on the training split only (:func:`fit_vocabulary`); serving loads
the same JSON file and calls :meth:`TfidfVocabulary.transform`.
"""

from __future__ import annotations

import json
import math
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path

import numpy as np

from .sql_tokens import _textscan

FORMAT_VERSION = 1
_TERM = re.compile(r"[a-z_][a-z0-9_]{0,63}")


def is_term(token: str) -> bool:
    """Whether ``token`` may enter the vocabulary (a plain identifier or keyword)."""
    return _TERM.fullmatch(token) is not None


@dataclass(frozen=True)
class TfidfVocabulary:
    terms: tuple[str, ...]
    idf: tuple[float, ...]
    settings: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.terms) != len(self.idf):
            raise ValueError(f"{len(self.terms)} terms but {len(self.idf)} idf values")
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(self.terms)})
        object.__setattr__(self, "_idf", array("d", self.idf))

    def __len__(self) -> int:
        return len(self.terms)

    def transform(self, counts: Mapping[str, int]) -> tuple[list[int], list[float]]:
        """Sparse TF-IDF of one query: (sorted column indices, L2-normalised weights), from the
        compiled core's :func:`~query_predictor.core._textscan.tfidf`."""
        index, idf = self._index, self._idf  # type: ignore[attr-defined]
        return _textscan.tfidf(counts.keys(), counts.values(), index, idf)

    def weigh_batch(self, ends: np.ndarray, columns: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """The weights of many statements at once (what :meth:`transform` gives each of them):
        their (column, count) pairs lie end to end in ``columns`` and ``counts``, sorted by
        column within a statement, statement ``k`` ending at ``ends[k]``."""
        out = np.empty(len(columns), dtype=np.float64)
        _textscan.tfidf_batch(
            np.ascontiguousarray(ends, dtype=np.int64),
            np.ascontiguousarray(columns, dtype=np.int64),
            np.ascontiguousarray(counts, dtype=np.int64),
            self._idf,  # type: ignore[attr-defined]
            out,
        )
        return out

    def to_payload(self) -> dict[str, object]:
        """JSON-ready form; floats are written exactly (shortest repr), never rounded."""
        return {
            "format_version": FORMAT_VERSION,
            "terms": list(self.terms),
            "idf": list(self.idf),
            "settings": self.settings,
        }

    @classmethod
    def from_payload(cls, payload: object, *, origin: str = "payload") -> TfidfVocabulary:
        try:
            if not isinstance(payload, dict):
                raise ValueError(f"expected a JSON object, found {type(payload).__name__}")
            if payload.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"format_version {payload.get('format_version')!r}")
            return cls(tuple(payload["terms"]), tuple(payload["idf"]), payload["settings"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"{origin} is not a TF-IDF vocabulary this version reads: {exc}"
            ) from exc

    def to_json(self, path: str | Path) -> None:
        from query_predictor.storage import write_json

        write_json(path, self.to_payload())

    @classmethod
    def from_json(cls, path: str | Path) -> TfidfVocabulary:
        try:
            payload = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"{path} is not a TF-IDF vocabulary this version reads: {exc}"
            ) from exc
        return cls.from_payload(payload, origin=str(path))


def fit_vocabulary(
    documents: Iterable[Mapping[str, int]],
    *,
    size: int,
    min_df: int = 2,
    repeats: Iterable[int] | None = None,
) -> TfidfVocabulary:
    """The ``size`` terms found in most documents (at least ``min_df``), ties by term.

    ``repeats`` says how many times each document occurs (one each by default): a text that
    100 queries share is fitted once, with the weight of 100 documents."""
    df: Counter[str] = Counter()
    n = 0
    weights = repeat(1) if repeats is None else repeats
    for counts, times in zip(documents, weights, strict=repeats is not None):
        n += times
        for t in counts:
            df[t] += times
    return vocabulary_of_frequencies(df, documents=n, size=size, min_df=min_df)


def vocabulary_of_frequencies(
    frequencies: Mapping[str, int], *, documents: int, size: int, min_df: int = 2
) -> TfidfVocabulary:
    """:func:`fit_vocabulary` from its counts: ``frequencies`` maps each term to the number
    of documents it occurs in (terms that cannot enter a vocabulary, see :func:`is_term`,
    are left out here), ``documents`` is the number of documents. Counts of disjoint parts
    of a corpus (e.g. one day each) add up to the whole corpus's."""
    df = {t: c for t, c in frequencies.items() if is_term(t)}
    ranked = sorted(((-c, t) for t, c in df.items() if c >= min_df))[:size]
    terms = tuple(sorted(t for _, t in ranked))
    idf = tuple(math.log((1 + documents) / (1 + df[t])) + 1.0 for t in terms)
    return TfidfVocabulary(
        terms,
        idf,
        {
            "size": size,
            "min_df": min_df,
            "documents": documents,
            "tf": "1 + ln(count)",
            "idf": "ln((1+N)/(1+df)) + 1",
            "norm": "l2",
        },
    )
