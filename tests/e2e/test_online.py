"""Online metrics end to end: the installed ``serve`` on the bundle a real ``dvc repro`` wrote
tags gateway requests; a log of those queries carrying the tags it sent gives replay's online
section, and a planted skew among them is found and written out. The first run's own
``metrics/replay.json`` has the section its ``simulate_online`` stage made possible."""

from __future__ import annotations

import datetime as dt
import json
import urllib.request

import numpy as np
import polars as pl
import pytest

from query_predictor.core.client_tags import (
    CLIENT_TAGS_HEADER,
    Decision,
    find_decision,
    format_tag,
    split_header,
)
from query_predictor.core.featurizer import FEATURE_NAMES
from query_predictor.service.predictor import Predictor
from query_predictor.service.routing import gateway_request
from query_predictor.training.featurize import context_of, contexts_of
from query_predictor.training.model import load_features
from query_predictor.training.replay import Reference, replay

from .conftest import FirstRun
from .project import serving

pytestmark = pytest.mark.slow
ROWS = 40
PLANTED = 5  # rows whose tag says the other decision: a service that decided otherwise
JUDGE = dict(min_recall=0.98, max_fnr=0.02, cost_fn=100.0, cost_fp=1.0)


def route(address: str, row: dict, tags: list[str]) -> tuple[dt.datetime, dict]:
    """One gateway call for ``row`` sent now by a client with ``tags``: (when, answer)."""
    sent = dt.datetime.now(dt.UTC)
    body, headers = gateway_request(row["query"], context_of(row), tags)
    request = urllib.request.Request(
        f"{address}/v1/route",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return sent, json.loads(response.read())


def test_tags_the_service_sent_come_back_as_online_metrics(first_run: FirstRun) -> None:
    test_rows = pl.read_parquet(first_run.path / "data" / "splits" / "test.parquet")
    heavy = test_rows.filter(pl.col("is_heavy")).head(8)
    rows = pl.concat([heavy, test_rows.filter(~pl.col("is_heavy")).head(ROWS - heavy.height)])
    assert heavy.height and rows.height == ROWS
    sent, tags = [], []
    with serving(first_run.path) as (address, version):
        for i, row in enumerate(rows.iter_rows(named=True)):
            own = ["team:growth", f"job={i}"] if i % 2 else []
            when, answer = route(address, row, own)
            header = answer["externalHeaders"][CLIENT_TAGS_HEADER]
            got = split_header([header])
            assert got[:-1] == own  # appended to the client's tags, which stay as sent
            decision, status = find_decision(got)
            assert status == "tagged" and decision is not None
            assert decision.heavy == (answer["routingGroup"] == "heavy")
            assert decision.version == version
            sent.append(when)
            tags.append(got)
    # the log Trino would write: the queries at the time they were routed, with the tags the
    # gateway forwarded; the first PLANTED rows carry the opposite decision instead
    for i in range(PLANTED):
        decision = find_decision(tags[i])[0]
        flipped = Decision(not decision.heavy, decision.probability, version, decision.stage)
        tags[i] = [*tags[i][:-1], format_tag(flipped)]
    tags[PLANTED] = [*tags[PLANTED][:-1], "qp=heavy;p=;v=" + version]  # malformed
    tags[PLANTED + 1] = [format_tag(Decision(True, 0.5, "older@000000000000"))]
    log = rows.with_columns(
        create_time=pl.Series(sent, dtype=pl.Datetime("us", "UTC")),
        client_tags=pl.Series(tags, dtype=pl.List(pl.String)),
    )

    predictor = Predictor.from_bundle(first_run.path / "models")
    test = first_run.path / "data" / "features" / "test.parquet"
    x, y = load_features(test, n_terms=len(predictor.featurizer.vocabulary))
    scores, _ = predictor.model.predict(x)
    dense = x[:, : len(FEATURE_NAMES)].toarray().astype(np.float32)
    result = replay(
        log,
        predictor,
        Reference(dense, scores, float(np.mean(y))),
        bins=10,
        psi_alert=0.25,
        min_queries=100,
        cost_ratio_alert=1.5,
        new_user_heavy_share=0.05,
        **JUDGE,
    )
    online = result.metrics["online"]
    assert online["tags"] == {"tagged": ROWS - 1, "untagged": 0, "malformed": 1,
                              "conflicting": 0}  # fmt: skip
    assert online["compared"] == ROWS - 2 and online["other_version_rows"] == 1
    assert online["disagreeing"] == PLANTED
    assert online["agreement"] == pytest.approx(1 - PLANTED / (ROWS - 2))
    planted = set(rows["query_id"].head(PLANTED))
    assert set(result.online.disagreements["query_id"]) == planted
    assert set(online["versions"]) == {version, "older@000000000000"}
    # the service's own decisions, at the time it took them, are the replay's
    answers = predictor.predict_many(log["query"].to_list(), contexts_of(log))
    kept = log["query_id"].is_in(list(planted)).not_().to_numpy()
    online_heavy = np.array([bool(d and d.heavy) for d, _ in map(find_decision, tags)])
    mine = kept & (np.arange(ROWS) != PLANTED) & (np.arange(ROWS) != PLANTED + 1)
    assert (online_heavy[mine] == answers.heavy[mine]).all()


def test_the_pipeline_reports_the_simulated_deployment(first_run: FirstRun) -> None:
    """The tiny pipeline's simulate_online stage tagged its replay window with the exported
    bundle (a share of it with a stale history); replay read the tags back."""
    metrics = json.loads((first_run.path / "metrics" / "replay.json").read_text())
    online = metrics["online"]
    assert online["tags"]["tagged"] == online["rows"] == metrics["counts"]["rows"]
    assert online["tags"]["malformed"] == online["tags"]["conflicting"] == 0
    assert online["compared"] == online["rows"] and online["other_version_rows"] == 0
    assert list(online["versions"]) == [online["current_version"]]
    written = pl.read_parquet(first_run.path / "data" / "replay" / "online_disagreements.parquet")
    assert written.height == online["disagreeing"]
    assert online["agreement"] == pytest.approx(1 - online["disagreeing"] / online["compared"])
    simulated = pl.read_parquet(first_run.path / "data" / "online" / "client_tags.parquet")
    assert simulated.height == online["rows"]
    assert "Running stage 'simulate_online'" in first_run.stdout
