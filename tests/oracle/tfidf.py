"""TF-IDF weights as ``TfidfVocabulary.transform`` computed them in Python (commit c2e793a)."""

from __future__ import annotations

import math
from collections.abc import Mapping

# 1 + ln(count) for the usual counts, computed once: the same floats math.log gives each time
_TF = {count: 1.0 + math.log(count) for count in range(1, 256)}


def transform(
    terms: tuple[str, ...], idf: tuple[float, ...], counts: Mapping[str, int]
) -> tuple[list[int], list[float]]:
    """Sparse TF-IDF of one query: (sorted column indices, L2-normalised weights)."""
    index = {t: i for i, t in enumerate(terms)}
    columns = sorted([index[t] for t in counts if t in index])
    if not columns:
        return [], []
    tf, log = _TF.get, math.log
    weights = [(tf(c) or 1.0 + log(c)) * idf[i] for i in columns for c in [counts[terms[i]]]]
    norm = math.sqrt(sum([w * w for w in weights]))  # in column order, as always
    return columns, [w / norm for w in weights]
