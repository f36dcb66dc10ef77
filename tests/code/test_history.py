"""Historical features: the one formula, point-in-time statistics and the serving snapshot."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from query_predictor.core.errors import EmptyWindowError
from query_predictor.core.history import (
    EMPTY,
    HISTORY_NAMES,
    RECENCY_HORIZON_DAYS,
    RECENT_DAYS,
    STATS_COLUMNS,
    Z90,
    HistoryLookup,
    Stats,
    history_days,
    history_features,
    table_mode_key,
)
from query_predictor.training.featurize import history_block
from query_predictor.training.history import global_prior, point_in_time, snapshot

WEIGHT = 20.0
DAY = 20_240  # days since 1970-01-01 of the query being featurized
PRIOR = Stats(
    n=1000.0,
    heavy=100.0,
    cpu_mean=2.0,
    cpu_sd=1.0,
    memory_mean=0.5,
    memory_sd=0.25,
    last_day=DAY - 1,  # the history's cutoff: the day before the query, as in training
    first_day=DAY - 10,  # ... and its start: 10 days of history
)
SPAN = 10.0
PRIOR_RATE = 0.1
PRIOR_CPU_P90 = 2.0 + Z90 * 1.0
PRIOR_MEMORY_P90 = 0.5 + Z90 * 0.25
COL = {name: i for i, name in enumerate(HISTORY_NAMES)}


def features(
    user: Stats | None = None,
    template: Stats | None = None,
    tables: list[Stats | None] | None = None,
    *,
    prior: Stats = PRIOR,
    weight: float = WEIGHT,
    modes: list[Stats | None] | None = None,
    source: Stats | None = None,
) -> dict[str, float]:
    values = history_features(
        user, template, tables or [], prior=prior, weight=weight, modes=modes or [], source=source
    )
    assert len(values) == len(HISTORY_NAMES) == 24
    return dict(zip(HISTORY_NAMES, values, strict=True))


# --------------------------------------------------------------------------- the formula


def test_names() -> None:
    assert len(HISTORY_NAMES) == len(set(HISTORY_NAMES)) == 24
    assert Stats._fields == STATS_COLUMNS


def test_unseen_keys_take_the_prior() -> None:
    f = features(None, None, [None])
    expected_key = {
        "daily_count_log": 0.0,
        "heavy_rate": PRIOR_RATE,
        "cpu_p90_log": PRIOR_CPU_P90,
        "memory_p90_log": PRIOR_MEMORY_P90,
    }
    for family in ("user", "template"):
        for stat, value in expected_key.items():
            assert f[f"{family}_{stat}"] == pytest.approx(value, rel=1e-15)
        assert f[f"{family}_unseen"] == 1.0
    assert f["user_cpu_p50_log"] == pytest.approx(2.0, rel=1e-15)
    assert f["template_idle_days"] == RECENCY_HORIZON_DAYS == 14.0
    assert f["table_daily_count_log_max"] == 0.0
    assert f["table_heavy_rate_max"] == pytest.approx(PRIOR_RATE, rel=1e-15)
    assert f["table_cpu_p90_log_max"] == pytest.approx(PRIOR_CPU_P90, rel=1e-15)
    assert f["table_memory_p90_log_max"] == pytest.approx(PRIOR_MEMORY_P90, rel=1e-15)
    assert f["table_unseen_share"] == 1.0


def test_empty_stats_are_unseen_like_none() -> None:
    assert features(EMPTY, EMPTY, [EMPTY]) == features(None, None, [None])
    zero = Stats(0.0, 0.0, 5.0, 5.0, 5.0, 5.0, DAY - 1.0)  # n = 0: the rest is ignored
    assert features(zero, zero, [zero]) == features(None, None, [None])


def test_no_tables_gives_zeros_and_the_prior() -> None:
    f = features(None, None, [])
    assert f["table_daily_count_log_max"] == 0.0
    assert f["table_heavy_rate_max"] == pytest.approx(PRIOR_RATE, rel=1e-15)
    assert f["table_cpu_p90_log_max"] == pytest.approx(PRIOR_CPU_P90, rel=1e-15)
    assert f["table_memory_p90_log_max"] == pytest.approx(PRIOR_MEMORY_P90, rel=1e-15)
    assert f["table_unseen_share"] == 0.0


def test_seen_key_by_hand() -> None:
    user = Stats(
        n=10.0,
        heavy=4.0,
        cpu_mean=3.0,
        cpu_sd=0.5,
        memory_mean=1.0,
        memory_sd=0.2,
        last_day=DAY - 3,
    )
    f = features(user, user, [user])
    rate = (4.0 + WEIGHT * PRIOR_RATE) / (10.0 + WEIGHT)
    cpu_mean = (10 * 3.0 + WEIGHT * 2.0) / 30
    cpu_sd = (10 * 0.5 + WEIGHT * 1.0) / 30
    memory_mean = (10 * 1.0 + WEIGHT * 0.5) / 30
    memory_sd = (10 * 0.2 + WEIGHT * 0.25) / 30
    assert rate == pytest.approx(0.2)
    assert f["user_daily_count_log"] == math.log1p(10.0 / SPAN)
    assert f["user_heavy_rate"] == pytest.approx(rate, rel=1e-15)
    assert f["user_cpu_p50_log"] == pytest.approx(cpu_mean, rel=1e-15)
    assert f["user_cpu_p90_log"] == pytest.approx(cpu_mean + Z90 * cpu_sd, rel=1e-15)
    assert f["user_memory_p90_log"] == pytest.approx(memory_mean + Z90 * memory_sd, rel=1e-15)
    assert f["user_unseen"] == 0.0
    assert f["template_daily_count_log"] == f["user_daily_count_log"]
    assert f["template_heavy_rate"] == f["user_heavy_rate"]
    assert f["template_cpu_p90_log"] == f["user_cpu_p90_log"]
    assert f["template_memory_p90_log"] == f["user_memory_p90_log"]
    assert f["template_idle_days"] == 2.0  # last ran DAY - 3, the history ends DAY - 1
    assert f["template_unseen"] == 0.0
    assert f["table_daily_count_log_max"] == f["user_daily_count_log"]
    assert f["table_heavy_rate_max"] == f["user_heavy_rate"]
    assert f["table_unseen_share"] == 0.0


def test_without_shrinkage_the_key_speaks_for_itself() -> None:
    # params require history_prior_weight > 0; with 0 every key must be seen (no 0 / 0)
    user = Stats(8.0, 2.0, 1.5, 0.4, 0.7, 0.1, DAY - 1.0)
    f = features(user, user, [user], weight=0.0, modes=[user], source=user)
    assert f["user_heavy_rate"] == 0.25
    assert f["user_cpu_p50_log"] == 1.5
    assert f["user_cpu_p90_log"] == pytest.approx(1.5 + Z90 * 0.4, rel=1e-15)
    assert f["user_memory_p90_log"] == pytest.approx(0.7 + Z90 * 0.1, rel=1e-15)


@pytest.mark.parametrize("n", [1.0, 10.0, 1e3, 1e6, 1e9, 1e12])
def test_smoothing_moves_from_the_prior_to_the_key(n: float) -> None:
    heavy_share, cpu = 0.9, 6.0
    user = Stats(n, heavy_share * n, cpu, 0.0, 0.0, 0.0, DAY - 1.0)
    f = features(user)
    share = n / (n + WEIGHT)
    assert f["user_heavy_rate"] == pytest.approx(
        share * heavy_share + (1 - share) * PRIOR_RATE, rel=1e-12
    )
    assert f["user_cpu_p50_log"] == pytest.approx(share * cpu + (1 - share) * 2.0, rel=1e-12)
    # always between the prior and the key's own value
    assert PRIOR_RATE < f["user_heavy_rate"] <= heavy_share
    assert 2.0 < f["user_cpu_p50_log"] <= cpu


def test_smoothing_limits() -> None:
    tiny = features(Stats(1e-12, 1e-12, 9.0, 9.0, 9.0, 9.0, DAY - 1.0))
    assert tiny["user_heavy_rate"] == pytest.approx(PRIOR_RATE, rel=1e-9)
    assert tiny["user_cpu_p90_log"] == pytest.approx(PRIOR_CPU_P90, rel=1e-9)
    huge = features(Stats(1e15, 3e14, 9.0, 1.0, 4.0, 0.5, DAY - 1.0))
    assert huge["user_heavy_rate"] == pytest.approx(0.3, rel=1e-9)
    assert huge["user_cpu_p50_log"] == pytest.approx(9.0, rel=1e-9)
    assert huge["user_cpu_p90_log"] == pytest.approx(9.0 + Z90 * 1.0, rel=1e-9)
    assert huge["user_memory_p90_log"] == pytest.approx(4.0 + Z90 * 0.5, rel=1e-9)


@pytest.mark.parametrize(
    ("last_day", "idle"),
    [
        (DAY - 1, 0.0),  # ran on the history's last day
        (DAY - 8, 7.0),
        (DAY + 5, 0.0),  # inconsistent stats: never negative
        (DAY - 15, 14.0),
        (DAY - 16, 14.0),  # capped at the horizon
        (DAY - 10_000, 14.0),
    ],
)
def test_template_idle_days_count_back_from_the_cutoff(last_day: int, idle: float) -> None:
    template = Stats(3.0, 0.0, 1.0, 0.0, 1.0, 0.0, float(last_day))
    assert features(template=template)["template_idle_days"] == idle


def test_unseen_template_is_idle_for_the_whole_horizon_even_with_last_day_set() -> None:
    template = Stats(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, DAY - 1.0)
    assert features(template=template)["template_idle_days"] == RECENCY_HORIZON_DAYS


@pytest.mark.parametrize(
    ("first_day", "last_day", "days"), [(10, 19, 10.0), (10, 10, 1.0), (0, -1, 1.0), (5, 3, 1.0)]
)
def test_history_days_is_first_to_cutoff_inclusive(first_day: int, last_day: int, days: float):
    prior = PRIOR._replace(first_day=float(first_day), last_day=float(last_day))
    assert history_days(prior) == days


def test_counts_are_per_day_of_history() -> None:
    """A key that ran 3 times a day has the same count feature over 10 days or 40 days."""
    short = features(Stats(30.0, 0.0, 1.0, 0.0, 1.0, 0.0, DAY - 1.0))
    long_prior = PRIOR._replace(first_day=DAY - 40.0)
    long = features(Stats(120.0, 0.0, 1.0, 0.0, 1.0, 0.0, DAY - 1.0), prior=long_prior)
    assert short["user_daily_count_log"] == long["user_daily_count_log"] == math.log1p(3.0)


def test_tables_take_the_max_and_the_unseen_share() -> None:
    big = Stats(500.0, 1.0, 1.0, 0.1, 0.2, 0.1, DAY - 1.0)  # many queries, rarely heavy
    slow = Stats(4.0, 4.0, 8.0, 2.0, 3.0, 1.0, DAY - 1.0)  # few queries, all heavy and slow
    tables: list[Stats | None] = [big, None, slow, None]
    f = features(tables=tables)
    one = {
        id(s): features(tables=[s]) for s in (big, slow)
    }  # each table alone: share 0, max = itself
    assert f["table_daily_count_log_max"] == math.log1p(500.0 / SPAN)
    assert f["table_heavy_rate_max"] == one[id(slow)]["table_heavy_rate_max"]
    assert f["table_cpu_p90_log_max"] == one[id(slow)]["table_cpu_p90_log_max"]
    assert f["table_memory_p90_log_max"] == one[id(slow)]["table_memory_p90_log_max"]
    assert f["table_unseen_share"] == 0.5
    # an unseen table brings the prior into the max
    quiet = Stats(1e9, 0.0, 0.0, 0.0, 0.0, 0.0, DAY - 1.0)
    assert features(tables=[quiet])["table_heavy_rate_max"] < PRIOR_RATE
    assert features(tables=[quiet, None])["table_heavy_rate_max"] == pytest.approx(PRIOR_RATE)


@pytest.mark.parametrize(
    ("unseen", "seen", "share"), [(0, 1, 0.0), (1, 0, 1.0), (1, 2, 1 / 3), (3, 1, 0.75)]
)
def test_table_unseen_share(unseen: int, seen: int, share: float) -> None:
    s = Stats(2.0, 1.0, 1.0, 1.0, 1.0, 1.0, DAY - 1.0)
    tables: list[Stats | None] = [None] * unseen + [s] * seen
    assert features(tables=tables)["table_unseen_share"] == pytest.approx(share, rel=1e-15)


def test_table_order_does_not_matter() -> None:
    a = Stats(3.0, 1.0, 2.0, 0.5, 1.0, 0.1, DAY - 2.0)
    b = Stats(30.0, 0.0, 5.0, 0.1, 0.1, 0.9, DAY - 1.0)
    assert features(tables=[a, None, b]) == features(tables=[b, a, None])


def test_an_empty_prior_gives_zero_rates() -> None:
    f = features(None, None, [None], prior=EMPTY)
    assert f["user_heavy_rate"] == f["template_heavy_rate"] == f["table_heavy_rate_max"] == 0.0
    assert all(math.isfinite(v) for v in f.values())


finite = st.floats(0.0, 50.0, allow_nan=False)
counts = st.floats(0.0, 1e9, allow_nan=False)


@st.composite
def stats(draw: Any) -> Stats:
    n = draw(counts)
    heavy = draw(st.floats(0.0, 1.0)) * n
    last_day = float(draw(st.integers(-1, DAY + 10)))
    return Stats(n, heavy, draw(finite), draw(finite), draw(finite), draw(finite), last_day)


@settings(max_examples=300, deadline=None)
@given(
    user=st.none() | stats(),
    template=st.none() | stats(),
    tables=st.lists(st.none() | stats(), max_size=5),
    prior=stats(),
    weight=st.floats(0.5, 1000.0),
)
def test_features_are_finite_and_bounded(
    user: Stats | None,
    template: Stats | None,
    tables: list[Stats | None],
    prior: Stats,
    weight: float,
) -> None:
    f = features(user, template, tables, prior=prior, weight=weight)
    assert all(math.isfinite(v) for v in f.values())
    for name in ("user_heavy_rate", "template_heavy_rate", "table_heavy_rate_max"):
        assert -1e-12 <= f[name] <= 1.0 + 1e-12
    for name in ("user_unseen", "template_unseen"):
        assert f[name] in (0.0, 1.0)
    assert 0.0 <= f["table_unseen_share"] <= 1.0
    assert 0.0 <= f["template_idle_days"] <= RECENCY_HORIZON_DAYS
    assert f["user_cpu_p90_log"] >= f["user_cpu_p50_log"]
    assert f["user_unseen"] == float(user is None or user.n == 0)


# --------------------------------------------------------------------------- history frames

START = dt.date(2025, 6, 1)
USERS = ["alice", "bob", "carol", None]
TEMPLATES = ["t_daily", "t_adhoc", "t_export"]
TABLES = ["hive.sales.orders", "hive.sales.items", "iceberg.mart.daily"]
SCHEMA = {
    "query_id": pl.String,
    "event_date": pl.Date,
    "user": pl.String,
    "template": pl.String,
    "tables": pl.List(pl.String),
    "is_heavy": pl.Boolean,
    "cpu_time_millis": pl.Int64,
    "peak_memory_bytes": pl.Int64,
    "source": pl.String,
    "physical_input_bytes": pl.Int64,
    "partition": pl.Float32,
    "days_read": pl.Float64,
    "data_read": pl.Boolean,
}
SOURCES = ["superset", "airflow", None]


def served_block(lookup: HistoryLookup, rows: pl.DataFrame) -> list[list[float]]:
    """What serving's lookup gives each of ``rows`` (history rows with ``days_read``): the
    rows of the block training computes for them, when the two agree."""
    return [
        lookup.features(
            user=r["user"],
            template=r["template"],
            tables=r["tables"],
            source=r["source"],
            partition_filtered=r["partition"] > 0,
            days=r["days_read"],
        )
        for r in rows.iter_rows(named=True)
    ]


def make_history(days: int = 5, per_day: int = 9, seed: int = 3) -> pl.DataFrame:
    """Several users, templates and tables over ``days`` days; some rows without tables."""
    rng = np.random.default_rng(seed)
    more = np.random.default_rng(seed + 1)  # the cold-start columns, not moving the others
    span = np.random.default_rng(seed + 2)  # days read, moving neither
    rows = []
    for d in range(days):
        for i in range(per_day):
            cpu = int(rng.lognormal(np.log(20_000), 2.0))
            picked = [t for t in TABLES if rng.random() < 0.45]
            rows.append(
                {
                    "query_id": f"q{d}_{i}",
                    "event_date": START + dt.timedelta(days=d),
                    "user": USERS[int(rng.integers(len(USERS)))],
                    "template": TEMPLATES[int(rng.integers(len(TEMPLATES)))],
                    "tables": picked,
                    "is_heavy": cpu >= 300_000 or rng.random() < 0.1,
                    "cpu_time_millis": cpu,
                    "peak_memory_bytes": int(rng.lognormal(np.log(2**28), 1.5)),
                    "source": SOURCES[int(more.integers(len(SOURCES)))],
                    "physical_input_bytes": (
                        None if more.random() < 0.2 else int(more.lognormal(np.log(2**32), 2))
                    ),
                    "partition": float(more.random() < 0.5),
                    "days_read": float(span.choice([1, 1, 3, 7, 30])),
                }
            )
    return pl.DataFrame(rows, schema=SCHEMA)


@pytest.fixture(scope="module")
def history() -> pl.DataFrame:
    frame = make_history()
    assert frame["user"].null_count() > 0
    assert (frame["tables"].list.len() == 0).any()
    assert frame["is_heavy"].any()
    return frame


def day_of(date: dt.date) -> int:
    return (date - dt.date(1970, 1, 1)).days


def matches(record: dict[str, Any], kind: str, key: str) -> bool:
    if kind == "user":
        return (record["user"] or "") == key
    if kind == "template":
        return record["template"] == key
    if kind == "table":
        return key in record["tables"]
    if kind == "source":
        return (record["source"] or "") == key
    if kind == "table_mode":
        mode = table_mode_key("", record["partition"] > 0)
        if key == mode:  # any table: the queries reading one table, bytes known
            return len(record["tables"]) == 1 and record["physical_input_bytes"] is not None
        return key in [table_mode_key(t, record["partition"] > 0) for t in record["tables"]]
    return True  # global


def reference(records: list[dict], kind: str, key: str, before: dt.date) -> Stats | None:
    """Statistics of ``key`` over ``records`` strictly before ``before``, the slow way."""
    chosen = [r for r in records if r["event_date"] < before and matches(r, kind, key)]
    if not chosen:
        return None
    # the last RECENT_DAYS days up to the cutoff, the day before ``before``
    recent = [r for r in chosen if (before - r["event_date"]).days <= RECENT_DAYS]
    x = np.log1p(np.array([r["cpu_time_millis"] for r in chosen]) / 1000.0)
    # sizes: the queries that read one table alone and report their bytes
    sized = [r for r in chosen if len(r["tables"]) == 1 and r["physical_input_bytes"] is not None]
    gib = np.array([r["physical_input_bytes"] for r in sized], dtype=float) / 2**30
    per_day = gib / np.array([max(1.0, r["days_read"]) for r in sized])
    y = np.log1p(np.array([r["peak_memory_bytes"] for r in chosen]) / 2**30)
    return Stats(
        float(len(chosen)),
        float(sum(r["is_heavy"] for r in chosen)),
        float(x.mean()),
        float(x.std()),
        float(y.mean()),
        float(y.std()),
        # the global row's last day is the history's cutoff, whether or not a query ran then
        float(
            day_of(before) - 1 if kind == "global" else max(day_of(r["event_date"]) for r in chosen)
        ),
        float(min(day_of(r["event_date"]) for r in chosen)),
        float(np.log1p(np.array([r["physical_input_bytes"] or 0 for r in chosen]) / 2**30).mean()),
        float(len(recent)),
        float(np.log1p(np.array([r["cpu_time_millis"] for r in recent]) / 1000.0).mean())
        if recent
        else 0.0,
        float(len(sized)),
        float(np.log1p(per_day).mean()) if sized else 0.0,
        float(np.log1p(gib).mean()) if sized else 0.0,
        float(np.log1p(gib).max()) if sized else 0.0,
    )


def assert_stats_close(got: Stats | None, want: Stats | None) -> None:
    if want is None:
        assert got is None
        return
    assert got is not None
    assert got.n == want.n
    assert got.heavy == want.heavy
    assert got.last_day == want.last_day
    assert got.first_day == want.first_day
    assert got.cpu_mean == pytest.approx(want.cpu_mean, rel=1e-12)
    assert got.memory_mean == pytest.approx(want.memory_mean, rel=1e-12)
    assert got.cpu_sd == pytest.approx(want.cpu_sd, rel=1e-6, abs=1e-6)
    assert got.memory_sd == pytest.approx(want.memory_sd, rel=1e-6, abs=1e-6)
    assert got.bytes_mean == pytest.approx(want.bytes_mean, rel=1e-12)
    assert got.recent_n == want.recent_n
    assert got.recent_cpu_mean == pytest.approx(want.recent_cpu_mean, rel=1e-9, abs=1e-12)
    assert got.size_n == want.size_n
    assert got.size_day_mean == pytest.approx(want.size_day_mean, rel=1e-12, abs=1e-15)
    assert got.size_read_mean == pytest.approx(want.size_read_mean, rel=1e-12, abs=1e-15)
    assert got.size_max == pytest.approx(want.size_max, rel=1e-12, abs=1e-15)


# --------------------------------------------------------------------------- point in time


def test_point_in_time_sees_only_earlier_days(history: pl.DataFrame) -> None:
    records = history.to_dicts()
    rows = history.sample(fraction=1.0, shuffle=True, seed=0)  # any row order
    out = point_in_time(rows, history)
    assert len(out) == rows.height
    for record, (user, template, tables, prior, modes, source, size) in zip(
        rows.to_dicts(), out, strict=True
    ):
        day = record["event_date"]
        any_table = table_mode_key("", record["partition"] > 0)
        assert_stats_close(size, reference(records, "table_mode", any_table, day))
        assert_stats_close(user, reference(records, "user", record["user"] or "", day))
        assert_stats_close(source, reference(records, "source", record["source"] or "", day))
        for table, stats in zip(record["tables"], modes, strict=True):
            key = table_mode_key(table, record["partition"] > 0)
            assert_stats_close(stats, reference(records, "table_mode", key, day))
        assert_stats_close(template, reference(records, "template", record["template"], day))
        assert len(tables) == len(record["tables"])
        for table, stats in zip(record["tables"], tables, strict=True):
            assert_stats_close(stats, reference(records, "table", table, day))
        assert_stats_close(prior, reference(records, "global", "*", day) or EMPTY)
        earlier = sum(r["event_date"] < day for r in records)
        assert prior.n == earlier


def test_count_is_the_number_of_earlier_rows_of_the_key(history: pl.DataFrame) -> None:
    out = point_in_time(history, history)
    for i, record in enumerate(history.to_dicts()):
        same_user = history.filter(
            (pl.col("user").fill_null("") == (record["user"] or ""))
            & (pl.col("event_date") < record["event_date"])
        ).height
        user = out[i][0]
        assert (user.n if user is not None else 0) == same_user


def test_rows_on_the_first_day_are_unseen(history: pl.DataFrame) -> None:
    first = history.filter(pl.col("event_date") == START)
    assert first.height > 0
    for user, template, tables, prior, *_ in point_in_time(first, history):
        assert user is None
        assert template is None
        assert all(t is None for t in tables)
        assert prior == EMPTY
    block = history_block(first, history, weight=WEIGHT)
    assert (block[:, COL["user_unseen"]] == 1.0).all()
    assert (block[:, COL["template_unseen"]] == 1.0).all()
    assert (block[:, COL["user_daily_count_log"]] == 0.0).all()
    assert np.isfinite(block).all()


def test_a_row_after_the_history_sees_all_of_it(history: pl.DataFrame) -> None:
    later = history.head(6).with_columns(event_date=pl.lit(START + dt.timedelta(days=30)))
    records = history.to_dicts()
    for record, (user, template, _, prior, *_) in zip(
        later.to_dicts(), point_in_time(later, history), strict=True
    ):
        assert prior.n == history.height
        assert_stats_close(user, reference(records, "user", record["user"] or "", dt.date.max))
        assert_stats_close(
            template, reference(records, "template", record["template"], dt.date.max)
        )


def test_until_hides_later_days_the_history_holds(history: pl.DataFrame) -> None:
    """A test row scored with the bundle's snapshot: the history runs on past ``until``, and
    the row sees none of it (the featurize stage keeps later days for the test split)."""
    until = START + dt.timedelta(days=2)
    later = history.head(6).with_columns(event_date=pl.lit(START + dt.timedelta(days=30)))
    records = history.to_dicts()
    cut = until + dt.timedelta(days=1)
    for record, (user, template, _, prior, *_) in zip(
        later.to_dicts(), point_in_time(later, history, until=until), strict=True
    ):
        assert prior.n == sum(r["event_date"] <= until for r in records) < history.height
        assert prior.last_day == day_of(until)
        assert_stats_close(user, reference(records, "user", record["user"] or "", cut))
        assert_stats_close(template, reference(records, "template", record["template"], cut))


def test_unknown_keys_are_unseen(history: pl.DataFrame) -> None:
    rows = pl.DataFrame(
        [
            {
                "event_date": START + dt.timedelta(days=9),
                "user": "nobody",
                "template": "t_never",
                "tables": ["hive.sales.orders", "hive.x.never"],
            }
        ],
        schema={k: SCHEMA[k] for k in ("event_date", "user", "template", "tables")},
    )
    ((user, template, tables, prior, *_),) = point_in_time(rows, history)
    assert user is None
    assert template is None
    assert tables[0] is not None
    assert tables[1] is None
    assert prior.n == history.height


def test_history_block_shape(history: pl.DataFrame) -> None:
    block = history_block(history, history, weight=WEIGHT)
    assert block.shape == (history.height, 24)
    assert block.dtype == np.float64
    assert np.isfinite(block).all()
    assert history_block(history.head(0), history, weight=WEIGHT).shape == (0, 24)


# --------------------------------------------------------------------------- leakage


def perturb(history: pl.DataFrame, index: int, change: str) -> pl.DataFrame:
    row = pl.int_range(pl.len()) == index
    if change == "label":
        return history.with_columns(
            is_heavy=pl.when(row).then(~pl.col("is_heavy")).otherwise(pl.col("is_heavy"))
        )
    if change == "cpu":
        return history.with_columns(
            cpu_time_millis=pl.when(row)
            .then(pl.col("cpu_time_millis") * 1000 + 3_600_000)
            .otherwise(pl.col("cpu_time_millis"))
        )
    if change == "memory":
        return history.with_columns(
            peak_memory_bytes=pl.when(row)
            .then(pl.col("peak_memory_bytes") + 500 * 2**30)
            .otherwise(pl.col("peak_memory_bytes"))
        )
    raise AssertionError(change)


# the user feature each change must move for later rows of the same user
MOVED = {"label": "user_heavy_rate", "cpu": "user_cpu_p50_log", "memory": "user_memory_p90_log"}


def pick(history: pl.DataFrame, day: int) -> int:
    """A row on ``START + day`` whose (non-null) user has rows on later days, if any."""
    date = START + dt.timedelta(days=day)
    records = history.to_dicts()
    for i, r in enumerate(records):
        later = any(s["user"] == r["user"] and s["event_date"] > date for s in records)
        if r["event_date"] == date and r["user"] is not None and (day == 4 or later):
            return i
    raise AssertionError(f"no row to perturb on day {day}")


@pytest.mark.parametrize("change", ["label", "cpu", "memory"])
@pytest.mark.parametrize("day", [0, 1, 2, 3, 4])
def test_no_leakage(history: pl.DataFrame, day: int, change: str) -> None:
    index = pick(history, day)
    target = history.row(index, named=True)
    # rows to featurize: every history row, plus rows two days after the history ends
    future = history.with_columns(event_date=pl.lit(START + dt.timedelta(days=6)))
    rows = pl.concat([history, future])
    before = history_block(rows, history, weight=WEIGHT)
    after = history_block(rows, perturb(history, index, change), weight=WEIGHT)
    dates = rows["event_date"].to_list()
    same_day_or_earlier = np.array([d <= target["event_date"] for d in dates])
    np.testing.assert_array_equal(before[same_day_or_earlier], after[same_day_or_earlier])
    later_same_user = np.array(
        [
            d > target["event_date"] and u == target["user"]
            for d, u in zip(dates, rows["user"], strict=True)
        ]
    )
    assert later_same_user.any()  # at least the future copies
    col = COL[MOVED[change]]
    assert (before[later_same_user, col] != after[later_same_user, col]).all()
    # and only later rows move at all
    moved = (before != after).any(axis=1)
    assert not moved[same_day_or_earlier].any()


def test_the_global_prior_is_point_in_time(history: pl.DataFrame) -> None:
    index = pick(history, 2)
    flipped = perturb(history, index, "label")
    for (_, _, _, prior, *_), (_, _, _, prior2, *_), date in zip(
        point_in_time(history, history),
        point_in_time(history, flipped),
        history["event_date"],
        strict=True,
    ):
        if date <= START + dt.timedelta(days=2):
            assert prior == prior2
        else:
            assert abs(prior.heavy - prior2.heavy) == 1.0
    for d in range(1, 6):
        date = START + dt.timedelta(days=d)
        rows = history.head(1).with_columns(event_date=pl.lit(date))
        ((_, _, _, prior, *_),) = point_in_time(rows, history)
        assert prior == global_prior(history, until=date - dt.timedelta(days=1))


# --------------------------------------------------------------------------- snapshot


def test_snapshot_contents(history: pl.DataFrame) -> None:
    until = START + dt.timedelta(days=2)
    snap = snapshot(history, until=until)
    assert snap.columns == ["kind", "key", *STATS_COLUMNS]
    assert snap.equals(snap.sort("kind", "key"))
    window = history.filter(pl.col("event_date") <= until)
    keys = {kind: set(snap.filter(pl.col("kind") == kind)["key"]) for kind in snap["kind"]}
    assert keys["global"] == {"*"}
    assert keys["user"] == {u or "" for u in window["user"]}
    assert "" in keys["user"]  # the null user is a key of its own
    assert keys["template"] == set(window["template"])
    assert keys["table"] == {t for ts in window["tables"] for t in ts}
    assert global_prior(history, until=until).n == window.height
    assert snap.filter(pl.col("kind") == "global")["last_day"][0] == day_of(until)


def test_snapshot_before_any_history(history: pl.DataFrame) -> None:
    before = START - dt.timedelta(days=1)
    assert snapshot(history, until=before).is_empty()
    with pytest.raises(EmptyWindowError, match=f"no labeled query on or before {before}.*splits"):
        global_prior(history, until=before)


def probes(snap: pl.DataFrame, date: dt.date) -> pl.DataFrame:
    """One row per snapshot key on ``date``, asking for that key alone."""
    rows = []
    for kind, key in snap.select("kind", "key").iter_rows():
        rows.append(
            {
                "event_date": date,
                "user": key if kind == "user" else "__nobody__",
                "source": key if kind == "source" else "__nowhere__",
                "template": key if kind == "template" else "__none__",
                "tables": [key.split("\t")[0]] if kind in ("table", "table_mode") else [],
                "partition": float(kind == "table_mode" and key.endswith("\tp")),
            }
        )
    columns = ("event_date", "user", "source", "template", "tables", "partition")
    return pl.DataFrame(rows, schema={k: SCHEMA[k] for k in columns})


@pytest.mark.parametrize("day", [0, 1, 2, 3, 4])
def test_snapshot_equals_point_in_time_on_the_next_day(history: pl.DataFrame, day: int) -> None:
    """The equivalence the parity check relies on: serving's snapshot at the end of day D is
    exactly what training gives a row on day D + 1, key by key."""
    until = START + dt.timedelta(days=day)
    snap = snapshot(history, until=until)
    rows = probes(snap, until + dt.timedelta(days=1))
    out = point_in_time(rows, history)  # the whole history, later days included
    for (kind, _key, *values), (user, template, tables, prior, modes, source, _) in zip(
        snap.iter_rows(), out, strict=True
    ):
        want = Stats(*values)
        got = {
            "user": user,
            "source": source,
            "template": template,
            "table": tables[0] if tables else None,
            "table_mode": modes[0] if modes else None,
        }.get(kind, prior)
        assert got == want, kind  # exactly equal, not approximately


@pytest.mark.parametrize("day", [0, 2, 4])
def test_lookup_on_the_snapshot_equals_history_block(
    history: pl.DataFrame, day: int, tmp_path: Path
) -> None:
    until = START + dt.timedelta(days=day)
    snap = snapshot(history, until=until)
    path = tmp_path / "history_stats.parquet"
    snap.write_parquet(path)
    lookup = HistoryLookup.from_parquet(path, weight=WEIGHT)
    rows = pl.concat([history, make_history(days=1, seed=9)]).with_columns(
        event_date=pl.lit(until + dt.timedelta(days=1))
    )
    block = history_block(rows, history, weight=WEIGHT)
    assert served_block(lookup, rows) == block.tolist()


def test_lookup_needs_the_global_prior(history: pl.DataFrame) -> None:
    snap = snapshot(history, until=START + dt.timedelta(days=4))
    with pytest.raises(ValueError, match=r"no global prior row \(kind 'global', key '\*'\)"):
        HistoryLookup.from_frame(snap.filter(pl.col("kind") != "global"), weight=WEIGHT)


def test_lookup_from_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "history_stats.parquet"
    path.write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="cannot read the history snapshot"):
        HistoryLookup.from_parquet(path, weight=WEIGHT)
    with pytest.raises(ValueError, match="cannot read the history snapshot"):
        HistoryLookup.from_parquet(tmp_path / "absent.parquet", weight=WEIGHT)


# --------------------------------------------------------------------------- cold start


def test_cold_start_features_read_the_tables_the_way_the_query_does() -> None:
    """A never-seen template is judged by its tables read the same way (with or without a
    partition predicate), their size, their growth and its client's habits."""
    # one table: cheap when filtered on its partition column, heavy when scanned whole
    whole = Stats(50.0, 40.0, 6.0, 0.5, 2.0, 0.5, DAY - 1.0, DAY - 9.0, 5.0, 10.0, 7.0)
    pruned = Stats(50.0, 0.0, 1.0, 0.5, 0.1, 0.1, DAY - 1.0, DAY - 9.0, 0.5, 10.0, 1.0)
    table = Stats(100.0, 40.0, 3.5, 2.6, 1.0, 1.0, DAY - 1.0, DAY - 9.0, 2.7, 20.0, 4.0)
    source = Stats(200.0, 60.0, 4.0, 1.0, 1.0, 0.5, DAY - 1.0, DAY - 9.0)
    full = features(None, None, [table], modes=[whole], source=source)
    filtered = features(None, None, [table], modes=[pruned], source=source)
    assert full["table_mode_heavy_rate_max"] > 0.5 > filtered["table_mode_heavy_rate_max"]
    assert full["table_mode_cpu_p90_log_max"] > filtered["table_mode_cpu_p90_log_max"]
    # what does not depend on the way it is read is the same
    for name in ("table_scan_gib_log_max", "table_growth_log_max", "source_heavy_rate"):
        assert full[name] == filtered[name]
    # growth: recent mean 4.0 over the whole history's 3.5, shrunk by the prior weight
    assert full["table_growth_log_max"] == pytest.approx(20 * 0.5 / (20 + WEIGHT))
    assert full["table_scan_gib_log_max"] == pytest.approx((100 * 2.7) / (100 + WEIGHT))
    assert full["source_heavy_rate"] == pytest.approx((60 + WEIGHT * PRIOR_RATE) / (200 + WEIGHT))
    # unknown tables and client: the prior's values, no growth
    cold = features(None, None, [None], modes=[None], source=None)
    assert cold["table_growth_log_max"] == 0.0
    assert cold["source_heavy_rate"] == pytest.approx(PRIOR_RATE)
    assert cold["table_mode_heavy_rate_max"] == pytest.approx(PRIOR_RATE)


def sized(n: float, per_day: float = 0.0, per_read: float = 0.0, largest: float = 0.0) -> Stats:
    """A table's (mode's) statistics with ``n`` single-table reads of these log sizes."""
    return Stats(
        n,
        0.0,
        1.0,
        0.5,
        0.1,
        0.1,
        DAY - 1.0,
        DAY - 9.0,
        size_n=n,
        size_day_mean=per_day,
        size_read_mean=per_read,
        size_max=largest,
    )


def test_scan_estimate_is_size_per_day_times_days_read_or_the_whole_table() -> None:
    """A statement's expected scan: each table's GiB per day of data times the days read when
    it filters on the partition column, the whole table (its largest read) when it does not
    or when the table is never read by day; a table the history never saw counts as a
    typical one (the prior), one it saw only joined to others as nothing; summed over the
    tables."""
    fact = sized(1e12, largest=math.log1p(3000.0))  # any read: 3 TiB at most
    fact_by_day = sized(1e12, per_day=math.log1p(10.0))  # 10 GiB a day
    dim = sized(1e12, largest=math.log1p(2.0))  # a 2 GiB table, never read by day
    prior = sized(500.0, per_day=math.log1p(1.0), per_read=math.log1p(50.0))

    def scan(
        tables: list[Stats | None], modes: list[Stats | None], partition: bool, days: float
    ) -> float:
        values = history_features(
            None,
            None,
            tables,
            prior=PRIOR,
            weight=WEIGHT,
            modes=modes,
            size_prior=prior,
            partition_filtered=partition,
            days=days,
        )
        return math.expm1(values[COL["scan_estimate_gib_log"]])

    assert scan([fact], [fact_by_day], True, 1.0) == pytest.approx(10.0, rel=1e-6)
    assert scan([fact], [fact_by_day], True, 30.0) == pytest.approx(300.0, rel=1e-6)
    assert scan([fact], [None], False, 30.0) == pytest.approx(3000.0, rel=1e-9)  # whole
    # joined to a dimension table: that one is read whole, whatever the days
    assert scan([fact, dim], [fact_by_day, None], True, 7.0) == pytest.approx(72.0, rel=1e-6)
    assert scan([dim], [None], False, 7.0) == pytest.approx(2.0, rel=1e-9)
    # never read at all: a typical table read this way
    assert scan([None], [None], True, 7.0) == pytest.approx(7.0, rel=1e-9)
    assert scan([None], [None], False, 7.0) == pytest.approx(50.0, rel=1e-9)
    # read 40 times, always joined to others (a lookup table): no size of its own to add
    joined = sized(40.0)._replace(size_n=0.0)
    assert scan([fact, joined], [fact_by_day, None], True, 7.0) == pytest.approx(70.0, rel=1e-6)
    assert scan([joined], [None], False, 7.0) == 0.0
    # a few reads by day weigh as much as their count against the prior's pseudo-reads
    few = sized(WEIGHT, per_day=math.log1p(10.0))
    half = math.expm1(math.log1p(10.0) / 2 + math.log1p(1.0) / 2)
    assert scan([fact], [few], True, 1.0) == pytest.approx(half, rel=1e-9)
    assert scan([], [], True, 7.0) == 0.0  # no table read
    # a log without physical_input_bytes knows no size: 0, as table_scan_gib_log_max
    unsized = features(None, None, [None], modes=[None])
    assert unsized["scan_estimate_gib_log"] == 0.0


def test_scan_sizes_come_from_single_table_reads() -> None:
    """A join's bytes cannot be split among its tables: only a query reading the data of one
    table sizes it, per day of data with a partition predicate and per read without one."""
    day = START + dt.timedelta(days=1)
    rows = [
        # table a, filtered, 8 GiB over 4 days and 2 GiB over 1 day: 2 GiB a day both times
        ("a", 8 * 2**30, 1.0, 4.0, True),
        ("a", 2 * 2**30, 1.0, 1.0, True),
        ("a", 100 * 2**30, 0.0, 1.0, True),  # scanned whole
        ("a", None, 1.0, 1.0, True),  # bytes unknown: not a size
        ("a", 0, 1.0, 1.0, False),  # SHOW COLUMNS FROM a: reads nothing of it, not a size
        ("a", 0, 0.0, 1.0, None),  # not known whether it read data: a size (of 0 bytes)
    ]
    records = [
        {
            "query_id": f"q{i}",
            "event_date": START,
            "user": "u",
            "template": "t",
            "tables": [t],
            "is_heavy": False,
            "cpu_time_millis": 1000,
            "peak_memory_bytes": 2**20,
            "source": None,
            "physical_input_bytes": b,
            "partition": p,
            "days_read": d,
            "data_read": r,
        }
        for i, (t, b, p, d, r) in enumerate(rows)
    ]
    records.append(
        {**records[0], "query_id": "join", "tables": ["a", "b"], "physical_input_bytes": 2**40}
    )
    history = pl.DataFrame(records, schema=SCHEMA)
    probe = history.head(2).with_columns(event_date=pl.lit(day), partition=pl.Series([1.0, 0.0]))
    (*_, filtered_modes, _, filtered_size), (*_, whole_modes, _, whole_size) = point_in_time(
        probe, history
    )
    (a_filtered,) = filtered_modes
    (a_whole,) = whole_modes
    (a_any,) = point_in_time(probe, history)[0][2]  # the table's reads, either way
    assert a_any.size_n == 4.0
    assert a_any.size_max == pytest.approx(math.log1p(100.0))  # its largest single read
    assert a_filtered.n == 5.0  # the join, the unknown bytes, the SHOW count as reads ...
    assert a_filtered.size_n == 2.0  # ... but not as sizes
    assert a_filtered.size_day_mean == pytest.approx(math.log1p(2.0))
    assert a_whole.size_n == 2.0
    assert a_whole.size_read_mean == pytest.approx(math.log1p(100.0) / 2)
    assert filtered_size.size_n == 2.0  # any table: the same single-table reads
    assert whole_size.size_read_mean == pytest.approx(math.log1p(100.0) / 2)
