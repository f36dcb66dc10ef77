"""Versioned data and models on S3: the real git and dvc against moto's S3 server on 127.0.0.1.

Push two model versions, then from a fresh clone pull, check the first model out again with
`git checkout` + `dvc checkout` and with `dvc get --rev`, compare the commits' metrics, and
see a push to a broken remote fail clearly without touching the local cache.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .project import REPO, environment, metric_rows, run, s3_client, set_param

pytestmark = pytest.mark.slow

BUCKET = "models-bucket"
TRACKED = ("models/model.onnx", "models/tfidf_vocab.json", "models/metadata.json")


def digests(project: Path) -> dict[str, str]:
    return {p: hashlib.sha256((project / p).read_bytes()).hexdigest() for p in TRACKED}


def use_remote(project: Path, endpoint: str) -> None:
    """The committed remote plus this machine's endpoint, as docs/operations.md tells users."""
    run(["dvc", "remote", "add", "-d", "store", f"s3://{BUCKET}/dvc"], project)
    run(["dvc", "remote", "modify", "--local", "store", "endpointurl", endpoint], project)


def cache_files(project: Path) -> set[str]:
    cache = project / ".dvc" / "cache"
    return {str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file()}


def test_push_pull_and_check_out_a_past_model(
    project: Path, s3_endpoint: str, tmp_path: Path
) -> None:
    s3_client(s3_endpoint).create_bucket(Bucket=BUCKET)
    use_remote(project, s3_endpoint)
    assert "endpointurl" not in (project / ".dvc" / "config").read_text()  # stays local
    run(["git", "commit", "-qam", "remote"], project)
    first_rev = run(["git", "rev-parse", "HEAD"], project).stdout.strip()
    first = digests(project)
    pushed = run(["dvc", "push"], project)
    assert "pushed" in pushed.stdout

    set_param(project, "model", "n_estimators", 5)
    run(["dvc", "repro"], project)
    run(["git", "commit", "-qam", "fewer trees"], project)
    run(["dvc", "push"], project)
    second = digests(project)
    assert second["models/model.onnx"] != first["models/model.onnx"]
    assert second["models/tfidf_vocab.json"] == first["models/tfidf_vocab.json"]

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    run(["dvc", "remote", "modify", "--local", "store", "endpointurl", s3_endpoint], clone)
    run(["dvc", "pull"], clone)
    assert digests(clone) == second
    run(["git", "checkout", "-q", first_rev], clone)
    assert run(["dvc", "checkout"], clone, ok=False).returncode != 0  # not fetched yet
    run(["dvc", "fetch", "--all-commits"], clone)  # every version, then offline checkouts
    run(["dvc", "checkout"], clone)
    assert digests(clone) == first

    # dvc get from a bare copy of the repository: no cache there, so it reads the remote
    # a GTO-style release: an annotated tag named <artifact>@v<semver>
    run(["git", "tag", "-a", "heavy-query-classifier@v1.0.0", "-m", "v1", first_rev], project)
    bare = tmp_path / "bare.git"
    run(["git", "clone", "-q", "--bare", str(project), str(bare)], tmp_path)
    got = tmp_path / "got.onnx"
    run(
        [
            "dvc", "get", str(bare), "models/model.onnx", "--rev", first_rev, "-o", str(got),
            "--remote-config", f"endpointurl={s3_endpoint}",
        ],
        tmp_path,
    )  # fmt: skip
    assert hashlib.sha256(got.read_bytes()).hexdigest() == first["models/model.onnx"]
    released = tmp_path / "released.onnx"
    run(
        [
            "dvc", "artifacts", "get", str(bare), "heavy-query-classifier", "--rev", "v1.0.0",
            "-o", str(released), "--remote-config", f"endpointurl={s3_endpoint}",
        ],
        tmp_path,
    )  # fmt: skip
    assert released.read_bytes() == got.read_bytes()

    run(["git", "checkout", "-q", "main"], clone)
    run(["dvc", "checkout"], clone)
    diff = run(["dvc", "metrics", "diff", first_rev, "--all", "--md"], clone).stdout
    rows = metric_rows(diff)
    assert {("metrics/evaluate.json", "recall"), ("metrics/evaluate.json", "fnr")} <= rows

    report = run(["bash", str(REPO / "scripts" / "pr_report.sh"), first_rev], clone).stdout
    assert f"workspace against `{first_rev}`" in report
    assert "| metrics/evaluate.json | recall" in report
    assert "| metrics/evaluate.json | fnr" in report
    assert "### Replay: the router on 2025-06-06 .. 2025-06-06" in report
    assert "zero-cost answers included: recall" in report
    assert "Online (decision tags in client_tags):" in report  # the simulated deployment
    assert "| model version | rows | recall |" in report
    assert "model.n_estimators" in report  # the params that changed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _push_fails(project: Path, endpoint: str) -> str:
    before_cache, before_models = cache_files(project), digests(project)
    use_remote(project, endpoint)
    done = run(["dvc", "push"], project, ok=False, AWS_MAX_ATTEMPTS="1", AWS_RETRY_MODE="standard")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    assert cache_files(project) == before_cache
    assert digests(project) == before_models
    assert "up to date" in run(["dvc", "status"], project).stdout
    return done.stderr + done.stdout


def test_push_to_an_unreachable_remote_fails_clearly(project: Path) -> None:
    message = _push_fails(project, f"http://127.0.0.1:{_free_port()}")
    assert "failed to push" in message.lower() or "could not connect" in message.lower()


def test_push_with_wrong_credentials_fails_clearly(project: Path) -> None:
    port = _free_port()
    # a moto server that checks signatures: the fake keys are unknown to it
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=environment(INITIAL_NO_AUTH_ACTION_COUNT="0"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        message = _push_fails(project, f"http://127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "InvalidAccessKeyId" in message or "forbidden" in message.lower(), message


def test_load_reads_raw_logs_from_s3_and_notices_new_ones(project: Path, s3_endpoint: str) -> None:
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket="trino-logs")
    raw = project / "data" / "raw"
    files = sorted(raw.rglob("*.parquet"))
    for path in files:
        client.upload_file(str(path), "trino-logs", f"raw/{path.relative_to(raw).as_posix()}")
    local = (project / "metrics" / "load.json").read_text()
    set_param(project, "data_loading", "raw_path", "s3://trino-logs/raw")
    # the endpoint comes from the environment, so dvc.lock stays the same on every machine
    endpoint = {"AWS_ENDPOINT_URL": s3_endpoint}
    done = run(["dvc", "repro", "load"], project, **endpoint)
    assert "Running stage 'load'" in done.stdout
    assert (project / "metrics" / "load.json").read_text() == local  # same rows, same labels
    assert "s3://trino-logs/raw" in (project / "dvc.lock").read_text()
    assert s3_endpoint not in (project / "dvc.lock").read_text()
    assert "up to date" in run(["dvc", "status", "load"], project, **endpoint).stdout

    client.upload_file(str(files[0]), "trino-logs", "raw/date=2025-06-07/late.parquet")
    status = run(["dvc", "status", "load"], project, **endpoint).stdout
    assert "modified:" in status and "s3://trino-logs/raw" in status
