"""Spark reading the raw log from the local S3 server, and running on a standalone cluster.

The load's Spark tasks read their day's row groups with the same polars reader as the polars
engine, so S3 works from the executors' Python side without Spark's S3A connector (whose
jars are not part of pyspark's wheel); credentials reach executors through the environment.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal

from query_predictor.params import Params
from query_predictor.training.loading import run_load
from query_predictor.training.partitions import PolarsRunner, load_partitions, write_outputs
from query_predictor.training.spark_engine import SparkEngine
from tests.code.test_load_s3 import s3_endpoint  # noqa: F401 (the local S3 server fixture)
from tests.e2e.project import environment

from .conftest import SMALL

REPO = Path(__file__).resolve().parents[2]


def test_spark_load_reads_the_raw_log_from_s3(
    spark: SparkEngine,
    small_log: tuple[Path, Params],
    s3_endpoint: str,  # noqa: F811
) -> None:
    raw, params = small_log
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="logs")
    for path in sorted(raw.rglob("*.parquet")):
        client.upload_file(str(path), "logs", f"trino/{path.relative_to(raw)}")
    on_s3 = params.data_loading.model_copy(
        update={"raw_path": "s3://logs/trino", "s3_endpoint_url": s3_endpoint}
    )
    from_s3 = run_load(on_s3, params.filters, runner=spark.load_runner())
    local = run_load(params.data_loading, params.filters)
    assert from_s3.labeled.height > 1500
    assert_frame_equal(from_s3.labeled, local.labeled)
    assert from_s3.metrics == local.metrics


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, process: subprocess.Popen, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Spark {what} exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"the Spark {what} did not listen on 127.0.0.1:{port}")


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[str]:
    """A Spark standalone master and one worker (1 core, 1 GiB) on 127.0.0.1."""
    from pyspark.find_spark_home import _find_spark_home

    spark_class = str(Path(_find_spark_home()) / "bin" / "spark-class")
    env = {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOG_DIR": str(tmp_path),
    }
    port, ui, worker_ui = _free_port(), _free_port(), _free_port()
    master_url = f"spark://127.0.0.1:{port}"
    logs = (tmp_path / "master.log").open("w"), (tmp_path / "worker.log").open("w")
    master = subprocess.Popen(
        [
            *(spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1"),
            *("--port", str(port), "--webui-port", str(ui)),
        ],
        env=env,
        stdout=logs[0],
        stderr=subprocess.STDOUT,
    )
    worker = None
    try:
        _wait_for(port, master, "master")
        worker = subprocess.Popen(
            [
                *(spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1"),
                *("--cores", "1", "--memory", "1g", "--webui-port", str(worker_ui)),
                *("--work-dir", str(tmp_path / "work"), master_url),
            ],
            env=env,
            stdout=logs[1],
            stderr=subprocess.STDOUT,
        )
        _wait_for(worker_ui, worker, "worker")
        yield master_url
    finally:
        for process in (worker, master):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
        for log in logs:
            log.close()


def test_load_stage_on_a_standalone_cluster_matches_polars(
    standalone: str, small_log: tuple[Path, Params], tmp_path: Path
) -> None:
    raw, params = small_log
    project = tmp_path / "project"
    project.mkdir()
    settings = {
        **SMALL,
        "data_loading": {**SMALL["data_loading"], "raw_path": str(raw)},
        "engine": {"name": "spark", "workers": 1},
        "spark": {"master": standalone, "driver_memory": "1g", "executor_memory": "1g"},
    }
    (project / "params.yaml").write_text(yaml.safe_dump(settings))
    done = subprocess.run(
        [
            *(sys.executable, str(REPO / "stages" / "load.py"), "--out", "labeled"),
            *("--quarantine", "quarantine", "--metrics", "load.json", "--analysis", "analysis"),
        ],
        cwd=project,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "engine" in done.stdout and "spark" in done.stdout
    reference = load_partitions(params.data_loading, params.filters, runner=PolarsRunner())
    write_outputs(reference, labeled_dir=tmp_path / "ref", quarantine_file=tmp_path / "q.parquet")
    ours = sorted((project / "labeled").rglob("*.parquet"))
    theirs = sorted((tmp_path / "ref").rglob("*.parquet"))
    assert [p.relative_to(project / "labeled") for p in ours] == [
        p.relative_to(tmp_path / "ref") for p in theirs
    ]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(ours, theirs, strict=True))
    assert pl.read_parquet(ours).height == reference.metrics["rows_labeled"]
