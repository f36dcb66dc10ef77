"""Point-in-time history statistics for training, and the snapshot serving reads.

A training row on day D sees the statistics of every earlier day (< D), never its own day
or later: daily sums per key are accumulated, and each row is joined (as-of, backward) to
its key's cumulative sums at the end of day D - 1. Validation rows see the history up to
the end of the training window; test rows and serving the snapshot written to
``models/history_stats.parquet``, up to the end of the validation window (the featurize
stage's ``history_end``).

Both give the global row the history's span: ``first_day`` is the first day of the history,
``last_day`` its cutoff (D - 1 for a training row on day D, the snapshot's ``until``
otherwise), even when no query ran on that day: features count back from it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import polars as pl

from query_predictor.core.errors import EmptyWindowError
from query_predictor.core.history import (
    EMPTY,
    EPOCH,
    GLOBAL,
    RECENT_DAYS,
    SOURCE,
    STATS_COLUMNS,
    TABLE,
    TABLE_MODE,
    TEMPLATE,
    USER,
    Stats,
    table_mode_key,
)

_SUMS = ("n", "heavy", "sx", "sxx", "sy", "syy", "sb", "n1", "sd", "sr")
# daily_sums of rows with the columns each compares but no partition flag yet: the reads of
# a table keyed "<table>\t<columns joined by _COLUMNS>" (see resolve_partitions)
_TABLE_COMPARED, _COLUMNS = "table_compared", "\x1f"
# the columns of a history frame; ``partition`` (has_partition_predicate), ``source``,
# ``physical_input_bytes``, ``days_read`` (core.features.days_read) and ``data_read``
# (core.features.reads_data) may be absent (then: no predicate, no client, no bytes known,
# one day, a read of data)
HISTORY_COLUMNS = (
    "event_date",
    "user",
    "source",
    "is_heavy",
    "cpu_time_millis",
    "peak_memory_bytes",
    "physical_input_bytes",
    "tables",
    "template",
    "partition",
    "days_read",
    "data_read",
)


def _mode(partition: pl.Expr) -> pl.Expr:
    """The :func:`table_mode_key` suffix of a row whose partition flag is ``partition``."""
    return (
        pl.when(partition.cast(pl.Float64).fill_null(0.0) > 0)
        .then(pl.lit(table_mode_key("", True)))
        .otherwise(pl.lit(table_mode_key("", False)))
    )


def _long(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per (query, key): kind, key, day, heavy, x = log1p(CPU s), y = log1p(GiB
    peak memory), b = log1p(GiB scanned); and for a query reading the data of one table whose
    bytes are known (s1 = 1; else 0 and 0): d = log1p(GiB scanned / days read), r =
    log1p(GiB scanned). Its table's size is then its own: a join's bytes cannot be split
    among its tables, and a ``DESCRIBE`` or ``SHOW COLUMNS`` of the table reads none of it.
    Those queries count once more under the table mode of table "" (any table), the prior of
    a table's size."""
    present = set(frame.columns)

    def column(name: str, default: object) -> pl.Expr:
        return pl.col(name) if name in present else pl.lit(default)

    if "partition" not in present and "compared" in present:
        # the partition flag needs conventions not learned yet: key the table's reads by
        # the columns compared, for :func:`resolve_partitions` to fold into the two modes
        mode_kind = _TABLE_COMPARED
        mode = pl.lit("\t") + pl.col("compared").list.sort().list.join(_COLUMNS).fill_null("")
    else:
        mode_kind, mode = TABLE_MODE, _mode(column("partition", 0.0))
    gib = column("physical_input_bytes", None).cast(pl.Float64).clip(0) / 2**30
    days = column("days_read", 1.0).cast(pl.Float64).fill_null(1.0).clip(1.0)
    data = column("data_read", True).cast(pl.Boolean).fill_null(True)
    single = (pl.col("tables").list.len() == 1) & gib.is_not_null() & data
    base = frame.select(
        day=(pl.col("event_date") - pl.lit(EPOCH)).dt.total_days().cast(pl.Int32),
        heavy=pl.col("is_heavy").cast(pl.Int64),
        x=(pl.col("cpu_time_millis").clip(0) / 1000.0).log1p(),
        y=(pl.col("peak_memory_bytes").clip(0) / 2**30).log1p(),
        b=gib.log1p().fill_null(0.0),
        s1=single.cast(pl.Int64),
        d=pl.when(single).then((gib / days).log1p()).otherwise(0.0),
        r=pl.when(single).then(gib.log1p()).otherwise(0.0),
        user=pl.col("user").fill_null(""),
        source=column("source", None).cast(pl.String).fill_null(""),
        template=pl.col("template"),
        tables=pl.col("tables"),
        mode=mode,
    )
    values = ["day", "heavy", "x", "y", "b", "s1", "d", "r"]
    tables = base.explode("tables").drop_nulls("tables")
    parts = [
        base.select(*values, kind=pl.lit(USER), key=pl.col("user")),
        base.select(*values, kind=pl.lit(SOURCE), key=pl.col("source")),
        base.select(*values, kind=pl.lit(TEMPLATE), key=pl.col("template")),
        tables.select(*values, kind=pl.lit(TABLE), key=pl.col("tables")),
        tables.select(*values, kind=pl.lit(mode_kind), key=pl.col("tables") + pl.col("mode")),
        base.filter(pl.col("s1") > 0).select(*values, kind=pl.lit(mode_kind), key=pl.col("mode")),
        base.select(*values, kind=pl.lit(GLOBAL), key=pl.lit("*")),
    ]
    return pl.concat(parts)


def daily_sums(frame: pl.DataFrame) -> pl.DataFrame:
    """Per (kind, key, day) of ``frame``'s rows (event_date, user, is_heavy, cpu_time_millis,
    peak_memory_bytes, template, tables; source, physical_input_bytes and partition, or
    compared, days_read, where known: :data:`HISTORY_COLUMNS`): ``n`` and the sums of heavy,
    x, x², y, y², b; ``n1``, the sums of d, r and the largest r, ``mr`` (:func:`_long`).
    Rows with ``compared`` but no ``partition`` give sums to :func:`resolve_partitions`.

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
            sb=pl.col("b").sum(),
            n1=pl.col("s1").sum(),
            sd=pl.col("d").sum(),
            sr=pl.col("r").sum(),
            mr=pl.col("r").max(),
        )
    )


def resolve_partitions(
    sums: pl.DataFrame, partition_predicate: Callable[[Sequence[str]], float]
) -> pl.DataFrame:
    """``sums`` (:func:`daily_sums` of rows with ``compared`` but no ``partition``) with each
    table's reads folded into its two :func:`table_mode_key` modes by ``partition_predicate``
    of the columns compared (the learned conventions', which serving calls)."""
    pending = sums.filter(pl.col("kind") == _TABLE_COMPARED)
    keys = pending["key"].unique().to_list()
    modes = []
    for key in keys:
        table, _, columns = key.rpartition("\t")
        compared = columns.split(_COLUMNS) if columns else []
        modes.append(table_mode_key(table, partition_predicate(compared) > 0))
    mapping = pl.DataFrame(
        {"key": keys, "mode": modes}, schema={"key": pl.String, "mode": pl.String}
    )
    resolved = (
        pending.join(mapping, on="key", how="left")
        .with_columns(kind=pl.lit(TABLE_MODE), key=pl.col("mode"))
        .select(sums.columns)
    )
    return pl.concat([sums.filter(pl.col("kind") != _TABLE_COMPARED), resolved])


def _cumulative(sums: pl.DataFrame) -> pl.DataFrame:
    """Per key and day, the sums over every day up to and including that day."""
    if (sums["kind"] == _TABLE_COMPARED).any():
        raise ValueError(
            "history sums key tables by the columns compared: resolve_partitions first"
        )
    daily = (
        # a (kind, key, day) in several parts (days cut in two, a table's reads folded by
        # resolve_partitions): one row. Float sums in sorted order: the same bits whatever
        # order the parallel group-by meets the parts in
        sums.group_by("kind", "key", "day")
        .agg(*(pl.col(c).sort().sum() for c in _SUMS), pl.col("mr").max())
        .sort("kind", "key", "day")
    )
    return daily.with_columns(
        *(pl.col(c).cum_sum().over("kind", "key") for c in _SUMS),
        pl.col("mr").cum_max().over("kind", "key"),
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
        (pl.col("sb") / n).alias("bytes_mean"),
        pl.col("n1").cast(pl.Float64).alias("size_n"),
        *(
            pl.when(pl.col("n1") > 0).then(pl.col(s) / pl.col("n1")).otherwise(0.0).alias(name)
            for s, name in (("sd", "size_day_mean"), ("sr", "size_read_mean"))
        ),
        pl.col("mr").alias("size_max"),
    ]


def _with_recent(frame: pl.DataFrame) -> pl.DataFrame:
    """``recent_n`` and ``recent_cpu_mean`` from the cumulative ``n``, ``sx`` at the cutoff
    and ``n_old``, ``sx_old`` RECENT_DAYS days before it (null: the key had not run yet)."""
    recent_n = pl.col("n") - pl.col("n_old").fill_null(0).cast(pl.Float64)
    recent_sx = pl.col("sx") - pl.col("sx_old").fill_null(0.0)
    return frame.with_columns(
        recent_n=recent_n,
        recent_cpu_mean=pl.when(recent_n > 0).then(recent_sx / recent_n).otherwise(0.0),
    )


_RECENT = ("recent_n", "recent_cpu_mean")  # added by _with_recent


def _old(cum: pl.DataFrame) -> pl.DataFrame:
    return cum.select("kind", "key", "day", n_old="n", sx_old="sx")


def snapshot(frame: pl.DataFrame, *, until: dt.date) -> pl.DataFrame:
    """Statistics per (kind, key) over every row on or before ``until``."""
    return snapshot_of_sums(daily_sums(frame.filter(pl.col("event_date") <= until)), until=until)


def snapshot_of_sums(sums: pl.DataFrame, *, until: dt.date) -> pl.DataFrame:
    """:func:`snapshot` from the :func:`daily_sums` of the rows."""
    cum = _cumulative(sums.filter(pl.col("day") <= _day(until)))
    latest = cum.group_by("kind", "key").agg(pl.all().sort_by("day").last())
    old = (
        _old(cum.filter(pl.col("day") <= _day(until) - RECENT_DAYS))
        .group_by("kind", "key")
        .agg(pl.all().sort_by("day").last())
        .drop("day")
    )
    latest = latest.join(old, on=["kind", "key"], how="left")
    cutoff = pl.when(pl.col("kind") == GLOBAL).then(float(_day(until)))
    return (
        latest.with_columns(_stats_columns())
        .pipe(_with_recent)
        .select("kind", "key", *STATS_COLUMNS)
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
    """For each of ``rows`` (event_date, user, template, tables; source and partition when
    present): (user, template, [tables...], global prior, [table modes...], source, size
    prior) Stats from ``history`` strictly before the row's day; the size prior is any
    table's read the row's way (:func:`table_mode_key` of table ""). The prior is point in
    time too: a label on day D must not move any feature on a day <= D.

    ``until`` is the last day a row may see (validation rows see the training window, test
    rows the bundle's history): the history may hold later days, which no row sees; None:
    every row sees up to the day before its own. The prior's
    ``last_day`` is the row's cutoff, the earlier of the two; "recent" statistics are of the
    RECENT_DAYS days up to that cutoff. ``history`` is the :func:`daily_sums` of the
    history's rows."""
    return point_in_time_of_cumulative(rows, cumulative_by_kind(history), until=until)


def cumulative_by_kind(history: pl.DataFrame) -> dict[str, tuple[pl.DataFrame, pl.DataFrame]]:
    """Per kind of key, the statistics of each key at the end of each day it occurs on and
    the sums the "recent" statistics subtract (both sorted by day), from the
    :func:`daily_sums` ``history``: what :func:`point_in_time_of_cumulative` looks rows up
    in. Computed once, it serves any number of batches of rows."""
    cum = (
        _cumulative(history)
        .with_columns(_stats_columns())
        .select("kind", "key", "day", "sx", *(c for c in STATS_COLUMNS if c not in _RECENT))
    )
    old = _old(cum)
    return {
        kind: tuple(  # type: ignore[misc]
            f.filter(pl.col("kind") == kind).drop("kind").sort("day") for f in (cum, old)
        )
        for kind in (USER, SOURCE, TEMPLATE, TABLE, TABLE_MODE, GLOBAL)
    }


def point_in_time_of_cumulative(
    rows: pl.DataFrame,
    cumulative: dict[str, tuple[pl.DataFrame, pl.DataFrame]],
    *,
    until: dt.date | None = None,
) -> list[tuple]:
    """:func:`point_in_time_of_sums` from the history's :func:`cumulative_by_kind`. Each
    row's result depends on that row alone: rows may come in batches."""
    present = set(rows.columns)
    cut = (pl.col("event_date") - pl.lit(EPOCH)).dt.total_days().cast(pl.Int32) - 1
    if until is not None:  # the history may hold later days: a row never sees past until
        cut = pl.min_horizontal(cut, pl.lit(_day(until), dtype=pl.Int32))
    indexed = rows.select(
        row=pl.int_range(pl.len(), dtype=pl.Int64),
        before=cut,
        user=pl.col("user").fill_null(""),
        source=(pl.col("source") if "source" in present else pl.lit(None))
        .cast(pl.String)
        .fill_null(""),
        template=pl.col("template"),
        tables=pl.col("tables"),
        mode=_mode(pl.col("partition") if "partition" in present else pl.lit(0.0)),
    ).with_columns(
        old=pl.min_horizontal("before", pl.lit(_day(until))).cast(pl.Int32) - RECENT_DAYS
        if until is not None
        else pl.col("before") - RECENT_DAYS
    )

    def asof(keys: pl.DataFrame, right: pl.DataFrame, on: str) -> pl.DataFrame:
        return keys.sort(on).join_asof(
            right.sort("day"),
            left_on=on,
            right_on="day",
            by="key",
            strategy="backward",
            check_sortedness=False,  # sorted by day within each key (cum table)
        )

    def lookup(keys: pl.DataFrame, kind: str) -> pl.DataFrame:
        cum, old = cumulative[kind]
        found = asof(keys, cum, "before")
        past = asof(found.drop("day", strict=False), old, "old")
        return _with_recent(past).sort(keys.columns[0])

    def of(kind: str, key: pl.Expr) -> list[Stats | None]:
        found = lookup(indexed.select("row", "before", "old", key=key), kind)
        return [_stats(r) for r in found.iter_rows(named=True)]

    def per_table(kind: str, key: pl.Expr) -> dict[int, list[Stats | None]]:
        exploded = indexed.select("pos", "row", "before", "old", key=key)
        found = lookup(exploded, kind)
        grouped: dict[int, list[Stats | None]] = {}
        for rec in found.iter_rows(named=True):
            grouped.setdefault(rec["row"], []).append(_stats(rec))
        return grouped

    priors = (
        lookup(indexed.select("row", "before", "old", key=pl.lit("*")), GLOBAL)
        .with_columns(
            pl.when(pl.col("n").is_not_null())
            .then(pl.min_horizontal("before", pl.lit(_day(until))).cast(pl.Float64))
            .alias("last_day")
        )
        .iter_rows(named=True)
    )
    users, sources, templates = (
        of(USER, pl.col("user")),
        of(SOURCE, pl.col("source")),
        of(TEMPLATE, pl.col("template")),
    )
    sizes = of(TABLE_MODE, pl.col("mode"))  # any table read the row's way: table ""
    indexed = (
        indexed.explode("tables")
        .drop_nulls("tables")
        .with_row_index("pos")
        .select("pos", "row", "before", "old", "tables", "mode")
    )
    tables = per_table(TABLE, pl.col("tables"))
    modes = per_table(TABLE_MODE, pl.col("tables") + pl.col("mode"))
    out = []
    for row, (u, t, s, g, z) in enumerate(
        zip(users, templates, sources, priors, sizes, strict=True)
    ):
        out.append((u, t, tables.get(row, []), _stats(g) or EMPTY, modes.get(row, []), s, z))
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
