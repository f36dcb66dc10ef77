"""Time windows of the splits and reading labeled rows by window."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from query_predictor.params import ParamsError, parse_params
from query_predictor.storage import write_parquet
from query_predictor.training.windows import (
    SPLITS,
    Window,
    check_coverage,
    plan_dates,
    read_labeled,
    split_windows,
    update_params_file,
    windows_for,
)

START, END = date(2025, 6, 1), date(2025, 7, 15)  # data_loading defaults: 45 days
ONE = timedelta(days=1)


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def default_windows() -> dict[str, Window]:
    return split_windows(START, END, train_days=30, val_days=7, test_days=7)


# --------------------------------------------------------------------------- split_windows


def test_default_windows() -> None:
    windows = default_windows()
    assert list(windows) == list(SPLITS)
    assert {n: w.as_dict() for n, w in windows.items()} == {
        "train": {"start": "2025-06-02", "end": "2025-07-01"},
        "val": {"start": "2025-07-02", "end": "2025-07-08"},
        "test": {"start": "2025-07-09", "end": "2025-07-15"},
    }
    assert [w.days for w in windows.values()] == [30, 7, 7]
    assert [w.name for w in windows.values()] == list(SPLITS)


def test_default_params_give_the_default_windows() -> None:
    params = parse_params({})
    windows = split_windows(
        params.data_loading.start_date,
        params.data_loading.end_date,
        train_days=params.splits.train_days,
        val_days=params.splits.val_days,
        test_days=params.splits.test_days,
    )
    assert windows == default_windows()


def test_windows_that_fill_the_range_exactly_leave_no_head() -> None:
    windows = split_windows(START, END, train_days=31, val_days=7, test_days=7)
    assert windows["train"].start == START
    assert windows["test"].end == END


def test_one_day_each() -> None:
    windows = split_windows(START, START + 2 * ONE, train_days=1, val_days=1, test_days=1)
    assert [(w.start, w.end) for w in windows.values()] == [
        (date(2025, 6, 1), date(2025, 6, 1)),
        (date(2025, 6, 2), date(2025, 6, 2)),
        (date(2025, 6, 3), date(2025, 6, 3)),
    ]


@pytest.mark.parametrize(
    ("lengths", "need"),
    [((40, 7, 7), 54), ((31, 8, 7), 46), ((1, 1, 44), 46), ((45, 1, 1), 47)],
)
def test_too_many_days_name_the_splits(lengths: tuple[int, int, int], need: int) -> None:
    train, val, test = lengths
    with pytest.raises(
        ValueError,
        match=rf"splits need {need} days but data_loading covers 45 \(2025-06-01 to 2025-07-15\)",
    ):
        split_windows(START, END, train_days=train, val_days=val, test_days=test)


def test_windows_that_do_not_fit_are_a_params_error() -> None:
    # the split stage turns this into one line naming the params, not a traceback
    params = parse_params({"splits": {"train_days": 40}})
    with pytest.raises(ParamsError, match=r"splits need 54 days but data_loading covers 45"):
        split_windows(
            params.data_loading.start_date,
            params.data_loading.end_date,
            train_days=params.splits.train_days,
            val_days=params.splits.val_days,
            test_days=params.splits.test_days,
        )


@settings(max_examples=200, deadline=None)
@given(
    start=st.dates(min_value=date(2000, 1, 1), max_value=date(2030, 12, 31)),
    span=st.integers(min_value=1, max_value=400),
    train=st.integers(min_value=1, max_value=250),
    val=st.integers(min_value=1, max_value=60),
    test=st.integers(min_value=1, max_value=60),
)
def test_windows_partition_the_range(start: date, span: int, train: int, val: int, test: int):
    end = start + (span - 1) * ONE
    if train + val + test > span:
        with pytest.raises(ValueError, match=rf"splits need {train + val + test} days"):
            split_windows(start, end, train_days=train, val_days=val, test_days=test)
        return
    windows = split_windows(start, end, train_days=train, val_days=val, test_days=test)
    train_w, val_w, test_w = (windows[n] for n in SPLITS)
    assert (train_w.days, val_w.days, test_w.days) == (train, val, test)
    assert test_w.end == end  # the test window is the most recent data
    assert val_w.start == train_w.end + ONE  # contiguous ...
    assert test_w.start == val_w.end + ONE
    head = days(start, train_w.start - ONE)  # ... and, with the head, every day exactly once
    covered = head + days(train_w.start, train_w.end) + days(val_w.start, val_w.end)
    covered += days(test_w.start, test_w.end)
    assert covered == days(start, end)
    assert len(head) == span - train - val - test


# --------------------------------------------------------------------------- day edges


def event_date(moments: list[datetime]) -> pl.DataFrame:
    """Rows dated the way the load stage dates them: the UTC day of ``create_time``."""
    frame = pl.DataFrame({"create_time": moments}, schema={"create_time": pl.Datetime("us", "UTC")})
    return frame.with_columns(event_date=pl.col("create_time").dt.date())


def utc(day: date, *hms: int) -> datetime:
    return datetime(day.year, day.month, day.day, *hms, tzinfo=UTC)


LAST = (23, 59, 59, 999_999)


@pytest.mark.parametrize(
    ("moment", "window"),
    [
        (utc(date(2025, 6, 1), *LAST), None),
        (utc(date(2025, 6, 2)), "train"),
        (utc(date(2025, 7, 1), *LAST), "train"),
        (utc(date(2025, 7, 2)), "val"),
        (utc(date(2025, 7, 8), *LAST), "val"),
        (utc(date(2025, 7, 9)), "test"),
        (utc(date(2025, 7, 15), *LAST), "test"),
        (utc(date(2025, 7, 16)), None),
    ],
)
def test_rows_fall_in_exactly_one_window_by_utc_day(moment: datetime, window: str | None) -> None:
    frame = event_date([moment])
    found = [n for n, w in default_windows().items() if frame.filter(w.contains()).height]
    assert found == ([window] if window else [])


def test_contains_takes_another_column() -> None:
    frame = pl.DataFrame({"day": [date(2025, 7, 1), date(2025, 7, 2)]})
    assert frame.filter(default_windows()["val"].contains("day"))["day"].to_list() == [
        date(2025, 7, 2)
    ]


# --------------------------------------------------------------------------- read_labeled


def write_days(root: Path, per_day: dict[date, int]) -> int:
    total = 0
    for day, n in per_day.items():
        part = pl.DataFrame(
            {
                "query_id": [f"{day:%Y%m%d}_{i:05d}" for i in range(n)],
                "is_heavy": [i == 0 for i in range(n)],
                "event_date": [day] * n,
            }
        )
        write_parquet(part, root / f"date={day}" / "part-0.parquet")
        total += n
    return total


PER_DAY = {
    date(2025, 6, 1): 3,
    date(2025, 6, 2): 2,
    date(2025, 7, 1): 4,
    date(2025, 7, 2): 5,
    date(2025, 7, 8): 1,
    date(2025, 7, 9): 2,
    date(2025, 7, 15): 3,
    date(2025, 7, 16): 6,
}


@pytest.mark.parametrize(
    ("window", "wanted"),
    [
        ("train", [date(2025, 6, 2), date(2025, 7, 1)]),
        ("val", [date(2025, 7, 2), date(2025, 7, 8)]),
        ("test", [date(2025, 7, 9), date(2025, 7, 15)]),
    ],
)
def test_read_labeled_returns_the_window_only(
    tmp_path: Path, window: str, wanted: list[date]
) -> None:
    write_days(tmp_path, PER_DAY)
    out = read_labeled(tmp_path, default_windows()[window])
    assert out.columns == ["query_id", "is_heavy", "event_date"]  # no hive "date" column
    assert sorted(set(out["event_date"])) == wanted
    assert out.height == sum(PER_DAY[d] for d in wanted)
    assert out["query_id"].is_unique().all()


def test_read_labeled_without_window_reads_everything(tmp_path: Path) -> None:
    total = write_days(tmp_path, PER_DAY)
    out = read_labeled(str(tmp_path))
    assert out.height == total
    windows = default_windows().values()
    in_windows = sum(out.filter(w.contains()).height for w in windows)
    assert in_windows == total - PER_DAY[date(2025, 6, 1)] - PER_DAY[date(2025, 7, 16)]


def test_read_labeled_window_without_rows_is_an_empty_frame(tmp_path: Path) -> None:
    write_days(tmp_path, {date(2025, 6, 1): 2})
    out = read_labeled(tmp_path, default_windows()["test"])
    assert out.height == 0
    assert out.columns == ["query_id", "is_heavy", "event_date"]


@pytest.mark.parametrize("sub", ["", "missing"])
def test_read_labeled_without_files_names_the_load_stage(tmp_path: Path, sub: str) -> None:
    (tmp_path / "date=2025-06-01").mkdir()
    (tmp_path / "date=2025-06-01" / "notes.txt").write_text("not parquet")
    with pytest.raises(FileNotFoundError, match=r"no labeled data under .*`dvc repro load`"):
        read_labeled(tmp_path / sub)


# --------------------------------------------------------------------------- fitting a log


def test_plan_dates_fits_replay_test_val_and_train_newest_first() -> None:
    plan = plan_dates(
        date(2025, 6, 1),
        date(2025, 7, 29),
        replay_days=14,
        val_days=7,
        test_days=7,
        max_train_days=30,
    )
    assert plan.replay is not None
    assert (plan.replay.start, plan.replay.end) == (date(2025, 7, 16), date(2025, 7, 29))
    assert (plan.load.start, plan.load.end) == (date(2025, 6, 1), date(2025, 7, 15))
    assert plan.splits == {"train_days": 30, "val_days": 7, "test_days": 7}
    block = plan.params_block()
    params = parse_params(block)  # the block is valid params
    windows = windows_for(params)
    assert windows["test"].end == date(2025, 7, 15)


def test_plan_dates_shortens_training_to_what_the_log_has() -> None:
    plan = plan_dates(
        date(2025, 6, 1),
        date(2025, 6, 20),
        replay_days=3,
        val_days=3,
        test_days=3,
        max_train_days=30,
    )
    assert plan.splits["train_days"] == 11
    assert plan.load.end == date(2025, 6, 17)


def test_a_log_too_short_for_the_windows_says_which_fit() -> None:
    with pytest.raises(ParamsError, match=r"covers 9 day\(s\).*need 29.*--replay-days 0"):
        plan_dates(
            date(2025, 6, 1),
            date(2025, 6, 9),
            replay_days=14,
            val_days=7,
            test_days=7,
            max_train_days=30,
        )


def test_check_coverage_names_the_days_and_what_fits() -> None:
    params = parse_params({})  # windows 2025-06-16 .. 2025-07-15
    check_coverage(date(2025, 6, 1), date(2025, 7, 15), params)
    with pytest.raises(ParamsError, match=r"days 2025-06-01 to 2025-06-25.*what fits"):
        check_coverage(date(2025, 6, 1), date(2025, 6, 25), params)
    with pytest.raises(ParamsError, match=r"no query of the log is left"):
        check_coverage(None, None, params)


def test_update_params_file_keeps_comments_and_layout(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(
        "# top\ndata_loading:\n  raw_path: data/raw            # where\n"
        '  start_date: "2025-06-01"\nreplay:\n  start_date: "2025-07-16"\n'
    )
    update_params_file(
        path,
        {
            "data_loading": {"raw_path": "s3://b/logs", "end_date": "2025-06-09"},
            "replay": {"start_date": "2025-06-10"},
            "splits": {"train_days": 4},
        },
    )
    text = path.read_text()
    assert text.startswith("# top\ndata_loading:\n")
    assert '  raw_path: "s3://b/logs"       # where\n' in text
    assert '  end_date: "2025-06-09"' in text and '  start_date: "2025-06-10"' in text
    params = yaml.safe_load(text)
    assert params["splits"] == {"train_days": 4}
    assert params["data_loading"]["start_date"] == "2025-06-01"
