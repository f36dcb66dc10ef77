"""Stage 0 of prediction: put every SQL statement in a category, some of which cost nothing.

    >>> QueryClassifier().classify("/* dashboard */ show tables from hive.sales")
    'SHOW'

Serving answers "not heavy" for the categories the ``zero_cost`` stage validated on data,
without running the model. The classifier only proposes: a category becomes zero-cost when
the training window shows it never (or almost never) is heavy.

Categories (:data:`CATEGORIES`): ``SHOW``, ``DESCRIBE``, ``EXPLAIN`` (plain; ``EXPLAIN
ANALYZE`` runs the query and is ``EXPLAIN_ANALYZE``), ``SET_SESSION``, ``RESET_SESSION``,
``USE``, ``PREPARE``, ``DEALLOCATE``, ``TRANSACTION`` (START TRANSACTION, COMMIT, ROLLBACK),
``SET_OTHER`` (SET ROLE / PATH / TIME ZONE), ``METADATA`` (a SELECT reading only
``information_schema``, ``system.metadata`` or ``system.jdbc`` tables), ``CONSTANT_SELECT``
(SELECT without FROM, VALUES), ``SMALL_LIMIT_SELECT`` (one table, no join, subquery,
aggregation, DISTINCT, window, set operation or ORDER BY, and LIMIT <= ``small_limit``),
``DDL`` (CREATE/DROP/ALTER/COMMENT/GRANT... that move no data; not CTAS, not
``ALTER TABLE ... EXECUTE``) and ``OTHER`` (everything that reads or writes data).

Statements are matched on :func:`query_predictor.core.sql_text.mask` output, so comments,
string literals, quoted identifiers, case, leading whitespace and parentheses do not fool it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from query_predictor.core.sql_text import mask

SHOW, DESCRIBE, EXPLAIN, EXPLAIN_ANALYZE = "SHOW", "DESCRIBE", "EXPLAIN", "EXPLAIN_ANALYZE"
SET_SESSION, RESET_SESSION, USE = "SET_SESSION", "RESET_SESSION", "USE"
PREPARE, DEALLOCATE, TRANSACTION, SET_OTHER = "PREPARE", "DEALLOCATE", "TRANSACTION", "SET_OTHER"
METADATA, CONSTANT_SELECT, SMALL_LIMIT_SELECT = "METADATA", "CONSTANT_SELECT", "SMALL_LIMIT_SELECT"
DDL, OTHER = "DDL", "OTHER"

CATEGORIES = (
    SHOW,
    DESCRIBE,
    EXPLAIN,
    EXPLAIN_ANALYZE,
    SET_SESSION,
    RESET_SESSION,
    USE,
    PREPARE,
    DEALLOCATE,
    TRANSACTION,
    SET_OTHER,
    METADATA,
    CONSTANT_SELECT,
    SMALL_LIMIT_SELECT,
    DDL,
    OTHER,
)
# Categories that may be zero-cost; the zero_cost stage decides on data which ones are.
CANDIDATES = tuple(c for c in CATEGORIES if c not in (EXPLAIN_ANALYZE, OTHER))

_LEAD = re.compile(r"^[\s(]*")
_WORD = re.compile(r"[a-z_]+")
_FIRST_TWO = re.compile(r"([a-z_]+)\s*([a-z_]*)")
_AGGREGATE = re.compile(
    r"\b(count|sum|avg|min|max|arbitrary|any_value|array_agg|count_if|max_by|min_by|histogram"
    r"|bool_and|bool_or|every|stddev\w*|variance|var_\w+|corr|covar_\w+|listagg|checksum"
    r"|geometric_mean|numeric_histogram|set_union|merge|regr_\w+|kurtosis|skewness|entropy"
    r"|multimap_agg|map_union\w*|learn_\w+|classification_\w+|evaluate_classifier_predictions"
    r"|approx_\w+|\w+_agg|make_set_digest|merge_set_digest)\s*\("
)
_DATA_WORK = re.compile(
    r"\b(join|group by|order by|distinct|over|union|intersect|except|unnest|having|tablesample"
    r"|match_recognize|window|offset|lateral|table)\b"
)
_LIMIT = re.compile(r"(?:limit|fetch (?:first|next)) (\d+)(?: rows?(?: only)?)?[\s)]*$")
_TABLE_REF = re.compile(r"\b(?:from|join)\s+([a-z0-9_.$@]+)")
# A second source listed after a table with a comma, or a lateral / UNNEST / TABLE() source.
_EXTRA_SOURCE = re.compile(
    r"\bfrom\s+[a-z0-9_.$@]+(?:\s+(?:as\s+)?[a-z_][a-z0-9_]*)?\s*,|\b(lateral|unnest|table)\s*\("
)
_METADATA_TABLE = re.compile(
    r"^(?:[a-z0-9_$@]+\.)?information_schema\.|^system\.(?:metadata|jdbc)\."
)
# Trino's QueryType of the categories that decide it on their own.
_CATEGORY_TYPES = {
    SHOW: "DESCRIBE",
    DESCRIBE: "DESCRIBE",
    EXPLAIN: "EXPLAIN",
    EXPLAIN_ANALYZE: "EXPLAIN",
    METADATA: "SELECT",
    CONSTANT_SELECT: "SELECT",
    SMALL_LIMIT_SELECT: "SELECT",
    **dict.fromkeys(
        (SET_SESSION, RESET_SESSION, USE, PREPARE, DEALLOCATE, TRANSACTION, SET_OTHER, DDL),
        "DATA_DEFINITION",
    ),
}
_DDL_VERBS = {"create", "drop", "alter", "comment", "grant", "revoke", "deny", "refresh"}
_SET_OTHER = {"role", "path", "time", "authorization"}


# Statements that always read or write data, whatever follows the first word.
_ALWAYS_DATA_WORK = ("with ", "with\n", "insert ", "merge ", "update ", "delete ", "analyze ")
_SPACED_FROM = re.compile(r"\sfrom[\s(]")


def _after_leading_comments(sql: str) -> str:
    """``sql`` without the comments and whitespace in front of the first keyword."""
    while True:
        sql = sql.lstrip()
        if sql.startswith("--"):
            end = sql.find("\n")
            sql = "" if end < 0 else sql[end + 1 :]
        elif sql.startswith("/*"):
            end = sql.find("*/", 2)
            sql = "" if end < 0 else sql[end + 2 :]
        else:
            return sql


def _plainly_data_work(sql: str) -> bool:
    """Fast path for the common case, a SELECT reading a table with no LIMIT: OTHER.

    It answers only when no word that could make the statement anything else (LIMIT, FETCH,
    a metadata schema) appears anywhere, not even in a literal, and its first FROM is
    certainly syntax: no comment and an even number of quotes before it.
    """
    sql = _after_leading_comments(sql)
    head = sql[:16].lstrip(" \t\r\n(").lower()
    if head.startswith(_ALWAYS_DATA_WORK):
        return True
    if not head.startswith("select"):
        return False
    low = sql.lower()
    if "limit" in low or "fetch" in low or "information_schema" in low or "system" in low:
        return False
    found = _SPACED_FROM.search(low)
    if found is None:
        return False
    at = found.start()
    return (
        low.count("'", 0, at) % 2 == 0
        and low.count('"', 0, at) % 2 == 0
        and "--" not in low[:at]
        and "/*" not in low[:at]
    )


class QueryClassifier:
    """Assign one of :data:`CATEGORIES` to a SQL statement.

    Parameters
    ----------
    small_limit : int, > 0, default 1000
        Largest LIMIT of a ``SMALL_LIMIT_SELECT``.
    """

    def __init__(self, *, small_limit: int = 1000) -> None:
        if small_limit <= 0:
            raise ValueError(f"small_limit={small_limit} must be > 0; set zero_cost.small_limit")
        self.small_limit = small_limit

    def classify(self, sql: str | None) -> str:
        """Category of ``sql``; empty or unreadable text is ``OTHER`` (the model decides)."""
        if not sql:
            return OTHER
        if _plainly_data_work(sql):
            return OTHER
        text = mask(sql).rstrip("; ")
        text = text[_LEAD.match(text).end() :]  # type: ignore[union-attr]
        head = _FIRST_TWO.match(text)
        if head is None:
            return OTHER
        first, second = head.group(1), head.group(2)
        if first in ("select", "values"):
            return self._select(text, first)
        if first == "show":
            return SHOW
        if first in ("describe", "desc"):
            return DESCRIBE
        if first == "explain":
            return (
                EXPLAIN_ANALYZE
                if re.match(r"explain\s*(\([^)]*\)\s*)?analyze\b", text)
                else EXPLAIN
            )
        if first == "set":
            return (
                SET_SESSION
                if second == "session"
                else (SET_OTHER if second in _SET_OTHER else OTHER)
            )
        if first == "reset" and second == "session":
            return RESET_SESSION
        if first == "use":
            return USE
        if first == "prepare":
            return PREPARE
        if first == "deallocate":
            return DEALLOCATE
        if first in ("start", "commit", "rollback", "begin"):
            return TRANSACTION
        if first in _DDL_VERBS:
            return self._ddl(text, first)
        return OTHER

    def classify_many(self, statements: Iterable[str | None]) -> list[str]:
        """Batch form of :meth:`classify`, same answers."""
        return [self.classify(s) for s in statements]

    def _select(self, text: str, first: str) -> str:
        if first == "values" or " from " not in f" {text} ":
            return CONSTANT_SELECT if "select" not in text[6:] else OTHER
        tables = _TABLE_REF.findall(text)
        if (
            tables
            and all(_METADATA_TABLE.match(t) for t in tables)
            and not _EXTRA_SOURCE.search(text)
        ):
            return METADATA
        if text.count("select") != 1 or len(tables) != 1 or _DATA_WORK.search(text):
            return OTHER
        if _AGGREGATE.search(text):
            return OTHER
        source = text.split(" from ", 1)[1]
        if "," in source.split(" where ", 1)[0].split(" limit ", 1)[0]:
            return OTHER  # implicit join: FROM a, b
        at = max(text.rfind(" limit "), text.rfind(" fetch "))
        limit = _LIMIT.match(text, at + 1) if at >= 0 else None
        if limit and int(limit.group(1)) <= self.small_limit:
            return SMALL_LIMIT_SELECT
        return OTHER

    def query_type(self, sql: str | None) -> str:
        """Trino's ``QueryType`` of ``sql`` (what the raw log's ``query_type`` column holds),
        for logs exported without that column: ``SELECT``, ``INSERT`` (CTAS and REFRESH
        MATERIALIZED VIEW too), ``UPDATE``, ``DELETE``, ``MERGE``, ``ANALYZE``, ``EXPLAIN``,
        ``DESCRIBE`` (SHOW and DESCRIBE), ``ALTER_TABLE_EXECUTE`` or ``DATA_DEFINITION`` (DDL,
        USE, SET / RESET SESSION, PREPARE, transactions, CALL...), as Trino's
        ``StatementUtils`` maps its statements. Empty text is ``SELECT``."""
        category = self.classify(sql)
        if category in _CATEGORY_TYPES:
            return _CATEGORY_TYPES[category]
        text = mask(sql or "").rstrip("; ")
        text = text[_LEAD.match(text).end() :]  # type: ignore[union-attr]
        head = _FIRST_TWO.match(text)
        first = head.group(1) if head else "select"
        if first in ("insert", "update", "delete", "merge", "analyze"):
            return first.upper()
        if first in ("select", "with", "values", "table"):
            return "SELECT"
        if first == "create":  # CREATE TABLE ... AS SELECT (a plain CREATE is DDL above)
            return "INSERT"
        if first == "refresh":
            return "INSERT"
        if first == "alter":
            return "ALTER_TABLE_EXECUTE"
        return "DATA_DEFINITION"

    def query_types(self, statements: Iterable[str | None]) -> list[str]:
        """Batch form of :meth:`query_type`; a text that repeats is classified once."""
        seen: dict[str | None, str] = {}
        out = []
        for sql in statements:
            if sql not in seen:
                seen[sql] = self.query_type(sql)
            out.append(seen[sql])
        return out

    @staticmethod
    def _ddl(text: str, verb: str) -> str:
        if re.match(r"create (or replace )?table\b", text) and re.search(
            r"\bas\s*\(?\s*(select|with|values|table)\b", text
        ):
            return OTHER  # CREATE TABLE ... AS SELECT moves data; a view's AS SELECT does not
        if verb == "alter" and re.search(r"\bexecute\b", text):
            return OTHER  # ALTER TABLE ... EXECUTE optimize rewrites files
        if verb == "refresh":
            return OTHER  # REFRESH MATERIALIZED VIEW recomputes it
        return DDL
