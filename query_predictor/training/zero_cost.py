"""Stage ``zero_cost``: which statement categories are safe to answer "not heavy" unseen.

    python stages/zero_cost.py

On the labeled training window only, count queries and heavy queries per
:class:`~query_predictor.core.classifier.QueryClassifier` category. A candidate category is
validated when it has at least ``min_support`` queries, a heavy rate below
``max_heavy_rate`` and, if ``require_zero_heavy``, no heavy query at all. Every heavy query a
candidate category holds is reported: those are the queries a too-eager rule would have
sent to the shared cluster unseen (the seed's "no heavy query incorrectly filtered").
"""

from __future__ import annotations

import polars as pl

from query_predictor.core.classifier import QueryClassifier
from query_predictor.params import ZeroCost

FORMAT_VERSION = 1
# the labeled columns this stage reads (categorize, category_table, heavy_in_candidates)
COLUMNS = (
    "query_id",
    "query",
    "user",
    "is_heavy",
    "heavy_reason",
    "cpu_time_millis",
    "peak_memory_bytes",
    "error_code",
    "create_time",
)


def categorize(frame: pl.DataFrame, classifier: QueryClassifier) -> pl.DataFrame:
    """``frame`` with a ``category`` column from the SQL text."""
    categories = classifier.classify_many(frame["query"].to_list())
    return frame.with_columns(category=pl.Series(categories, dtype=pl.String))


QUERY_START = 300  # characters of a statement heavy_in_candidates reports


def compact(frame: pl.DataFrame) -> pl.DataFrame:
    """What this stage keeps of a categorized batch: the SQL text's start, and only for heavy
    rows (the ones :func:`heavy_in_candidates` reports), so the window's texts never pile up."""
    start = pl.col("query").str.slice(0, QUERY_START)
    return frame.with_columns(query=pl.when(pl.col("is_heavy")).then(start))


def category_table(frame: pl.DataFrame) -> pl.DataFrame:
    """Per category: ``count``, ``heavy`` and ``heavy_rate``, most frequent first."""
    return (
        frame.group_by("category")
        .agg(count=pl.len(), heavy=pl.col("is_heavy").sum())
        .with_columns(heavy_rate=pl.col("heavy") / pl.col("count"))
        .sort(["count", "category"], descending=[True, False])
    )


def decide(table: pl.DataFrame, rules: ZeroCost) -> dict[str, dict[str, object]]:
    """Validate each category against ``rules``; the verdict names the rule that failed."""
    verdicts: dict[str, dict[str, object]] = {}
    for row in table.iter_rows(named=True):
        candidate = row["category"] in rules.candidates
        if not candidate:
            reason = "not a candidate"
        elif row["count"] < rules.min_support:
            reason = f"support {row['count']} < min_support {rules.min_support}"
        elif row["heavy_rate"] >= rules.max_heavy_rate:
            reason = f"heavy rate {row['heavy_rate']:.4f} >= max_heavy_rate {rules.max_heavy_rate}"
        elif rules.require_zero_heavy and row["heavy"] > 0:
            reason = f"{row['heavy']} heavy queries and require_zero_heavy is true"
        else:
            reason = "validated"
        verdicts[row["category"]] = {
            "count": int(row["count"]),
            "heavy": int(row["heavy"]),
            "heavy_rate": round(float(row["heavy_rate"]), 6),
            "candidate": candidate,
            "validated": reason == "validated",
            "reason": reason,
        }
    return verdicts


def heavy_in_candidates(frame: pl.DataFrame, rules: ZeroCost) -> pl.DataFrame:
    """Every heavy query that falls in a candidate category (the queries a rule would miss)."""
    return (
        frame.filter(pl.col("is_heavy") & pl.col("category").is_in(list(rules.candidates)))
        .select(
            "category",
            "query_id",
            "user",
            "heavy_reason",
            (pl.col("cpu_time_millis") / 1000).alias("cpu_seconds"),
            (pl.col("peak_memory_bytes") / 2**30).alias("peak_memory_gib"),
            "error_code",
            pl.col("query").str.slice(0, QUERY_START).alias("query_start"),
        )
        .sort("category", "query_id")
    )
