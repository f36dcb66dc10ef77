"""Stage check_params: params.yaml parses as a whole (no unknown section or key, every value of
the right type and range), even when no other stage reads the part that changed.

    python stages/check_params.py

Every stage parses the whole file when it runs, but DVC reruns a stage only when the params it
lists change: an unknown section (``replay_typo:``) would otherwise go unnoticed. This stage
depends on all of params.yaml, so ``dvc repro`` runs it after any edit of the file.
"""

from __future__ import annotations

from query_predictor.summary import print_summary, run_stage, start_stage


def main() -> None:
    _, params = start_stage(__doc__, ())
    print_summary("check_params", {"sections": ", ".join(type(params).model_fields)})


if __name__ == "__main__":
    run_stage(main)
