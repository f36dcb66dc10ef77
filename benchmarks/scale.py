"""Wall time and peak memory of load, zero_cost, split and featurize with each engine, at
one or more data sizes, and whether both engines wrote the same bytes.

    python benchmarks/scale.py                        # 1x and 10x (20,000 and 200,000/day)
    python benchmarks/scale.py --scale 1 --scale 3 --engine polars
    python benchmarks/scale.py --scale 10 --work /tmp/scale   # keep (and reuse) the logs

For each size the log is generated once in a scratch copy of the repository (under
``--work``, when given, it stays there and a later run with the same params reuses it: a
10x log takes over 20 minutes to generate); then, for each engine, the four stages run as
their own processes exactly as ``dvc repro`` runs them (:mod:`pipeline`'s runner: peak
memory is the summed RSS of the stage's process tree, the JVM and Spark's Python workers
included; CPU seconds are the tree's too). Spark runs in local mode on every core. The load
average at each stage's end is printed beside it: on a shared machine wall time alone says
little.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import yaml
from pipeline import REPO, run_stage_cpu, stage_commands

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


def generated(root: Path, params: dict, command: str) -> tuple[Path, str]:
    """The raw log for ``params`` under ``root/raw-source`` (generated unless a previous run
    left one for the same params there) and the table row that says which."""
    source = root / "raw-source"
    wanted = yaml.safe_dump(params, sort_keys=False)
    raw = source / "data" / "raw"
    done = source / "metrics" / "generate.json"  # written last: the log is complete
    if done.exists() and _synth(source / "params.yaml") == params["synth"]:
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in raw.rglob("*.parquet"))
        return raw, f"{rows:,} | (reused) | | |"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    shutil.copytree(REPO / "stages", source / "stages")
    (source / "params.yaml").write_text(wanted)
    seconds, peak, rows, cpu = run_stage_cpu(command, source)
    return raw, f"{rows:,} | {seconds:.0f} | {cpu:.0f} | {peak / 2**20:,.0f} |"


def _synth(path: Path) -> dict:
    """The generator's params section (dvc.yaml: generate depends on ``synth`` only)."""
    return yaml.safe_load(path.read_text())["synth"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, action="append", help="x default queries/day")
    parser.add_argument("--engine", action="append", choices=("polars", "spark"))
    parser.add_argument("--work", type=Path, help="keep the generated logs here, and reuse them")
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
    print("| scale | queries/day | engine | stage | rows | seconds | CPU s | peak MB | load avg |")
    print("|---:|---:|---|---|---:|---:|---:|---:|---:|")
    for scale in scales:
        per_day = int(base["synth"]["queries_per_day"] * scale)
        with contextlib.ExitStack() as stack:
            if args.work is None:
                root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="qp-scale-")))
            else:
                root = args.work / f"{scale:g}x"
            params = dict(base, synth=dict(base["synth"], queries_per_day=per_day))
            raw, row = generated(root, params, commands["generate"])
            print(
                f"| {scale:g}x | {per_day:,} | (generate) | generate | {row} {_load()} |",
                flush=True,
            )
            hashes = {}
            for engine in engines:
                work = root / engine
                shutil.rmtree(work, ignore_errors=True)
                shutil.copytree(REPO / "stages", work / "stages")
                (work / "data").mkdir()
                (work / "data" / "raw").symlink_to(raw.resolve(), target_is_directory=True)
                run_params = dict(params, engine=dict(base["engine"], name=engine))
                (work / "params.yaml").write_text(yaml.safe_dump(run_params, sort_keys=False))
                total = total_cpu = 0.0
                for stage in STAGES:
                    seconds, peak, rows, cpu = run_stage_cpu(commands[stage], work)
                    total += seconds
                    total_cpu += cpu
                    print(
                        f"| {scale:g}x | {per_day:,} | {engine} | {stage} | {rows:,} | "
                        f"{seconds:.0f} | {cpu:.0f} | {peak / 2**20:,.0f} | {_load()} |",
                        flush=True,
                    )
                print(
                    f"| {scale:g}x | {per_day:,} | {engine} | **total** | | {total:.0f} | "
                    f"{total_cpu:.0f} | | |",
                    flush=True,
                )
                hashes[engine] = digest(work)
                shutil.rmtree(work)
            print(
                f"outputs at {scale:g}x: {hashes} "
                f"({'identical' if len(set(hashes.values())) == 1 else 'DIFFERENT'})"
            )


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


if __name__ == "__main__":
    main()
