"""The HTTP service in front of the model bundle, for Trino Gateway's external routing rules.

    query-predictor serve --port 8080 --models models

Endpoints (JSON in, JSON out):

- ``POST /v1/route``: Trino Gateway's ``EXTERNAL`` rules engine. The body is the gateway's
  ``RoutingGroupExternalBody``: ``trinoQueryProperties`` (``body`` the SQL, ``defaultCatalog``,
  ``defaultSchema``, ``queryType``, ``resourceGroupQueryType``, ``tables``, ...),
  ``trinoRequestUser`` (``user``), ``remoteUser``, ``method``, ``requestURI``, ... The gateway
  sends the client's own request headers (``X-Trino-Source``, ``X-Trino-Session``, ...) as the
  headers of its POST. The answer is ``{"routingGroup", "errors", "externalHeaders"}``: the
  heavy group when the model says heavy, the light group otherwise, and the decision again as
  ``X-Query-Predictor-*`` headers, which the gateway adds to the request it forwards to Trino.
- ``POST /v1/predict``: ``{"query": ..., "user", "source", "catalog", "schema", "query_type"}``
  answered with the prediction, the object ``query-predictor predict`` prints.
- ``GET /healthz``: ``{"status": "ok", "model_version": ...}``.

What goes wrong, and why it is answered so. The gateway routes to its default group whenever
the call fails (a status other than 200, a body it cannot read, a timeout), and it rejects
the user's query with the ``errors`` list when ``propagateErrors`` is on. So:

- a request the service cannot read (not JSON, not an object, a field of the wrong type) is
  a caller bug: 400 with ``{"errors": [...]}`` naming the field, and the gateway falls back;
- a well-formed request without SQL (the gateway's ``analyzeRequest`` is off, or the query
  reached its ``maxBodySize``) leaves nothing to predict: 200 with the light group and an
  ``errors`` entry saying why, so the reason reaches the gateway instead of a silent default;
- an unknown path is 404, a wrong method 405, a body over :data:`MAX_BODY_BYTES` 413, and an
  unexpected exception 500 with a short message; its traceback goes to the log, never to the
  client.

One :class:`~query_predictor.service.predictor.Predictor` serves every connection thread: it is
read-only once loaded, onnxruntime's ``InferenceSession.run`` may be called from several
threads at once, the featurizer's caches are ``functools.lru_cache`` (thread-safe), and the
compiled text scan keeps its state on the stack. Connections are HTTP/1.1 keep-alive, so a
gateway reuses them; each request line is logged at INFO on :data:`ACCESS_LOG`, which
``query-predictor serve --access-log`` switches on.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from query_predictor import __version__
from query_predictor.core.features import QueryContext
from query_predictor.service.predictor import Prediction, Predictor

# 1 MiB of SQL (Trino Gateway passes up to 1,000,000 characters) plus the rest of the envelope
MAX_BODY_BYTES = (1 << 20) + (64 << 10)
# longer than the HTTP client's own idle timeout (Trino Gateway: 1 minute), so that the
# gateway, not the service, closes an idle connection and never sends on a closed one
IDLE_TIMEOUT_SECONDS = 120
# after an error answer (404, 413, ...), a body up to this size is read and dropped, so that
# the connection stays usable; a larger one closes it
DISCARD_LIMIT_BYTES = 16 << 20
HEADER_PREFIX = "X-Query-Predictor-"
NO_SQL = (
    "no SQL in trinoQueryProperties.body: set requestAnalyzerConfig.analyzeRequest: true in "
    "Trino Gateway (a statement of maxBodySize characters or more is not passed); routed light"
)
PREDICT_FIELDS = ("query", "user", "source", "catalog", "schema", "query_type")
_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
}

logger = logging.getLogger(__name__)
ACCESS_LOG = logging.getLogger(f"{__name__}.access")


class RequestError(Exception):
    """A request the service does not answer with 200: the status and what to tell the client."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Router:
    """What the endpoints answer, apart from HTTP: decoded JSON and headers in, JSON out."""

    predictor: Predictor
    heavy_group: str = "heavy"
    light_group: str = "adhoc"

    def route(self, body: Any, headers: Message) -> dict[str, Any]:
        """Trino Gateway's external routing call: the group for the statement in ``body``."""
        request = _object(body, "the body (RoutingGroupExternalBody)")
        query = _field(request, "trinoQueryProperties", dict) or {}
        sql = _field(query, "body", str, where="trinoQueryProperties.")
        context = _route_context(request, query, headers)
        if not sql or not sql.strip():
            logger.info("route: %s", NO_SQL)
            return {"routingGroup": self.light_group, "errors": [NO_SQL], "externalHeaders": {}}
        prediction = self.predictor.predict(sql, context)
        return {
            "routingGroup": self.heavy_group if prediction.heavy else self.light_group,
            "errors": [],
            "externalHeaders": decision_headers(prediction),
        }

    def predict(self, body: Any) -> dict[str, Any]:
        """The prediction for ``{"query": ..., "user": ..., ...}``, as the CLI prints it."""
        request = _object(body, "the body")
        unknown = sorted(set(request) - set(PREDICT_FIELDS))
        if unknown:
            raise RequestError(
                HTTPStatus.BAD_REQUEST,
                f"unknown field {unknown[0]!r}; /v1/predict takes {', '.join(PREDICT_FIELDS)}",
            )
        values = {name: _field(request, name, str) for name in PREDICT_FIELDS}
        if values["query"] is None:
            raise RequestError(
                HTTPStatus.BAD_REQUEST, "field 'query' (the SQL statement) is required"
            )
        context = QueryContext(
            user=values["user"],
            source=values["source"],
            catalog=values["catalog"],
            schema=values["schema"],
            query_type=values["query_type"],
            time=dt.datetime.now(dt.UTC),
        )
        return self.predictor.predict(values["query"], context).as_dict()

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "model_version": self.predictor.version}


def decision_headers(prediction: Prediction) -> dict[str, str]:
    """The decision as headers for the forwarded request (the gateway wants string values)."""
    return {
        f"{HEADER_PREFIX}Heavy": str(prediction.heavy).lower(),
        f"{HEADER_PREFIX}Probability": repr(prediction.probability),
        f"{HEADER_PREFIX}Stage": prediction.stage,
        f"{HEADER_PREFIX}Category": prediction.category,
        f"{HEADER_PREFIX}Model-Version": prediction.model_version,
    }


def _route_context(
    request: Mapping[str, Any], query: Mapping[str, Any], headers: Message
) -> QueryContext:
    """What the router knows of the query besides its text, as training saw it in the log.

    The query type is ``resourceGroupQueryType`` (``SELECT``, ``INSERT``, ``DATA_DEFINITION``,
    ...: the log's ``query_type``), not ``queryType``, which the gateway fills with the name
    of the parser's statement class (``Query``, ``Insert``, ...)."""
    user = _field(request, "trinoRequestUser", dict) or {}
    return QueryContext(
        user=(
            _field(user, "user", str, where="trinoRequestUser.")
            or _field(request, "remoteUser", str)
            or headers.get("X-Trino-User")
        ),
        source=headers.get("X-Trino-Source"),
        catalog=_field(query, "defaultCatalog", str, where="trinoQueryProperties."),
        schema=_field(query, "defaultSchema", str, where="trinoQueryProperties."),
        query_type=_field(query, "resourceGroupQueryType", str, where="trinoQueryProperties."),
        time=dt.datetime.now(dt.UTC),
        session_properties=session_properties(headers.get_all("X-Trino-Session") or []),
    )


def gateway_request(sql: str, context: QueryContext) -> tuple[dict[str, Any], dict[str, str]]:
    """The body and headers Trino Gateway (``analyzeRequest`` on) posts to ``/v1/route`` for
    ``sql`` sent in ``context``: what the service reads back, for tests, benchmarks and clients
    that stand in for the gateway. The time is not sent: the service takes its own."""
    body = {
        "trinoQueryProperties": {
            "body": sql,
            "queryType": "",  # the name of the parser's statement class; not read
            "resourceGroupQueryType": context.query_type,
            "defaultCatalog": context.catalog,
            "defaultSchema": context.schema,
            "isNewQuerySubmission": True,
        },
        "trinoRequestUser": {"user": context.user},
        "contentType": "application/json",
        "method": "POST",
        "requestURI": "/v1/statement",
    }
    session = ",".join(f"{k}={quote(v)}" for k, v in context.session_properties.items())
    headers = {"X-Trino-Source": context.source, "X-Trino-Session": session}
    return body, {name: value for name, value in headers.items() if value}


def session_properties(values: list[str]) -> dict[str, str]:
    """The ``X-Trino-Session`` headers (``name=value`` pairs, comma-separated, values
    URL-encoded) as a dict; a pair without ``=`` is skipped."""
    pairs = (item.partition("=") for value in values for item in value.split(","))
    return {unquote(k.strip()): unquote(v.strip()) for k, sep, v in pairs if sep and k.strip()}


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RequestError(
            HTTPStatus.BAD_REQUEST, f"{what} must be a JSON object, got {_json_type(value)}"
        )
    return value


def _field(obj: Mapping[str, Any], key: str, kind: type, *, where: str = "") -> Any:
    """``obj[key]`` when it is a ``kind``, None when absent or null; any other value is a 400
    naming the field."""
    value = obj.get(key)
    if value is None or isinstance(value, kind):
        return value
    raise RequestError(
        HTTPStatus.BAD_REQUEST,
        f"{where}{key} must be {_JSON_TYPES[kind]} or null, got {_json_type(value)}",
    )


def _json_type(value: Any) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


# path -> (method, answer of the router to the decoded body and the request headers)
_ENDPOINTS: dict[str, tuple[str, Callable[[Router, Any, Message], dict[str, Any]]]] = {
    "/v1/route": ("POST", Router.route),
    "/v1/predict": ("POST", lambda router, body, _headers: router.predict(body)),
    "/healthz": ("GET", lambda router, _body, _headers: router.health()),
}


class _Handler(BaseHTTPRequestHandler):
    """One connection: requests in turn, each answered with JSON and a Content-Length."""

    protocol_version = "HTTP/1.1"  # keep-alive
    server_version = f"query-predictor/{__version__}"
    timeout = IDLE_TIMEOUT_SECONDS
    disable_nagle_algorithm = True
    wbufsize = 1 << 16  # status line, headers and body leave in one write
    server: ServiceServer

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _handle(self) -> None:
        self._body_unread = _has_body(self.headers)
        try:
            status, payload = HTTPStatus.OK, self._answer()
        except RequestError as exc:
            status, payload = exc.status, {"errors": [exc.message]}
        except Exception:
            logger.exception("%s %s failed", self.command, self.path)
            status = HTTPStatus.INTERNAL_SERVER_ERROR
            payload = {"errors": ["internal error; the service's log has the details"]}
        if self._body_unread:
            self._skip_body()
        self._reply(status, payload)

    def _answer(self) -> dict[str, Any]:
        path = urlsplit(self.path).path
        if path not in _ENDPOINTS:
            raise RequestError(
                HTTPStatus.NOT_FOUND,
                f"no endpoint {path}; there are POST /v1/route, POST /v1/predict, GET /healthz",
            )
        method, answer = _ENDPOINTS[path]
        if self.command != method:
            raise RequestError(
                HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes {method}, not {self.command}"
            )
        body = self._read_json() if method == "POST" else None
        return answer(self.server.router, body, self.headers)

    def _read_json(self) -> Any:
        data = self._read_body()
        if not data.strip():
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body is empty; send a JSON object")
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise RequestError(HTTPStatus.BAD_REQUEST, f"the body is not JSON ({exc})") from None

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = self._read_chunks()
        else:
            data = self.rfile.read(_content_length(self.headers))
        self._body_unread = False
        return data

    def _read_chunks(self) -> bytes:
        """A body sent in chunks (``Transfer-Encoding: chunked``), up to the limit."""
        chunks: list[bytes] = []
        size = 0
        while length := _chunk_size(self.rfile.readline(1024)):
            size += length
            _check_size(size)
            chunks.append(self.rfile.read(length))
            self.rfile.readline(1024)  # the line end after the chunk
        while self.rfile.readline(1024).strip():  # trailer fields, up to the empty line
            pass
        return b"".join(chunks)

    def _skip_body(self) -> None:
        """Read and drop the body of a request answered without it (a 404, a 413, ...); a
        chunked body, a bad length or one over :data:`DISCARD_LIMIT_BYTES` stays unread, and
        the connection closes after the answer."""
        length = _declared_length(self.headers)
        if "Transfer-Encoding" in self.headers or length is None or length > DISCARD_LIMIT_BYTES:
            return
        while length > 0 and (data := self.rfile.read(min(length, 1 << 16))):
            length -= len(data)
        self._body_unread = length > 0

    def _reply(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("Allow", _ENDPOINTS[urlsplit(self.path).path][0])
        if self._body_unread:  # what is left of it would be read as the next request
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def handle_expect_100(self) -> bool:
        """Send ``100 Continue`` at once: the buffered writer would hold it until the answer,
        and the client waits for it before it sends the body."""
        proceed = super().handle_expect_100()
        self.wfile.flush()
        return proceed

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The base class's own errors (a bad request line, an unknown method) in JSON too."""
        self._body_unread = True  # the stream cannot be trusted after a bad request line
        self._reply(HTTPStatus(code), {"errors": [message or HTTPStatus(code).phrase]})

    def log_message(self, format: str, *args: Any) -> None:
        """Every request line, and the base class's own complaints, to :data:`ACCESS_LOG`
        (formatted only when it is on)."""
        ACCESS_LOG.info("%s " + format, self.address_string(), *args)


def _has_body(headers: Message) -> bool:
    return "Transfer-Encoding" in headers or _declared_length(headers) != 0


def _declared_length(headers: Message) -> int | None:
    """The Content-Length, 0 when absent, None when it is not a size."""
    try:
        length = int(headers.get("Content-Length", "0"))
    except ValueError:
        return None
    return length if length >= 0 else None


def _content_length(headers: Message) -> int:
    length = _declared_length(headers)
    if length is None:
        text = headers.get("Content-Length")
        raise RequestError(HTTPStatus.BAD_REQUEST, f"Content-Length {text!r} is not a size")
    _check_size(length)
    return length


def _chunk_size(line: bytes) -> int:
    try:
        size = int(line.split(b";", 1)[0], 16)
    except ValueError:
        size = -1
    if size < 0:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"bad chunk size line {line[:40]!r}")
    return size


def _check_size(size: int) -> None:
    if size > MAX_BODY_BYTES:
        raise RequestError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"the body has {size:,} bytes or more; the limit is {MAX_BODY_BYTES:,}",
        )


class ServiceServer(ThreadingHTTPServer):
    """A thread per connection, all answering with one :class:`Router`; bound when made
    (port 0: any free port, read it from ``server_address``). Call
    :func:`serve_until_stopped` or ``serve_forever`` to answer."""

    daemon_threads = True  # a stop does not wait for idle keep-alive connections
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], router: Router) -> None:
        super().__init__(address, _Handler)
        self.router = router

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up mid-answer is routine; anything else is logged in full."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            logger.debug("%s hung up", client_address)
        else:
            logger.exception("connection from %s failed", client_address)


def serve_until_stopped(server: ServiceServer) -> None:
    """Answer until Ctrl-C or SIGTERM (call from the main thread), then close the socket."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        logger.info("stopping")  # the way a stop arrives: not an error
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
