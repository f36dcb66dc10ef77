"""Time windows of the splits, and reading labeled rows by window.

Windows are counted back from ``data_loading.end_date`` so that the test window is the most
recent data, as in production; days before the training window (if any) are left out and
only serve as history. Windows never overlap and cover whole UTC days.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from query_predictor.params import Params, ParamsError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Window:
    name: str
    start: dt.date  # inclusive
    end: dt.date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def contains(self, column: str = "event_date") -> pl.Expr:
        return pl.col(column).is_between(self.start, self.end, closed="both")

    def as_dict(self) -> dict[str, str]:
        return {"start": str(self.start), "end": str(self.end)}


def split_windows(
    start: dt.date, end: dt.date, *, train_days: int, val_days: int, test_days: int
) -> dict[str, Window]:
    """Train, validation and test windows ending on ``end``; ParamsError if they don't fit."""
    need = train_days + val_days + test_days
    have = (end - start).days + 1
    if need > have:
        raise ParamsError(
            f"splits need {need} days but data_loading covers {have} ({start} to {end}); "
            "shorten splits.* or widen data_loading"
        )
    test_start = end - dt.timedelta(days=test_days - 1)
    val_start = test_start - dt.timedelta(days=val_days)
    train_start = val_start - dt.timedelta(days=train_days)
    one = dt.timedelta(days=1)
    return {
        "train": Window("train", train_start, val_start - one),
        "val": Window("val", val_start, test_start - one),
        "test": Window("test", test_start, end),
    }


def windows_for(params: Params) -> dict[str, Window]:
    """The split windows ``params`` describe (``data_loading`` dates, ``splits`` lengths)."""
    data, splits = params.data_loading, params.splits
    return split_windows(
        data.start_date,
        data.end_date,
        train_days=splits.train_days,
        val_days=splits.val_days,
        test_days=splits.test_days,
    )


def read_labeled(path: str | Path, window: Window | None = None) -> pl.DataFrame:
    """Labeled rows under ``path`` (the load stage's output), optionally one window only."""
    files = sorted(Path(path).rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no labeled data under {path}; run `dvc repro load` first")
    lazy = pl.scan_parquet(files, hive_partitioning=False)
    if window is not None:
        lazy = lazy.filter(window.contains())
    return lazy.collect()
