"""Stage replay: the model bundle answers the days after the training data; metrics and drift.

    python stages/replay.py --models models --features data/features \
        --online-tags data/online/client_tags.parquet \
        --metrics metrics/replay.json --plots plots/replay

``--online-tags`` is the simulate_online stage's output: decision tags of the synthetic log's
replay window (empty on your own log, whose client_tags column is read as it is).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import polars as pl

from query_predictor.core.featurizer import FEATURE_NAMES
from query_predictor.core.label import LabelRule
from query_predictor.service.predictor import Predictor
from query_predictor.storage import atomic_dir, write_json
from query_predictor.summary import print_summary, run_stage, start_stage
from query_predictor.training.engines import open_engine
from query_predictor.training.model import load_features
from query_predictor.training.online import with_simulated_tags
from query_predictor.training.replay import Reference, load_window, replay


def main() -> None:
    args, params = start_stage(
        __doc__, ("--models", "--features", "--online-tags", "--metrics", "--plots")
    )
    started = time.perf_counter()
    predictor = Predictor.from_bundle(args.models)
    rule = LabelRule.from_params(params.data_loading)
    predictor.metadata.require_label(rule, origin=f"{args.models}/metadata.json")
    test = Path(args.features) / "test.parquet"
    x_test, y_test = load_features(test, n_terms=len(predictor.featurizer.vocabulary))
    scores, _ = predictor.model.predict(x_test)
    dense = x_test[:, : len(FEATURE_NAMES)].toarray().astype(np.float32)
    reference = Reference(dense, scores, float(np.mean(y_test)))
    with open_engine(params) as engine:
        labeled = load_window(
            params.data_loading,
            params.filters,
            start=params.replay.start_date,
            end=params.replay.end_date,
            runner=engine.load_runner(),
        )
    labeled, simulated = with_simulated_tags(labeled, pl.read_parquet(args.online_tags))
    result = replay(
        labeled,
        predictor,
        reference,
        bins=params.replay.psi_bins,
        psi_alert=params.replay.psi_alert,
        min_recall=params.prd.min_recall,
        max_fnr=params.prd.max_fnr,
        cost_fn=params.model.cost_fn,
        cost_fp=params.model.cost_fp,
        min_queries=params.replay.min_queries,
        cost_ratio_alert=params.replay.cost_ratio_alert,
        new_user_heavy_share=params.replay.new_user_heavy_share,
    )
    write_json(args.metrics, result.metrics)
    with atomic_dir(args.plots) as tmp:
        pl.DataFrame(result.daily).write_csv(Path(tmp) / "daily.csv")
        pl.DataFrame(result.features).write_csv(Path(tmp) / "feature_psi.csv")
        result.online.disagreements.write_csv(Path(tmp) / "online_disagreements.csv")
    metrics, drift = result.metrics, result.metrics["drift"]
    online = metrics.get("online")
    print_summary(
        "replay",
        {
            "window": metrics["window"],
            "queries": metrics["counts"]["rows"],
            "recall": round(metrics["recall"], 4),
            "fnr": round(metrics["fnr"], 4),
            "routed share": round(metrics["routed_share"], 4),
            "PRD met": metrics["prd_compliant"],
            "zero-cost": metrics["zero_cost"],
            "bundle": metrics["bundle"],
            "score PSI": round(drift["score_psi"], 4),
            "drift": drift["reasons"] or "none",
            "online": _online_line(online, simulated) if online else result.online.reason,
            "seconds": round(time.perf_counter() - started, 1),
        },
    )


def _online_line(online: dict, simulated: dict[str, int]) -> str:
    agreement = online["agreement"]
    shown = "n/a (no row of this version)" if agreement is None else f"{agreement:.4f}"
    source = f", {simulated['joined']:,} tags simulated" if simulated["joined"] else ""
    recall = "n/a" if online["recall"] is None else f"{online['recall']:.4f}"
    return (
        f"{online['tags']['tagged']:,} tagged rows{source}; recall {recall}, "
        f"routed {online['routed_share']:.4f}; agreement {shown}, "
        f"{online['disagreeing']} disagreeing (plots/replay/online_disagreements.csv)"
    )


if __name__ == "__main__":
    run_stage(main)
