"""Workload changes against the history snapshot: cost growth by table, new users' heavy share,
and a steady workload (whatever its template mix) that shows neither."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from query_predictor.core.history import HistoryLookup
from query_predictor.training.drift import workload_changes
from query_predictor.training.history import snapshot

START = dt.date(2025, 6, 1)
# template -> (tables, median CPU seconds)
TEMPLATES = {
    "scan_orders": (["hive.sales.orders"], 120.0),
    "join_orders": (["hive.sales.orders", "hive.dim.region"], 400.0),
    "count_orders": (["hive.sales.orders"], 2.0),
    "clicks": (["iceberg.web.clicks"], 30.0),
    "region": (["hive.dim.region"], 0.5),
}
USERS = ["ana", "ben", "eve", "svc_bi"]
ALERTS = {"min_queries": 100, "cost_ratio_alert": 1.5, "new_user_heavy_share": 0.05}


def queries(
    n: int,
    *,
    seed: int,
    day: dt.date,
    growth: dict[str, float] | None = None,
    weights: dict[str, float] | None = None,
    users: list[str] = USERS,
) -> pl.DataFrame:
    """``n`` queries; a template's CPU is multiplied by ``growth`` of the first table it
    reads, templates drawn by ``weights`` (uniform by default)."""
    rng = np.random.default_rng(seed)
    names = list(TEMPLATES)
    p = np.array([(weights or {}).get(t, 1.0) for t in names])
    picks = rng.choice(len(names), size=n, p=p / p.sum())
    rows = []
    for i in picks:
        tables, median = TEMPLATES[names[i]]
        cpu = median * (growth or {}).get(tables[0], 1.0) * rng.lognormal(0.0, 0.3)
        rows.append(
            {
                "event_date": day,
                "user": users[int(rng.integers(len(users)))],
                "template": names[i],
                "tables": tables,
                "is_heavy": bool(cpu >= 300.0),
                "cpu_time_millis": int(cpu * 1000),
                "peak_memory_bytes": 2**28,
            }
        )
    return pl.DataFrame(rows)


@pytest.fixture(scope="module")
def history() -> HistoryLookup:
    frame = pl.concat([queries(400, seed=d, day=START + dt.timedelta(days=d)) for d in range(10)])
    return HistoryLookup.from_frame(
        snapshot(frame, until=START + dt.timedelta(days=9)), weight=20.0
    )


def changes(rows: pl.DataFrame, history: HistoryLookup) -> dict:
    return workload_changes(rows, history, **ALERTS)


def test_a_steady_workload_shows_no_change(history: HistoryLookup) -> None:
    out = changes(queries(3000, seed=99, day=START + dt.timedelta(days=40)), history)
    assert out["reasons"] == []
    assert all(0.8 < t["cost_ratio"] < 1.25 for t in out["tables"])
    assert out["new_users"]["users"] == 0


def test_a_new_template_mix_is_not_growth(history: HistoryLookup) -> None:
    """The expensive template now dominates its table: the table's queries cost more on
    average, but each template costs what it did."""
    mix = {"count_orders": 0.05, "join_orders": 5.0}
    out = changes(queries(3000, seed=7, day=START, weights=mix), history)
    assert out["reasons"] == []


def test_table_growth_is_named(history: HistoryLookup) -> None:
    grown = queries(3000, seed=8, day=START, growth={"hive.sales.orders": 3.0})
    out = changes(grown, history)
    assert len(out["reasons"]) == 1
    assert "table growth" in out["reasons"][0]
    assert "hive.sales.orders x" in out["reasons"][0]
    top = out["tables"][0]
    assert top["table"] == "hive.sales.orders"
    assert top["cost_ratio"] > 1.5
    assert top["templates"] == 3
    assert "iceberg.web.clicks" not in out["reasons"][0]


def test_a_new_heavy_team_is_named(history: HistoryLookup) -> None:
    steady = queries(3000, seed=11, day=START)
    newcomers = queries(
        300,
        seed=12,
        day=START,
        weights={
            "join_orders": 1.0,
            "count_orders": 0.0,
            "scan_orders": 0.0,
            "clicks": 0.0,
            "region": 0.0,
        },
        users=["svc_new_team"],
    )
    out = changes(pl.concat([steady, newcomers]), history)
    assert out["new_users"]["users"] == 1
    assert out["new_users"]["top"][0]["user"] == "svc_new_team"
    assert out["new_users"]["heavy_share"] > 0.05
    assert len(out["reasons"]) == 1
    assert "a new team" in out["reasons"][0] and "svc_new_team" in out["reasons"][0]


def test_a_small_table_is_not_judged(history: HistoryLookup) -> None:
    few = queries(150, seed=13, day=START, growth={"iceberg.web.clicks": 5.0})
    out = workload_changes(few, history, **(ALERTS | {"min_queries": 1000}))
    assert out["tables"] == [] and out["reasons"] == []
