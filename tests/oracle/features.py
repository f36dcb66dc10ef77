"""The 78 base features of a query: its SQL text and what the router knows before it runs.

    >>> extractor = FeatureExtractor()
    >>> vector = extractor.base_features("SELECT 1", QueryContext(user="alice"))
    >>> len(vector) == len(BASE_FEATURES) == 78
    True

Serving calls :meth:`FeatureExtractor.analyze` (one query); training calls
:meth:`FeatureExtractor.analyze_many` on a chunk, which gives the same analyses but works out
the text of a statement that repeats in the chunk once. Either way one tokenisation pass
(:mod:`query_predictor.core.sql_tokens`) feeds every SQL feature, the table list the history
features key on, and the normalised tokens TF-IDF counts. The catalogue
:data:`BASE_FEATURES` (name, kind, meaning, example) is the single list the vector follows;
``docs/features.md`` is generated from it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import compress, repeat
from typing import NamedTuple

from tests.oracle.sql_tokens import (
    as_text,
    fingerprint,
    in_list_end,
    is_comment,
    normalized_from,
    tokenize,
    unquoted,
    without_comments,
)


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
    F("interval_days", "value", "largest INTERVAL, in days", "INTERVAL '7' DAY -> 7"),
    F("uses_current_date", "flag", "current_date / now() / current_timestamp", ""),
    F("has_partition_predicate", "flag", "ds / dt / event_date compared in the text", ""),
    # --- tables
    F("n_catalogs", "count", "distinct catalogs of the tables read", ""),
    F("reads_lake", "flag", "a hive / iceberg / delta table", ""),
    F("reads_jdbc", "flag", "a mysql / postgresql / other JDBC table", ""),
    F("reads_metadata", "flag", "information_schema or system tables", ""),
    # --- context the router knows
    F("query_type_code", "code", "Trino query type (order of QUERY_TYPES), -1 unknown", ""),
    F("catalog_code", "code", "session catalog (order of CATALOG_CODES), -1 unknown", ""),
    F("source_kind", "code", "client kind (order of SOURCE_KINDS)", "superset -> 0"),
    F("user_is_service", "flag", "user looks like a service account (svc_, service, bot)", ""),
    F("hour_of_day", "value", "UTC hour the query arrived", ""),
    F("day_of_week", "value", "0 = Monday ... 6 = Sunday", ""),
    F("n_session_properties", "count", "session properties set by the client", ""),
)
BASE_NAMES: tuple[str, ...] = tuple(f.name for f in BASE_FEATURES)
_AT = {name: i for i, name in enumerate(BASE_NAMES)}  # where a feature is in a vector
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
PARTITION_COLUMNS = {"ds", "dt", "event_date", "partition_date", "date_key", "day", "dateint"}
AGGREGATES = {
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "approx_distinct",
    "approx_percentile",
    "approx_set",
    "approx_most_frequent",
    "array_agg",
    "map_agg",
    "count_if",
    "max_by",
    "min_by",
    "histogram",
    "arbitrary",
    "any_value",
    "bool_and",
    "bool_or",
    "stddev",
    "variance",
    "listagg",
    "corr",
    "checksum",
    "set_agg",
    "multimap_agg",
}
_COMPARE = {"=", "<>", "!=", "<", ">", "<=", ">="}
_CLAUSE_END = {
    "where",
    "group",
    "order",
    "limit",
    "having",
    "join",
    "on",
    "union",
    "left",
    "right",
    "full",
    "inner",
    "cross",
    "window",
    "fetch",
    "offset",
    ")",
    ";",
}
_INTERVAL_DAYS = {
    "second": 1 / 86400,
    "minute": 1 / 1440,
    "hour": 1 / 24,
    "day": 1.0,
    "week": 7.0,
    "month": 30.0,
    "year": 365.0,
}
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
        if not text:
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
    terms: dict[str, int]  # word tokens (keywords, identifiers) and their counts, for TF-IDF
    template: str  # fingerprint of the normalised text (literals replaced)


def _source_kind(source: str | None) -> int:
    if not source:
        return _SOURCE_ORDER.index("missing")
    low = source.lower()
    for index, pattern in enumerate(_SOURCE_PATTERNS):
        if pattern.search(low):
            return index
    return _SOURCE_ORDER.index("other")


def _date_ordinal(literal: str) -> int | None:
    """Day number of a 'YYYY-MM-DD...' string literal, or None."""
    text = literal[1:11]
    if len(text) == 10 and text[4] == "-" and text[7] == "-" and text[:4].isdigit():
        try:
            return (dt.date(int(text[:4]), int(text[5:7]), int(text[8:10])) - _DAY_ZERO).days
        except ValueError:
            return None
    return None


def _cte_name(tokens: list[str], i: int) -> str:
    """Name of a CTE whose ``AS (`` follows token ``i``: skip a column list ``name (a, b)``."""
    if tokens[i] == ")":
        depth = 0
        while i > 0:
            if tokens[i] == ")":
                depth += 1
            elif tokens[i] == "(":
                depth -= 1
                if depth == 0:
                    i -= 1
                    break
            i -= 1
    return tokens[i].strip('"')


def _read_name(tokens: list[str], i: int) -> tuple[list[str], int]:
    """Dotted name starting at ``i``: its parts (unquoted) and the index after it."""
    parts: list[str] = []
    n = len(tokens)
    while i < n:
        tok = tokens[i]
        first = tok[0]
        if first == '"':
            parts.append(tok.strip('"'))
        elif first.isalpha() or first == "_":
            parts.append(tok)
        else:
            break
        i += 1
        if i < n and tokens[i] == ".":
            i += 1
        else:
            break
    return parts, i


class _Kinds(NamedTuple):
    """The tokens of a statement that features and normalisation look at by kind."""

    dates: list[int]  # day numbers of the date literals, one per occurrence
    terms: dict[str, int]  # TF-IDF terms: words and unquoted identifiers, with counts
    literals: list[str]  # distinct string and numeric literals, but for ...
    fractions: list[str]  # ... the numbers written .5 (an IN list does not count these)
    quoted: dict[str, str]  # distinct quoted identifiers, and their unquoted form


class _Statement(NamedTuple):
    """What analysis takes from the SQL text alone: the same for every query with that text.
    Rows of a batch share it, so it holds tuples (which the garbage collector stops tracking)."""

    base: tuple[float, ...]  # base features (BASE_NAMES order); those of the context still 0
    tables: tuple[str, ...]  # table references as written, in order
    ctes: tuple[str, ...]  # names of the CTEs
    first_date: int | None  # day number of the earliest date literal
    terms: dict[str, int]
    template: str


class FeatureExtractor:
    """Base features of a query; stateless, so one instance serves every thread."""

    names = BASE_NAMES

    def analyze(self, sql: str | bytes | None, context: QueryContext) -> Analysis:
        """One pass over ``sql``: base features (78), tables read, TF-IDF terms.

        Counts come from a Counter of the tokens (C speed); each distinct token is looked
        at once, and only the few positions that need their neighbours (parentheses, FROM /
        JOIN, LIMIT, partition columns...) are visited in Python. The text alone decides
        most of it (:meth:`_statement`); the context adds the rest (:meth:`_with_context`).
        """
        return self._with_context(self._statement(sql), context)

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
        tokens = tokenize(text)
        words = Counter(tokens)
        f = _ZEROS.copy()  # a copy is much cheaper than dict.fromkeys
        f["sql_chars_log"] = math.log1p(len(text))
        f["n_tokens"] = len(tokens)
        f["n_lines"] = text.count("\n") + 1 if text else 0
        self._keyword_counts(f, words)
        kinds = self._distinct_tokens(f, words)
        if f["n_comments"]:
            tokens = without_comments(tokens)
        self._statement_kind(f, tokens, words)
        ctes, tables, in_lists = self._walk(f, tokens, kinds)
        f["n_cte"] = len(ctes) if "with" in words else 0
        f["order_without_limit"] = float("order" in words and not f["has_limit"])
        f["n_tables"] = len(tables)
        normalized = normalized_from(
            tokens,
            distinct=words,
            literals=kinds.literals + kinds.fractions,
            quoted=kinds.quoted,
            in_lists=in_lists,
        )
        first_date = min(kinds.dates) if kinds.dates else None
        template = fingerprint(" ".join(normalized))
        base = tuple(map(float, f.values()))  # f is a copy of _ZEROS: in catalogue order
        return _Statement(base, tuple(tables), tuple(ctes), first_date, kinds.terms, template)

    def _with_context(self, statement: _Statement, context: QueryContext) -> Analysis:
        base = list(statement.base)
        if statement.first_date is not None and context.time is not None:
            today = (context.time.date() - _DAY_ZERO).days
            base[_AT["date_lookback_days"]] = float(max(0, today - statement.first_date))
        resolved = self._resolve(statement.tables, statement.ctes, context)
        catalogs = {t.split(".")[0] for t in resolved}
        base[_AT["n_distinct_tables"]] = float(len(resolved))
        base[_AT["n_catalogs"]] = float(len(catalogs - {"?"}))
        base[_AT["reads_lake"]] = float(bool(catalogs & LAKE_CATALOGS))
        metadata = any(set(t.split(".")) & METADATA_SCHEMAS for t in resolved)
        base[_AT["reads_metadata"]] = float(metadata)
        base[_AT["reads_jdbc"]] = float(any(c not in _NOT_JDBC for c in catalogs))
        self._context(base, context)
        return Analysis(base, resolved, dict(statement.terms), statement.template)

    def base_features(self, sql: str | bytes | None, context: QueryContext) -> list[float]:
        """The 78 base features of one query (serving)."""
        return self.analyze(sql, context).base

    # -- parts -------------------------------------------------------------------------------

    @staticmethod
    def _statement_kind(f: dict[str, float], tokens: list[str], words: Counter) -> None:
        n = len(tokens)
        start = 0
        while start < n and tokens[start] == "(":
            start += 1
        first = tokens[start] if start < n else ""
        second = tokens[start + 1] if start + 1 < n else ""
        fourth = tokens[start + 3] if start + 3 < n else ""
        if second == "or" and fourth:  # CREATE OR REPLACE TABLE / VIEW
            second = fourth
        if first in ("select", "with", "values"):
            f["stmt_select"] = 1.0
        elif first == "insert":
            f["stmt_insert"] = 1.0
        elif first == "create" and words["as"] and words["select"] and second == "table":
            f["stmt_ctas"] = 1.0
        elif first == "explain":
            f["stmt_explain_analyze" if words["analyze"] else "stmt_explain"] = 1.0
        elif first in _METADATA_VERBS:
            f["stmt_metadata"] = 1.0
        elif first in ("delete", "update", "merge"):
            f["stmt_delete_update_merge"] = 1.0
        elif first:
            f["stmt_ddl"] = 1.0

    @staticmethod
    def _keyword_counts(f: dict[str, float], words: Counter) -> None:
        get = words.get  # dict.get: a missing key costs no Counter.__missing__ call
        f.update(zip(_ONE_KEYWORD_NAMES, map(get, _ONE_KEYWORD_WORDS, repeat(0)), strict=True))
        f["n_intersect_except"] = get("intersect", 0) + get("except", 0)
        f["n_grouping_sets"] = get("grouping", 0) + get("rollup", 0) + get("cube", 0)
        f["n_cast"] = get("cast", 0) + get("try_cast", 0)
        f["n_comparisons"] = sum([get(op, 0) for op in _COMPARE])
        f["n_join_cross"] = max(0, get("cross", 0) - get("unnest", 0))
        f["n_join_inner"] = max(
            0,
            get("join", 0) - get("left", 0) - get("right", 0) - get("full", 0) - get("cross", 0),
        )
        f["n_and"] = max(0, get("and", 0) - get("between", 0))
        f["n_aggregates"] = sum([words[k] for k in AGGREGATES & words.keys()])
        f["uses_current_date"] = float(
            bool(get("current_date") or get("now") or get("current_timestamp"))
        )

    @staticmethod
    def _distinct_tokens(f: dict[str, float], words: Counter) -> _Kinds:
        """Literal, comment and function-family counts, and the :class:`_Kinds` of the
        tokens, from one visit per distinct token."""
        kinds = _Kinds([], {}, [], [], {})
        dates, terms, literals, quoted = kinds.dates, kinds.terms, kinds.literals, kinds.quoted
        strings = numbers = comments = 0
        for tok, count in words.items():
            c = tok[0]
            if c in _WORD_START:
                # a word is distinct here; only an identifier quoted before can share its term
                terms[tok] = terms.get(tok, 0) + count if quoted else count
                if "_" in tok and tok.startswith(_FAMILY_PREFIXES):
                    f[_FAMILIES[tok.partition("_")[0]]] += count
            elif c == "'":
                strings += count
                literals.append(tok)
                if len(tok) > 10 and tok[5] == "-" and tok[8] == "-":
                    day = _date_ordinal(tok)
                    if day is not None:
                        dates.extend([day] * count)
            elif c.isdigit():
                numbers += count
                literals.append(tok)
            elif c == "." and len(tok) > 1:
                numbers += count
                kinds.fractions.append(tok)
            elif c == '"':
                quoted[tok] = unquoted(tok)
                term = tok.strip('"')
                terms[term] = terms.get(term, 0) + count
            elif is_comment(tok):
                comments += count
        f["n_string_literals"] = strings
        f["n_numeric_literals"] = numbers
        f["n_comments"] = comments
        if dates:
            f["n_date_literals"] = len(dates)
            f["date_span_days"] = max(dates) - min(dates)
        return kinds

    @staticmethod
    def _walk(
        f: dict[str, float], tokens: list[str], kinds: _Kinds
    ) -> tuple[set[str], list[str], list[tuple[int, int]]]:
        """Features that need a token's neighbours, visiting only the tokens that matter:
        parentheses (depths, subqueries, IN lists, calls, CTE names), FROM / JOIN (tables),
        LIMIT / FETCH, INTERVAL, ``*`` and partition columns. Also returns the spans of the
        IN lists that normalisation collapses."""
        ctes: set[str] = set()
        tables: list[str] = []
        depth = max_depth = select_depth = max_select = limit = 0
        stack: list[int] = []
        calls: list[str] = []  # the word before each open parenthesis, innermost last
        n = len(tokens)
        listed: set[str] | None = None
        in_lists: list[tuple[int, int]] = []
        for i in compress(range(n), map(_MARKED.__contains__, tokens)):  # found in C
            tok = tokens[i]
            if tok == ")":
                if stack and stack[-1] == depth:
                    stack.pop()
                    select_depth -= 1
                if depth:
                    depth -= 1
                if calls:
                    calls.pop()
                continue
            prev = tokens[i - 1] if i else ""
            nxt = tokens[i + 1] if i + 1 < n else ""
            if tok == "(":
                depth += 1
                if depth > max_depth:
                    max_depth = depth
                calls.append(prev)
                if nxt == "select":
                    f["n_subqueries"] += 1
                    select_depth += 1
                    stack.append(depth)
                    if select_depth > max_select:
                        max_select = select_depth
                    if prev == "in":
                        f["n_in_subquery"] += 1
                    elif prev == "as" and i >= 2:
                        ctes.add(_cte_name(tokens, i - 2))
                elif prev == "in":
                    if listed is None:  # what an IN list of literals holds
                        listed = {",", "-", "+", *kinds.literals, *kinds.fractions}
                    end = in_list_end(tokens, i - 1, listed)
                    if end:
                        in_lists.append((i - 1, end + 1))
                        size = FeatureExtractor._in_list_size(tokens[i + 1 : end], kinds)
                        if size:
                            f["n_in_lists"] += 1
                            f["max_in_list_size"] = max(f["max_in_list_size"], size)
                if prev and prev[0] in _WORD_START and prev not in _NOT_CALLS:
                    f["n_function_calls"] += 1
                    if prev == "count" and nxt == "distinct":
                        f["n_count_distinct"] += 1
            elif tok == "from" or tok == "join":
                # not EXTRACT(year FROM ts), TRIM(x FROM y) or a IS DISTINCT FROM b
                if prev != "distinct" and not (calls and calls[-1] in _FROM_INSIDE_CALL):
                    FeatureExtractor._table_refs(f, tokens, i, tables)
            elif tok == "is":
                if nxt == "null" or (nxt == "not" and i + 2 < n and tokens[i + 2] == "null"):
                    f["n_is_null"] += 1
            elif tok == "limit" or tok == "first" or tok == "next":
                if nxt.isdigit():
                    limit = max(limit, int(nxt[:18]))
                    f["has_limit"] = 1.0
                elif tok != "limit" and nxt in ("row", "rows"):
                    f["has_limit"] = 1.0
            elif tok == "interval" and nxt[:1] == "'" and i + 2 < n:
                unit = tokens[i + 2].rstrip("s")
                amount = nxt.strip("'").strip()
                if unit in _INTERVAL_DAYS and _DECIMAL.fullmatch(amount):
                    days = min(MAX_INTERVAL_DAYS, float(amount) * _INTERVAL_DAYS[unit])
                    f["interval_days"] = max(f["interval_days"], days)
            elif tok == "*":
                if prev in ("select", ",", ".", "distinct"):
                    f["n_star"] += 1
            elif nxt in _COMPARE or nxt == "between" or nxt == "in":
                f["has_partition_predicate"] = 1.0  # a partition column compared
        f["max_paren_depth"] = max_depth
        f["max_select_depth"] = max_select
        if limit:
            f["limit_log"] = math.log1p(limit)
        return ctes, tables, in_lists

    @staticmethod
    def _table_refs(f: dict[str, float], tokens: list[str], i: int, tables: list[str]) -> None:
        """The table after FROM / JOIN at ``i``, and after commas in a FROM list."""
        n = len(tokens)
        parts, end = _read_name(tokens, i + 1)
        if (
            not parts
            or parts[0] in ("unnest", "table", "lateral")
            or (end < n and tokens[end] == "(")
        ):
            return
        tables.append(".".join(parts))
        j, depth = end, 0  # FROM a [AS] x, b [AS] y ...; also JOIN c ON ..., d
        while j < n and (depth > 0 or tokens[j] not in _FROM_LIST_END):
            tok = tokens[j]
            if tok == "(":
                depth += 1
            elif tok == ")":
                if depth == 0:
                    break
                depth -= 1
            elif tok == "," and depth == 0 and j + 1 < n and tokens[j + 1][0] not in "('":
                more, j = _read_name(tokens, j + 1)
                if more and (j >= n or tokens[j] != "("):
                    tables.append(".".join(more))
                    f["n_implicit_join"] += 1
                continue
            j += 1

    @staticmethod
    def _in_list_size(items: list[str], kinds: _Kinds) -> int:
        """Literals in an IN list of literals (``items``, commas and signs included); 0 if one
        of them is written .5 (not a literal here)."""
        if kinds.fractions and not set(kinds.fractions).isdisjoint(items):
            return 0
        return len(items) - items.count(",") - items.count("-") - items.count("+")

    @staticmethod
    def _resolve(tables: Iterable[str], ctes: Collection[str], context: QueryContext) -> list[str]:
        """Fully qualify table names with the session catalog and schema; drop CTE names."""
        out = set()
        for name in tables:
            parts = name.split(".")
            if len(parts) == 1:
                if name in ctes:
                    continue
                parts = [context.catalog or "?", context.schema or "?", name]
            elif len(parts) == 2:
                parts = [context.catalog or "?", *parts]
            out.add(".".join(parts[-3:]))
        return sorted(out)

    @staticmethod
    def _context(base: list[float], context: QueryContext) -> None:
        """The features of ``context`` alone, written into ``base``."""
        qtype = (context.query_type or "").upper()
        code = QUERY_TYPES.index(qtype) if qtype in QUERY_TYPES else -1
        base[_AT["query_type_code"]] = float(code)
        catalog = (context.catalog or "").lower()
        if catalog in CATALOG_CODES:
            code = CATALOG_CODES.index(catalog)
        else:
            code = -1 if not catalog else CATALOG_CODES.index("other")
        base[_AT["catalog_code"]] = float(code)
        base[_AT["source_kind"]] = float(_source_kind(context.source))
        user = (context.user or "").lower()
        base[_AT["user_is_service"]] = float(user.startswith(("svc", "service")) or "bot" in user)
        if context.time is not None:
            base[_AT["hour_of_day"]] = float(context.time.hour)
            base[_AT["day_of_week"]] = float(context.time.weekday())
        else:
            base[_AT["hour_of_day"]] = base[_AT["day_of_week"]] = -1.0
        base[_AT["n_session_properties"]] = float(len(context.session_properties))


_ONE_KEYWORD = (
    ("n_select", "select"),
    ("n_join", "join"),
    ("n_join_left", "left"),
    ("n_join_right", "right"),
    ("n_join_full", "full"),
    ("n_union", "union"),
    ("n_where", "where"),
    ("n_or", "or"),
    ("n_between", "between"),
    ("n_like", "like"),
    ("n_exists", "exists"),
    ("n_group_by", "group"),
    ("n_having", "having"),
    ("n_order_by", "order"),
    ("n_distinct", "distinct"),
    ("n_window", "over"),
    ("n_partition_by", "partition"),
    ("n_case", "case"),
    ("n_unnest", "unnest"),
)
_ONE_KEYWORD_NAMES, _ONE_KEYWORD_WORDS = zip(*_ONE_KEYWORD, strict=True)
_FROM_INSIDE_CALL = {"extract", "trim", "substring", "overlay", "position"}
# A FROM / JOIN list ends at the next clause or join (ON conditions are crossed, at depth 0).
_FROM_LIST_END = (_CLAUSE_END - {"on"}) | {"select", "as"} - {"as"}
_DECIMAL = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,12})?")
MAX_INTERVAL_DAYS = 36_500.0
_WORD_START = frozenset("abcdefghijklmnopqrstuvwxyz_")
_FAMILIES = {"approx": "n_approx_aggregates", "regexp": "n_regexp", "json": "n_json"}
_FAMILY_PREFIXES = tuple(f"{family}_" for family in _FAMILIES)
_METADATA_VERBS = {"show", "describe", "desc", "use", "set", "reset", "prepare", "deallocate"}
_MARKED = frozenset(
    {"(", ")", "from", "join", "is", "limit", "first", "next", "interval", "*", *PARTITION_COLUMNS}
)
_NOT_JDBC = {*LAKE_CATALOGS, "system", "?"}
_NOT_CALLS = {
    "in",
    "as",
    "over",
    "from",
    "join",
    "exists",
    "using",
    "on",
    "and",
    "or",
    "not",
    "values",
    "select",
    "where",
    "when",
    "then",
    "else",
    "table",
    "with",
    "into",
    "unnest",
    "lateral",
    "by",
    "is",
    "row",
    "array",
    "map",
    "filter",
    "window",
}
