"""The latency floor of the service's HTTP stack, for ``benchmarks/service.py --floor``.

    python benchmarks/floor_server.py WORKERS [BURN_US]

The same uvicorn server as ``query-predictor serve`` (its settings, its one-write protocol,
``WORKERS`` processes on one socket of 127.0.0.1, a free port) with an app that reads the
body and answers a constant routing answer of the usual size: no JSON parsing, no model. What
this server needs per request, and the latency it gives at a rate, is what the HTTP stack and
the client cost on this machine before the service does any work of its own.

``BURN_US`` (default 0): the app first spins for that many microseconds of its own CPU time,
standing in for an app that costs that much a request. A sweep of it gives the latency a
given CPU per request allows on this machine, whatever the work is.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from typing import Any

from query_predictor.service.server import ServeSettings, bind, uvicorn_server

# the shape and size of a real answer (about 400 bytes)
ANSWER = (
    b'{"routingGroup":"adhoc","errors":[],"externalHeaders":{"X-Query-Predictor-Heavy":"false",'
    b'"X-Query-Predictor-Probability":"0.0012345678","X-Query-Predictor-Stage":"model",'
    b'"X-Query-Predictor-Category":"SELECT","X-Query-Predictor-Model-Version":'
    b'"heavy-query-classifier@0123456789ab","X-Trino-Client-Tags":'
    b'"qp-decision=light;p=0.0012;model=0123456789ab;stage=model"}}'
)
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ANSWER))]


BURN_NS = 0  # set by main()


def burn(nanoseconds: int) -> None:
    """Spin for ``nanoseconds`` of this thread's CPU time (time it is descheduled not counted)."""
    until = time.thread_time_ns() + nanoseconds
    while time.thread_time_ns() < until:
        pass


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    if BURN_NS:
        burn(BURN_NS)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})


def main() -> None:
    global BURN_NS
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    BURN_NS = int(float(sys.argv[2]) * 1000) if len(sys.argv) > 2 else 0
    settings = ServeSettings()
    sock = bind("127.0.0.1", 0, settings.backlog)
    host, port = sock.getsockname()[:2]
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # a worker: serves until SIGTERM
            with contextlib.suppress(KeyboardInterrupt):
                uvicorn_server(app, settings).run(sockets=[sock])
            os._exit(0)
        children.append(pid)
    print(f"listening on http://{host}:{port} (model floor)", file=sys.stderr, flush=True)

    def stop(*_: object) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for pid in children:
        os.waitpid(pid, 0)  # retried by Python when a signal interrupts it (PEP 475)


if __name__ == "__main__":
    main()
