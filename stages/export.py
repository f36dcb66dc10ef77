"""Stage export: the trained model as ONNX, with metadata, proven equal to XGBoost on test.

    python stages/export.py --model models/xgb_model.json --vocab models/tfidf_vocab.json \
        --features data/features --train-metrics metrics/train.json \
        --onnx models/model.onnx --metadata models/metadata.json --metrics metrics/export.json
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from query_predictor.core.featurizer import FEATURE_NAMES
from query_predictor.core.onnx_model import HeavyQueryModel, ModelError
from query_predictor.core.tfidf import TfidfVocabulary
from query_predictor.storage import atomic_file, write_json
from query_predictor.summary import print_summary, run_stage, start_stage
from query_predictor.training.export import (
    ParityError,
    compare,
    load_classifier,
    params_hash,
    parity_failures,
    to_onnx,
    versions,
)
from query_predictor.training.model import load_features
from query_predictor.training.windows import windows_for

# the params that shaped the model, hashed into its metadata
MODEL_SECTIONS = (
    "data_loading",
    "filters",
    "zero_cost",
    "splits",
    "boundary_sampling",
    "features",
    "model",
    "prd",
)


def main() -> None:
    args, params = start_stage(
        __doc__,
        (
            "--model",
            "--vocab",
            "--features",
            "--train-metrics",
            "--onnx",
            "--metadata",
            "--metrics",
        ),
    )
    started = time.perf_counter()
    vocabulary = TfidfVocabulary.from_json(args.vocab)
    names = [*FEATURE_NAMES, *(f"tfidf:{term}" for term in vocabulary.terms)]
    threshold = float(json.loads(Path(args.train_metrics).read_text())["threshold"]["chosen"])
    classifier = load_classifier(args.model)
    booster = classifier.get_booster()
    if booster.num_features() != len(names):
        raise ModelError(
            f"{args.model} takes {booster.num_features()} features but the featurizer and "
            f"{args.vocab} give {len(names)}: rerun `dvc repro train`"
        )
    model_bytes = to_onnx(classifier, width=len(names), threshold=threshold).SerializeToString()
    with atomic_file(args.onnx) as tmp:
        tmp.write_bytes(model_bytes)
    windows = windows_for(params)
    dumped = params.model_dump(mode="json")
    write_json(
        args.metadata,
        {
            "name": "heavy-query-classifier",
            "model_file": Path(args.onnx).name,
            "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
            "input": {
                "name": "features",
                "dtype": "float32",
                "width": len(names),
                "dense_features": len(FEATURE_NAMES),
                "tfidf_terms": len(vocabulary),
                "zero_means_absent": True,
            },
            "outputs": {"heavy_probability": "float32", "is_heavy": "bool (score >= threshold)"},
            # what serving needs to featurize as training did (query_predictor.service.predictor)
            "featurizer": {"history_prior_weight": params.features.history_prior_weight},
            "threshold": threshold,
            "threshold_policy": params.model.threshold_policy,
            "label": {
                "cpu_threshold_seconds": params.data_loading.cpu_threshold_seconds,
                "memory_threshold_gb": params.data_loading.memory_threshold_gb,
                "resource_error_codes": params.data_loading.resource_error_codes,
            },
            "windows": {name: window.as_dict() for name, window in windows.items()},
            "params_hash": params_hash({s: dumped[s] for s in MODEL_SECTIONS}),
            "versions": versions(),
            "feature_names": names,
        },
    )

    x_test, _ = load_features(Path(args.features) / "test.parquet", n_terms=len(vocabulary))
    reference = booster.inplace_predict(x_test)
    onnx_model = HeavyQueryModel.load(args.onnx, args.metadata)
    scores, decisions = onnx_model.predict(x_test)
    parity = compare(reference, scores, decisions, threshold)
    write_json(
        args.metrics,
        {
            "parity": parity.as_dict(),
            "onnx_bytes": len(model_bytes),
            "width": len(names),
            "trees": booster.num_boosted_rounds(),
            "threshold": threshold,
        },
    )
    print_summary(
        "export",
        {
            "model": f"{args.onnx} ({len(model_bytes):,} bytes, {len(names)} features)",
            "threshold": f"{threshold:.6f}",
            "parity rows": f"{parity.rows:,} test rows",
            "max |xgboost - onnx|": f"{parity.max_abs_diff:.3g} (limit 1e-05)",
            "decision flips": f"{parity.decision_flips} (+{parity.flips_near_threshold} "
            "within 1e-6 of the threshold)",
            "parity": "OK" if parity.ok else "FAILED",
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
    if not parity.ok:
        raise ParityError(parity_failures(parity, reference, scores, threshold))


if __name__ == "__main__":
    run_stage(main)
