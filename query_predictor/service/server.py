"""Run the service: uvicorn (HTTP/1.1 parsed by httptools, on uvloop) serving :mod:`.app`.

    query-predictor serve --port 8080 --models models --workers 2

The socket is bound once, here. With one worker the app runs in this process; with more,
this process is a small supervisor: it starts ``--workers`` processes that each load the
bundle and accept on the shared socket (the kernel spreads connections among them), forwards
``SIGHUP`` (reload the bundle) and ``SIGTERM``/``SIGINT`` (stop) to them, and starts a worker
again if one dies. Each worker:

- answers at most ``max_connections`` connections and requests at once (uvicorn's
  ``limit_concurrency``; past it a request gets a 503, which the gateway treats as "use the
  default group"); idle keep-alive connections cost a few kilobytes each, no thread;
- closes a keep-alive connection idle for ``keep_alive_seconds`` (longer than the gateway's
  HTTP client's own idle timeout, one minute, so the gateway closes first and never sends on
  a connection the service has just closed);
- reads a body up to ``max_body_bytes``, and refuses a larger one with 413;
- on ``SIGTERM`` stops accepting, closes idle connections, lets requests in flight finish
  for up to ``graceful_seconds``, then exits 0.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from query_predictor.service.app import ACCESS_LOG, MAX_BODY_BYTES, ServiceApp
from query_predictor.service.metrics import MULTIPROC_ENV
from query_predictor.service.predictor import STATEMENT_CACHE, Predictor
from query_predictor.service.routing import Router

TOKEN_ENV = "QUERY_PREDICTOR_TOKEN"
WORKER_ENV = "QUERY_PREDICTOR_WORKER"  # the settings, as JSON, for a worker process
RESTART_DELAY_SECONDS = 2
logger = logging.getLogger(__name__)


class SettingsError(ValueError):
    """A serve setting that cannot work; the message names the option."""


@dataclass(frozen=True)
class ServeSettings:
    """Everything ``query-predictor serve`` takes (the CLI's options, same names)."""

    models: str = "models"
    host: str = "127.0.0.1"
    port: int = 8080
    heavy_group: str = "heavy"
    light_group: str = "adhoc"
    workers: int = 1
    max_connections: int = 4096  # per worker: connections and requests in flight
    keep_alive_seconds: int = 75
    max_body_bytes: int = MAX_BODY_BYTES
    graceful_seconds: int = 20
    backlog: int = 2048
    token_file: str | None = None  # bearer token in this file; else $QUERY_PREDICTOR_TOKEN
    resource_estimate: bool = False
    decision_tag: bool = True  # the decision as a client tag (core.client_tags)
    access_log: bool = False
    statement_cache: int = STATEMENT_CACHE  # per worker; 0: none

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> ServeSettings:
        """The settings among ``options`` (the CLI's parsed arguments, ``vars(args)``): other
        keys, and options not given (None), are left out, so the defaults hold."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in options.items() if k in names and v is not None})

    def check(self) -> None:
        for name in ("workers", "max_connections", "keep_alive_seconds", "max_body_bytes"):
            if getattr(self, name) < 1:
                option = "--" + name.replace("_", "-")
                raise SettingsError(f"{option}={getattr(self, name)} must be >= 1")
        if self.statement_cache < 0:
            raise SettingsError(f"--statement-cache={self.statement_cache} must be >= 0")
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"--port={self.port} must be 0 (any free port) to 65535")
        if self.heavy_group == self.light_group:
            raise SettingsError(
                f"--heavy-group and --light-group are both {self.heavy_group!r}; give the "
                "light queries another group"
            )

    def token(self) -> bytes | None:
        """The bearer token: the file's content (stripped), else the environment's, else
        None (no auth)."""
        if self.token_file is not None:
            try:
                text = Path(self.token_file).read_text().strip()
            except OSError as exc:
                raise SettingsError(f"--token-file {self.token_file}: {exc.strerror}") from None
            if not text:
                raise SettingsError(f"--token-file {self.token_file} is empty")
            return text.encode()
        text = os.environ.get(TOKEN_ENV, "").strip()
        return text.encode() if text else None


def build_app(
    settings: ServeSettings, predictor: Predictor | None = None, *, settle_heap: bool = False
) -> ServiceApp:
    """The app for ``settings``, on ``predictor`` or the bundle it loads (``settle_heap``:
    see :class:`ServiceApp`)."""
    started = time.perf_counter()
    predictor = predictor or Predictor.from_bundle(
        settings.models, statement_cache=settings.statement_cache
    )
    router = Router(
        predictor,
        settings.heavy_group,
        settings.light_group,
        resource_estimate=settings.resource_estimate,
        decision_tag=settings.decision_tag,
    )
    return ServiceApp(
        router,
        models=Path(settings.models),
        token=settings.token(),
        max_body_bytes=settings.max_body_bytes,
        load_seconds=time.perf_counter() - started,
        settle_heap=settle_heap,
    )


def uvicorn_server(app: ServiceApp, settings: ServeSettings) -> Any:
    """A ``uvicorn.Server`` for ``app``; ``.run(sockets=[sock])`` serves until stopped."""
    import uvicorn

    from query_predictor.service.protocol import CoalescingProtocol

    config = uvicorn.Config(
        app,
        http=CoalescingProtocol,  # httptools, each answer in one write
        loop="uvloop",
        lifespan="on",
        interface="asgi3",
        log_config=None,  # the entry point configures logging
        access_log=False,  # the app writes its own, structured
        server_header=False,
        # the gateway calls the service directly: no X-Forwarded-For to trust, and one ASGI
        # layer less per request
        proxy_headers=False,
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=settings.keep_alive_seconds,
        timeout_graceful_shutdown=settings.graceful_seconds,
        backlog=settings.backlog,
    )
    server = uvicorn.Server(config)
    if isinstance(app, ServiceApp):  # (a benchmark serves a bare ASGI function)
        # the requests read and not yet answered: uvicorn's task per request
        app.count_requests_with(lambda: len(server.server_state.tasks))
    return server


def bind(host: str, port: int, backlog: int) -> socket.socket:
    """The listening socket (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # answers are small and leave in two writes (head, body): without this, the body can wait
    # for the client's delayed ACK of the head (Nagle); accepted connections inherit it
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def raise_file_limit(connections: int) -> None:
    """Let this process hold ``connections`` sockets: the soft limit on open files up to
    the hard one (a warning when even that is too low)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 64
    if soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        logger.warning("open files limited to %d: fewer than %d connections", target, connections)


def serve(settings: ServeSettings, sock: socket.socket, predictor: Predictor) -> None:
    """Answer on ``sock`` until SIGTERM or Ctrl-C (one worker: here; more: supervised)."""
    if settings.workers == 1:
        _run_worker(settings, sock, predictor)
    else:
        del predictor  # each worker loads its own
        Supervisor(settings, sock).run()


def ignore_sighup_until_served() -> None:
    """A reload asked for while the bundle first loads has nothing to reload: ignored (by
    default SIGHUP would end the process); the app takes the signal once it serves."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def _run_worker(settings: ServeSettings, sock: socket.socket, predictor: Predictor | None) -> None:
    raise_file_limit(settings.max_connections)
    server = uvicorn_server(build_app(settings, predictor, settle_heap=True), settings)
    # uvicorn stops gracefully on SIGTERM/SIGINT, then raises the signal again for the
    # handler it found: that one just lets the process end normally (exit 0)
    stops = (signal.SIGTERM, signal.SIGINT)
    previous = {signum: signal.signal(signum, _stopped) for signum in stops}
    try:
        server.run(sockets=[sock])
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _stopped(signum: int, _frame: Any) -> None:
    logger.info("stopped by %s", signal.Signals(signum).name)


class Supervisor:
    """``settings.workers`` worker processes on one socket; signals forwarded."""

    def __init__(self, settings: ServeSettings, sock: socket.socket) -> None:
        self.settings = settings
        self.sock = sock
        self.workers: list[subprocess.Popen[bytes]] = []
        self.stopping = False
        self.metrics_dir = tempfile.mkdtemp(prefix="query-predictor-metrics-")

    def _start(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env[MULTIPROC_ENV] = self.metrics_dir
        env[WORKER_ENV] = json.dumps({**asdict(self.settings), "fd": self.sock.fileno()})
        command = [sys.executable, "-m", "query_predictor.service.server"]
        # The worker starts with SIGHUP ignored (kept across exec): a reload asked for while
        # it is still importing must not end it. It takes the signal once it serves.
        return subprocess.Popen(
            command, env=env, pass_fds=(self.sock.fileno(),), preexec_fn=ignore_sighup_until_served
        )

    def _forward(self, signum: int, _frame: Any = None) -> None:
        if signum != signal.SIGHUP:
            self.stopping = True
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGHUP if signum == signal.SIGHUP else signal.SIGTERM)

    def run(self) -> None:
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        previous = {signum: signal.signal(signum, self._forward) for signum in handled}
        try:
            self.workers = [self._start() for _ in range(self.settings.workers)]
            while not self.stopping:
                time.sleep(0.2)
                for i, worker in enumerate(self.workers):
                    if worker.poll() is not None and not self.stopping:
                        logger.error(
                            "worker %d exited (%s); starting another in %d s",
                            worker.pid,
                            worker.returncode,
                            RESTART_DELAY_SECONDS,
                        )
                        _mark_dead(worker.pid, self.metrics_dir)
                        time.sleep(RESTART_DELAY_SECONDS)  # a bundle that fails: no busy loop
                        self.workers[i] = self._start()
            deadline = time.monotonic() + self.settings.graceful_seconds + 5
            for worker in self.workers:
                try:
                    worker.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
            self.sock.close()


def _mark_dead(pid: int, metrics_dir: str) -> None:
    """Drop a dead worker's live gauges (the supervisor itself has no PROMETHEUS_MULTIPROC_DIR)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, metrics_dir)


def _worker_main() -> None:
    """A supervised worker: the settings and the socket's descriptor come from the parent."""
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    ignore_sighup_until_served()
    values = json.loads(os.environ[WORKER_ENV])
    fd = values.pop("fd")
    settings = ServeSettings(**values)
    if settings.access_log:
        ACCESS_LOG.setLevel(logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        _run_worker(settings, socket.socket(fileno=fd), None)


if __name__ == "__main__":
    _worker_main()
