"""The ``query-predictor`` command.

Run ``query-predictor --help``; each task is a subcommand (today ``ingest``)::

    query-predictor ingest events/ --output data/raw/queries.parquet

Exit codes: 0 success, 1 the run produced nothing usable (every event rejected),
2 usage or input/output error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from query_predictor import __version__

PROG = "query-predictor"
EXIT_OK, EXIT_ALL_REJECTED, EXIT_USAGE = 0, 1, 2


def _run_ingest(args: argparse.Namespace) -> int:
    from query_predictor.ingest import ingest

    report = ingest(args.inputs, output=args.output)
    print(report.summary(), file=sys.stderr)
    if report.events_read and not report.rows_written:
        print(f"{PROG} ingest: error: every event was rejected", file=sys.stderr)
        return EXIT_ALL_REJECTED
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; a new command is one more ``subparsers.add_parser`` block."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Predict, before a Trino query runs, whether it will be heavy."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (to stderr)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = subparsers.add_parser(
        "ingest",
        help="convert Trino event-listener JSON into the raw query log (parquet)",
        description=(
            "Read QueryCompletedEvent JSON (HTTP listener objects or Kafka envelopes, one per "
            "line or as a JSON array) and write the raw query log. Lines that cannot be read "
            "are written, with the reason, to OUTPUT.rejected.jsonl."
        ),
    )
    ingest.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="a .json/.jsonl/.ndjson file, or a directory of them",
    )
    ingest.add_argument(
        "-o", "--output", required=True, type=Path, metavar="PATH.parquet", help="parquet to write"
    )
    ingest.set_defaults(run=_run_ingest)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the subcommand and return its exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.run(args)
    except OSError as exc:  # a missing input, an unwritable output: one line, no traceback
        message = exc.strerror and exc.filename and f"{exc.strerror}: {exc.filename}"
        print(f"{PROG} {args.command}: error: {message or exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
