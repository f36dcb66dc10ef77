"""What every stage prints: a one-screen summary, and a clear line instead of a traceback.

A :class:`~query_predictor.core.errors.PipelineError` (bad params, a missing or unreadable
input, an empty window, a bundle mixed from two runs) ends the stage with ``error: <one
line>`` on stderr and exit status 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence

from query_predictor.core.errors import PipelineError
from query_predictor.params import Params, load_params

EXIT_USER_ERROR = 2  # as argparse's usage errors: the command was run with something wrong


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
    """Run a stage's ``main``; a user error ends the process with one line and status 2."""
    try:
        main()
    except PipelineError as exc:
        line = " ".join(str(exc).split())  # one line, however the message was wrapped
        print(f"error: {line}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR) from None
