"""Stage export: the trained model as ONNX, proven equal to XGBoost on test, published into the
model bundle with its metadata.

    python stages/export.py --model models/xgb_model.json --bundle models \
        --features data/features --train-metrics metrics/train.json --metrics metrics/export.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from query_predictor.core import bundle
from query_predictor.core.errors import ModelError
from query_predictor.core.onnx_model import HeavyQueryModel
from query_predictor.core.tfidf import TfidfVocabulary
from query_predictor.storage import write_json
from query_predictor.summary import print_summary, run_stage, start_stage
from query_predictor.training.export import (
    ParityError,
    bundle_hashes,
    bundle_metadata,
    compare,
    load_classifier,
    parity_failures,
    to_onnx,
)
from query_predictor.training.model import load_features


def main() -> None:
    args, params = start_stage(
        __doc__, ("--model", "--bundle", "--features", "--train-metrics", "--metrics")
    )
    started = time.perf_counter()
    vocabulary = TfidfVocabulary.from_json(Path(args.bundle) / bundle.VOCABULARY)
    threshold = float(json.loads(Path(args.train_metrics).read_text())["threshold"]["chosen"])
    classifier = load_classifier(args.model)
    booster = classifier.get_booster()
    width = booster.num_features()
    model_bytes = to_onnx(classifier, width=width, threshold=threshold).SerializeToString()
    metadata = bundle_metadata(
        params,
        terms=vocabulary.terms,
        threshold=threshold,
        files=bundle_hashes(args.bundle, model_bytes),
    )
    if width != metadata.input.width:
        raise ModelError(
            f"{args.model} takes {width} features but the featurizer and the vocabulary in "
            f"{args.bundle} give {metadata.input.width}: rerun `dvc repro train`"
        )
    x_test, _ = load_features(Path(args.features) / "test.parquet", n_terms=len(vocabulary))
    reference = booster.inplace_predict(x_test)
    # the new files are checked where they are staged; the bundle changes only if they pass
    with bundle.publish(args.bundle) as staging:
        (staging / bundle.MODEL).write_bytes(model_bytes)
        (staging / bundle.METADATA).write_text(metadata.to_json())
        scores, decisions = HeavyQueryModel.load(staging / bundle.MODEL).predict(x_test)
        parity = compare(reference, scores, decisions, threshold)
        if not parity.ok:
            raise ParityError(parity_failures(parity, reference, scores, threshold))
    write_json(
        args.metrics,
        {
            "parity": parity.as_dict(),
            "onnx_bytes": len(model_bytes),
            "width": width,
            "trees": booster.num_boosted_rounds(),
            "threshold": threshold,
        },
    )
    print_summary(
        "export",
        {
            "bundle": f"{args.bundle} ({len(model_bytes):,} byte model, {width} features)",
            "threshold": f"{threshold:.6f}",
            "parity rows": f"{parity.rows:,} test rows",
            "max |xgboost - onnx|": f"{parity.max_abs_diff:.3g} (limit 1e-05)",
            "decision flips": f"{parity.decision_flips} (+{parity.flips_near_threshold} "
            "within 1e-6 of the threshold)",
            "model version": metadata.version,
            "seconds": round(time.perf_counter() - started, 1),
        },
    )


if __name__ == "__main__":
    run_stage(main)
