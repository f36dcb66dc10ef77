"""Manifests: every file with its size and content hash, stable, changed by any byte."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from query_predictor.cli import main
from query_predictor.manifest import entries, write_manifest
from tests.code.test_load_s3 import s3_endpoint  # noqa: F401 (the local S3 server fixture)


def test_a_local_manifest_lists_every_file_and_changes_with_its_bytes(tmp_path: Path) -> None:
    data = tmp_path / "labeled"
    (data / "date=2025-06-01").mkdir(parents=True)
    (data / "date=2025-06-01" / "part-0.parquet").write_bytes(b"abc")
    (data / "date=2025-06-02").mkdir()
    (data / "date=2025-06-02" / "part-0.parquet").write_bytes(b"defg")
    (data / ".part.tmp").write_bytes(b"half-written")
    first = write_manifest(str(data), tmp_path / "m.json")
    assert [f["key"] for f in first["files"]] == [
        "date=2025-06-01/part-0.parquet",
        "date=2025-06-02/part-0.parquet",
    ]
    assert first["total_bytes"] == 7
    assert first["files"][0]["hash"].startswith("sha256:ba7816bf")
    before = (tmp_path / "m.json").read_bytes()
    write_manifest(str(data), tmp_path / "m.json")
    assert (tmp_path / "m.json").read_bytes() == before
    (data / "date=2025-06-02" / "part-0.parquet").write_bytes(b"defh")
    assert entries(str(data))[1]["hash"] != first["files"][1]["hash"]


def test_an_s3_manifest_uses_etags(s3_endpoint: str, tmp_path: Path) -> None:  # noqa: F811
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="work")
    client.put_object(Bucket="work", Key="labeled/a.parquet", Body=b"abc")
    client.put_object(Bucket="work", Key="labeled/b/c.parquet", Body=b"de")
    client.put_object(Bucket="work", Key="other/x.parquet", Body=b"x")
    out = tmp_path / "m.json"
    assert (
        main(["manifest", "s3://work/labeled", "--output", str(out), "--endpoint-url", s3_endpoint])
        == 0
    )
    files = json.loads(out.read_text())["files"]
    assert [(f["key"], f["size"]) for f in files] == [("a.parquet", 3), ("b/c.parquet", 2)]
    assert files[0]["hash"] == "etag:900150983cd24fb0d6963f7d28e17f72"  # md5 of a single put


def test_a_missing_folder_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["manifest", str(tmp_path / "nope"), "--output", str(tmp_path / "m.json")]) == 2
    assert "is not a directory" in capsys.readouterr().err
