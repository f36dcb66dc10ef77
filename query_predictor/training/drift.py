"""What changed in the workload since the history snapshot, named by table and by user.

    changes = workload_changes(rows, history, min_queries=100, cost_ratio_alert=1.5,
                               new_user_heavy_share=0.05)

The replay knows what its queries really cost, and the bundle's history says what the same
keys cost before the cutoff. Two changes are looked for:

- **Cost growth**: the same template costs more than its history says (tables grow, so the
  same statement reads more). Each replayed query of a template with history gets its
  template's shift, ``mean log(1 + CPU s)`` in the replay minus the snapshot's; a table's
  shift is the mean over the queries that read it, reported as the ratio ``exp(shift)`` of
  (1 + CPU seconds). Comparing a template with itself keeps a change in the mix of templates
  (templates come and go) from passing as growth.
- **New users**: users the history never saw, and their share of the replay's heavy queries
  (a new team arriving with heavy jobs).

Neither depends on how old the bundle is, only on how far the workload moved from it: a
steady workload replayed a month after the cutoff shows neither.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl

from query_predictor.core.history import HistoryLookup

MIN_TEMPLATE_RUNS = 5  # runs a template needs on each side before its costs are compared
TOP = 5


def workload_changes(
    rows: pl.DataFrame,
    history: HistoryLookup,
    *,
    min_queries: int,
    cost_ratio_alert: float,
    new_user_heavy_share: float,
) -> dict[str, object]:
    """Cost growth by table and new users' heavy share for the model-answered replay ``rows``
    (columns ``user``, ``template``, ``tables`` (list), ``cpu_time_millis``, ``is_heavy``).
    Returns ``tables`` and ``new_users`` (what was measured) and ``reasons`` (what passed
    the alerts: a table with at least ``min_queries`` comparable queries whose cost ratio
    exceeds ``cost_ratio_alert``; new users with more than ``new_user_heavy_share`` of the
    heavy queries)."""
    tables = _table_shifts(rows, history, min_queries=min_queries)
    users = _new_users(rows, history)
    reasons = []
    grown = [t for t in tables if t["cost_ratio"] > cost_ratio_alert]
    if grown:
        named = ", ".join(f"{t['table']} x{t['cost_ratio']:.2f}" for t in grown[:3])
        reasons.append(
            f"workload: the same templates cost more than the history says on {len(grown)} "
            f"tables (table growth; ratio of 1 + CPU s > {cost_ratio_alert}): {named}"
        )
    if users["heavy_share"] > new_user_heavy_share:
        named = ", ".join(f"{u['user']} ({u['heavy']} heavy)" for u in users["top"][:3])
        reasons.append(
            f"workload: users the history never saw ran {users['heavy_share']:.1%} of the heavy "
            f"queries (> {new_user_heavy_share:.0%}; a new team): {named}"
        )
    return {"tables": tables[:TOP], "new_users": users, "reasons": reasons}


def _table_shifts(
    rows: pl.DataFrame, history: HistoryLookup, *, min_queries: int
) -> list[dict[str, object]]:
    x = (pl.col("cpu_time_millis").clip(0) / 1000.0).log1p()
    per_template = rows.group_by("template").agg(runs=pl.len(), mean=x.mean())
    known = [history.templates.get(t) for t in per_template["template"]]
    before = pl.DataFrame(
        {
            "past_runs": [s.n if s else 0.0 for s in known],
            "past_mean": [s.cpu_mean if s else math.nan for s in known],
        }
    )
    shifts = (
        per_template.hstack(before)
        .filter((pl.col("runs") >= MIN_TEMPLATE_RUNS) & (pl.col("past_runs") >= MIN_TEMPLATE_RUNS))
        .select("template", shift=pl.col("mean") - pl.col("past_mean"))
    )
    per_table = (
        rows.select("template", table=pl.col("tables"))
        .join(shifts, on="template", how="inner")
        .explode("table")
        .drop_nulls("table")
        .group_by("table")
        .agg(
            queries=pl.len(), templates=pl.col("template").n_unique(), shift=pl.col("shift").mean()
        )
        .filter(pl.col("queries") >= min_queries)
        .sort(["shift", "table"], descending=[True, False])
    )
    return [
        {
            "table": r["table"],
            "queries": r["queries"],
            "templates": r["templates"],
            "cost_ratio": float(np.exp(r["shift"])),
        }
        for r in per_table.iter_rows(named=True)
    ]


def _new_users(rows: pl.DataFrame, history: HistoryLookup) -> dict[str, object]:
    heavy_total = int(rows["is_heavy"].sum())
    users: Sequence[str] = rows["user"].fill_null("").unique().to_list()
    new = [u for u in users if u not in history.users]
    per_user = (
        rows.filter(pl.col("user").fill_null("").is_in(new))
        .group_by("user")
        .agg(queries=pl.len(), heavy=pl.col("is_heavy").sum().cast(pl.Int64))
        .sort(["heavy", "user"], descending=[True, False])
    )
    heavy = int(per_user["heavy"].sum()) if per_user.height else 0
    return {
        "users": len(new),
        "queries": int(per_user["queries"].sum()) if per_user.height else 0,
        "heavy": heavy,
        "heavy_share": heavy / heavy_total if heavy_total else 0.0,
        "top": per_user.head(TOP).to_dicts(),
    }
