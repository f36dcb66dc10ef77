"""Latency of ``query-predictor serve`` on loopback at a fixed request rate.

    python benchmarks/service.py [--rate 500] [--seconds 20] [--clients 8] [--models models]

Starts the service as a subprocess on 127.0.0.1 (a free port) with the model bundle, then
sends ``POST /v1/route`` requests open-loop, as a gateway in front of many users would:
request ``i`` is due at ``start + i / rate`` whatever happened to the ones before it. The
requests are spread over ``--clients`` threads, each with one keep-alive connection, and
carry statements of the test split with their context (user, catalog, schema, query type in
the body; source and session properties as the ``X-Trino-*`` headers Trino Gateway
forwards). Latency is counted from when a request was due, so a client that falls behind
counts against the service, and again from when it was sent. Prints the achieved rate,
p50/p90/p99/max, errors, and the server's CPU and memory. The design's target: p99 <= 5 ms
at 500 requests/s. Client and server share the machine's cores; the output says how many.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import psutil

from query_predictor.service.server import gateway_request
from query_predictor.training.featurize import contexts_of

REPO = Path(__file__).resolve().parents[1]
WARM_UP_PER_CLIENT = 50


@dataclass
class Outcome:
    """What one client thread saw: per request, seconds from due and from sent to answered."""

    from_due: list[float] = field(default_factory=list)
    from_sent: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def route_requests(frame: pl.DataFrame) -> list[tuple[bytes, dict[str, str]]]:
    """The body and headers Trino Gateway posts for each statement of ``frame``."""
    requests = []
    for sql, context in zip(frame["query"].to_list(), contexts_of(frame), strict=True):
        body, headers = gateway_request(sql, context)
        requests.append(
            (json.dumps(body).encode(), {"Content-Type": "application/json", **headers})
        )
    return requests


def start_service(models: Path) -> tuple[subprocess.Popen[str], str, int]:
    """The service on a free port: the process, its host and port (from its first line)."""
    command = ["-m", "query_predictor.cli", "serve", "--port", "0", "--models", str(models)]
    server = subprocess.Popen(
        [sys.executable, *command],
        stderr=subprocess.PIPE,
        text=True,
    )
    line = server.stderr.readline()  # type: ignore[union-attr]
    found = re.search(r"listening on http://([\d.]+):(\d+) \(model (\S+)\)", line)
    if not found:
        server.kill()
        raise SystemExit(f"the service did not start: {line}{server.communicate()[1]}")
    print(f"service: pid {server.pid}, model {found[3]}")
    return server, found[1], int(found[2])


def send(connection: http.client.HTTPConnection, body: bytes, headers: dict[str, str]) -> str:
    """One route request; '' when answered with a routing group, else what went wrong."""
    connection.request("POST", "/v1/route", body=body, headers=headers)
    response = connection.getresponse()
    answer = response.read()
    if response.status != 200:
        return f"HTTP {response.status}"
    return "" if json.loads(answer).get("routingGroup") else "no routing group"


def run_client(
    address: tuple[str, int],
    requests: list[tuple[bytes, dict[str, str]]],
    due: list[float],
    outcome: Outcome,
) -> None:
    """Send each request when it is due (or at once when already late), on one connection."""
    connection = http.client.HTTPConnection(*address, timeout=10)
    for (body, headers), at in zip(requests, due, strict=True):
        wait = at - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        sent = time.perf_counter()
        try:
            error = send(connection, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            error = type(exc).__name__
            connection.close()  # reconnects on the next request
        done = time.perf_counter()
        outcome.from_due.append(done - at)
        outcome.from_sent.append(done - sent)
        if error:
            outcome.errors.append(error)
    connection.close()


def load(
    address: tuple[str, int],
    requests: list[tuple[bytes, dict[str, str]]],
    *,
    rate: float,
    clients: int,
) -> tuple[Outcome, float]:
    """Send every request open-loop at ``rate`` per second; request ``i`` goes to client
    ``i % clients``. Returns what the clients saw and the seconds it took."""
    start = time.perf_counter() + 0.2  # time for the threads to start
    due = [start + i / rate for i in range(len(requests))]
    outcomes = [Outcome() for _ in range(clients)]
    threads = [
        threading.Thread(
            target=run_client, args=(address, requests[k::clients], due[k::clients], outcomes[k])
        )
        for k in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merged = Outcome()
    for outcome in outcomes:
        merged.from_due += outcome.from_due
        merged.from_sent += outcome.from_sent
        merged.errors += outcome.errors
    return merged, time.perf_counter() - start


def percentiles(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return f"p50 {p50:6.2f} ms  p90 {p90:6.2f} ms  p99 {p99:6.2f} ms  max {ms.max():7.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=8, help="threads, one connection each")
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    total = int(args.rate * args.seconds)
    frame = pl.read_parquet(REPO / "data" / "splits" / f"{args.split}.parquet")
    frame = frame.sample(n=total, with_replacement=frame.height < total, seed=7)
    requests = route_requests(frame)
    server, host, port = start_service(args.models)
    try:
        process = psutil.Process(server.pid)
        warm_up = requests[: WARM_UP_PER_CLIENT * args.clients]
        load((host, port), warm_up, rate=args.rate, clients=args.clients)
        cpu_before = process.cpu_times()
        outcome, elapsed = load((host, port), requests, rate=args.rate, clients=args.clients)
        cpu_after = process.cpu_times()
        rss = process.memory_info().rss
    finally:
        server.terminate()
        server.wait(timeout=10)
    cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    print(
        f"{len(requests):,} POST /v1/route of the {args.split} split at {args.rate:,.0f}/s "
        f"open-loop for {args.seconds:g} s, {args.clients} keep-alive clients; client and "
        f"server share {os.cpu_count()} cores; {dt.datetime.now(dt.UTC):%Y-%m-%d}"
    )
    print(
        f"achieved {len(outcome.from_due) / elapsed:,.1f} requests/s; "
        f"errors {len(outcome.errors)}"
        + (f" ({', '.join(sorted(set(outcome.errors)))})" if outcome.errors else "")
    )
    print(f"latency from due   {percentiles(outcome.from_due)}")
    print(f"latency from sent  {percentiles(outcome.from_sent)}")
    print(
        f"server: {cpu / elapsed:.0%} of one core, {cpu / len(requests) * 1e3:.2f} ms CPU per "
        f"request, RSS {rss / 2**20:,.0f} MB"
    )


if __name__ == "__main__":
    main()
