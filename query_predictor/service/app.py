"""The ASGI application: HTTP around :class:`~query_predictor.service.routing.Router`.

Endpoints (JSON in, JSON out, except ``/metrics``):

- ``POST /v1/route``: Trino Gateway's ``EXTERNAL`` routing rules (see :mod:`.routing`);
- ``POST /v1/predict``: one prediction, the object ``query-predictor predict`` prints;
- ``GET /healthz``: ``{"status": "ok", "model_version": ...}``, open even with auth on;
- ``GET /metrics``: Prometheus text format (see :mod:`.metrics`).

Every answer carries the served model's version as ``X-Query-Predictor-Model-Version``.
Errors are ``{"errors": [message]}``: 400 a body that is not a JSON object of the contract's
shape (a field of the wrong type, bytes that are not UTF-8), 401 a missing or wrong bearer
token, 404 an unknown path, 405 a wrong method (with ``Allow``), 413 a body over the limit
(answered from ``Content-Length`` without reading it, and the connection closed), 500 an
unexpected exception (its traceback goes to the log, never to the client). HTTP framing
itself (request line, headers, chunked bodies, ``Expect: 100-continue``, keep-alive) is the
server library's (:mod:`.server`), which answers a request that is not HTTP with a plain 400.

The bundle is reloaded on ``SIGHUP`` (see :meth:`ServiceApp.reload`): the new one loads in a
thread while requests are answered with the old one, then replaces it between two requests.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import json
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

import orjson

from query_predictor.core.bundle import METADATA, BundleError, BundleMetadata
from query_predictor.core.onnx_model import ModelError
from query_predictor.service.metrics import CONTENT_TYPE, Metrics
from query_predictor.service.predictor import Predictor
from query_predictor.service.routing import HEADER_PREFIX, RequestError, Routed, Router

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# 1 MiB of SQL (Trino Gateway passes up to 1,000,000 characters) plus the rest of the envelope
MAX_BODY_BYTES = (1 << 20) + (64 << 10)
VERSION_HEADER = f"{HEADER_PREFIX}Model-Version"
_VERSION_HEADER = VERSION_HEADER.encode()
# path -> method
ENDPOINTS = {"/v1/route": "POST", "/v1/predict": "POST", "/healthz": "GET", "/metrics": "GET"}
OPEN_PATHS = frozenset({"/healthz"})  # answered without a token when auth is on
_JSON = b"application/json"

logger = logging.getLogger(__name__)
# one JSON object per request at INFO, when `serve --access-log` switches it on
ACCESS_LOG = logging.getLogger("query_predictor.service.access")


class ServiceApp:
    """The ASGI app (``http`` and ``lifespan`` scopes) answering with ``router``.

    Parameters
    ----------
    router : Router
    models : Path, optional
        The bundle directory :meth:`reload` reads again; None: no reload.
    token : bytes, optional
        The bearer token every endpoint but ``/healthz`` requires; None: no auth.
    max_body_bytes : int, > 0
        Largest request body read; a larger one is a 413.
    metrics : Metrics, optional
        Where to count (default: a registry of its own).
    load_seconds : float
        How long loading ``router``'s predictor took (a metric).
    settle_heap : bool
        Once the bundle is loaded (at startup and after each reload), :func:`settle_heap`:
        for a process that only serves (a worker), not for one the app shares (a test).
    """

    def __init__(
        self,
        router: Router,
        *,
        models: Path | None = None,
        token: bytes | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        metrics: Metrics | None = None,
        load_seconds: float = 0.0,
        settle_heap: bool = False,
    ) -> None:
        if token is not None and not token:
            raise ValueError("the bearer token is empty")
        self.router = router
        self.models = models
        self.token = token
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics or Metrics()
        self.metrics.model_loaded(router.predictor.version, load_seconds)
        self._reloading: asyncio.Task[None] | None = None
        self.settle_heap = settle_heap
        self.batch = RouteBatch(router, self.metrics.batch_size.observe)

    def count_requests_with(self, in_flight: Callable[[], int]) -> None:
        """How the server tells the requests it has read and not yet answered: a routing
        call waits for the others of its turn only when there are some (:class:`RouteBatch`)."""
        self.batch.in_flight = in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.settle_heap:
                    settle_heap()
                self._catch_sighup()
                if self._bundle_changed_since_loaded():
                    logger.warning("the bundle changed while it first loaded: reloading")
                    self._start_reload()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _catch_sighup(self) -> None:
        if self.models is None:
            return
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._start_reload)
        except (RuntimeError, ValueError):  # not the main thread: reload through reload()
            logger.debug("SIGHUP not caught outside the main thread")

    def _bundle_changed_since_loaded(self) -> bool:
        """A worker ignores SIGHUP until it serves (see ``server.ignore_sighup_until_served``):
        a reload asked for meanwhile is caught up here, by comparing the bundle on disk (its
        metadata, written last on export) with the one served."""
        if self.models is None:
            return False
        try:
            on_disk = BundleMetadata.read(Path(self.models) / METADATA)
        except BundleError:  # being written, or broken: a reload would fail the same way
            return False
        return on_disk != self.router.predictor.metadata

    def _start_reload(self) -> None:
        if self._reloading is not None and not self._reloading.done():
            logger.info("SIGHUP: a reload is already running")
            return
        self._reloading = asyncio.get_running_loop().create_task(self.reload())

    async def reload(self) -> bool:
        """Load the bundle in :attr:`models` again (in a thread, requests go on meanwhile)
        and serve it; a bundle that does not load is logged and the old one kept."""
        if self.models is None:
            raise ValueError("this app was made without a bundle directory to reload")
        started = time.perf_counter()
        try:
            predictor = await asyncio.to_thread(
                Predictor.from_bundle,
                self.models,
                statement_cache=self.router.predictor.statement_cache,
            )
        except ModelError as exc:  # the bundle's own fault, named by the message
            self.metrics.errors.labels("reload_failed").inc()
            logger.error("reload failed, still serving %s: %s", self.router.predictor.version, exc)
            return False
        except Exception:  # anything else: the traceback to the log, the old bundle stays
            self.metrics.errors.labels("reload_failed").inc()
            logger.exception("reload failed, still serving %s", self.router.predictor.version)
            return False
        old = self.router.predictor.version
        self.router.reload(predictor)
        self.metrics.model_loaded(predictor.version, time.perf_counter() - started)
        logger.warning("reloaded %s: serving %s (was %s)", self.models, predictor.version, old)
        if self.settle_heap:
            settle_heap()  # the old bundle's objects, frozen with it, are collected here
        return True

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        path, method = scope["path"], scope["method"]
        endpoint = path if path in ENDPOINTS else "other"
        extra: list[tuple[bytes, bytes]] = []
        content_type = _JSON
        stage = group = kind = None
        try:
            headers = _headers(scope["headers"])
            self._check(path, method, headers)
            if path == "/v1/route":
                routed = self.batch.route(await self._read_json(receive, headers), headers)
                if isinstance(routed, asyncio.Future):
                    routed = await routed
                payload = routed.payload
                stage, group = routed.stage, payload["routingGroup"]
                self.metrics.decided(group, stage)
                if routed.tagged is not None:
                    self.metrics.tagged(routed.tagged)
            elif path == "/v1/predict":
                payload = self.router.predict(await self._read_json(receive, headers))
                stage = payload["stage"]
            elif path == "/metrics":
                payload, content_type = self.metrics.exposition(), CONTENT_TYPE.encode()
            else:
                payload = self.router.health()
            status = HTTPStatus.OK
        except RequestError as exc:
            status, payload, kind = exc.status, {"errors": [exc.message]}, exc.kind
            if status == HTTPStatus.METHOD_NOT_ALLOWED:
                extra.append((b"allow", ENDPOINTS[path].encode()))
            elif status == HTTPStatus.UNAUTHORIZED:
                extra.append((b"www-authenticate", b'Bearer realm="query-predictor"'))
            elif status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
                extra.append((b"connection", b"close"))  # the rest of the body is not read
        except _Disconnected:
            return
        except Exception:
            logger.exception("%s %s failed", method, path)
            status, kind = HTTPStatus.INTERNAL_SERVER_ERROR, "internal"
            payload = {"errors": ["internal error; the service's log has the details"]}
        if kind is not None:
            self.metrics.errors.labels(kind).inc()
        body = payload if isinstance(payload, bytes) else _dumps(payload)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", b"%d" % len(body)),
                    (_VERSION_HEADER, self.router.predictor.version.encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        seconds = time.perf_counter() - started
        self.metrics.observe(endpoint, status, seconds)
        if ACCESS_LOG.isEnabledFor(logging.INFO):
            ACCESS_LOG.info(_access_line(scope, status, seconds, len(body), group, stage, kind))

    def _check(self, path: str, method: str, headers: dict[str, list[str]]) -> None:
        """The path, method and token, in that order (a scan learns nothing without one)."""
        expected = ENDPOINTS.get(path)
        if expected is None:
            names = ", ".join(f"{m} {p}" for p, m in ENDPOINTS.items())
            raise RequestError(
                HTTPStatus.NOT_FOUND, f"no endpoint {path}; there are {names}", "not_found"
            )
        if self.token is not None and path not in OPEN_PATHS:
            given = (headers.get("authorization") or [""])[0]
            scheme, _, credential = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                credential.strip().encode("latin-1"), self.token
            ):
                raise RequestError(
                    HTTPStatus.UNAUTHORIZED,
                    "missing or wrong bearer token: send 'Authorization: Bearer <token>'",
                    "unauthorized",
                )
        if method != expected:
            raise RequestError(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"{path} takes {expected}, not {method}",
                "method_not_allowed",
            )

    async def _read_json(self, receive: Receive, headers: dict[str, list[str]]) -> Any:
        data = await self._read_body(receive, headers)
        try:  # the fast parser; what it refuses, the standard one parses or explains
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
        if not data.strip():
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body is empty; send a JSON object")
        try:
            return json.loads(data)
        except UnicodeDecodeError as exc:
            raise RequestError(
                HTTPStatus.BAD_REQUEST,
                f"the body is not JSON: not UTF-8 ({exc.reason} at byte {exc.start})",
            ) from None
        except (ValueError, RecursionError) as exc:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"the body is not JSON ({exc})") from None

    async def _read_body(self, receive: Receive, headers: dict[str, list[str]]) -> bytes:
        """The body, up to :attr:`max_body_bytes`: a larger ``Content-Length`` is refused
        before anything is read, a longer chunked body as soon as it passes the limit."""
        declared = (headers.get("content-length") or ["0"])[0]
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            self._too_large(int(declared))
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                self._too_large(size)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _too_large(self, size: int) -> None:
        raise RequestError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"the body has {size:,} bytes or more; the limit is {self.max_body_bytes:,}",
            "body_too_large",
        )


class RouteBatch:
    """Routing calls that are ready at the same turn of the event loop, answered together.

    Under load a worker reads several requests before it answers any. Each one's call then
    waits here, and one callback at the end of that turn routes them all with
    :meth:`Router.route_many`, which runs the model once for all their statements: one row at
    a time the tree ensemble costs 30-60 µs, most of it fetching trees from memory that the
    rest of the work evicted; in a batch of eight, 11 µs a row (docs/serving.md). At most
    :attr:`most` calls go in one batch: the rest wait for the next turn, after the answers
    of this one are on their way.

    Waiting for the end of the turn costs a call about 20 µs, for nothing when no other call
    comes; so a call waits only while ``in_flight()`` (the requests the server has read and
    not yet answered, this one included) says others are there, and is answered at once
    otherwise. Without a server to ask, every call waits.
    """

    def __init__(
        self,
        router: Router,
        batched: Callable[[int], None] = lambda size: None,
        *,
        most: int = 32,
        in_flight: Callable[[], int] = lambda: 2,
    ) -> None:
        self.router = router
        self.batched = batched  # told the size of each batch
        self.most = most
        self.in_flight = in_flight
        self._waiting: list[tuple[tuple[Any, dict[str, list[str]]], asyncio.Future[Any]]] = []

    def route(self, body: Any, headers: dict[str, list[str]]) -> Routed | asyncio.Future[Any]:
        """The :class:`~query_predictor.service.routing.Routed` answer at once when the call
        is alone (or the :class:`RequestError` raised), else a future of it to await."""
        if not self._waiting and self.in_flight() <= 1:
            self.batched(1)
            return self.router.route(body, headers)
        loop = asyncio.get_running_loop()
        if not self._waiting:
            loop.call_soon(self._answer)  # at the end of this turn, with the others
        future = loop.create_future()
        self._waiting.append(((body, headers), future))
        return future

    def _answer(self) -> None:
        batch, self._waiting = self._waiting[: self.most], self._waiting[self.most :]
        if self._waiting:
            asyncio.get_running_loop().call_soon(self._answer)
        calls = [call for call, _ in batch]
        self.batched(len(calls))
        try:
            answers: list[Any] = self.router.route_many(calls)
        except Exception:  # one call broke the batch: each on its own, so only it fails
            answers = []
            for body, headers in calls:
                try:
                    answers.append(self.router.route(body, headers))
                except Exception as exc:
                    answers.append(exc)
        for (_, future), answer in zip(batch, answers, strict=True):
            if future.cancelled():  # the client went away
                continue
            if isinstance(answer, Exception):
                future.set_exception(answer)
            else:
                future.set_result(answer)


class _Disconnected(Exception):
    """The client went away before its body arrived: nobody to answer."""


def settle_heap() -> None:
    """Collect once, then hide every object alive (the bundle, the imported modules) from
    later collections (``gc.freeze``): those then only look at what requests allocated.
    Without it, each full collection walked the bundle's 170,000 objects, pausing a worker
    for 30-60 ms (docs/serving.md). A reload settles again: unfrozen first, so the previous
    bundle's objects are collected, then frozen with the new one (one such pause per reload)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _dumps(payload: Any) -> bytes:
    """``payload`` as JSON (UTF-8); orjson, or the standard encoder for what orjson does not
    take (a float subclass such as numpy's)."""
    try:
        return orjson.dumps(payload)
    except TypeError:
        return json.dumps(payload).encode()


def _headers(raw: list[tuple[bytes, bytes]]) -> dict[str, list[str]]:
    """ASGI's header pairs (names already lower case) as name -> values."""
    headers: dict[str, list[str]] = {}
    for name, value in raw:
        headers.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
    return headers


def _access_line(
    scope: Scope,
    status: int,
    seconds: float,
    size: int,
    group: str | None,
    stage: str | None,
    kind: str | None,
) -> str:
    """One request as a JSON object: who, what, the answer and how long it took."""
    client = scope.get("client")
    record = {
        "client": f"{client[0]}:{client[1]}" if client else None,
        "method": scope["method"],
        "path": scope["path"],
        "status": int(status),
        "ms": round(seconds * 1e3, 3),
        "bytes": size,
        "routing_group": group,
        "stage": stage,
        "error": kind,
    }
    return json.dumps({k: v for k, v in record.items() if v is not None})
