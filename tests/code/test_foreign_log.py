"""The foreign log's builder: what it takes from a corpus, what it leaves out, what it writes."""

from __future__ import annotations

import datetime as dt
import io
import tarfile
from pathlib import Path

import polars as pl
import pytest

from query_predictor.core.schema import RAW_COLUMNS, absent_columns, conform, split_valid
from tests.foreign_log import (
    MINIMAL,
    SERVICE_USERS,
    build_log,
    default_sdist,
    read_corpus,
    write_log,
)

START = dt.date(2024, 3, 4)
FILES = {
    "pkg-1.0/tests/fixtures/identity.sql": "x + 1\nSELECT a FROM t\nSELECT b FROM u\n",
    "pkg-1.0/tests/fixtures/partial.sql": "SELECT a FROM x WHERE\n",
    "pkg-1.0/tests/fixtures/optimizer/pushdown.sql": (
        '# title: a join\nSELECT a\nFROM t JOIN u ON t.k = u.k;\nSELECT\n  "t"."a"\n'
        'FROM "t" JOIN "u" ON "t"."k" = "u"."k";\n\n# title: tpc\n'
        "SELECT l_orderkey FROM lineitem;\nSELECT 1;\n"
    ),
    "pkg-1.0/tests/fixtures/optimizer/tpc-h/tpc-h.sql": "SELECT * FROM nation;\n",
    "pkg-1.0/tests/dialects/test_trino.py": (
        "class T:\n    def test(self):\n"
        "        self.validate_identity('SHOW TABLES FROM hive.sales', 'SUM(x)')\n"
    ),
    "pkg-1.0/tests/dialects/test_mysql.py": "X = 'SELECT 2 FROM mysql_only'\n",
}


def _sdist(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, text in FILES.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_corpus_keeps_statements_and_leaves_tpc_and_expressions_out(tmp_path: Path) -> None:
    corpus = read_corpus(_sdist(tmp_path / "pkg-1.0.tar.gz"))
    assert set(corpus.statements) == {
        "SELECT a FROM t",
        "SELECT b FROM u",
        "SELECT a\nFROM t JOIN u ON t.k = u.k",
        'SELECT\n  "t"."a"\nFROM "t" JOIN "u" ON "t"."k" = "u"."k"',
        "SELECT 1",
        "SHOW TABLES FROM hive.sales",
    }
    assert corpus.excluded_tpc == 1  # lineitem; the tpc-h folder is not even read
    assert corpus.not_statements == 2  # x + 1, SUM(x); the MySQL tests are not read
    assert corpus.source == "pkg-1.0.tar.gz"


def test_a_missing_corpus_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make test"):
        read_corpus(tmp_path / "absent.tar.gz")


def test_log_has_the_required_columns_only_and_passes_validation() -> None:
    statements = ["SELECT a FROM t JOIN u ON t.k = u.k", "SELECT 1", "SHOW TABLES"] * 1
    statements += [f"SELECT c{i} FROM t{i} WHERE d = {i}" for i in range(200)]
    log = build_log(statements, start=START, days=10)
    required = {c.name for c in RAW_COLUMNS if c.required}
    assert log.columns == list(MINIMAL) and required <= set(MINIMAL)
    conformed = conform(log).collect()
    good, bad = split_valid(conformed, absent=absent_columns(conformed))
    assert bad.height == 0 and good.height == log.height
    assert log["query_id"].n_unique() == log.height
    days = log["create_time"].dt.date()
    assert days.min() >= START and days.max() < START + dt.timedelta(days=10)
    # a service runs each of its statements every day, at the same minute
    services = log.filter(pl.col("user").is_in(SERVICE_USERS))
    assert services.height > 0
    per_text = services.group_by("query").agg(
        pl.col("create_time").dt.date().n_unique().alias("days"),
        pl.col("create_time").dt.time().n_unique().alias("times"),
    )
    assert per_text["days"].min() == 10 and per_text["times"].max() == 1
    assert log.equals(build_log(statements, start=START, days=10))  # same rule, same rows


def test_written_log_is_read_by_day_with_its_description(tmp_path: Path) -> None:
    log = build_log(["SELECT 1", "SELECT a FROM t"], start=START, days=3)
    write_log(log, tmp_path / "raw", description="two statements")
    files = sorted(p.relative_to(tmp_path / "raw").as_posix() for p in tmp_path.rglob("*"))
    assert "description.txt" in files
    assert all(f.startswith("date=2024-03-0") for f in files if f.endswith(".parquet"))
    assert pl.read_parquet(tmp_path / "raw" / "**" / "*.parquet").height == log.height


def test_real_corpus_has_thousands_of_statements_and_some_heavy_runs() -> None:
    corpus = read_corpus(default_sdist())
    assert len(corpus.statements) > 2000
    assert not any("lineitem" in s.lower() or "store_sales" in s.lower() for s in corpus.statements)
    log = build_log(corpus.statements, start=START, days=21)
    heavy = (pl.col("cpu_time_millis") >= 300_000) | (pl.col("peak_memory_bytes") > 10 << 30)
    share = log.select(heavy.mean()).item()
    assert 0.03 < share < 0.15
    assert log["user"].n_unique() == 40
    assert log.filter(pl.col("query_state") == "FAILED")["error_code"].null_count() == 0
