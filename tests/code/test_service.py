"""The HTTP service: the real server on a free port of 127.0.0.1, serving a real bundle, asked
by a real HTTP client. It routes as :meth:`Predictor.predict` decides, answers malformed
requests with a JSON error naming the problem, and keeps connections alive."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import http.client
import json
import logging
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from prometheus_client.parser import text_string_to_metric_families

from query_predictor.cli import build_parser, main
from query_predictor.core.client_tags import CLIENT_TAGS_HEADER, Decision, find_decision, format_tag
from query_predictor.core.features import QueryContext
from query_predictor.core.history import resource_bands
from query_predictor.service.app import ACCESS_LOG, MAX_BODY_BYTES, RouteBatch, ServiceApp
from query_predictor.service.predictor import NO_SQL_STAGE, ZERO_COST, Predictor
from query_predictor.service.routing import (
    EMPTY_SQL,
    HEADER_PREFIX,
    NO_SQL,
    RESOURCE_ESTIMATE,
    UNPARSED_STAGE,
    RequestError,
    Router,
    gateway_request,
    session_properties,
)
from query_predictor.service.server import ServeSettings, bind, uvicorn_server
from query_predictor.training.featurize import context_of

from .test_serving import build_bundle

HEAVY, LIGHT = "etl-heavy", "adhoc"
# the service's clock in these tests: the morning after the test split's last day, so that its
# answers (hour, weekday, age of the history) do not depend on when the suite runs
ARRIVAL = dt.datetime(2025, 6, 9, 10, tzinfo=dt.UTC)
TOKEN = "s3cret-token"


class Running:
    """An app served by uvicorn in a thread of this process, on a free port of 127.0.0.1."""

    def __init__(self, app: ServiceApp, settings: ServeSettings | None = None) -> None:
        self.app = app
        self.sock = bind("127.0.0.1", 0, 128)
        self.address = self.sock.getsockname()[:2]
        self.server = uvicorn_server(app, settings or ServeSettings())
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.01)

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(*self.address, timeout=10)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@dataclasses.dataclass(frozen=True)
class Served:
    predictor: Predictor
    running: Running
    test_rows: pl.DataFrame
    bundle: Path

    def connect(self) -> http.client.HTTPConnection:
        return self.running.connect()


def serve_app(predictor: Predictor, bundle: Path | None = None, **options: Any) -> Running:
    settings = ServeSettings(**options.pop("settings", {}))
    router = {"clock": lambda: ARRIVAL, **options.pop("router", {})}
    app = ServiceApp(Router(predictor, HEAVY, LIGHT, **router), models=bundle, **options)
    return Running(app, settings)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The service on 127.0.0.1, any free port, answering in a thread of this process."""
    directory = tmp_path_factory.mktemp("bundle")
    splits = build_bundle(directory)
    predictor = Predictor.from_bundle(directory)
    running = serve_app(predictor, directory)
    try:
        yield Served(predictor, running, splits["test"], directory)
    finally:
        running.stop()


def call(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], http.client.HTTPResponse]:
    """One request on ``connection``: status, decoded JSON answer, the response."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    connection.request(method, path, body=data, headers=headers or {})
    response = connection.getresponse()
    answer = json.loads(response.read())
    assert response.getheader("Content-Type") == "application/json"
    return response.status, answer, response


def ask(served: Served, method: str, path: str, body: Any = None, **headers: str):
    """:func:`call` on a connection of its own."""
    connection = served.connect()
    try:
        status, answer, _ = call(connection, method, path, body, headers)
    finally:
        connection.close()
    return status, answer


def on_arrival(context: QueryContext) -> QueryContext:
    """``context`` at the time the service gives a request: its clock's."""
    return dataclasses.replace(context, time=ARRIVAL)


def expected_route(served: Served, sql: str, context: QueryContext) -> dict[str, Any]:
    """What /v1/route must answer: the predictor's own decision for ``sql`` in ``context``."""
    prediction = served.predictor.predict(sql, on_arrival(context))
    return {
        "routingGroup": HEAVY if prediction.heavy else LIGHT,
        "errors": [],
        "externalHeaders": {
            f"{HEADER_PREFIX}Heavy": "true" if prediction.heavy else "false",
            f"{HEADER_PREFIX}Probability": repr(prediction.probability),
            f"{HEADER_PREFIX}Stage": prediction.stage,
            f"{HEADER_PREFIX}Category": prediction.category,
            f"{HEADER_PREFIX}Model-Version": prediction.model_version,
            CLIENT_TAGS_HEADER: format_tag(
                Decision(
                    prediction.heavy,
                    prediction.probability,
                    prediction.model_version,
                    prediction.stage,
                )
            ),
        },
    }


def test_a_zero_cost_statement_is_routed_light(served: Served) -> None:
    body = {"trinoQueryProperties": {"body": "SHOW TABLES FROM hive.sales"}}
    status, answer = ask(served, "POST", "/v1/route", body)
    assert status == 200
    assert answer["routingGroup"] == LIGHT
    assert answer["errors"] == []
    assert answer["externalHeaders"][f"{HEADER_PREFIX}Stage"] == ZERO_COST
    assert answer["externalHeaders"][f"{HEADER_PREFIX}Heavy"] == "false"


# what Trino Gateway's ExternalRoutingGroupSelector posts for a query (analyzeRequest on)
GATEWAY_BODY = {
    "trinoQueryProperties": {
        "body": "SELECT o.region, sum(i.amount) FROM orders o JOIN items i ON o.id = i.order_id "
        "GROUP BY 1",
        "queryType": "Query",
        "resourceGroupQueryType": "SELECT",
        "tables": ["hive.sales.orders", "hive.sales.items"],
        "defaultCatalog": "hive",
        "defaultSchema": "sales",
        "catalogs": ["hive"],
        "schemas": ["sales"],
        "catalogSchemas": ["hive.sales"],
        "isNewQuerySubmission": True,
        "isQueryParsingSuccessful": True,
        "errorMessage": None,
    },
    "trinoRequestUser": {"user": "svc_etl", "userInfo": None},
    "contentType": "application/json",
    "remoteUser": None,
    "method": "POST",
    "requestURI": "/v1/statement",
    "queryString": None,
    "session": None,
    "remoteAddr": "10.0.0.7",
    "remoteHost": "10.0.0.7",
    "parameters": {},
}


def test_the_gateway_body_and_headers_make_the_context(served: Served) -> None:
    headers = {
        "X-Trino-User": "svc_etl",
        "X-Trino-Source": "airflow",
        "X-Trino-Session": "query_max_memory=50GB,join_distribution_type=BROADCAST",
        "Content-Type": "text/plain",  # the client's, passed on: the service reads JSON anyway
    }
    context = QueryContext(
        user="svc_etl",
        source="airflow",
        catalog="hive",
        schema="sales",
        query_type="SELECT",
        session_properties={"query_max_memory": "50GB", "join_distribution_type": "BROADCAST"},
    )
    sql = GATEWAY_BODY["trinoQueryProperties"]["body"]
    forwarded = {name: headers[name] for name in ("X-Trino-Source", "X-Trino-Session")}
    assert gateway_request(sql, context)[1] == forwarded
    status, answer = ask(served, "POST", "/v1/route", GATEWAY_BODY, **headers)
    assert status == 200
    assert answer == expected_route(served, sql, context)


def test_each_statement_is_routed_as_the_predictor_decides(served: Served) -> None:
    """The gateway's body and the client headers it forwards (source, session properties)
    give the predictor the statement's context; both groups occur among the test rows."""
    groups, contexts = set(), []
    for row in served.test_rows.head(60).iter_rows(named=True):
        context = context_of(row)
        body, headers = gateway_request(row["query"], context)
        status, answer = ask(served, "POST", "/v1/route", body, **headers)
        assert status == 200
        assert answer == expected_route(served, row["query"], context)
        groups.add(answer["routingGroup"])
        contexts.append(context)
    assert groups == {HEAVY, LIGHT}
    assert any(c.source for c in contexts)
    assert any(c.session_properties for c in contexts)


def test_a_request_arrives_at_the_current_utc_time_by_default(served: Served) -> None:
    before = dt.datetime.now(dt.UTC)
    arrived = Router(served.predictor).clock()
    assert before <= arrived <= dt.datetime.now(dt.UTC)


def test_the_user_falls_back_to_remote_user_then_the_trino_header(served: Served) -> None:
    row = served.test_rows.row(0, named=True)
    context = context_of(row)
    body, headers = gateway_request(row["query"], context)
    expected = expected_route(served, row["query"], context)
    body |= {"trinoRequestUser": None, "remoteUser": context.user}
    assert ask(served, "POST", "/v1/route", body, **headers)[1] == expected
    body |= {"trinoRequestUser": {"user": None}, "remoteUser": None}
    headers |= {"X-Trino-User": context.user}
    assert ask(served, "POST", "/v1/route", body, **headers)[1] == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], {}),
        (["query_max_memory=50GB"], {"query_max_memory": "50GB"}),
        (["a=1, b=x%2Cy", "c=2"], {"a": "1", "b": "x,y", "c": "2"}),
        (["no_value,=orphan,d="], {"d": ""}),
    ],
)
def test_session_properties_of_the_trino_header(
    values: list[str], expected: dict[str, str]
) -> None:
    assert session_properties(values) == expected


def without_model(served: Served, stage: str, reason: str) -> dict[str, Any]:
    return {
        "routingGroup": LIGHT,
        "errors": [reason],
        "externalHeaders": {
            f"{HEADER_PREFIX}Heavy": "false",
            f"{HEADER_PREFIX}Stage": stage,
            f"{HEADER_PREFIX}Model-Version": served.predictor.version,
            CLIENT_TAGS_HEADER: format_tag(Decision(False, 0.0, served.predictor.version, stage)),
        },
    }


@pytest.mark.parametrize(
    "body",
    [
        {"trinoQueryProperties": None},
        {"trinoQueryProperties": {"body": ""}},
        {"trinoQueryProperties": {"body": None}, "trinoRequestUser": {"user": "alice"}},
        {},
    ],
)
def test_a_request_without_sql_is_routed_light_and_says_why(served: Served, body) -> None:
    status, answer = ask(served, "POST", "/v1/route", body)
    assert status == 200
    assert answer == without_model(served, NO_SQL_STAGE, NO_SQL)


NOTHING_TO_RUN = [
    "  \n\t",
    ";",
    "-- the nightly report, disabled\n",
    "/* SELECT * FROM hive.sales.orders */",
    "-- one\n/* two */ ; -- three",
    "/* unterminated comment SELECT 1",
]


@pytest.mark.parametrize("sql", NOTHING_TO_RUN)
def test_a_statement_with_nothing_to_run_is_answered_without_the_model(
    served: Served, sql: str
) -> None:
    """Whitespace, semicolons and comments only: light, stage no_sql, the reason in errors;
    /v1/predict says the same (probability 0: the model did not run)."""
    body, headers = gateway_request(sql, QueryContext(user="alice"))
    status, answer = ask(served, "POST", "/v1/route", body, **headers)
    assert (status, answer) == (200, without_model(served, NO_SQL_STAGE, EMPTY_SQL))
    status, answer = ask(served, "POST", "/v1/predict", {"query": sql})
    assert status == 200
    assert (answer["stage"], answer["heavy"], answer["probability"]) == (NO_SQL_STAGE, False, 0.0)


def test_a_statement_with_sql_after_a_comment_goes_to_the_model(served: Served) -> None:
    sql = "-- nightly\nSELECT o.region, count(*) FROM hive.sales.orders o GROUP BY 1"
    status, answer = ask(served, "POST", "/v1/predict", {"query": sql})
    assert (status, answer["stage"]) == (200, "model")


def test_a_statement_the_gateway_could_not_parse_is_answered_without_the_model(
    served: Served,
) -> None:
    body, headers = gateway_request("SELEC amount FROM orders", QueryContext(user="alice"))
    body["trinoQueryProperties"] |= {
        "isQueryParsingSuccessful": False,
        "errorMessage": "line 1:1: mismatched input 'SELEC'",
    }
    status, answer = ask(served, "POST", "/v1/route", body, **headers)
    reason = (
        "Trino Gateway could not parse the statement (isQueryParsingSuccessful: false: "
        "line 1:1: mismatched input 'SELEC'): Trino fails it before it runs; routed light "
        "without the model"
    )
    assert (status, answer) == (200, without_model(served, UNPARSED_STAGE, reason))


@pytest.mark.parametrize("field", ["body", "user"])
def test_a_lone_surrogate_is_replaced_not_a_500(served: Served, field: str) -> None:
    """JSON may spell a surrogate without its pair ("\\ud800"); it is read as U+FFFD."""
    sql, user = "SELECT region, count(*) FROM hive.sales.orders GROUP BY 1", "alice"
    if field == "body":
        sql = "SELECT \ud800 region FROM hive.sales.orders WHERE note = '\udfff'"
    else:
        user = "al\udc80ice"
    body, headers = gateway_request(sql, QueryContext(user=user))
    data = json.dumps(body).encode()  # ensure_ascii: the surrogates as \\uXXXX escapes
    assert b"\\ud" in data
    status, answer = ask(served, "POST", "/v1/route", data, **headers)
    assert status == 200
    clean = sql.replace("\ud800", "\ufffd").replace("\udfff", "\ufffd")
    expected = expected_route(served, clean, QueryContext(user=user.replace("\udc80", "\ufffd")))
    assert answer["routingGroup"] == expected["routingGroup"]
    assert answer["externalHeaders"][f"{HEADER_PREFIX}Stage"] == "model"
    status, answer = ask(served, "POST", "/v1/predict", data.replace(b"trinoQuery", b"x"))
    assert status == 400  # the wrong shape, still no 500
    status, answer = ask(served, "POST", "/v1/predict", {"query": sql, "user": user})
    assert (status, answer["stage"]) == (200, "model")


def test_bytes_that_are_not_utf8_are_a_400_naming_the_byte(served: Served) -> None:
    data = b'{"trinoQueryProperties": {"body": "SELECT \xff\xfe FROM t"}}'
    status, answer = ask(served, "POST", "/v1/route", data)
    assert status == 400
    assert answer["errors"] == ["the body is not JSON: not UTF-8 (invalid start byte at byte 42)"]


def test_predict_answers_what_the_predictor_says(served: Served) -> None:
    for row in served.test_rows.head(20).iter_rows(named=True):
        context = dataclasses.replace(context_of(row), session_properties={})
        request = {
            "query": row["query"],
            "user": context.user,
            "source": context.source,
            "catalog": context.catalog,
            "schema": context.schema,
            "query_type": context.query_type,
        }
        status, answer = ask(served, "POST", "/v1/predict", request)
        assert status == 200
        assert answer == served.predictor.predict(row["query"], on_arrival(context)).as_dict()


def test_healthz_names_the_model(served: Served) -> None:
    assert ask(served, "GET", "/healthz") == (
        200,
        {"status": "ok", "model_version": served.predictor.version},
    )


QUERY = "trinoQueryProperties"
MALFORMED = [
    ("/v1/route", b"{not json", r"^the body is not JSON \(Expecting"),
    ("/v1/route", b"\xff\xfe{}", "^the body is not JSON"),
    ("/v1/route", b"", "^the body is empty"),
    ("/v1/route", [1, 2], r"^the body \(RoutingGroupExternalBody\) must be a JSON object, got an"),
    ("/v1/route", {QUERY: "SELECT 1"}, f"^{QUERY} must be an object or null, got a string$"),
    ("/v1/route", {QUERY: {"body": 5}}, f"^{QUERY}.body must be a string or null, got a number$"),
    ("/v1/route", {QUERY: {"body": "SELECT 1", "defaultSchema": []}}, f"^{QUERY}.defaultSchema"),
    ("/v1/route", {"trinoRequestUser": {"user": True}}, "^trinoRequestUser.user must be a string"),
    ("/v1/predict", {"user": "alice"}, r"^field 'query' \(the SQL statement\) is required$"),
    ("/v1/predict", {"query": None}, "^field 'query'"),
    ("/v1/predict", {"query": "SELECT 1", "sql": "x"}, "^unknown field 'sql'; /v1/predict takes"),
    ("/v1/predict", {"query": 7}, "^query must be a string or null, got a number$"),
    ("/v1/predict", "SELECT 1", "^the body must be a JSON object, got a string$"),
]


@pytest.mark.parametrize(("path", "body", "message"), MALFORMED)
def test_a_malformed_request_is_a_400_naming_the_problem(
    served: Served, path: str, body: Any, message: str
) -> None:
    status, answer = ask(served, "POST", path, body)
    assert status == 400
    assert list(answer) == ["errors"]
    assert len(answer["errors"]) == 1
    assert re.search(message, answer["errors"][0]), answer


def test_an_unknown_path_is_a_404(served: Served) -> None:
    status, answer = ask(served, "POST", "/v1/routing", {})
    assert status == 404
    assert "POST /v1/route" in answer["errors"][0]


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/route"), ("POST", "/healthz")])
def test_a_wrong_method_is_a_405(served: Served, method: str, path: str) -> None:
    connection = served.connect()
    status, answer, response = call(connection, method, path, {} if method == "POST" else None)
    connection.close()
    assert status == 405
    assert response.getheader("Allow") == ("POST" if method == "GET" else "GET")
    assert answer["errors"][0].startswith(f"{path} takes ")


def test_a_body_over_the_limit_is_a_413_without_reading_it(served: Served) -> None:
    """Only the headers are sent: the service answers without waiting for a gigabyte, and
    closes the connection (the rest of the body is never read)."""
    for length in (MAX_BODY_BYTES + 1, 1 << 30):
        connection = served.connect()
        connection.putrequest("POST", "/v1/route")
        connection.putheader("Content-Length", str(length))
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 413
        assert response.getheader("Connection") == "close"
        assert json.loads(response.read()) == {
            "errors": [f"the body has {length:,} bytes or more; the limit is {MAX_BODY_BYTES:,}"]
        }
        connection.close()


def test_a_chunked_body_over_the_limit_is_a_413(served: Served) -> None:
    running = serve_app(served.predictor, max_body_bytes=1000)
    try:
        connection = running.connect()
        chunks = iter([b'{"trinoQueryProperties": {"body": "' + b"x" * 600, b"y" * 600])
        connection.request("POST", "/v1/route", body=chunks, encode_chunked=True)
        response = connection.getresponse()
        assert response.status == 413
        assert json.loads(response.read())["errors"][0].endswith("the limit is 1,000")
        connection.close()
    finally:
        running.stop()


@pytest.mark.parametrize("length", ["-1", "many"])
def test_a_request_that_is_not_http_is_the_servers_plain_400(served: Served, length: str) -> None:
    """Framing errors are the HTTP library's to answer: a 400 and the connection closed."""
    connection = served.connect()
    connection.putrequest("POST", "/v1/route")
    connection.putheader("Content-Length", length)
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 400
    assert response.getheader("Connection") == "close"
    connection.close()


def test_two_requests_share_one_connection(served: Served) -> None:
    connection = served.connect()
    status, _, response = call(connection, "GET", "/healthz")
    socket = connection.sock
    assert status == 200
    assert socket is not None
    assert response.getheader("Connection") is None  # HTTP/1.1: kept alive
    body = {"trinoQueryProperties": {"body": "SELECT 1"}}
    assert call(connection, "POST", "/v1/route", body)[0] == 200
    assert call(connection, "POST", "/v1/route", b"[")[0] == 400  # read in full: still alive
    assert call(connection, "GET", "/healthz")[0] == 200
    assert connection.sock is socket
    connection.close()


def test_a_chunked_body_is_read(served: Served) -> None:
    connection = served.connect()
    body = json.dumps({"trinoQueryProperties": {"body": "SHOW CATALOGS"}}).encode()
    connection.request("POST", "/v1/route", body=iter([body[:10], body[10:]]), encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["routingGroup"] == LIGHT
    assert call(connection, "GET", "/healthz")[0] == 200  # the stream is still in step
    connection.close()


def test_concurrent_requests_get_the_sequential_answers(served: Served) -> None:
    rows = list(served.test_rows.head(40).iter_rows(named=True))
    requests = [gateway_request(row["query"], context_of(row)) for row in rows]
    sequential = [
        ask(served, "POST", "/v1/route", body, **headers)[1] for body, headers in requests
    ]

    def route_all(offset: int) -> list[dict[str, Any]]:
        connection = served.connect()
        order = requests[offset:] + requests[:offset]
        answers = [call(connection, "POST", "/v1/route", *request)[1] for request in order]
        connection.close()
        return answers[-offset:] + answers[:-offset] if offset else answers

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(route_all, range(6)))
    assert all(result == sequential for result in results)


def routing_calls(served: Served) -> list[tuple[Any, dict[str, list[str]]]]:
    """Routing calls as the app hands them to the router: statements the model scores, one
    zero-cost, one without SQL, one with nothing to run, and one body of the wrong shape."""
    calls = []
    for row in served.test_rows.head(24).iter_rows(named=True):
        body, headers = gateway_request(row["query"], context_of(row))
        calls.append((body, {name.lower(): [value] for name, value in headers.items()}))
    calls[3:3] = [({"trinoQueryProperties": {"body": "SHOW CATALOGS"}}, {})]
    calls[7:7] = [({"trinoQueryProperties": {}}, {}), ([1, 2], {})]
    calls[12:12] = [({"trinoQueryProperties": {"body": "-- nothing"}}, {})]
    return calls


def router_of(served: Served) -> Router:
    return Router(dataclasses.replace(served.predictor), HEAVY, LIGHT, clock=lambda: ARRIVAL)


def route_alone(router: Router, body: Any, headers: dict[str, list[str]]) -> Any:
    try:
        return router.route(body, headers)
    except RequestError as exc:
        return exc


def test_route_many_answers_each_call_as_route_does(served: Served) -> None:
    calls = routing_calls(served)
    alone = [route_alone(router_of(served), *c) for c in calls]
    together = router_of(served).route_many(calls)
    assert len(together) == len(calls)
    for one, many in zip(alone, together, strict=True):
        if isinstance(one, RequestError):  # the body of the wrong shape, in its own slot
            assert isinstance(many, RequestError) and many.message == one.message
        else:
            assert many == one
    stages = {a.stage for a in alone if not isinstance(a, RequestError)}
    assert stages == {"model", ZERO_COST, NO_SQL_STAGE}


def test_calls_ready_at_once_are_routed_in_batches(served: Served) -> None:
    """Calls made in the same turn of the event loop while the worker is busy wait for one
    another and are routed together, at most ``most`` at a time; each gets the answer it
    gets alone."""
    calls = routing_calls(served)
    router = router_of(served)
    sizes: list[int] = []
    batch = RouteBatch(router, sizes.append, most=10)  # no server to ask: every call waits

    async def route_all() -> list[Any]:
        return await asyncio.gather(
            *(batch.route(body, headers) for body, headers in calls), return_exceptions=True
        )

    answers = asyncio.run(route_all())
    assert sizes == [10, 10, len(calls) - 20]
    for (body, headers), answer in zip(calls, answers, strict=True):
        expected = route_alone(router_of(served), body, headers)
        if isinstance(expected, RequestError):
            assert isinstance(answer, RequestError) and answer.message == expected.message
        else:
            assert answer == expected


def test_a_call_alone_is_answered_at_once(served: Served) -> None:
    """With no other request in flight a call gets its answer from ``route`` itself, without
    waiting for a turn of the loop; with others in flight it waits for them."""
    calls = routing_calls(served)[:6]
    sizes: list[int] = []
    in_flight = [1]
    router = router_of(served)
    batch = RouteBatch(router, sizes.append, in_flight=lambda: in_flight[0])

    async def route_all() -> list[Any]:
        return [batch.route(body, headers) for body, headers in calls]

    alone = asyncio.run(route_all())
    assert alone == [router.route(body, headers) for body, headers in calls]
    assert sizes == [1] * len(calls)

    async def route_all_together() -> tuple[list[bool], list[Any]]:
        futures = [batch.route(body, headers) for body, headers in calls]
        done = [future.done() for future in futures]
        return done, await asyncio.gather(*futures)

    in_flight[0] = len(calls)
    sizes.clear()
    done, together = asyncio.run(route_all_together())
    assert done == [False] * len(calls) and together == alone
    assert sizes == [len(calls)]


def test_the_server_tells_the_app_its_requests_in_flight(served: Served) -> None:
    """uvicorn's own count of the requests it has read and not answered, not the default
    (which would make every call wait)."""
    assert served.running.app.batch.in_flight() == 0  # idle
    assert RouteBatch(router_of(served)).in_flight() == 2


def test_a_call_that_breaks_its_batch_fails_alone(served: Served) -> None:
    """An unexpected failure while routing a batch: each call is routed again on its own,
    so only the call that fails gets the exception (the app answers it with a 500)."""

    class Fragile(Router):
        def route_many(self, calls):  # type: ignore[no-untyped-def]
            if any(isinstance(body, dict) and "poison" in body for body, _ in calls):
                raise RuntimeError("a bug")
            return super().route_many(calls)

    calls = routing_calls(served)[:6]
    calls.insert(2, ({"poison": True}, {}))
    fragile = Fragile(dataclasses.replace(served.predictor), HEAVY, LIGHT, clock=lambda: ARRIVAL)
    batch = RouteBatch(fragile)

    async def route_all() -> list[Any]:
        return await asyncio.gather(
            *(batch.route(body, headers) for body, headers in calls), return_exceptions=True
        )

    answers = asyncio.run(route_all())
    assert isinstance(answers[2], RuntimeError)
    others = [a for i, a in enumerate(answers) if i != 2]
    assert others == [route_alone(router_of(served), *c) for i, c in enumerate(calls) if i != 2]


def test_an_unexpected_failure_is_a_500_without_a_traceback(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug that fails every answer (here a classifier that raises): the client gets a short
    JSON error, the log gets the traceback. (A bundle with bad metadata never gets this far:
    it is refused at load, see test_serving.py.)"""

    class Exploding:
        def classify(self, text: str) -> str:
            raise RuntimeError("a bug")

    broken = dataclasses.replace(served.predictor, classifier=Exploding())
    running = serve_app(broken)
    try:
        connection = running.connect()
        with caplog.at_level(logging.ERROR, logger="query_predictor.service.app"):
            status, answer, _ = call(
                connection, "POST", "/v1/route", {"trinoQueryProperties": {"body": "SHOW CATALOGS"}}
            )
        connection.close()
    finally:
        running.stop()
    assert status == 500
    assert answer == {"errors": ["internal error; the service's log has the details"]}
    assert "Traceback" not in json.dumps(answer)
    [record] = [r for r in caplog.records if r.name == "query_predictor.service.app"]
    assert record.exc_info is not None
    assert record.getMessage() == "POST /v1/route failed"


def test_a_client_that_expects_100_continue_gets_it_before_the_body(served: Served) -> None:
    body = json.dumps({"trinoQueryProperties": {"body": "SHOW CATALOGS"}}).encode()
    head = (
        f"POST /v1/route HTTP/1.1\r\nHost: service\r\nContent-Length: {len(body)}\r\n"
        "Expect: 100-continue\r\n\r\n"
    )
    with socket.create_connection(served.running.address, timeout=2) as connection:
        connection.sendall(head.encode())
        assert connection.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n")
        connection.sendall(body)
        assert connection.recv(1000).startswith(b"HTTP/1.1 200 OK\r\n")


def test_serve_without_a_bundle_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--port", "0", "--models", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("query-predictor serve: error:")
    assert error.count("\n") == 1
    assert "dvc pull" in error


def test_serve_needs_two_groups(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--heavy-group", "adhoc"]) == 2
    assert "--heavy-group and --light-group are both 'adhoc'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--workers", "0"], "--workers=0 must be >= 1"),
        (["--max-body-bytes", "-5"], "--max-body-bytes=-5 must be >= 1"),
        (["--port", "70000"], "--port=70000 must be 0 (any free port) to 65535"),
    ],
)
def test_a_serve_setting_that_cannot_work_is_a_one_line_error(
    option: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", *option]) == 2
    assert capsys.readouterr().err == f"query-predictor serve: error: {message}\n"


def test_the_access_log_has_each_request_as_json(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOG.name):
        ask(served, "GET", "/healthz")
        ask(served, "POST", "/v1/route", {"trinoQueryProperties": {"body": "SHOW CATALOGS"}})
        ask(served, "GET", "/nowhere")
        deadline = time.monotonic() + 5  # each line is written just after its answer is sent
        while len([r for r in caplog.records if r.name == ACCESS_LOG.name]) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == ACCESS_LOG.name]
    assert [
        {k: v for k, v in r.items() if k not in ("client", "ms", "bytes")} for r in records
    ] == [
        {"method": "GET", "path": "/healthz", "status": 200},
        {
            "method": "POST",
            "path": "/v1/route",
            "status": 200,
            "routing_group": LIGHT,
            "stage": ZERO_COST,
        },
        {"method": "GET", "path": "/nowhere", "status": 404, "error": "not_found"},
    ]
    assert all(r["client"].startswith("127.0.0.1:") and r["ms"] > 0 for r in records)


def test_every_answer_names_the_model_version(served: Served) -> None:
    for method, path, body in [
        ("GET", "/healthz", None),
        ("POST", "/v1/route", b"["),
        ("GET", "/x", None),
    ]:
        connection = served.connect()
        _, _, response = call(connection, method, path, body)
        connection.close()
        assert response.getheader(f"{HEADER_PREFIX}Model-Version") == served.predictor.version


def scrape(running: Running, **headers: str) -> dict[tuple[str, tuple], float]:
    """``GET /metrics`` read by prometheus_client's own parser: (sample name, sorted
    labels) -> value."""
    connection = running.connect()
    connection.request("GET", "/metrics", headers=headers)
    response = connection.getresponse()
    text = response.read().decode()
    connection.close()
    assert response.status == 200
    assert response.getheader("Content-Type").startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_requests_decisions_errors_and_the_model(served: Served) -> None:
    running = serve_app(served.predictor)
    try:
        connection = running.connect()
        row = served.test_rows.row(0, named=True)
        expected = expected_route(served, row["query"], context_of(row))
        route = gateway_request(row["query"], context_of(row))
        for _ in range(3):
            assert call(connection, "POST", "/v1/route", *route)[0] == 200
        body = {"trinoQueryProperties": {"body": "-- nothing"}}
        assert call(connection, "POST", "/v1/route", body)[0] == 200
        assert call(connection, "POST", "/v1/route", b"{")[0] == 400
        assert call(connection, "GET", "/v1/nothing")[0] == 404
        connection.close()
        samples = scrape(running)
    finally:
        running.stop()
    group = expected["routingGroup"]
    stage = expected["externalHeaders"][f"{HEADER_PREFIX}Stage"]
    route_key = (("endpoint", "/v1/route"),)
    assert samples["query_predictor_requests_total", (*route_key, ("status", "200"))] == 4
    assert samples["query_predictor_requests_total", (*route_key, ("status", "400"))] == 1
    assert (
        samples["query_predictor_requests_total", (("endpoint", "other"), ("status", "404"))] == 1
    )
    assert samples["query_predictor_request_duration_seconds_count", route_key] == 5
    assert 0 < samples["query_predictor_request_duration_seconds_sum", route_key] < 5
    assert (
        samples["query_predictor_decisions_total", (("routing_group", group), ("stage", stage))]
        == 3
    )
    assert (
        samples[
            "query_predictor_decisions_total", (("routing_group", LIGHT), ("stage", NO_SQL_STAGE))
        ]
        == 1
    )
    tags = "query_predictor_decision_tags_total"
    assert samples[tags, (("client_tags", "alone"),)] == 4  # every decision, none of the 400
    assert samples[tags, (("client_tags", "appended"),)] == 0
    assert samples["query_predictor_errors_total", (("kind", "bad_request"),)] == 1
    assert samples["query_predictor_errors_total", (("kind", "not_found"),)] == 1
    # one call at a time on one connection: four batches of one (the body that is not JSON
    # never reached the router)
    assert samples["query_predictor_route_batch_size_count", ()] == 4
    assert samples["query_predictor_route_batch_size_bucket", (("le", "1.0"),)] == 4
    assert samples["query_predictor_model_info", (("version", served.predictor.version),)] == 1
    assert ("query_predictor_model_load_seconds", ()) in samples
    assert samples["query_predictor_model_loaded_timestamp_seconds", ()] > time.time() - 600


@pytest.fixture(scope="module")
def guarded(served: Served) -> Iterator[Running]:
    running = serve_app(served.predictor, token=TOKEN.encode())
    yield running
    running.stop()


@pytest.mark.parametrize(
    ("authorization", "allowed"),
    [
        (None, False),
        ("Bearer wrong-token", False),
        (f"Basic {TOKEN}", False),
        (f"Bearer {TOKEN}x", False),
        (f"Bearer {TOKEN}", True),
        (f"bearer  {TOKEN}", True),
    ],
)
def test_with_auth_on_every_endpoint_but_healthz_needs_the_token(
    guarded: Running, authorization: str | None, allowed: bool
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    body = {"trinoQueryProperties": {"body": "SHOW CATALOGS"}}
    for method, path, payload in [
        ("POST", "/v1/route", body),
        ("POST", "/v1/predict", {"query": "SHOW CATALOGS"}),
        ("GET", "/metrics", None),
    ]:
        connection = guarded.connect()
        data = None if payload is None else json.dumps(payload).encode()
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        connection.close()
        if allowed:
            assert response.status == 200, answer
        else:
            assert response.status == 401
            assert response.getheader("WWW-Authenticate").startswith("Bearer")
            assert json.loads(answer)["errors"][0].startswith("missing or wrong bearer token")
    connection = guarded.connect()
    assert call(connection, "GET", "/healthz")[0] == 200  # open: the load balancer's probe
    connection.close()


def test_with_auth_off_no_token_is_needed(served: Served) -> None:
    assert ask(served, "POST", "/v1/predict", {"query": "SHOW CATALOGS"})[0] == 200
    assert scrape(served.running)


def test_the_token_comes_from_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("QUERY_PREDICTOR_TOKEN", raising=False)
    assert ServeSettings().token() is None
    monkeypatch.setenv("QUERY_PREDICTOR_TOKEN", " from-env\n")
    assert ServeSettings().token() == b"from-env"
    (tmp_path / "token").write_text("from-file\n")
    assert ServeSettings(token_file=str(tmp_path / "token")).token() == b"from-file"
    missing = tmp_path / "absent"
    assert main(["serve", "--port", "0", "--token-file", str(missing)]) == 2
    assert capsys.readouterr().err == (
        f"query-predictor serve: error: --token-file {missing}: No such file or directory\n"
    )


def test_the_resource_estimate_is_the_statements_resource_bands(served: Served) -> None:
    """Off by default; on, a statement whose template or tables have history gets Trino's
    X-Trino-Resource-Estimate: the p90 CPU and memory of its resource bands (a statement the
    model does not score costs nothing and gets none)."""
    lookup = served.predictor.featurizer.history
    running = serve_app(served.predictor, router={"resource_estimate": True})
    bases = set()
    try:
        rows = [*served.test_rows.head(60).iter_rows(named=True)]
        rows.append({**rows[0], "query": "SELECT x FROM never.seen.before"})
        for row in rows:
            route = gateway_request(row["query"], context_of(row))
            connection = running.connect()
            status, answer, _ = call(connection, "POST", "/v1/route", *route)
            connection.close()
            assert status == 200
            plain = ask(served, "POST", "/v1/route", route[0], **route[1])[1]
            assert RESOURCE_ESTIMATE not in plain["externalHeaders"]
            estimate = answer["externalHeaders"].get(RESOURCE_ESTIMATE)
            features = served.predictor.featurizer.featurize(row["query"], context_of(row))
            bands = resource_bands(
                lookup, user=row["user"], template=features.template, tables=features.tables
            )
            bases.add(bands.basis)
            decided = served.predictor.predict(row["query"], context_of(row))
            assert decided.bands == (bands if decided.stage == "model" else None)
            if decided.stage == "model" and bands.basis in ("template", "table"):
                assert estimate == (
                    f"CPU_TIME={bands.cpu_seconds_p90:.0f}s,"
                    f"PEAK_MEMORY={bands.peak_memory_gib_p90 * 2**30:.0f}B"
                )
            else:
                assert estimate is None
    finally:
        running.stop()
    assert "template" in bases
    assert bases - {"template", "table"}  # the unseen statement: no estimate


def test_past_max_connections_a_request_gets_a_503(served: Served) -> None:
    running = serve_app(served.predictor, settings={"max_connections": 5})
    idle = [socket.create_connection(running.address) for _ in range(5)]
    try:
        time.sleep(0.2)
        connection = running.connect()
        connection.request("GET", "/healthz")
        assert connection.getresponse().status == 503
        connection.close()
        for sock in idle:
            sock.close()
        time.sleep(0.2)
        assert ask_running(running, "GET", "/healthz") == 200
    finally:
        running.stop()


def ask_running(running: Running, method: str, path: str, body: Any = None) -> int:
    connection = running.connect()
    status = call(connection, method, path, body)[0]
    connection.close()
    return status


def test_a_reload_under_load_fails_no_request(served: Served, tmp_path: Path) -> None:
    """Clients route without pause while the app loads another bundle (in a thread) and
    swaps it in: every request gets a 200 and the answers switch to the new version."""
    import asyncio
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(served.bundle, bundle)
    running = serve_app(served.predictor, bundle)
    metadata = json.loads((bundle / "metadata.json").read_text())
    # another export of the same files: a new name, so a new version (the hashes still hold)
    (bundle / "metadata.json").write_text(json.dumps(metadata | {"name": "next-classifier"}))
    stop = threading.Event()
    requests = [
        gateway_request(r["query"], context_of(r))
        for r in served.test_rows.head(30).iter_rows(named=True)
    ]

    def hammer() -> tuple[int, list[int], set[str]]:
        connection, statuses, versions, n = running.connect(), [], set(), 0
        while not stop.is_set():
            status, _, response = call(
                connection, "POST", "/v1/route", *requests[n % len(requests)]
            )
            statuses.append(status)
            versions.add(response.getheader(f"{HEADER_PREFIX}Model-Version"))
            n += 1
        connection.close()
        return n, statuses, versions

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(hammer) for _ in range(4)]
            time.sleep(0.3)
            loop = running.server.servers[0].get_loop() if running.server.servers else None
            assert loop is not None
            assert asyncio.run_coroutine_threadsafe(running.app.reload(), loop).result(30)
            time.sleep(0.3)
            stop.set()
            results = [f.result() for f in futures]
    finally:
        running.stop()
    statuses = [s for _, batch, _ in results for s in batch]
    versions = set().union(*(v for _, _, v in results))
    assert len(statuses) > 100
    assert set(statuses) == {200}
    sha = served.predictor.version.split("@")[1]
    assert versions == {served.predictor.version, f"next-classifier@{sha}"}
    # the new bundle's predictor keeps its own texts, from none, as many as the old one may
    reloaded = running.app.router.predictor
    assert reloaded.cache is not served.predictor.cache
    assert reloaded.statement_cache == served.predictor.statement_cache
    assert reloaded.cache.hits + reloaded.cache.misses < sum(n for n, _, _ in results)


def test_a_bundle_changed_while_the_first_load_ran_is_served_once_serving(
    served: Served, tmp_path: Path
) -> None:
    """A worker ignores SIGHUP until it serves; the reload it missed happens at startup."""
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(served.bundle, bundle)
    metadata = json.loads((bundle / "metadata.json").read_text())
    (bundle / "metadata.json").write_text(json.dumps(metadata | {"name": "next-classifier"}))
    running = serve_app(served.predictor, bundle)  # loaded before the change
    try:
        sha = served.predictor.version.split("@")[1]
        deadline = time.monotonic() + 30
        while running.app.router.predictor.version != f"next-classifier@{sha}":
            assert time.monotonic() < deadline, "the missed reload did not happen"
            time.sleep(0.05)
    finally:
        running.stop()
    unchanged = serve_app(served.predictor, served.bundle)  # same bundle: nothing to reload
    try:
        time.sleep(0.3)
        assert unchanged.app._reloading is None
    finally:
        unchanged.stop()


def test_an_answer_leaves_in_one_write() -> None:
    """The writes of one event-loop turn (uvicorn's head, then body) reach the socket as one
    ``write``, in order; a close passes on what was gathered first."""
    import asyncio

    from query_predictor.service.protocol import CoalescingTransport

    class Recording(asyncio.Transport):
        def __init__(self) -> None:
            super().__init__()
            self.writes: list[bytes] = []
            self.closed = False

        def write(self, data: bytes) -> None:
            self.writes.append(bytes(data))

        def close(self) -> None:
            self.closed = True

        def is_closing(self) -> bool:
            return self.closed

        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return f"info {name}"

    async def exchange() -> Recording:
        real = Recording()
        transport = CoalescingTransport(real, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b"{}")
        assert real.writes == []  # not before the end of this turn
        await asyncio.sleep(0)
        assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
        transport.write(b"HTTP/1.1 413 \r\n\r\n")
        transport.close()
        assert transport.get_extra_info("peername") == "info peername"
        return real

    real = asyncio.run(exchange())
    assert real.writes[1:] == [b"HTTP/1.1 413 \r\n\r\n"] and real.closed


def test_the_decision_tag_is_appended_to_the_clients_tags_or_off(served: Served) -> None:
    """The gateway forwards the client's X-Trino-Client-Tags; the answer sets it to those
    tags, unchanged and in order, then the decision's tag. Off, no X-Trino-Client-Tags at
    all (the client's header then reaches Trino as the client sent it)."""
    off = serve_app(served.predictor, router={"decision_tag": False})
    on = serve_app(served.predictor)
    try:
        for row in served.test_rows.head(20).iter_rows(named=True):
            own = ["team:growth", "dashboard=7;x"]
            route = gateway_request(row["query"], context_of(row), own)
            assert route[1][CLIENT_TAGS_HEADER] == "team:growth,dashboard=7;x"
            connection = on.connect()
            status, answer, _ = call(connection, "POST", "/v1/route", *route)
            connection.close()
            assert status == 200
            expected = expected_route(served, row["query"], context_of(row))
            tag = expected["externalHeaders"][CLIENT_TAGS_HEADER]
            tags = answer["externalHeaders"][CLIENT_TAGS_HEADER]
            assert tags == f"team:growth,dashboard=7;x,{tag}"
            decision, status = find_decision(tags.split(","))
            assert status == "tagged" and decision is not None
            heavy = answer["routingGroup"] == HEAVY
            assert (decision.heavy, decision.version) == (heavy, served.predictor.version)
            connection = off.connect()
            _, plain, _ = call(connection, "POST", "/v1/route", *route)
            connection.close()
            assert CLIENT_TAGS_HEADER not in plain["externalHeaders"]
            assert plain["routingGroup"] == answer["routingGroup"]
        samples, quiet = scrape(on), scrape(off)
    finally:
        on.stop()
        off.stop()
    assert samples["query_predictor_decision_tags_total", (("client_tags", "appended"),)] == 20
    assert quiet["query_predictor_decision_tags_total", (("client_tags", "appended"),)] == 0
    assert quiet["query_predictor_decision_tags_total", (("client_tags", "alone"),)] == 0


@pytest.mark.parametrize(("flags", "tagged"), [([], True), (["--no-decision-tag"], False)])
def test_serve_tags_by_default_and_the_flag_turns_it_off(flags: list[str], tagged: bool) -> None:
    args = build_parser().parse_args(["serve", "--models", "m", *flags])
    given = {k: v for k, v in vars(args).items() if v is not None}
    assert given.get("decision_tag", ServeSettings().decision_tag) is tagged


SETTLED_WORKER = """
import asyncio, gc, sys, weakref
from query_predictor.service.server import ServeSettings, build_app

app = build_app(ServeSettings(models=sys.argv[1]), settle_heap=True)
first = weakref.ref(app.router.predictor)

async def startup_then_reload():
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    async def receive():
        return messages.pop(0)
    async def send(message):
        pass
    await app({"type": "lifespan"}, receive, send)
    frozen = gc.get_freeze_count()
    assert await app.reload()
    return frozen

frozen = asyncio.run(startup_then_reload())
print(frozen, gc.get_freeze_count(), first() is None)
"""


def test_a_worker_hides_its_bundle_from_the_garbage_collector(served: Served) -> None:
    """A serving process collects once and freezes what it holds when the bundle is loaded
    (startup, and again after a reload, when the previous bundle is collected): later
    collections then walk only what requests allocate."""
    done = subprocess.run(
        [sys.executable, "-c", SETTLED_WORKER, str(served.bundle)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    at_startup, after_reload, released = done.stdout.split()
    assert int(at_startup) > 10_000 and int(after_reload) > 10_000
    assert released == "True"  # the first bundle did not stay frozen in memory
