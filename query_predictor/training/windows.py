"""Time windows of the splits, and reading labeled rows by window.

Windows are counted back from ``data_loading.end_date`` so that the test window is the most
recent data, as in production; days before the training window (if any) are left out and
only serve as history. Windows never overlap and cover whole UTC days.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from query_predictor.core.errors import MissingInputError
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


def read_labeled(
    path: str | Path, window: Window | None = None, *, columns: Sequence[str] | None = None
) -> pl.DataFrame:
    """Labeled rows under ``path`` (the load stage's output), optionally one window only and
    only ``columns`` (a stage reads what it uses: the SQL text dominates a row's size, the
    other columns add up at 10x the default log)."""
    files = sorted(Path(path).rglob("*.parquet"))
    if not files:
        raise MissingInputError(f"no labeled data under {path}; run `dvc repro load` first")
    return _scan(files, window, columns).collect()


def labeled_parts(
    path: str | Path, window: Window, *, columns: Sequence[str] | None = None
) -> Iterator[pl.DataFrame]:
    """:func:`read_labeled`'s rows one file (one day of the load's layout) at a time, in the
    same order: memory follows a day, not the window. At least one frame, maybe empty."""
    files = sorted(Path(path).rglob("*.parquet"))
    if not files:
        raise MissingInputError(f"no labeled data under {path}; run `dvc repro load` first")
    yielded = False
    for file in files:
        part = _scan([file], window, columns).collect()
        if part.height:
            yielded = True
            yield part
    if not yielded:
        yield _scan(files[:1], window, columns).collect()


def _scan(files: list[Path], window: Window | None, columns: Sequence[str] | None) -> pl.LazyFrame:
    lazy = pl.scan_parquet(files, hive_partitioning=False)
    if window is not None:
        lazy = lazy.filter(window.contains())
    if columns is not None:
        lazy = lazy.select(columns)
    return lazy


@dataclass(frozen=True)
class DatePlan:
    """Every date-dependent param of the pipeline, fitted to the days a log covers."""

    first_day: dt.date  # of the log
    last_day: dt.date
    load: Window  # data_loading.start_date .. end_date
    splits: dict[str, int]  # train_days, val_days, test_days
    replay: Window | None  # None when the log has no day left for it

    def params_block(self) -> dict[str, dict[str, object]]:
        """The sections and keys to set in params.yaml, as they would be written there."""
        block: dict[str, dict[str, object]] = {
            "data_loading": {
                "start_date": str(self.load.start),
                "end_date": str(self.load.end),
            },
            "splits": dict(self.splits),
        }
        if self.replay is not None:
            block["replay"] = {
                "start_date": str(self.replay.start),
                "end_date": str(self.replay.end),
            }
        return block


def plan_dates(
    first_day: dt.date,
    last_day: dt.date,
    *,
    replay_days: int,
    val_days: int,
    test_days: int,
    max_train_days: int,
) -> DatePlan:
    """Fit the windows to a log covering ``first_day`` .. ``last_day``, newest first: the
    last ``replay_days`` for replay, then test and validation, then up to ``max_train_days``
    of training; any older day only feeds the history features.

    Raises
    ------
    ParamsError
        The log is too short for one training day after the other windows; the message says
        how many days it covers and which windows fit.
    """
    one = dt.timedelta(days=1)
    have = (last_day - first_day).days + 1
    need = replay_days + val_days + test_days + 1
    if have < need:
        fits = [
            f"{name} {days}"
            for name, days in (("replay", replay_days), ("test", test_days), ("val", val_days))
        ]
        raise ParamsError(
            f"the log covers {have} day(s) ({first_day} to {last_day}) but {' + '.join(fits)} "
            f"days and one training day need {need}; shorten them "
            f"(e.g. --replay-days {max(0, have - val_days - test_days - 1)}) or load a longer log"
        )
    replay = None
    load_end = last_day
    if replay_days:
        replay = Window("replay", last_day - (replay_days - 1) * one, last_day)
        load_end = replay.start - one
    train_days = min(max_train_days, have - replay_days - val_days - test_days)
    return DatePlan(
        first_day,
        last_day,
        Window("load", first_day, load_end),
        {"train_days": train_days, "val_days": val_days, "test_days": test_days},
        replay,
    )


def check_coverage(first_day: dt.date | None, last_day: dt.date | None, params: Params) -> None:
    """Fail, with one line, when the labeled days cannot fill the split windows: a log that
    starts after the training window opens or ends before the test window closes."""
    windows = windows_for(params)
    train, test = windows["train"], windows["test"]
    if first_day is None or last_day is None:
        raise ParamsError(
            f"no query of the log is left between data_loading.start_date "
            f"{params.data_loading.start_date} and end_date {params.data_loading.end_date}; "
            "set the dates to the log's own range (`query-predictor dates`)"
        )
    if first_day > train.start or last_day < test.end:
        splits = params.splits
        try:
            plan = plan_dates(
                first_day,
                last_day,
                replay_days=0,
                val_days=splits.val_days,
                test_days=splits.test_days,
                max_train_days=splits.train_days,
            )
            fits = (
                f"what fits: data_loading {plan.load.start}..{plan.load.end} with "
                f"train_days {plan.splits['train_days']}"
            )
        except ParamsError as exc:
            fits = str(exc)
        raise ParamsError(
            f"the log has days {first_day} to {last_day}, but the windows need "
            f"{train.start} to {test.end} (train {train.start}..{train.end}, test ending "
            f"{test.end}); {fits}; `query-predictor dates --write` fits data_loading, splits "
            "and replay to the log"
        )


def update_params_file(path: str | Path, block: dict[str, dict[str, object]]) -> None:
    """Set ``block``'s keys in the params file at ``path`` line by line, so that its comments,
    order and layout stay as they are (params.yaml has sections of ``key: value`` lines). A
    key the section does not have yet is added under the section's first line."""
    path = Path(path)
    lines = path.read_text().splitlines()
    for section, values in block.items():
        for key, value in values.items():
            lines = _set_line(
                lines, section, key, json.dumps(value) if value is not None else "null"
            )
    path.write_text("\n".join(lines) + "\n")


def _set_line(lines: list[str], section: str, key: str, text: str) -> list[str]:
    header = next(
        (i for i, line in enumerate(lines) if re.match(rf"{section}:\s*(#.*)?$", line)), None
    )
    if header is None:
        return [*lines, f"{section}:", f"  {key}: {text}"]
    pattern = re.compile(rf"^(\s+{re.escape(key)}:\s*)([^#]*?)(\s*#.*)?$")
    for i in range(header + 1, len(lines)):
        if lines[i] and not lines[i][0].isspace():
            break  # the next section
        found = pattern.match(lines[i])
        if found:
            head, comment = f"{found.group(1)}{text}", (found.group(3) or "").lstrip()
            if comment:  # keep the comment in its column when there is room
                head += " " * max(1, lines[i].index(comment) - len(head))
            lines[i] = head + comment
            return lines
    return [*lines[: header + 1], f"  {key}: {text}", *lines[header + 1 :]]
