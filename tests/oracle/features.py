"""The text analysis of ``FeatureExtractor`` as commit d829d09 wrote it, in pure Python.

Only what the compiled scan replaced is kept (``FeatureExtractor._statement`` and its
helpers, unchanged); the catalogue, the context features and the keyword sets come from
the production modules, which the compiled scan did not change.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from itertools import compress, repeat
from typing import NamedTuple

from query_predictor.core._textscan import (
    AGGREGATES,
    MAX_INTERVAL_DAYS,
    NOT_COLUMNS,
    _date_ordinal,  # the same Python code in both
)
from query_predictor.core._textscan import INTERVAL_DAYS as _INTERVAL_DAYS

from query_predictor.core.features import BASE_NAMES, _Statement
from tests.oracle.sql_tokens import (
    as_text,
    fingerprint,
    in_list_end,
    is_comment,
    names_normalized,
    normalized_from,
    tokenize,
    unquoted,
    without_comments,
)

_ZEROS = dict.fromkeys(BASE_NAMES, 0.0)  # every feature 0, in catalogue order (never changed)
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
_DAY_ZERO = dt.date(1970, 1, 1)


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


class FeatureExtractor:
    """Base features of a query; stateless, so one instance serves every thread."""

    names = BASE_NAMES

    def _statement(self, sql: str | bytes | None) -> _Statement:
        text = as_text(sql)
        tokens = names_normalized(tokenize(text))
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
        compared: set[str] = set()
        dated: set[str] = set()
        ctes, tables, in_lists = self._walk(f, tokens, kinds, compared, dated)
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
        return _Statement(
            base,
            tuple(tables),
            tuple(ctes),
            first_date,
            kinds.terms,
            template,
            frozenset(compared),
            frozenset(dated),
        )

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
        f: dict[str, float], tokens: list[str], kinds: _Kinds, compared: set[str], dated: set[str]
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
            elif tok == "date_add" and nxt == "(":
                # date_add('day', -7, current_date): an interval of 7 days
                args = tokens[i + 2 : i + 7]
                if args[2:3] in (["-"], ["+"]):
                    del args[2]
                if len(args) >= 4 and args[0][:1] == "'" and args[1] == "," and args[3] == ",":
                    unit, amount = args[0].strip("'").rstrip("s"), args[2]
                    if unit in _INTERVAL_DAYS and amount.isdigit() and len(amount) <= 12:
                        days = min(MAX_INTERVAL_DAYS, float(amount) * _INTERVAL_DAYS[unit])
                        f["interval_days"] = max(f["interval_days"], days)
            elif tok == "*" and prev in ("select", ",", ".", "distinct"):
                f["n_star"] += 1
            if tok in _COMPARE or tok == "between" or tok == "in":
                word = prev[:1] in _WORD_START or prev[:1] == '"'
                if i and word and prev not in NOT_COLUMNS:
                    compared.add(prev.strip('"'))
                    if _is_date(tokens, i + 2 if tok == "in" else i + 1):
                        dated.add(prev.strip('"'))
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
_WORD_START = frozenset("abcdefghijklmnopqrstuvwxyz_")
_FAMILIES = {"approx": "n_approx_aggregates", "regexp": "n_regexp", "json": "n_json"}
_FAMILY_PREFIXES = tuple(f"{family}_" for family in _FAMILIES)
_METADATA_VERBS = {"show", "describe", "desc", "use", "set", "reset", "prepare", "deallocate"}
_MARKED = frozenset(
    {"(", ")", "from", "join", "is", "limit", "first", "next", "interval", "*", "between", "in"}
    | {"date_add"}
    | _COMPARE
)


def _is_date(tokens: list[str], j: int) -> bool:
    """Whether the operand at ``tokens[j]`` is a date (see ``_textscan._is_date``)."""
    if j >= len(tokens):
        return False
    tok = tokens[j]
    after = tokens[j + 1] if j + 1 < len(tokens) else ""
    if tok[:1] == "'":
        return _date_ordinal(tok) is not None
    if tok[:1].isdigit():
        return len(tok) == 8 and tok.isdigit() and tok[:2] in ("19", "20")
    if tok[:1] not in _WORD_START:
        return False
    if tok in ("date", "timestamp"):
        return after[:1] == "'"
    if tok in ("current_date", "now", "current_timestamp"):
        return True
    if after != "(":
        return False
    if tok in ("cast", "try_cast"):
        third = tokens[j + 2] if j + 2 < len(tokens) else ""
        return third[:1] == "'" and _date_ordinal(third) is not None
    return "date" in tok


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
