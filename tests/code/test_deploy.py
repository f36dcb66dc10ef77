"""deploy/query-predictor.service, the systemd unit docs/serving.md offers: its command line is
one ``query-predictor serve`` takes, and its stop and reload are the signals the supervisor
handles."""

from __future__ import annotations

import configparser
import dataclasses
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from query_predictor.cli import build_parser
from query_predictor.service.server import ServeSettings

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "query-predictor.service"


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
