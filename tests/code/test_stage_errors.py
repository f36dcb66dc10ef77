"""User errors end a stage with one line naming the key, file or window, exit status 2, and
nothing written: the stage scripts run as DVC runs them, in a scratch directory."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
import yaml

from query_predictor.core.errors import (
    DataError,
    EmptyWindowError,
    MissingInputError,
    ModelError,
    ParityError,
    PipelineError,
    UnreadableFileError,
)
from query_predictor.core.schema import SchemaError
from query_predictor.params import ParamsError, parse_params
from query_predictor.storage import write_json, write_parquet
from query_predictor.training.replay import replay
from query_predictor.training.splitting import load_zero_cost, run_split

from .rawlog import raw_frame, raw_row

REPO = Path(__file__).resolve().parents[2]
LOAD = ["--out", "labeled", "--quarantine", "quarantine", "--metrics", "load.json"]
LOAD += ["--analysis", "analysis"]


def stage(cwd: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "stages" / f"{name}.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def project(tmp_path: Path, **sections: dict) -> Path:
    """A scratch directory with params.yaml, a one-file raw log and a previous load's outputs."""
    data = {"raw_path": "raw", "start_date": "2025-06-01", "end_date": "2025-06-03"}
    splits = {"train_days": 1, "val_days": 1, "test_days": 1}
    params = {"data_loading": data | sections.pop("data_loading", {}), "splits": splits}
    params |= sections
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    rows = [
        raw_row(
            query_id=f"q{i:04d}",
            query=f"SELECT {i} FROM hive.sales.orders",
            create_time=datetime(2025, 6, 1 + i % 3, 10, i % 60, tzinfo=UTC),
        )
        for i in range(500)
    ]
    write_parquet(raw_frame(rows), tmp_path / "raw" / "day-1.parquet")
    write_json(tmp_path / "load.json", {"previous": "run"})
    write_parquet(raw_frame(rows[:1]), tmp_path / "labeled" / "date=2025-06-01" / "part-0.parquet")
    return tmp_path


def outputs(root: Path) -> dict[str, bytes]:
    names = ("load.json", "labeled", "quarantine", "analysis")
    return {
        str(p.relative_to(root)): p.read_bytes()
        for name in names
        for p in sorted((root / name).rglob("*") if (root / name).is_dir() else [root / name])
        if p.is_file()
    }


def assert_one_line_error(done: subprocess.CompletedProcess[str], *named: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if not line.startswith("INFO ")]
    assert len(errors) == 1 and errors[0].startswith("error: "), done.stderr
    for text in named:
        assert text in errors[0]


def test_the_stage_runs_when_nothing_is_wrong(tmp_path: Path) -> None:
    root = project(tmp_path)
    done = stage(root, "load", *LOAD)
    assert done.returncode == 0, done.stderr
    assert b"previous" not in (root / "load.json").read_bytes()


def test_an_empty_date_window_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    root = project(tmp_path, data_loading={"start_date": "2025-09-01", "end_date": "2025-09-30"})
    before = outputs(root)
    done = stage(root, "load", *LOAD)
    assert_one_line_error(done, "2025-09-01..2025-09-30", "raw", "data_loading.start_date")
    assert outputs(root) == before


def test_a_corrupt_raw_file_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "raw" / "day-2.parquet").write_bytes(b"PAR1 but not really a parquet file")
    before = outputs(root)
    done = stage(root, "load", *LOAD)
    assert_one_line_error(done, "raw/day-2.parquet", "cannot be read")
    assert outputs(root) == before


def test_an_unknown_params_section_is_rejected(tmp_path: Path) -> None:
    root = project(tmp_path, replay_typo={"psi_alert": 0.3})
    done = stage(root, "check_params")
    assert_one_line_error(done, "replay_typo: unknown key")
    before = outputs(root)
    assert_one_line_error(stage(root, "load", *LOAD), "replay_typo")  # every stage reads it all
    assert outputs(root) == before


def test_dvc_runs_the_params_check_on_any_edit_of_params_yaml() -> None:
    check = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["check_params"]
    assert check["params"] == [{"params.yaml": None}]  # the whole file, not some sections


@pytest.mark.parametrize(
    "error",
    [
        ParamsError,
        SchemaError,
        ModelError,
        ParityError,
        DataError,
        EmptyWindowError,
        MissingInputError,
        UnreadableFileError,
    ],
)
def test_every_user_error_is_a_pipeline_error(error: type[Exception]) -> None:
    assert issubclass(error, PipelineError)


def test_library_messages_for_users_are_pipeline_errors(tmp_path: Path) -> None:
    """Errors the library raises with the user's fix in the message: not a plain ValueError."""
    (tmp_path / "zero_cost.json").write_text('{"validated": ["SHOW"]}')
    with pytest.raises(DataError, match=r"zero_cost\.json is not a zero-cost categories file"):
        load_zero_cost(tmp_path / "zero_cost.json")
    with pytest.raises(MissingInputError, match="run `dvc repro zero_cost`"):
        load_zero_cost(tmp_path / "absent.json")
    judge = {"bins": 10, "psi_alert": 0.25, "min_recall": 0.98, "max_fnr": 0.02}
    judge |= {"min_queries": 1, "cost_ratio_alert": 2.0, "new_user_heavy_share": 0.2}
    with pytest.raises(EmptyWindowError, match="replay window holds no labeled query"):
        replay(pl.DataFrame(), None, None, **judge, cost_fn=100.0, cost_fp=1.0)  # type: ignore[arg-type]


def test_a_split_window_without_heavy_queries_is_named(tmp_path: Path) -> None:
    rows = [
        raw_row(
            query_id=f"q{day}{i:03d}",
            query=f"SELECT {i} FROM hive.sales.orders",
            create_time=datetime(2025, 6, day, 10, i % 60, tzinfo=UTC),
        )
        for day in (1, 2, 3)
        for i in range(50)
    ]
    frame = raw_frame(rows)
    labeled = frame.with_columns(
        is_heavy=pl.lit(False),
        heavy_reason=pl.lit(None, pl.String),
        event_date=pl.col("create_time").dt.date(),
    )
    write_parquet(labeled, tmp_path / "labeled" / "part-0.parquet")
    write_json(tmp_path / "zero_cost.json", {"validated": [], "small_limit": 1000})
    params = parse_params(
        {
            "data_loading": {"start_date": "2025-06-01", "end_date": "2025-06-03"},
            "splits": {"train_days": 1, "val_days": 1, "test_days": 1},
        }
    )
    with pytest.raises(EmptyWindowError, match=r"the train window .* no heavy query"):
        run_split(tmp_path / "labeled", tmp_path / "zero_cost.json", params)
