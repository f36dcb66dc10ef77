"""The 78 base features of a query: its SQL text and what the router knows before it runs.

    >>> extractor = FeatureExtractor()
    >>> vector = extractor.base_features("SELECT 1", QueryContext(user="alice"))
    >>> len(vector) == len(BASE_FEATURES) == 78
    True

Serving calls :meth:`FeatureExtractor.analyze` (one query); training calls
:meth:`FeatureExtractor.analyze_many` on a chunk, which gives the same analyses but works out
the text of a statement that repeats in the chunk once. Either way one compiled pass over the
text (:mod:`query_predictor.core._textscan`) yields every SQL feature, the table list the
history features key on, the terms TF-IDF counts and the normalised text of the template.
The catalogue :data:`BASE_FEATURES` (name, kind, meaning, example) is the single list the
vector follows; ``docs/features.md`` is generated from it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

from .conventions import Conventions
from .sql_tokens import _textscan, as_text, fingerprint


class Feature(NamedTuple):
    name: str
    kind: str  # count, flag, log, value, code
    meaning: str
    example: str


F = Feature
BASE_FEATURES: tuple[Feature, ...] = (
    # --- size and layout
    F("sql_chars_log", "log", "log(1 + characters of SQL text)", "SELECT 1 -> 2.2"),
    F("n_tokens", "count", "tokens, comments and literals each one", "SELECT 1 -> 2"),
    F("n_lines", "count", "lines of text", "two lines -> 2"),
    F("n_comments", "count", "-- and /* */ comments", "/* x */ SELECT 1 -> 1"),
    F("max_paren_depth", "count", "deepest nesting of parentheses", "f(g(x)) -> 2"),
    F("max_select_depth", "count", "deepest nesting of SELECT in parentheses", "subquery -> 1"),
    # --- statement kind
    F("stmt_select", "flag", "statement starts with SELECT, WITH or VALUES", ""),
    F("stmt_insert", "flag", "INSERT INTO", ""),
    F("stmt_ctas", "flag", "CREATE TABLE ... AS", ""),
    F("stmt_explain", "flag", "EXPLAIN (not ANALYZE)", ""),
    F("stmt_explain_analyze", "flag", "EXPLAIN ANALYZE (runs the query)", ""),
    F("stmt_metadata", "flag", "SHOW / DESCRIBE / USE / SET / RESET / PREPARE", ""),
    F("stmt_delete_update_merge", "flag", "DELETE, UPDATE or MERGE", ""),
    F("stmt_ddl", "flag", "CREATE / DROP / ALTER / CALL and other statements", ""),
    # --- query structure
    F("n_select", "count", "SELECT keywords", "subquery -> 2"),
    F("n_cte", "count", "CTEs in WITH clauses", "WITH a AS (...), b AS (...) -> 2"),
    F("n_subqueries", "count", "SELECTs opened by a parenthesis", "IN (SELECT ...) -> 1"),
    F("n_tables", "count", "table references after FROM / JOIN / comma", ""),
    F("n_distinct_tables", "count", "distinct tables read (CTE names excluded)", ""),
    F("n_join", "count", "JOIN keywords", ""),
    F("n_join_inner", "count", "plain or INNER JOIN", ""),
    F("n_join_left", "count", "LEFT [OUTER] JOIN", ""),
    F("n_join_right", "count", "RIGHT [OUTER] JOIN", ""),
    F("n_join_full", "count", "FULL [OUTER] JOIN", ""),
    F("n_join_cross", "count", "CROSS JOIN (UNNEST excluded)", ""),
    F("n_implicit_join", "count", "tables listed with commas in FROM", "FROM a, b -> 1"),
    F("n_union", "count", "UNION [ALL]", ""),
    F("n_intersect_except", "count", "INTERSECT or EXCEPT", ""),
    F("n_where", "count", "WHERE clauses", ""),
    F("n_and", "count", "AND", ""),
    F("n_or", "count", "OR", ""),
    F("n_comparisons", "count", "= <> != < > <= >=", ""),
    F("n_between", "count", "BETWEEN", ""),
    F("n_is_null", "count", "IS [NOT] NULL", ""),
    F("n_like", "count", "LIKE", ""),
    F("n_regexp", "count", "regexp_* function calls", ""),
    F("n_in_lists", "count", "IN lists of literals", "x IN (1, 2) -> 1"),
    F("max_in_list_size", "count", "literals in the largest IN list", "x IN (1, 2) -> 2"),
    F("n_in_subquery", "count", "IN (SELECT ...)", ""),
    F("n_exists", "count", "EXISTS", ""),
    F("n_group_by", "count", "GROUP BY clauses", ""),
    F("n_grouping_sets", "count", "GROUPING SETS, ROLLUP or CUBE", ""),
    F("n_having", "count", "HAVING", ""),
    F("n_order_by", "count", "ORDER BY clauses", ""),
    F("has_limit", "flag", "a LIMIT or FETCH FIRST", ""),
    F("limit_log", "log", "log(1 + largest LIMIT value), 0 without LIMIT", "LIMIT 100 -> 4.6"),
    F("order_without_limit", "flag", "ORDER BY and no LIMIT anywhere (a full sort)", ""),
    F("n_distinct", "count", "DISTINCT (SELECT DISTINCT and aggregate DISTINCT)", ""),
    F("n_count_distinct", "count", "count(DISTINCT ...)", ""),
    F("n_aggregates", "count", "aggregate function calls", "sum(x), count(*) -> 2"),
    F("n_approx_aggregates", "count", "approx_* aggregates", ""),
    F("n_window", "count", "OVER clauses", ""),
    F("n_partition_by", "count", "PARTITION BY in windows", ""),
    F("n_case", "count", "CASE expressions", ""),
    F("n_cast", "count", "CAST / TRY_CAST", ""),
    F("n_function_calls", "count", "calls of any function", ""),
    F("n_json", "count", "json_* function calls", ""),
    F("n_unnest", "count", "UNNEST", ""),
    F("n_star", "count", "* in a select list (not count(*))", "SELECT * -> 1"),
    # --- literals
    F("n_string_literals", "count", "string literals", ""),
    F("n_numeric_literals", "count", "numeric literals", ""),
    F("n_date_literals", "count", "literals that are dates ('YYYY-MM-DD...')", ""),
    F("date_span_days", "value", "days between the earliest and latest date literal", ""),
    F("date_lookback_days", "value", "days from the earliest date literal to the query day", ""),
    F(
        "interval_days",
        "value",
        "largest INTERVAL or date_add('<unit>', n, ...), in days",
        "INTERVAL '7' DAY -> 7",
    ),
    F("uses_current_date", "flag", "current_date / now() / current_timestamp", ""),
    F(
        "has_partition_predicate",
        "flag",
        "a column the site filters by date (learned in training) is compared",
        "WHERE load_date >= DATE '2025-06-01' -> 1",
    ),
    # --- tables
    F("n_catalogs", "count", "distinct catalogs of the tables read", ""),
    F("reads_lake", "flag", "a hive / iceberg / delta table", ""),
    F("reads_jdbc", "flag", "a mysql / postgresql / other JDBC table", ""),
    F("reads_metadata", "flag", "information_schema or system tables", ""),
    # --- context the router knows
    F("query_type_code", "code", "Trino query type (order of QUERY_TYPES), -1 unknown", ""),
    F("catalog_code", "code", "session catalog (order of CATALOG_CODES), -1 unknown", ""),
    F("source_kind", "code", "client kind (order of SOURCE_KINDS)", "superset -> 0"),
    F(
        "user_is_service",
        "flag",
        "user repeated its own statements like a scheduler in training, or matches a pattern",
        "",
    ),
    F("hour_of_day", "value", "UTC hour the query arrived", ""),
    F("day_of_week", "value", "0 = Monday ... 6 = Sunday", ""),
    F("n_session_properties", "count", "session properties set by the client", ""),
)
BASE_NAMES: tuple[str, ...] = tuple(f.name for f in BASE_FEATURES)
_AT = {name: i for i, name in enumerate(BASE_NAMES)}  # where a feature is in a vector


def days_read(base: Sequence[float]) -> float:
    """Days of data a statement reads (at least 1), from its base features ``base``: from
    its earliest date literal to its own day (``date_lookback_days``) or its largest interval
    (``current_date - INTERVAL '7' DAY``, ``date_add('day', -7, current_date)``:
    ``interval_days``), whichever is longer. It sizes a read with a
    partition predicate (:func:`~query_predictor.core.history.scan_estimate`)."""
    return max(1.0, base[_AT["date_lookback_days"]], base[_AT["interval_days"]])


def reads_data(base: Sequence[float]) -> bool:
    """Whether a statement reads the data of the tables it names, from its base features
    ``base``: not a SHOW / DESCRIBE (``SHOW COLUMNS FROM t`` names ``t`` and reads nothing
    of it), a plain EXPLAIN or DDL. Only such reads size a table
    (:func:`~query_predictor.core.history.scan_estimate`)."""
    return not any(base[_AT[name]] for name in _NO_DATA_READ)


_NO_DATA_READ = ("stmt_metadata", "stmt_explain", "stmt_ddl")
_ZEROS = dict.fromkeys(BASE_NAMES, 0.0)  # every feature 0, in catalogue order (never changed)

QUERY_TYPES = (
    "SELECT",
    "INSERT",
    "EXPLAIN",
    "DESCRIBE",
    "DATA_DEFINITION",
    "DELETE",
    "UPDATE",
    "MERGE",
    "ANALYZE",
    "ALTER_TABLE_EXECUTE",
)
CATALOG_CODES = ("hive", "iceberg", "delta", "mysql", "postgresql", "system", "other")
SOURCE_KINDS = {
    "bi": ("superset", "tableau", "looker", "mode", "metabase", "redash", "power", "sigma"),
    "scheduler": ("airflow", "dbt", "dagster", "prefect", "luigi", "oozie", "cron"),
    "notebook": ("jupyter", "python", "notebook", "pandas", "zeppelin", "hex"),
    "cli": ("trino-cli", "presto-cli", "cli"),
    "ide": ("dbeaver", "datagrip", "jdbc", "odbc", "intellij"),
    "monitoring": ("prometheus", "datadog", "gateway", "health", "monitor"),
}
_SOURCE_ORDER = (*SOURCE_KINDS, "other", "missing")
# one search per kind, in order: is any of its needles in the source?
_SOURCE_PATTERNS = [re.compile("|".join(map(re.escape, n))) for n in SOURCE_KINDS.values()]
LAKE_CATALOGS = {"hive", "iceberg", "delta", "hudi"}
METADATA_SCHEMAS = {"information_schema", "system"}
_DAY_ZERO = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class QueryContext:
    """What a router knows about a query before it runs, besides the SQL text."""

    user: str | None = None
    source: str | None = None
    catalog: str | None = None
    schema: str | None = None
    query_type: str | None = None
    time: dt.datetime | None = None  # arrival time, UTC
    session_properties: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def session_from_json(text: str | None) -> dict[str, str]:
        """Session properties stored as a JSON object (the raw log's column); bad JSON -> {}."""
        if not text or text == "{}":
            return {}
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            return {}
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Analysis:
    """Everything one tokenisation pass yields."""

    base: list[float]  # in BASE_NAMES order
    tables: list[str]  # catalog.schema.table as far as known, sorted, distinct
    # word tokens (keywords, identifiers) and their counts, for TF-IDF; read-only, because
    # every query with the same text shares it
    terms: Mapping[str, int]
    template: str  # fingerprint of the normalised text (literals replaced)
    compared: frozenset[str]  # columns compared (col = ..., BETWEEN, IN)
    dated: frozenset[str]  # of those, the columns compared with a date


def _source_kind(source: str | None) -> int:
    if not source:
        return _SOURCE_ORDER.index("missing")
    low = source.lower()
    for index, pattern in enumerate(_SOURCE_PATTERNS):
        if pattern.search(low):
            return index
    return _SOURCE_ORDER.index("other")


class _Statement(NamedTuple):
    """What analysis takes from the SQL text alone: the same for every query with that text.
    Rows of a batch share it, so it holds tuples (which the garbage collector stops tracking)."""

    base: tuple[float, ...]  # base features (BASE_NAMES order); those of the context still 0
    tables: tuple[str, ...]  # table references as written, in order
    ctes: tuple[str, ...]  # names of the CTEs
    first_date: int | None  # day number of the earliest date literal
    terms: dict[str, int]
    template: str
    compared: frozenset[str]
    dated: frozenset[str]

    def record(self) -> tuple[Any, ...] | None:
        """These fields as one flat tuple of strings, numbers and arrays, for a cache that keeps
        thousands: the garbage collector stops tracking a tuple that holds nothing it could
        track, in its first pass over it. A tuple inside a tuple would take a pass per level
        (the collector examines a child after its parent), and a dict or set keeps it tracked
        for good; so the strings of a field are joined into one, the numbers are an array.
        :meth:`from_record` undoes it; None when that could not (a string holding the
        separator, a NUL, which no SQL text has in practice)."""
        base, tables, ctes, first_date, terms, template, compared, dated = self
        joined = [_joined(strings) for strings in (tables, ctes, terms, compared, dated)]
        if None in joined:
            return None
        tables_, ctes_, words, compared_, dated_ = joined
        counts = np.fromiter(terms.values(), dtype=np.int64, count=len(terms))
        return (
            np.array(base), tables_, ctes_, first_date, words, counts, template, compared_, dated_
        )  # fmt: skip

    @classmethod
    def from_record(cls, record: Sequence[Any]) -> _Statement:
        base, tables, ctes, first_date, words, counts, template, compared, dated = record
        return cls(
            tuple(base.tolist()), _split(tables), _split(ctes), first_date,
            dict(zip(_split(words), counts.tolist(), strict=True)), template,
            frozenset(_split(compared)), frozenset(_split(dated)),
        )  # fmt: skip


_SEPARATOR = "\x00"


def _joined(strings: Iterable[str]) -> str | None:
    """``strings`` as one string that :func:`_split` takes apart again; None if it could not
    (one of them holds the separator, or they are one empty string)."""
    strings = tuple(strings)
    if not strings:
        return ""
    joined = _SEPARATOR.join(strings)
    if joined.count(_SEPARATOR) != len(strings) - 1 or not joined:
        return None
    return joined


def _split(joined: str) -> tuple[str, ...]:
    return tuple(joined.split(_SEPARATOR)) if joined else ()


class FeatureExtractor:
    """Base features of a query; read-only once built, so one instance serves every thread.

    ``conventions`` are what the training window taught about the site's partition columns
    and service users (:mod:`query_predictor.core.conventions`); without them
    ``has_partition_predicate`` and ``user_is_service`` are 0 (or the pattern's answer)."""

    names = BASE_NAMES

    def __init__(self, conventions: Conventions | None = None) -> None:
        self.conventions = conventions or Conventions()

    def analyze(self, sql: str | bytes | None, context: QueryContext) -> Analysis:
        """One pass over ``sql``: base features (78), tables read, TF-IDF terms.

        The text alone decides most of it (:meth:`_statement`, one compiled scan of the
        tokens); the context adds the rest (:meth:`_with_context`).
        """
        return self._with_context(self._statement(sql), context)

    def statement(self, sql: str | bytes | None) -> _Statement:
        """What :meth:`analyze` takes from the text alone: the same for every query with that
        text (and read-only), so a caller may keep it and finish it with :meth:`complete`."""
        return self._statement(sql)

    def complete(self, statement: _Statement, context: QueryContext) -> Analysis:
        """:meth:`analyze` of the text ``statement`` came from, in ``context``."""
        return self._with_context(statement, context)

    def analyze_many(
        self, statements: Iterable[str | bytes | None], contexts: Iterable[QueryContext]
    ) -> Iterator[Analysis]:
        """:meth:`analyze` of each statement with its context, in order, one at a time (the two
        must have the same length). A text that repeats is analysed once: a repeat only
        gets the features that depend on its context. Memory grows with the distinct texts,
        so callers pass a bounded batch (a chunk)."""
        seen: dict[str | bytes | None, _Statement] = {}
        for sql, context in zip(statements, contexts, strict=True):
            statement = seen.get(sql)
            if statement is None:
                statement = seen[sql] = self._statement(sql)
            yield self._with_context(statement, context)

    def _statement(self, sql: str | bytes | None) -> _Statement:
        text = as_text(sql)
        features, tables, ctes, dates, terms, normalized, compared, dated = _textscan.scan(
            text.lower()
        )
        f = _ZEROS.copy()  # a copy is much cheaper than dict.fromkeys
        f.update(features)
        f["sql_chars_log"] = math.log1p(len(text))
        f["n_lines"] = text.count("\n") + 1 if text else 0
        base = tuple(map(float, f.values()))  # f is a copy of _ZEROS: in catalogue order
        first_date = min(dates) if dates else None
        template = fingerprint(normalized)
        return _Statement(
            base,
            tuple(tables),
            tuple(sorted(ctes)),
            first_date,
            terms,
            template,
            frozenset(compared),
            frozenset(dated),
        )

    def _with_context(self, statement: _Statement, context: QueryContext) -> Analysis:
        base = list(statement.base)
        if statement.first_date is not None and context.time is not None:
            today = (context.time.date() - _DAY_ZERO).days
            base[_AT["date_lookback_days"]] = float(max(0, today - statement.first_date))
        read = _tables_read(
            context.catalog, context.schema, len(statement.ctes), *statement.ctes, *statement.tables
        )
        values, resolved = read[: len(_TABLE_AT)], read[len(_TABLE_AT) :]
        for at, value in zip(_TABLE_AT, values, strict=True):
            base[at] = value
        codes = _codes(context.query_type, context.catalog, context.source)
        for at, value in zip(_CODE_AT, codes, strict=True):
            base[at] = value
        if context.time is not None:
            base[_AT["hour_of_day"]] = float(context.time.hour)
            base[_AT["day_of_week"]] = float(context.time.weekday())
        else:
            base[_AT["hour_of_day"]] = base[_AT["day_of_week"]] = -1.0
        base[_AT["n_session_properties"]] = float(len(context.session_properties))
        conventions = self.conventions
        base[_AT["has_partition_predicate"]] = conventions.partition_predicate(statement.compared)
        base[_AT["user_is_service"]] = conventions.is_service(context.user)
        return Analysis(
            base,
            list(resolved),
            MappingProxyType(statement.terms),
            statement.template,
            statement.compared,
            statement.dated,
        )

    def base_features(self, sql: str | bytes | None, context: QueryContext) -> list[float]:
        """The 78 base features of one query (serving)."""
        return self.analyze(sql, context).base


# The features of the tables read and of the router's codes repeat across a workload (the
# same dashboards, users and clients), so both are cached: bounded, and exact. Each cache's
# arguments and answers are flat tuples of strings and numbers, which the garbage collector
# stops tracking at its first pass over them. Nested (the tables' tuple inside the key and
# inside the answer), they were untracked a level per pass, so most entries reached the older
# generations still tracked, and a worker's passes over those walked thousands of them
# (docs/serving.md).
_TABLE_AT = [
    _AT[name]
    for name in ("n_distinct_tables", "n_catalogs", "reads_lake", "reads_metadata", "reads_jdbc")
]
_CODE_AT = [_AT[name] for name in ("query_type_code", "catalog_code", "source_kind")]


@lru_cache(maxsize=65_536)
def _tables_read(
    catalog: str | None, schema: str | None, n_ctes: int, *names: str
) -> tuple[float | str, ...]:
    """The values of the :data:`_TABLE_AT` features, then the tables a statement reads, fully
    qualified with the session catalog and schema (CTE names dropped; sorted, distinct).
    ``names``: the statement's ``n_ctes`` CTE names, then the tables it names."""
    ctes, tables = names[:n_ctes], names[n_ctes:]
    out = set()
    for name in tables:
        parts = name.split(".")
        if len(parts) == 1:
            if name in ctes:
                continue
            parts = [catalog or "?", schema or "?", name]
        elif len(parts) == 2:
            parts = [catalog or "?", *parts]
        out.add(".".join(parts[-3:]))
    resolved = sorted(out)
    catalogs = {t.split(".")[0] for t in resolved}
    metadata = any(set(t.split(".")) & METADATA_SCHEMAS for t in resolved)
    return (
        float(len(resolved)),
        float(len(catalogs - {"?"})),
        float(bool(catalogs & LAKE_CATALOGS)),
        float(metadata),
        float(any(c not in _NOT_JDBC for c in catalogs)),
        *resolved,
    )


@lru_cache(maxsize=65_536)
def _codes(
    query_type: str | None, catalog: str | None, source: str | None
) -> tuple[float, float, float]:
    """The values of the :data:`_CODE_AT` features."""
    qtype = (query_type or "").upper()
    type_code = QUERY_TYPES.index(qtype) if qtype in QUERY_TYPES else -1
    low = (catalog or "").lower()
    if low in CATALOG_CODES:
        catalog_code = CATALOG_CODES.index(low)
    else:
        catalog_code = -1 if not low else CATALOG_CODES.index("other")
    return float(type_code), float(catalog_code), float(_source_kind(source))


_NOT_JDBC = {*LAKE_CATALOGS, "system", "?"}
