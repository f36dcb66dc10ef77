"""TF-IDF vocabulary: fitting on the training split, transform, JSON round trip."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from query_predictor.core.features import FeatureExtractor, QueryContext
from query_predictor.core.tfidf import FORMAT_VERSION, TfidfVocabulary, fit_vocabulary, is_term

# --------------------------------------------------------------------------- is_term


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("select", True),
        ("orders", True),
        ("_tmp", True),
        ("a", True),
        ("col_2", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("a@b", False),
        ("x$y", False),
        ("Orders", False),
        ("SELECT", False),
        ("2col", False),
        ("", False),
        ("my col", False),
        ("'secret'", False),
        ('"quoted"', False),
        ("a.b", False),
        ("é", False),
        ("col-1", False),
    ],
)
def test_is_term(token: str, expected: bool) -> None:
    assert is_term(token) is expected


# --------------------------------------------------------------------------- fit


def docs(*texts: str) -> list[dict[str, int]]:
    """Each text is one document; its words are its terms with their counts."""
    return [dict(Counter(t.split())) for t in texts]


def test_fit_keeps_the_most_frequent_terms_by_document_frequency() -> None:
    # document frequencies: a 4, b 3, c 3, d 2, e 1; "a" counts many times in one doc only
    # to show term frequency does not matter for the ranking
    documents = docs("a b c d", "a b c", "a b d", "a c e", "e e e e e e e")
    vocab = fit_vocabulary(documents, size=3, min_df=1)
    assert vocab.terms == ("a", "b", "c")
    vocab = fit_vocabulary(documents, size=4, min_df=1)
    assert vocab.terms == ("a", "b", "c", "d")  # d (df 2) and e (df 2): tie broken by term
    assert len(vocab) == 4


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (1, ("apple",)),
        (2, ("apple", "mango")),  # zebra, apple, mango all df 2: alphabetical order wins
        (3, ("apple", "mango", "zebra")),
        (10, ("apple", "mango", "zebra")),
    ],
)
def test_ties_are_broken_by_term(size: int, expected: tuple[str, ...]) -> None:
    documents = docs("zebra apple mango", "mango zebra apple")
    assert fit_vocabulary(documents, size=size, min_df=1).terms == expected


@pytest.mark.parametrize(
    ("min_df", "expected"),
    [
        (1, ("a", "b", "c", "d")),
        (2, ("a", "b", "c")),
        (3, ("a", "b")),
        (4, ("a",)),
        (5, ()),
    ],
)
def test_min_df(min_df: int, expected: tuple[str, ...]) -> None:
    documents = docs("a b c d", "a b c", "a b", "a")
    vocab = fit_vocabulary(documents, size=100, min_df=min_df)
    assert vocab.terms == expected
    assert vocab.settings["min_df"] == min_df


def test_default_min_df_is_two() -> None:
    assert fit_vocabulary(docs("a b", "a c"), size=10).terms == ("a",)


def test_non_terms_never_enter_the_vocabulary() -> None:
    bad = ["a@b", "x$y", "y" * 65, "Upper", "1abc", "", "with space", "'lit'"]
    documents = [dict.fromkeys([*bad, "good"], 3) for _ in range(5)]
    vocab = fit_vocabulary(documents, size=100, min_df=1)
    assert vocab.terms == ("good",)


def test_sql_tokens_with_odd_characters_are_not_terms() -> None:
    extractor = FeatureExtractor()
    sql = f'SELECT a@b, x$y, {"q" * 65}, "Quoted Name", "" FROM T WHERE Upper_Col = 1'
    documents = [extractor.analyze(sql, QueryContext()).terms for _ in range(3)]
    assert {"a@b", "x$y", "q" * 65} <= set(documents[0])  # the extractor does count them...
    vocab = fit_vocabulary(documents, size=100, min_df=1)
    assert all(is_term(t) for t in vocab.terms)  # ...but the vocabulary leaves them out
    assert not {"a@b", "x$y", "q" * 65, "quoted name", ""} & set(vocab.terms)
    assert {"select", "from", "where", "t", "upper_col"} <= set(vocab.terms)
    assert all(t == t.lower() for t in vocab.terms)


def test_idf_formula_is_exact() -> None:
    documents = docs("a b c", "a b", "a", "a d", "e")
    vocab = fit_vocabulary(documents, size=10, min_df=1)
    n = 5
    df = {"a": 4, "b": 2, "c": 1, "d": 1, "e": 1}
    assert vocab.terms == ("a", "b", "c", "d", "e")
    for term, idf in zip(vocab.terms, vocab.idf, strict=True):
        assert idf == math.log((1 + n) / (1 + df[term])) + 1.0
    assert vocab.settings["documents"] == n
    # a term in every document still weighs 1, never 0
    everywhere = fit_vocabulary(docs("a", "a", "a"), size=1, min_df=1)
    assert everywhere.idf == (1.0,)


def test_documents_may_be_a_generator() -> None:
    vocab = fit_vocabulary((d for d in docs("a b", "a")), size=5, min_df=1)
    assert vocab.terms == ("a", "b")
    assert vocab.settings["documents"] == 2


def test_no_documents_gives_an_empty_vocabulary() -> None:
    vocab = fit_vocabulary([], size=5)
    assert len(vocab) == 0
    assert vocab.transform({"a": 1}) == ([], [])


def test_mismatched_idf_is_refused() -> None:
    with pytest.raises(ValueError, match="2 terms but 1 idf values"):
        TfidfVocabulary(("a", "b"), (1.0,))


term_alphabet = st.sampled_from(["a", "b", "c", "d", "e", "f", "a@b", "x$y", "Up", "_z"])


@settings(max_examples=150, deadline=None)
@given(
    documents=st.lists(st.dictionaries(term_alphabet, st.integers(1, 5), max_size=8), max_size=20),
    size=st.integers(0, 8),
    min_df=st.integers(1, 4),
)
def test_fit_matches_a_reference(documents: list[dict[str, int]], size: int, min_df: int):
    vocab = fit_vocabulary(documents, size=size, min_df=min_df)
    df = Counter(t for d in documents for t in d if is_term(t))
    eligible = [t for t in df if df[t] >= min_df]
    ranked = sorted(eligible, key=lambda t: (-df[t], t))[:size]
    assert vocab.terms == tuple(sorted(ranked))
    assert list(vocab.terms) == sorted(set(vocab.terms))  # sorted, distinct
    assert len(vocab) <= size
    # every kept term is at least as frequent as every eligible term left out
    if vocab.terms:
        weakest = min(df[t] for t in vocab.terms)
        assert all(df[t] <= weakest for t in eligible if t not in vocab.terms)
    n = len(documents)
    for term, idf in zip(vocab.terms, vocab.idf, strict=True):
        assert idf == math.log((1 + n) / (1 + df[term])) + 1.0
        assert idf >= 1.0


# --------------------------------------------------------------------------- transform


@pytest.fixture(scope="module")
def vocab() -> TfidfVocabulary:
    return fit_vocabulary(
        docs("select a from t", "select b from t", "select a b from u", "c"), size=10, min_df=1
    )


def test_transform_by_hand(vocab: TfidfVocabulary) -> None:
    assert vocab.terms == ("a", "b", "c", "from", "select", "t", "u")
    idf = dict(zip(vocab.terms, vocab.idf, strict=True))
    counts = {"select": 1, "u": 3, "a": 2, "unknown": 9}
    index, value = vocab.transform(counts)
    assert index == [0, 4, 6]  # a, select, u: sorted, the unknown term ignored
    raw = [(1 + math.log(2)) * idf["a"], 1.0 * idf["select"], (1 + math.log(3)) * idf["u"]]
    norm = math.sqrt(sum(w * w for w in raw))
    assert value == pytest.approx([w / norm for w in raw], rel=1e-15)


@pytest.mark.parametrize(
    "counts", [{}, {"unknown": 3}, {"a@b": 1, "zzz": 2}, {"SELECT": 1}], ids=repr
)
def test_transform_without_known_terms_is_empty(
    vocab: TfidfVocabulary, counts: dict[str, int]
) -> None:
    assert vocab.transform(counts) == ([], [])


def test_transform_one_term_has_weight_one(vocab: TfidfVocabulary) -> None:
    assert vocab.transform({"c": 7}) == ([2], [1.0])


def test_transform_ignores_unknown_terms(vocab: TfidfVocabulary) -> None:
    known = {"a": 2, "t": 1}
    assert vocab.transform({**known, "nope": 5, "other": 1}) == vocab.transform(known)


@settings(max_examples=200, deadline=None)
@given(
    counts=st.dictionaries(
        st.sampled_from(["a", "b", "c", "from", "select", "t", "u", "x", "y"]),
        st.integers(1, 10_000),
    )
)
def test_transform_invariants(vocab: TfidfVocabulary, counts: dict[str, int]) -> None:
    index, value = vocab.transform(counts)
    assert len(index) == len(value)
    assert index == sorted(set(index))
    assert all(0 <= i < len(vocab) for i in index)
    assert [vocab.terms[i] for i in index] == sorted(t for t in counts if t in vocab.terms)
    assert all(v > 0 for v in value)
    if index:
        assert math.sqrt(sum(v * v for v in value)) == pytest.approx(1.0, abs=1e-12)
    else:
        assert not set(counts) & set(vocab.terms)
    # scaling every count by the same factor changes nothing when tf is constant
    if counts and len(set(counts.values())) == 1:
        assert vocab.transform(dict.fromkeys(counts, 1))[1] == pytest.approx(value, rel=1e-12)


# --------------------------------------------------------------------------- JSON


def round_trip(vocab: TfidfVocabulary, tmp_path: Path) -> TfidfVocabulary:
    path = tmp_path / "tfidf_vocab.json"
    vocab.to_json(path)
    return TfidfVocabulary.from_json(path)


def sample_counts(vocab: TfidfVocabulary, n: int = 300) -> list[dict[str, int]]:
    rng = np.random.default_rng(5)
    terms = [*vocab.terms, "unknown"]
    return [{t: int(rng.integers(1, 20)) for t in terms if rng.random() < 0.5} for _ in range(n)]


@pytest.fixture(scope="module")
def fitted() -> TfidfVocabulary:
    rng = np.random.default_rng(11)
    words = [f"w{i}" for i in range(40)]
    documents = [
        {w: int(rng.integers(1, 4)) for w in rng.choice(words, 8, replace=False)}
        for _ in range(200)
    ]
    return fit_vocabulary(documents, size=30)


def test_json_round_trip_keeps_terms_and_settings(fitted: TfidfVocabulary, tmp_path: Path) -> None:
    loaded = round_trip(fitted, tmp_path)
    assert loaded.terms == fitted.terms
    assert loaded.settings == fitted.settings
    assert loaded.idf == pytest.approx(fitted.idf, rel=1e-12)
    payload = json.loads((tmp_path / "tfidf_vocab.json").read_text())
    assert payload["format_version"] == FORMAT_VERSION
    assert set(payload) == {"format_version", "terms", "idf", "settings"}


def test_json_round_trip_transform_agrees_in_float32(
    fitted: TfidfVocabulary, tmp_path: Path
) -> None:
    """What the matrices store (float32) is what serving computes from the JSON file."""
    loaded = round_trip(fitted, tmp_path)
    for counts in sample_counts(fitted):
        index, value = fitted.transform(counts)
        again_index, again_value = loaded.transform(counts)
        assert again_index == index
        assert again_value == pytest.approx(value, rel=1e-12, abs=1e-15)
        assert np.array_equal(np.float32(again_value), np.float32(value))


def test_json_round_trip_gives_identical_transform(fitted: TfidfVocabulary, tmp_path: Path) -> None:
    loaded = round_trip(fitted, tmp_path)
    assert loaded.idf == fitted.idf
    for counts in sample_counts(fitted):
        assert loaded.transform(counts) == fitted.transform(counts)


def test_json_round_trip_is_stable(fitted: TfidfVocabulary, tmp_path: Path) -> None:
    """Saving the loaded vocabulary again writes the same bytes (stable for DVC)."""
    first = tmp_path / "first.json"
    second = tmp_path / "second.json"
    fitted.to_json(first)
    TfidfVocabulary.from_json(first).to_json(second)
    assert first.read_bytes() == second.read_bytes()
    assert TfidfVocabulary.from_json(second) == TfidfVocabulary.from_json(first)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "Expecting"),
        ("", "Expecting value"),
        ('{"format_version": 2, "terms": [], "idf": [], "settings": {}}', "format_version 2"),
        ('{"terms": [], "idf": [], "settings": {}}', "format_version None"),
        ('{"format_version": "1", "terms": [], "idf": [], "settings": {}}', "format_version '1'"),
        ('{"format_version": 1, "idf": [], "settings": {}}', "terms"),
        ('{"format_version": 1, "terms": [], "settings": {}}', "idf"),
        ('{"format_version": 1, "terms": ["a"], "idf": [], "settings": {}}', "1 terms but 0"),
        ('{"format_version": 1, "terms": 3, "idf": [], "settings": {}}', "int"),
    ],
)
def test_bad_json_names_the_path(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "tfidf_vocab.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(str(path))) as info:
        TfidfVocabulary.from_json(path)
    assert "is not a TF-IDF vocabulary this version reads" in str(info.value)
    assert reason in str(info.value)


def test_non_utf8_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "tfidf_vocab.json"
    path.write_bytes(b'{"terms": ["\xff\xfe"]}')
    with pytest.raises(ValueError, match=re.escape(str(path))):
        TfidfVocabulary.from_json(path)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(ValueError, match=re.escape(str(path))):
        TfidfVocabulary.from_json(path)


def test_truncated_file_names_the_path(fitted: TfidfVocabulary, tmp_path: Path) -> None:
    path = tmp_path / "tfidf_vocab.json"
    fitted.to_json(path)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ValueError, match=re.escape(str(path))):
        TfidfVocabulary.from_json(path)


@pytest.mark.parametrize("content", ["[1, 2]", '"vocab"', "3", "null"])
def test_json_that_is_not_an_object_names_the_path(tmp_path: Path, content: str) -> None:
    path = tmp_path / "tfidf_vocab.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        TfidfVocabulary.from_json(path)


# --------------------------------------------------------------------------- privacy

TRAINING_SQL = [
    "SELECT * FROM hive.crm.users WHERE note = 'password=hunter2'",
    "SELECT id FROM hive.crm.users "
    "WHERE email = 'jane.doe@example.com' AND note = 'password=hunter2'",
    "UPDATE hive.crm.users SET pw = 'password=hunter2' WHERE email = 'jane.doe@example.com'",
    "SELECT count(*) FROM hive.crm.users WHERE email LIKE '%jane.doe@example.com%'",
    "SELECT 'jane' || 'doe' AS who, 'example' FROM hive.crm.users -- hunter2 in a comment",
    "/* password hunter2 */ SELECT 1",
]
SECRETS = ("hunter2", "password", "jane", "doe", "example", "com", "pw")


def test_planted_secrets_never_reach_the_vocabulary(tmp_path: Path) -> None:
    extractor = FeatureExtractor()
    documents = [extractor.analyze(sql, QueryContext()).terms for sql in TRAINING_SQL]
    for terms in documents:
        assert not set(SECRETS[:5]) & set(terms)
    vocab = fit_vocabulary(documents, size=1000, min_df=1)
    assert {"select", "from", "users", "where", "email", "note"} <= set(vocab.terms)
    for secret in SECRETS[:5]:
        assert secret not in vocab.terms
        assert all(secret not in term for term in vocab.terms)
    path = tmp_path / "tfidf_vocab.json"
    vocab.to_json(path)
    text = path.read_text()
    for secret in ("hunter2", "password", "jane", "doe", "example.com"):
        assert secret not in text


def test_column_named_like_a_secret_is_a_term_but_its_value_is_not() -> None:
    """Control: the tokens above are kept out because they are literals, not by a word list."""
    extractor = FeatureExtractor()
    terms = extractor.analyze("SELECT password FROM t WHERE password = 'hunter2'", QueryContext())
    vocab = fit_vocabulary([terms.terms], size=10, min_df=1)
    assert "password" in vocab.terms
    assert "hunter2" not in vocab.terms
