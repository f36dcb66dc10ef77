"""What deploy/ offers an operator (docs/serving.md): the systemd unit, whose command line is one
``query-predictor serve`` takes and whose stop and reload are the signals the supervisor
handles; and the Prometheus alerting rules, whose expressions parse as PromQL and name only
the metrics, labels and values the service exports."""

from __future__ import annotations

import configparser
import dataclasses
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from query_predictor.cli import build_parser
from query_predictor.service.app import ENDPOINTS
from query_predictor.service.metrics import Metrics
from query_predictor.service.server import ServeSettings

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "query-predictor.service"
RULES = REPO / "deploy" / "prometheus-rules.yml"


def service_section() -> configparser.SectionProxy:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are CamelCase
    unit.read_string(UNIT.read_text())
    return unit["Service"]


def serve_args(service: configparser.SectionProxy) -> tuple[str, dict[str, object]]:
    program, *argv = shlex.split(service["ExecStart"])
    args = build_parser().parse_args(argv)  # an unknown option exits here
    assert args.command == "serve"
    names = {f.name for f in dataclasses.fields(ServeSettings)}
    return program, {k: v for k, v in vars(args).items() if k in names and v is not None}


def test_the_units_command_line_is_a_serve_the_cli_takes() -> None:
    program, given = serve_args(service_section())
    assert Path(program).name == "query-predictor"
    ServeSettings(**given).check()  # type: ignore[arg-type]
    assert given["workers"] > 1  # type: ignore[operator]  # so the supervisor's signals matter


def test_stop_outlasts_the_graceful_period_and_reload_is_a_sighup() -> None:
    service = service_section()
    _, given = serve_args(service)
    graceful = given.get("graceful_seconds", ServeSettings.graceful_seconds)
    assert int(service["TimeoutStopSec"]) > graceful  # type: ignore[operator]
    # SIGTERM to the supervisor alone (it stops its workers), not to every process at once
    assert service["KillMode"] == "mixed" and service["KillSignal"] == "SIGTERM"
    assert shlex.split(service["ExecReload"])[1:] == ["-HUP", "$MAINPID"]


def test_systemd_reads_the_unit_without_a_complaint(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    program, _ = serve_args(service_section())
    copy = tmp_path / UNIT.name  # with a program that exists here
    copy.write_text(UNIT.read_text().replace(program, sys.executable))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    # what it says of this unit names it; the host's own units are not this test's business
    about_it = [line for line in result.stderr.splitlines() if UNIT.name in line]
    assert about_it == []
    if result.returncode != 0:
        pytest.skip(f"systemd-analyze cannot verify units here: {result.stderr.strip()[:200]}")


def exported() -> dict[str, set[str]]:
    """Each sample name the service's /metrics can hold, with its label names: every metric
    recorded once through the service's own calls."""
    metrics = Metrics()
    metrics.observe("/v1/route", 200, 0.001)
    metrics.decided(ServeSettings.heavy_group, "model")
    metrics.tagged(True)
    metrics.model_loaded("model@0123456789ab", 1.0)
    metrics.errors.labels("internal").inc()
    metrics.batch_size.observe(1)
    samples: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, set()).update(sample.labels)
    return samples


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(expr), visit)  # a syntax error raises here
    return found


def documented_error_kinds() -> set[str]:
    row = next(
        line
        for line in (REPO / "docs" / "serving.md").read_text().splitlines()
        if line.startswith("| `query_predictor_errors_total`")
    )
    return set(re.findall(r"`([a-z_]+)`", row.split("|")[3]))


def test_every_alert_parses_and_names_what_the_service_exports() -> None:
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    samples, kinds = exported(), documented_error_kinds()
    values = {
        "endpoint": set(ENDPOINTS),
        "routing_group": {ServeSettings.heavy_group, ServeSettings.light_group},
        "kind": kinds,
    }
    assert "internal" in kinds and "reload_failed" in kinds
    seen = set()
    for rule in rules:
        assert rule["alert"].startswith("QueryPredictor") and rule["annotations"]["summary"]
        for selector in selectors(rule["expr"]):
            if selector.name == "up":  # Prometheus' own
                continue
            assert selector.name in samples, (rule["alert"], selector.name)
            for matcher in selector.matchers.matchers:
                assert matcher.name in samples[selector.name], (rule["alert"], matcher.name)
                if matcher.name in values:
                    assert matcher.value in values[matcher.name], (rule["alert"], matcher.value)
            seen.add(selector.name)
    # the errors, the latency, the decisions and the model are all watched
    assert {
        "query_predictor_errors_total",
        "query_predictor_request_duration_seconds_bucket",
        "query_predictor_decisions_total",
        "query_predictor_model_info",
    } <= seen


def test_a_wrong_metric_or_label_fails_the_check() -> None:
    """The check above can fail: a metric the service does not export is not among the
    samples, and a syntax error does not parse."""
    samples = exported()
    (selector,) = selectors('rate(query_predictor_request_total{endpoint="/v1/route"}[5m])')
    assert selector.name not in samples  # requests_total, not request_total
    with pytest.raises(ValueError):
        selectors("sum(rate(query_predictor_requests_total[5m])")
