"""Helpers of the end-to-end tests: a tiny copy of the project, and commands run in it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]

TINY = {
    "synth": {"queries_per_day": 600, "start_date": "2025-06-01", "end_date": "2025-06-06"},
    "data_loading": {"start_date": "2025-06-01", "end_date": "2025-06-05"},
    "splits": {"train_days": 3, "val_days": 1, "test_days": 1},
    "zero_cost": {"min_support": 20},
    "model": {"n_estimators": 20},
    "replay": {"start_date": "2025-06-06", "end_date": "2025-06-06"},
    # one process and one thread: on 500 rows, a second OpenMP thread only adds waiting
    "engine": {"workers": 1},
}
# credentials for the local S3 server only; real ones never reach the tests
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def environment(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        env.pop(key, None)
    env.update(FAKE_AWS)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["DVC_NO_ANALYTICS"] = "1"
    env.update(extra)
    return env


def run(
    args: list[str], cwd: Path, *, ok: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run a command in ``cwd``; with ``ok`` (the default) it must succeed."""
    done = subprocess.run(
        args, cwd=cwd, env=environment(**env), capture_output=True, text=True, check=False
    )
    if ok:
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


LISTENING = (
    r"query-predictor serve: listening on (http://127\.0\.0\.1:\d+) \(model (\S+), 1 worker\)\n"
)


@contextmanager
def serving(project: Path, *flags: str) -> Iterator[tuple[str, str]]:
    """The installed ``query-predictor serve`` on ``project``'s bundle, on a free port of
    127.0.0.1: (its address, the model version it says it serves). SIGTERM stops it, and it
    must then exit cleanly."""
    server = subprocess.Popen(
        ["query-predictor", "serve", "--port", "0", "--models", "models", *flags],
        cwd=project,
        env=environment(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stderr.readline()  # type: ignore[union-attr]
        found = re.fullmatch(LISTENING, line)
        assert found, line
        yield found[1], found[2]
    finally:
        server.send_signal(signal.SIGTERM)
        _, rest = server.communicate(timeout=10)
    assert server.returncode == 0, rest
    assert "Traceback" not in rest


def metric_rows(markdown: str) -> set[tuple[str, str]]:
    """(path, metric) of each row of a `dvc metrics diff --md` table."""
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in markdown.splitlines()]
    return {(row[0], row[1]) for row in cells if len(row) >= 2 and row[0].startswith("metrics/")}


def s3_client(endpoint: str):
    """A boto3 S3 client for the local server, with the tests' fake keys."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=FAKE_AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
        region_name=FAKE_AWS["AWS_DEFAULT_REGION"],
    )


def set_param(project: Path, section: str, key: str, value: object) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params[section][key] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def make_project(path: Path) -> Path:
    """The stage code, dvc.yaml, plot templates and a tiny params.yaml in a new git+dvc repo."""
    path.mkdir(parents=True)
    for name in ("stages", "query_predictor"):
        shutil.copytree(REPO / name, path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "dvc.yaml", path / "dvc.yaml")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q", "-b", "main"], path)
    run(["git", "config", "user.email", "ci@example.com"], path)
    run(["git", "config", "user.name", "CI"], path)
    run(["dvc", "init", "-q"], path)
    run(["dvc", "config", "core.analytics", "false"], path)
    shutil.copytree(REPO / ".dvc" / "plots", path / ".dvc" / "plots")
    return path
