"""Stage ``zero_cost`` (which categories are never heavy) and stage ``split`` that uses it."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from query_predictor.core.classifier import QueryClassifier
from query_predictor.core.label import LabelRule
from query_predictor.params import Params, ZeroCost, parse_params
from query_predictor.storage import write_parquet
from query_predictor.training.splitting import SplitResult, load_zero_cost, run_split
from query_predictor.training.zero_cost import (
    QUERY_START,
    categorize,
    category_table,
    compact,
    decide,
    heavy_in_candidates,
)

from .rawlog import raw_frame, raw_row

GIB = 2**30
RULES = ZeroCost()  # min_support 100, max_heavy_rate 0.01, require_zero_heavy


def table(*rows: tuple[str, int, int]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "category": [r[0] for r in rows],
            "count": [r[1] for r in rows],
            "heavy": [r[2] for r in rows],
            "heavy_rate": [r[2] / r[1] for r in rows],
        },
        schema={
            "category": pl.String,
            "count": pl.UInt32,
            "heavy": pl.UInt32,
            "heavy_rate": pl.Float64,
        },
    )


def labelled(rows: list[dict[str, Any]]) -> pl.DataFrame:
    rule = LabelRule(
        cpu_threshold_seconds=300.0,
        memory_threshold_gb=10.0,
        resource_error_codes=("EXCEEDED_LOCAL_MEMORY_LIMIT",),
    )
    return rule.apply(raw_frame(rows))


# --------------------------------------------------------------------------- decide


@pytest.mark.parametrize(
    ("row", "rules", "validated", "reason"),
    [
        (("SHOW", 500, 0), RULES, True, "validated"),
        (("SHOW", 100, 0), RULES, True, "validated"),  # min_support is inclusive
        (("DESCRIBE", 99, 0), RULES, False, "support 99 < min_support 100"),
        (
            ("METADATA", 1000, 20),
            RULES,
            False,
            "heavy rate 0.0200 >= max_heavy_rate 0.01",
        ),
        (  # the rate must be strictly below the maximum
            ("METADATA", 1000, 10),
            ZeroCost(require_zero_heavy=False),
            False,
            "heavy rate 0.0100 >= max_heavy_rate 0.01",
        ),
        (
            ("DDL", 1000, 1),
            RULES,
            False,
            "1 heavy queries and require_zero_heavy is true",
        ),
        (("DDL", 1000, 1), ZeroCost(require_zero_heavy=False), True, "validated"),
        (("SMALL_LIMIT_SELECT", 50, 0), ZeroCost(min_support=50), True, "validated"),
        (("OTHER", 100_000, 0), RULES, False, "not a candidate"),
        (("EXPLAIN_ANALYZE", 1000, 0), RULES, False, "not a candidate"),
        (("DESCRIBE", 1000, 0), ZeroCost(candidates=("SHOW",)), False, "not a candidate"),
        (  # not a candidate wins over every other rule
            ("OTHER", 1, 1),
            RULES,
            False,
            "not a candidate",
        ),
        (  # support is checked before the heavy rate
            ("USE", 10, 10),
            RULES,
            False,
            "support 10 < min_support 100",
        ),
    ],
)
def test_decide(row: tuple[str, int, int], rules: ZeroCost, validated: bool, reason: str) -> None:
    verdicts = decide(table(row), rules)
    category, count, heavy = row
    assert verdicts == {
        category: {
            "count": count,
            "heavy": heavy,
            "heavy_rate": round(heavy / count, 6),
            "candidate": category in rules.candidates,
            "validated": validated,
            "reason": reason,
        }
    }


def test_decide_gives_one_verdict_per_category() -> None:
    verdicts = decide(
        table(("OTHER", 5000, 300), ("SHOW", 400, 0), ("DDL", 150, 2), ("USE", 3, 0)), RULES
    )
    assert list(verdicts) == ["OTHER", "SHOW", "DDL", "USE"]
    assert [c for c, v in verdicts.items() if v["validated"]] == ["SHOW"]
    assert decide(table(), RULES) == {}


# --------------------------------------------------------------------------- categories


def queries() -> pl.DataFrame:
    rows = []
    for i, (sql, cpu_ms, error) in enumerate(
        [
            ("SHOW TABLES", 10, None),
            ("SHOW TABLES FROM hive.sales", 20, None),
            ("SHOW STATS FOR hive.sales.orders", 400_000, None),  # heavy in a candidate
            ("DESCRIBE hive.sales.orders", 5, None),
            ("SELECT * FROM information_schema.columns", 10, "EXCEEDED_LOCAL_MEMORY_LIMIT"),
            ("SELECT * FROM hive.sales.orders LIMIT 10", 100, None),
            ("SELECT region, count(*) FROM hive.sales.orders GROUP BY 1", 900_000, None),
            ("SELECT * FROM hive.sales.orders", 1_000, None),
            ("EXPLAIN ANALYZE SELECT * FROM hive.sales.orders", 600_000, None),
        ]
    ):
        rows.append(
            raw_row(
                query_id=f"20250601_000000_{i:05d}_zcost",
                query=sql,
                cpu_time_millis=cpu_ms,
                error_code=error,
                query_state="FAILED" if error else "FINISHED",
            )
        )
    return categorize(labelled(rows), QueryClassifier())


def test_categorize_adds_one_category_per_row() -> None:
    frame = queries()
    assert frame["category"].to_list() == [
        "SHOW",
        "SHOW",
        "SHOW",
        "DESCRIBE",
        "METADATA",
        "SMALL_LIMIT_SELECT",
        "OTHER",
        "OTHER",
        "EXPLAIN_ANALYZE",
    ]
    assert frame["category"].dtype == pl.String


def test_category_table_counts_and_orders() -> None:
    out = category_table(queries())
    assert out.rows() == [
        ("SHOW", 3, 1, pytest.approx(1 / 3)),
        ("OTHER", 2, 1, 0.5),
        ("DESCRIBE", 1, 0, 0.0),
        ("EXPLAIN_ANALYZE", 1, 1, 1.0),
        ("METADATA", 1, 1, 1.0),
        ("SMALL_LIMIT_SELECT", 1, 0, 0.0),
    ]


def test_heavy_in_candidates_lists_exactly_the_heavy_candidate_rows() -> None:
    frame = queries()
    out = heavy_in_candidates(frame, RULES)
    expected = frame.filter(pl.col("is_heavy") & pl.col("category").is_in(list(RULES.candidates)))
    assert set(out["query_id"]) == set(expected["query_id"])
    assert out.height == expected.height == 2
    assert out.columns == [
        "category",
        "query_id",
        "user",
        "heavy_reason",
        "cpu_seconds",
        "peak_memory_gib",
        "error_code",
        "query_start",
    ]
    assert out.rows(named=True) == [
        {
            "category": "METADATA",
            "query_id": "20250601_000000_00004_zcost",
            "user": "alice",
            "heavy_reason": "resource_error",
            "cpu_seconds": 0.01,
            "peak_memory_gib": 1 / 16,
            "error_code": "EXCEEDED_LOCAL_MEMORY_LIMIT",
            "query_start": "SELECT * FROM information_schema.columns",
        },
        {
            "category": "SHOW",
            "query_id": "20250601_000000_00002_zcost",
            "user": "alice",
            "heavy_reason": "cpu",
            "cpu_seconds": 400.0,
            "peak_memory_gib": 1 / 16,
            "error_code": None,
            "query_start": "SHOW STATS FOR hive.sales.orders",
        },
    ]
    # heavy rows outside the candidates (OTHER, EXPLAIN_ANALYZE) are the model's business
    assert heavy_in_candidates(frame, ZeroCost(candidates=("DDL",))).height == 0


def test_heavy_in_candidates_truncates_the_query() -> None:
    row = raw_row(query="SHOW TABLES -- " + "x" * 1000, cpu_time_millis=300_000)
    out = heavy_in_candidates(categorize(labelled([row]), QueryClassifier()), RULES)
    assert len(out["query_start"][0]) == 300


# --------------------------------------------------------------------------- run_split

FIRST_DAY = date(2025, 6, 1)
N_DAYS = 10  # 2 head days, then train 4, val 2, test 2
DAY_ROWS = 40  # per day: 4 SHOW, 3 heavy, the rest light at every distance


def split_params(**sections: dict[str, Any]) -> Params:
    return parse_params(
        {
            "data_loading": {
                "start_date": str(FIRST_DAY),
                "end_date": str(FIRST_DAY + timedelta(days=N_DAYS - 1)),
            },
            "splits": {"train_days": 4, "val_days": 2, "test_days": 2},
            **sections,
        }
    )


def day_rows(day: date, *, heavy: int = 3) -> list[dict[str, Any]]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    rows = []
    for i in range(DAY_ROWS):
        query = f"SELECT * FROM hive.sales.orders WHERE id = {i}"
        if i < 4:
            query = "SHOW TABLES FROM hive.sales"
        cpu_ms = 400_000 if 4 <= i < 4 + heavy else (i * 7_919) % 300_000
        rows.append(
            raw_row(
                query_id=f"{day:%Y%m%d}_{i:06d}_00000_split",
                query=query,
                create_time=start + timedelta(minutes=35 * i),  # spread over the whole day
                cpu_time_millis=cpu_ms,
            )
        )
    return rows


def write_labeled(root: Path, heavy_by_day: dict[date, int] | None = None) -> pl.DataFrame:
    """The load stage's output for N_DAYS days: one ``date=.../part-0.parquet`` per day."""
    heavy_by_day = heavy_by_day or {}
    rows = []
    for n in range(N_DAYS):
        day = FIRST_DAY + timedelta(days=n)
        rows += day_rows(day, heavy=heavy_by_day.get(day, 3))
    frame = labelled(rows).with_columns(
        workload=pl.lit("NON-CURATED"), event_date=pl.col("create_time").dt.date()
    )
    for (day,), part in frame.group_by("event_date"):
        write_parquet(part, root / "labeled" / f"date={day}" / "part-0.parquet")
    return frame


def write_zero_cost(root: Path, validated: list[str], small_limit: int = 1000) -> Path:
    path = root / "zero_cost_categories.json"
    path.write_text(json.dumps({"validated": validated, "small_limit": small_limit}))
    return path


def split(tmp_path: Path, **kw: Any) -> tuple[pl.DataFrame, SplitResult]:
    frame = write_labeled(tmp_path, kw.pop("heavy_by_day", None))
    zero_cost = write_zero_cost(tmp_path, kw.pop("validated", ["SHOW"]))
    return frame, run_split(tmp_path / "labeled", zero_cost, split_params(**kw))


@pytest.fixture
def done(tmp_path: Path) -> tuple[pl.DataFrame, SplitResult]:
    return split(tmp_path)


def test_split_windows_in_the_metrics(done: tuple[pl.DataFrame, SplitResult]) -> None:
    _, result = done
    splits = result.metrics["splits"]
    assert {n: (s["start"], s["end"], s["days"]) for n, s in splits.items()} == {  # type: ignore[union-attr]
        "train": ("2025-06-03", "2025-06-06", 4),
        "val": ("2025-06-07", "2025-06-08", 2),
        "test": ("2025-06-09", "2025-06-10", 2),
    }
    for name, frame in result.frames.items():
        window = splits[name]  # type: ignore[index]
        days = set(map(str, frame["event_date"]))
        assert min(days) >= window["start"] and max(days) <= window["end"]


def test_validated_categories_are_removed_and_counted(
    done: tuple[pl.DataFrame, SplitResult],
) -> None:
    _, result = done
    assert result.metrics["zero_cost_removed"] == {"train": 16, "val": 8, "test": 8}
    assert result.metrics["zero_cost_categories"] == ["SHOW"]
    assert "SHOW" not in set(result.before_sampling["category"])
    for frame in result.frames.values():
        assert "SHOW" not in set(frame["category"])
        assert not frame["query"].str.starts_with("SHOW").any()


def test_no_row_is_lost_or_in_two_splits(done: tuple[pl.DataFrame, SplitResult]) -> None:
    labeled, result = done
    before = {
        "train": result.before_sampling,
        "val": result.frames["val"],
        "test": result.frames["test"],
    }
    ids = [q for frame in before.values() for q in frame["query_id"]]
    assert len(ids) == len(set(ids))  # no row in two splits
    removed = sum(result.metrics["zero_cost_removed"].values())  # type: ignore[union-attr]
    head = labeled.filter(pl.col("event_date") < date(2025, 6, 3)).height
    assert head == 2 * DAY_ROWS
    assert len(ids) + removed + head == labeled.height  # none lost
    assert set(result.frames["train"]["query_id"]) <= set(result.before_sampling["query_id"])
    splits = result.metrics["splits"]
    assert splits["train"]["rows_before_sampling"] == result.before_sampling.height  # type: ignore[index]
    assert [splits[n]["rows"] for n in ("train", "val", "test")] == [  # type: ignore[index]
        f.height for f in result.frames.values()
    ]


def test_rows_metric_counts_the_rows_read_from_the_split_windows(
    done: tuple[pl.DataFrame, SplitResult],
) -> None:
    labeled, result = done
    splits = result.metrics["splits"]
    in_splits = splits["train"]["rows_before_sampling"] + sum(  # type: ignore[index]
        splits[n]["rows"]  # type: ignore[index]
        for n in ("val", "test")
    )
    removed = sum(result.metrics["zero_cost_removed"].values())  # type: ignore[union-attr]
    assert result.metrics["rows"] == in_splits + removed == labeled.height - 2 * DAY_ROWS


def test_val_and_test_keep_their_natural_heavy_share(
    done: tuple[pl.DataFrame, SplitResult],
) -> None:
    labeled, result = done
    for name in ("val", "test"):
        s = result.metrics["splits"][name]  # type: ignore[index]
        natural = labeled.filter(
            pl.col("event_date").cast(pl.String).is_between(pl.lit(s["start"]), pl.lit(s["end"]))
            & ~pl.col("query").str.starts_with("SHOW")
        )
        frame = result.frames[name]
        assert set(frame["query_id"]) == set(natural["query_id"])
        assert s["heavy_share"] == round(natural["is_heavy"].mean(), 6) == round(3 / 36, 6)  # type: ignore[arg-type]
        assert s["heavy"] == 6


def test_train_is_boundary_sampled(done: tuple[pl.DataFrame, SplitResult]) -> None:
    _, result = done
    before, after = result.before_sampling, result.frames["train"]
    heavy = before.filter("is_heavy")
    assert heavy.height == 12
    assert set(heavy["query_id"]) <= set(after["query_id"])  # every heavy row kept
    assert after.height == heavy.height * 6  # 5 light per heavy, exactly
    sampling = result.metrics["sampling"]
    assert sampling["achieved_ratio"] == 5.0  # type: ignore[index]
    assert sampling["ratio_reachable"] is True  # type: ignore[index]
    train = result.metrics["splits"]["train"]  # type: ignore[index]
    assert train["heavy_share_before_sampling"] == round(12 / 144, 6)
    assert train["heavy_share"] == round(1 / 6, 6)
    assert len(result.curve) == 101
    assert sum(b["light_before"] for b in result.buckets) == 132  # type: ignore[misc]


def test_nothing_validated_keeps_every_row(tmp_path: Path) -> None:
    _, result = split(tmp_path, validated=[])
    assert result.metrics["zero_cost_removed"] == {"train": 0, "val": 0, "test": 0}
    assert result.frames["val"].height == 2 * DAY_ROWS
    assert Counter(result.frames["test"]["category"])["SHOW"] == 8


@pytest.mark.parametrize(
    ("empty_days", "message"),
    [
        ((date(2025, 6, 7), date(2025, 6, 8)), r"the val window 2025-06-07\.\.2025-06-08"),
        ((date(2025, 6, 10),), None),  # one heavy day left in test is enough
        ((date(2025, 6, 9), date(2025, 6, 10)), r"the test window 2025-06-09\.\.2025-06-10"),
        (
            tuple(date(2025, 6, d) for d in range(3, 7)),
            r"the train window 2025-06-03\.\.2025-06-06",
        ),
        ((date(2025, 6, 1), date(2025, 6, 2)), None),  # head days do not matter
    ],
)
def test_a_window_without_heavy_rows_is_named(
    tmp_path: Path, empty_days: tuple[date, ...], message: str | None
) -> None:
    heavy_by_day = dict.fromkeys(empty_days, 0)
    if message is None:
        split(tmp_path, heavy_by_day=heavy_by_day)
        return
    with pytest.raises(ValueError, match=message + r" has no heavy query; .*splits\.\*"):
        split(tmp_path, heavy_by_day=heavy_by_day)


def test_heavy_rows_only_in_a_validated_category_leave_the_window_without_heavy(
    tmp_path: Path,
) -> None:
    with pytest.raises(ValueError, match=r"the train window .* has no heavy query"):
        split(tmp_path, validated=["OTHER"])


def test_zero_cost_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"`dvc repro zero_cost`"):
        load_zero_cost(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"validated": ["SHOW"]}))
    with pytest.raises(ValueError, match=r"is not a zero-cost categories file \(KeyError\('small"):
        load_zero_cost(bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"is not a zero-cost categories file"):
        load_zero_cost(bad)
    assert load_zero_cost(write_zero_cost(tmp_path, ["SHOW", "USE"], 50)) == (["SHOW", "USE"], 50)


def test_compact_keeps_what_the_stage_reports() -> None:
    long_show = raw_row(query="SHOW TABLES -- " + "x" * 1000, cpu_time_millis=300_000)
    frame = pl.concat([queries(), categorize(labelled([long_show]), QueryClassifier())])
    small = compact(frame)
    assert small["query"].filter(~small["is_heavy"]).null_count() == (~frame["is_heavy"]).sum()
    assert small["query"].str.len_chars().max() == QUERY_START
    assert category_table(small).equals(category_table(frame))
    for rules in (RULES, ZeroCost(candidates=("DDL",))):
        assert heavy_in_candidates(small, rules).equals(heavy_in_candidates(frame, rules))
