"""What deploy/ offers an operator (docs/serving.md): the systemd unit, whose command line is one
``query-predictor serve`` takes and whose stop and reload are the signals the supervisor
handles; and the Prometheus alerting rules, whose expressions parse as PromQL and name only
the metrics, labels and values the service exports."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def serve_settings(service: configparser.SectionProxy) -> tuple[str, ServeSettings]:
    """The unit's program and the settings its command line gives, as the CLI reads them."""
    program, *argv = shlex.split(service["ExecStart"])
    args = build_parser().parse_args(argv)  # an unknown option exits here
    assert args.command == "serve"
    return program, ServeSettings.of(vars(args))


def test_the_units_command_line_is_a_serve_the_cli_takes() -> None:
    program, settings = serve_settings(service_section())
    assert Path(program).name == "query-predictor"
    settings.check()
    assert settings.workers > 1  # so the supervisor's signals matter


def test_stop_outlasts_the_graceful_period_and_reload_is_a_sighup() -> None:
    service = service_section()
    _, settings = serve_settings(service)
    assert int(service["TimeoutStopSec"]) > settings.graceful_seconds
    # SIGTERM to the supervisor alone (it stops its workers), not to every process at once
    assert service["KillMode"] == "mixed" and service["KillSignal"] == "SIGTERM"
    assert shlex.split(service["ExecReload"])[1:] == ["-HUP", "$MAINPID"]


def test_systemd_reads_the_unit_without_a_complaint(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    program, _ = serve_settings(service_section())
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


EXPORTED = exported()
KNOWN_VALUES = {
    "endpoint": set(ENDPOINTS),
    "routing_group": {ServeSettings.heavy_group, ServeSettings.light_group},
    "kind": documented_error_kinds(),
}


def problems(expr: str) -> list[str]:
    """What is wrong with an alert's expression: a syntax error, or a metric, label or label
    value the service does not export (``up`` is Prometheus' own)."""
    try:
        found = selectors(expr)
    except ValueError as exc:
        return [f"does not parse: {exc}"]
    wrong = []
    for selector in found:
        if selector.name == "up":
            continue
        if selector.name not in EXPORTED:
            wrong.append(f"no metric {selector.name}")
            continue
        for matcher in selector.matchers.matchers:
            if matcher.name not in EXPORTED[selector.name]:
                wrong.append(f"{selector.name} has no label {matcher.name}")
            elif matcher.value not in KNOWN_VALUES.get(matcher.name, {matcher.value}):
                wrong.append(f"{matcher.name}={matcher.value!r} never happens")
    return wrong


def rules() -> list[dict[str, Any]]:
    return yaml.safe_load(RULES.read_text())["groups"][0]["rules"]


def test_every_alert_parses_and_names_what_the_service_exports() -> None:
    assert {"internal", "reload_failed"} <= KNOWN_VALUES["kind"]
    seen = set()
    for rule in rules():
        assert rule["alert"].startswith("QueryPredictor") and rule["annotations"]["summary"]
        assert problems(rule["expr"]) == [], rule["alert"]
        seen |= {selector.name for selector in selectors(rule["expr"])}
    # the errors, the latency, the decisions and the model are all watched
    assert {
        "query_predictor_errors_total",
        "query_predictor_request_duration_seconds_bucket",
        "query_predictor_decisions_total",
        "query_predictor_model_info",
    } <= seen


@pytest.mark.parametrize(
    "expr",
    [
        'rate(query_predictor_request_total{endpoint="/v1/route"}[5m]) > 1',  # requests_total
        'rate(query_predictor_requests_total{path="/v1/route"}[5m]) > 1',  # label: endpoint
        'rate(query_predictor_requests_total{endpoint="/route"}[5m]) > 1',  # no such endpoint
        'increase(query_predictor_errors_total{kind="reload_fail"}[15m]) > 0',
        "sum(rate(query_predictor_requests_total[5m]) > 1",  # unclosed
    ],
)
def test_the_check_finds_what_is_wrong_in_an_expression(expr: str) -> None:
    assert problems(expr)


def test_the_docs_list_every_alert_of_the_file() -> None:
    text = (REPO / "docs" / "serving.md").read_text()
    listed = set(re.findall(r"^\| `(QueryPredictor\w+)` \|", text, flags=re.MULTILINE))
    assert listed == {rule["alert"] for rule in rules()}
