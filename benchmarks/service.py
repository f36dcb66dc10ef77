"""Latency, throughput and CPU per request of ``query-predictor serve`` on loopback, open loop,
against the hand-written ``http.server`` it replaced, in the same run.

    python benchmarks/service.py [--rates 500,1000,2000,2500] [--seconds 10] [--workers 2]
        [--checkout before=/path/to/another/checkout] [--no-baseline]

Each server runs as a subprocess on 127.0.0.1 (a free port) with the bundle in ``--models``;
``POST /v1/route`` requests carry statements of the test split with their context, as Trino
Gateway sends them, in a shuffled order; every rate sends the next requests of that pool (the
same to every server), so a statement comes again only as often as the split repeats it (the
table gives the share). The load is open loop, as a gateway in front of many users makes it:
request ``i`` is due at ``start + i / rate`` whatever happened to the ones before; it goes
out on a free keep-alive connection of a pool (``--connections``) or waits for one, and its
latency counts from when it was due, so a server that falls behind is charged for the queue
it causes. "saturation" offers far more than a server can answer (``--saturation-rate``) and
reports what it did answer per second. The servers run side by side and take turns at each
rate, so that the machine's other load, when it changes from one minute to the next, falls on
all. The client is one asyncio process (uvloop, a protocol per connection rather than
streams, so that it costs a fraction of what the server does) sharing the machine's cores
with the servers; the table gives the CPU each used, and the server's CPU per answered
request, the figure that holds best when other work crowds the machine. "client lag" is how
late the client itself wrote requests that found a free connection (its share of the cores;
its alarm, a ``timerfd`` on Linux, is accurate to tens of microseconds): it is part of every
latency, so a p99 well under the latency's says the tail is the server's.

The baseline is the old server's own source, taken from git history (:data:`BASELINE_REV`,
the last commit that had it) into a temporary directory: the benchmark measures exactly what
shipped, and the package carries no dead server. It needs this checkout's git history.
``--checkout LABEL=PATH`` adds the server of another checkout (a worktree of an earlier
commit, its compiled core built) with the same options: a before/after in one run. ``--floor``
adds the same uvicorn server answering a constant (``floor_server.py``): the latency and CPU
that the HTTP stack and the client alone cost at each rate on this machine, the least any
app behind them can show.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import datetime as dt
import gc
import http.client
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import psutil
import uvloop
from prometheus_client.parser import text_string_to_metric_families

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
CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")


@dataclass
class Run:
    """One load on one server."""

    label: str
    offered: float  # requests per second, due
    latency: list[float] = field(default_factory=list)  # seconds, from due to answered
    # seconds from due to written, when a connection was free: the client's own lateness
    # (its alarm and its share of the cores), counted in the latency too
    lag: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    cpu: float = 0.0  # server CPU seconds (all its processes)
    client_cpu: float = 0.0
    load: float = 0.0  # the machine's 1-minute load average at the end
    seen: float = 0.0  # share of the statements sent before in this benchmark
    # routing calls per batch the model scored (the service's route_batch_size metric);
    # None for a server without it
    per_batch: float | None = None

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
            f"{self.cpu_per_request * 1e6:.0f}",
            f"{self.cpu / self.elapsed:.0%}",
            f"{self.client_cpu / self.elapsed:.0%}",
            f"{self.seen:.0%}",
            f"{np.percentile(np.array(self.lag or [0.0]) * 1e3, 99):.2f}",
            f"{self.load:.1f}",
            "-" if self.per_batch is None else f"{self.per_batch:.1f}",
        ]

    @property
    def cpu_per_request(self) -> float:
        """Server CPU seconds (all its processes) per answered request: what the server
        costs. Unlike latency, it holds when other work on the machine takes the cores (a
        server with fewer threads gets a smaller share of a crowded machine)."""
        return self.cpu / len(self.latency) if self.latency else 0.0


HEADER = [
    "server",
    "load",
    "answered/s",
    "p50 ms",
    "p99 ms",
    "max ms",
    "errors",
    "server CPU µs/request",
    "server CPU",
    "client CPU",
    "statements seen before",
    "client lag p99 ms",
    "machine load avg",
    "calls per model run",
]


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


class Connection(asyncio.Protocol):
    """One keep-alive connection of the client's pool, one request at a time (as Trino
    Gateway's HTTP client sends them: no pipelining). A protocol rather than a stream: the
    client's own CPU per request is a fraction of the server's, so the client is not what
    caps the rate (its CPU is in the table)."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.due = 0.0
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.pool.idle(self)

    def send(self, due: float, request: bytes) -> None:
        self.due, self.busy = due, True
        self.transport.write(request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[: end + 4]
        found = CONTENT_LENGTH.search(head)
        size = end + 4 + (int(found[1]) if found else 0)
        if len(self.buffer) < size:
            return
        body, self.buffer = self.buffer[end + 4 : size], self.buffer[size:]
        error = ""
        if head[9:12] != b"200":
            error = f"HTTP {head[9:12].decode()}"
        elif b'"routingGroup"' not in body:
            error = "no routing group"
        self.busy = False
        self.pool.answered(self, error)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.busy:
            self.busy = False
            self.pool.answered(self, type(exc).__name__ if exc else "connection closed")
        self.pool.lost(self)


class Pool:
    """Requests due at fixed times, each sent on an idle connection or queued for one."""

    def __init__(self, address: tuple[str, int], size: int, run: Run) -> None:
        self.address, self.size, self.run = address, size, run
        self.waiting: deque[tuple[float, bytes]] = deque()
        self.free: list[Connection] = []
        self.open = 0
        self.outstanding = 0
        self.done = asyncio.get_running_loop().create_future()

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(self.size - self.open):
            self.open += 1
            await loop.create_connection(lambda: Connection(self), *self.address)

    def submit(self, due: float, request: bytes) -> None:
        self.outstanding += 1
        if self.free:
            self.run.lag.append(time.perf_counter() - due)
            self.free.pop().send(due, request)
        else:
            self.waiting.append((due, request))

    def idle(self, connection: Connection) -> None:
        if self.waiting:
            connection.send(*self.waiting.popleft())
        else:
            self.free.append(connection)

    def answered(self, connection: Connection, error: str) -> None:
        self.run.latency.append(time.perf_counter() - connection.due)
        if error:
            self.run.errors.append(error)
        self.outstanding -= 1
        if self.outstanding == 0 and self.closing and not self.done.done():
            self.done.set_result(None)
        if not connection.transport.is_closing():  # type: ignore[union-attr]
            self.idle(connection)

    def lost(self, connection: Connection) -> None:
        if connection in self.free:
            self.free.remove(connection)
        self.open -= 1
        if not self.closing:  # the server closed it (a 413, a restart): another one
            asyncio.get_running_loop().create_task(self.connect())

    closing = False


class Alarm:
    """Calls back at a time of :func:`time.perf_counter` to within tens of microseconds.

    The event loop's own timers have a resolution of one millisecond (libuv's, and epoll's
    timeout), which made the client write requests up to a millisecond late: an error as
    large as half the latencies measured. On Linux the alarm is a ``timerfd`` (armed for an
    absolute time of ``CLOCK_MONOTONIC``, the clock of ``perf_counter``) that the loop
    watches like a socket; elsewhere it falls back to the loop's timer.
    """

    def __init__(self, callback: Callable[[], None]) -> None:
        self.loop = asyncio.get_running_loop()
        self.callback = callback
        self.fd = -1
        if sys.platform == "linux" and time.get_clock_info("perf_counter").implementation == (
            "clock_gettime(CLOCK_MONOTONIC)"
        ):
            self.libc = ctypes.CDLL(None, use_errno=True)
            self.fd = self.libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
            if self.fd < 0:
                raise OSError(ctypes.get_errno(), "timerfd_create")
            self.loop.add_reader(self.fd, self._ring)

    def at(self, when: float) -> None:
        """Call back once at ``when`` (or at once, if it has passed)."""
        if self.fd < 0:
            self.loop.call_at(self.loop.time() + when - time.perf_counter(), self.callback)
            return
        seconds, fraction = divmod(max(when, 1e-9), 1.0)  # zero would disarm the timer
        value = _ITimerSpec((0, 0), (int(seconds), int(fraction * 1e9)))
        if self.libc.timerfd_settime(self.fd, _TFD_TIMER_ABSTIME, ctypes.byref(value), None):
            raise OSError(ctypes.get_errno(), "timerfd_settime")

    def _ring(self) -> None:
        try:
            os.read(self.fd, 8)  # the expirations count; reading it re-arms the readiness
        except BlockingIOError:
            return
        self.callback()

    def close(self) -> None:
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1


class _TimeSpec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _ITimerSpec(ctypes.Structure):
    _fields_ = [("it_interval", _TimeSpec), ("it_value", _TimeSpec)]


_CLOCK_MONOTONIC, _TFD_TIMER_ABSTIME = 1, 1
_TFD_NONBLOCK, _TFD_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC  # as Linux defines them


async def load(
    address: tuple[str, int], requests: list[bytes], rate: float, connections: int, run: Run
) -> None:
    """Send ``requests`` open loop at ``rate`` over a pool of ``connections``: at each ring
    of the alarm, every request due by then, and the alarm set for the next one."""
    pool = Pool(address, connections, run)
    await pool.connect()
    sent = asyncio.get_running_loop().create_future()
    start = time.perf_counter()
    following = 0

    def send_due() -> None:
        nonlocal following
        now = time.perf_counter()
        while following < len(requests) and (due := start + following / rate) <= now:
            pool.submit(due, requests[following])
            following += 1
        if following < len(requests):
            alarm.at(start + following / rate)
        elif not sent.done():
            sent.set_result(None)

    alarm = Alarm(send_due)
    send_due()
    try:
        await sent
    finally:
        alarm.close()
    pool.closing = True
    if pool.outstanding:
        await pool.done
    run.elapsed = time.perf_counter() - start
    for connection in list(pool.free):
        connection.transport.close()  # type: ignore[union-attr]


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


def batches(address: tuple[str, int]) -> tuple[float, float] | None:
    """The service's batches so far and the routing calls in them (``/metrics``, all
    workers); None for a server without that metric."""
    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
    finally:
        connection.close()
    if response.status != 200:
        return None
    values = {}
    try:
        for family in text_string_to_metric_families(text):
            if family.name == "query_predictor_route_batch_size":
                values = {sample.name: sample.value for sample in family.samples}
    except ValueError:  # not Prometheus text (the floor server answers every path alike)
        return None
    if not values:
        return None
    return values["query_predictor_route_batch_size_count"], values[
        "query_predictor_route_batch_size_sum"
    ]


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
    texts: list[str],
    requests: list[bytes],
    rates: list[float],
    args: argparse.Namespace,
) -> dict[str, list[Run]]:
    """Each load on each server, the servers taking turns at every rate (the order flips
    from one rate to the next), so that a change in the machine's other load between two
    minutes falls on both. Every rate sends the next requests of the pool (the same to every
    server), so a server's caches see a statement again only as often as the log repeats it
    (``seen``: the share already sent at an earlier rate or earlier in this one)."""
    started = {name: start(command) for name, command in commands.items()}
    runs: dict[str, list[Run]] = {name: [] for name in commands}
    offset = WARM_UP
    sent: set[str] = set(texts[:WARM_UP])
    try:
        for name, (server, address, model) in started.items():
            print(f"{name}: pid {server.pid}, model {model}", file=sys.stderr)
            asyncio.run(load(address, requests[:WARM_UP], 1000.0, args.connections, Run("", 0)))
        order = list(started)
        for rate, saturation in [*((r, False) for r in rates), (args.saturation_rate, True)]:
            # saturation: half as long (a slow server takes far longer than the due times)
            n = int(rate * args.seconds / (2 if saturation else 1))
            chunk = slice(offset, offset + n)
            offset += n
            seen = 0
            for text in texts[chunk]:
                seen += text in sent
                sent.add(text)
            for name in order:
                server, address, _ = started[name]
                process = psutil.Process(server.pid)
                run = Run("saturation" if saturation else f"{rate:,.0f}/s", rate, seen=seen / n)
                counted = batches(address)
                before, client = server_cpu(process), time.process_time()
                asyncio.run(load(address, requests[chunk], rate, args.connections, run))
                run.cpu = server_cpu(process) - before
                run.client_cpu = time.process_time() - client
                if counted is not None and (after := batches(address)) is not None:
                    run.per_batch = (after[1] - counted[1]) / max(after[0] - counted[0], 1.0)
                run.load = os.getloadavg()[0]
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


def checkout_command(path: Path, args: argparse.Namespace, workers: int) -> list[str]:
    """``serve`` of the package in another checkout (its compiled core built in place, e.g.
    by ``make setup`` there), with this one's interpreter and arguments."""
    if not (path / "query_predictor" / "cli.py").is_file():
        raise SystemExit(f"--checkout {path}: no query_predictor/cli.py there")
    # run from that checkout: `python -m` puts the working directory first on sys.path, for
    # the supervisor and for each worker it starts, so from here they would run this one
    python = [sys.executable, "-m", "query_predictor.cli"]
    return ["env", "-C", str(path.resolve()), *python, *serve_arguments(args, workers)]


def serve_arguments(args: argparse.Namespace, workers: int) -> list[str]:
    models = str(args.models.resolve())
    return ["serve", "--port", "0", "--models", models, "--workers", str(workers)]


def pool(split: Path, size: int) -> pl.DataFrame:
    """``size`` statements of ``split`` with their contexts, in a shuffled order (seeded); a
    split of fewer rows is taken again, in another order, as often as needed."""
    frame = pl.read_parquet(split)
    rounds = [
        frame.sample(fraction=1.0, shuffle=True, seed=7 + i)
        for i in range(-(-size // frame.height))
    ]
    return pl.concat(rounds).head(size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="500,1000,2000,2500", help="requests per second")
    parser.add_argument("--saturation-rate", type=float, default=10000.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="per rate")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive pool")
    parser.add_argument(
        "--workers",
        default="2",
        metavar="N[,N...]",
        help="processes of each server but the old one; a list runs each server once per count",
    )
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--split", type=Path, default=REPO / "data" / "splits" / "test.parquet")
    parser.add_argument(
        "--checkout",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="also the server of another checkout of this repository (e.g. a git worktree "
        "of main), same options; repeatable",
    )
    parser.add_argument(
        "--floor-burn",
        default="",
        metavar="US,US,...",
        help="also the floor server spinning this many microseconds of CPU a request, one "
        "server each: the latency a given CPU per request allows here",
    )
    parser.add_argument("--no-baseline", action="store_true", help="without the old server")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also the same HTTP server with an app that answers a constant (floor_server.py)",
    )
    args = parser.parse_args()
    # stopped (SIGTERM): the servers are stopped too, as on Ctrl-C
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    uvloop.install()
    rates = [float(r) for r in args.rates.split(",")]
    counts = [int(w) for w in args.workers.split(",")]
    size = WARM_UP + int(sum(rates) * args.seconds + args.saturation_rate * args.seconds / 2)
    frame = pool(args.split, size)
    texts = frame["query"].to_list()
    requests = route_requests(frame, "127.0.0.1")
    gc.collect()  # the client's own collections would delay sends: nothing it holds is
    gc.freeze()  # walked again (what a run allocates is a few lists of floats)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        commands = {}
        floor = REPO / "benchmarks" / "floor_server.py"
        for workers in counts:
            if args.floor:
                label = f"floor: constant answer, {workers} workers"
                commands[label] = [sys.executable, str(floor), str(workers)]
            for burn in filter(None, args.floor_burn.split(",")):
                label = f"floor + {float(burn):g} us CPU, {workers} workers"
                commands[label] = [sys.executable, str(floor), str(workers), burn]
        if not args.no_baseline:
            commands["old: http.server"] = baseline_command(Path(scratch), args.models)
        for workers in counts:
            for given in args.checkout:
                label, _, path = given.partition("=")
                command = checkout_command(Path(path), args, workers)
                commands[f"{label}: {workers} workers"] = command
        for workers in counts:
            new = [sys.executable, "-m", "query_predictor.cli", *serve_arguments(args, workers)]
            commands[f"new: uvicorn, {workers} workers"] = new
        servers = bench(commands, texts, requests, rates, args)
    print(
        f"\n{len(requests):,} POST /v1/route requests from {args.split.name} "
        f"({len(set(texts)):,} distinct statements), open loop, {args.seconds:g} s per rate, "
        f"{args.connections} keep-alive connections; "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores "
        "shared by client and server; load average "
        f"{load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after\n"
    )
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    for name, runs in servers.items():
        for run in runs:
            print(f"| {name} | " + " | ".join(run.row()) + " |")
    names = list(servers)
    newest = servers[names[-1]]
    for name in names[:-1]:
        print(f"\nnew / {name.split(':')[0]}:")
        for o, n in zip(servers[name], newest, strict=True):
            p99 = np.percentile(n.latency, 99) / np.percentile(o.latency, 99)
            print(
                f"  {o.label:>10}: p99 x{p99:.3f}, answered/s x{n.achieved / o.achieved:.2f}, "
                f"server CPU per request x{n.cpu_per_request / o.cpu_per_request:.2f}"
            )


if __name__ == "__main__":
    main()
