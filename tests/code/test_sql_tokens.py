"""The tokeniser, the normalised text built from it, and the fingerprint of that text."""

from __future__ import annotations

import hashlib
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from query_predictor.core.sql_tokens import (
    MAX_CHARS,
    as_text,
    fingerprint,
    is_comment,
    is_literal,
    normalize,
    tokenize,
)

SECRET = "password=hunter2"
EMAIL = "jane.doe@example.com"
HEX16 = re.compile(r"[0-9a-f]{16}")


# --------------------------------------------------------------------------- as_text


def test_max_chars_is_a_quarter_megabyte() -> None:
    assert MAX_CHARS == 256 * 1024


@pytest.mark.parametrize(
    ("sql", "text"),
    [
        (None, ""),
        ("", ""),
        ("SELECT 1", "SELECT 1"),
        (b"SELECT 1", "SELECT 1"),
        (b"SELECT '\xff\xfe' FROM t", "SELECT '\ufffd\ufffd' FROM t"),
        ("SELECT 'Zoë 日本'".encode(), "SELECT 'Zoë 日本'"),
        ("  \n\t", "  \n\t"),
    ],
    ids=["none", "empty", "text", "bytes", "invalid-utf8", "utf8-bytes", "blank"],
)
def test_as_text(sql: str | bytes | None, text: str) -> None:
    assert as_text(sql) == text


def test_as_text_cuts_at_max_chars() -> None:
    sql = "SELECT " + "a, " * 400_000 + "b FROM t"
    assert len(sql) > MAX_CHARS
    assert as_text(sql) == sql[:MAX_CHARS]
    assert as_text(sql.encode()) == sql[:MAX_CHARS]
    exact = "x" * MAX_CHARS
    assert as_text(exact) == exact


# --------------------------------------------------------------------------- tokenize


@pytest.mark.parametrize(
    ("sql", "tokens"),
    [
        ("SELECT a, b FROM t", ["select", "a", ",", "b", "from", "t"]),
        ("select A.b FROM Hive.Sales.T;", ["select", "a", ".", "b", "from", "hive", ".", "sales",
                                            ".", "t", ";"]),
        ("SELECT 'It''s' AS x", ["select", "'it''s'", "as", "x"]),
        ("SELECT 'ABC def'", ["select", "'abc def'"]),
        ('SELECT "My Col" FROM "T"', ["select", '"my col"', "from", '"t"']),
        ('SELECT "a""b"', ["select", '"a""b"']),
        ("SELECT 1.5e3, .5, 1., 10/2", ["select", "1.5e3", ",", ".5", ",", "1.", ",", "10", "/",
                                        "2"]),
        (
            "a || b -> c => d != e <= f >= g <> h < i > j = k",
            ["a", "||", "b", "->", "c", "=>", "d", "!=", "e", "<=", "f", ">=", "g", "<>", "h",
             "<", "i", ">", "j", "=", "k"],
        ),
        ("col$x@y_1", ["col$x@y_1"]),
        ("SELECT 1 -- note\nFROM t", ["select", "1", "-- note", "from", "t"]),
        ("a/* x */b", ["a", "/* x */", "b"]),
        ("/* a\nb */ SELECT 1", ["/* a\nb */", "select", "1"]),
        ("SELECT 'never closed", ["select", "'never closed"]),
        ("SELECT 1 /* never closed", ["select", "1", "/* never closed"]),
        ('SELECT "never closed', ["select", '"never closed']),
        ("SELECT '-- not /* a comment'", ["select", "'-- not /* a comment'"]),
        ("  \n\t SELECT\n\n1  \r\n", ["select", "1"]),
        ("", []),
        ("   ", []),
        (")))(((", [")", ")", ")", "(", "(", "("]),
        ("SELEC FORM", ["selec", "form"]),
    ],
)  # fmt: skip
def test_tokenize(sql: str, tokens: list[str]) -> None:
    assert tokenize(sql) == tokens


def test_tokenize_none_and_bytes() -> None:
    assert tokenize(None) == []
    assert tokenize(b"SELECT '\xff\xfe' FROM t") == ["select", "'\ufffd\ufffd'", "from", "t"]


@pytest.mark.parametrize(
    ("token", "comment", "literal"),
    [
        ("-- x", True, False),
        ("/* x */", True, False),
        ("-", False, False),
        ("/", False, False),
        ("'x'", False, True),
        ("''", False, True),
        ("42", False, True),
        ("1.5e3", False, True),
        (".5", False, True),
        (".", False, False),
        ('"x"', False, False),
        ("select", False, False),
        ("?", False, False),
    ],
)
def test_is_comment_and_is_literal(token: str, comment: bool, literal: bool) -> None:
    assert is_comment(token) is comment
    assert is_literal(token) is literal


# --------------------------------------------------------------------------- normalize


@pytest.mark.parametrize(
    ("sql", "normalized"),
    [
        ("SELECT a FROM t WHERE x = 42", "select a from t where x = ?"),
        ("SELECT a FROM t WHERE name = 'Bob'", "select a from t where name = ?"),
        ("SELECT 1.5e3, .5, -7", "select ? , ? , - ?"),
        ("WHERE ds = '2025-06-01'", "where ds = ?"),
        ("WHERE ds = DATE '2025-06-01'", "where ds = ?"),
        ("WHERE ts > TIMESTAMP '2025-06-01 10:00:00'", "where ts > ?"),
        ("WHERE t > TIME '10:00'", "where t > ?"),
        ("ts > now() - INTERVAL '7' DAY", "ts > now ( ) - ? day"),
        ("x IN (1, 2, 3)", "x in ( ? )"),
        ("x IN ('a')", "x in ( ? )"),
        ("x IN (-1, +2)", "x in ( ? )"),
        ("x IN (.5, 1.5)", "x in ( ? )"),
        ("x IN (SELECT y FROM u)", "x in ( select y from u )"),
        ("x IN (a, 1)", "x in ( a , ? )"),
        ("x IN ()", "x in ( )"),
        ("x IN (1, 2", "x in ( ? , ?"),
        ('SELECT "Order" FROM "My Table"', "select order from my table"),
        ('SELECT ""', 'select ""'),
        ("SELECT 1 -- c\n/* d */", "select ?"),
        ("/* only */ -- comments", ""),
        ("SELECT 'never closed", "select ?"),
        ("", ""),
    ],
)
def test_normalize(sql: str, normalized: str) -> None:
    assert normalize(sql) == normalized


def test_normalize_none_and_bytes() -> None:
    assert normalize(None) == ""
    assert normalize(b"SELECT '\xff\xfe' FROM t") == "select ? from t"


@pytest.mark.parametrize(
    "sql",
    [
        f"SELECT * FROM users WHERE note = '{SECRET}' AND mail = '{EMAIL}'",
        f"SELECT '{SECRET.upper()}', '{EMAIL}' FROM t",
        f"SELECT * FROM t WHERE mail IN ('{EMAIL}', '{SECRET}')",
        f"SELECT * FROM t WHERE mail = '{EMAIL}",  # unterminated: runs to the end
        f"SELECT 1 -- {SECRET} {EMAIL}\n",
        f"SELECT 1 /* {SECRET} {EMAIL} */",
        f"SELECT 'it''s {SECRET}' || '{EMAIL}'",
    ],
)
def test_no_secret_or_email_survives_normalize(sql: str) -> None:
    normalized = normalize(sql)
    for needle in ("hunter2", "password", "jane", "example", "@"):
        assert needle not in normalized


def test_numbers_and_dates_become_question_marks() -> None:
    sql = "SELECT 4111111111111111, 3.14159 FROM t WHERE d = DATE '1985-04-12' AND e = '1985-04-12'"
    normalized = normalize(sql)
    assert normalized == "select ? , ? from t where d = ? and e = ?"
    assert not re.search(r"\d", normalized)


# --------------------------------------------------------------------------- fingerprint


def test_fingerprint_is_pinned() -> None:
    normalized = normalize("SELECT a FROM t WHERE x = 1")
    assert normalized == "select a from t where x = ?"
    assert fingerprint(normalized) == "e47cff16038b305a"
    assert (
        fingerprint(normalized) == hashlib.blake2b(normalized.encode(), digest_size=8).hexdigest()
    )


@pytest.mark.parametrize("text", ["", "select ?", "select é 日本", "x" * 10_000])
def test_fingerprint_is_sixteen_hex_digits(text: str) -> None:
    assert HEX16.fullmatch(fingerprint(text))
    assert fingerprint(text) == fingerprint(text)


def test_in_lists_of_any_size_share_a_fingerprint() -> None:
    sizes = [
        "SELECT * FROM t WHERE x IN (1)",
        "SELECT * FROM t WHERE x IN (1,2)",
        "SELECT * FROM t WHERE x IN (1, 2, 3, 4)",
        "SELECT * FROM t WHERE x IN (" + ", ".join(map(str, range(5000))) + ")",
        "select * from t where x in ('a', 'b')",
    ]
    assert {fingerprint(normalize(s)) for s in sizes} == {
        fingerprint("select * from t where x in ( ? )")
    }


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("SELECT a FROM t", "SELECT b FROM t"),
        ("SELECT a FROM t", "SELECT a FROM u"),
        ("SELECT a FROM t WHERE x = 1", "SELECT a FROM t WHERE x > 1"),
        ("SELECT a FROM t WHERE x IN (1, 2)", "SELECT a FROM t WHERE x IN (SELECT 1)"),
    ],
)
def test_different_structures_have_different_fingerprints(a: str, b: str) -> None:
    assert fingerprint(normalize(a)) != fingerprint(normalize(b))


@pytest.mark.parametrize(
    "variant",
    [
        "select a from t where x = 1",
        "SELECT  a\nFROM\tt\n WHERE x=1",
        "/* dashboard 7 */ SeLeCt a -- the column\nFROM T WHERE X = 99",
        "SELECT a FROM t WHERE x = 123456789 -- trailing",
        "SELECT/**/a/**/FROM/**/t/**/WHERE/**/x/**/=/**/'one'",
    ],
)
def test_fingerprint_ignores_comments_case_whitespace_and_literal_values(variant: str) -> None:
    assert fingerprint(normalize(variant)) == "e47cff16038b305a"


# --------------------------------------------------------------------------- properties

# Base statements as token lists: joining them with any whitespace or comment must not
# change a single token (no "-" next to "-", no ">" next to "=").
BASES = [
    ["SELECT", "a", ",", "count", "(", "*", ")", "FROM", "hive", ".", "sales", ".", "orders",
     "WHERE", "ds", ">=", "DATE", "'2025-06-01'", "AND", "region", "IN", "(", "'EU'", ",",
     "'US'", ")", "GROUP", "BY", "a", "ORDER", "BY", "2", "DESC", "LIMIT", "10"],
    ["WITH", "x", "AS", "(", "SELECT", "id", "FROM", "t", "WHERE", "note", "=", f"'{SECRET}'",
     ")", "SELECT", "*", "FROM", "x", "JOIN", "u", "ON", "x", ".", "id", "=", "u", ".", "id"],
    ["INSERT", "INTO", "t", "SELECT", "*", "FROM", "u", "WHERE", "ts", ">", "now", "(", ")",
     "-", "INTERVAL", "'7'", "DAY"],
    ["SELECT", '"Order"', ",", "'It''s'", "||", "x", "FROM", '"My_Table"', "WHERE", "y", "<>",
     "1.5e3", "OR", "z", "IS", "NOT", "NULL"],
    ["SHOW", "TABLES", "FROM", "hive", ".", "sales", "LIKE", "'ord%'"],
]  # fmt: skip
SPACE = st.text(alphabet=" \t\n\r", min_size=1, max_size=3)
COMMENT_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"),
    max_size=12,
)
SEPARATOR = st.one_of(
    SPACE,
    st.tuples(SPACE, COMMENT_TEXT).map(lambda p: f"{p[0]}--{p[1]}\n"),
    st.tuples(SPACE, COMMENT_TEXT.filter(lambda s: "*/" not in s), SPACE).map(
        lambda p: f"{p[0]}/*{p[1]}*/{p[2]}"
    ),
)


def _in_list_gaps(tokens: list[str]) -> set[int]:
    """Gaps (gap k is between token k and k + 1) from IN to its closing parenthesis; comments
    there are covered by the explicit test below, so only whitespace goes there."""
    gaps: set[int] = set()
    for k, tok in enumerate(tokens[:-1]):
        if tok.upper() == "IN" and tokens[k + 1] == "(":
            close = tokens.index(")", k)
            gaps.update(range(k, close))
    return gaps


@st.composite
def variants(draw: st.DrawFn) -> tuple[str, str]:
    """(base statement, the same tokens re-cased and joined by whitespace and comments)."""
    tokens = draw(st.sampled_from(BASES))
    base = " ".join(tokens)
    rnd = draw(st.randoms(use_true_random=False))
    recased = "".join(c.swapcase() if rnd.random() < 0.5 else c for c in base)
    pieces = recased.split(" ")  # no token above contains a blank
    assert len(pieces) == len(tokens)
    no_comment = _in_list_gaps(tokens)
    text = pieces[0]
    for k, piece in enumerate(pieces[1:]):
        text += draw(SPACE if k in no_comment else SEPARATOR) + piece
    lead = draw(st.one_of(st.just(""), SEPARATOR))
    trail = draw(st.one_of(st.just(""), SEPARATOR))
    return base, lead + text + trail


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(variants())
def test_whitespace_case_and_comments_never_change_normalize_or_fingerprint(
    pair: tuple[str, str],
) -> None:
    base, variant = pair
    assert normalize(variant) == normalize(base)
    assert fingerprint(normalize(variant)) == fingerprint(normalize(base))


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM t WHERE x IN (1, 2 -- last\n)",
        "SELECT * FROM t WHERE x IN (/* ids */ 1, 2)",
        "SELECT * FROM t WHERE x IN /* ids */ (1, 2)",
    ],
)
def test_comment_inside_an_in_list_does_not_change_the_fingerprint(sql: str) -> None:
    assert normalize(sql) == "select * from t where x in ( ? )"


SQLISH = st.text(alphabet=st.sampled_from("abs IN(),.'1-/*\n=<>é"), max_size=40)


@settings(max_examples=200, deadline=None)
@given(SQLISH | st.text(max_size=40).filter(lambda s: '"' not in s))
def test_normalize_leaves_no_literal_or_comment(sql: str) -> None:
    out = normalize(sql).split(" ") if normalize(sql) else []
    assert not any(is_literal(t) or is_comment(t) for t in out)
    assert all(t for t in out)
    assert normalize(normalize(sql)) == normalize(sql)  # nothing left to normalise


@settings(max_examples=150, deadline=None)
@given(st.text() | st.binary())
def test_tokenize_and_normalize_never_raise(sql: str | bytes) -> None:
    tokens = tokenize(sql)
    assert all(isinstance(t, str) and t and not t[0].isspace() for t in tokens)
    assert HEX16.fullmatch(fingerprint(normalize(sql)))


def test_megabyte_statement_is_cut_and_fast() -> None:
    sql = "SELECT " + "a, " * 400_000 + "b FROM t"
    start = time.perf_counter()
    normalized = normalize(sql)
    assert time.perf_counter() - start < 1.0
    assert normalized == normalize(sql[:MAX_CHARS])
    assert "from" not in normalized.split()  # the tail is past the cut
