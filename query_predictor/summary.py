"""What every stage prints: a one-screen summary, and a clear line instead of a traceback."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping

from query_predictor.core.schema import SchemaError
from query_predictor.params import ParamsError

# Errors a user causes and can fix: printed as one message, exit status 1.
USER_ERRORS = (ParamsError, SchemaError, FileNotFoundError)


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


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; known user errors end the process with one readable message."""
    try:
        main()
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
