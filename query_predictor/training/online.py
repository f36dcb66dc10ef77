"""Online metrics: the routing decisions actually taken, read back from the query log.

``query-predictor serve`` appends its decision to each query's client tags
(:mod:`query_predictor.core.client_tags`) and Trino logs them in ``client_tags``. For the
replay window this module reads them back and reports, beside the offline replay:

- per model version that tagged rows: recall, FNR, routed share and expected cost
  (``cost_fn * FN + cost_fp * FP`` per query) of the decisions the service took;
- agreement: the share of rows tagged by the replayed bundle's own version whose online
  decision equals the replay's (offline) decision for the same statement. Only that version
  can be re-scored offline; rows of other versions are counted and judged, not compared.
  Anything below 1 is train/serve skew in production: a different featurizer or history
  snapshot, a bundle mixed by hand, a service that reloaded late;
- the tags that say nothing trustworthy: malformed ``qp=`` tags and rows with two decisions
  that differ, counted, never fatal.

A log without a ``client_tags`` column, or whose column holds no decision tag, gives no
online section (:func:`online_metrics` returns None and says why).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import polars as pl

from query_predictor.core.client_tags import (
    TAG_STATUSES,
    Decision,
    TagStatus,
    find_decision,
    tag_version,
)
from query_predictor.service.predictor import Predictions

from .evaluate import routing_rates

# the columns of the disagreeing rows written for inspection
DISAGREEMENT_COLUMNS = (
    "query_id",
    "create_time",
    "user",
    "is_heavy",
    "online_heavy",
    "online_probability",
    "online_stage",
    "offline_heavy",
    "offline_probability",
    "offline_stage",
    "client_tags",
)


@dataclass
class OnlineResult:
    """:func:`online_metrics`' answer: the section of ``metrics/replay.json`` (None when the
    log carries no decision), why there is none, and the disagreeing rows."""

    section: dict[str, object] | None
    reason: str | None
    disagreements: pl.DataFrame


def decisions_of(tags: pl.Series) -> tuple[list[Decision | None], Counter[str]]:
    """Each row's decision (None where there is no trustworthy one) and the
    :class:`~query_predictor.core.client_tags.TagStatus` counts."""
    found = [find_decision(row) for row in tags.to_list()]
    counts = Counter(status for _, status in found)
    return [decision for decision, _ in found], counts


def online_metrics(
    labeled: pl.DataFrame,
    answers: Predictions,
    *,
    version: str,
    cost_fn: float,
    cost_fp: float,
    min_recall: float,
    max_fnr: float,
) -> OnlineResult:
    """The online section for the rows of ``labeled`` (with ``is_heavy`` and, if the log has
    it, ``client_tags``), answered offline by the bundle of model version ``version`` in
    ``answers`` (same order as ``labeled``)."""
    empty = pl.DataFrame(schema={c: pl.String for c in DISAGREEMENT_COLUMNS})
    if "client_tags" not in labeled.columns or labeled["client_tags"].null_count() == len(labeled):
        return OnlineResult(None, "the log has no client_tags column", empty)
    decisions, statuses = decisions_of(labeled["client_tags"])
    tag_counts = {status: statuses.get(status, 0) for status in TAG_STATUSES}
    tagged = np.array([d is not None for d in decisions])
    if not tagged.any():
        reason = (
            f"no row of the window carries a decision tag ({_describe(tag_counts)}); "
            "is the service's decision tag on (serve --no-decision-tag turns it off)?"
        )
        return OnlineResult(None, reason, empty)
    labels = labeled["is_heavy"].to_numpy().astype(bool)
    online_heavy = np.array([bool(d and d.heavy) for d in decisions])
    versions = np.array([d.version if d else "" for d in decisions], dtype=object)
    current = tag_version(version)
    judge = dict(cost_fn=cost_fn, cost_fp=cost_fp, min_recall=min_recall, max_fnr=max_fnr)
    by_version = {
        v: _judged(labels[on], online_heavy[on], **judge) | {"current": v == current}
        for v in sorted(set(versions[tagged]))
        for on in [versions == v]
    }
    mine = versions == current
    compared = int(mine.sum())
    differ = mine & (online_heavy != answers.heavy)
    section: dict[str, object] = {
        "rows": int(labels.size),
        "tags": tag_counts,
        "tagged_share": float(tagged.mean()),
        **_judged(labels[tagged], online_heavy[tagged], **judge),
        "offline_on_tagged": _judged(labels[tagged], answers.heavy[tagged], **judge),
        "current_version": current,
        "other_version_rows": int((tagged & ~mine).sum()),
        "agreement": 1.0 - float(differ.sum()) / compared if compared else None,
        "compared": compared,
        "disagreeing": int(differ.sum()),
        "disagreeing_online_light": int((differ & ~online_heavy).sum()),
        "disagreeing_heavy_missed_online": int((differ & ~online_heavy & labels).sum()),
        "versions": by_version,
    }
    return OnlineResult(section, None, _disagreements(labeled, answers, decisions, differ))


def _judged(
    labels: np.ndarray,
    routed: np.ndarray,
    *,
    cost_fn: float,
    cost_fp: float,
    min_recall: float,
    max_fnr: float,
) -> dict[str, object]:
    """Recall, FNR, routed share and expected cost of decisions taken; recall and FNR are
    None without a heavy query among them."""
    rates = routing_rates(labels, routed, min_recall=min_recall, max_fnr=max_fnr)
    counts: dict[str, int] = rates["counts"]  # type: ignore[assignment]
    heavy = counts["tp"] + counts["fn"]
    cost = cost_fn * counts["fn"] + cost_fp * counts["fp"]
    return {
        "recall": rates["recall"] if heavy else None,
        "fnr": rates["fnr"] if heavy else None,
        "routed_share": rates["routed_share"],
        "expected_cost": cost / labels.size if labels.size else 0.0,
        "rows": int(labels.size),
        "heavy": heavy,
        "heavy_missed": counts["fn"],
    }


def _disagreements(
    labeled: pl.DataFrame,
    answers: Predictions,
    decisions: list[Decision | None],
    differ: np.ndarray,
) -> pl.DataFrame:
    rows = np.flatnonzero(differ)
    picked = labeled[rows.tolist()] if rows.size else labeled.clear()
    online = [decisions[i] for i in rows]
    return pl.DataFrame(
        {
            "query_id": picked["query_id"],
            "create_time": picked["create_time"].dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ"),
            "user": picked["user"],
            "is_heavy": picked["is_heavy"],
            "online_heavy": pl.Series([d.heavy for d in online if d], dtype=pl.Boolean),
            "online_probability": pl.Series([d.probability for d in online if d], dtype=pl.Float64),
            "online_stage": pl.Series([d.stage for d in online if d], dtype=pl.String),
            "offline_heavy": pl.Series(answers.heavy[rows], dtype=pl.Boolean),
            "offline_probability": pl.Series(answers.probability[rows], dtype=pl.Float64),
            "offline_stage": pl.Series([answers.stage[i] for i in rows], dtype=pl.String),
            "client_tags": picked["client_tags"].list.join(","),
        }
    )


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def with_simulated_tags(
    labeled: pl.DataFrame, simulated: pl.DataFrame
) -> tuple[pl.DataFrame, dict[str, int]]:
    """``labeled`` with the ``simulate_online`` stage's tags in ``client_tags`` where a row
    has none of its own decision; rows with a decision of their own keep it (counted)."""
    if simulated.is_empty():
        return labeled, {"joined": 0, "kept_own": 0}
    joined = labeled.join(
        simulated.rename({"client_tags": "_simulated"}), on="query_id", how="left"
    )
    own = joined["client_tags"].to_list()
    has_own = np.array([find_decision(t)[1] != TagStatus.UNTAGGED for t in own])
    use = joined["_simulated"].is_not_null().to_numpy() & ~has_own
    merged = joined.with_columns(
        client_tags=pl.when(pl.Series(use)).then("_simulated").otherwise("client_tags")
    ).drop("_simulated")
    return merged, {"joined": int(use.sum()), "kept_own": int((has_own & ~use).sum())}
