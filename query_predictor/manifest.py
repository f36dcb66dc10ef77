"""Content manifests: what DVC tracks when a large intermediate stays on S3 or HDFS.

    query-predictor manifest s3://bucket/work/labeled --output manifests/labeled.json

A manifest lists every file under a prefix with its size and a content hash (sha256 for
local files; the object's ETag on S3, which changes whenever its bytes do), sorted by key,
as stable JSON. Declared as a stage's output (or tracked with ``dvc add``), it lets DVC see
exactly what changed while the data itself never passes through the machine running
``dvc repro`` (docs/spark.md).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from query_predictor.storage import is_s3, write_json

FORMAT_VERSION = 1


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def entries(prefix: str, *, endpoint_url: str | None = None) -> list[dict[str, Any]]:
    """``key`` (relative to ``prefix``), ``size`` and ``hash`` of every file under it."""
    if is_s3(prefix):
        import fsspec  # installed with dvc-s3 (s3fs)

        client = {"endpoint_url": endpoint_url} if endpoint_url else {}
        fs = fsspec.filesystem("s3", client_kwargs=client)
        root = prefix.split("://", 1)[1].rstrip("/")
        found = fs.find(root, detail=True)
        rows = [
            {
                "key": name[len(root) + 1 :],
                "size": int(info["size"]),
                "hash": "etag:" + str(info.get("ETag", "")).strip('"'),
            }
            for name, info in found.items()
        ]
    else:
        base = Path(prefix)
        if not base.is_dir():
            raise FileNotFoundError(f"{prefix} is not a directory or an s3:// prefix")
        rows = [
            {
                "key": str(p.relative_to(base)),
                "size": p.stat().st_size,
                "hash": "sha256:" + _sha256(p),
            }
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        ]
    return sorted(rows, key=lambda r: r["key"])


def write_manifest(prefix: str, output: str | Path, *, endpoint_url: str | None = None) -> dict:
    """Write the manifest of ``prefix`` to ``output`` (atomically) and return it."""
    files = entries(prefix, endpoint_url=endpoint_url)
    manifest = {
        "format_version": FORMAT_VERSION,
        "prefix": prefix,
        "files": files,
        "total_bytes": sum(f["size"] for f in files),
    }
    write_json(output, manifest)
    return manifest
