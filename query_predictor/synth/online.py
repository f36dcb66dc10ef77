"""The synthetic log's replay window as a deployed service would have tagged it.

A real log gets its decision tags from ``query-predictor serve`` (Trino logs them in
``client_tags``). The synthetic log is written before any bundle exists, so the
``simulate_online`` stage plays the deployed service afterwards: the exported bundle's
:class:`~query_predictor.service.predictor.Predictor` answers every query of the replay
window (as the load stage keeps it), and the decision's tag
(:func:`~query_predictor.core.client_tags.format_tag`) is appended to the query's own tags,
as ``/v1/route`` does. A ``skew_share`` of the queries, picked by hash of ``query_id``, is
answered by the same bundle with a planted featurizer mismatch instead: a history snapshot
without its per-key statistics (every user, template and table unseen, as in a service that
lost its history file), still tagged with the bundle's version. Replay's agreement figure
must find them.

Rows that already carry a decision tag are left alone: a simulation never overwrites tags
a service wrote.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import polars as pl

from query_predictor.core.client_tags import Decision as TagDecision
from query_predictor.core.client_tags import TagStatus, find_decision, format_tag
from query_predictor.core.features import QueryContext
from query_predictor.service.predictor import Predictions, Predictor
from query_predictor.training.featurize import contexts_of
from query_predictor.training.hashing import keep_fraction

TAGS_SCHEMA = {"query_id": pl.String, "client_tags": pl.List(pl.String)}
SKEW = "history snapshot without per-key statistics"


def without_history(predictor: Predictor) -> Predictor:
    """``predictor`` with a featurizer whose history knows only the global prior: the
    planted skew (same model, same version, different features)."""
    history = dataclasses.replace(
        predictor.featurizer.history, users={}, templates={}, tables={}, sources={}, modes={}
    )
    featurizer = dataclasses.replace(predictor.featurizer, history=history)
    return dataclasses.replace(predictor, featurizer=featurizer)


def simulate_tags(
    labeled: pl.DataFrame, predictor: Predictor, *, skew_share: float, seed: int
) -> tuple[pl.DataFrame, dict[str, object]]:
    """``query_id`` and the client tags a deployed ``predictor`` would have left on each
    row of ``labeled`` (the row's own tags, then the decision's), and counts."""
    own = labeled["client_tags"].to_list() if "client_tags" in labeled.columns else None
    own = own or [None] * labeled.height
    untagged = np.array([find_decision(t)[1] == TagStatus.UNTAGGED for t in own])
    skewed = keep_fraction(labeled, fraction=skew_share, seed=seed).to_numpy() & untagged
    if skew_share <= 0:
        skewed[:] = False
    statements = labeled["query"].to_list()
    contexts = contexts_of(labeled)
    fair = np.flatnonzero(untagged & ~skewed)
    planted = np.flatnonzero(skewed)
    tags: list[list[str]] = []
    ids: list[str] = []
    for rows, deployed in ((fair, predictor), (planted, without_history(predictor))):
        answers = _answer(deployed, statements, contexts, rows)
        for k, i in enumerate(rows):
            tag = format_tag(_decision(answers, k, predictor.version))
            tags.append([*(own[i] or []), tag])
            ids.append(labeled["query_id"][int(i)])
    frame = pl.DataFrame({"query_id": ids, "client_tags": tags}, schema=TAGS_SCHEMA)
    counts = {
        "rows": labeled.height,
        "tagged": frame.height,
        "skewed": int(planted.size),
        "already_tagged": int((~untagged).sum()),
        "skew": SKEW,
        "version": predictor.version,
    }
    return frame.sort("query_id"), counts


def _answer(
    predictor: Predictor,
    statements: Sequence[str],
    contexts: Sequence[QueryContext],
    rows: np.ndarray,
) -> Predictions:
    return predictor.predict_many([statements[i] for i in rows], [contexts[i] for i in rows])


def _decision(answers: Predictions, k: int, version: str) -> TagDecision:
    return TagDecision(
        bool(answers.heavy[k]), float(answers.probability[k]), version, answers.stage[k]
    )
