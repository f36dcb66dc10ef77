"""The load day by day: the same result as one pass over the window, and resumable."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from query_predictor.params import Params, parse_params
from query_predictor.storage import write_parquet
from query_predictor.training.loading import run_load
from query_predictor.training.partitions import (
    Checkpoint,
    PartitionDone,
    Plan,
    PolarsRunner,
    load_partitions,
    plan_load,
    process_partition,
    write_outputs,
)

from .rawlog import raw_frame, raw_row


def params_for(raw: Path, **filters: object) -> Params:
    return parse_params(
        {
            "data_loading": {
                "raw_path": str(raw),
                "start_date": "2025-06-01",
                "end_date": "2025-06-04",
            },
            "filters": filters,
        }
    )


def at(day: int, hour: int, minute: int = 0, second: float = 0) -> datetime:
    base = datetime(2025, 6, day, hour, minute, tzinfo=UTC)
    return base + timedelta(seconds=second)


def write_days(raw: Path, rows: list[dict]) -> None:
    frame = raw_frame(rows)
    days = frame.with_columns(day=pl.col("create_time").dt.date())
    for (day,), part in days.group_by(["day"], maintain_order=True):
        write_parquet(part.drop("day"), raw / f"date={day}" / "q.parquet")


def submission(query_id: str, when: datetime, sql: str = "SELECT * FROM hive.s.t") -> dict:
    return raw_row(
        query_id=query_id,
        query=sql,
        create_time=when,
        execution_start_time=when,
        end_time=when + timedelta(seconds=5),
    )


def test_a_burst_across_midnight_is_collapsed_as_in_one_pass(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_days(
        raw,
        [
            submission("q1", at(1, 23, 59, 50)),
            submission("q2", at(2, 0, 0, 20)),  # 30 s later, the next day: a retry
            submission("q3", at(2, 9)),  # hours later: a recurring query, kept
            submission("q4", at(3, 10), sql="SELECT 1 FROM hive.s.u"),
        ],
    )
    result = run_load(params_for(raw).data_loading, params_for(raw).filters)
    assert result.labeled["query_id"].to_list() == ["q1", "q3", "q4"]
    assert result.metrics["dropped"]["duplicate_burst"] == 1  # type: ignore[index]
    # the context rows of 2025-06-02 are counted once, on their own day
    assert result.metrics["steps"]["1_window"]["rows"] == 4  # type: ignore[index]
    assert result.metrics["days"] == 3


def test_rows_before_the_window_are_not_context(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_days(
        raw, [submission("q0", at(1, 0) - timedelta(seconds=10)), submission("q1", at(1, 0))]
    )
    result = run_load(params_for(raw).data_loading, params_for(raw).filters)
    assert result.labeled["query_id"].to_list() == ["q1"]
    assert result.metrics["dropped"]["outside_window"] == 1  # type: ignore[index]


def _log(raw: Path) -> None:
    rows = []
    for day in range(1, 5):
        for i in range(30):
            sql = f"SELECT {i % 7} FROM hive.s.t{i % 5}"
            rows.append(submission(f"d{day}-{i:03d}", at(day, 8, i, i % 13), sql))
    write_days(raw, rows)


class Interrupted(Exception):
    pass


class StopsAfter:
    """A polars runner killed after ``n`` partitions (as a SIGKILL or a lost node would)."""

    name = "polars"

    def __init__(self, n: int) -> None:
        self.n = n

    def run(self, plan: Plan, keys: list[str], store: Checkpoint) -> Iterable[PartitionDone]:
        for i, key in enumerate(keys):
            if i == self.n:
                raise Interrupted
            yield process_partition(plan, key, store)


def _outputs(outcome: object, out: Path) -> dict[str, bytes]:
    write_outputs(outcome, labeled_dir=out / "labeled", quarantine_file=out / "q.parquet")  # type: ignore[arg-type]
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.parquet"))}


def test_an_interrupted_load_resumes_and_gives_the_same_outputs(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _log(raw)
    params = params_for(raw)
    whole = load_partitions(params.data_loading, params.filters, runner=PolarsRunner())
    checkpoint = tmp_path / "checkpoint"
    with pytest.raises(Interrupted):
        load_partitions(
            params.data_loading,
            params.filters,
            runner=StopsAfter(2),
            checkpoint_dir=checkpoint,
        )
    resumed = load_partitions(
        params.data_loading, params.filters, runner=PolarsRunner(), checkpoint_dir=checkpoint
    )
    assert (resumed.reused, resumed.processed) == (2, len(resumed.keys) - 2)
    assert resumed.metrics == whole.metrics
    fresh = load_partitions(
        params.data_loading, params.filters, runner=PolarsRunner(), checkpoint_dir=tmp_path / "c2"
    )
    assert _outputs(resumed, tmp_path / "a") == _outputs(fresh, tmp_path / "b")


def test_a_params_or_raw_change_invalidates_the_checkpoint(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _log(raw)
    params = params_for(raw)
    checkpoint = tmp_path / "checkpoint"
    first = load_partitions(
        params.data_loading, params.filters, runner=PolarsRunner(), checkpoint_dir=checkpoint
    )
    again = load_partitions(
        params.data_loading, params.filters, runner=PolarsRunner(), checkpoint_dir=checkpoint
    )
    assert again.reused == len(again.keys)
    changed = params_for(raw, dedup_window_seconds=10)
    other = load_partitions(
        changed.data_loading, changed.filters, runner=PolarsRunner(), checkpoint_dir=checkpoint
    )
    assert other.reused == 0
    assert [p.name for p in checkpoint.iterdir()] == [other.store.dir.name]  # stale one gone
    write_days(raw, [submission("late", at(4, 23))])  # the raw log changed
    write_parquet(raw_frame([submission("late", at(4, 23))]), raw / "late.parquet")
    assert Checkpoint(checkpoint, plan_load(params.data_loading, params.filters)).dir != (
        first.store.dir
    )


def test_a_partition_another_run_wrote_meanwhile_is_kept(tmp_path: Path) -> None:
    """Two runs of the same plan (a stage left running by an interrupted ``dvc repro`` and
    the next one) may finish a partition each: the second finds it written, and goes on."""
    raw = tmp_path / "raw"
    _log(raw)
    params = params_for(raw)
    plan = plan_load(params.data_loading, params.filters)
    first, second = Checkpoint(tmp_path / "c", plan), Checkpoint(tmp_path / "c", plan)
    labeled = pl.DataFrame({"query_id": ["a"]})
    first.put("2025-06-01", labeled, labeled.clear(), {"rows": 1})
    second.put("2025-06-01", labeled, labeled.clear(), {"rows": 1})
    assert second.has("2025-06-01") and second.counts("2025-06-01") == {"rows": 1}
    assert [p.name for p in second.dir.iterdir()] == ["part=2025-06-01"]  # no temporary left
    (second.dir / "part=2025-06-02").mkdir()
    (second.dir / "part=2025-06-02" / "stray").write_text("")  # in the way, not a partition
    with pytest.raises(OSError):
        second.put("2025-06-02", labeled, labeled.clear(), {"rows": 1})


def test_plan_reads_each_day_only_from_the_files_that_hold_it(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _log(raw)
    params = params_for(raw)
    plan = plan_load(params.data_loading, params.filters)
    assert plan.total_rows == 120
    assert plan.keys()[-1] == "none"
    assert [(f.first.date(), f.last.date()) for f in plan.files] == [  # type: ignore[union-attr]
        (date(2025, 6, d), date(2025, 6, d)) for d in range(1, 5)
    ]
