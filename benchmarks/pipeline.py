"""Time and memory of the pipeline stages at one or more data sizes.

    python benchmarks/pipeline.py                      # default size (20,000 queries/day)
    python benchmarks/pipeline.py --scale 0.25 --scale 1

Each stage runs as its own process in a scratch copy of the repository, exactly as
``dvc repro`` runs it; peak memory is the largest summed RSS of the stage's process tree
(the generator's worker processes included), sampled every 50 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]


def stage_commands() -> dict[str, str]:
    """Each stage's command, read from dvc.yaml (the one place they are declared)."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {name: " ".join(stage["cmd"].split()) for name, stage in stages.items()}


def _tree_rss(proc: psutil.Process, cpu: dict[int, float] | None = None) -> int:
    """Summed RSS of ``proc`` and its descendants; records each one's CPU seconds in ``cpu``."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
            if cpu is not None:
                times = p.cpu_times()
                cpu[p.pid] = times.user + times.system
    return total


def run_stage(command: str, cwd: Path) -> tuple[float, int, int]:
    """Run one stage command; return (seconds, peak tree RSS in bytes, rows it reported)."""
    seconds, peak, rows, _ = run_stage_cpu(command, cwd)
    return seconds, peak, rows


def run_stage_cpu(command: str, cwd: Path) -> tuple[float, int, int, float]:
    """:func:`run_stage` and the CPU seconds of the stage's process tree (user + system, each
    process's last sample every 50 ms: a shared machine's wall time says little alone)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    started = time.perf_counter()
    child = subprocess.Popen(
        command, shell=True, cwd=cwd, env=env, stdout=subprocess.PIPE, text=True
    )
    proc = psutil.Process(child.pid)
    peak = 0
    cpu: dict[int, float] = {}
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                peak = max(peak, _tree_rss(proc, cpu))
            except psutil.Error:
                return
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = child.communicate()
    done.set()
    sampler.join()
    if child.returncode != 0:
        raise SystemExit(f"{command} failed with status {child.returncode}:\n{out}")
    rows = 0
    for line in out.splitlines():
        key = line.strip().split("  ")[0]
        if key in ("rows", "rows read", "rows labeled"):
            value = line.strip()[len(key) :].strip()
            # a count, or a JSON object of counts (featurize: rows per split)
            count = sum(json.loads(value).values()) if value.startswith("{") else int(value)
            rows = max(rows, count)
    return time.perf_counter() - started, peak, rows, sum(cpu.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, action="append", help="x default queries/day")
    args = parser.parse_args()
    scales = args.scale or [1.0]
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    print(f"{'scale':>6} {'stage':<9} {'rows':>10} {'seconds':>8} {'rows/s':>9} {'peak MB':>8}")
    for scale in scales:
        with tempfile.TemporaryDirectory(prefix="qp-bench-") as tmp:
            work = Path(tmp)
            shutil.copytree(REPO / "stages", work / "stages")
            params = dict(base)
            params["synth"] = dict(
                base["synth"], queries_per_day=int(base["synth"]["queries_per_day"] * scale)
            )
            (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
            env_cpus = os.cpu_count()
            for stage, command in stage_commands().items():
                seconds, peak, rows = run_stage(command, work)
                rate = rows / seconds if seconds else 0.0
                print(
                    f"{scale:>6g} {stage:<9} {rows:>10,} {seconds:>8.1f} {rate:>9,.0f} "
                    f"{peak / 2**20:>8,.0f}",
                    flush=True,
                )
    print(f"({env_cpus} cores; python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
