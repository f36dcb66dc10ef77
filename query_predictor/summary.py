"""What every stage prints: a one-screen summary, and a clear line instead of a traceback."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence

from query_predictor.core.onnx_model import ModelError
from query_predictor.core.schema import SchemaError
from query_predictor.params import Params, ParamsError, load_params

# Errors a user causes and can fix: printed as one message, exit status 1.
USER_ERRORS = (ParamsError, SchemaError, ModelError, FileNotFoundError)


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def print_summary(stage: str, items: Mapping[str, object]) -> None:
    """Print ``items`` as an aligned two-column block headed by the stage name."""
    width = max((len(k) for k in items), default=0)
    lines = [f"== {stage} " + "=" * max(0, 60 - len(stage))]
    lines += [f"  {key.ljust(width)}  {_format(value)}" for key, value in items.items()]
    print("\n".join(lines), flush=True)


def start_stage(doc: str, flags: Sequence[str]) -> tuple[argparse.Namespace, Params]:
    """Parse a stage's required ``--flags`` (paths from dvc.yaml), set up logging, read
    params.yaml: the opening every stage script shares."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    for flag in flags:
        parser.add_argument(flag, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return args, load_params()


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; known user errors end the process with one readable message."""
    try:
        main()
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
