"""The load stage reads raw parquet from a real S3 endpoint (moto's server on 127.0.0.1)."""

from __future__ import annotations

import io
import urllib.request
from collections.abc import Iterator

import boto3
import polars as pl
import pytest
from moto.server import ThreadedMotoServer

from query_predictor.params import parse_params
from query_predictor.training.loading import run_load, scan_raw
from tests.code.rawlog import raw_frame, raw_row

BUCKET = "trino-logs"


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto keeps buckets per process, across servers: start each test from an empty store
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    try:
        yield endpoint
    finally:
        server.stop()


def _put(client: object, key: str, frame: pl.DataFrame) -> None:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    client.put_object(Bucket=BUCKET, Key=key, Body=buffer.getvalue())  # type: ignore[attr-defined]


def test_load_reads_an_s3_prefix(s3_endpoint: str) -> None:
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    _put(client, "raw/date=2025-06-01/a.parquet", raw_frame([raw_row(query_id="q1")]))
    # a later file with an extra optional column dropped and Int32 widths
    later = raw_frame([raw_row(query_id="q2", query="SELECT 2", cpu_time_millis=400_000)])
    later = later.drop("client_info")
    later = later.with_columns(pl.col("cpu_time_millis").cast(pl.Int32))
    _put(client, "raw/date=2025-06-02/b.parquet", later)
    _put(client, "other/ignored.parquet", raw_frame([raw_row(query_id="elsewhere")]))

    lazy = scan_raw(f"s3://{BUCKET}/raw", endpoint_url=s3_endpoint)
    assert sorted(lazy.collect()["query_id"]) == ["q1", "q2"]

    params = parse_params(
        {
            "data_loading": {
                "raw_path": f"s3://{BUCKET}/raw/",
                "s3_endpoint_url": s3_endpoint,
                "start_date": "2025-06-01",
                "end_date": "2025-06-30",
            }
        }
    )
    result = run_load(params.data_loading, params.filters)
    assert result.metrics["rows_read"] == 2
    heavy = dict(zip(result.labeled["query_id"], result.labeled["is_heavy"], strict=True))
    assert heavy == {"q1": False, "q2": True}


def test_empty_s3_prefix_names_the_param(s3_endpoint: str) -> None:
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    with pytest.raises(FileNotFoundError, match=r"data_loading\.raw_path"):
        scan_raw(f"s3://{BUCKET}/nothing-here", endpoint_url=s3_endpoint)
