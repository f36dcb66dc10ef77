"""Wall time and peak memory of load, zero_cost, split and featurize with each engine, at
one or more data sizes, and whether both engines wrote the same bytes.

    python benchmarks/scale.py                        # 1x and 10x (20,000 and 200,000/day)
    python benchmarks/scale.py --scale 1 --scale 3 --engine polars

For each size the log is generated once in a scratch copy of the repository; then, for each
engine, the four stages run as their own processes exactly as ``dvc repro`` runs them
(:mod:`pipeline`'s runner: peak memory is the summed RSS of the stage's process tree, the
JVM and Spark's Python workers included). Spark runs in local mode on every core.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import psutil
import yaml
from pipeline import REPO, run_stage, stage_commands

STAGES = ("load", "zero_cost", "split", "featurize")
OUTPUTS = ("data/labeled", "data/splits", "data/features", "models")


def digest(work: Path) -> str:
    """One hash over every file the four stages wrote (names and bytes)."""
    h = hashlib.sha256()
    for folder in OUTPUTS:
        for path in sorted((work / folder).rglob("*")):
            if path.is_file() and path.suffix in (".parquet", ".json", ".csv"):
                h.update(str(path.relative_to(work)).encode())
                h.update(path.read_bytes())
    return h.hexdigest()[:12]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, action="append", help="x default queries/day")
    parser.add_argument("--engine", action="append", choices=("polars", "spark"))
    args = parser.parse_args()
    scales = args.scale or [1.0, 10.0]
    engines = args.engine or ["polars", "spark"]
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    commands = stage_commands()
    memory = psutil.virtual_memory().total / 2**30
    print(
        f"machine: {os.cpu_count()} cores, {memory:.0f} GB, {platform.platform()}, "
        f"python {sys.version.split()[0]}"
    )
    print("| scale | queries/day | engine | stage | rows | seconds | peak memory (MB) |")
    print("|---:|---:|---|---|---:|---:|---:|")
    for scale in scales:
        per_day = int(base["synth"]["queries_per_day"] * scale)
        with tempfile.TemporaryDirectory(prefix="qp-scale-") as tmp:
            source = Path(tmp) / "raw-source"
            source.mkdir()
            shutil.copytree(REPO / "stages", source / "stages")
            params = dict(base, synth=dict(base["synth"], queries_per_day=per_day))
            (source / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
            seconds, peak, rows = run_stage(commands["generate"], source)
            print(
                f"| {scale:g}x | {per_day:,} | (generate) | generate | {rows:,} | "
                f"{seconds:.0f} | {peak / 2**20:,.0f} |",
                flush=True,
            )
            hashes = {}
            for engine in engines:
                work = Path(tmp) / engine
                shutil.copytree(REPO / "stages", work / "stages")
                shutil.copytree(source / "data" / "raw", work / "data" / "raw")
                run_params = dict(params, engine=dict(base["engine"], name=engine))
                (work / "params.yaml").write_text(yaml.safe_dump(run_params, sort_keys=False))
                total = 0.0
                for stage in STAGES:
                    seconds, peak, rows = run_stage(commands[stage], work)
                    total += seconds
                    print(
                        f"| {scale:g}x | {per_day:,} | {engine} | {stage} | {rows:,} | "
                        f"{seconds:.0f} | {peak / 2**20:,.0f} |",
                        flush=True,
                    )
                print(
                    f"| {scale:g}x | {per_day:,} | {engine} | **total** | | {total:.0f} | |",
                    flush=True,
                )
                hashes[engine] = digest(work)
                shutil.rmtree(work / "data" / "raw")
            print(
                f"outputs at {scale:g}x: {hashes} "
                f"({'identical' if len(set(hashes.values())) == 1 else 'DIFFERENT'})"
            )


if __name__ == "__main__":
    main()
