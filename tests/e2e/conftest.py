"""Fixtures of the end-to-end tests.

The first ``dvc repro`` is the slow part, so it runs once per session (``first_run``); each
test gets its own copy of that committed repository, cache included (``project``). Under
pytest-xdist (``make test`` runs two workers) the tests that use it share one worker, so it
still runs once.
"""

from __future__ import annotations

import shutil
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from .project import make_project, run


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Before xdist reads the groups: every test on the first run's copy joins one group."""
    for item in items:
        if "first_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("first_run"))


@dataclass(frozen=True)
class FirstRun:
    path: Path
    stdout: str


@pytest.fixture(scope="session")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> FirstRun:
    """The tiny pipeline run once from scratch and committed as "first run"."""
    project = make_project(tmp_path_factory.mktemp("first") / "project")
    done = run(["dvc", "repro"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "first run"], project)
    return FirstRun(project, done.stdout)


@pytest.fixture
def project(first_run: FirstRun, tmp_path: Path) -> Path:
    """A private copy of the first run's repository (work tree, git history, dvc cache)."""
    copy = tmp_path / "project"
    shutil.copytree(first_run.path, copy, symlinks=True)
    return copy


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    """A real S3 API (moto's server) on 127.0.0.1, on a free port, for one test."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto keeps buckets per process, across servers: start each test from an empty store
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
    try:
        yield endpoint
    finally:
        server.stop()
