#!/usr/bin/env bash
# The pull-request report: what a reviewer needs to judge a model change, as Markdown.
#
#   scripts/pr_report.sh [BASE] [PLOTS_DIR]
#
# BASE is the revision to compare with (default: origin/main, else main); the workspace is
# the other side, so run it after `dvc repro`. Prints the PRD verdict, the test-split metrics
# of metrics/evaluate.json with their change (recall and FNR first), the replay's verdict and
# drift, every other metric that changed, and the params that changed. With PLOTS_DIR, also renders `dvc plots diff BASE`
# there as HTML. The GitHub workflow (.github/workflows/pull-request.yml) posts this output.
set -euo pipefail

base="${1:-}"
if [[ -z "$base" ]]; then
    base=$(git rev-parse --verify -q origin/main >/dev/null && echo origin/main || echo main)
fi
plots="${2:-}"
git rev-parse --verify -q "$base^{commit}" >/dev/null || {
    echo "error: no revision '$base' in this repository" >&2
    exit 2
}
[[ -f metrics/evaluate.json ]] || {
    echo "error: metrics/evaluate.json is missing; run \`dvc repro\` first" >&2
    exit 2
}

python - "$base" <<'PY'
import json, sys
m = json.load(open("metrics/evaluate.json"))
verdict = "met" if m["prd_compliant"] else "**NOT met**"
print(f"## Heavy-query model: workspace against `{sys.argv[1]}`\n")
print(
    f"PRD {verdict} on the test split: recall {m['recall']:.4f} (>= {m['prd']['min_recall']}),"
    f" FNR {m['fnr']:.4f} (<= {m['prd']['max_fnr']}); {m['routed_share']:.2%} of queries"
    f" routed to the heavy cluster at threshold {m['threshold']:.6f}.\n"
)
PY

echo "### Test-split metrics (metrics/evaluate.json)"
echo
dvc metrics diff "$base" --all --md --precision 4 --targets metrics/evaluate.json
echo
if [[ -f metrics/replay.json ]]; then
    python - <<'PY'
import json
m = json.load(open("metrics/replay.json"))
w, drift = m["window"], m["drift"]
verdict = "met" if m["prd_compliant"] else "**NOT met**"
print(f"### Replay: the router on {w['start']} .. {w['end']} (metrics/replay.json)\n")
print(
    f"PRD {verdict} over {m['counts']['rows']:,} queries, zero-cost answers included:"
    f" recall {m['recall']:.4f}, FNR {m['fnr']:.4f}, {m['routed_share']:.2%} routed;"
    f" {m['zero_cost']['heavy_missed']} heavy queries answered zero-cost."
)
reasons = "; ".join(drift["reasons"]) if drift["detected"] else "none"
print(f"Drift (score PSI {drift['score_psi']:.3f} against the test split): {reasons}.\n")
online = m.get("online")
if online:
    def rate(value):
        return "n/a" if value is None else f"{value:.4f}"

    tags = online["tags"]
    agreement = online["agreement"]
    print(
        f"Online (decision tags in client_tags): {tags['tagged']:,} of {online['rows']:,} queries"
        f" tagged ({tags['malformed']} malformed, {tags['conflicting']} conflicting);"
        f" the decisions taken: recall {rate(online['recall'])}, FNR {rate(online['fnr'])},"
        f" {online['routed_share']:.2%} routed, expected cost {online['expected_cost']:.3f}"
        " per query."
    )
    if agreement is None:
        print(f"No row was tagged by {online['current_version']}: agreement not measured.")
    else:
        print(
            f"Agreement with this replay ({online['current_version']}, {online['compared']:,}"
            f" rows): {agreement:.2%}; {online['disagreeing']} disagree"
            " (plots/replay/online_disagreements.csv)."
        )
    print("\n| model version | rows | recall | FNR | routed | expected cost |")
    print("|---|---|---|---|---|---|")
    for version, v in online["versions"].items():
        print(
            f"| {version} | {v['rows']:,} | {rate(v['recall'])} | {rate(v['fnr'])} |"
            f" {v['routed_share']:.2%} | {v['expected_cost']:.3f} |"
        )
    print()
PY
fi
echo "### Every metric that changed"
echo
changed=$(dvc metrics diff "$base" --md --precision 4)
echo "${changed:-No metric changed.}"
echo
echo "### Params that changed"
echo
params=$(dvc params diff "$base" --md)
echo "${params:-No param changed.}"
if [[ -n "$plots" ]]; then
    dvc plots diff "$base" -o "$plots" >/dev/null
    echo
    echo "Plots (ROC, precision-recall, cost, confusion, calibration, importance) against"
    echo "\`$base\`: \`$plots/index.html\`."
fi
