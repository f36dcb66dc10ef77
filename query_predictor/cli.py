"""The ``query-predictor`` command.

Run ``query-predictor --help``; each task is a subcommand::

    query-predictor ingest events/ --output data/raw/queries.parquet
    query-predictor predict --sql "SELECT ..." --user alice --catalog hive
    query-predictor serve --port 8080 --models models

Exit codes: 0 success, 1 the run produced nothing usable (every event rejected),
2 usage or input/output error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from query_predictor import __version__

if TYPE_CHECKING:
    from query_predictor.service.predictor import Predictor

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


def _load_predictor(args: argparse.Namespace, **options: int) -> Predictor | None:
    """The bundle in ``--models``; None, after a one-line error, when it does not load."""
    from query_predictor.core.onnx_model import ModelError
    from query_predictor.service.predictor import Predictor

    try:
        return Predictor.from_bundle(args.models, **options)
    except ModelError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return None


def _run_predict(args: argparse.Namespace) -> int:
    from query_predictor.core.features import QueryContext

    # bytes, decoded by the predictor (invalid UTF-8 replaced): stdin's as they come, the
    # argument's as the command line gave them (Python keeps undecodable ones as surrogates)
    sql = sys.stdin.buffer.read() if args.sql == "-" else os.fsencode(args.sql)
    predictor = _load_predictor(args)
    if predictor is None:
        return EXIT_USAGE
    context = QueryContext(
        user=args.user,
        source=args.source,
        catalog=args.catalog,
        schema=args.schema,
        query_type=args.query_type,
        time=dt.datetime.now(dt.UTC),
    )
    print(json.dumps(predictor.predict(sql, context).as_dict()))
    return EXIT_OK


def _run_serve(args: argparse.Namespace) -> int:
    from query_predictor.service.app import ACCESS_LOG
    from query_predictor.service.server import (
        ServeSettings,
        SettingsError,
        bind,
        ignore_sighup_until_served,
        serve,
    )

    settings = ServeSettings.of(vars(args))
    try:
        settings.check()
        settings.token()  # an unreadable token file fails here, before the bundle loads
    except SettingsError as exc:
        print(f"{PROG} serve: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    ignore_sighup_until_served()
    predictor = _load_predictor(args, statement_cache=settings.statement_cache)
    if predictor is None:
        return EXIT_USAGE
    if args.access_log:
        ACCESS_LOG.setLevel(logging.INFO)
    sock = bind(settings.host, settings.port, settings.backlog)
    host, port = sock.getsockname()[:2]
    print(
        f"{PROG} serve: listening on http://{host}:{port} (model {predictor.version}, "
        f"{settings.workers} worker{'s' if settings.workers > 1 else ''})",
        file=sys.stderr,
        flush=True,
    )
    serve(settings, sock, predictor)
    return EXIT_OK


def _run_dates(args: argparse.Namespace) -> int:
    from query_predictor.params import ParamsError, load_params
    from query_predictor.training.loading import log_days
    from query_predictor.training.windows import plan_dates

    try:
        params = load_params(args.params)
        data = params.data_loading
        raw = args.raw or data.raw_path
        first, last = log_days(raw, endpoint_url=data.s3_endpoint_url, region=data.s3_region)
        plan = plan_dates(
            first,
            last,
            replay_days=args.replay_days,
            val_days=params.splits.val_days,
            test_days=params.splits.test_days,
            max_train_days=params.splits.train_days,
        )
    except (ParamsError, ValueError) as exc:
        print(f"{PROG} dates: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    block = plan.params_block()
    if args.raw:
        block["data_loading"] = {"raw_path": args.raw, **block["data_loading"]}
    if args.write:
        from query_predictor.training.windows import update_params_file

        update_params_file(args.params, block)
        print(f"{PROG} dates: wrote {args.params}", file=sys.stderr)
    else:
        import yaml

        print(yaml.safe_dump(block, sort_keys=False), end="")
    print(
        f"{PROG} dates: the log covers {plan.first_day} to {plan.last_day}; "
        f"training and history {plan.load.start}..{plan.load.end}, "
        + (f"replay {plan.replay.start}..{plan.replay.end}" if plan.replay else "no replay"),
        file=sys.stderr,
    )
    return EXIT_OK


def _run_manifest(args: argparse.Namespace) -> int:
    from query_predictor.manifest import write_manifest

    try:
        manifest = write_manifest(args.prefix, args.output, endpoint_url=args.endpoint_url)
    except FileNotFoundError as exc:
        print(f"{PROG} manifest: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"{PROG} manifest: {len(manifest['files'])} files, {manifest['total_bytes']:,} bytes "
        f"under {args.prefix} -> {args.output}",
        file=sys.stderr,
    )
    return EXIT_OK


def _add_models_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models",
        type=str,
        default="models",
        metavar="DIR",
        help="the model bundle (default: models, as `dvc repro` or `dvc pull` leaves it)",
    )


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

    predict = subparsers.add_parser(
        "predict",
        help="say whether one query will be heavy (one JSON object on stdout)",
        description=(
            "Classify one statement with the model bundle: zero-cost statements are light "
            "without the model; any other is scored by the ONNX model. Prints heavy, "
            "probability, stage (zero_cost or model), threshold, model_version, category."
        ),
    )
    predict.add_argument("--sql", required=True, help="the statement; - reads it from stdin")
    predict.add_argument("--user", help="the Trino user")
    predict.add_argument("--source", help="the client's source (superset, airflow, ...)")
    predict.add_argument("--catalog", help="the session catalog")
    predict.add_argument("--schema", help="the session schema")
    predict.add_argument("--query-type", help="Trino's query type (SELECT, INSERT, ...)")
    _add_models_argument(predict)
    predict.set_defaults(run=_run_predict)

    serve = subparsers.add_parser(
        "serve",
        help="answer Trino Gateway's external routing calls over HTTP",
        description=(
            "Load the model bundle and answer over HTTP/1.1 (uvicorn): POST /v1/route (Trino "
            "Gateway's EXTERNAL routing rules: heavy queries to --heavy-group, the others to "
            "--light-group), POST /v1/predict (one prediction, as `predict` prints it), "
            "GET /healthz and GET /metrics (Prometheus). SIGHUP reloads the bundle; Ctrl-C or "
            "SIGTERM stops it gracefully. docs/serving.md has the details."
        ),
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument(
        "--port", type=int, default=8080, help="port to listen on; 0 picks a free one"
    )
    _add_models_argument(serve)
    serve.add_argument("--heavy-group", default="heavy", help="routing group of heavy queries")
    serve.add_argument("--light-group", default="adhoc", help="routing group of the other queries")
    serve.add_argument(
        "--workers", type=int, default=1, help="processes answering (default 1; one per core)"
    )
    serve.add_argument(
        "--max-connections",
        type=int,
        default=4096,
        help="per worker: connections and requests at once; past it, 503 (default 4096)",
    )
    serve.add_argument(
        "--keep-alive-seconds",
        type=int,
        default=75,
        help="close a keep-alive connection idle this long (default 75)",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=int,
        help="largest request body; a larger one is a 413 (default 1 MiB + 64 KiB)",
    )
    serve.add_argument(
        "--graceful-seconds",
        type=int,
        default=20,
        help="on SIGTERM, how long requests in flight may finish (default 20)",
    )
    serve.add_argument(
        "--token-file",
        metavar="PATH",
        help="require 'Authorization: Bearer <the file's content>' on every endpoint but "
        "/healthz (without it: the QUERY_PREDICTOR_TOKEN environment variable; neither: no auth)",
    )
    serve.add_argument(
        "--resource-estimate",
        action="store_true",
        help="also send X-Trino-Resource-Estimate (the template's p90 CPU and memory)",
    )
    serve.add_argument(
        "--no-decision-tag",
        dest="decision_tag",
        action="store_false",
        default=None,
        help="do not append the decision's client tag (qp=heavy;p=...;v=...) to "
        "X-Trino-Client-Tags; on by default (docs/serving.md)",
    )
    serve.add_argument(
        "--access-log", action="store_true", help="log every request as one JSON line to stderr"
    )
    serve.add_argument(
        "--statement-cache",
        type=int,
        help="per worker: statement texts whose analysis is kept for when they come again "
        "(0: none; default 4096; emptied by a reload)",
    )
    serve.set_defaults(run=_run_serve)

    dates = subparsers.add_parser(
        "dates",
        help="fit every date window of params.yaml to the days a raw log covers",
        description=(
            "Read the create times of the raw log (data_loading.raw_path, or --raw) and set "
            "data_loading.start_date/end_date, splits.* and replay.* so that the last "
            "--replay-days are replayed, the validation and test windows keep their lengths "
            "and training gets up to splits.train_days of the rest. Prints the params block, "
            "or with --write edits params.yaml in place (comments kept)."
        ),
    )
    dates.add_argument("--raw", help="the raw log (default: data_loading.raw_path)")
    dates.add_argument(
        "--params", type=Path, default=Path("params.yaml"), help="params file to read and edit"
    )
    dates.add_argument(
        "--replay-days", type=int, default=14, help="days at the end kept for replay (0: none)"
    )
    dates.add_argument("--write", action="store_true", help="edit the params file in place")
    dates.set_defaults(run=_run_dates)

    manifest = subparsers.add_parser(
        "manifest",
        help="list the files under a folder or s3:// prefix with sizes and content hashes",
        description=(
            "Write a JSON manifest (key, size, sha256 or S3 ETag of every file) for DVC to "
            "track a large intermediate that stays on S3 or HDFS (docs/spark.md)."
        ),
    )
    manifest.add_argument("prefix", help="a local folder or an s3:// prefix")
    manifest.add_argument("--output", type=Path, required=True, help="the manifest file")
    manifest.add_argument("--endpoint-url", help="S3-compatible endpoint (MinIO, a test server)")
    manifest.set_defaults(run=_run_manifest)
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
