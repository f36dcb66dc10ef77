"""The 24 historical features: how this user, client, query template and these tables behaved.

Statistics per key (user, source, fingerprint of the normalised SQL, table, and table read
with or without a partition predicate) are counts, heavy counts, the mean / standard deviation
of log CPU seconds and log peak memory (GiB), the mean log bytes scanned, and the count and
mean log CPU of the last :data:`RECENT_DAYS` days of the history (a table's growth). Percentiles
are read off a log-normal fit (p90 = mean + 1.2816 sd), which lets training compute them
incrementally, point in time. Tables also keep the size of their data, from the queries
that read them alone: GiB per day of data read (reads with a partition predicate) and the
largest read (the table whole), which :func:`scan_estimate` turns into what a statement
scans (``scan_estimate_gib_log``). Every statistic is smoothed towards the global prior with
``prior_weight`` pseudo-queries, and each key family has an explicit "unseen" feature.

Training computes the statistics of each row from history strictly before its own day
(:mod:`query_predictor.training.history`); validation, test and serving read the snapshot
at the end of the training window (``models/history_stats.parquet``) through
:class:`HistoryLookup`. Both go through :func:`history_features`, the one formula.

Every feature is a function of the history alone, never of the day the query arrives (but
for the days of data a statement reads, which :func:`scan_estimate` takes from the statement
and its own day, as the base feature ``date_lookback_days`` does): a
training row's history ends the day before it (the history is one day old), a served query's
history ends at the snapshot's cutoff (weeks old, and older every day the bundle stays
deployed). Recency is measured back from the history's cutoff (and capped at
:data:`RECENCY_HORIZON_DAYS`, which the training window covers) and counts are per day of
history, so a feature means the same whatever the gap between the history and the query.
The global prior row carries the history's span: ``first_day`` its first day, ``last_day``
its cutoff.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import polars as pl

HISTORY_NAMES: tuple[str, ...] = (
    "user_daily_count_log",
    "user_heavy_rate",
    "user_cpu_p50_log",
    "user_cpu_p90_log",
    "user_memory_p90_log",
    "user_unseen",
    "template_daily_count_log",
    "template_heavy_rate",
    "template_cpu_p90_log",
    "template_memory_p90_log",
    "template_idle_days",
    "template_unseen",
    "table_daily_count_log_max",
    "table_heavy_rate_max",
    "table_cpu_p90_log_max",
    "table_memory_p90_log_max",
    "table_unseen_share",
    # cold start: what a statement never seen before reads, and how
    "table_scan_gib_log_max",
    "table_growth_log_max",
    "table_mode_heavy_rate_max",
    "table_mode_cpu_p90_log_max",
    "source_heavy_rate",
    "source_cpu_p90_log",
    # how much data the statement reads: its tables' size per day x days read, or whole
    "scan_estimate_gib_log",
)
Z90 = 1.2816
# Idle days are capped here (and "never ran" is the cap): a training row's history is at
# most the training window long, so larger values exist only in serving.
RECENCY_HORIZON_DAYS = 14.0
# A key's "recent" statistics cover the last days of its history (up to the cutoff), which
# a training row's history (at least this long after the first week) and a snapshot share.
RECENT_DAYS = 7
EPOCH = dt.date(1970, 1, 1)  # day numbers (last_day, first_day) count from here
USER, TEMPLATE, TABLE, GLOBAL = "user", "template", "table", "global"
SOURCE, TABLE_MODE = "source", "table_mode"  # client; table read with / without partition filter
STATS_COLUMNS = (
    "n",
    "heavy",
    "cpu_mean",
    "cpu_sd",
    "memory_mean",
    "memory_sd",
    "last_day",
    "first_day",
    "bytes_mean",
    "recent_n",
    "recent_cpu_mean",
    "size_n",
    "size_day_mean",
    "size_read_mean",
    "size_max",
)


class Stats(NamedTuple):
    n: float
    heavy: float
    cpu_mean: float  # of log1p(CPU seconds)
    cpu_sd: float
    memory_mean: float  # of log1p(peak memory GiB)
    memory_sd: float
    last_day: float  # days since 1970-01-01 of the latest query (global row: the cutoff)
    first_day: float = 0.0  # ... of the earliest query (global row: the history's start)
    bytes_mean: float = 0.0  # of log1p(GiB scanned, physical input); 0 where the log lacks it
    recent_n: float = 0.0  # queries in the last RECENT_DAYS days of the history
    recent_cpu_mean: float = 0.0  # ... and their mean log1p(CPU seconds)
    # the key's queries that read one table and report physical input bytes (table modes):
    size_n: float = 0.0  # how many
    size_day_mean: float = 0.0  # their mean log1p(GiB scanned / days read)
    size_read_mean: float = 0.0  # their mean log1p(GiB scanned)
    size_max: float = 0.0  # their largest log1p(GiB scanned): no read exceeds the table


EMPTY = Stats(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0)


def table_mode_key(table: str, partition_filtered: bool) -> str:
    """The key of ``table`` read with (``p``) or without (``f``, a full scan unless the table
    is small) a predicate on a partition column. ``table`` "" is any table: its statistics
    (of single-table reads) are the prior of a table's size."""
    return f"{table}\t{'p' if partition_filtered else 'f'}"


def history_days(prior: Stats) -> float:
    """Days the history spans, first day to cutoff inclusive (at least 1)."""
    return max(1.0, prior.last_day - prior.first_day + 1.0)


def _shrink(value: float, n: float, prior: float, weight: float) -> float:
    return (n * value + weight * prior) / (n + weight)


def _key(stats: Stats | None, prior: Stats, weight: float) -> tuple[float, ...]:
    """(daily_count_log, heavy_rate, cpu_p50, cpu_p90, memory_p90, unseen) of one key."""
    s = stats if stats is not None and stats.n > 0 else EMPTY
    rate = (s.heavy + weight * prior.heavy / max(prior.n, 1.0)) / (s.n + weight)
    cpu_mean = _shrink(s.cpu_mean, s.n, prior.cpu_mean, weight)
    cpu_sd = _shrink(s.cpu_sd, s.n, prior.cpu_sd, weight)
    mem_mean = _shrink(s.memory_mean, s.n, prior.memory_mean, weight)
    mem_sd = _shrink(s.memory_sd, s.n, prior.memory_sd, weight)
    return (
        math.log1p(s.n / history_days(prior)),
        rate,
        cpu_mean,
        cpu_mean + Z90 * cpu_sd,
        mem_mean + Z90 * mem_sd,
        float(s.n == 0),
    )


def _cold_start(
    tables: Sequence[Stats | None],
    modes: Sequence[Stats | None],
    source: Stats | None,
    prior: Stats,
    weight: float,
) -> list[float]:
    """The cold-start features (the last six of :data:`HISTORY_NAMES`)."""
    known = [s if s is not None and s.n > 0 else EMPTY for s in tables] or [EMPTY]
    scan = max(_shrink(s.bytes_mean, s.n, prior.bytes_mean, weight) for s in known)
    # growth: the recent mean log CPU against the whole history's, shrunk towards no growth
    growth = max(
        s.recent_n * (s.recent_cpu_mean - s.cpu_mean) / (s.recent_n + weight) if s.recent_n else 0.0
        for s in known
    )
    per_mode = [_key(s, prior, weight) for s in modes] or [_key(None, prior, weight)]
    src = _key(source, prior, weight)
    return [
        scan,
        growth,
        max(k[1] for k in per_mode),
        max(k[3] for k in per_mode),
        src[1],
        src[3],
    ]


def scan_estimate(
    tables: Sequence[Stats | None],
    modes: Sequence[Stats | None],
    size_prior: Stats | None,
    weight: float,
    *,
    partition_filtered: bool,
    days: float,
) -> float:
    """log1p of the GiB a statement is expected to scan: the sum over the tables it reads of

    - with a partition predicate, a table whose reads with one have sizes (``modes``): its
      GiB per day of data (mean log, shrunk towards ``size_prior``'s with ``weight``
      pseudo-reads) times the ``days`` read;
    - else a table with sizes (``tables``): its largest read, the table read whole (no read
      exceeds the table; a table joined unfiltered to a filtered one, like a dimension
      table, is read whole);
    - else, a table the history read only joined to others: nothing. Its bytes cannot be
      told from its partners', and a table that is never scanned alone is, as a rule, a
      lookup or dimension table; counted as a typical table it ranked statements worse
      (ROC-AUC of this estimate alone on the default data's unseen statements 0.872 against
      0.886);
    - else (a table the history never saw): a typical table read this way, ``size_prior``
      (any table's single-table reads in that mode): its GiB per day times ``days``, or its
      GiB per read.

    0 when no table is read, or when the history holds no size (a log without
    ``physical_input_bytes``)."""
    p = size_prior if size_prior is not None else EMPTY
    if not modes or p.size_n <= 0:
        return 0.0
    total = 0.0
    for table, mode in zip(tables, modes, strict=True):
        t = table if table is not None else EMPTY
        m = mode if mode is not None else EMPTY
        if partition_filtered and m.size_n > 0:
            total += math.expm1(_shrink(m.size_day_mean, m.size_n, p.size_day_mean, weight)) * days
        elif t.size_n > 0:
            total += math.expm1(t.size_max)
        elif t.n > 0:
            continue  # read in the history, never alone: see above
        elif partition_filtered:
            total += math.expm1(p.size_day_mean) * days
        else:
            total += math.expm1(p.size_read_mean)
    return math.log1p(total)


def history_features(
    user: Stats | None,
    template: Stats | None,
    tables: Sequence[Stats | None],
    *,
    prior: Stats,
    weight: float,
    modes: Sequence[Stats | None] = (),
    source: Stats | None = None,
    size_prior: Stats | None = None,
    partition_filtered: bool = False,
    days: float = 1.0,
) -> list[float]:
    """The 24 features (order of :data:`HISTORY_NAMES`) from the statistics of one query's
    keys: ``modes`` are its tables read the way it reads them (:func:`table_mode_key`, in
    the order of ``tables``: with a partition predicate when ``partition_filtered``),
    ``source`` its client's, ``size_prior`` the statistics of any table read that way (key
    ``table_mode_key("", partition_filtered)``) and ``days`` the days of data it reads
    (:func:`~query_predictor.core.features.days_read`). ``prior`` is the history's global
    row: its ``last_day`` is the cutoff the template's idle days count back from. The
    query's own day is deliberately no input."""
    u = _key(user, prior, weight)
    t = _key(template, prior, weight)
    if template is not None and template.n > 0:
        idle = min(RECENCY_HORIZON_DAYS, max(0.0, prior.last_day - template.last_day))
    else:
        idle = RECENCY_HORIZON_DAYS
    if tables:
        per_table = [_key(s, prior, weight) for s in tables]
        table = [
            max(k[0] for k in per_table),
            max(k[1] for k in per_table),
            max(k[3] for k in per_table),
            max(k[4] for k in per_table),
            sum(k[5] for k in per_table) / len(per_table),
        ]
    else:
        p = _key(None, prior, weight)
        table = [0.0, p[1], p[3], p[4], 0.0]
    return [
        *(u[0], u[1], u[2], u[3], u[4], u[5], t[0], t[1], t[3], t[4], idle, t[5]),
        *table,
        *_cold_start(tables, modes, source, prior, weight),
        scan_estimate(
            tables, modes, size_prior, weight, partition_filtered=partition_filtered, days=days
        ),
    ]


@dataclass
class HistoryLookup:
    """Serving-side history: the training-window snapshot as dictionaries."""

    users: dict[str, Stats]
    templates: dict[str, Stats]
    tables: dict[str, Stats]
    prior: Stats
    weight: float
    sources: dict[str, Stats] = field(default_factory=dict)
    modes: dict[str, Stats] = field(default_factory=dict)  # by table_mode_key

    @classmethod
    def from_frame(cls, frame: pl.DataFrame, *, weight: float) -> HistoryLookup:
        missing = [c for c in ("kind", "key", *STATS_COLUMNS) if c not in frame.columns]
        if missing:
            raise ValueError(
                f"history snapshot lacks column(s) {', '.join(missing)}: it was written by an "
                "older version; rerun the featurize stage (dvc repro) to rebuild the bundle"
            )
        maps: dict[str, dict[str, Stats]] = {
            kind: {} for kind in (USER, TEMPLATE, TABLE, GLOBAL, SOURCE, TABLE_MODE)
        }
        for row in frame.iter_rows(named=True):
            maps[row["kind"]][row["key"]] = Stats(*(float(row[c]) for c in STATS_COLUMNS))
        prior = maps[GLOBAL].get("*")
        if prior is None:
            raise ValueError("history snapshot has no global prior row (kind 'global', key '*')")
        return cls(
            maps[USER], maps[TEMPLATE], maps[TABLE], prior, weight, maps[SOURCE], maps[TABLE_MODE]
        )

    @classmethod
    def from_parquet(cls, path: str | Path, *, weight: float) -> HistoryLookup:
        try:
            frame = pl.read_parquet(path)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise ValueError(f"cannot read the history snapshot {path}: {exc}") from exc
        return cls.from_frame(frame, weight=weight)

    @property
    def cutoff(self) -> dt.date:
        """The history's last day (the snapshot's cutoff): bundle age counts from here."""
        return EPOCH + dt.timedelta(days=int(self.prior.last_day))

    def features(
        self,
        *,
        user: str | None,
        template: str,
        tables: Sequence[str],
        source: str | None = None,
        partition_filtered: bool = False,
        days: float = 1.0,
    ) -> list[float]:
        """:func:`history_features` of a query's keys (``days``: the days of data it reads)."""
        return history_features(
            self.users.get(user or ""),
            self.templates.get(template),
            [self.tables.get(t) for t in tables],
            prior=self.prior,
            weight=self.weight,
            modes=[self.modes.get(table_mode_key(t, partition_filtered)) for t in tables],
            source=self.sources.get(source or ""),
            size_prior=self.modes.get(table_mode_key("", partition_filtered)),
            partition_filtered=partition_filtered,
            days=days,
        )


@dataclass(frozen=True)
class Bands:
    """Expected cost of a query, read off the history of what it resembles most: its
    template, else the costliest of its tables, else its user, else the whole workload
    (``basis`` says which). Quantiles of the log-normal fit, unsmoothed: what that key did."""

    basis: str  # "template", "table", "user" or "global"
    runs: int  # queries of that key in the history
    cpu_seconds_p50: float
    cpu_seconds_p90: float
    peak_memory_gib_p50: float
    peak_memory_gib_p90: float

    def as_dict(self) -> dict[str, object]:
        return {
            "basis": self.basis,
            "runs": self.runs,
            "cpu_seconds": {"p50": self.cpu_seconds_p50, "p90": self.cpu_seconds_p90},
            "peak_memory_gib": {
                "p50": self.peak_memory_gib_p50,
                "p90": self.peak_memory_gib_p90,
            },
        }


def bands_of(basis: str, stats: Stats) -> Bands:
    """The :class:`Bands` of one key's statistics (log1p of CPU seconds and of GiB)."""

    def quantile(mean: float, sd: float, z: float) -> float:
        return round(math.expm1(max(0.0, mean + z * sd)), 3)

    return Bands(
        basis,
        int(stats.n),
        quantile(stats.cpu_mean, stats.cpu_sd, 0.0),
        quantile(stats.cpu_mean, stats.cpu_sd, Z90),
        quantile(stats.memory_mean, stats.memory_sd, 0.0),
        quantile(stats.memory_mean, stats.memory_sd, Z90),
    )


def resource_bands(
    lookup: HistoryLookup, *, user: str | None, template: str, tables: Sequence[str]
) -> Bands:
    """The :class:`Bands` of a query from the serving snapshot ``lookup``."""
    found = lookup.templates.get(template)
    if found is not None and found.n > 0:
        return bands_of(TEMPLATE, found)
    known = [s for s in (lookup.tables.get(t) for t in tables) if s is not None and s.n > 0]
    if known:  # the table whose p90 CPU is highest bounds the query best
        return bands_of(TABLE, max(known, key=lambda s: s.cpu_mean + Z90 * s.cpu_sd))
    found = lookup.users.get(user or "")
    if found is not None and found.n > 0:
        return bands_of(USER, found)
    return bands_of(GLOBAL, lookup.prior)
