"""The compiled scan against the pure-Python featurizer it replaced (``tests/oracle``).

Every statement is analysed by both; the base features (as floats, bit for bit), the tables,
the CTE names, the first date, the TF-IDF terms (in order) and the template must agree, and so
must the tokens. Statements come from the hand-written cases of the feature tests, from the
synthetic workload generator, and from hypothesis: SQL fragments in random order, and any text
at all.
"""

from __future__ import annotations

import datetime as dt
import math
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from query_predictor.core import _textscan
from query_predictor.core.features import BASE_NAMES, FeatureExtractor, QueryContext
from query_predictor.core.sql_tokens import normalize, tokenize
from query_predictor.core.tfidf import TfidfVocabulary, fit_vocabulary
from query_predictor.synth.plans import random_plan, render
from query_predictor.synth.world import build_tables
from tests.oracle import features as oracle_features
from tests.oracle import sql_tokens as oracle_tokens
from tests.oracle import tfidf as oracle_tfidf

from . import test_features, test_sql_tokens

COMPILED = FeatureExtractor()
ORACLE = oracle_features.FeatureExtractor()


def assert_same(sql: str | bytes | None) -> None:
    new, old = COMPILED._statement(sql), ORACLE._statement(sql)
    differ = [
        (name, a, b) for name, a, b in zip(BASE_NAMES, new.base, old.base, strict=True) if a != b
    ]
    assert not differ, f"{sql!r}: features differ (name, compiled, oracle): {differ}"
    assert new.tables == old.tables, repr(sql)
    assert set(new.ctes) == set(old.ctes), repr(sql)
    assert new.first_date == old.first_date, repr(sql)
    assert list(new.terms.items()) == list(old.terms.items()), repr(sql)
    assert new.template == old.template, repr(sql)
    assert tokenize(sql) == oracle_tokens.tokenize(sql), repr(sql)
    assert normalize(sql) == oracle_tokens.normalize(sql), repr(sql)


def _hand_written() -> list[str | bytes | None]:
    """Every statement the feature and token tests spell out."""
    found: list[str | bytes | None] = [None, "", b"\xff\xfe", test_features.RICH]
    for module in (test_features, test_sql_tokens):
        for value in vars(module).values():
            if isinstance(value, list):
                for case in value:
                    first = case[0] if isinstance(case, tuple) and case else case
                    if isinstance(first, str | bytes):
                        found.append(first)
            marks = getattr(value, "pytestmark", [])
            for mark in marks:
                if mark.name == "parametrize":
                    for case in mark.args[1]:
                        first = case[0] if isinstance(case, tuple) and case else case
                        if isinstance(first, str | bytes):
                            found.append(first)
    return found


HAND_WRITTEN = _hand_written()


def test_the_corpus_of_hand_written_statements_is_large() -> None:
    assert len(HAND_WRITTEN) > 150


def test_hand_written_statements_agree() -> None:
    for sql in HAND_WRITTEN:
        assert_same(sql)


def test_generated_workload_agrees() -> None:
    """2,000 statements as the synthetic generator writes them, in every writer's style."""
    rng = random.Random(7)
    tables = build_tables(rng, 30)
    profiles = ("dashboard", "analyst", "data_scientist", "etl")
    styles = [
        {"upper": upper, "pretty": pretty, "alias_as": alias_as}
        for upper in (True, False)
        for pretty in (True, False)
        for alias_as in (True, False)
    ]
    day = dt.date(2025, 7, 1)
    for i in range(2_000):
        plan = random_plan(
            rng,
            tables,
            profile=profiles[i % len(profiles)],
            lookbacks=[1, 7, 30, 365],
            discipline=rng.random(),
            appetite=rng.random(),
        )
        sql = render(plan, day, rng, styles[i % len(styles)])
        assert_same(sql if i % 3 else f"/* dashboard {i} */ {sql} -- tool")


WORDS = (
    "select from where join left right full cross inner outer on and or not in is null as "
    "with group by order limit fetch first next rows row having union all intersect except "
    "distinct count sum approx_distinct json_extract regexp_like cast try_cast case when then "
    "else end over partition unnest lateral table values insert into create replace explain "
    "analyze show describe delete update merge between like exists interval date timestamp "
    "time day days month year ds dt event_date current_date now extract trim position "
    "hive.sales.orders iceberg.web.events t a b x"
)
SYMBOLS = "( ) , ; * . = <> != < > <= >= || -> => + - / % ? : [ ] { } @ $ #"
FRAGMENTS = [
    *WORDS.split(),
    *SYMBOLS.split(),
    "'2025-07-01'",
    "'2025-02-30'",
    "'7'",
    "'x''y'",
    "'unterminated",
    "''",
    '"Quoted"',
    '"date"',
    '"a""b"',
    '""',
    '"open',
    "1",
    "42",
    "1.5",
    ".5",
    "1e3",
    "1_000",
    "0x1f",
    "0b101",
    "0o17",
    "0x",
    "٣",
    "²",
    "é",
    "İ",
    "-- note\n",
    "--",
    "/* block */",
    "/* open",
    "\n",
    "\t",
    "\u00a0",
    "\x00",
]
SQLISH = st.lists(st.sampled_from(FRAGMENTS), max_size=60).map(
    lambda parts: " ".join(parts)
) | st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SQLISH)
def test_sql_fragments_in_any_order_agree(sql: str) -> None:
    assert_same(sql)
    assert_same(sql.upper())


@settings(max_examples=500, deadline=None)
@given(st.text() | st.binary())
def test_any_text_agrees(sql: str | bytes) -> None:
    assert_same(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 'x" + "y" * 300_000,  # cut at MAX_CHARS inside a literal
        "SELECT " + "(" * 5_000 + "1" + ")" * 5_000,
        "SELECT * FROM t WHERE x IN (" + ", ".join(map(str, range(20_000))) + ")",
        "/*" + " select" * 40_000,
    ],
)
def test_huge_statements_agree(sql: str) -> None:
    assert_same(sql)


# --------------------------------------------------------------------------- TF-IDF weights

TERMS = [f"t{i}" for i in range(300)]
# idf as fit_vocabulary writes it: ln((1 + N) / (1 + df)) + 1, never a round number
IDF = st.tuples(st.integers(1, 10**6), st.integers(0, 10**6)).map(
    lambda n_df: math.log((1 + n_df[0] + n_df[1]) / (1 + n_df[1])) + 1.0
)


@settings(max_examples=400, deadline=None)
@given(
    vocabulary=st.lists(st.sampled_from(TERMS), unique=True, max_size=120).flatmap(
        lambda terms: st.tuples(
            st.just(terms), st.lists(IDF, min_size=len(terms), max_size=len(terms))
        )
    ),
    counts=st.dictionaries(
        st.sampled_from([*TERMS, "other", "", "x y"]), st.integers(1, 5_000), max_size=80
    ),
)
def test_tfidf_weights_agree_bit_for_bit(
    vocabulary: tuple[list[str], list[float]], counts: dict[str, int]
) -> None:
    terms, idf = vocabulary
    ordered = sorted(zip(terms, idf, strict=True))
    compiled = TfidfVocabulary(tuple(t for t, _ in ordered), tuple(i for _, i in ordered))
    assert compiled.transform(counts) == oracle_tfidf.transform(
        compiled.terms, compiled.idf, counts
    )


def test_tfidf_of_hand_written_statements_agrees() -> None:
    analyses = [COMPILED.analyze(sql, QueryContext()) for sql in HAND_WRITTEN]
    documents = [a.terms for a in analyses]
    compiled = fit_vocabulary(documents, size=200, min_df=1)
    for terms in documents:
        want = oracle_tfidf.transform(compiled.terms, compiled.idf, terms)
        assert compiled.transform(terms) == want


def test_tfidf_rejects_counts_below_one_and_lists_of_different_lengths() -> None:
    vocabulary = TfidfVocabulary(("a", "b"), (1.0, 2.0))
    with pytest.raises(ValueError, match="2 terms but 1 counts"):
        _textscan.tfidf(["a", "b"], [1], {"a": 0, "b": 1}, vocabulary._idf)
    with pytest.raises(ValueError, match="term 'b': count 0 < 1"):
        vocabulary.transform({"a": 2, "b": 0})
    assert vocabulary.transform({"zzz": 0}) == ([], [])  # not in the vocabulary: not weighed


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.dictionaries(st.sampled_from([*TERMS, "other"]), st.integers(1, 5_000), max_size=40),
        max_size=30,
    )
)
def test_batch_weights_are_the_weights_of_each_statement(statements: list[dict[str, int]]) -> None:
    compiled = fit_vocabulary(statements, size=150, min_df=1)
    column = {t: i for i, t in enumerate(compiled.terms)}
    pairs = [sorted((column[t], c) for t, c in s.items() if t in column) for s in statements]
    ends = np.cumsum([len(p) for p in pairs], dtype=np.int64)
    flat = [pair for p in pairs for pair in p]
    weights = compiled.weigh_batch(
        ends, np.array([c for c, _ in flat], dtype=np.int64), np.array([n for _, n in flat])
    ).tolist()
    for statement, stop, p in zip(statements, ends, pairs, strict=True):
        start = int(stop) - len(p)
        want = oracle_tfidf.transform(compiled.terms, compiled.idf, statement)
        assert ([c for c, _ in p], weights[start:stop]) == want


def test_batch_weights_check_their_layout() -> None:
    vocabulary = TfidfVocabulary(("a", "b"), (1.0, 2.0))
    with pytest.raises(ValueError, match="last end"):
        vocabulary.weigh_batch(np.array([1]), np.array([0, 1]), np.array([1, 1]))
    with pytest.raises(ValueError, match="same length"):
        vocabulary.weigh_batch(np.array([2]), np.array([0, 1]), np.array([1]))
    with pytest.raises(ValueError, match="must not decrease"):
        vocabulary.weigh_batch(np.array([2, 1, 2]), np.array([0, 1]), np.array([1, 1]))
    with pytest.raises(ValueError, match="pair 1: column 2"):
        vocabulary.weigh_batch(np.array([2]), np.array([0, 2]), np.array([1, 1]))
    with pytest.raises(ValueError, match="pair 0: column 0 or count 0"):
        vocabulary.weigh_batch(np.array([1]), np.array([0]), np.array([0]))
    assert vocabulary.weigh_batch(np.array([0, 0]), np.array([]), np.array([])).size == 0
