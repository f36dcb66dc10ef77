"""Stage featurize end to end on a small labeled log: matrices, vocabulary, parity."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from query_predictor.core.errors import ParityError
from query_predictor.core.features import BASE_NAMES, FeatureExtractor, QueryContext, days_read
from query_predictor.core.featurizer import FEATURE_NAMES, QueryFeaturizer
from query_predictor.core.history import (
    EPOCH,
    HISTORY_NAMES,
    RECENCY_HORIZON_DAYS,
    HistoryLookup,
)
from query_predictor.core.tfidf import TfidfVocabulary, fit_vocabulary
from query_predictor.storage import write_parquet
from query_predictor.training import featurize as featurize_module
from query_predictor.training.featurize import (
    FeatureSet,
    analyze_frame,
    check_parity,
    context_of,
    document_frequencies,
    featurize,
    fit_on,
    list_series,
    text_key,
    tfidf_vectors,
    vocabulary_of,
    with_conventions,
    with_tfidf,
)
from query_predictor.training.history import (
    daily_sums,
    resolve_partitions,
    snapshot,
    snapshot_of_sums,
)

from .rawlog import raw_frame, raw_row

WEIGHT = 20.0
START = dt.date(2025, 6, 1)
TRAIN_END = START + timedelta(days=3)  # train: days 1-4, val: 5-6, test: 7-8
VAL_END = START + timedelta(days=5)
GIB = 2**30
TEST_ONLY_COLUMN = "zz_test_only_column"

TEMPLATES = [
    # (SQL with {day} / {start} placeholders, user pool, median CPU ms, catalog)
    (
        "SELECT region, count(*) FROM hive.sales.orders WHERE ds = '{day}' GROUP BY 1",
        ("alice", "bob"),
        20_000,
    ),
    (
        "SELECT o.id, c.name FROM hive.sales.orders o JOIN hive.crm.customers c "
        "ON o.customer_id = c.id WHERE o.ds BETWEEN '{start}' AND '{day}' ORDER BY c.name",
        ("alice", "carol"),
        400_000,
    ),
    (
        "INSERT INTO iceberg.mart.daily SELECT * FROM hive.sales.orders WHERE ds = '{day}'",
        ("svc_etl",),
        900_000,
    ),
    ("SELECT * FROM mysql.app.users LIMIT 100", ("bob", None), 300),
    (
        "WITH t AS (SELECT user_id, sum(amount) AS s FROM iceberg.mart.payments "
        "WHERE event_date >= DATE '{start}' GROUP BY 1) "
        "SELECT approx_percentile(s, 0.9) FROM t",
        ("carol", "svc_etl"),
        60_000,
    ),
    ("SHOW TABLES FROM hive.sales", ("dave",), 50),
]


def synthetic_labeled(n: int = 320, seed: int = 4) -> pl.DataFrame:
    """~n rows over 8 days: repeated templates with moving date literals, a few users and
    tables, heavy rows, plus a query seen only in the test window."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        d = int(rng.integers(8))
        day = START + timedelta(days=d)
        sql, users, cpu_median = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
        if d >= 6 and i % 9 == 0:
            sql = f"SELECT {TEST_ONLY_COLUMN}, id FROM hive.sales.orders WHERE ds = '{{day}}'"
        user = users[int(rng.integers(len(users)))]
        created = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
            seconds=int(rng.integers(86_400))
        )
        cpu = int(rng.lognormal(math.log(cpu_median), 1.0))
        memory = int(rng.lognormal(math.log(2**28), 2.0))
        rows.append(
            raw_row(
                query_id=f"{day:%Y%m%d}_000000_{i:05d}_synth",
                query=sql.format(day=day, start=day - timedelta(days=7)),
                user=user,
                source=("superset", "airflow", "trino-cli", None)[i % 4],
                catalog=("hive", "iceberg", None)[i % 3],
                schema="sales",
                session_properties='{"query_max_memory": "10GB"}' if i % 5 == 0 else "{}",
                create_time=created,
                cpu_time_millis=cpu,
                peak_memory_bytes=memory,
            )
        )
    frame = raw_frame(rows).sort("create_time")
    return frame.with_columns(
        is_heavy=(pl.col("cpu_time_millis") >= 300_000) | (pl.col("peak_memory_bytes") > 10 * GIB),
        event_date=pl.col("create_time").dt.date(),
    )


def split(labeled: pl.DataFrame) -> dict[str, pl.DataFrame]:
    date = pl.col("event_date")
    return {
        "train": labeled.filter(date <= TRAIN_END),
        "val": labeled.filter((date > TRAIN_END) & (date <= VAL_END)),
        "test": labeled.filter(date > VAL_END),
    }


# small thresholds: the synthetic test log has a few dozen queries per user
CONVENTIONS = {
    "partition_min_templates": 1,
    "service_min_queries": 5,
    "service_repeat_share": 0.5,
    "service_user_pattern": None,
}


def run(labeled: Any, splits: Mapping[str, Any], **options: Any) -> FeatureSet:
    """featurize with this module's settings; ``options`` add to them (e.g. a sink)."""
    return featurize(
        labeled,
        splits,
        train_end=TRAIN_END,
        vocab_size=50,
        prior_weight=WEIGHT,
        parity_sample=200,
        seed=1,
        conventions=CONVENTIONS,
        workers=1,
        **options,
    )


@pytest.fixture(scope="module")
def labeled() -> pl.DataFrame:
    frame = synthetic_labeled()
    assert frame["event_date"].n_unique() == 8
    assert frame["is_heavy"].sum() > 10
    assert frame["query_id"].is_unique().all()
    return frame


@pytest.fixture(scope="module")
def splits(labeled: pl.DataFrame) -> dict[str, pl.DataFrame]:
    return split(labeled)


@pytest.fixture(scope="module")
def result(labeled: pl.DataFrame, splits: dict[str, pl.DataFrame]) -> FeatureSet:
    return run(labeled, splits)


def serving(result: FeatureSet) -> QueryFeaturizer:
    return QueryFeaturizer(
        FeatureExtractor(result.conventions),
        result.vocabulary,
        HistoryLookup.from_frame(result.history, weight=WEIGHT),
    )


# --------------------------------------------------------------------------- the result


def test_parity_passes(result: FeatureSet, splits: dict[str, pl.DataFrame]) -> None:
    parity = result.parity
    assert parity["passed"] is True
    assert parity["mismatches"] == 0
    assert parity["rows_checked"] == splits["val"].height + splits["test"].height > 0
    assert parity["features_checked"] == len(FEATURE_NAMES) + 1 == 103


@pytest.mark.parametrize("name", ["train", "val", "test"])
def test_matrix_layout(result: FeatureSet, splits: dict[str, pl.DataFrame], name: str) -> None:
    matrix = result.matrices[name]
    assert len(FEATURE_NAMES) == 102
    assert matrix.columns == [
        "query_id",
        "event_date",
        "is_heavy",
        "cpu_time_millis",
        "peak_memory_bytes",
        *FEATURE_NAMES,
        "tfidf_index",
        "tfidf_value",
    ]
    dense = [c for c, t in matrix.schema.items() if t == pl.Float32]
    assert dense == list(FEATURE_NAMES)
    assert matrix.schema["tfidf_index"] == pl.List(pl.Int32)
    assert matrix.schema["tfidf_value"] == pl.List(pl.Float32)
    assert matrix.height == splits[name].height > 0
    assert matrix["query_id"].to_list() == splits[name]["query_id"].to_list()
    assert matrix["is_heavy"].to_list() == splits[name]["is_heavy"].to_list()
    values = matrix.select(FEATURE_NAMES).to_numpy()
    assert np.isfinite(values).all()


@pytest.mark.parametrize("name", ["train", "val", "test"])
def test_tfidf_columns(result: FeatureSet, name: str) -> None:
    size = len(result.vocabulary)
    for index, value in zip(
        result.matrices[name]["tfidf_index"], result.matrices[name]["tfidf_value"], strict=True
    ):
        index, value = index.to_list(), value.to_numpy()
        assert len(index) == len(value)
        assert index == sorted(set(index))
        assert all(0 <= i < size for i in index)
        if index:
            assert float(np.sqrt((value.astype(np.float64) ** 2).sum())) == pytest.approx(
                1.0, abs=1e-6
            )


def test_vocabulary_is_fitted_on_the_training_split_only(
    result: FeatureSet, splits: dict[str, pl.DataFrame]
) -> None:
    vocab = result.vocabulary
    assert 0 < len(vocab) <= 50
    assert vocab.settings["documents"] == splits["train"].height
    extractor = FeatureExtractor()

    def terms(frame: pl.DataFrame) -> set[str]:
        return {
            t
            for row in frame.iter_rows(named=True)
            for t in extractor.analyze(row["query"], context_of(row)).terms
        }

    train_terms = terms(splits["train"])
    assert set(vocab.terms) <= train_terms
    assert TEST_ONLY_COLUMN in terms(splits["test"])
    assert TEST_ONLY_COLUMN not in train_terms
    assert TEST_ONLY_COLUMN not in vocab.terms
    for literal in ("2025", "06", "10gb"):
        assert not any(literal in t for t in vocab.terms)


def test_history_is_the_training_window_snapshot(result: FeatureSet, labeled: pl.DataFrame) -> None:
    history = result.history
    prior = history.filter(pl.col("kind") == "global")
    assert prior["n"].to_list() == [float(labeled.filter(pl.col("event_date") <= TRAIN_END).height)]
    assert prior["last_day"].to_list() == [float((TRAIN_END - EPOCH).days)]  # the cutoff
    assert prior["first_day"].to_list() == [float((labeled["event_date"].min() - EPOCH).days)]
    kinds = {"user", "source", "template", "table", "table_mode", "global"}
    assert set(history["kind"]) == kinds
    assert "" in set(history.filter(pl.col("kind") == "user")["key"])  # the null user
    # day by day, the tables' reads are keyed by the columns compared until the conventions
    # are learned: the same as the whole window's rows with the learned partition flag
    analyzed = with_conventions(analyze_frame(labeled, workers=1).rows, result.conventions)
    flagged = analyzed.with_columns(partition=pl.col("has_partition_predicate"))
    expected = snapshot(flagged.filter(pl.col("event_date") <= TRAIN_END), until=TRAIN_END)
    # equal up to the order of float additions: a key's reads arrive in parts (one per set
    # of columns compared) and the size prior (table "") gathers many
    assert_frame_equal(history, expected, check_exact=False, rel_tol=1e-12, abs_tol=0.0)


def test_training_rows_are_point_in_time(result: FeatureSet) -> None:
    train = result.matrices["train"]
    first = train.filter(pl.col("event_date") == START)
    assert first.height > 0
    assert (first["user_unseen"] == 1.0).all()
    assert (first["template_unseen"] == 1.0).all()
    assert (first["template_idle_days"] == RECENCY_HORIZON_DAYS).all()
    later = train.filter(pl.col("event_date") > START)
    assert (later["template_unseen"] == 0.0).any()
    # counted back from the day before the row: 0 when the template ran the day before
    assert (later["template_idle_days"] == 0.0).any()
    assert later["template_idle_days"].is_between(0.0, RECENCY_HORIZON_DAYS).all()


def test_val_and_test_see_the_same_snapshot(
    result: FeatureSet, splits: dict[str, pl.DataFrame]
) -> None:
    """History stops at the end of the training window: a user's count is the same on every
    validation and test day, and equals the snapshot's, per day of the history."""
    counts = dict(result.history.filter(pl.col("kind") == "user").select("key", "n").iter_rows())
    prior = result.history.filter(pl.col("kind") == "global").row(0, named=True)
    span = prior["last_day"] - prior["first_day"] + 1
    later = pl.concat(
        [
            result.matrices[name].with_columns(user=splits[name]["user"].fill_null(""))
            for name in ("val", "test")
        ]
    )
    assert later["event_date"].n_unique() == 4
    per_user = later.group_by("user").agg(pl.col("user_daily_count_log").unique())
    for user, values in per_user.iter_rows():
        expected = math.log1p(counts.get(user, 0.0) / span)
        assert values == [np.float32(expected)]


def test_a_later_history_end_moves_only_the_test_rows_and_the_bundle(
    result: FeatureSet, labeled: pl.DataFrame, splits: dict[str, pl.DataFrame]
) -> None:
    """history_end = the validation window's end: the bundle's snapshot (and the test rows
    scored with it) reach that day; training and validation rows are as before, and both
    still match the serving path (parity)."""
    later = run(labeled, splits, history_end=VAL_END)
    assert later.parity["passed"] is True
    assert later.parity["rows_checked"] == result.parity["rows_checked"]
    prior = later.history.filter(pl.col("kind") == "global").row(0, named=True)
    assert prior["last_day"] == float((VAL_END - EPOCH).days)
    assert prior["n"] == float(labeled.filter(pl.col("event_date") <= VAL_END).height)
    for name in ("train", "val"):
        assert_frame_equal(later.matrices[name], result.matrices[name])
    assert later.conventions == result.conventions  # learned on the training window
    test = later.matrices["test"].with_columns(user=splits["test"]["user"].fill_null(""))
    counts = dict(later.history.filter(pl.col("kind") == "user").select("key", "n").iter_rows())
    span = prior["last_day"] - prior["first_day"] + 1
    for user, values in test.group_by("user").agg(pl.col("user_daily_count_log").unique()).rows():
        assert values == [np.float32(math.log1p(counts.get(user, 0.0) / span))]
    assert not later.matrices["test"].equals(result.matrices["test"])
    with pytest.raises(ValueError, match="is before train_end"):
        run(labeled, splits, history_end=TRAIN_END - timedelta(days=1))


def test_featurize_is_deterministic(
    result: FeatureSet, labeled: pl.DataFrame, splits: dict[str, pl.DataFrame]
) -> None:
    again = run(labeled, splits)
    for name in ("train", "val", "test"):
        assert again.matrices[name].equals(result.matrices[name])
    assert again.vocabulary == result.vocabulary
    assert again.history.equals(result.history)
    assert again.parity == result.parity


def test_split_rows_must_be_labeled(labeled: pl.DataFrame, splits: dict[str, pl.DataFrame]) -> None:
    stranger = splits["val"].head(1).with_columns(query_id=pl.lit("20250605_000000_99999_ghost"))
    broken = {**splits, "val": pl.concat([splits["val"], stranger])}
    with pytest.raises(
        ValueError, match=re.escape("missing from the labeled data: {'train': 0, 'val': 1")
    ):
        run(labeled, broken)


# --------------------------------------------------------------------------- tampering


@pytest.mark.parametrize(
    ("name", "position", "feature"),
    [
        ("val", 0, "user_heavy_rate"),
        ("val", -1, "n_tokens"),
        ("test", 3, "template_idle_days"),
        ("test", -2, "table_unseen_share"),
        ("val", 5, "hour_of_day"),
    ],
)
def test_parity_names_the_tampered_row_and_feature(
    result: FeatureSet, splits: dict[str, pl.DataFrame], name: str, position: int, feature: str
) -> None:
    matrix = result.matrices[name]
    i = position % matrix.height
    tampered = matrix.with_columns(
        pl.when(pl.int_range(pl.len()) == i)
        .then(pl.col(feature) + 0.5)
        .otherwise(pl.col(feature))
        .alias(feature)
    )
    assert tampered.schema == matrix.schema
    query_id = matrix["query_id"][i]
    with pytest.raises(  # a user error: the stage prints one line, no traceback
        ParityError,
        match=re.escape(f"parity: {name} row {query_id}: feature {feature} is"),
    ):
        check_parity(
            {**result.matrices, name: tampered}, splits, serving(result), sample=200, seed=1
        )
    # the untampered matrices pass with the same featurizer
    assert check_parity(result.matrices, splits, serving(result), sample=200, seed=1)["passed"]


def test_parity_catches_a_tampered_tfidf_vector(
    result: FeatureSet, splits: dict[str, pl.DataFrame]
) -> None:
    test = result.matrices["test"]
    i = next(k for k, v in enumerate(test["tfidf_value"]) if len(v) > 1)
    tampered = test.with_columns(
        pl.when(pl.int_range(pl.len()) == i)
        .then(pl.col("tfidf_value").list.reverse())
        .otherwise(pl.col("tfidf_value"))
        .alias("tfidf_value")
    )
    if tampered["tfidf_value"][i].to_list() == test["tfidf_value"][i].to_list():
        pytest.skip("symmetric weights")  # pragma: no cover
    with pytest.raises(
        ParityError,
        match=re.escape(f"parity: test row {test['query_id'][i]}: TF-IDF vectors differ"),
    ):
        check_parity(
            {**result.matrices, "test": tampered}, splits, serving(result), sample=200, seed=1
        )


def test_parity_sample_size(result: FeatureSet, splits: dict[str, pl.DataFrame]) -> None:
    report = check_parity(result.matrices, splits, serving(result), sample=10, seed=3)
    assert report["rows_checked"] == 10  # half from validation, half from test
    report = check_parity(result.matrices, splits, serving(result), sample=1, seed=3)
    assert report["rows_checked"] == 2  # at least one row of each


# --------------------------------------------------------------------------- serving


def test_bundle_on_disk_reproduces_the_matrices(
    result: FeatureSet, splits: dict[str, pl.DataFrame], tmp_path: Path
) -> None:
    """What serving loads from files (JSON vocabulary, parquet snapshot) gives the rows."""
    result.vocabulary.to_json(tmp_path / "tfidf_vocab.json")
    write_parquet(result.history, tmp_path / "history_stats.parquet")
    result.conventions.to_json(tmp_path / "sql_conventions.json")
    featurizer = QueryFeaturizer.from_bundle(tmp_path, prior_weight=WEIGHT)
    assert featurizer.vocabulary.terms == result.vocabulary.terms
    for name in ("val", "test"):
        matrix = result.matrices[name]
        for i, row in enumerate(splits[name].iter_rows(named=True)):
            single = featurizer.featurize(row["query"], context_of(row))
            batch = matrix.row(i, named=True)
            want = np.array([batch[f] for f in FEATURE_NAMES], dtype=np.float32)
            np.testing.assert_array_equal(np.asarray(single.dense, dtype=np.float32), want)
            assert single.tfidf_index == batch["tfidf_index"]
            np.testing.assert_array_equal(
                np.asarray(single.tfidf_value, dtype=np.float32),
                np.asarray(batch["tfidf_value"], dtype=np.float32),
            )


@pytest.mark.parametrize(
    "sql",
    [
        "",
        None,
        "   \n\t ",
        ")))(((' unterminated",
        "/* never closed",
        "SELECT ;;; FROM FROM WHERE ) JOIN (",
        "\x00\x01\x02 SELECT \u2603 FROM \U0001f600",
        b"\xff\xfe\xfd SELECT 1 FROM t \xc3\x28",
        b"",
        "SELECT " + "x, " * 5000 + "1 FROM t",
        "SELECT * FROM " + "(" * 300 + "SELECT 1" + ")" * 300,
    ],
    ids=lambda s: repr(s)[:30],
)
def test_serving_never_fails(result: FeatureSet, sql: str | bytes | None) -> None:
    featurizer = serving(result)
    contexts = [
        QueryContext(),
        QueryContext(
            user="alice", catalog="hive", schema="sales", time=datetime(2025, 6, 9, tzinfo=UTC)
        ),
    ]
    for context in contexts:
        row = featurizer.featurize(sql, context)
        assert len(row.dense) == len(FEATURE_NAMES) == 102
        assert all(isinstance(v, float) and math.isfinite(v) for v in row.dense)
        assert len(row.tfidf_index) == len(row.tfidf_value)
        assert all(math.isfinite(v) for v in row.tfidf_value)
        assert isinstance(row.template, str)


def test_serving_row_layout(result: FeatureSet) -> None:
    row = serving(result).featurize(
        "SELECT region, count(*) FROM hive.sales.orders WHERE ds = '2025-06-09' GROUP BY 1",
        QueryContext(user="alice", time=datetime(2025, 6, 9, 8, tzinfo=UTC)),
    )
    assert row.tables == ["hive.sales.orders"]
    dense = dict(zip(FEATURE_NAMES, row.dense, strict=True))
    assert list(dense)[: len(BASE_NAMES)] == list(BASE_NAMES)
    assert list(dense)[len(BASE_NAMES) :] == list(HISTORY_NAMES)
    assert dense["user_unseen"] == 0.0
    assert dense["template_unseen"] == 0.0
    assert dense["table_unseen_share"] == 0.0
    assert dense["template_idle_days"] == 0.0  # ran on the history's last day
    assert row.tfidf_index


# --------------------------------------------------------------------------- helpers


def test_context_of_a_raw_row() -> None:
    created = datetime(2025, 6, 3, 7, tzinfo=UTC)
    row = raw_row(
        user="bob",
        source="airflow",
        catalog="iceberg",
        schema="mart",
        query_type="INSERT",
        create_time=created,
        session_properties='{"join_distribution_type": "BROADCAST", "n": 3}',
    )
    assert context_of(row) == QueryContext(
        user="bob",
        source="airflow",
        catalog="iceberg",
        schema="mart",
        query_type="INSERT",
        time=created,
        session_properties={"join_distribution_type": "BROADCAST", "n": "3"},
    )
    assert context_of({**row, "session_properties": "not json"}).session_properties == {}
    assert context_of({**row, "session_properties": None}).session_properties == {}


def test_analyze_frame(labeled: pl.DataFrame) -> None:
    sample = pl.concat([labeled.head(25), labeled.head(5)])  # five texts twice
    analyzed = analyze_frame(sample, workers=3)
    rows, terms = analyzed.rows, analyzed.terms
    assert rows.height == sample.height
    analysis = [
        *BASE_NAMES, "tables", "template", "compared", "dated", "days_read", "data_read", "text_key"
    ]  # fmt: skip
    assert rows.columns == [*sample.columns, *analysis]
    assert rows["days_read"].to_list() == [
        days_read(list(base)) for base in rows.select(BASE_NAMES).iter_rows()
    ]
    assert terms.columns == ["text_key", "term_keys", "term_counts"]
    texts = sample["query"].unique(maintain_order=True).to_list()
    assert terms["text_key"].to_list() == [text_key(t) for t in texts]
    assert terms["text_key"].n_unique() == len(texts)  # 128 bits: no two texts share a key
    by_key = {
        key: dict(zip(k, c, strict=True))
        for key, k, c in zip(
            terms["text_key"],
            terms["term_keys"].to_list(),
            terms["term_counts"].to_list(),
            strict=True,
        )
    }
    extractor = FeatureExtractor()
    for row in rows.iter_rows(named=True):
        a = extractor.analyze(row["query"], context_of(row))
        assert [row[n] for n in BASE_NAMES] == pytest.approx(a.base, rel=1e-6)
        assert row["tables"] == a.tables
        assert row["template"] == a.template
        assert row["text_key"] == text_key(row["query"])
        assert by_key[row["text_key"]] == a.terms
    # chunking does not change anything
    again = analyze_frame(sample, workers=1)
    assert again.rows.equals(rows)
    assert again.terms.equals(terms)
    empty = analyze_frame(sample.head(0), workers=2)
    assert empty.rows.height == empty.terms.height == 0
    assert empty.rows.columns == rows.columns
    assert empty.terms.columns == terms.columns


def test_only_full_rows_have_base_features_and_terms(labeled: pl.DataFrame) -> None:
    sample = labeled.head(40)
    full = pl.Series([i % 2 == 0 for i in range(sample.height)])
    analyzed = analyze_frame(sample, workers=1, full=full)
    assert analyzed.rows.filter(~full)["n_tokens"].is_nan().all()
    assert not analyzed.rows.filter(full)["n_tokens"].is_nan().any()
    assert analyzed.rows["template"].null_count() == 0  # history needs every row's keys
    assert analyzed.rows.filter(~full)["text_key"].is_null().all()
    assert set(analyzed.terms["text_key"]) == {text_key(q) for q in sample.filter(full)["query"]}


def test_templates_ignore_date_literals(labeled: pl.DataFrame) -> None:
    analyzed = analyze_frame(labeled, workers=1).rows
    daily = analyzed.filter(pl.col("query").str.starts_with("SELECT region"))
    assert daily["query"].n_unique() > 1  # different date literals...
    assert daily["template"].n_unique() == 1  # ...one template


def test_vocabulary_round_trip_in_bundle(result: FeatureSet, tmp_path: Path) -> None:
    result.vocabulary.to_json(tmp_path / "v.json")
    assert TfidfVocabulary.from_json(tmp_path / "v.json").terms == result.vocabulary.terms


@pytest.mark.parametrize(
    ("lists", "inner"),
    [
        ([["b", "a"], [], ["c", "c", "a"]], pl.String),
        ([[3, 1, 2], [], [7]], pl.Int32),
        ([[0.5, 0.25]], pl.Float32),
        ([[], []], pl.String),
        ([], pl.String),
    ],
)
def test_list_series_is_what_polars_builds_from_nested_lists(lists: list, inner: type) -> None:
    built = list_series(lists, inner)
    assert built.dtype == pl.List(inner)
    assert built.to_list() == lists  # order inside a list kept, [] stays []
    assert built.equals(pl.Series(lists, dtype=pl.List(inner)), check_names=False)


def test_list_series_keeps_row_order_over_many_rows() -> None:
    rng = np.random.default_rng(3)
    lists = [[int(v) for v in rng.integers(0, 50, rng.integers(0, 6))] for _ in range(5_000)]
    assert list_series(lists, pl.Int32).to_list() == lists


def test_each_row_gets_the_tfidf_vector_of_its_own_terms(labeled: pl.DataFrame) -> None:
    """Each distinct text is weighed once and joined back: every row, repeats included,
    gets exactly the vector :meth:`TfidfVocabulary.transform` gives its own terms."""
    analyzed = analyze_frame(labeled, workers=1)
    rows = analyzed.rows
    assert rows["query"].n_unique() < rows.height  # the data has repeats
    vocab = fit_on(rows, analyzed.terms, size=50)
    block = with_tfidf(rows, tfidf_vectors(analyzed.terms, vocab))
    assert block.columns == ["tfidf_index", "tfidf_value"]
    assert block.height == rows.height
    extractor = FeatureExtractor()
    for row, index, value in zip(
        rows.iter_rows(named=True),
        block["tfidf_index"].to_list(),
        block["tfidf_value"].to_list(),
        strict=True,
    ):
        want_index, want_value = vocab.transform(
            extractor.analyze(row["query"], context_of(row)).terms
        )
        assert index == want_index
        assert value == [float(np.float32(v)) for v in want_value]


def test_the_vocabulary_counts_every_row_as_a_document(labeled: pl.DataFrame) -> None:
    """Fitting on distinct texts weighted by their rows is fitting on every row."""
    analyzed = analyze_frame(labeled, workers=1)
    extractor = FeatureExtractor()
    per_row = [
        extractor.analyze(row["query"], context_of(row)).terms
        for row in analyzed.rows.iter_rows(named=True)
    ]
    for size in (5, 20, 500):
        weighted = fit_on(analyzed.rows, analyzed.terms, size=size)
        plain = fit_vocabulary(per_row, size=size)
        assert weighted.terms == plain.terms
        assert weighted.idf == plain.idf
        assert weighted.settings == plain.settings


# --------------------------------------------------------------------------- day by day


def test_history_from_the_sums_of_parts_is_the_whole_history(
    result: FeatureSet, labeled: pl.DataFrame
) -> None:
    """Day by day, a table's reads are summed per set of columns compared (the partition
    columns are learned only at the end); folded by the learned conventions they give the
    history of the whole window's rows with their partition flag."""
    rows = with_conventions(analyze_frame(labeled, workers=1).rows, result.conventions)
    whole = snapshot(
        rows.with_columns(partition=pl.col("has_partition_predicate")), until=TRAIN_END
    )
    modes = whole.filter(pl.col("kind") == "table_mode")["key"].str.slice(-1)
    assert set(modes) == {"p", "f"}  # both ways of reading a table occur
    predicate = result.conventions.partition_predicate
    parts = rows.partition_by("event_date", maintain_order=True)
    assert len(parts) == 8
    sums = resolve_partitions(pl.concat([daily_sums(p) for p in parts]), predicate)
    # equal to rounding: a key's reads arrive in parts (one per set of columns compared, and
    # the size prior, table "", gathers many), added in another order
    got = snapshot_of_sums(sums, until=TRAIN_END)
    assert_frame_equal(got, whole, check_exact=False, rel_tol=1e-12, abs_tol=0.0)
    # a day cut in two parts still counts once (its sums added in another order: to rounding)
    halves = [daily_sums(rows.head(7)), daily_sums(rows.slice(7))]
    got = snapshot_of_sums(resolve_partitions(pl.concat(halves), predicate), until=TRAIN_END)
    assert_frame_equal(got, whole, check_exact=False, rel_tol=1e-12)
    with pytest.raises(ValueError, match="resolve_partitions"):
        snapshot(rows, until=TRAIN_END)  # reads not folded yet: refused, never mixed up


def test_featurize_day_by_day_into_a_sink_gives_the_same_result(
    result: FeatureSet, labeled: pl.DataFrame, splits: dict[str, pl.DataFrame]
) -> None:
    sunk: dict[str, pl.DataFrame] = {}
    again = run(
        labeled.partition_by("event_date", maintain_order=True),
        {name: frame.lazy() for name, frame in splits.items()},
        sink=sunk.__setitem__,
    )
    assert again.matrices == {}
    assert list(sunk) == ["train", "val", "test"]
    for name, matrix in sunk.items():
        assert matrix.equals(result.matrices[name])
        assert again.rows[name] == matrix.height
    assert again.vocabulary == result.vocabulary
    assert again.history.equals(result.history)
    assert again.conventions.to_payload() == result.conventions.to_payload()
    assert again.parity == result.parity
    assert again.context_absent == result.context_absent


def test_featurize_in_small_batches_out_of_time_order_gives_the_same_result(
    result: FeatureSet,
    labeled: pl.DataFrame,
    splits: dict[str, pl.DataFrame],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Split rows go through history, TF-IDF and parity in batches that read back only the
    day parts they cover; a split out of time order costs more reads, never other rows.
    The scratch folder holding the parts is gone afterwards."""
    monkeypatch.setattr(featurize_module, "BATCH_ROWS", 7)
    shuffled = {**splits, "val": splits["val"].reverse()}
    again = run(
        labeled.partition_by("event_date", maintain_order=True),
        {name: frame.lazy() for name, frame in shuffled.items()},
        scratch=tmp_path,
    )
    assert again.matrices["train"].equals(result.matrices["train"])
    assert again.matrices["val"].equals(result.matrices["val"].reverse())
    assert again.matrices["test"].equals(result.matrices["test"])
    assert again.vocabulary == result.vocabulary
    assert again.parity == result.parity
    assert list(tmp_path.iterdir()) == []


def test_document_frequencies_of_parts_add_up(labeled: pl.DataFrame) -> None:
    analyzed = analyze_frame(labeled, workers=1)
    rows, terms = analyzed.rows, analyzed.terms
    halves = [document_frequencies(rows.head(100), terms), document_frequencies(rows[100:], terms)]
    for size in (5, 500):
        assert vocabulary_of(halves, documents=rows.height, size=size) == fit_on(
            rows, terms, size=size
        )
