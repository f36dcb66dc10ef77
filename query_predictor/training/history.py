"""Point-in-time history statistics for training, and the snapshot serving reads.

A training row on day D sees the statistics of every earlier day (< D), never its own day
or later: daily sums per key are accumulated, and each row is joined (as-of, backward) to
its key's cumulative sums at the end of day D - 1. Validation, test and serving use the
snapshot at the end of the training window, written to ``models/history_stats.parquet``.

Both give the global row the history's span: ``first_day`` is the first day of the history,
``last_day`` its cutoff (D - 1 for a training row on day D, the snapshot's ``until``
otherwise), even when no query ran on that day: features count back from it.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from query_predictor.core.errors import EmptyWindowError
from query_predictor.core.history import (
    EMPTY,
    EPOCH,
    GLOBAL,
    STATS_COLUMNS,
    TABLE,
    TEMPLATE,
    USER,
    Stats,
)

_SUMS = ("n", "heavy", "sx", "sxx", "sy", "syy")


def _long(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per (query, key): kind, key, day, heavy, x = log1p(CPU s), y = log1p(GiB)."""
    base = frame.select(
        day=(pl.col("event_date") - pl.lit(EPOCH)).dt.total_days().cast(pl.Int32),
        heavy=pl.col("is_heavy").cast(pl.Int64),
        x=(pl.col("cpu_time_millis").clip(0) / 1000.0).log1p(),
        y=(pl.col("peak_memory_bytes").clip(0) / 2**30).log1p(),
        user=pl.col("user").fill_null(""),
        template=pl.col("template"),
        tables=pl.col("tables"),
    )
    values = ["day", "heavy", "x", "y"]
    parts = [
        base.select(*values, kind=pl.lit(USER), key=pl.col("user")),
        base.select(*values, kind=pl.lit(TEMPLATE), key=pl.col("template")),
        base.explode("tables")
        .drop_nulls("tables")
        .select(*values, kind=pl.lit(TABLE), key=pl.col("tables")),
        base.select(*values, kind=pl.lit(GLOBAL), key=pl.lit("*")),
    ]
    return pl.concat(parts)


def daily_sums(frame: pl.DataFrame) -> pl.DataFrame:
    """Per (kind, key, day) of ``frame``'s rows (event_date, user, is_heavy, cpu_time_millis,
    peak_memory_bytes, template, tables): ``n`` and the sums of heavy, x, x², y, y².

    The sums of disjoint parts of a log (e.g. one day each) concatenated stand for the whole
    log wherever history is computed (:func:`snapshot_of_sums`, :func:`point_in_time_of_sums`):
    the rows themselves need not be held together."""
    return (
        _long(frame)
        .group_by("kind", "key", "day")
        .agg(
            n=pl.len().cast(pl.Int64),
            heavy=pl.col("heavy").sum(),
            sx=pl.col("x").sum(),
            sxx=(pl.col("x") ** 2).sum(),
            sy=pl.col("y").sum(),
            syy=(pl.col("y") ** 2).sum(),
        )
    )


def _cumulative(sums: pl.DataFrame) -> pl.DataFrame:
    """Per key and day, the sums over every day up to and including that day."""
    daily = (
        sums.group_by("kind", "key", "day")  # a (kind, key, day) in several parts: one row
        .agg(*(pl.col(c).sum() for c in _SUMS))
        .sort("kind", "key", "day")
    )
    return daily.with_columns(
        *(pl.col(c).cum_sum().over("kind", "key") for c in _SUMS),
        first=pl.col("day").min().over("kind", "key"),
    )


def _stats_columns() -> list[pl.Expr]:
    n = pl.col("n").cast(pl.Float64)
    cpu_mean, mem_mean = pl.col("sx") / n, pl.col("sy") / n
    return [
        n.alias("n"),
        pl.col("heavy").cast(pl.Float64),
        cpu_mean.alias("cpu_mean"),
        (pl.col("sxx") / n - cpu_mean**2).clip(0).sqrt().alias("cpu_sd"),
        mem_mean.alias("memory_mean"),
        (pl.col("syy") / n - mem_mean**2).clip(0).sqrt().alias("memory_sd"),
        pl.col("day").cast(pl.Float64).alias("last_day"),
        pl.col("first").cast(pl.Float64).alias("first_day"),
    ]


def snapshot(frame: pl.DataFrame, *, until: dt.date) -> pl.DataFrame:
    """Statistics per (kind, key) over every row on or before ``until``."""
    return snapshot_of_sums(daily_sums(frame.filter(pl.col("event_date") <= until)), until=until)


def snapshot_of_sums(sums: pl.DataFrame, *, until: dt.date) -> pl.DataFrame:
    """:func:`snapshot` from the :func:`daily_sums` of the rows."""
    cum = _cumulative(sums.filter(pl.col("day") <= _day(until)))
    latest = cum.group_by("kind", "key").agg(pl.all().sort_by("day").last())
    cutoff = pl.when(pl.col("kind") == GLOBAL).then(float(_day(until)))
    return (
        latest.select("kind", "key", *_stats_columns())
        .with_columns(cutoff.otherwise(pl.col("last_day")).alias("last_day"))
        .sort("kind", "key")
    )


def point_in_time(
    rows: pl.DataFrame, history: pl.DataFrame, *, until: dt.date | None = None
) -> list[tuple]:
    """:func:`point_in_time_of_sums` of ``history``'s rows."""
    return point_in_time_of_sums(rows, daily_sums(history), until=until)


def point_in_time_of_sums(
    rows: pl.DataFrame, history: pl.DataFrame, *, until: dt.date | None = None
) -> list[tuple]:
    """For each of ``rows`` (event_date, user, template, tables): (user, template,
    [tables...], global prior) Stats from ``history`` strictly before the row's day. The prior
    is point in time too: a label on day D must not move any feature on a day <= D.

    ``until`` is the last day ``history`` holds (validation and test rows see the training
    window only); None: the history is complete up to the day before each row. The prior's
    ``last_day`` is the row's cutoff, the earlier of the two. ``history`` is the
    :func:`daily_sums` of the history's rows."""
    cum = (
        _cumulative(history)
        .with_columns(_stats_columns())
        .select("kind", "key", "day", *STATS_COLUMNS)
    )
    indexed = rows.select(
        row=pl.int_range(pl.len(), dtype=pl.Int64),
        before=(pl.col("event_date") - pl.lit(EPOCH)).dt.total_days().cast(pl.Int32) - 1,
        user=pl.col("user").fill_null(""),
        template=pl.col("template"),
        tables=pl.col("tables"),
    )

    def lookup(keys: pl.DataFrame, kind: str) -> pl.DataFrame:
        right = cum.filter(pl.col("kind") == kind).drop("kind").sort("day")
        return keys.sort("before").join_asof(
            right,
            left_on="before",
            right_on="day",
            by="key",
            strategy="backward",
            check_sortedness=False,  # sorted by day within each key (cum table)
        )

    users = lookup(indexed.select("row", "before", key=pl.col("user")), USER).sort("row")
    templates = lookup(indexed.select("row", "before", key=pl.col("template")), TEMPLATE).sort(
        "row"
    )
    priors = (
        lookup(indexed.select("row", "before", key=pl.lit("*")), GLOBAL)
        .sort("row")
        .with_columns(
            pl.when(pl.col("n").is_not_null())
            .then(pl.min_horizontal("before", pl.lit(_day(until))).cast(pl.Float64))
            .alias("last_day")
        )
    )
    exploded = indexed.select("row", "before", key=pl.col("tables")).explode("key")
    tables = lookup(exploded.drop_nulls("key").with_row_index("pos"), TABLE).sort("pos")
    per_row: dict[int, list[Stats | None]] = {}
    for rec in tables.iter_rows(named=True):
        per_row.setdefault(rec["row"], []).append(_stats(rec))
    out = []
    for u, t, g in zip(
        users.iter_rows(named=True),
        templates.iter_rows(named=True),
        priors.iter_rows(named=True),
        strict=True,
    ):
        out.append((_stats(u), _stats(t), per_row.get(u["row"], []), _stats(g) or EMPTY))
    return out


def global_prior(history: pl.DataFrame, *, until: dt.date) -> Stats:
    snap = snapshot(history, until=until).filter(pl.col("kind") == GLOBAL)
    if snap.is_empty():
        raise EmptyWindowError(
            f"no labeled query on or before {until}: the history has no global prior; "
            "widen data_loading.start_date .. end_date or shorten splits.*"
        )
    return Stats(*(float(snap[c][0]) for c in STATS_COLUMNS))


def _day(date: dt.date | None) -> int | None:
    return None if date is None else (date - EPOCH).days


def _stats(rec: dict) -> Stats | None:
    if rec.get("n") is None:
        return None
    return Stats(*(float(rec[c]) for c in STATS_COLUMNS))
