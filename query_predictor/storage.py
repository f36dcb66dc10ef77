"""Atomic, deterministic writes and parquet discovery, local or on S3.

An interrupted stage must leave nothing half-written: every output is written beside its
final name and moved into place in one ``rename``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

__all__ = [
    "atomic_dir",
    "atomic_file",
    "is_s3",
    "s3_storage_options",
    "write_json",
    "write_parquet",
]

# zstd keeps the raw log small; statistics let polars and Spark skip row groups by time.
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "statistics": True,
}


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it replaces the directory ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | Path, payload: Any) -> None:
    """Write ``payload`` as sorted, indented JSON, atomically (stable bytes for DVC)."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def write_parquet(frame: pl.DataFrame, path: str | Path) -> None:
    """Write one parquet file atomically with the project's fixed options."""
    with atomic_file(path) as tmp:
        frame.write_parquet(tmp, **PARQUET_OPTIONS)


def is_s3(path: str) -> bool:
    return path.startswith(("s3://", "s3a://"))


def s3_storage_options(
    *, endpoint_url: str | None = None, region: str | None = None
) -> dict[str, str]:
    """polars ``storage_options`` for S3: credentials stay in the environment (AWS_*).

    ``endpoint_url`` (or ``AWS_ENDPOINT_URL``) points at MinIO or another S3-compatible store;
    plain ``http://`` endpoints are allowed so a local test server works.
    """
    options: dict[str, str] = {}
    endpoint = (
        endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    )
    if endpoint:
        options["aws_endpoint_url"] = endpoint
        if endpoint.startswith("http://"):
            options["aws_allow_http"] = "true"
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options["aws_region"] = region
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        if os.environ.get(key):
            options[key.lower()] = os.environ[key]
    return options
