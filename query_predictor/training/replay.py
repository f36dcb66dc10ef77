"""Stage ``replay``: the exported bundle answers the days after the training data, as a
router would, and the answers are checked against what the queries really cost.

Every query of ``replay.start_date`` .. ``replay.end_date`` that the load stage's rules keep
(same labels, filters, deduplication) goes through
:class:`~query_predictor.service.predictor.Predictor`: the zero-cost check, the features
with the history snapshot frozen at the end of training, the ONNX model. Unlike
``evaluate``, zero-cost statements are included, so a heavy query answered "zero-cost"
counts as missed: this is the recall the router would have had.

The bundle's age is reported, not judged: each day says how many days it lies after the
history's cutoff (``bundle_age_days``). No feature depends on that age (the history features
count from the cutoff, :mod:`query_predictor.core.history`), so what moves below is the
workload, not the calendar.

Drift ("the workload changed") is measured two ways:

- against the test split, the window the model was judged on: the population stability
  index (PSI) of the model's score over the window and per day, and the PSI of each dense
  feature (the features that moved most);
- against the history snapshot, with the costs the replay observed
  (:mod:`query_predictor.training.drift`): templates that now cost more, named by the
  tables they read (table growth), and users the history never saw running a share of the
  heavy queries (a new team).

PSI = sum over bins of (replay share - reference share) * ln(replay share / reference share),
with bins at the reference's quantiles (a feature with few values uses each value as a bin).
Drift is reported when the window's or a day's score PSI or a feature's PSI exceeds
``replay.psi_alert``, or a workload change passes its alert. Days whose recall misses the
PRD are listed apart (``days_below_min_recall``): that judges the model, not the workload.

When the log's ``client_tags`` carry the decisions the deployed service took
(:mod:`query_predictor.core.client_tags`), the metrics gain an ``online`` section: those
decisions judged against what the queries cost, and their agreement with this replay
(:mod:`.online`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from query_predictor.core.errors import EmptyWindowError
from query_predictor.core.featurizer import FEATURE_NAMES
from query_predictor.params import DataLoading, Filters, ParamsError
from query_predictor.service.predictor import ZERO_COST, Predictions, Predictor

from .drift import workload_changes
from .evaluate import headline, routing_rates
from .featurize import contexts_of
from .loading import run_load
from .online import OnlineResult, online_metrics
from .partitions import Runner

EPSILON = 1e-4  # share given to an empty bin, so that the logarithm stays finite
TOP_FEATURES = 20


def load_window(
    data: DataLoading,
    filters: Filters,
    *,
    start: dt.date,
    end: dt.date,
    runner: Runner | None = None,
) -> pl.DataFrame:
    """The labeled queries of ``start`` .. ``end`` by the load stage's rules (read by
    ``runner``: an engine's, default polars here)."""
    if start <= data.end_date:
        raise ParamsError(
            f"replay.start_date {start} must come after data_loading.end_date {data.end_date}: "
            "the replay answers days the model never saw"
        )
    try:
        window = data.model_copy(update={"start_date": start, "end_date": end})
        return run_load(window, filters, runner=runner).labeled
    except EmptyWindowError:
        raise EmptyWindowError(
            f"the replay window {start}..{end} holds no query of {data.raw_path} that the load "
            "rules keep; set replay.start_date/end_date to days the log covers"
        ) from None


def psi(reference: np.ndarray, current: np.ndarray, *, bins: int) -> float:
    """Population stability index of ``current`` against ``reference`` (NaN ignored)."""
    ref = reference[~np.isnan(reference)]
    cur = current[~np.isnan(current)]
    if ref.size == 0 or cur.size == 0:
        return 0.0
    values = np.unique(ref)
    if values.size <= bins:  # few values (flags, codes): one bin each, the rest in one more
        ref_counts = np.array([(ref == v).sum() for v in values] + [0])
        seen = np.isin(cur, values)
        cur_counts = np.array([(cur == v).sum() for v in values] + [(~seen).sum()])
    else:
        edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
        size = edges.size + 1
        ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=size)
        cur_counts = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=size)
    expected = np.maximum(ref_counts / ref.size, EPSILON)
    actual = np.maximum(cur_counts / cur.size, EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


@dataclass
class Reference:
    """What the replay is compared with: the test split's dense features, scores and
    heavy rate."""

    dense: np.ndarray  # (rows, FEATURE_NAMES)
    scores: np.ndarray
    heavy_rate: float


@dataclass
class ReplayResult:
    metrics: dict[str, object]
    daily: list[dict[str, object]]
    features: list[dict[str, object]]
    online: OnlineResult


def replay(
    labeled: pl.DataFrame,
    predictor: Predictor,
    reference: Reference,
    *,
    bins: int,
    psi_alert: float,
    min_recall: float,
    max_fnr: float,
    cost_fn: float,
    cost_fp: float,
    min_queries: int,
    cost_ratio_alert: float,
    new_user_heavy_share: float,
) -> ReplayResult:
    """Answer every query of ``labeled`` and judge the answers and their drift."""
    if labeled.height == 0:
        raise EmptyWindowError(
            "the replay window holds no labeled query: set replay.start_date/end_date to days "
            "the log covers"
        )
    labeled = labeled.sort("create_time", "query_id")
    answers = predictor.predict_many(labeled["query"].to_list(), contexts_of(labeled))
    labels = labeled["is_heavy"].to_numpy().astype(bool)
    if not labels.any():
        raise EmptyWindowError(
            f"the replay window ({labeled.height} queries) has no heavy query: recall is "
            "undefined; widen replay.start_date .. replay.end_date"
        )
    days = labeled["event_date"].to_numpy()
    cutoff = predictor.featurizer.history.cutoff
    scored = np.array([stage != ZERO_COST for stage in answers.stage])
    unseen = answers.dense[:, FEATURE_NAMES.index("template_unseen")]
    judge = dict(
        threshold=predictor.model.threshold,
        cost_fn=cost_fn,
        cost_fp=cost_fp,
        min_recall=min_recall,
        max_fnr=max_fnr,
    )
    overall = headline(labels, answers.probability, answers.heavy, **judge)
    daily = []
    for day in np.unique(days):
        on = days == day
        row: dict[str, object] = {
            "date": str(day)[:10],
            "bundle_age_days": (dt.date.fromisoformat(str(day)[:10]) - cutoff).days,
            "queries": int(on.sum()),
            "heavy_rate": float(labels[on].mean()),
            "routed_share": float(answers.heavy[on].mean()),
            "zero_cost_share": float((~scored[on]).mean()),
            "unseen_template_share": float(np.nanmean(unseen[on & scored]))
            if (on & scored).any()
            else 0.0,
            "score_psi": psi(reference.scores, answers.probability[on & scored], bins=bins),
        }
        if labels[on].any():
            rates = routing_rates(
                labels[on], answers.heavy[on], min_recall=min_recall, max_fnr=max_fnr
            )
            row |= {k: rates[k] for k in ("recall", "fnr", "fpr", "precision")}
        daily.append(row)
    shifts = [
        {"feature": name, "psi": psi(reference.dense[:, j], answers.dense[scored, j], bins=bins)}
        for j, name in enumerate(FEATURE_NAMES)
    ]
    features = sorted(shifts, key=lambda f: (-f["psi"], f["feature"]))
    score_psi = psi(reference.scores, answers.probability[scored], bins=bins)
    changes = workload_changes(
        _answered(labeled, answers, scored),
        predictor.featurizer.history,
        min_queries=min_queries,
        cost_ratio_alert=cost_ratio_alert,
        new_user_heavy_share=new_user_heavy_share,
    )
    reasons = _drift_reasons(score_psi, daily, features, psi_alert=psi_alert)
    reasons += changes.pop("reasons")
    missed_zero_cost = int((labels & ~scored).sum())
    online = online_metrics(
        labeled,
        answers,
        version=predictor.version,
        cost_fn=cost_fn,
        cost_fp=cost_fp,
        min_recall=min_recall,
        max_fnr=max_fnr,
    )
    metrics = {
        **{k: v for k, v in overall.items() if k not in ("prd", "cost")},
        "window": {"start": daily[0]["date"], "end": daily[-1]["date"], "days": len(daily)},
        "bundle": {
            "history_cutoff": cutoff.isoformat(),
            "age_days_first": daily[0]["bundle_age_days"],
            "age_days_last": daily[-1]["bundle_age_days"],
        },
        "days_below_min_recall": [
            d["date"] for d in daily if "recall" in d and d["recall"] < min_recall
        ],
        "zero_cost": {"answered": int((~scored).sum()), "heavy_missed": missed_zero_cost},
        "drift": {
            "detected": bool(reasons),
            "reasons": reasons,
            "score_psi": score_psi,
            "max_daily_score_psi": max(d["score_psi"] for d in daily),
            "top_features": features[:5],
            "heavy_rate": {  # the test split holds no zero-cost statement: compare like with like
                "reference": reference.heavy_rate,
                "replay_model_answered": float(labels[scored].mean()) if scored.any() else 0.0,
                "replay_all": float(labels.mean()),
                "first_day": daily[0]["heavy_rate"],
                "last_day": daily[-1]["heavy_rate"],
            },
            "unseen_template_share": float(np.nanmean(unseen[scored])) if scored.any() else 0.0,
            "workload": changes,
            "psi_alert": psi_alert,
        },
    }
    if online.section is not None:
        metrics["online"] = online.section
    return ReplayResult(metrics, daily, features[:TOP_FEATURES], online)


def _answered(labeled: pl.DataFrame, answers: Predictions, scored: np.ndarray) -> pl.DataFrame:
    """The model-answered rows of ``labeled`` with the template and tables serving keyed the
    history by."""
    pick = np.flatnonzero(scored)
    return labeled.filter(pl.Series(scored)).with_columns(
        template=pl.Series([answers.template[i] for i in pick], dtype=pl.String),
        tables=pl.Series([answers.tables[i] for i in pick], dtype=pl.List(pl.String)),
    )


def _drift_reasons(
    score_psi: float,
    daily: list[dict[str, object]],
    features: list[dict[str, object]],
    *,
    psi_alert: float,
) -> list[str]:
    reasons = []
    if score_psi > psi_alert:
        reasons.append(f"score PSI {score_psi:.3f} over the window > {psi_alert}")
    days = [d["date"] for d in daily if d["score_psi"] > psi_alert]
    if days:
        reasons.append(f"score PSI > {psi_alert} on {len(days)} days, first {days[0]}")
    moved = [f"{f['feature']} ({f['psi']:.2f})" for f in features if f["psi"] > psi_alert]
    if moved:
        reasons.append(f"{len(moved)} features with PSI > {psi_alert}: {', '.join(moved[:5])}")
    return reasons
