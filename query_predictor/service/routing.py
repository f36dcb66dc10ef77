"""What the endpoints answer, apart from HTTP: decoded JSON and request headers in, JSON out.

:class:`Router` holds the loaded :class:`~query_predictor.service.predictor.Predictor` (swapped
whole by :meth:`Router.reload`) and answers the three calls; :mod:`.app` does the HTTP around
it. Every answer of :meth:`Router.route` is a routing decision, including the ones made
without the model:

- no SQL in the request (the gateway's ``analyzeRequest`` is off, or the statement reached its
  ``maxBodySize``): :data:`NO_SQL`;
- a statement that is empty, whitespace or comments only (Trino rejects it before it runs):
  stage ``no_sql`` with :data:`EMPTY_SQL`;
- a statement the gateway marks ``isQueryParsingSuccessful: false`` (Trino's own parser, in the
  gateway, rejected it; Trino fails it at once): stage ``unparsed`` with :data:`UNPARSED`.

Each goes to the light group with the reason in ``errors`` (which the gateway logs, or turns
into the user's error when its ``propagateErrors`` is on). A request whose JSON does not have
the contract's shape is a :class:`RequestError` (400) naming the field.

Every decision, with or without the model, also rides along with the query as a client tag
(:mod:`query_predictor.core.client_tags`): ``externalHeaders`` sets ``X-Trino-Client-Tags``
to the tags the client sent (the gateway forwards the client's headers to this service)
followed by the decision's tag, so Trino logs it in ``client_tags`` and replay can compare
the decisions taken online with what the pipeline says they should have been.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, unquote

from query_predictor.core.client_tags import CLIENT_TAGS_HEADER, Decision, append_tag, format_tag
from query_predictor.core.features import QueryContext
from query_predictor.core.history import TABLE, TEMPLATE
from query_predictor.service.predictor import NO_SQL_STAGE, Prediction, Predictor, readable

HEADER_PREFIX = "X-Query-Predictor-"
RESOURCE_ESTIMATE = "X-Trino-Resource-Estimate"
UNPARSED_STAGE = "unparsed"
NO_SQL = (
    "no SQL in trinoQueryProperties.body: set requestAnalyzerConfig.analyzeRequest: true in "
    "Trino Gateway (a statement of maxBodySize characters or more is not passed); routed light"
)
EMPTY_SQL = (
    "the statement is empty, whitespace or comments only: Trino rejects it before it runs; "
    "routed light without the model"
)
UNPARSED = (
    "Trino Gateway could not parse the statement (isQueryParsingSuccessful: false{detail}): "
    "Trino fails it before it runs; routed light without the model"
)
PREDICT_FIELDS = ("query", "user", "source", "catalog", "schema", "query_type")
# the resource bands worth sending: the statement's own template, else its costliest table
ESTIMATE_BASES = frozenset({TEMPLATE, TABLE})
_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
}


class RequestError(Exception):
    """A request answered with another status than 200: the status and what to tell the
    client. ``kind`` names the error in the ``errors_total`` metric."""

    def __init__(self, status: HTTPStatus, message: str, kind: str = "bad_request") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


@dataclass(frozen=True)
class Routed:
    """A routing answer and what decided it (for metrics and the access log)."""

    payload: dict[str, Any]
    stage: str  # zero_cost, model, no_sql, unparsed
    # the decision tag was appended to tags the client sent (True), sent alone (False), or
    # not sent at all (None: tagging is off)
    tagged: bool | None = None


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Router:
    """The answers of ``/v1/route``, ``/v1/predict`` and ``/healthz`` from one predictor.

    Parameters
    ----------
    predictor : Predictor
        The loaded bundle; :meth:`reload` replaces it between two requests.
    heavy_group, light_group : str
        Trino Gateway routing groups of heavy and of all other queries.
    resource_estimate : bool, default False
        Also send ``X-Trino-Resource-Estimate`` (CPU_TIME, PEAK_MEMORY: the p90 of the
        statement's resource bands in the bundle's history) in ``externalHeaders``.
    decision_tag : bool, default True
        Append the decision's client tag to ``X-Trino-Client-Tags`` in ``externalHeaders``;
        False sends no ``X-Trino-Client-Tags`` at all (the client's own tags go on as sent).
    clock : callable, default the current UTC time
        The time a request arrives (the gateway does not send one): the statement's hour,
        weekday and the age of the bundle's history are taken at it.
    """

    def __init__(
        self,
        predictor: Predictor,
        heavy_group: str = "heavy",
        light_group: str = "adhoc",
        *,
        resource_estimate: bool = False,
        decision_tag: bool = True,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        if heavy_group == light_group:
            raise ValueError(
                f"heavy and light group are both {heavy_group!r}; give the light queries "
                "another group"
            )
        self.predictor = predictor
        self.heavy_group = heavy_group
        self.light_group = light_group
        self.resource_estimate = resource_estimate
        self.decision_tag = decision_tag
        self.clock = clock

    def reload(self, predictor: Predictor) -> None:
        """Answer with ``predictor`` from the next request on (one attribute store: a request
        in flight keeps the predictor it started with)."""
        self.predictor = predictor

    def route(self, body: Any, headers: Mapping[str, list[str]]) -> Routed:
        """Trino Gateway's external routing call: the group for the statement in ``body``.
        ``headers`` maps lower-case header names to their values."""
        (answer,) = self.route_many([(body, headers)])
        if isinstance(answer, RequestError):
            raise answer
        return answer

    def route_many(
        self, calls: Sequence[tuple[Any, Mapping[str, list[str]]]]
    ) -> list[Routed | RequestError]:
        """:meth:`route` of each (body, headers), with the model run once for all the
        statements it scores (:meth:`Predictor.predict_batch`): what a server answering
        several calls at once asks. A call that :meth:`route` would refuse gets its
        :class:`RequestError` in its place; the others are answered all the same."""
        predictor = self.predictor  # one bundle for the whole batch, even across a reload
        answers: list[Any] = []  # Routed or RequestError; None until the model has spoken
        scored: list[tuple[int, Mapping[str, list[str]]]] = []
        statements: list[tuple[str, QueryContext]] = []
        for body, headers in calls:
            try:
                read = self._read(predictor, body, headers)
            except RequestError as exc:
                answers.append(exc)
                continue
            if isinstance(read, Routed):
                answers.append(read)
                continue
            scored.append((len(answers), headers))
            statements.append(read)
            answers.append(None)
        predictions = predictor.predict_batch(statements, bands=self.resource_estimate)
        for (i, headers), prediction in zip(scored, predictions, strict=True):
            answers[i] = self._answer(predictor, prediction, headers)
        return answers

    def _read(
        self, predictor: Predictor, body: Any, headers: Mapping[str, list[str]]
    ) -> Routed | tuple[str, QueryContext]:
        """The statement and its context, or the answer when the call needs no model."""
        request = _object(body, "the body (RoutingGroupExternalBody)")
        query = _field(request, "trinoQueryProperties", dict) or {}
        sql = _field(query, "body", str, where="trinoQueryProperties.")
        context = _route_context(request, query, headers, self.clock())
        if not sql:
            return self._without_model(predictor, NO_SQL_STAGE, NO_SQL, headers)
        if query.get("isQueryParsingSuccessful") is False:
            message = _field(query, "errorMessage", str, where="trinoQueryProperties.")
            detail = f": {readable(message)[:200]}" if message else ""
            return self._without_model(
                predictor, UNPARSED_STAGE, UNPARSED.format(detail=detail), headers
            )
        return sql, context

    def _answer(
        self, predictor: Predictor, prediction: Prediction, headers: Mapping[str, list[str]]
    ) -> Routed:
        """The routing answer for the model's ``prediction`` of a statement."""
        if prediction.stage == NO_SQL_STAGE:
            return self._without_model(predictor, NO_SQL_STAGE, EMPTY_SQL, headers)
        external = decision_headers(prediction)
        if self.resource_estimate and (estimate := resource_estimate(prediction)):
            external[RESOURCE_ESTIMATE] = estimate
        decision = Decision(
            prediction.heavy, prediction.probability, prediction.model_version, prediction.stage
        )
        tagged = self._tag(external, decision, headers)
        group = self.heavy_group if prediction.heavy else self.light_group
        return Routed(
            {"routingGroup": group, "errors": [], "externalHeaders": external},
            prediction.stage,
            tagged,
        )

    def _without_model(
        self, predictor: Predictor, stage: str, reason: str, headers: Mapping[str, list[str]]
    ) -> Routed:
        external = {
            f"{HEADER_PREFIX}Heavy": "false",
            f"{HEADER_PREFIX}Stage": stage,
            f"{HEADER_PREFIX}Model-Version": predictor.version,
        }
        tagged = self._tag(external, Decision(False, 0.0, predictor.version, stage), headers)
        payload = {
            "routingGroup": self.light_group,
            "errors": [reason],
            "externalHeaders": external,
        }
        return Routed(payload, stage, tagged)

    def _tag(
        self, external: dict[str, str], decision: Decision, headers: Mapping[str, list[str]]
    ) -> bool | None:
        """Set the client tags with the decision's tag in ``external`` (when tagging is on);
        whether the client had tags of its own."""
        if not self.decision_tag:
            return None
        own = headers.get(CLIENT_TAGS_HEADER.lower(), [])
        external[CLIENT_TAGS_HEADER] = append_tag(own, format_tag(decision))
        return any(value.strip(" ,") for value in own)

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
            time=self.clock(),
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


def resource_estimate(prediction: Prediction) -> str | None:
    """Trino's ``X-Trino-Resource-Estimate`` value for a prediction: ``CPU_TIME`` and
    ``PEAK_MEMORY`` at the p90 of its :attr:`~Prediction.bands`, as airlift Duration /
    DataSize strings; None without bands (the model did not run) or when they come from no
    more than the user or the whole workload (they say nothing about this statement)."""
    bands = prediction.bands
    if bands is None or bands.basis not in ESTIMATE_BASES:
        return None
    memory_bytes = bands.peak_memory_gib_p90 * 2**30
    return f"CPU_TIME={bands.cpu_seconds_p90:.0f}s,PEAK_MEMORY={memory_bytes:.0f}B"


def _route_context(
    request: Mapping[str, Any],
    query: Mapping[str, Any],
    headers: Mapping[str, list[str]],
    time: dt.datetime,
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
            or _first(headers, "x-trino-user")
        ),
        source=_first(headers, "x-trino-source"),
        catalog=_field(query, "defaultCatalog", str, where="trinoQueryProperties."),
        schema=_field(query, "defaultSchema", str, where="trinoQueryProperties."),
        query_type=_field(query, "resourceGroupQueryType", str, where="trinoQueryProperties."),
        time=time,
        session_properties=session_properties(headers.get("x-trino-session", [])),
    )


def _first(headers: Mapping[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values else None


def gateway_request(
    sql: str, context: QueryContext, client_tags: Sequence[str] = ()
) -> tuple[dict[str, Any], dict[str, str]]:
    """The body and headers Trino Gateway (``analyzeRequest`` on) posts to ``/v1/route`` for
    ``sql`` sent in ``context`` by a client with ``client_tags``: what the service reads back,
    for tests, benchmarks and clients that stand in for the gateway. The time is not sent:
    the service takes its own."""
    body = {
        "trinoQueryProperties": {
            "body": sql,
            "queryType": "",  # the name of the parser's statement class; not read
            "resourceGroupQueryType": context.query_type,
            "defaultCatalog": context.catalog,
            "defaultSchema": context.schema,
            "isNewQuerySubmission": True,
            "isQueryParsingSuccessful": True,
        },
        "trinoRequestUser": {"user": context.user},
        "contentType": "application/json",
        "method": "POST",
        "requestURI": "/v1/statement",
    }
    session = ",".join(f"{k}={quote(v)}" for k, v in context.session_properties.items())
    headers = {
        "X-Trino-Source": context.source,
        "X-Trino-Session": session,
        CLIENT_TAGS_HEADER: ",".join(client_tags),
    }
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
