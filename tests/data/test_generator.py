"""The synthetic log must look like a shared Trino cluster's, and must not be kinder to the
model than a real log: published figures it has to land in (heavy share 1-5 % of the
filtered log burning most of the CPU, SELECT-dominated mix, metadata share 5-30 %, most
queries repeating a template), and the things real logs throw at a featurizer (comma joins,
queries over 10-40 tables, look-backs of decades, service accounts named like people,
partition columns and tables named every which way, templates that first appear late).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import polars as pl
import pytest

from query_predictor.params import parse_params
from query_predictor.synth.generator import Day, build_catalogue, generate, summarize
from query_predictor.synth.world import DATE_KINDS, build_world
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
    "comma join": r"(?is)\bfrom\s+[^\s,()]+(\s+(as\s+)?\w+)?\s*,\s*[\w\"]+\.",
    "date look-back in years": r"(?i)interval '\d+' year|date_add\('year'",
    "integer day key": r"\w (>=|>|=|between|BETWEEN) 20\d{6}\b",
    "compact day string": r"\w (>=|>|=|between|BETWEEN) '20\d{6}'",
    "every identifier quoted": r'(?i)\bfrom\s+"\w+"\."[^"]+"\."[^"]+"',
    "quoted name with a space or dash": r'\."[^".]*[- ][^".]*"',
    "upper-case table": r"\b(FROM|JOIN|from|join) \w+\.\w+\.[A-Z][A-Z0-9_]+\b",
    "camelCase table": r"\b(FROM|JOIN|from|join) \w+\.\w+\.[a-zA-Z][a-z0-9]+[A-Z]\w*",
    "versioned or numbered table": r"\b(FROM|JOIN|from|join) \w+\.\w+\.\w*[a-z](_v?\d+|\d)\b",
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
    "case and cast": r"(?i)\bcase when .* then .* else cast\(",
    "or in a filter": r"(?i)\(\S.* or \w+\.\S+ is null\)",
    "having": r"(?i)\bhaving count\(\*\) > \d+",
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
    template = _template(ordered["query"])
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


def _template(queries: pl.Series) -> pl.Series:
    """Literals replaced, whitespace and case folded: as a fingerprint would."""
    return (
        queries.str.replace_all(r"'[^']*'", "?")
        .str.replace_all(r"\b\d+\b", "?")
        .str.replace_all(r"\s+", " ")
        .str.to_lowercase()
    )


def test_comma_joins_in_a_share_of_multi_table_queries(
    small_log: tuple[Path, pl.DataFrame],
) -> None:
    _, frame = small_log
    multi = frame.filter(
        pl.col("query").is_not_null()
        & (pl.col("inputs").list.len() >= 2)
        & pl.col("query_type").is_in(["SELECT", "INSERT"])
    )
    comma = re.compile(SQL_FEATURES["comma join"])
    hits = [q for q in multi["query"] if comma.search(q)]
    assert 0.1 <= len(hits) / multi.height <= 0.6, len(hits) / multi.height
    # the join condition sits in WHERE: alias.key = alias.key
    condition = re.compile(r"(?is)\bwhere\b.*\b(\w+)\.(\w+) = (?!\1\.)\w+\.\2\b")
    assert sum(1 for q in hits if condition.search(q)) / len(hits) > 0.8


def test_wide_queries_cost_what_they_read(labeled: pl.DataFrame) -> None:
    n_tables = labeled["inputs"].list.len()
    assert 10 <= n_tables.max() <= 40
    wide = labeled.filter(n_tables >= 10)
    assert 0.001 <= wide.height / labeled.height <= 0.05, wide.height / labeled.height
    single = labeled.filter(n_tables == 1)
    # no label shortcut: wide queries are heavier because they read more
    assert wide["physical_input_bytes"].median() > 5 * single["physical_input_bytes"].median()
    assert wide["is_heavy"].mean() > 2 * single["is_heavy"].mean()


def test_some_look_backs_reach_back_decades(small_log: tuple[Path, pl.DataFrame]) -> None:
    _, frame = small_log
    years: list[int] = []
    for q, created in frame.select("query", "create_time").drop_nulls().iter_rows():
        years += [int(n) for n in re.findall(r"(?i)interval '(\d+)' year", q)]
        years += [
            created.year - int(y) for y in re.findall(r"(?i)>=? (?:date )?'(\d{4})-\d\d-\d\d'", q)
        ]
    assert max(years) >= 15
    assert sum(y >= 10 for y in years) >= 20


def test_service_accounts_are_not_told_by_their_names(
    small_log: tuple[Path, pl.DataFrame],
) -> None:
    _, frame = small_log
    world = build_world(parse_params({}).synth.seed, DAYS)
    services = [u.name for u in world.users if u.kind in ("bi", "etl", "etl_curated")]
    humans = [u.name for u in world.users if u.kind in ("analyst", "data_scientist", "engineer")]
    marked = [n for n in services if re.search(r"(?i)svc|service|bot", n)]
    assert 0 < len(marked) < 0.6 * len(services)
    # some service accounts look like a person's login, and people use several login shapes
    human_shapes = {re.sub(r"[a-z]+", "a", n) for n in humans}
    assert sum(re.sub(r"[a-z]+", "a", n) in human_shapes for n in services) >= 3
    assert len(human_shapes) >= 4
    in_log = set(frame["user"].drop_nulls())
    assert len(set(services) - set(marked) - in_log) < len(set(services) - set(marked)) / 2


def test_partition_columns_and_names_vary(small_log: tuple[Path, pl.DataFrame]) -> None:
    _, frame = small_log
    world = build_world(parse_params({}).synth.seed, DAYS)
    facts = [t for t in world.tables if t.role == "fact"]
    dated = {t.partition_col for t in facts if t.partition_kind in DATE_KINDS}
    assert len(dated) >= 8
    assert any(t.partition_kind == "key" for t in facts)
    assert any(t.partition_col is None for t in facts)
    # queries filter on many of those columns, not on one house name
    text = frame["query"].drop_nulls()
    filtered = [
        c for c in dated if text.str.contains(rf"\.{c} (>=|>|=|BETWEEN|between) ").sum() >= 3
    ]
    assert len(filtered) >= 6, filtered
    schemas = {t.schema for t in world.tables}
    assert any(s != s.lower() for s in schemas) and any(not s.isidentifier() for s in schemas)


def _new_recurring_share(frame: pl.DataFrame, since_day: int) -> float:
    """Of the templates run on >= 2 days from ``since_day`` on, the share first run then."""
    rows = frame.drop_nulls("query").select(
        template=_template(frame.drop_nulls("query")["query"]),
        day=pl.col("create_time").dt.day(),
    )
    first = rows.group_by("template").agg(first=pl.col("day").min())
    late = (
        rows.filter(pl.col("day") >= since_day)
        .group_by("template")
        .agg(days=pl.col("day").n_unique())
        .filter(pl.col("days") >= 2)
        .join(first, on="template")
    )
    return late.select((pl.col("first") >= since_day).mean()).item()


def test_templates_keep_arriving(small_log: tuple[Path, pl.DataFrame], tmp_path: Path) -> None:
    _, frame = small_log
    # with the default share, a fair part of the late recurring templates are new
    assert 0.08 <= _new_recurring_share(frame, DAYS - 6) <= 0.5
    shares = {}
    for share in (0.0, 0.5):
        synth = parse_params(
            {
                "synth": {
                    "queries_per_day": 600,
                    "start_date": "2025-06-01",
                    "end_date": "2025-06-14",
                    "new_template_share": share,
                }
            }
        ).synth
        generate(synth, output_dir=tmp_path / str(share), workers=2)
        log = pl.read_parquet(tmp_path / str(share) / "**" / "*.parquet", hive_partitioning=False)
        shares[share] = _new_recurring_share(log, 8)
    # (a few old templates first show up late by chance at this volume: a dashboard not
    # rendered before, a job whose owner started late)
    assert shares[0.5] > shares[0.0] + 0.15, shares


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
