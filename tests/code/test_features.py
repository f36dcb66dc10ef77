"""The 78 base features: the catalogue, each family on small statements, privacy, robustness."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from query_predictor.core._textscan import normalize_identifier

from query_predictor.core.conventions import Conventions, fit_conventions
from query_predictor.core.features import (
    BASE_FEATURES,
    BASE_NAMES,
    CATALOG_CODES,
    QUERY_TYPES,
    SOURCE_KINDS,
    Analysis,
    FeatureExtractor,
    QueryContext,
    days_read,
    reads_data,
)
from query_predictor.core.sql_tokens import MAX_CHARS, fingerprint, normalize

# What fit_conventions would learn from a log whose tables are filtered by date on ds, dt or
# event_date and where svc_reports runs the same statements over and over.
CONVENTIONS = Conventions(
    partition_columns=frozenset({"ds", "dt", "event_date"}),
    service_users=frozenset({"svc_reports", "marta"}),
)
EXTRACTOR = FeatureExtractor(CONVENTIONS)
NO_CONTEXT = QueryContext()
# A Tuesday, 14:30 UTC.
ARRIVAL = dt.datetime(2025, 6, 10, 14, 30, tzinfo=dt.UTC)
KIND_FLAGS = (
    "stmt_select",
    "stmt_insert",
    "stmt_ctas",
    "stmt_explain",
    "stmt_explain_analyze",
    "stmt_metadata",
    "stmt_delete_update_merge",
    "stmt_ddl",
)


def assert_valid_vector(vector: list[float]) -> None:
    assert len(vector) == 78
    assert all(type(v) is float and math.isfinite(v) for v in vector)


def features(sql: str | bytes | None, context: QueryContext = NO_CONTEXT) -> dict[str, float]:
    """The named features of ``sql``; every vector a test looks at is checked whole first."""
    vector = EXTRACTOR.analyze(sql, context).base
    assert_valid_vector(vector)
    return dict(zip(BASE_NAMES, vector, strict=True))


def assert_features(
    sql: str | bytes | None, expected: dict[str, float], context: QueryContext = NO_CONTEXT
) -> None:
    got = features(sql, context)
    assert {k: got[k] for k in expected} == pytest.approx(expected), sql


# --------------------------------------------------------------------------- catalogue


def test_catalogue_has_78_unique_snake_case_features() -> None:
    assert len(BASE_FEATURES) == len(BASE_NAMES) == 78
    assert len(set(BASE_NAMES)) == 78
    assert tuple(f.name for f in BASE_FEATURES) == BASE_NAMES
    assert FeatureExtractor.names == BASE_NAMES
    for feature in BASE_FEATURES:
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", feature.name), feature.name
        assert feature.kind in {"count", "flag", "log", "value", "code"}, feature.name
        assert feature.meaning.strip(), feature.name
        assert isinstance(feature.example, str)


def test_code_tables() -> None:
    assert len(set(QUERY_TYPES)) == len(QUERY_TYPES) == 10
    assert CATALOG_CODES[-1] == "other"
    assert list(SOURCE_KINDS) == ["bi", "scheduler", "notebook", "cli", "ide", "monitoring"]


def test_select_one_full_vector() -> None:
    expected = dict.fromkeys(BASE_NAMES, 0.0)
    expected |= {
        "sql_chars_log": math.log1p(8),
        "n_tokens": 2,
        "n_lines": 1,
        "stmt_select": 1,
        "n_select": 1,
        "n_numeric_literals": 1,
        "query_type_code": -1,
        "catalog_code": -1,
        "source_kind": 7,  # missing
        "hour_of_day": -1,
        "day_of_week": -1,
    }
    assert features("SELECT 1") == pytest.approx(expected)


RICH = """\
-- daily revenue
WITH paid AS (
    SELECT o.id, o.region, o.total
    FROM orders o
    JOIN hive.sales.payments p ON p.order_id = o.id
    WHERE o.ds >= DATE '2025-06-01' AND p.status IN ('ok', 'settled')
)
SELECT region, sum(total) AS revenue, count(DISTINCT id) AS n
FROM paid
GROUP BY region
HAVING sum(total) > 100
ORDER BY revenue DESC
LIMIT 20"""


def test_rich_statement_full_vector() -> None:
    context = QueryContext(
        user="svc_reports",
        source="airflow",
        catalog="hive",
        schema="sales",
        query_type="SELECT",
        time=ARRIVAL,
        session_properties={"query_max_run_time": "1h"},
    )
    analysis = EXTRACTOR.analyze(RICH, context)
    assert_valid_vector(analysis.base)
    assert analysis.tables == ["hive.sales.orders", "hive.sales.payments"]
    expected = dict.fromkeys(BASE_NAMES, 0.0)
    expected |= {
        "sql_chars_log": math.log1p(len(RICH)),
        "n_tokens": 88,
        "n_lines": 13,
        "n_comments": 1,
        "max_paren_depth": 2,
        "max_select_depth": 1,
        "stmt_select": 1,
        "n_select": 2,
        "n_cte": 1,
        "n_subqueries": 1,
        "n_tables": 3,
        "n_distinct_tables": 2,
        "n_join": 1,
        "n_join_inner": 1,
        "n_where": 1,
        "n_and": 1,
        "n_comparisons": 3,
        "n_in_lists": 1,
        "max_in_list_size": 2,
        "n_group_by": 1,
        "n_having": 1,
        "n_order_by": 1,
        "has_limit": 1,
        "limit_log": math.log1p(20),
        "n_distinct": 1,
        "n_count_distinct": 1,
        "n_aggregates": 3,
        "n_function_calls": 3,
        "n_string_literals": 3,
        "n_numeric_literals": 2,
        "n_date_literals": 1,
        "date_lookback_days": 9,
        "has_partition_predicate": 1,
        "n_catalogs": 1,
        "reads_lake": 1,
        "query_type_code": 0,
        "catalog_code": 0,
        "source_kind": 1,
        "user_is_service": 1,
        "hour_of_day": 14,
        "day_of_week": 1,
        "n_session_properties": 1,
    }
    assert dict(zip(BASE_NAMES, analysis.base, strict=True)) == pytest.approx(expected)


# --------------------------------------------------------------------------- size and layout


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1", {"n_tokens": 2, "n_lines": 1, "sql_chars_log": math.log1p(8)}),
        ("SELECT 1\nFROM t", {"n_lines": 2, "n_tokens": 4}),
        ("SELECT 1\nFROM t\n", {"n_lines": 3}),
        ("", {"n_lines": 0, "n_tokens": 0, "sql_chars_log": 0}),
        ("-- a\nSELECT 1", {"n_comments": 1, "n_tokens": 3}),
        ("/* x */ SELECT 1", {"n_comments": 1}),
        ("-- a\nSELECT 1 /* b */ /* c\nd */ -- e", {"n_comments": 4, "n_lines": 3}),
        ("SELECT 1 -- a /* b */", {"n_comments": 1}),
        ("SELECT 10 / 2 - 1", {"n_comments": 0}),
        ("SELECT f(g(x))", {"max_paren_depth": 2, "max_select_depth": 0}),
        ("SELECT ((1 + 2) * (3))", {"max_paren_depth": 2}),
        ("SELECT 1", {"max_paren_depth": 0, "max_select_depth": 0}),
        ("SELECT * FROM (SELECT 1) a", {"max_paren_depth": 1, "max_select_depth": 1}),
        (
            "SELECT * FROM (SELECT * FROM (SELECT max(x) FROM t) a) b",
            {"max_paren_depth": 3, "max_select_depth": 2, "n_subqueries": 2, "n_select": 3},
        ),
        (
            "SELECT (SELECT 1), (SELECT 2) FROM t WHERE x IN (SELECT y FROM u WHERE z IN"
            " (SELECT 1))",
            {"max_select_depth": 2, "n_subqueries": 4, "n_in_subquery": 2, "n_select": 5},
        ),
    ],
)
def test_size_and_layout(sql: str, expected: dict[str, float]) -> None:
    assert_features(sql, expected)


# --------------------------------------------------------------------------- statement kind

KIND_CASES = [
    ("SELECT 1", "stmt_select"),
    ("select * from t", "stmt_select"),
    ("WITH a AS (SELECT 1) SELECT * FROM a", "stmt_select"),
    ("VALUES (1, 'a'), (2, 'b')", "stmt_select"),
    ("(SELECT 1) UNION (SELECT 2)", "stmt_select"),
    ("-- note\n/* x */ SELECT 1", "stmt_select"),
    ("INSERT INTO t SELECT * FROM u", "stmt_insert"),
    ("INSERT INTO t (a, b) VALUES (1, 2)", "stmt_insert"),
    ("CREATE TABLE t AS SELECT * FROM u", "stmt_ctas"),
    ("CREATE TABLE IF NOT EXISTS t WITH (format = 'ORC') AS SELECT 1", "stmt_ctas"),
    ("CREATE TABLE t (id bigint, name varchar)", "stmt_ddl"),
    ("CREATE VIEW v AS SELECT * FROM u", "stmt_ddl"),
    ("EXPLAIN SELECT * FROM t", "stmt_explain"),
    ("EXPLAIN (TYPE DISTRIBUTED) SELECT * FROM t", "stmt_explain"),
    ("EXPLAIN ANALYZE SELECT * FROM t", "stmt_explain_analyze"),
    ("explain analyze verbose select 1", "stmt_explain_analyze"),
    ("SHOW TABLES", "stmt_metadata"),
    ("SHOW SCHEMAS FROM hive", "stmt_metadata"),
    ("DESCRIBE hive.sales.orders", "stmt_metadata"),
    ("DESC orders", "stmt_metadata"),
    ("USE hive.sales", "stmt_metadata"),
    ("SET SESSION query_max_run_time = '1h'", "stmt_metadata"),
    ("RESET SESSION query_max_run_time", "stmt_metadata"),
    ("PREPARE q1 FROM SELECT 1", "stmt_metadata"),
    ("DELETE FROM t WHERE id = 1", "stmt_delete_update_merge"),
    ("UPDATE t SET total = 0 WHERE id = 1", "stmt_delete_update_merge"),
    ("MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE", "stmt_delete_update_merge"),
    ("DROP TABLE hive.scratch.t", "stmt_ddl"),
    ("ALTER TABLE t ADD COLUMN c integer", "stmt_ddl"),
    ("CALL system.sync_partition_metadata('sales', 'orders', 'FULL')", "stmt_ddl"),
    ("GRANT SELECT ON t TO ROLE analysts", "stmt_ddl"),
]


@pytest.mark.parametrize(("sql", "flag"), KIND_CASES)
def test_statement_kind_sets_exactly_one_flag(sql: str, flag: str) -> None:
    got = features(sql)
    assert {k for k in KIND_FLAGS if got[k]} == {flag}
    assert got[flag] == 1.0


@pytest.mark.parametrize("sql", ["", None, "   \n", "-- only a comment", "/* only */", "((("])
def test_nothing_to_classify_sets_no_kind_flag(sql: str | None) -> None:
    got = features(sql)
    assert not any(got[k] for k in KIND_FLAGS)


def test_every_kind_flag_is_covered() -> None:
    assert {flag for _, flag in KIND_CASES} == set(KIND_FLAGS)


# --------------------------------------------------------------------------- structure

STRUCTURE_CASES = [
    # CTEs, subqueries
    (
        "WITH a AS (SELECT 1 AS x), b AS (SELECT 2 AS y) SELECT * FROM a, b",
        {"n_cte": 2, "n_select": 3, "n_subqueries": 2, "n_tables": 2, "n_distinct_tables": 0,
         "n_implicit_join": 1},
    ),
    ("SELECT x FROM t AS a", {"n_cte": 0, "n_tables": 1}),
    ("SELECT * FROM (SELECT 1) AS s", {"n_cte": 0, "n_subqueries": 1, "n_tables": 0}),
    # joins by kind
    ("SELECT * FROM a JOIN b ON a.id = b.id", {"n_join": 1, "n_join_inner": 1, "n_tables": 2}),
    ("SELECT * FROM a INNER JOIN b ON a.id = b.id", {"n_join": 1, "n_join_inner": 1}),
    ("SELECT * FROM a LEFT JOIN b ON a.id = b.id", {"n_join_left": 1, "n_join_inner": 0}),
    ("SELECT * FROM a LEFT OUTER JOIN b USING (id)", {"n_join_left": 1, "n_join_inner": 0,
                                                      "n_function_calls": 0}),
    ("SELECT * FROM a RIGHT OUTER JOIN b ON a.id = b.id", {"n_join_right": 1, "n_join_inner": 0}),
    ("SELECT * FROM a FULL OUTER JOIN b ON a.id = b.id", {"n_join_full": 1, "n_join_inner": 0}),
    ("SELECT * FROM a FULL JOIN b ON a.id = b.id", {"n_join_full": 1, "n_join": 1}),
    ("SELECT * FROM a CROSS JOIN b", {"n_join_cross": 1, "n_join_inner": 0, "n_tables": 2}),
    (
        "SELECT * FROM a CROSS JOIN UNNEST(a.items) AS u(item)",
        {"n_join": 1, "n_join_cross": 0, "n_join_inner": 0, "n_unnest": 1, "n_tables": 1},
    ),
    (
        "SELECT * FROM a JOIN b ON a.id = b.id LEFT JOIN c ON c.id = b.id "
        "RIGHT JOIN d ON d.id = c.id FULL JOIN e ON e.id = d.id CROSS JOIN f",
        {"n_join": 5, "n_join_inner": 1, "n_join_left": 1, "n_join_right": 1, "n_join_full": 1,
         "n_join_cross": 1, "n_tables": 6, "n_implicit_join": 0},
    ),
    ("SELECT * FROM a, b WHERE a.id = b.id", {"n_implicit_join": 1, "n_join": 0, "n_tables": 2}),
    ("SELECT * FROM a x, b AS y, c z", {"n_implicit_join": 2, "n_tables": 3}),
    ("SELECT a, b, c FROM t", {"n_implicit_join": 0, "n_tables": 1}),
    # set operations
    ("SELECT 1 UNION ALL SELECT 2 UNION SELECT 3", {"n_union": 2, "n_select": 3}),
    ("SELECT 1 INTERSECT SELECT 1 EXCEPT SELECT 2", {"n_intersect_except": 2, "n_union": 0}),
    # predicates
    ("SELECT * FROM t WHERE a = 1 AND b = 2 OR c = 3", {"n_where": 1, "n_and": 1, "n_or": 1,
                                                         "n_comparisons": 3}),
    (
        "SELECT * FROM t WHERE a BETWEEN 1 AND 5 AND b = 2",
        {"n_between": 1, "n_and": 1, "n_comparisons": 1},
    ),
    ("SELECT * FROM t WHERE a BETWEEN 1 AND 5", {"n_between": 1, "n_and": 0}),
    (
        "SELECT * FROM t WHERE a = 1 AND b <> 2 AND c != 3 AND d < 4 AND e > 5 AND f <= 6"
        " AND g >= 7",
        {"n_comparisons": 7, "n_and": 6},
    ),
    ("SELECT transform(a, x -> x + 1), f(k => 1)", {"n_comparisons": 0}),
    ("SELECT * FROM t WHERE a IS NULL OR b IS NOT NULL", {"n_is_null": 2, "n_or": 1}),
    ("SELECT * FROM t WHERE a LIKE 'x%' OR b NOT LIKE '%y'", {"n_like": 2}),
    (
        "SELECT regexp_like(a, 'x'), regexp_extract(b, '(\\d+)') FROM t",
        {"n_regexp": 2, "n_function_calls": 2},
    ),
    ("SELECT * FROM t WHERE x IN (1, 2, 3)", {"n_in_lists": 1, "max_in_list_size": 3}),
    (
        "SELECT * FROM t WHERE x IN ('a', 'b') AND y IN (1, 2, 3, 4) AND z NOT IN (-1)",
        {"n_in_lists": 3, "max_in_list_size": 4, "n_function_calls": 0},
    ),
    (
        "SELECT * FROM t WHERE x IN (SELECT id FROM u)",
        {"n_in_lists": 0, "max_in_list_size": 0, "n_in_subquery": 1, "n_subqueries": 1,
         "n_tables": 2},
    ),
    ("SELECT * FROM t WHERE x IN (a, b)", {"n_in_lists": 0, "max_in_list_size": 0}),
    (
        "SELECT * FROM t WHERE EXISTS (SELECT 1 FROM u) AND NOT EXISTS (SELECT 1 FROM v)",
        {"n_exists": 2, "n_subqueries": 2, "n_in_subquery": 0, "n_function_calls": 0},
    ),
    # grouping, ordering, limits
    ("SELECT a, count(*) FROM t GROUP BY a HAVING count(*) > 1",
     {"n_group_by": 1, "n_having": 1, "n_grouping_sets": 0, "n_aggregates": 2}),
    ("SELECT a, b FROM t GROUP BY GROUPING SETS ((a), (b))",
     {"n_group_by": 1, "n_grouping_sets": 1}),
    ("SELECT a, b FROM t GROUP BY ROLLUP (a, b)", {"n_group_by": 1, "n_grouping_sets": 1}),
    ("SELECT a, b FROM t GROUP BY CUBE (a, b)", {"n_group_by": 1, "n_grouping_sets": 1}),
    (
        "SELECT a FROM t ORDER BY a",
        {"n_order_by": 1, "has_limit": 0, "limit_log": 0, "order_without_limit": 1},
    ),
    (
        "SELECT a FROM t ORDER BY a LIMIT 100",
        {"n_order_by": 1, "has_limit": 1, "limit_log": math.log1p(100), "order_without_limit": 0},
    ),
    (
        "SELECT a FROM t ORDER BY a FETCH FIRST 5 ROWS ONLY",
        {"has_limit": 1, "limit_log": math.log1p(5), "order_without_limit": 0},
    ),
    ("SELECT a FROM t FETCH NEXT 3 ROWS ONLY", {"has_limit": 1, "limit_log": math.log1p(3)}),
    (
        "SELECT * FROM (SELECT a FROM t LIMIT 10) LIMIT 1000",
        {"has_limit": 1, "limit_log": math.log1p(1000)},
    ),
    ("SELECT a FROM t LIMIT ALL", {"has_limit": 0, "limit_log": 0}),
    ("SELECT 'limit 5' FROM t -- LIMIT 5", {"has_limit": 0, "n_numeric_literals": 0}),
    (
        "SELECT a FROM t ORDER BY a NULLS FIRST, b",
        {"has_limit": 0, "order_without_limit": 1},
    ),
    # distinct and aggregates
    (
        "SELECT DISTINCT a, count(DISTINCT b), count(c) FROM t",
        {"n_distinct": 2, "n_count_distinct": 1, "n_aggregates": 2},
    ),
    (
        "SELECT sum(x), count(*), avg(y), max(z), min(z) FROM t",
        {"n_aggregates": 5, "n_function_calls": 5, "n_star": 0},
    ),
    (
        "SELECT approx_distinct(x), approx_percentile(y, 0.5) FROM t",
        {"n_approx_aggregates": 2, "n_aggregates": 2},
    ),
    # windows
    (
        "SELECT row_number() OVER (PARTITION BY a ORDER BY b), sum(x) OVER (PARTITION BY a)"
        " FROM t",
        {"n_window": 2, "n_partition_by": 2, "n_order_by": 1, "n_aggregates": 1,
         "n_function_calls": 2, "order_without_limit": 1},
    ),
    # expressions
    (
        "SELECT CASE WHEN a > 0 THEN 1 ELSE 0 END, CASE b WHEN 1 THEN 'x' END FROM t",
        {"n_case": 2, "n_comparisons": 1},
    ),
    (
        "SELECT CAST(a AS bigint), TRY_CAST(b AS double), cast(c AS decimal(10, 2)) FROM t",
        {"n_cast": 3, "n_function_calls": 4},
    ),
    ("SELECT lower(a), coalesce(b, 0), f(g(h)) FROM t", {"n_function_calls": 4}),
    ("SELECT a FROM t WHERE b IN (1) AND c IN (SELECT 1) ", {"n_function_calls": 0}),
    (
        "SELECT json_extract_scalar(a, '$.x'), json_parse(b) FROM t",
        {"n_json": 2, "n_function_calls": 2},
    ),
    (
        "SELECT x FROM t CROSS JOIN UNNEST(t.arr) AS u(x), UNNEST(t.b)",
        {"n_unnest": 2, "n_tables": 1},
    ),
    ("SELECT * FROM t", {"n_star": 1}),
    ("SELECT DISTINCT * FROM t", {"n_star": 1, "n_distinct": 1}),
    ("SELECT t.*, u.* FROM t JOIN u ON t.id = u.id", {"n_star": 2}),
    ("SELECT a, * FROM t", {"n_star": 1}),
    ("SELECT count(*) FROM t", {"n_star": 0, "n_aggregates": 1}),
    ("SELECT a * b FROM t", {"n_star": 0}),
]  # fmt: skip


@pytest.mark.parametrize(("sql", "expected"), STRUCTURE_CASES)
def test_structure(sql: str, expected: dict[str, float]) -> None:
    assert_features(sql, expected)


# --------------------------------------------------------------------------- literals

LITERAL_CASES = [
    (
        "SELECT 'a', 'b', 1, 2.5, 1e3 FROM t",
        {"n_string_literals": 2, "n_numeric_literals": 3, "n_date_literals": 0},
    ),
    ("SELECT 'It''s' FROM t", {"n_string_literals": 1}),
    ("SELECT * FROM t WHERE d = '2025-06-01'", {"n_date_literals": 1, "n_string_literals": 1}),
    ("SELECT * FROM t WHERE d = DATE '2025-06-01'", {"n_date_literals": 1, "date_span_days": 0}),
    (
        "SELECT * FROM t WHERE ts >= TIMESTAMP '2025-06-01 10:00:00' AND ts < '2025-06-08'",
        {"n_date_literals": 2, "date_span_days": 7},
    ),
    (
        "SELECT * FROM t WHERE ds IN ('2025-05-01', '2025-06-01', '2025-05-15')",
        {"n_date_literals": 3, "date_span_days": 31},
    ),
    (
        "SELECT '2025-13-01', '2025-02-30', '06/01/2025', '2025-6-1', 'ab-cd-ef-gh'",
        {"n_date_literals": 0, "n_string_literals": 5},
    ),
    ("SELECT ts > now() - INTERVAL '7' DAY", {"interval_days": 7, "uses_current_date": 1}),
    ("SELECT INTERVAL '2' MONTH", {"interval_days": 60}),
    ("SELECT INTERVAL '1' YEAR, INTERVAL '3' WEEK", {"interval_days": 365}),
    ("SELECT INTERVAL '36' HOUR", {"interval_days": 1.5}),
    ("SELECT INTERVAL '90' MINUTE", {"interval_days": 90 / 1440}),
    ("SELECT INTERVAL '1.5' DAY", {"interval_days": 1.5}),
    ("SELECT INTERVAL '3' DAYS", {"interval_days": 3}),
    ("SELECT INTERVAL '1 2:00' DAY TO HOUR", {"interval_days": 0}),
    ("SELECT current_date", {"uses_current_date": 1}),
    ("SELECT now()", {"uses_current_date": 1}),
    ("SELECT current_timestamp", {"uses_current_date": 1}),
    ("SELECT 'current_date' -- now()", {"uses_current_date": 0}),
    ("SELECT * FROM t WHERE ds >= '2025-06-01'", {"has_partition_predicate": 1}),
    ("SELECT * FROM t WHERE t.ds = '2025-06-01'", {"has_partition_predicate": 1}),
    (
        "SELECT * FROM t WHERE event_date BETWEEN DATE '2025-06-01' AND DATE '2025-06-07'",
        {"has_partition_predicate": 1, "n_date_literals": 2, "date_span_days": 6, "n_and": 0},
    ),
    ("SELECT * FROM t WHERE ds IN ('2025-06-01', '2025-06-02')", {"has_partition_predicate": 1}),
    ("SELECT * FROM t WHERE dt <> '2025-06-01'", {"has_partition_predicate": 1}),
    ("SELECT * FROM t WHERE date(ts) >= '2025-06-01'", {"has_partition_predicate": 0}),
    ("SELECT * FROM t WHERE load_date = '2025-06-01'", {"has_partition_predicate": 0}),
    ("SELECT ds, count(*) FROM t GROUP BY ds", {"has_partition_predicate": 0}),
    ("SELECT * FROM t WHERE region = 'ds = 1'", {"has_partition_predicate": 0}),
]


@pytest.mark.parametrize(("sql", "expected"), LITERAL_CASES)
def test_literals(sql: str, expected: dict[str, float]) -> None:
    assert_features(sql, expected)


@pytest.mark.parametrize(
    ("sql", "time", "lookback"),
    [
        ("SELECT * FROM t WHERE ds = '2025-06-01'", ARRIVAL, 9),
        ("SELECT * FROM t WHERE ds BETWEEN '2025-05-01' AND '2025-06-01'", ARRIVAL, 40),
        ("SELECT * FROM t WHERE ds = '2025-06-10'", ARRIVAL, 0),
        ("SELECT * FROM t WHERE ds = '2025-07-01'", ARRIVAL, 0),  # future: not negative
        ("SELECT * FROM t WHERE ds = '2025-06-01'", None, 0),  # no arrival time
        ("SELECT * FROM t", ARRIVAL, 0),  # no date literal
        ("SELECT * FROM t WHERE ds = '2024-06-10'", ARRIVAL, 365),
    ],
)
def test_date_lookback_is_relative_to_the_arrival_day(
    sql: str, time: dt.datetime | None, lookback: float
) -> None:
    assert_features(sql, {"date_lookback_days": lookback}, QueryContext(time=time))


@pytest.mark.parametrize(
    ("sql", "days"),
    [
        ("SELECT * FROM t WHERE ds >= '2025-06-03'", 7.0),  # a week back to today
        ("SELECT * FROM t WHERE ds = '2025-06-10'", 1.0),  # today: one day, not none
        ("SELECT * FROM t WHERE ds >= date_add('day', -30, current_date)", 30.0),
        ("SELECT * FROM t WHERE ds > DATE_ADD('week', -2, CURRENT_DATE)", 14.0),
        ("SELECT * FROM t WHERE ds >= date_add('day', n, current_date)", 1.0),  # not a number
        ("SELECT * FROM t WHERE ds >= current_date - INTERVAL '30' DAY", 30.0),
        ("SELECT * FROM t WHERE ds >= '2025-06-09' AND ts > now() - INTERVAL '2' HOUR", 1.0),
        ("SELECT * FROM t", 1.0),
    ],
)
def test_days_read_is_the_look_back_or_the_interval(sql: str, days: float) -> None:
    base = FeatureExtractor().analyze(sql, QueryContext(time=ARRIVAL)).base
    assert days_read(base) == days


@pytest.mark.parametrize(
    ("sql", "reads"),
    [
        ("SELECT count(*) FROM t WHERE dt = DATE '2025-06-01'", True),
        ("INSERT INTO a SELECT * FROM b", True),
        ("CREATE TABLE a AS SELECT * FROM b", True),
        ("EXPLAIN ANALYZE SELECT * FROM t", True),
        ("DELETE FROM t WHERE id = 1", True),
        ("SHOW COLUMNS FROM hive.tmp.products", False),
        ("DESCRIBE hive.tmp.products", False),
        ("show stats for t", False),
        ("EXPLAIN SELECT * FROM t", False),
        ("DROP TABLE t", False),
        ("CREATE TABLE t (id bigint)", False),
    ],
)
def test_reads_data_only_for_statements_that_scan_their_tables(sql: str, reads: bool) -> None:
    """What a statement names is not always what it reads: only reads of data size a
    table's history."""
    assert reads_data(FeatureExtractor().analyze(sql, NO_CONTEXT).base) is reads


# --------------------------------------------------------------------------- tables

HIVE_SALES = QueryContext(catalog="hive", schema="sales")


@pytest.mark.parametrize(
    ("sql", "context", "tables"),
    [
        ("SELECT * FROM orders", HIVE_SALES, ["hive.sales.orders"]),
        ("SELECT * FROM orders", NO_CONTEXT, ["?.?.orders"]),
        ("SELECT * FROM web.clicks", HIVE_SALES, ["hive.web.clicks"]),
        ("SELECT * FROM web.clicks", NO_CONTEXT, ["?.web.clicks"]),
        ("SELECT * FROM iceberg.raw.events", HIVE_SALES, ["iceberg.raw.events"]),
        ('SELECT * FROM "Hive"."Sales"."Orders"', NO_CONTEXT, ["hive.sales.orders"]),
        ("SELECT * FROM Orders o JOIN ORDERS p ON o.id = p.id", HIVE_SALES, ["hive.sales.orders"]),
        (
            "SELECT * FROM orders o, iceberg.raw.events e JOIN web.clicks c ON o.id = c.id",
            HIVE_SALES,
            ["hive.sales.orders", "hive.web.clicks", "iceberg.raw.events"],
        ),
        ("WITH x AS (SELECT * FROM orders) SELECT * FROM x", HIVE_SALES, ["hive.sales.orders"]),
        (
            "WITH x AS (SELECT 1), y AS (SELECT * FROM x) SELECT * FROM x JOIN y ON true",
            HIVE_SALES,
            [],
        ),
        ("SELECT * FROM (SELECT * FROM orders) sub", HIVE_SALES, ["hive.sales.orders"]),
        ("SELECT * FROM UNNEST(ARRAY[1, 2]) AS u(x)", HIVE_SALES, []),
        ("SELECT * FROM TABLE(system.sequence(1, 5))", HIVE_SALES, []),
        ("SELECT 1", HIVE_SALES, []),
        ("INSERT INTO scratch.t SELECT * FROM orders", HIVE_SALES, ["hive.sales.orders"]),
        ("DELETE FROM orders WHERE id = 1", HIVE_SALES, ["hive.sales.orders"]),
    ],
)
def test_tables_are_fully_qualified(sql: str, context: QueryContext, tables: list[str]) -> None:
    analysis = EXTRACTOR.analyze(sql, context)
    assert_valid_vector(analysis.base)
    assert analysis.tables == tables


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "SELECT * FROM hive.s.a JOIN iceberg.s.b ON true",
            {"n_catalogs": 2, "reads_lake": 1, "reads_jdbc": 0, "reads_metadata": 0},
        ),
        ("SELECT * FROM delta.s.a", {"n_catalogs": 1, "reads_lake": 1}),
        ("SELECT * FROM mysql.shop.users", {"reads_jdbc": 1, "reads_lake": 0, "n_catalogs": 1}),
        ("SELECT * FROM postgresql.public.accounts", {"reads_jdbc": 1}),
        (
            "SELECT * FROM hive.s.a JOIN mysql.shop.users u ON true",
            {"reads_jdbc": 1, "reads_lake": 1, "n_catalogs": 2},
        ),
        (
            "SELECT * FROM information_schema.tables",  # catalog from the context: unknown
            {"reads_metadata": 1, "reads_lake": 0, "reads_jdbc": 0, "n_catalogs": 0},
        ),
        ("SELECT * FROM hive.information_schema.columns", {"reads_metadata": 1, "reads_lake": 1}),
        (
            "SELECT * FROM system.runtime.queries",
            {"reads_metadata": 1, "reads_jdbc": 0, "reads_lake": 0, "n_catalogs": 1},
        ),
        ("SELECT * FROM orders", {"n_catalogs": 0, "reads_lake": 0, "reads_jdbc": 0}),
        ("SELECT 1", {"n_catalogs": 0, "reads_lake": 0, "reads_jdbc": 0, "reads_metadata": 0}),
    ],
)
def test_table_families(sql: str, expected: dict[str, float]) -> None:
    assert_features(sql, expected)


def test_catalog_of_unqualified_tables_comes_from_the_context() -> None:
    sql = "SELECT * FROM orders"
    assert_features(sql, {"reads_lake": 1, "n_catalogs": 1}, HIVE_SALES)
    assert_features(sql, {"reads_jdbc": 1, "reads_lake": 0}, QueryContext(catalog="mysql"))
    assert_features(sql, {"reads_lake": 0, "reads_jdbc": 0, "n_catalogs": 0}, NO_CONTEXT)


# --------------------------------------------------------------------------- context


@pytest.mark.parametrize(
    ("query_type", "code"),
    [
        ("SELECT", 0),
        ("INSERT", 1),
        ("insert", 1),
        ("EXPLAIN", 2),
        ("DATA_DEFINITION", 4),
        ("ALTER_TABLE_EXECUTE", 9),
        (None, -1),
        ("", -1),
        ("NOT_A_TYPE", -1),
    ],
)
def test_query_type_code(query_type: str | None, code: int) -> None:
    assert_features("SELECT 1", {"query_type_code": code}, QueryContext(query_type=query_type))
    if query_type and query_type.upper() in QUERY_TYPES:
        assert QUERY_TYPES[code] == query_type.upper()


@pytest.mark.parametrize(
    ("catalog", "code"),
    [
        ("hive", 0),
        ("HIVE", 0),
        ("iceberg", 1),
        ("delta", 2),
        ("mysql", 3),
        ("postgresql", 4),
        ("system", 5),
        ("kafka", 6),
        ("other", 6),
        (None, -1),
        ("", -1),
    ],
)
def test_catalog_code(catalog: str | None, code: int) -> None:
    assert_features("SELECT 1", {"catalog_code": code}, QueryContext(catalog=catalog))


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("superset", 0),
        ("Apache Superset 4.0", 0),
        ("tableau", 0),
        ("airflow", 1),
        ("dbt-trino", 1),
        ("jupyter", 2),
        ("trino-cli", 3),
        ("DBeaver 24.1", 4),
        ("datadog-agent", 5),
        ("my-own-app", 6),
        (None, 7),
        ("", 7),
    ],
)
def test_source_kind(source: str | None, kind: int) -> None:
    assert_features("SELECT 1", {"source_kind": kind}, QueryContext(source=source))


@pytest.mark.parametrize(
    ("user", "pattern", "service"),
    [
        ("svc_reports", None, 1),
        ("marta", None, 1),  # a service without a service-like name: learned from behaviour
        ("svc_etl", None, 0),  # a name alone says nothing without a pattern
        ("alice", None, 0),
        (None, None, 0),
        ("svc_etl", r"^svc_", 1),
        ("alice", r"^svc_", 0),
    ],
)
def test_user_is_service(user: str | None, pattern: str | None, service: int) -> None:
    extractor = FeatureExtractor(
        Conventions(service_users=CONVENTIONS.service_users, service_user_pattern=pattern)
    )
    got = extractor.analyze("SELECT 1", QueryContext(user=user)).base
    assert got[BASE_NAMES.index("user_is_service")] == service


def test_without_conventions_the_learned_features_are_zero() -> None:
    got = FeatureExtractor().analyze(
        "SELECT * FROM t WHERE ds = '2025-06-01'", QueryContext(user="svc_reports")
    )
    assert got.base[BASE_NAMES.index("has_partition_predicate")] == 0
    assert got.base[BASE_NAMES.index("user_is_service")] == 0


@pytest.mark.parametrize(
    ("sql", "compared", "dated"),
    [
        ("SELECT * FROM t WHERE load_date >= DATE '2025-06-01'", {"load_date"}, {"load_date"}),
        (
            "SELECT * FROM a, b WHERE a.p_day = '2025-06-01' AND a.k = b.k",
            {"p_day", "k"},
            {"p_day"},
        ),
        ("SELECT * FROM t WHERE snap BETWEEN 20250101 AND 20250201", {"snap"}, {"snap"}),
        ("SELECT * FROM t WHERE d IN ('2025-06-01', '2025-06-02')", {"d"}, {"d"}),
        ("SELECT * FROM t WHERE d > current_date - INTERVAL '7' DAY", {"d"}, {"d"}),
        ("SELECT * FROM t WHERE d = date_add('day', -1, current_date)", {"d"}, {"d"}),
        ("SELECT * FROM t WHERE d = CAST('2025-06-01' AS date)", {"d"}, {"d"}),
        ("SELECT * FROM t WHERE \"Batch Dt\" = '2025-06-01'", {"batch dt"}, {"batch dt"}),
        ("SELECT * FROM t WHERE region = 'eu' AND n > 3", {"region", "n"}, set()),
        ("SELECT * FROM t WHERE x NOT IN (1) AND lower(y) = 'a'", set(), set()),
        ("SELECT * FROM t WHERE region = 'ds = 1'", {"region"}, set()),
        ("SELECT ds, count(*) FROM t GROUP BY ds", set(), set()),
    ],
)
def test_columns_compared_and_compared_with_a_date(
    sql: str, compared: set[str], dated: set[str]
) -> None:
    analysis = FeatureExtractor().analyze(sql, NO_CONTEXT)
    assert analysis.compared == compared
    assert analysis.dated == dated


def test_conventions_are_learned_from_the_log_not_from_names() -> None:
    rows = pl.DataFrame(
        {
            "user": ["bob"] * 60 + ["ann"] * 60 + ["eve"] * 3,
            "template": ["t1"] * 60 + [f"a{i}" for i in range(60)] + ["t1", "t2", "t3"],
            "dated": [["p_day"]] * 60
            + [["p_day"] if i % 2 else [] for i in range(60)]
            + [["order_ts"], [], []],
        }
    )
    learned = fit_conventions(
        rows,
        partition_min_templates=3,
        service_min_queries=50,
        service_repeat_share=0.9,
        service_user_pattern=None,
    )
    assert learned.partition_columns == {"p_day"}  # order_ts: one template only
    assert learned.service_users == {"bob"}  # ann explores, eve is too rare
    again = Conventions.from_payload(json.loads(json.dumps(learned.to_payload())))
    assert again == learned


@pytest.mark.parametrize(
    ("time", "hour", "day"),
    [
        (ARRIVAL, 14, 1),
        (dt.datetime(2025, 6, 9, 0, 0, tzinfo=dt.UTC), 0, 0),  # Monday midnight
        (dt.datetime(2025, 6, 15, 23, 59, 59), 23, 6),  # Sunday, naive
        (None, -1, -1),
    ],
)
def test_hour_and_day(time: dt.datetime | None, hour: int, day: int) -> None:
    assert_features("SELECT 1", {"hour_of_day": hour, "day_of_week": day}, QueryContext(time=time))


def test_session_properties_are_counted() -> None:
    props = {"query_max_run_time": "1h", "join_distribution_type": "BROADCAST"}
    assert_features("SELECT 1", {"n_session_properties": 2}, QueryContext(session_properties=props))
    assert_features("SELECT 1", {"n_session_properties": 0}, NO_CONTEXT)


@pytest.mark.parametrize(
    ("text", "properties"),
    [
        ('{"query_max_run_time": "1h", "hash_partition_count": 8}',
         {"query_max_run_time": "1h", "hash_partition_count": "8"}),
        ('{"flag": true, "none": null}', {"flag": "True", "none": "None"}),
        ("{}", {}),
        ("", {}),
        (None, {}),
        ("not json", {}),
        ('{"a": 1', {}),
        ("[1, 2]", {}),
        ('"text"', {}),
        ("42", {}),
        ("null", {}),
    ],
)  # fmt: skip
def test_session_from_json(text: str | None, properties: dict[str, str]) -> None:
    assert QueryContext.session_from_json(text) == properties


# --------------------------------------------------------------------------- comments, literals


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "SELECT 'select * from t join u group by x'",
            {"n_select": 1, "n_join": 0, "n_group_by": 0, "n_star": 0, "n_tables": 0,
             "n_string_literals": 1},
        ),
        ("SELECT 1 -- join t\n", {"n_select": 1, "n_join": 0, "n_tables": 0, "n_comments": 1}),
        (
            "/* union select */ SELECT 1",
            {"n_union": 0, "n_select": 1, "stmt_select": 1, "n_comments": 1},
        ),
        (
            "SELECT a FROM t /* where x in (1, 2) order by a limit 5 */",
            {"n_where": 0, "n_in_lists": 0, "n_order_by": 0, "has_limit": 0,
             "max_paren_depth": 0, "n_function_calls": 0},
        ),
        (
            "SELECT 'a'' join b', '(((select' FROM t",
            {"n_join": 0, "n_select": 1, "max_paren_depth": 0, "n_string_literals": 2},
        ),
        (
            'SELECT "order", "select", "group" FROM "join" ORDER BY 1',
            {"n_order_by": 1, "n_select": 1, "n_group_by": 0, "n_join": 0, "n_tables": 1},
        ),
        ('SELECT "count"("x") FROM t', {"n_aggregates": 0}),
        ('SELECT "limit" FROM t', {"has_limit": 0}),
    ],
)  # fmt: skip
def test_comments_literals_and_quoted_identifiers_are_not_keywords(
    sql: str, expected: dict[str, float]
) -> None:
    assert_features(sql, expected)


def test_quoted_identifier_is_a_table_name() -> None:
    analysis = EXTRACTOR.analyze('SELECT "order" FROM "join"', HIVE_SALES)
    assert analysis.tables == ["hive.sales.join"]


# --------------------------------------------------------------------------- privacy

SECRET_SQL = (
    "SELECT * FROM users WHERE note = 'password=hunter2' AND mail = 'jane.doe@example.com' "
    "AND id IN (1234567, 7654321) AND ds = DATE '2025-06-01' -- ask jane.doe@example.com\n"
)


def test_no_secret_email_or_number_in_terms_or_fingerprint_input() -> None:
    analysis = EXTRACTOR.analyze(SECRET_SQL, NO_CONTEXT)
    terms = " ".join(analysis.terms)
    normalized = normalize(SECRET_SQL)
    for needle in ("hunter2", "password", "jane", "example", "@", "1234567", "2025"):
        assert needle not in terms
        assert needle not in normalized
    assert normalized == (
        "select * from users where note = ? and mail = ? and id in ( ? ) and ds = ?"
    )
    assert set(analysis.terms) == {
        "select", "from", "users", "where", "note", "and", "mail", "id", "in", "ds", "date"
    }  # fmt: skip


def test_terms_are_words_and_unquoted_identifiers() -> None:
    analysis = EXTRACTOR.analyze('SELECT "My Col", x FROM t WHERE y > 3', NO_CONTEXT)
    assert set(analysis.terms) == {"select", "my col", "x", "from", "t", "where", "y"}


def test_in_list_size_does_not_change_the_fingerprint() -> None:
    small = normalize("SELECT * FROM t WHERE x IN (1,2)")
    large = normalize("SELECT * FROM t WHERE x IN (1,2,3,4)")
    assert small == large
    assert fingerprint(small) == fingerprint(large)
    assert features("SELECT * FROM t WHERE x IN (1,2)")["max_in_list_size"] == 2
    assert features("SELECT * FROM t WHERE x IN (1,2,3,4)")["max_in_list_size"] == 4


# --------------------------------------------------------------------------- robustness

MEGA_SELECT = "SELECT " + "a, " * 400_000 + "b FROM t"
MEGA_IN = "SELECT * FROM t WHERE id IN (" + ", ".join(map(str, range(150_000))) + ")"
ODD_INPUTS = [
    "",
    None,
    "   \n\t  ",
    ")))(((",
    "SELEC FORM",
    ";;;",
    "SELECT 'never closed",
    "SELECT 1 /* never closed",
    'SELECT "never closed',
    b"SELECT '\xff\xfe' FROM t",
    b"\x00\x01\x02\xff",
    "SELECT 'Zoë 日本', ünïcödé FROM ☃ WHERE x = '🙂'",
    "SELECT * FROM t WHERE x IN (",
    "SELECT INTERVAL 'x' DAY, INTERVAL '' HOUR, INTERVAL",
    "SELECT * FROM t LIMIT 99999999999999999999999999999999999999",
    "SELECT '0000-00-00', '9999-12-31', '0001-01-01'",
    "FROM",
    "JOIN (",
    "(" * 10_000 + ")" * 5_000,
    MEGA_SELECT,
    MEGA_IN,
]


@pytest.mark.parametrize("sql", ODD_INPUTS, ids=range(len(ODD_INPUTS)))
def test_odd_input_gives_78_finite_features(sql: str | bytes | None) -> None:
    start = time.process_time()  # CPU, not wall: what a loaded machine does not stretch
    analysis = EXTRACTOR.analyze(sql, QueryContext(time=ARRIVAL))
    assert time.process_time() - start < 1.0
    assert_valid_vector(analysis.base)
    assert_valid_vector(EXTRACTOR.base_features(sql, NO_CONTEXT))


@pytest.mark.parametrize("sql", [MEGA_SELECT, MEGA_IN], ids=["select-list", "in-list"])
def test_megabyte_statement_is_cut_at_max_chars(sql: str) -> None:
    assert len(sql) > MAX_CHARS
    start = time.process_time()  # CPU, not wall: what a loaded machine does not stretch
    got = features(sql)
    assert time.process_time() - start < 1.0
    assert got["sql_chars_log"] == pytest.approx(math.log1p(MAX_CHARS))
    assert got == features(sql[:MAX_CHARS])


def test_megabyte_select_list_counts_only_what_is_kept() -> None:
    got = features(MEGA_SELECT)
    assert got["n_tables"] == 0  # FROM is past the cut
    kept = MEGA_SELECT[:MAX_CHARS]
    assert got["n_tokens"] == 1 + kept.count("a") + kept.count(",")  # SELECT, then a , a , ...
    assert got["stmt_select"] == 1


def test_megabyte_in_list_is_unterminated_after_the_cut() -> None:
    got = features(MEGA_IN)
    assert got["n_in_lists"] == 0
    assert got["max_paren_depth"] == 1


def test_giant_in_list_within_the_limit() -> None:
    sql = "SELECT * FROM t WHERE id IN (" + ", ".join(map(str, range(30_000))) + ")"
    assert len(sql) < MAX_CHARS
    assert_features(sql, {"n_in_lists": 1, "max_in_list_size": 30_000, "n_tables": 1})


@settings(max_examples=150, deadline=None)
@given(st.text() | st.binary())
def test_arbitrary_input_never_raises(sql: str | bytes) -> None:
    analysis = EXTRACTOR.analyze(sql, QueryContext(time=ARRIVAL))
    assert_valid_vector(analysis.base)
    assert all(isinstance(t, str) for t in analysis.tables)


SQL_WORDS = [
    "select", "from", "where", "join", "left", "cross", "unnest", "with", "as", "in", "(", ")",
    ",", ".", "*", "=", ">=", "between", "and", "or", "limit", "fetch", "first", "rows",
    "interval", "'7'", "day", "month", "date", "'2025-06-01'", "'9999-12-31'", "ds", "t", "u",
    "count", "distinct", "over", "partition", "by", "order", "group", "1", "2.5", "'x'", "--",
    "/*", "*/", "\n", '"q"', "'", "-", "null", "is", "case", "end",
]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(SQL_WORDS), max_size=30).map(" ".join))
def test_sql_like_input_never_raises(sql: str) -> None:
    got = features(sql, QueryContext(time=ARRIVAL))
    assert_valid_vector(list(got.values()))
    assert sum(got[k] for k in KIND_FLAGS) <= 1
    assert got["n_join_inner"] <= got["n_join"]
    assert got["max_select_depth"] <= got["max_paren_depth"]
    assert got["max_select_depth"] <= got["n_subqueries"] <= got["n_select"]
    assert got["n_distinct_tables"] <= got["n_tables"]
    assert got["has_limit"] or got["limit_log"] == 0


# --------------------------------------------------------------------------- serving == training


@pytest.mark.parametrize(
    "sql",
    [RICH, SECRET_SQL, *(c[0] for c in KIND_CASES), *(c[0] for c in STRUCTURE_CASES[:20]), None],
)
def test_base_features_equals_analyze(sql: str | None) -> None:
    context = QueryContext(user="bob", source="superset", catalog="hive", time=ARRIVAL)
    assert EXTRACTOR.base_features(sql, context) == EXTRACTOR.analyze(sql, context).base
    assert FeatureExtractor(CONVENTIONS).base_features(sql, NO_CONTEXT) == (
        EXTRACTOR.base_features(sql, NO_CONTEXT)
    )


def _exact(analysis: Analysis) -> tuple[object, ...]:
    """Everything an analysis holds, compared exactly: float reprs, term order and counts."""
    base = [repr(v) for v in analysis.base]
    return base, analysis.tables, list(analysis.terms.items()), analysis.template


BATCH_SQL = [
    RICH,
    SECRET_SQL,
    *(c[0] for c in KIND_CASES),
    *(c[0] for c in STRUCTURE_CASES),
    None,
    "",
    b"SELECT * FROM t WHERE ds = '2025-06-01'",
    "SELECT * FROM t WHERE x IN (.5, 1, 'a') AND y IN (1, 2 -- two\n) AND z IN (,)",
    'SELECT "date" \'2025-06-01\', "In" (1), a FROM "My"."T" /* c */ LIMIT 5',
]
BATCH_CONTEXTS = [
    NO_CONTEXT,
    QueryContext(user="svc_etl", source="airflow", catalog="hive", schema="sales", time=ARRIVAL),
    QueryContext(catalog="iceberg", schema="marts", query_type="SELECT", time=ARRIVAL),
    QueryContext(user="bob", source="Tableau", catalog="mysql", session_properties={"a": "1"}),
]


def test_analyze_many_equals_analyze_one_by_one() -> None:
    # every statement three times, each time with another context, in an interleaved order
    rows = [(sql, BATCH_CONTEXTS[(i + k) % 4]) for k in range(3) for i, sql in enumerate(BATCH_SQL)]
    batch = list(EXTRACTOR.analyze_many([s for s, _ in rows], [c for _, c in rows]))
    assert [_exact(a) for a in batch] == [_exact(EXTRACTOR.analyze(s, c)) for s, c in rows]
    first, again = batch[0], batch[len(BATCH_SQL)]  # RICH twice: rows own their lists
    assert first.terms == again.terms and first.terms is not again.terms
    assert first.base is not again.base and first.tables is not again.tables


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(SQL_WORDS), max_size=30).map(" ".join),
            st.sampled_from(BATCH_CONTEXTS),
        ),
        max_size=12,
    ).flatmap(lambda rows: st.permutations(rows + rows[: len(rows) // 2]))
)
def test_analyze_many_equals_analyze_on_sql_like_input(
    rows: list[tuple[str, QueryContext]],
) -> None:
    batch = EXTRACTOR.analyze_many([s for s, _ in rows], [c for _, c in rows])
    assert [_exact(a) for a in batch] == [_exact(EXTRACTOR.analyze(s, c)) for s, c in rows]


def test_analyze_many_wants_a_context_per_statement() -> None:
    assert list(EXTRACTOR.analyze_many([], [])) == []
    with pytest.raises(ValueError, match="zip"):
        list(EXTRACTOR.analyze_many(["SELECT 1", "SELECT 2"], [NO_CONTEXT]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(SQL_WORDS), max_size=30).map(" ".join))
def test_template_is_the_fingerprint_of_normalize(sql: str) -> None:
    assert EXTRACTOR.analyze(sql, NO_CONTEXT).template == fingerprint(normalize(sql))


@pytest.mark.parametrize("sql", BATCH_SQL)
def test_template_of_tricky_sql_is_the_fingerprint_of_normalize(sql: str | bytes | None) -> None:
    assert EXTRACTOR.analyze(sql, NO_CONTEXT).template == fingerprint(normalize(sql))


# ----------------------------------------------------- bugs these tests found (now fixed)


def _known_bug(sql: str, expected: dict[str, float] | list[str], reason: str) -> object:
    return pytest.param(sql, expected, id=reason[:60])


def test_huge_interval_is_capped() -> None:
    assert_valid_vector(
        EXTRACTOR.analyze("SELECT INTERVAL '" + "9" * 400 + "' DAY", NO_CONTEXT).base
    )


@pytest.mark.parametrize("amount", ["²", "①"])
def test_interval_with_a_non_decimal_digit_is_ignored(amount: str) -> None:
    assert_valid_vector(EXTRACTOR.analyze(f"SELECT INTERVAL '{amount}' DAY", NO_CONTEXT).base)


def test_session_from_json_deeply_nested() -> None:
    assert QueryContext.session_from_json("[" * 100_000) == {}


@pytest.mark.parametrize(
    ("sql", "tables"),
    [
        _known_bug(
            "SELECT extract(year FROM ts) FROM t",
            ["?.?.t"],
            "FeatureExtractor._table_refs reads the column after FROM inside extract() as a table",
        ),
        _known_bug(
            "SELECT a IS DISTINCT FROM b FROM t",
            ["?.?.t"],
            "FeatureExtractor._table_refs reads the operand of IS DISTINCT FROM as a table",
        ),
        _known_bug(
            "WITH a (x) AS (SELECT 1) SELECT x FROM a",
            [],
            "FeatureExtractor._walk takes the token before AS, ')', as the CTE name, so a CTE "
            "with a column list is read as a table",
        ),
        _known_bug(
            "SELECT * FROM orders o JOIN clicks c ON o.id = c.id, events e",
            ["?.?.clicks", "?.?.events", "?.?.orders"],
            "FeatureExtractor._table_refs follows commas only after FROM, not after a JOIN",
        ),
        _known_bug(
            "SELECT * FROM /* the big one */ orders",
            ["?.?.orders"],
            "FeatureExtractor._table_refs reads the comment token after FROM, finds no name",
        ),
    ],
)
def test_tricky_tables(sql: str, tables: list[str]) -> None:
    assert EXTRACTOR.analyze(sql, NO_CONTEXT).tables == tables


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        _known_bug(
            "SELECT NULL, coalesce(a, NULL) FROM t",
            {"n_is_null": 0},
            "n_is_null counts every NULL keyword, not IS [NOT] NULL",
        ),
        _known_bug(
            "SELECT .5 FROM t",
            {"n_numeric_literals": 1},
            "_literals counts numbers by a leading digit; '.5' is a literal for sql_tokens",
        ),
        _known_bug(
            "CREATE OR REPLACE TABLE t AS SELECT * FROM u",
            {"stmt_ctas": 1, "stmt_ddl": 0},
            "_statement_kind wants 'table' right after CREATE",
        ),
        _known_bug(
            "SELECT * FROM (/* sub */ SELECT 1) s",
            {"n_subqueries": 1, "max_select_depth": 1},
            "_walk looks at the next token after '(' and a comment is a token",
        ),
        _known_bug(
            "SELECT * FROM t WHERE x IN (1, 2 -- last\n)",
            {"n_in_lists": 1, "max_in_list_size": 2},
            "_in_list_size stops at a comment token",
        ),
        _known_bug(
            "SELECT * FROM t LIMIT /* rows */ 10",
            {"has_limit": 1, "limit_log": math.log1p(10)},
            "_walk looks at the next token after LIMIT and a comment is a token",
        ),
    ],
)
def test_tricky_counts(sql: str, expected: dict[str, float]) -> None:
    assert_features(sql, expected)


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("orders_20250603", "orders_YYYYMMDD"),
        ("ticket_daily_199_20250603", "ticket_daily_199_YYYYMMDD"),
        ("events_2025_06_03", "events_YYYYMMDD"),
        ("events_202506", "events_YYYYMM"),
        ("model_v12", "model_vN"),
        ("tmp_1234", "tmp_N"),
        ("p90", "p90"),  # a name with digits that stamp nothing stays
        ("address_line_2", "address_line_2"),
        ("sales_2024", "sales_N"),  # a yearly table: stamped like a counter
    ],
)
def test_stamped_identifiers_are_normalized(name: str, normalized: str) -> None:
    assert normalize_identifier(name) == normalized


def test_date_stamped_tables_are_one_term_one_template_one_history_key() -> None:
    analyses = [
        EXTRACTOR.analyze(f"SELECT * FROM fin.ticket_daily_{day} WHERE k = 1", QueryContext())
        for day in ("20250603", "20250604", "2025_06_05")
    ]
    assert len({a.template for a in analyses}) == 1
    assert {tuple(a.tables) for a in analyses} == {("?.fin.ticket_daily_YYYYMMDD",)}
    assert all(set(a.terms) == set(analyses[0].terms) for a in analyses)
    assert not any(re.search(r"20\d\d", term) for term in analyses[0].terms)
