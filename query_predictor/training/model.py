"""Stage ``train``: XGBoost with stratified cross-validation, then a final model.

    python stages/train.py

The training split (boundary-sampled) is cut into ``model.cv_folds`` stratified folds of
whole days (``model.cv_split: day``; ``random``: of rows). A recurring statement runs many
times a day: with folds of rows its same-day repeats sit on both sides, so the held-out part
rewards memorising them and early stopping ran to the tree budget.

The folds grow in lockstep, one tree at a time, until their mean held-out PR-AUC has not
risen for ``model.early_stopping_rounds`` trees (or the ``n_estimators`` budget); the best
point of that mean curve is the final model's tree count. Each fold reports PR-AUC, ROC-AUC
and the recall at its cost-optimal threshold there, and where it alone would have peaked.
The final model trains on the whole split with that many trees. The decision threshold is
then chosen on the validation split, which keeps the natural class balance. With
``model.refit_on_validation`` the exported model is then fitted again, with the same trees,
on the training rows and the validation rows (sampled as the training split was), and keeps
that threshold (:func:`refit_with_validation`); test judges the exported model (the PRD).
Everything is seeded from params, so two runs give the same model bytes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp
import xgboost as xgb
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from tqdm import tqdm

from query_predictor.core.errors import DataError
from query_predictor.core.featurizer import FEATURE_NAMES
from query_predictor.params import Model

from .threshold import choose_threshold

log = logging.getLogger(__name__)


def load_features(path: str | Path, *, n_terms: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """(X, y) of one split: the dense columns, then the TF-IDF terms, as float32 CSR."""
    frame = pl.read_parquet(path)
    dense = sp.csr_matrix(frame.select(FEATURE_NAMES).to_numpy().astype(np.float32))
    index = frame["tfidf_index"].to_list()
    value = frame["tfidf_value"].to_list()
    indptr = np.zeros(frame.height + 1, dtype=np.int64)
    np.cumsum([len(i) for i in index], out=indptr[1:])
    columns = np.fromiter((c for row in index for c in row), dtype=np.int32, count=indptr[-1])
    data = np.fromiter((v for row in value for v in row), dtype=np.float32, count=indptr[-1])
    tfidf = sp.csr_matrix((data, columns, indptr), shape=(frame.height, n_terms))
    return sp.hstack([dense, tfidf], format="csr"), frame["is_heavy"].to_numpy()


def _classifier(
    params: Model, n_estimators: int, *, early_stopping: bool, threads: int
) -> xgb.XGBClassifier:
    return xgb.XGBClassifier(
        n_estimators=n_estimators,
        tree_method="hist",
        max_depth=params.max_depth,
        learning_rate=params.learning_rate,
        min_child_weight=params.min_child_weight,
        scale_pos_weight=params.scale_pos_weight,
        max_bin=params.max_bin,
        eval_metric="aucpr",
        early_stopping_rounds=params.early_stopping_rounds if early_stopping else None,
        random_state=params.seed,
        # hist builds the same trees whatever the thread count (checked: 1 and 2 threads give
        # the same model bytes), so threads only change the speed
        n_jobs=threads,
    )


@dataclass
class TrainResult:
    model: xgb.XGBClassifier
    folds: list[dict[str, float]]
    n_trees: int
    # the folds' mean held-out PR-AUC after each tree, as far as they grew
    cv_curve: list[float] = field(default_factory=list)

    @property
    def cv_rounds(self) -> int:
        """Trees each fold grew before the mean held-out PR-AUC stopped rising."""
        return len(self.cv_curve)


def cv_splits(
    y: np.ndarray, params: Model, *, days: np.ndarray | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(fit rows, held-out rows) of each fold: ``model.cv_folds`` folds, stratified by the
    label, of whole days (``cv_split: day``, which needs ``days``) or of rows."""
    if params.cv_split == "random":
        by_row = StratifiedKFold(n_splits=params.cv_folds, shuffle=True, random_state=params.seed)
        return by_row.split(np.zeros(len(y)), y)
    if days is None:
        raise ValueError("model.cv_split: day needs each training row's day")
    distinct = len(np.unique(days))
    if distinct < params.cv_folds:
        raise DataError(
            f"the training split covers {distinct} day(s): too few for "
            f"model.cv_folds={params.cv_folds} with model.cv_split: day"
        )
    by_day = StratifiedGroupKFold(n_splits=params.cv_folds, shuffle=True, random_state=params.seed)
    return by_day.split(np.zeros(len(y)), y, groups=days)


def cross_validate_and_fit(
    x: sp.csr_matrix,
    y: np.ndarray,
    params: Model,
    *,
    days: np.ndarray | None = None,
    threads: int = 0,
) -> TrainResult:
    """Stratified CV whose folds stop together (:func:`_lockstep`), then the final model
    (module docstring). ``days``: each row's day, needed by ``cv_split: day``."""
    threads = threads or os.cpu_count() or 1
    if int(y.sum()) < params.cv_folds or int((~y).sum()) < params.cv_folds:
        raise DataError(
            f"{int(y.sum())} heavy and {int((~y).sum())} light training rows: too few for "
            f"model.cv_folds={params.cv_folds}"
        )
    parts = list(cv_splits(y, params, days=days))
    curve, best, grown = _lockstep(x, y, parts, params, threads=threads)
    folds = []
    for number, ((_, held_rows), fold) in enumerate(zip(parts, grown, strict=True), 1):
        scores = fold.booster.predict(fold.held_out, iteration_range=(0, best + 1))
        choice = choose_threshold(
            y[held_rows], scores, cost_fn=params.cost_fn, cost_fp=params.cost_fp, min_recall=0.0
        )
        folds.append(
            {
                "fold": number,
                "pr_auc": float(average_precision_score(y[held_rows], scores)),
                "roc_auc": float(roc_auc_score(y[held_rows], scores)),
                "recall_at_cost_optimal": choice.cost_optimal_recall,
                # where this fold alone peaked (its held-out PR-AUC, one tree at a time)
                "best_iteration": int(np.argmax(fold.curve)),
            }
        )
        log.info(
            "fold %d/%d: PR-AUC %.4f, ROC-AUC %.4f at %d trees (alone it peaks at %d)",
            number,
            params.cv_folds,
            folds[-1]["pr_auc"],
            folds[-1]["roc_auc"],
            best + 1,
            folds[-1]["best_iteration"] + 1,
        )
    n_trees = best + 1
    return TrainResult(fit_final(x, y, params, n_trees, threads=threads), folds, n_trees, curve)


def fit_final(
    x: sp.csr_matrix, y: np.ndarray, params: Model, n_trees: int, *, threads: int = 0
) -> xgb.XGBClassifier:
    """``n_trees`` trees on every row of ``x`` (no early stopping: the folds chose the
    count)."""
    log.info("final model: %d trees on %d rows", n_trees, len(y))
    final = _classifier(
        params, n_trees, early_stopping=False, threads=threads or os.cpu_count() or 1
    )
    final.fit(x, y, verbose=False)
    return final


def refit_with_validation(
    train: tuple[sp.csr_matrix, np.ndarray],
    validation: tuple[sp.csr_matrix, np.ndarray],
    keep: np.ndarray,
    params: Model,
    n_trees: int,
    *,
    threads: int = 0,
) -> xgb.XGBClassifier:
    """The model to export under ``model.refit_on_validation``: :func:`fit_final` on the
    training rows and the validation rows ``keep`` (boundary-sampled as the training split
    was, so the class balance and the score scale stay those the threshold was chosen at).

    Why: the model fitted on the training days alone scores the days right after them far
    better than a week later (on the default data, routed share at recall 0.98: 14 % on
    validation, 21.5 % on test). Validation has served its purpose once the threshold is
    chosen on it; its week is the most recent labeled one, and a model deployed after it
    should have learned from it (docs/pipeline.md, "Refit on validation")."""
    (x_train, y_train), (x_val, y_val) = train, validation
    if len(keep) != x_val.shape[0]:
        raise ValueError(f"keep has {len(keep)} entries for {x_val.shape[0]} validation rows")
    x = sp.vstack([x_train, x_val[keep]], format="csr")
    y = np.concatenate([y_train, y_val[keep]])
    return fit_final(x, y, params, n_trees, threads=threads)


@dataclass
class _Fold:
    """One fold's model as it grows, its two matrices, and its held-out PR-AUC after each
    tree."""

    booster: xgb.Booster
    fit: xgb.DMatrix
    held_out: xgb.DMatrix
    curve: list[float] = field(default_factory=list)

    def grow(self, round_: int) -> float:
        """One more tree; the held-out PR-AUC after it."""
        self.booster.update(self.fit, round_)
        # "[0]\teval-aucpr:0.123"
        self.curve.append(float(self.booster.eval(self.held_out, "eval").rsplit(":", 1)[1]))
        return self.curve[-1]


def _lockstep(
    x: sp.csr_matrix,
    y: np.ndarray,
    parts: list[tuple[np.ndarray, np.ndarray]],
    params: Model,
    *,
    threads: int,
) -> tuple[list[float], int, list[_Fold]]:
    """Grow every fold's model one tree at a time, each with the parameters of the final
    model, and stop when the folds' mean held-out PR-AUC has not risen by more than
    ``model.early_stopping_min_delta`` for ``model.early_stopping_rounds`` trees, or at the
    ``n_estimators`` budget (XGBoost's early stopping rule, on the mean). Returns that mean
    after each tree, the last tree that raised it so (the tree count) and the folds.

    One stopping point for all folds, as ``xgboost.cv`` chooses it: each fold stopping on its
    own, a fold whose held-out days differ most stopped after 6 trees while another ran to
    296, and the final model's size, their median, hung on one fold."""
    settings = _classifier(params, params.n_estimators, early_stopping=False, threads=threads)
    booster_params = {k: v for k, v in settings.get_xgb_params().items() if v is not None}
    folds = []
    for fit_rows, held_rows in parts:
        fit = xgb.DMatrix(x[fit_rows], label=y[fit_rows])
        held_out = xgb.DMatrix(x[held_rows], label=y[held_rows])
        folds.append(_Fold(xgb.Booster(booster_params, [fit, held_out]), fit, held_out))
    curve: list[float] = []
    best = 0
    progress = tqdm(total=params.n_estimators, desc="cross-validation", unit="tree", disable=None)
    with progress:
        for round_ in range(params.n_estimators):
            curve.append(float(np.mean([fold.grow(round_) for fold in folds])))
            progress.update()
            if curve[-1] > curve[best] + params.early_stopping_min_delta:
                best = round_
            elif round_ - best >= params.early_stopping_rounds:
                break
    return curve, best, folds


def summarize_folds(folds: list[dict[str, float]]) -> dict[str, float]:
    keys = ("pr_auc", "roc_auc", "recall_at_cost_optimal", "best_iteration")
    return {f"mean_{k}": round(float(np.mean([f[k] for f in folds])), 6) for k in keys}


def vocabulary_size(path: str | Path) -> int:
    return len(json.loads(Path(path).read_text())["terms"])
