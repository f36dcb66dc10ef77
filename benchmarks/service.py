"""Latency and throughput of ``query-predictor serve`` on loopback, open loop, against the
hand-written ``http.server`` it replaced, in the same run.

    python benchmarks/service.py [--rates 500,1000,2000,2500] [--seconds 10] [--workers 2]

Each server runs as a subprocess on 127.0.0.1 (a free port) with the bundle in ``--models``;
``POST /v1/route`` requests carry statements of the test split with their context, as Trino
Gateway sends them. The load is open loop, as a gateway in front of many users makes it:
request ``i`` is due at ``start + i / rate`` whatever happened to the ones before; it goes
out on a free keep-alive connection of a pool (``--connections``) or waits for one, and its
latency counts from when it was due, so a server that falls behind is charged for the queue
it causes. "saturation" offers far more than a server can answer (``--saturation-rate``) and
reports what it did answer per second. The two servers run side by side and take turns at each
rate, so that the machine's other load, when it changes from one minute to the next, falls on
both. The client is one asyncio process (uvloop) sharing the machine's cores with the server;
the table gives the CPU each used.

The baseline is the old server's own source, taken from git history (:data:`BASELINE_REV`,
the last commit that had it) into a temporary directory: the benchmark measures exactly what
shipped, and the package carries no dead server. It needs this checkout's git history.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import http.client
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import psutil
import uvloop

from query_predictor.service.routing import gateway_request
from query_predictor.training.featurize import contexts_of

REPO = Path(__file__).resolve().parents[1]
BASELINE_REV = "91cd89c06e6f376a80cc94430eadc45100400c46"
BASELINE_PATH = "query_predictor/service/server.py"
# starts the old server on a free port with the bundle in argv[2]; says where, as serve does
BASELINE_MAIN = """
import sys
sys.path.insert(0, sys.argv[1])
from baseline_server import Router, ServiceServer, serve_until_stopped
from query_predictor.service.predictor import Predictor
predictor = Predictor.from_bundle(sys.argv[2])
server = ServiceServer(("127.0.0.1", 0), Router(predictor))
host, port = server.server_address[:2]
print(f"listening on http://{host}:{port} (model {predictor.version})", file=sys.stderr, flush=True)
serve_until_stopped(server)
"""
WARM_UP = 2000


@dataclass
class Run:
    """One load on one server."""

    label: str
    offered: float  # requests per second, due
    latency: list[float] = field(default_factory=list)  # seconds, from due to answered
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    cpu: float = 0.0  # server CPU seconds (all its processes)
    client_cpu: float = 0.0

    @property
    def achieved(self) -> float:
        return len(self.latency) / self.elapsed

    def row(self) -> list[str]:
        ms = np.array(self.latency) * 1e3
        p50, p99 = np.percentile(ms, [50, 99])
        kinds = f" ({', '.join(sorted(set(self.errors)))})" if self.errors else ""
        return [
            self.label,
            f"{self.achieved:,.0f}",
            f"{p50:.2f}",
            f"{p99:.2f}",
            f"{ms.max():.1f}",
            f"{len(self.errors)}{kinds}",
            f"{self.cpu / self.elapsed:.0%}",
            f"{self.client_cpu / self.elapsed:.0%}",
            f"{self.per_cpu_second:,.0f}",
        ]

    @property
    def per_cpu_second(self) -> float:
        """Requests answered per second of server CPU: what the server would answer on one
        core of its own. Unlike latency, it holds when other work on the machine takes the
        cores (a server with fewer threads gets a smaller share of a crowded machine)."""
        return len(self.latency) / self.cpu if self.cpu else 0.0


def route_requests(frame: pl.DataFrame, host: str) -> list[bytes]:
    """Each statement of ``frame`` as the whole HTTP request Trino Gateway sends."""
    requests = []
    for sql, context in zip(frame["query"].to_list(), contexts_of(frame), strict=True):
        body, headers = gateway_request(sql, context)
        data = json.dumps(body).encode()
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        requests.append(
            (
                f"POST /v1/route HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n{head}\r\n"
            ).encode("latin-1")
            + data
        )
    return requests


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> str:
    """One request on an open connection; '' when answered 200 with a routing group."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    found = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    body = await reader.readexactly(int(found[1])) if found else b""
    status = head[9:12].decode()
    if status != "200":
        return f"HTTP {status}"
    return "" if b'"routingGroup"' in body else "no routing group"


async def load(
    address: tuple[str, int], requests: list[bytes], rate: float, connections: int, run: Run
) -> None:
    """Send ``requests`` open loop at ``rate`` over a pool of ``connections``."""
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(*address)
        while (item := await queue.get()) is not None:
            due, request = item
            try:
                error = await exchange(reader, writer, request)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                error = type(exc).__name__
                writer.close()
                reader, writer = await asyncio.open_connection(*address)
            run.latency.append(time.perf_counter() - due)
            if error:
                run.errors.append(error)
        writer.close()

    pool = [asyncio.create_task(connection()) for _ in range(connections)]
    await asyncio.sleep(0.2)  # connected
    start = time.perf_counter()
    for i, request in enumerate(requests):
        due = start + i / rate
        wait = due - time.perf_counter()
        if wait > 0.0005:
            await asyncio.sleep(wait)
        queue.put_nowait((due, request))
    for _ in pool:
        queue.put_nowait(None)
    await asyncio.gather(*pool)
    run.elapsed = time.perf_counter() - start


def start(command: list[str]) -> tuple[subprocess.Popen[str], tuple[str, int], str]:
    """A server subprocess: the process, its address and model (from its first line)."""
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=REPO)
    line = server.stderr.readline()  # type: ignore[union-attr]
    found = re.search(r"listening on http://([\d.]+):(\d+) \(model ([^,)]+)", line)
    if not found:
        server.kill()
        raise SystemExit(f"the server did not start: {line}{server.communicate()[1]}")
    address = (found[1], int(found[2]))
    wait_ready(address)
    return server, address, found[3]


def wait_ready(address: tuple[str, int], seconds: float = 60.0) -> None:
    """Until ``GET /healthz`` answers 200 on several connections (workers load their
    bundles after the socket is bound)."""
    deadline = time.monotonic() + seconds
    answered = 0
    while answered < 20:
        if time.monotonic() > deadline:
            raise SystemExit(f"the server on {address} did not answer /healthz")
        try:
            connection = http.client.HTTPConnection(*address, timeout=5)
            connection.request("GET", "/healthz")
            answered += connection.getresponse().status == 200
            connection.close()
        except OSError:
            time.sleep(0.2)


def server_cpu(process: psutil.Process) -> float:
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def bench(
    commands: dict[str, list[str]],
    requests: list[bytes],
    rates: list[float],
    args: argparse.Namespace,
) -> dict[str, list[Run]]:
    """Each load on each server, the servers taking turns at every rate (the order flips
    from one rate to the next), so that a change in the machine's other load between two
    minutes falls on both."""
    started = {name: start(command) for name, command in commands.items()}
    runs: dict[str, list[Run]] = {name: [] for name in commands}
    try:
        for name, (server, address, model) in started.items():
            print(f"{name}: pid {server.pid}, model {model}", file=sys.stderr)
            asyncio.run(load(address, requests[:WARM_UP], 1000.0, args.connections, Run("", 0)))
        order = list(started)
        for rate in [*rates, args.saturation_rate]:
            saturation = rate == args.saturation_rate
            # saturation: half as long (a slow server takes far longer than the due times)
            n = int(rate * args.seconds / (2 if saturation else 1))
            for name in order:
                server, address, _ = started[name]
                process = psutil.Process(server.pid)
                run = Run("saturation" if saturation else f"{rate:,.0f}/s", rate)
                before, client = server_cpu(process), time.process_time()
                asyncio.run(load(address, requests[:n], rate, args.connections, run))
                run.cpu = server_cpu(process) - before
                run.client_cpu = time.process_time() - client
                runs[name].append(run)
                print(f"  {name} | {' | '.join(run.row())}", file=sys.stderr)
                time.sleep(1.0)
            order.reverse()
    finally:
        for server, _, _ in started.values():
            server.terminate()
            server.wait(timeout=30)
    return runs


def baseline_command(directory: Path, models: Path) -> list[str]:
    source = subprocess.run(
        ["git", "show", f"{BASELINE_REV}:{BASELINE_PATH}"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if source.returncode != 0:
        raise SystemExit(f"the baseline needs git history ({BASELINE_REV}): {source.stderr}")
    (directory / "baseline_server.py").write_text(source.stdout)
    return [sys.executable, "-c", BASELINE_MAIN, str(directory), str(models)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="500,1000,2000,2500", help="requests per second")
    parser.add_argument("--saturation-rate", type=float, default=10000.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="per rate")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive pool")
    parser.add_argument("--workers", type=int, default=2, help="of the new server")
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--split", type=Path, default=REPO / "data" / "splits" / "test.parquet")
    args = parser.parse_args()
    uvloop.install()
    rates = [float(r) for r in args.rates.split(",")]
    total = int(args.saturation_rate * args.seconds)
    frame = pl.read_parquet(args.split)
    frame = frame.sample(n=total, with_replacement=frame.height < total, seed=7)
    requests = route_requests(frame, "127.0.0.1")
    new = [
        sys.executable, "-m", "query_predictor.cli", "serve", "--port", "0",
        "--models", str(args.models), "--workers", str(args.workers),
    ]  # fmt: skip
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        commands = {
            "old: http.server": baseline_command(Path(scratch), args.models),
            f"new: uvicorn, {args.workers} workers": new,
        }
        servers = bench(commands, requests, rates, args)
    print(
        f"\n{len(requests):,}-request pool of POST /v1/route from {args.split.name}, open loop, "
        f"{args.seconds:g} s per rate, {args.connections} keep-alive connections; "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores "
        "shared by client and server; load average "
        f"{load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after\n"
    )
    header = [
        "server",
        "load",
        "answered/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "server CPU",
        "client CPU",
        "answered per server CPU-s",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, runs in servers.items():
        for run in runs:
            print(f"| {name} | " + " | ".join(run.row()) + " |")
    old, new_runs = servers.values()
    print("\nnew / old:")
    for o, n in zip(old, new_runs, strict=True):
        p99 = np.percentile(n.latency, 99) / np.percentile(o.latency, 99)
        print(
            f"  {o.label:>10}: p99 x{p99:.3f}, answered/s x{n.achieved / o.achieved:.2f}, "
            f"answered per server CPU-second x{n.per_cpu_second / o.per_cpu_second:.2f}"
        )


if __name__ == "__main__":
    main()
