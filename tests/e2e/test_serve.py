"""The installed ``query-predictor serve`` on the bundle a real ``dvc repro`` wrote: it says
where it listens, routes a statement of the test split as the bundle decides, and stops
cleanly on SIGTERM."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import urllib.request

import polars as pl
import pytest

from query_predictor.core.client_tags import CLIENT_TAGS_HEADER, Decision, format_tag
from query_predictor.service.predictor import Predictor
from query_predictor.service.routing import decision_headers, gateway_request
from query_predictor.training.featurize import context_of

from .conftest import FirstRun
from .project import serving

pytestmark = pytest.mark.slow


def test_serve_routes_and_stops_on_sigterm(first_run: FirstRun) -> None:
    row = pl.read_parquet(first_run.path / "data" / "splits" / "test.parquet").row(0, named=True)
    context = context_of(row)
    body, headers = gateway_request(row["query"], context)
    with serving(first_run.path) as (address, version):
        request = urllib.request.Request(
            f"{address}/v1/route",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **headers},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())

    predictor = Predictor.from_bundle(first_run.path / "models")
    now = dataclasses.replace(context, time=dt.datetime.now(dt.UTC))
    expected = predictor.predict(row["query"], now)
    assert version == predictor.version
    assert answer == {
        "routingGroup": "heavy" if expected.heavy else "adhoc",
        "errors": [],
        "externalHeaders": decision_headers(expected)
        | {
            CLIENT_TAGS_HEADER: format_tag(
                Decision(expected.heavy, expected.probability, version, expected.stage)
            )
        },
    }
    assert expected.stage == "model"
