"""Analysis mode (``analysis.enabled``): distribution summaries people look at as ``dvc plots``.

The seed's ``dataframe_analyzer``: heavy share by source, catalog, query type and top users,
CPU and memory quantiles, rows per day. ``load`` writes them for the labeled log, ``split``
for the training window before and after sampling.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

QUANTILES = (0.5, 0.75, 0.9, 0.95, 0.99, 0.999)
# what :func:`distributions` reads: a stage can load just these columns
ANALYSIS_COLUMNS = (
    "source",
    "catalog",
    "query_type",
    "user",
    "is_heavy",
    "event_date",
    "cpu_time_millis",
    "peak_memory_bytes",
)


def _by(frame: pl.DataFrame, column: str, *, top: int | None = None) -> pl.DataFrame:
    table = (
        frame.group_by(pl.col(column).fill_null("(none)"))
        .agg(queries=pl.len(), heavy=pl.col("is_heavy").sum())
        .with_columns(heavy_share=(pl.col("heavy") / pl.col("queries")).round(6))
        .sort(["queries", column], descending=[True, False])
    )
    return table.head(top) if top else table


def distributions(frame: pl.DataFrame, *, top_users: int) -> dict[str, pl.DataFrame]:
    """Named summary tables of a labeled frame (needs is_heavy, event_date, cost columns)."""
    quantiles = pl.DataFrame(
        {
            "quantile": list(QUANTILES),
            "cpu_seconds": [
                frame["cpu_time_millis"].quantile(q, "nearest") / 1000 for q in QUANTILES
            ],
            "peak_memory_gib": [
                frame["peak_memory_bytes"].quantile(q, "nearest") / 2**30 for q in QUANTILES
            ],
        }
    )
    per_day = (
        frame.group_by("event_date")
        .agg(queries=pl.len(), heavy=pl.col("is_heavy").sum())
        .sort("event_date")
        .with_columns(pl.col("event_date").cast(pl.String))
    )
    return {
        "heavy_by_source": _by(frame, "source"),
        "heavy_by_catalog": _by(frame, "catalog"),
        "heavy_by_query_type": _by(frame, "query_type"),
        "heavy_by_user": _by(frame, "user", top=top_users),
        "cost_quantiles": quantiles,
        "rows_per_day": per_day,
    }


def write_tables(tables: dict[str, pl.DataFrame], out_dir: str | Path, *, prefix: str = "") -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        table.write_csv(out / f"{prefix}{name}.csv")
