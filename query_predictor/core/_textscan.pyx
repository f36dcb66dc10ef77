# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The compiled core of the featurizer: one pass over a lowercased SQL statement.

:func:`scan` tokenises the text and works out, from that one pass, every base feature that
depends on the text alone, the tables read, the CTE names, the TF-IDF terms and the
normalised text the template fingerprint is taken of. :mod:`query_predictor.core.features`
adds the features of the query's context and is the API; this module is its inner loop, in
C because a Python loop over tokens could not reach 10,000 statements per second.

Tokens (what :func:`tokens` returns), left to right, whitespace skipped:

* word: ``[a-z_][a-z0-9_$@]*`` (keywords and identifiers);
* string literal ``'...'`` with ``''`` escapes, quoted identifier ``"..."`` with ``""``;
  either runs to the end of the text when it is never closed;
* number: ``0x`` / ``0b`` / ``0o`` integers, ``1_000``, ``1.5``, ``1e-3``; a fraction ``.5``;
* comment: ``-- ...`` to the end of the line, ``/* ... */`` (or to the end of the text);
* operators ``<> != <= >= || -> =>`` and any other single symbol.

A letter or digit outside ASCII that starts no token is skipped. Whitespace, letters and
digits are those of Python's ``str`` (the same Unicode tables), so the result is the one the
pure-Python reference in ``tests/oracle`` gives, bit for bit.

Every token kind the features care about is told once, when the token is cut: a word or
symbol gets the id of the keyword it is (or -1), and the rest of the work runs over arrays of
those small integers.
"""

from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from libc.stdlib cimport free, malloc
from libc.string cimport memset

import datetime as dt
import math
import re

cdef extern from "Python.h":
    int PyUnicode_KIND(object text)
    void* PyUnicode_DATA(object text)
    Py_UCS4 PyUnicode_READ(int kind, void* data, Py_ssize_t index) nogil
    bint Py_UNICODE_ISSPACE(Py_UCS4 ch) nogil
    bint Py_UNICODE_ISALNUM(Py_UCS4 ch) nogil
    bint Py_UNICODE_ISDECIMAL(Py_UCS4 ch) nogil


# --------------------------------------------------------------------------- vocabulary

AGGREGATES = frozenset({
    "count", "sum", "avg", "min", "max", "approx_distinct", "approx_percentile", "approx_set",
    "approx_most_frequent", "array_agg", "map_agg", "count_if", "max_by", "min_by",
    "histogram", "arbitrary", "any_value", "bool_and", "bool_or", "stddev", "variance",
    "listagg", "corr", "checksum", "set_agg", "multimap_agg",
})
# Words before a comparison that are not the column compared (NOT IN, CASE ... END = x).
NOT_COLUMNS = frozenset({"not", "and", "or", "end", "null", "true", "false", "then", "else"})
COMPARE = frozenset({"=", "<>", "!=", "<", ">", "<=", ">="})
# Words before "(" that open no function call.
NOT_CALLS = frozenset({
    "in", "as", "over", "from", "join", "exists", "using", "on", "and", "or", "not", "values",
    "select", "where", "when", "then", "else", "table", "with", "into", "unnest", "lateral",
    "by", "is", "row", "array", "map", "filter", "window",
})
# Calls whose arguments may say FROM: EXTRACT(year FROM ts), TRIM(x FROM y)...
FROM_INSIDE_CALL = frozenset({"extract", "trim", "substring", "overlay", "position"})
# A FROM / JOIN list ends at the next clause or join (ON conditions are crossed, at depth 0).
FROM_LIST_END = frozenset({
    "where", "group", "order", "limit", "having", "join", "union", "left", "right", "full",
    "inner", "cross", "window", "fetch", "offset", ")", ";", "select",
})
METADATA_VERBS = frozenset(
    {"show", "describe", "desc", "use", "set", "reset", "prepare", "deallocate"}
)
LITERAL_PREFIX = frozenset({"date", "timestamp", "time", "interval"})
INTERVAL_DAYS = {
    "second": 1 / 86400,
    "minute": 1 / 1440,
    "hour": 1 / 24,
    "day": 1.0,
    "week": 7.0,
    "month": 30.0,
    "year": 365.0,
}
MAX_INTERVAL_DAYS = 36_500.0
# Features counting one keyword each, and the keyword.
ONE_KEYWORD = (
    ("n_select", "select"), ("n_join", "join"), ("n_join_left", "left"),
    ("n_join_right", "right"), ("n_join_full", "full"), ("n_union", "union"),
    ("n_where", "where"), ("n_or", "or"), ("n_between", "between"), ("n_like", "like"),
    ("n_exists", "exists"), ("n_group_by", "group"), ("n_having", "having"),
    ("n_order_by", "order"), ("n_distinct", "distinct"), ("n_window", "over"),
    ("n_partition_by", "partition"), ("n_case", "case"), ("n_unnest", "unnest"),
)
_FAMILIES = {"approx_": "n_approx_aggregates", "regexp_": "n_regexp", "json_": "n_json"}
_FAMILY_PREFIXES = tuple(_FAMILIES)
_DECIMAL = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,12})?")
# Digit runs inside a name that stamp it with a day, a version or a counter: the same table or
# column under another name each day or run. A date (20250603, 2025_06_03, 202506...) becomes
# YYYYMMDD (or YYYYMM), a version (_v12) _vN, a run of 4 or more digits after _ becomes N.
# The text is lowercased before the scan, so an uppercase placeholder never meets a real name.
_NAME_DATE = re.compile(
    r"(?<![0-9])(?:19|20)[0-9]{2}(_?)(?:0[1-9]|1[0-2])(?:\1(?:0[1-9]|[12][0-9]|3[01]))?(?![0-9])"
)
_NAME_VERSION = re.compile(r"(?<=_v)[0-9]+(?![0-9])")
_NAME_COUNTER = re.compile(r"(?<=_)[0-9]{4,}(?![0-9])")
_DAY_ZERO = dt.date(1970, 1, 1)

# Every word or symbol the features test for gets a small id; a token's id is looked up once.
cdef enum:
    MAX_IDS = 256
cdef dict _IDS = {}
cdef unsigned char _IS_AGGREGATE[MAX_IDS]
cdef unsigned char _IS_COMPARE[MAX_IDS]
cdef unsigned char _IS_NOT_CALL[MAX_IDS]
cdef unsigned char _IS_FROM_INSIDE_CALL[MAX_IDS]
cdef unsigned char _IS_FROM_LIST_END[MAX_IDS]
cdef unsigned char _IS_METADATA_VERB[MAX_IDS]
cdef unsigned char _IS_LITERAL_PREFIX[MAX_IDS]
cdef unsigned char _IS_MARKED[MAX_IDS]  # tokens the walk visits
cdef unsigned char _IS_NOT_COLUMN[MAX_IDS]


cdef int _id(str word) except -1:
    if word not in _IDS:
        if len(_IDS) == MAX_IDS:
            raise RuntimeError("too many keyword ids")
        _IDS[word] = len(_IDS)
    return _IDS[word]


cdef void _flag(unsigned char* table, words) except *:
    for word in words:
        table[_id(word)] = 1


_flag(_IS_AGGREGATE, AGGREGATES)
_flag(_IS_COMPARE, COMPARE)
_flag(_IS_NOT_CALL, NOT_CALLS)
_flag(_IS_FROM_INSIDE_CALL, FROM_INSIDE_CALL)
_flag(_IS_FROM_LIST_END, FROM_LIST_END)
_flag(_IS_METADATA_VERB, METADATA_VERBS)
_flag(_IS_LITERAL_PREFIX, LITERAL_PREFIX)
_flag(_IS_MARKED, ("(", ")", "from", "join", "is", "limit", "first", "next", "interval", "*"))
_flag(_IS_MARKED, COMPARE)
_flag(_IS_MARKED, ("between", "in", "date_add"))
_flag(_IS_NOT_COLUMN, NOT_COLUMNS)

cdef int LPAREN = _id("("), RPAREN = _id(")"), COMMA = _id(","), DOT = _id("."), STAR = _id("*")
cdef int MINUS = _id("-"), PLUS = _id("+")
cdef int SELECT = _id("select"), WITH = _id("with"), VALUES = _id("values")
cdef int INSERT = _id("insert"), CREATE = _id("create"), TABLE = _id("table"), AS = _id("as")
cdef int EXPLAIN = _id("explain"), ANALYZE = _id("analyze"), OR = _id("or"), AND = _id("and")
cdef int DELETE = _id("delete"), UPDATE = _id("update"), MERGE = _id("merge")
cdef int FROM = _id("from"), JOIN = _id("join"), IS = _id("is"), NULL_ = _id("null")
cdef int NOT = _id("not"), IN = _id("in"), COUNT = _id("count"), DISTINCT = _id("distinct")
cdef int LIMIT = _id("limit"), FIRST = _id("first"), NEXT = _id("next"), ROW = _id("row")
cdef int ROWS = _id("rows"), INTERVAL = _id("interval"), BETWEEN = _id("between")
cdef int DATE_ADD = _id("date_add")
cdef int UNNEST = _id("unnest"), LATERAL = _id("lateral"), ORDER = _id("order")
cdef int INTERSECT = _id("intersect"), EXCEPT = _id("except"), GROUPING = _id("grouping")
cdef int ROLLUP = _id("rollup"), CUBE = _id("cube"), CAST = _id("cast")
cdef int TRY_CAST = _id("try_cast"), CROSS = _id("cross"), LEFT = _id("left")
cdef int RIGHT = _id("right"), FULL = _id("full"), CURRENT_DATE = _id("current_date")
cdef int NOW = _id("now"), CURRENT_TIMESTAMP = _id("current_timestamp")
cdef int DATE = _id("date"), TIMESTAMP = _id("timestamp")
_ONE_KEYWORD_IDS = [(name, _id(word)) for name, word in ONE_KEYWORD]


# --------------------------------------------------------------------------- tokens

cdef enum:
    WORD = 1
    SYMBOL = 2
    STRING = 3
    QUOTED = 4
    NUMBER = 5
    FRACTION = 6  # a number written .5
    COMMENT = 7


cdef struct Text:
    int kind
    void* data
    Py_ssize_t length


cdef inline Py_UCS4 _at(Text* t, Py_ssize_t i) noexcept nogil:
    """Character ``i``, or 0 past the end."""
    return PyUnicode_READ(t.kind, t.data, i) if i < t.length else 0


cdef inline bint _word_char(Py_UCS4 c) noexcept nogil:
    return (c >= 97 and c <= 122) or (c >= 48 and c <= 57) or c == 95 or c == 36 or c == 64


cdef inline bint _decimal(Py_UCS4 c) noexcept nogil:
    return c != 0 and Py_UNICODE_ISDECIMAL(c)


cdef inline bint _radix_digit(Py_UCS4 c, Py_UCS4 radix) noexcept nogil:
    if c == 95:  # _
        return True
    if radix == 120:  # x
        return (c >= 48 and c <= 57) or (c >= 97 and c <= 102)
    if radix == 98:  # b
        return c == 48 or c == 49
    return c >= 48 and c <= 55  # o


cdef Py_ssize_t _quoted_end(Text* t, Py_ssize_t p, Py_UCS4 quote) noexcept nogil:
    """End of the literal or identifier opened at ``p``; a doubled quote is an escape."""
    p += 1
    while True:
        while p < t.length and _at(t, p) != quote:
            p += 1
        if _at(t, p) == quote and _at(t, p + 1) == quote:
            p += 2
            continue
        return p + 1 if p < t.length else p


cdef Py_ssize_t _number_end(Text* t, Py_ssize_t p) noexcept nogil:
    cdef Py_UCS4 c = _at(t, p)
    cdef Py_UCS4 radix = _at(t, p + 1)
    cdef Py_ssize_t q
    if c == 48 and (radix == 120 or radix == 98 or radix == 111) and _radix_digit(
        _at(t, p + 2), radix
    ):
        p += 3
        while _radix_digit(_at(t, p), radix):
            p += 1
        return p
    p += 1
    while _decimal(_at(t, p)) or _at(t, p) == 95:
        p += 1
    if _at(t, p) == 46:  # .
        p += 1
        while _decimal(_at(t, p)) or _at(t, p) == 95:
            p += 1
    if _at(t, p) == 101:  # e
        q = p + 1
        if _at(t, q) == 43 or _at(t, q) == 45:
            q += 1
        if _decimal(_at(t, q)):
            while _decimal(_at(t, q)):
                q += 1
            p = q
    return p


cdef Py_ssize_t _next_token(Text* t, Py_ssize_t p, Py_ssize_t* start, int* kind) noexcept nogil:
    """Cut the token at or after ``p``: its start and kind; returns its end (``length`` and
    kind 0 when no token is left)."""
    cdef Py_UCS4 c, d
    cdef Py_ssize_t q
    while p < t.length:
        c = _at(t, p)
        if Py_UNICODE_ISSPACE(c):
            p += 1
            continue
        start[0] = p
        d = _at(t, p + 1)
        if (c >= 97 and c <= 122) or c == 95:
            p += 1
            while p < t.length and _word_char(_at(t, p)):
                p += 1
            kind[0] = WORD
            return p
        if c == 40 or c == 41 or c == 44 or c == 59 or c == 42:  # ( ) , ; *
            kind[0] = SYMBOL
            return p + 1
        if c == 46:  # .
            if _decimal(d):
                p += 2
                while _decimal(_at(t, p)):
                    p += 1
                kind[0] = FRACTION
                return p
            kind[0] = SYMBOL
            return p + 1
        if c == 39 or c == 34:  # ' "
            kind[0] = STRING if c == 39 else QUOTED
            return _quoted_end(t, p, c)
        if _decimal(c):
            kind[0] = NUMBER
            return _number_end(t, p)
        if c == 45 and d == 45:  # --
            while p < t.length and _at(t, p) != 10:
                p += 1
            kind[0] = COMMENT
            return p
        if c == 47 and d == 42:  # /*
            q = p + 2
            while q < t.length and not (_at(t, q) == 42 and _at(t, q + 1) == 47):
                q += 1
            kind[0] = COMMENT
            return q + 2 if q < t.length else q
        kind[0] = SYMBOL
        if (
            (c == 60 and (d == 62 or d == 61))  # <> <=
            or ((c == 33 or c == 62) and d == 61)  # != >=
            or (c == 124 and d == 124)  # ||
            or ((c == 45 or c == 61) and d == 62)  # -> =>
        ):
            return p + 2
        if not Py_UNICODE_ISALNUM(c):
            return p + 1
        p += 1  # a letter or digit outside ASCII that starts no token
    kind[0] = 0
    return t.length


cdef Text _text(str text):
    cdef Text t
    t.kind = PyUnicode_KIND(text)
    t.data = PyUnicode_DATA(text)
    t.length = len(text)
    return t


def tokens(str text):
    """The tokens of lowercased ``text`` in order, comments included."""
    cdef Text t = _text(text)
    cdef Py_ssize_t p = 0, start = 0
    cdef int kind = 0
    cdef list out = []
    while True:
        p = _next_token(&t, p, &start, &kind)
        if kind == 0:
            return out
        out.append(text[start:p])


# --------------------------------------------------------------------------- mask


cdef inline void _put(char* out, Py_ssize_t* size, bint* space, unsigned int c) noexcept nogil:
    """Write ``c`` lowercased; whitespace (what ``str.split()`` splits on: its own table)
    only marks that a space is due before the next character written, if any was written
    before (runs collapse, none at either end)."""
    if Py_UNICODE_ISSPACE(c):
        space[0] = size[0] > 0
        return
    if space[0]:
        out[size[0]] = 32
        size[0] += 1
        space[0] = False
    out[size[0]] = <char> (c + 32 if c >= 65 and c <= 90 else c)
    size[0] += 1


def mask(str text):
    """:func:`query_predictor.core.sql_text.mask` of an ASCII ``text``, in one pass: each
    ``--`` comment (to the end of its line) and ``/* */`` comment a space, each string literal
    ``''``, each quoted identifier its content with ``""`` read as one quote, letters
    lowercased and any character but a letter, digit or ``_`` made ``_`` (``_`` if empty), the
    rest lowercased, whitespace runs one space and none at either end. A literal, identifier
    or block comment never closed runs to the end of the text."""
    if not text.isascii():
        raise ValueError("mask() of the compiled core takes ASCII text only")
    cdef Text t = _text(text)
    cdef Py_ssize_t n = t.length, i = 0, j, end, stop, size = 0, written
    cdef bint space = False
    cdef Py_UCS4 c
    # at most two characters out for one in (an unclosed ' gives ''), and the due space
    cdef char* out = <char*> malloc(2 * n + 2)
    if out == NULL:
        raise MemoryError()
    try:
        while i < n:
            c = _at(&t, i)
            if c == 45 and _at(&t, i + 1) == 45:  # -- to the end of the line
                i += 2
                while i < n and _at(&t, i) != 10:
                    i += 1
                _put(out, &size, &space, 32)
            elif c == 47 and _at(&t, i + 1) == 42:  # /* to the first */ after it
                j = i + 2
                while j + 1 < n and not (_at(&t, j) == 42 and _at(&t, j + 1) == 47):
                    j += 1
                i = j + 2 if j + 1 < n else n
                _put(out, &size, &space, 32)
            elif c == 39:  # a string literal
                i = _quoted_end(&t, i, 39)
                _put(out, &size, &space, 39)
                _put(out, &size, &space, 39)
            elif c == 34:  # a quoted identifier
                end = _quoted_end(&t, i, 34)
                stop = end - 1 if end - i > 1 and _at(&t, end - 1) == 34 else end
                j, written = i + 1, 0
                while j < stop:
                    c = _at(&t, j)
                    j += 2 if c == 34 and j + 1 < stop and _at(&t, j + 1) == 34 else 1
                    if (c >= 97 and c <= 122) or (c >= 65 and c <= 90) or (c >= 48 and c <= 57):
                        _put(out, &size, &space, c)
                    else:
                        _put(out, &size, &space, 95)
                    written += 1
                if written == 0:
                    _put(out, &size, &space, 95)
                i = end
            else:
                _put(out, &size, &space, c)
                i += 1
        return out[:size].decode("ascii")
    finally:
        free(out)


# --------------------------------------------------------------------------- features

cdef class _Tokens:
    """The comment-free tokens of one statement: texts, kinds and keyword ids."""

    cdef list text
    cdef unsigned char* kind
    cdef int* ids
    cdef Py_ssize_t n

    def __cinit__(self, Py_ssize_t capacity):
        self.text = []
        self.kind = <unsigned char*> malloc(capacity + 1)
        self.ids = <int*> malloc((capacity + 1) * sizeof(int))
        self.n = 0
        if self.kind == NULL or self.ids == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.kind)
        free(self.ids)

    cdef inline int id(self, Py_ssize_t i) noexcept:
        """Keyword id of token ``i``; -1 for other tokens and outside the statement."""
        return self.ids[i] if 0 <= i < self.n else -1

    cdef inline bint word(self, Py_ssize_t i) noexcept:
        return 0 <= i < self.n and self.kind[i] == WORD


def scan(str text):
    """Everything the text of a statement decides, from lowercased ``text`` (cut already).

    Returns ``(features, tables, ctes, dates, terms, normalized, compared, dated)``: a dict
    of the base features the text decides (the others are the caller's), the table
    references as written in order, the set of CTE names, the day numbers of the date
    literals, the TF-IDF terms with their counts, the normalised text (tokens joined by
    single spaces), the set of columns compared (``col = ...``, ``col BETWEEN``, ``col IN``)
    and the subset of those compared with a date (a date literal, ``DATE '...'``, an
    8-digit day number, ``current_date``, a date function or a CAST of a date literal).
    """
    cdef Text t = _text(text)
    cdef _Tokens toks = _Tokens(t.length)
    cdef int counts[MAX_IDS]
    cdef Py_ssize_t p = 0, start = 0, n_all = 0
    cdef int kind = 0, ident
    cdef int strings = 0, numbers = 0, comments = 0
    cdef PyObject* found
    cdef dict terms = {}
    cdef list dates = []
    cdef str tok
    cdef dict f = {}
    memset(counts, 0, sizeof(counts))
    while True:
        p = _next_token(&t, p, &start, &kind)
        if kind == 0:
            break
        n_all += 1
        if kind == COMMENT:
            comments += 1
            continue
        tok = text[start:p]
        ident = -1
        if kind == WORD or kind == SYMBOL:
            found = PyDict_GetItem(_IDS, tok)
            if found != NULL:
                ident = <int> <object> found
                counts[ident] += 1
            if kind == WORD:
                if ident < 0:
                    tok = normalize_identifier(tok)
                _add_term(terms, tok)
                if tok[0] in "arj" and tok.startswith(_FAMILY_PREFIXES):
                    name = _FAMILIES[tok[: tok.index("_") + 1]]
                    f[name] = f.get(name, 0) + 1
        elif kind == STRING:
            strings += 1
            if p - start > 10 and text[start + 5] == "-" and text[start + 8] == "-":
                day = _date_ordinal(tok)
                if day is not None:
                    dates.append(day)
        elif kind == NUMBER or kind == FRACTION:
            numbers += 1
        elif kind == QUOTED:
            tok = normalize_identifier(tok)
            _add_term(terms, tok.strip('"'))
        toks.text.append(tok)
        toks.kind[toks.n] = kind
        toks.ids[toks.n] = ident
        toks.n += 1

    f["n_tokens"] = n_all
    f["n_comments"] = comments
    f["n_string_literals"] = strings
    f["n_numeric_literals"] = numbers
    if dates:
        f["n_date_literals"] = len(dates)
        f["date_span_days"] = max(dates) - min(dates)
    _keyword_counts(f, counts)
    _statement_kind(f, toks, counts)
    ctes = set()
    tables = []
    compared = set()
    dated = set()
    in_lists = _walk(f, toks, ctes, tables, compared, dated)
    f["n_cte"] = len(ctes) if counts[WITH] else 0
    f["order_without_limit"] = float(counts[ORDER] > 0 and not f.get("has_limit", 0))
    f["n_tables"] = len(tables)
    return f, tables, ctes, dates, terms, _normalized(toks, in_lists), compared, dated


def normalize_identifier(str name):
    """``name`` with the dates, versions and counters stamped in it replaced by placeholders
    (``orders_20250603`` -> ``orders_YYYYMMDD``, ``tmp_1234`` -> ``tmp_N``,
    ``model_v12`` -> ``model_vN``); any other name unchanged."""
    cdef Py_ssize_t k
    for k in range(len(name)):
        if 48 <= ord(name[k]) <= 57:
            break
    else:
        return name
    name = _NAME_DATE.sub(_date_placeholder, name)
    name = _NAME_VERSION.sub("N", name)
    return _NAME_COUNTER.sub("N", name)


def _date_placeholder(found):
    return "YYYYMMDD" if len(found.group(0).replace("_", "")) == 8 else "YYYYMM"


cdef inline void _add_term(dict terms, str term) except *:
    cdef PyObject* had = PyDict_GetItem(terms, term)
    terms[term] = 1 if had == NULL else <object> had + 1


def _date_ordinal(str literal):
    """Day number of a 'YYYY-MM-DD...' string literal, or None."""
    text = literal[1:11]
    if len(text) == 10 and text[4] == "-" and text[7] == "-" and text[:4].isdigit():
        try:
            return (dt.date(int(text[:4]), int(text[5:7]), int(text[8:10])) - _DAY_ZERO).days
        except ValueError:
            return None
    return None


cdef void _keyword_counts(dict f, int* c) except *:
    cdef int i, aggregates = 0, compare = 0
    for name, ident in _ONE_KEYWORD_IDS:
        f[name] = c[<int> ident]
    for i in range(MAX_IDS):
        if c[i]:
            if _IS_AGGREGATE[i]:
                aggregates += c[i]
            if _IS_COMPARE[i]:
                compare += c[i]
    f["n_aggregates"] = aggregates
    f["n_comparisons"] = compare
    f["n_intersect_except"] = c[INTERSECT] + c[EXCEPT]
    f["n_grouping_sets"] = c[GROUPING] + c[ROLLUP] + c[CUBE]
    f["n_cast"] = c[CAST] + c[TRY_CAST]
    f["n_join_cross"] = max(0, c[CROSS] - c[UNNEST])
    f["n_join_inner"] = max(0, c[JOIN] - c[LEFT] - c[RIGHT] - c[FULL] - c[CROSS])
    f["n_and"] = max(0, c[AND] - c[BETWEEN])
    f["uses_current_date"] = float(c[CURRENT_DATE] > 0 or c[NOW] > 0 or c[CURRENT_TIMESTAMP] > 0)


cdef void _statement_kind(dict f, _Tokens toks, int* c) except *:
    cdef Py_ssize_t start = 0
    cdef int first, second
    while start < toks.n and toks.ids[start] == LPAREN:
        start += 1
    if start >= toks.n:
        return
    first = toks.ids[start]
    second = toks.id(start + 1)
    if second == OR and start + 3 < toks.n:  # CREATE OR REPLACE TABLE / VIEW
        second = toks.ids[start + 3]
    if first == SELECT or first == WITH or first == VALUES:
        f["stmt_select"] = 1.0
    elif first == INSERT:
        f["stmt_insert"] = 1.0
    elif first == CREATE and c[AS] and c[SELECT] and second == TABLE:
        f["stmt_ctas"] = 1.0
    elif first == EXPLAIN:
        f["stmt_explain_analyze" if c[ANALYZE] else "stmt_explain"] = 1.0
    elif first >= 0 and _IS_METADATA_VERB[first]:
        f["stmt_metadata"] = 1.0
    elif first == DELETE or first == UPDATE or first == MERGE:
        f["stmt_delete_update_merge"] = 1.0
    else:
        f["stmt_ddl"] = 1.0


cdef list _walk(dict f, _Tokens toks, set ctes, list tables, set compared, set dated):
    """Features that need a token's neighbours, visiting only the tokens that matter:
    parentheses (depths, subqueries, IN lists, calls, CTE names), FROM / JOIN (tables),
    LIMIT / FETCH, INTERVAL, ``*`` and comparisons (the columns compared, and those compared
    with a date, into ``compared`` and ``dated``). Returns the (start, stop) spans of the IN
    lists of literals, which normalisation collapses."""
    cdef Py_ssize_t n = toks.n, i, end
    cdef int tok, prev, nxt
    cdef int depth = 0, max_depth = 0, select_depth = 0, max_select = 0
    cdef int subqueries = 0, in_subquery = 0, n_in_lists = 0, max_in_list = 0, size
    cdef int calls_made = 0, count_distinct = 0, is_null = 0, star = 0
    cdef int* stack = <int*> malloc((n + 1) * sizeof(int))  # depths that opened a SELECT
    cdef int* calls = <int*> malloc((n + 1) * sizeof(int))  # id before each open "("
    cdef Py_ssize_t n_stack = 0, n_calls = 0
    cdef list in_lists = []
    limit = 0
    interval = 0.0
    if stack == NULL or calls == NULL:
        free(stack)
        free(calls)
        raise MemoryError()
    try:
        for i in range(n):
            tok = toks.ids[i]
            if tok < 0 or not _IS_MARKED[tok]:
                continue
            if tok == RPAREN:
                if n_stack and stack[n_stack - 1] == depth:
                    n_stack -= 1
                    select_depth -= 1
                if depth:
                    depth -= 1
                if n_calls:
                    n_calls -= 1
                continue
            prev = toks.id(i - 1)
            nxt = toks.id(i + 1)
            if tok == LPAREN:
                depth += 1
                if depth > max_depth:
                    max_depth = depth
                calls[n_calls] = prev
                n_calls += 1
                if nxt == SELECT:
                    subqueries += 1
                    select_depth += 1
                    stack[n_stack] = depth
                    n_stack += 1
                    if select_depth > max_select:
                        max_select = select_depth
                    if prev == IN:
                        in_subquery += 1
                    elif prev == AS and i >= 2:
                        ctes.add(_cte_name(toks, i - 2))
                elif prev == IN:
                    end = _in_list_end(toks, i)
                    if end:
                        in_lists.append((i - 1, end + 1))
                        size = _in_list_size(toks, i + 1, end)
                        if size:
                            n_in_lists += 1
                            max_in_list = max(max_in_list, size)
                if toks.word(i - 1) and not (prev >= 0 and _IS_NOT_CALL[prev]):
                    calls_made += 1
                    if prev == COUNT and nxt == DISTINCT:
                        count_distinct += 1
            elif tok == FROM or tok == JOIN:
                # not EXTRACT(year FROM ts), TRIM(x FROM y) or a IS DISTINCT FROM b
                if prev != DISTINCT and not (
                    n_calls and calls[n_calls - 1] >= 0 and _IS_FROM_INSIDE_CALL[calls[n_calls - 1]]
                ):
                    _table_refs(f, toks, i, tables)
            elif tok == IS:
                if nxt == NULL_ or (nxt == NOT and toks.id(i + 2) == NULL_):
                    is_null += 1
            elif tok == LIMIT or tok == FIRST or tok == NEXT:
                following = toks.text[i + 1] if i + 1 < n else ""
                if following.isdigit():
                    limit = max(limit, int(following[:18]))
                    f["has_limit"] = 1.0
                elif tok != LIMIT and (nxt == ROW or nxt == ROWS):
                    f["has_limit"] = 1.0
            elif tok == INTERVAL and i + 2 < n and toks.kind[i + 1] == STRING:
                days = _interval_days(toks.text[i + 1], toks.text[i + 2])
                if days is not None:
                    interval = max(interval, days)
            elif tok == DATE_ADD and nxt == LPAREN:
                days = _date_add_days(toks, i + 2)
                if days is not None:
                    interval = max(interval, days)
            elif tok == STAR:
                if prev == SELECT or prev == COMMA or prev == DOT or prev == DISTINCT:
                    star += 1
            if _IS_COMPARE[tok] or tok == BETWEEN or tok == IN:
                if (
                    i > 0 and (toks.kind[i - 1] == WORD or toks.kind[i - 1] == QUOTED)
                    and not (prev >= 0 and _IS_NOT_COLUMN[prev])
                ):
                    column = toks.text[i - 1].strip('"')
                    compared.add(column)
                    if _is_date(toks, i + 2 if tok == IN else i + 1):
                        dated.add(column)
    finally:
        free(stack)
        free(calls)
    f["max_paren_depth"] = max_depth
    f["max_select_depth"] = max_select
    f["n_subqueries"] = subqueries
    f["n_in_subquery"] = in_subquery
    f["n_in_lists"] = n_in_lists
    f["max_in_list_size"] = max_in_list
    f["n_function_calls"] = calls_made
    f["n_count_distinct"] = count_distinct
    f["n_is_null"] = is_null
    f["n_star"] = star
    if interval:
        f["interval_days"] = interval
    if limit:
        f["limit_log"] = math.log1p(limit)
    return in_lists


cdef bint _is_date(_Tokens toks, Py_ssize_t j) except -1:
    """Whether the operand at token ``j`` is a date: a 'YYYY-MM-DD...' literal, DATE or
    TIMESTAMP '...', an 8-digit day number (19xxxxxx or 20xxxxxx), current_date / now() /
    current_timestamp, a call of a function named with "date", or a CAST of a date literal."""
    cdef int kind, ident
    if j >= toks.n:
        return False
    kind = toks.kind[j]
    ident = toks.ids[j]
    text = toks.text[j]
    if kind == STRING:
        return _date_ordinal(text) is not None
    if kind == NUMBER:
        return len(text) == 8 and text.isdigit() and text[:2] in ("19", "20")
    if kind != WORD:
        return False
    if ident == DATE or ident == TIMESTAMP:
        return j + 1 < toks.n and toks.kind[j + 1] == STRING
    if ident == CURRENT_DATE or ident == NOW or ident == CURRENT_TIMESTAMP:
        return True
    if toks.id(j + 1) != LPAREN:
        return False
    if ident == CAST or ident == TRY_CAST:
        return j + 2 < toks.n and toks.kind[j + 2] == STRING and (
            _date_ordinal(toks.text[j + 2]) is not None
        )
    return "date" in text


cdef object _date_add_days(_Tokens toks, Py_ssize_t i):
    """Days of ``date_add('<unit>', [-]<amount>, ...)`` whose arguments start at token ``i``
    (``date_add('day', -7, current_date)``: 7), or None when they are not a unit and a plain
    number."""
    cdef Py_ssize_t n = toks.n
    if i + 3 >= n or toks.kind[i] != STRING or toks.id(i + 1) != COMMA:
        return None
    cdef Py_ssize_t at = i + 2
    if toks.id(at) == MINUS or toks.id(at) == PLUS:
        at += 1
    if at + 1 >= n or toks.kind[at] != NUMBER or toks.id(at + 1) != COMMA:
        return None
    return _interval_days(toks.text[at], toks.text[i].strip("'"))


def _interval_days(str amount, str unit):
    """Days of INTERVAL '<amount>' <unit>, or None when it is not a plain number of a unit."""
    unit = unit.rstrip("s")
    amount = amount.strip("'").strip()
    if unit in INTERVAL_DAYS and _DECIMAL.fullmatch(amount):
        return min(MAX_INTERVAL_DAYS, float(amount) * INTERVAL_DAYS[unit])
    return None


cdef str _cte_name(_Tokens toks, Py_ssize_t i):
    """Name of a CTE whose ``AS (`` follows token ``i``: skip a column list ``name (a, b)``."""
    cdef int depth = 0
    if toks.ids[i] == RPAREN:
        while i > 0:
            if toks.ids[i] == RPAREN:
                depth += 1
            elif toks.ids[i] == LPAREN:
                depth -= 1
                if depth == 0:
                    i -= 1
                    break
            i -= 1
    return toks.text[i].strip('"')


cdef Py_ssize_t _in_list_end(_Tokens toks, Py_ssize_t i) noexcept:
    """Index of the ``)`` closing the ``(`` at ``i`` (after IN) if the list is not empty and
    holds only literals, commas and signs, else 0."""
    cdef Py_ssize_t j = i + 1
    cdef int kind, ident
    while j < toks.n and toks.ids[j] != RPAREN:
        j += 1
    if j >= toks.n or j == i + 1:
        return 0
    for k in range(i + 1, j):
        kind = toks.kind[k]
        ident = toks.ids[k]
        if not (
            kind == STRING or kind == NUMBER or kind == FRACTION
            or ident == COMMA or ident == MINUS or ident == PLUS
        ):
            return 0
    return j


cdef int _in_list_size(_Tokens toks, Py_ssize_t start, Py_ssize_t stop) noexcept:
    """Literals in an IN list of literals (tokens ``start`` to ``stop``, commas and signs
    included); 0 if one of them is written .5 (not a literal here)."""
    cdef int size = 0, ident
    for k in range(start, stop):
        if toks.kind[k] == FRACTION:
            return 0
        ident = toks.ids[k]
        if not (ident == COMMA or ident == MINUS or ident == PLUS):
            size += 1
    return size


cdef tuple _read_name(_Tokens toks, Py_ssize_t i):
    """Dotted name starting at ``i``: its parts (unquoted) and the index after it."""
    cdef list parts = []
    cdef int kind
    while i < toks.n:
        kind = toks.kind[i]
        if kind == QUOTED:
            parts.append(toks.text[i].strip('"'))
        elif kind == WORD:
            parts.append(toks.text[i])
        else:
            break
        i += 1
        if i < toks.n and toks.ids[i] == DOT:
            i += 1
        else:
            break
    return parts, i


cdef void _table_refs(dict f, _Tokens toks, Py_ssize_t i, list tables) except *:
    """The table after FROM / JOIN at ``i``, and after commas in a FROM list."""
    cdef Py_ssize_t n = toks.n, j, end
    cdef int depth = 0, tok
    parts, end = _read_name(toks, i + 1)
    if not parts or parts[0] in ("unnest", "table", "lateral") or toks.id(end) == LPAREN:
        return
    tables.append(".".join(parts))
    j = end  # FROM a [AS] x, b [AS] y ...; also JOIN c ON ..., d
    while j < n and (depth > 0 or not (toks.ids[j] >= 0 and _IS_FROM_LIST_END[toks.ids[j]])):
        tok = toks.ids[j]
        if tok == LPAREN:
            depth += 1
        elif tok == RPAREN:
            if depth == 0:
                break
            depth -= 1
        elif (
            tok == COMMA and depth == 0 and j + 1 < n
            and toks.ids[j + 1] != LPAREN and toks.kind[j + 1] != STRING
        ):
            more, j = _read_name(toks, j + 1)
            if more and toks.id(j) != LPAREN:
                tables.append(".".join(more))
                f["n_implicit_join"] = f.get("n_implicit_join", 0) + 1
            continue
        j += 1


cdef str _normalized(_Tokens toks, list in_lists):
    """The normalised text: literals as ``?``, IN lists of literals as ``in ( ? )``, a string
    after DATE / TIMESTAMP / TIME / INTERVAL one ``?`` with it, quoted identifiers unquoted."""
    cdef list out = []
    cdef Py_ssize_t j = 0, n = toks.n, next_in = -1, in_stop = 0
    cdef Py_ssize_t spans = len(in_lists), s = 0
    cdef int kind
    cdef str tok
    if spans:
        next_in, in_stop = in_lists[0]
    while j < n:
        if j == next_in:
            out += ("in", "(", "?", ")")
            j = in_stop
            s += 1
            if s < spans:
                next_in, in_stop = in_lists[s]
            continue
        kind = toks.kind[j]
        if kind == STRING or kind == NUMBER or kind == FRACTION:
            out.append("?")
        elif kind == QUOTED:
            tok = toks.text[j].strip('"') or '""'
            if j + 1 < n and toks.kind[j + 1] == STRING and tok in LITERAL_PREFIX:
                out.append("?")
                j += 2
                continue
            out.append(tok)
        else:
            if (
                j + 1 < n and toks.kind[j + 1] == STRING
                and toks.ids[j] >= 0 and _IS_LITERAL_PREFIX[toks.ids[j]]
            ):
                out.append("?")
                j += 2
                continue
            out.append(toks.text[j])
        j += 1
    return " ".join(out)


# --------------------------------------------------------------------------- TF-IDF
#
# A term's weight is (1 + ln count) * idf; a statement's weights are divided by their L2 norm,
# the squares added one by one in column order. Both functions below weigh through
# _weigh_sorted, so the serving path and the batch path give the same bits on every Python
# version and platform with IEEE doubles.

from libc.stdint cimport int64_t

cdef extern from "math.h":
    double log(double x) nogil
    double sqrt(double x) nogil


cdef void _weigh_sorted(
    const int64_t* cols, const int64_t* counts, const double* idf, double* out, Py_ssize_t n
) noexcept nogil:
    """Weights of one statement's terms, given as (column, count) pairs sorted by column."""
    cdef Py_ssize_t j
    cdef double norm = 0.0
    for j in range(n):
        out[j] = (1.0 + log(<double> counts[j])) * idf[cols[j]]
        norm += out[j] * out[j]
    norm = sqrt(norm)
    for j in range(n):
        out[j] /= norm


def tfidf(keys, counts, dict column, const double[::1] idf):
    """Sparse TF-IDF of one statement from its terms (``keys``) and their ``counts``: the
    sorted column of each term that ``column`` maps, and its L2-normalised weight."""
    cdef list fast_keys = list(keys)
    cdef list fast_counts = list(counts)
    cdef Py_ssize_t n = len(fast_keys), hits = 0, k
    cdef PyObject* found
    cdef int64_t* cols
    cdef int64_t* found_counts
    cdef double* weights
    if len(fast_counts) != n:
        raise ValueError(f"{n} terms but {len(fast_counts)} counts")
    if n == 0:
        return [], []
    cols = <int64_t*> malloc(n * sizeof(int64_t))
    found_counts = <int64_t*> malloc(n * sizeof(int64_t))
    weights = <double*> malloc(n * sizeof(double))
    try:
        if cols == NULL or found_counts == NULL or weights == NULL:
            raise MemoryError()
        for k in range(n):
            found = PyDict_GetItem(column, fast_keys[k])
            if found != NULL:
                cols[hits] = <int64_t> <object> found
                found_counts[hits] = <int64_t> fast_counts[k]
                if found_counts[hits] < 1:
                    raise ValueError(f"term {fast_keys[k]!r}: count {fast_counts[k]} < 1")
                hits += 1
        _sort_by_column(cols, found_counts, hits)
        _weigh_sorted(cols, found_counts, &idf[0], weights, hits)
        return [cols[k] for k in range(hits)], [weights[k] for k in range(hits)]
    finally:
        free(cols)
        free(found_counts)
        free(weights)


def tfidf_batch(
    const int64_t[::1] ends,
    const int64_t[::1] cols,
    const int64_t[::1] counts,
    const double[::1] idf,
    double[::1] out,
):
    """Weights of many statements at once, into ``out``: their (column, count) pairs lie end
    to end in ``cols`` and ``counts``, each statement's sorted by column and ending at its
    entry of ``ends``."""
    cdef Py_ssize_t start = 0, k, stop, j
    if cols.shape[0] != counts.shape[0] or out.shape[0] != cols.shape[0]:
        raise ValueError("cols, counts and out must have the same length")
    if ends.shape[0] and ends[ends.shape[0] - 1] != cols.shape[0]:
        raise ValueError("the last end must be the number of pairs")
    for k in range(ends.shape[0]):  # the loop below reads no memory it was not given
        if ends[k] < start:
            raise ValueError(f"ends must not decrease (entry {k})")
        start = ends[k]
    for j in range(cols.shape[0]):
        if not 0 <= cols[j] < idf.shape[0] or counts[j] < 1:
            raise ValueError(f"pair {j}: column {cols[j]} or count {counts[j]} out of range")
    if cols.shape[0] == 0:
        return
    start = 0
    with nogil:
        for k in range(ends.shape[0]):
            stop = ends[k]
            _weigh_sorted(&cols[start], &counts[start], &idf[0], &out[start], stop - start)
            start = stop


cdef void _sort_by_column(int64_t* cols, int64_t* counts, Py_ssize_t n) noexcept nogil:
    """Insertion sort of (column, count) pairs by column: a statement has a few dozen terms
    in the vocabulary (never more than its size)."""
    cdef Py_ssize_t i, j
    cdef int64_t c, w
    for i in range(1, n):
        c = cols[i]
        w = counts[i]
        j = i - 1
        while j >= 0 and cols[j] > c:
            cols[j + 1] = cols[j]
            counts[j + 1] = counts[j]
            j -= 1
        cols[j + 1] = c
        counts[j + 1] = w
