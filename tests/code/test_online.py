"""Online metrics: decision tags read back from the log, judged, and compared with replay."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from query_predictor.core.client_tags import Decision, find_decision, format_tag
from query_predictor.service.predictor import Predictor
from query_predictor.synth.online import simulate_tags, without_history
from query_predictor.training.featurize import contexts_of
from query_predictor.training.online import online_metrics, with_simulated_tags

from .test_serving import built, predictor  # noqa: F401 (fixtures)

JUDGE = dict(cost_fn=100.0, cost_fp=1.0, min_recall=0.98, max_fnr=0.02)


@pytest.fixture(scope="module")
def window(built) -> pl.DataFrame:  # noqa: F811
    _, splits = built
    return pl.concat([splits["val"], splits["test"]]).sort("create_time", "query_id")


def judged(frame: pl.DataFrame, predictor: Predictor):  # noqa: F811
    answers = predictor.predict_many(frame["query"].to_list(), contexts_of(frame))
    return answers, online_metrics(frame, answers, version=predictor.version, **JUDGE)


def test_tags_of_the_same_bundle_agree_and_judge_as_replay(
    window: pl.DataFrame,
    predictor: Predictor,  # noqa: F811
) -> None:
    tags, counts = simulate_tags(window, predictor, skew_share=0.0, seed=1)
    assert counts["tagged"] == window.height and counts["skewed"] == 0
    log, joined = with_simulated_tags(window, tags)
    assert joined == {"joined": window.height, "kept_own": 0}
    for before, after in zip(window["client_tags"], log["client_tags"], strict=True):
        assert after.to_list()[:-1] == (before.to_list() if before is not None else [])
    answers, result = judged(log, predictor)
    online = result.section
    assert online is not None
    assert online["tags"] == {"tagged": window.height, "untagged": 0, "malformed": 0,
                              "conflicting": 0}  # fmt: skip
    assert (online["agreement"], online["disagreeing"]) == (1.0, 0)
    assert result.disagreements.is_empty()
    labels = log["is_heavy"].to_numpy()
    heavy = labels.sum()
    assert online["recall"] == pytest.approx((answers.heavy & labels).sum() / heavy)
    assert online["routed_share"] == pytest.approx(answers.heavy.mean())
    fn, fp = (~answers.heavy & labels).sum(), (answers.heavy & ~labels).sum()
    assert online["expected_cost"] == pytest.approx((100 * fn + fp) / labels.size)
    assert online["offline_on_tagged"] == {
        k: online[k] for k in online["offline_on_tagged"]
    }  # the same decisions, the same figures
    assert list(online["versions"]) == [predictor.version]


def test_a_planted_skew_is_found_and_only_there(
    window: pl.DataFrame,
    predictor: Predictor,  # noqa: F811
) -> None:
    tags, counts = simulate_tags(window, predictor, skew_share=0.5, seed=3)
    assert 0 < counts["skewed"] < window.height
    log, _ = with_simulated_tags(window, tags)
    answers, result = judged(log, predictor)
    skewed = without_history(predictor).predict_many(log["query"].to_list(), contexts_of(log))
    differs = set(log.filter(pl.Series(skewed.heavy != answers.heavy))["query_id"])
    found = set(result.disagreements["query_id"])
    assert found, "the stale history flips no decision: the planted skew shows nothing"
    assert found <= differs  # only planted rows, and only where the skew changes the decision
    online = result.section
    assert online["disagreeing"] == len(found)
    assert online["agreement"] == pytest.approx(1 - len(found) / window.height)
    row = result.disagreements.row(0, named=True)
    assert row["online_heavy"] != row["offline_heavy"]
    assert find_decision(row["client_tags"].split(","))[0].heavy == row["online_heavy"]


def test_other_tags_malformed_conflicting_and_unknown_versions_are_counted(
    window: pl.DataFrame,
    predictor: Predictor,  # noqa: F811
) -> None:
    frame = window.head(60)
    answers = predictor.predict_many(frame["query"].to_list(), contexts_of(frame))
    version = predictor.version
    tags: list[list[str] | None] = []
    for i in range(frame.height):
        mine = format_tag(Decision(bool(answers.heavy[i]), 0.5, version))
        kind = i % 6
        if kind == 0:
            tags.append(["team:growth", mine, "adhoc"])
        elif kind == 1:  # an older bundle, routing everything heavy
            tags.append([format_tag(Decision(True, 0.9, "old-model@000000000000")), "x"])
        elif kind == 2:
            tags.append(["qp=heavy;p=lots;v=" + version])
        elif kind == 3:
            tags.append([mine, format_tag(Decision(not answers.heavy[i], 0.5, version))])
        elif kind == 4:
            tags.append(None)
        else:  # the current version, decided the other way: a disagreement
            tags.append([format_tag(Decision(not answers.heavy[i], 0.5, version))])
    log = frame.with_columns(client_tags=pl.Series(tags, dtype=pl.List(pl.String)))
    result = online_metrics(log, answers, version=version, **JUDGE)
    online = result.section
    assert online["tags"] == {"tagged": 30, "untagged": 10, "malformed": 10, "conflicting": 10}
    assert online["compared"] == 20 and online["other_version_rows"] == 10
    assert online["disagreeing"] == 10 and online["agreement"] == 0.5
    old = online["versions"]["old-model@000000000000"]
    assert (old["rows"], old["routed_share"], old["current"]) == (10, 1.0, False)
    assert online["versions"][version]["rows"] == 20
    expected = set(frame["query_id"].to_numpy()[np.arange(frame.height) % 6 == 5])
    assert set(result.disagreements["query_id"]) == expected


def test_a_log_without_decision_tags_has_no_online_section(
    window: pl.DataFrame,
    predictor: Predictor,  # noqa: F811
) -> None:
    answers = predictor.predict_many(window["query"].to_list(), contexts_of(window))
    result = online_metrics(window.drop("client_tags"), answers, version="m@1", **JUDGE)
    assert result.section is None and "no client_tags column" in result.reason
    nulls = window.with_columns(client_tags=pl.lit(None, dtype=pl.List(pl.String)))
    assert online_metrics(nulls, answers, version="m@1", **JUDGE).section is None
    untagged = window.with_columns(client_tags=pl.lit(["adhoc"], dtype=pl.List(pl.String)))
    result = online_metrics(untagged, answers, version="m@1", **JUDGE)
    assert result.section is None and "no row of the window carries a decision tag" in result.reason


def test_simulated_tags_never_replace_a_decision_the_log_carries(
    window: pl.DataFrame,
    predictor: Predictor,  # noqa: F811
) -> None:
    real = "qp=heavy;p=0.99;v=prod@123456789abc"
    log = window.with_columns(
        client_tags=pl.when(pl.int_range(pl.len()) % 2 == 0)
        .then(pl.lit([real], dtype=pl.List(pl.String)))
        .otherwise(pl.col("client_tags"))
    )
    tags, counts = simulate_tags(log, predictor, skew_share=0.0, seed=1)
    assert counts["already_tagged"] == (window.height + 1) // 2
    assert tags.height == window.height - counts["already_tagged"]
    everything = tags.vstack(
        log.select("query_id", pl.lit(["qp=light;p=0;v=sim@1"]).alias("client_tags"))
    )  # a simulation that would tag every row
    merged, joined = with_simulated_tags(log, everything.unique("query_id", keep="first"))
    kept = merged.filter(pl.col("client_tags").list.contains(real))
    assert kept.height == counts["already_tagged"] == joined["kept_own"]
