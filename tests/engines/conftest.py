"""One Spark session (local mode, 2 cores) and one small generated log for every engine test:
starting Spark costs tens of seconds, so it happens once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from query_predictor.params import Params, Spark, parse_params
from query_predictor.synth.generator import generate
from query_predictor.training.spark_engine import SparkEngine
from tests.e2e.project import FAKE_AWS

SMALL = {
    "synth": {"queries_per_day": 700, "start_date": "2025-06-01", "end_date": "2025-06-05"},
    "data_loading": {"start_date": "2025-06-01", "end_date": "2025-06-05"},
    "splits": {"train_days": 3, "val_days": 1, "test_days": 1},
    "zero_cost": {"min_support": 20},
    "features": {"parity_sample": 200},
}


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkEngine]:
    # executors get the local S3 server's fake keys the way a cluster's would get real
    # ones without an instance role: spark.executorEnv.*
    conf = {f"spark.executorEnv.{k}": v for k, v in FAKE_AWS.items()}
    engine = SparkEngine(
        Spark(master="local[2]", driver_memory="1g", shuffle_partitions=2, conf=conf)
    )
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture(scope="session")
def small_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Params]:
    raw = tmp_path_factory.mktemp("engines") / "raw"
    params = parse_params(
        {**SMALL, "data_loading": {**SMALL["data_loading"], "raw_path": str(raw)}}
    )
    generate(params.synth, output_dir=raw, workers=1)
    return raw, params
