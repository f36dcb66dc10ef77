"""The synthetic log must look like a shared Trino cluster's (../shared/WORKLOAD_FACTS.md)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import polars as pl
import pytest

from query_predictor.params import parse_params
from query_predictor.synth.generator import Day, build_catalogue, generate, summarize
from query_predictor.training.loading import run_load

DAYS = 14


@pytest.fixture(scope="module")
def small_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pl.DataFrame]:
    out = tmp_path_factory.mktemp("raw") / "raw"
    params = parse_params(
        {
            "synth": {
                "queries_per_day": 4000,
                "start_date": "2025-06-01",
                "end_date": str(dt.date(2025, 6, 1) + dt.timedelta(days=DAYS - 1)),
            }
        }
    )
    generate(params.synth, output_dir=out, workers=2)
    frame = pl.read_parquet(out / "**" / "*.parquet", hive_partitioning=False)
    return out, frame


@pytest.fixture(scope="module")
def labeled(small_log: tuple[Path, pl.DataFrame]) -> pl.DataFrame:
    out, _ = small_log
    params = parse_params(
        {
            "data_loading": {
                "raw_path": str(out),
                "start_date": "2025-06-01",
                "end_date": "2025-06-14",
            }
        }
    )
    return run_load(params.data_loading, params.filters).labeled


def test_same_seed_same_bytes_whatever_the_worker_count(tmp_path: Path) -> None:
    synth = parse_params(
        {"synth": {"queries_per_day": 400, "start_date": "2025-06-01", "end_date": "2025-06-03"}}
    ).synth
    generate(synth, output_dir=tmp_path / "a", workers=1)
    generate(synth, output_dir=tmp_path / "b", workers=2)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.parquet"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.parquet"))
    assert files_a == files_b and len(files_a) == 3
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    other = synth.model_copy(update={"seed": synth.seed + 1})
    generate(other, output_dir=tmp_path / "c", workers=1)
    assert (tmp_path / "c" / files_a[0]).read_bytes() != (tmp_path / "a" / files_a[0]).read_bytes()


def test_volume_and_days(small_log: tuple[Path, pl.DataFrame]) -> None:
    _, frame = small_log
    per_day = frame.group_by(pl.col("create_time").dt.date()).len()
    assert per_day.height == DAYS
    # weekends are quieter, but every day is within a factor of the target
    assert per_day["len"].min() > 4000 * 0.4 and per_day["len"].max() < 4000 * 1.6
    assert frame["query_id"].str.contains(r"^\d{8}_\d{6}_\d{5}_[a-z2-9]{5}$").all()


def test_heavy_share_of_filtered_log_in_range(labeled: pl.DataFrame) -> None:
    share = labeled["is_heavy"].mean()
    assert 0.01 <= share <= 0.05, share
    # the heavy few burn most of the CPU
    heavy_cpu = labeled.filter(pl.col("is_heavy"))["cpu_time_millis"].sum()
    assert heavy_cpu / labeled["cpu_time_millis"].sum() > 0.5


def test_workload_mix(small_log: tuple[Path, pl.DataFrame]) -> None:
    out, _ = small_log
    stats = summarize(out)
    assert 0.05 <= stats["metadata_share"] <= 0.30
    assert 0.05 <= stats["curated_share"] <= 0.25
    assert stats["query_types"]["SELECT"] / stats["rows"] > 0.6
    for kind in ("SELECT", "INSERT", "DESCRIBE", "EXPLAIN", "DATA_DEFINITION", "DELETE"):
        assert stats["query_types"].get(kind, 0) > 0, kind
    for code in ("EXCEEDED_GLOBAL_MEMORY_LIMIT", "SYNTAX_ERROR", "QUERY_QUEUE_FULL"):
        assert stats["error_codes"].get(code, 0) > 0, code


SQL_FEATURES = {
    "cte": r"(?i)^\s*(--[^\n]*\n|/\*.*?\*/\s*)*with\s",
    "left join": r"(?i)\bleft (outer )?join\b",
    "full join": r"(?i)\bfull outer join\b",
    "cross join": r"(?i)\bcross join\b(?! unnest)",
    "right join": r"(?i)\bright join\b",
    "in subquery": r"(?i)\bin \(select\b",
    "exists": r"(?i)\bexists \(select\b",
    "window": r"(?i)\bover \(",
    "grouping sets": r"(?i)\bgrouping sets\b",
    "rollup or cube": r"(?i)\b(rollup|cube) \(",
    "unnest": r"(?i)\bunnest\(",
    "distinct": r"(?i)\bselect distinct\b",
    "count distinct": r"(?i)count\(distinct ",
    "order by limit": r"(?i)\border by\b.*\blimit \d+",
    "limit without order": r"(?is)^(?!.*\border by\b).*\blimit \d+",
    "order without limit": r"(?is)\border by\b(?!.*\blimit\b)",
    "partition predicate": r"\b(ds|event_date) (>=|=|between|BETWEEN)",
    "line comment": r"(?m)^--",
    "block comment": r"/\*",
    "quoted identifier": r'\."(user|order|group|values)"',
    "keyword in literal": r"(?i)'[^']*\b(select|from|join|group|order by|delete|drop)\b[^']*'",
    "ctas": r"(?i)^(--[^\n]*\n|/\*.*?\*/\s*)*create table \S+ with",
    "insert": r"(?i)\binsert into\b",
    "show": r"(?i)^show (catalogs|schemas|tables|columns|create table|stats|functions|session)",
    "describe": r"(?i)^describe ",
    "explain": r"(?i)^explain (?!analyze)",
    "explain analyze": r"(?i)^explain analyze ",
    "set session": r"^SET SESSION ",
    "reset session": r"^RESET SESSION ",
    "use": r"^USE \w+\.\w+$",
    "information_schema": r"information_schema\.(tables|columns)",
    "system tables": r"\bsystem\.(runtime|jdbc|metadata)\.",
    "constant select": r"(?i)^select (1|now\(\))$",
    "json": r"json_extract_scalar\(",
    "regexp": r"regexp_like\(",
    "lowercase keywords": r"^select .* from ",
}


@pytest.mark.parametrize("name", sorted(SQL_FEATURES))
def test_sql_variety(small_log: tuple[Path, pl.DataFrame], name: str) -> None:
    _, frame = small_log
    pattern = re.compile(SQL_FEATURES[name])  # Python re: polars has no look-around
    hits = sum(1 for q in frame["query"].drop_nulls() if pattern.search(q))
    assert hits >= 3, f"{name}: {hits} queries"


def test_text_never_names_the_label(small_log: tuple[Path, pl.DataFrame]) -> None:
    _, frame = small_log
    text = frame["query"].drop_nulls()
    assert not text.str.contains(r"(?i)\b(heavy|light|expensive|cheap|slow|fast)\b").any()
    tables = frame["inputs"].explode().drop_nulls().unique()
    assert not tables.str.contains(r"(?i)heavy|light|huge|tiny|big|small|slow").any()


def test_repetition_and_drift(small_log: tuple[Path, pl.DataFrame]) -> None:
    _, frame = small_log
    ordered = frame.drop_nulls("query").sort("create_time")
    # templates: literals replaced, as a fingerprint would
    template = (
        ordered["query"]
        .str.replace_all(r"'[^']*'", "?")
        .str.replace_all(r"\b\d+\b", "?")
        .str.replace_all(r"\s+", " ")
        .str.to_lowercase()
    )
    repeat_share = template.is_duplicated().mean()
    assert 0.4 <= repeat_share <= 0.97, repeat_share
    # new tables and templates appear in the later days
    first = ordered.filter(pl.col("create_time").dt.day() <= 4)["inputs"].explode().unique()
    last = ordered.filter(pl.col("create_time").dt.day() >= DAYS - 3)["inputs"].explode().unique()
    assert len(set(last.drop_nulls()) - set(first.drop_nulls())) > 0


def test_users_have_habits(labeled: pl.DataFrame) -> None:
    per_user = labeled.group_by("user").agg(
        n=pl.len(), heavy=pl.col("is_heavy").mean(), sources=pl.col("source").n_unique()
    )
    busy = per_user.filter(pl.col("n") >= 50)
    # some users are reliably heavy, most rarely are
    assert (busy["heavy"] >= 0.15).sum() >= 1
    assert (busy["heavy"] <= 0.02).sum() >= busy.height // 3
    # a person sticks to one client tool
    assert (busy["sources"] == 1).mean() > 0.9


def test_curated_is_told_apart_by_resource_group(small_log: tuple[Path, pl.DataFrame]) -> None:
    _, frame = small_log
    groups = frame["resource_group_id"].drop_nulls()
    curated = groups.str.contains(r"^global\.curated(\.|$)")
    assert 0 < curated.mean() < 0.3
    assert re.fullmatch(r"global\.[a-z_]+(\.[a-z_]+)?", groups[0])


def test_drift_off_holds_the_world_still() -> None:
    """``synth.drift: false``: no table grows or gains partitions, no table or user appears
    during the range, and the volume is flat; drift on has each of these."""
    for drift in (True, False):
        synth = parse_params({"synth": {"queries_per_day": 2000, "drift": drift}}).synth
        catalogue = build_catalogue(synth)
        world = catalogue.world
        first, last = Day(catalogue, synth, 0), Day(catalogue, synth, world.n_days - 1)
        growing = [t for t in world.tables if t.total_bytes(world.n_days) > t.total_bytes(0)]
        late_tables = [t for t in world.tables if t.created_day > 0]
        late_users = [u for u in world.users if u.start_day > 0]
        if drift:
            assert growing and late_tables and late_users
            assert last.volume > first.volume
        else:
            assert growing == late_tables == late_users == []
            assert last.volume == first.volume
            # users read the still tables, not the growing ones
            still = {id(t) for t in world.tables}
            assert all(id(t) in still for u in world.users for t in u.tables)
