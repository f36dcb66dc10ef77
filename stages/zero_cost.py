"""Stage zero_cost: validate zero-cost SQL categories on the training window.

    python stages/zero_cost.py --labeled data/labeled --out models/zero_cost_categories.json \
        --heavy data/zero_cost/heavy_in_candidates.csv --metrics metrics/zero_cost.json
"""

from __future__ import annotations

from query_predictor.core.classifier import QueryClassifier
from query_predictor.storage import atomic_file, write_json
from query_predictor.summary import print_summary, run_stage, start_stage
from query_predictor.training import zero_cost
from query_predictor.training.engines import open_engine
from query_predictor.training.windows import windows_for


def main() -> None:
    args, params = start_stage(__doc__, ("--labeled", "--out", "--heavy", "--metrics"))
    rules = params.zero_cost
    train = windows_for(params)["train"]
    with open_engine(params) as engine:
        classifier = QueryClassifier(small_limit=rules.small_limit)
        frame = engine.categorized(
            args.labeled, train, classifier, columns=zero_cost.COLUMNS, compact=zero_cost.compact
        )
    verdicts = zero_cost.decide(zero_cost.category_table(frame), rules)
    validated = [c for c, v in verdicts.items() if v["validated"]]
    heavy = zero_cost.heavy_in_candidates(frame, rules)
    write_json(
        args.out,
        {
            "format_version": zero_cost.FORMAT_VERSION,
            "validated": validated,
            "small_limit": rules.small_limit,
            "categories": verdicts,
            "window": train.as_dict(),
            "rules": rules.model_dump(mode="json"),
        },
    )
    with atomic_file(args.heavy) as tmp:
        heavy.write_csv(tmp)
    filtered = sum(int(v["count"]) for v in verdicts.values() if v["validated"])
    write_json(
        args.metrics,
        {
            "validated_categories": len(validated),
            "zero_cost_share": round(filtered / frame.height, 6) if frame.height else 0.0,
            "heavy_filtered": sum(int(v["heavy"]) for v in verdicts.values() if v["validated"]),
            "heavy_in_candidates": heavy.height,
            "rows": frame.height,
            "categories": {
                c: {k: v[k] for k in ("count", "heavy", "heavy_rate", "validated")}
                for c, v in verdicts.items()
            },
        },
    )
    table = {
        c: f"{v['count']:>8}  heavy {v['heavy']:>5} ({v['heavy_rate']:.3%})  {v['reason']}"
        for c, v in verdicts.items()
    }
    print_summary(
        "zero_cost",
        {
            "rows": frame.height,
            "training window": f"{train.start} .. {train.end}",
            **table,
            "validated": ", ".join(validated) or "(none)",
            "heavy queries in candidates": heavy.height,
        },
    )


if __name__ == "__main__":
    run_stage(main)
