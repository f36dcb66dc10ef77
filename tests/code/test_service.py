"""The HTTP service: the real server on a free port of 127.0.0.1, serving a real bundle, asked
by a real HTTP client. It routes as :meth:`Predictor.predict` decides, answers malformed
requests with a JSON error naming the problem, and keeps connections alive."""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.client
import json
import logging
import re
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from query_predictor.cli import main
from query_predictor.core.features import QueryContext
from query_predictor.service.predictor import ZERO_COST, Predictor
from query_predictor.service.server import (
    ACCESS_LOG,
    HEADER_PREFIX,
    MAX_BODY_BYTES,
    NO_SQL,
    Router,
    ServiceServer,
    gateway_request,
    session_properties,
)
from query_predictor.training.featurize import context_of

from .test_serving import build_bundle

HEAVY, LIGHT = "etl-heavy", "adhoc"


@dataclasses.dataclass(frozen=True)
class Served:
    predictor: Predictor
    server: ServiceServer
    test_rows: pl.DataFrame

    def connect(self) -> http.client.HTTPConnection:
        host, port = self.server.server_address[:2]
        return http.client.HTTPConnection(host, port, timeout=10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The service on 127.0.0.1, any free port, answering in a thread of this process."""
    directory = tmp_path_factory.mktemp("bundle")
    splits = build_bundle(directory)
    predictor = Predictor.from_bundle(directory)
    server = ServiceServer(("127.0.0.1", 0), Router(predictor, HEAVY, LIGHT))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(predictor, server, splits["test"])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


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


def at_now(context: QueryContext) -> QueryContext:
    """``context`` at the time the service gives a request: now."""
    return dataclasses.replace(context, time=dt.datetime.now(dt.UTC))


def expected_route(served: Served, sql: str, context: QueryContext) -> dict[str, Any]:
    """What /v1/route must answer: the predictor's own decision for ``sql`` in ``context``."""
    prediction = served.predictor.predict(sql, at_now(context))
    return {
        "routingGroup": HEAVY if prediction.heavy else LIGHT,
        "errors": [],
        "externalHeaders": {
            f"{HEADER_PREFIX}Heavy": "true" if prediction.heavy else "false",
            f"{HEADER_PREFIX}Probability": repr(prediction.probability),
            f"{HEADER_PREFIX}Stage": prediction.stage,
            f"{HEADER_PREFIX}Category": prediction.category,
            f"{HEADER_PREFIX}Model-Version": prediction.model_version,
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


@pytest.mark.parametrize(
    "body",
    [
        {"trinoQueryProperties": None},
        {"trinoQueryProperties": {"body": ""}},
        {"trinoQueryProperties": {"body": "  \n"}, "trinoRequestUser": {"user": "alice"}},
        {},
    ],
)
def test_a_request_without_sql_is_routed_light_and_says_why(served: Served, body) -> None:
    status, answer = ask(served, "POST", "/v1/route", body)
    assert status == 200
    assert answer == {"routingGroup": LIGHT, "errors": [NO_SQL], "externalHeaders": {}}


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
        assert answer == served.predictor.predict(row["query"], at_now(context)).as_dict()


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


def test_a_body_over_the_limit_is_a_413(served: Served) -> None:
    """The body is read and dropped, so the connection stays usable."""
    connection = served.connect()
    sql = "SELECT " + "x" * MAX_BODY_BYTES
    status, answer, response = call(
        connection, "POST", "/v1/route", {"trinoQueryProperties": {"body": sql}}
    )
    assert status == 413
    assert answer["errors"][0].endswith(f"the limit is {MAX_BODY_BYTES:,}")
    assert response.getheader("Connection") is None
    assert call(connection, "GET", "/healthz")[0] == 200
    connection.close()


def test_a_body_too_large_to_drop_closes_the_connection(served: Served) -> None:
    """Only the headers are sent: the service answers without waiting for a gigabyte."""
    connection = served.connect()
    connection.putrequest("POST", "/v1/route")
    connection.putheader("Content-Length", str(1 << 30))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413
    assert response.getheader("Connection") == "close"
    assert json.loads(response.read())["errors"][0].startswith("the body has 1,073,741,824 bytes")
    connection.close()


@pytest.mark.parametrize("length", ["-1", "many"])
def test_a_bad_content_length_is_a_400(served: Served, length: str) -> None:
    connection = served.connect()
    connection.putrequest("POST", "/v1/route")
    connection.putheader("Content-Length", length)
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 400
    assert response.getheader("Connection") == "close"
    assert json.loads(response.read()) == {"errors": [f"Content-Length {length!r} is not a size"]}
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


def test_an_unexpected_failure_is_a_500_without_a_traceback(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """A bundle whose metadata has a threshold that is not a number fails at the first
    answer; the client gets a short JSON error, the log gets the traceback."""
    model = served.predictor.model
    broken = dataclasses.replace(
        served.predictor,
        model=dataclasses.replace(model, metadata=model.metadata | {"threshold": "high"}),
    )
    server = ServiceServer(("127.0.0.1", 0), Router(broken))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        connection = http.client.HTTPConnection(host, port, timeout=10)
        with caplog.at_level(logging.ERROR, logger="query_predictor.service.server"):
            status, answer, _ = call(
                connection, "POST", "/v1/route", {"trinoQueryProperties": {"body": "SHOW CATALOGS"}}
            )
        connection.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert status == 500
    assert answer == {"errors": ["internal error; the service's log has the details"]}
    assert "Traceback" not in json.dumps(answer)
    [record] = caplog.records
    assert record.exc_info is not None
    assert record.getMessage() == "POST /v1/route failed"


def test_a_client_that_expects_100_continue_gets_it_before_the_body(served: Served) -> None:
    body = json.dumps({"trinoQueryProperties": {"body": "SHOW CATALOGS"}}).encode()
    head = (
        f"POST /v1/route HTTP/1.1\r\nHost: service\r\nContent-Length: {len(body)}\r\n"
        "Expect: 100-continue\r\n\r\n"
    )
    with socket.create_connection(served.server.server_address[:2], timeout=2) as connection:
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


def test_the_access_log_has_each_request_line(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOG.name):
        ask(served, "GET", "/healthz")
    [record] = [r for r in caplog.records if r.name == ACCESS_LOG.name]
    assert record.getMessage() == '127.0.0.1 "GET /healthz HTTP/1.1" 200 -'
