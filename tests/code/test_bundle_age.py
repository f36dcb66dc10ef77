"""A bundle's age is not an input: the same statement served with the same bundle a day or a
month after the history's cutoff gets the same features, unless the history says otherwise."""

from __future__ import annotations

import datetime as dt

import polars as pl

from query_predictor.core.featurizer import FEATURE_NAMES
from query_predictor.core.history import HISTORY_NAMES, HistoryLookup
from query_predictor.service.predictor import MODEL, Predictor
from query_predictor.training.featurize import context_of, history_block
from query_predictor.training.history import snapshot

from .test_history import START, WEIGHT, make_history, served_block
from .test_serving import built, predictor  # noqa: F401 (fixtures)

# Features about the query's own arrival time, not about the bundle: the scan estimate
# multiplies a table's size per day by the days read, which run to the arrival day
OWN_TIME = {"day_of_week", "hour_of_day", "date_lookback_days", "scan_estimate_gib_log"}


def served_on(predictor: Predictor, row: dict, day: dt.date):  # noqa: F811
    """``row`` served ``day`` at the hour it really arrived."""
    when = dt.datetime.combine(day, row["create_time"].time(), tzinfo=dt.UTC)
    return predictor.featurizer.featurize(row["query"], context_of(row | {"create_time": when}))


def test_the_same_statement_a_day_and_a_month_after_the_cutoff(built, predictor) -> None:  # noqa: F811
    _, splits = built
    cutoff = predictor.featurizer.history.cutoff
    rows = list(splits["test"].iter_rows(named=True))
    scored = [r for r in rows if predictor.predict(r["query"], context_of(r)).stage == MODEL]
    assert len(scored) > 50
    history = [n for n in HISTORY_NAMES if n not in OWN_TIME]
    at = [FEATURE_NAMES.index(n) for n in history]
    seen_templates = 0
    for row in scored:
        day_1 = served_on(predictor, row, cutoff + dt.timedelta(days=1))
        day_30 = served_on(predictor, row, cutoff + dt.timedelta(days=30))
        assert [day_1.dense[i] for i in at] == [day_30.dense[i] for i in at]
        differ = {
            n for n, a, b in zip(FEATURE_NAMES, day_1.dense, day_30.dense, strict=True) if a != b
        }
        assert differ <= OWN_TIME, differ
        assert (day_1.tfidf_index, day_1.tfidf_value) == (day_30.tfidf_index, day_30.tfidf_value)
        seen_templates += day_1.dense[FEATURE_NAMES.index("template_unseen")] == 0.0
    assert seen_templates > 10  # the history has something to say about these statements


def test_the_history_says_otherwise_when_it_covers_the_days_between() -> None:
    """In training the history runs to the day before each row: a template that stopped
    running is idle longer, and runs fewer times a day, a month later, because the history
    saw the quiet days. A refreshed snapshot says the same in serving."""
    history = make_history(days=5)
    last = START + dt.timedelta(days=4)
    rows = history.tail(3).with_columns(event_date=pl.lit(last + dt.timedelta(days=1)))
    later = rows.with_columns(event_date=pl.lit(last + dt.timedelta(days=30)))
    soon, month = (history_block(r, history, weight=WEIGHT) for r in (rows, later))
    col = {n: i for i, n in enumerate(HISTORY_NAMES)}
    idle, count = col["template_idle_days"], col["template_daily_count_log"]
    assert (month[:, idle] > soon[:, idle]).all()
    assert (month[:, count] < soon[:, count]).all()
    for frame, block in ((rows, soon), (later, month)):
        until = frame["event_date"][0] - dt.timedelta(days=1)
        lookup = HistoryLookup.from_frame(snapshot(history, until=until), weight=WEIGHT)
        assert lookup.cutoff == until
        assert served_block(lookup, frame) == block.tolist()
