"""The serving side: a real bundle (featurize, a trained model, ONNX export) answers one query
at a time exactly as the batch matrices score, zero-cost statements skip the model, and a bad
bundle is a one-line error."""

from __future__ import annotations

import collections
import dataclasses
import gc
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from query_predictor.cli import main
from query_predictor.core.bundle import sha256_file
from query_predictor.core.features import QueryContext
from query_predictor.core.onnx_model import HeavyQueryModel, ModelError
from query_predictor.params import parse_params
from query_predictor.service.predictor import (
    BUNDLE_FILES,
    MODEL,
    NO_SQL_STAGE,
    SWEEP_EVERY,
    ZERO_COST,
    Predictor,
    TextCache,
    _Known,
    readable,
)
from query_predictor.storage import write_json, write_parquet
from query_predictor.training.featurize import context_of
from query_predictor.training.model import load_features

from .test_export import export, train
from .test_featurize import WEIGHT, run, split, synthetic_labeled

THRESHOLD = 0.4


def build_bundle(directory: Path) -> dict[str, pl.DataFrame]:
    """Write a model bundle from the synthetic log to ``directory``; return the split rows it
    was built from (test_service.py serves the same bundle)."""
    labeled = synthetic_labeled(n=600, seed=9)
    splits = split(labeled)
    result = run(labeled, splits)
    for name, matrix in result.matrices.items():
        write_parquet(matrix, directory / f"{name}.parquet")
    result.vocabulary.to_json(directory / "tfidf_vocab.json")
    write_parquet(result.history, directory / "history_stats.parquet")
    result.conventions.to_json(directory / "sql_conventions.json")
    write_json(
        directory / "zero_cost_categories.json",
        {"format_version": 1, "small_limit": 1000, "validated": ["SHOW", "CONSTANT_SELECT"]},
    )
    x, y = load_features(directory / "train.parquet", n_terms=len(result.vocabulary))
    params = parse_params({"features": {"history_prior_weight": WEIGHT}})
    model = train(x, y, trees=30)
    export(directory, model, list(result.vocabulary.terms), threshold=THRESHOLD, params=params)
    return splits


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, pl.DataFrame]]:
    """A model bundle from the synthetic log, and the split rows it was built from."""
    directory = tmp_path_factory.mktemp("bundle")
    return directory, build_bundle(directory)


@pytest.fixture(scope="module")
def predictor(built: tuple[Path, dict[str, pl.DataFrame]]) -> Predictor:
    return Predictor.from_bundle(built[0])


def test_one_query_scores_as_its_batch_row(
    built: tuple[Path, dict[str, pl.DataFrame]], predictor: Predictor
) -> None:
    """Serving parity: featurizer and model, one query at a time, give each test row the
    probability the model gives its row of the batch matrix."""
    directory, splits = built
    model = HeavyQueryModel.load(directory / "model.onnx")
    x, _ = load_features(directory / "test.parquet", n_terms=len(predictor.featurizer.vocabulary))
    scores, decisions = model.predict(x)
    rows = splits["test"]
    assert rows.height == len(scores) > 50
    scored = 0
    for i, row in enumerate(rows.iter_rows(named=True)):
        prediction = predictor.predict(row["query"], context_of(row))
        if prediction.stage == ZERO_COST:  # the pipeline's split drops these rows
            assert prediction.category in predictor.zero_cost
            continue
        scored += 1
        assert prediction.probability == float(scores[i])
        assert prediction.heavy is bool(decisions[i])
        assert prediction.heavy is bool(prediction.probability >= np.float32(THRESHOLD))
    assert scored > 50


@pytest.mark.parametrize(
    ("sql", "category"),
    [
        ("SHOW TABLES FROM hive.sales", "SHOW"),
        ("/* health check */ SELECT 1", "CONSTANT_SELECT"),
        (b"show catalogs", "SHOW"),
    ],
)
def test_zero_cost_statements_skip_the_model(
    built: tuple[Path, dict[str, pl.DataFrame]],
    predictor: Predictor,
    sql: str | bytes,
    category: str,
) -> None:
    prediction = predictor.predict(sql, QueryContext(user="alice"))
    model_sha256 = sha256_file(built[0] / "model.onnx")
    assert prediction.as_dict() == {
        "heavy": False,
        "probability": 0.0,
        "stage": ZERO_COST,
        "threshold": THRESHOLD,
        "model_version": f"heavy-query-classifier@{model_sha256[:12]}",
        "category": category,
        "bands": None,  # a zero-cost statement has no cost to band
    }


@pytest.mark.parametrize(
    "sql",
    [
        "DESCRIBE hive.sales.orders",  # a candidate category this bundle did not validate
        "SELECT * FROM hive.sales.orders o JOIN hive.sales.items i ON o.id = i.order_id",
        "SELEC broken ((( '",
        b"SELECT '\xff\xfe' FROM t",
        "SELECT " + "x, " * 100_000 + "1 FROM t",
    ],
)
def test_any_other_statement_goes_through_the_model(predictor: Predictor, sql) -> None:
    prediction = predictor.predict(sql)
    assert prediction.stage == MODEL
    assert 0.0 <= prediction.probability <= 1.0
    assert prediction.category != "SHOW"


def test_the_cli_prints_one_json_object(
    built: tuple[Path, dict[str, pl.DataFrame]], capsys: pytest.CaptureFixture[str]
) -> None:
    directory, _ = built
    sql = "SELECT region, sum(amount) FROM hive.sales.orders GROUP BY 1"
    code = main(["predict", "--sql", sql, "--user", "svc_etl", "--models", str(directory)])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {
        "heavy",
        "probability",
        "stage",
        "threshold",
        "model_version",
        "category",
        "bands",
    }
    assert printed["stage"] == MODEL
    assert printed["threshold"] == THRESHOLD
    bands = printed["bands"]
    assert bands["basis"] in ("template", "table", "user", "global") and bands["runs"] > 0
    for cost in ("cpu_seconds", "peak_memory_gib"):
        assert 0.0 <= bands[cost]["p50"] <= bands[cost]["p90"]


def test_the_cli_reads_the_statement_from_stdin(
    built: tuple[Path, dict[str, pl.DataFrame]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"show schemas from hive")))
    assert main(["predict", "--sql", "-", "--models", str(built[0])]) == 0
    assert json.loads(capsys.readouterr().out)["stage"] == ZERO_COST


@pytest.mark.parametrize(
    "stdin",
    [
        b"SELECT region FROM hive.sales.orders WHERE note = '\xff\xfe caf\xe9'",
        b"-- only a comment \xff\n",
        b"",
    ],
)
def test_the_cli_answers_any_bytes_on_stdin(
    built: tuple[Path, dict[str, pl.DataFrame]], stdin: bytes
) -> None:
    """Bytes that are not UTF-8 are replaced (U+FFFD) and scored; a statement with nothing
    to run is answered without the model: one JSON object, exit 0, never a traceback."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "query_predictor.cli",
            "predict",
            "--sql",
            "-",
            "--models",
            str(built[0]),
        ],
        input=stdin,
        capture_output=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    printed = json.loads(result.stdout)
    assert printed["stage"] == (MODEL if stdin.startswith(b"SELECT") else NO_SQL_STAGE)


def test_the_cli_answers_undecodable_bytes_in_the_argument(
    built: tuple[Path, dict[str, pl.DataFrame]],
) -> None:
    """The byte 0xff in ``--sql`` is read as U+FFFD: the same answer as for that text."""
    answers = []
    for sql in (
        "SELECT region FROM t WHERE note = '\xff'".encode("latin-1"),
        "SELECT region FROM t WHERE note = '\ufffd'".encode(),
    ):
        command = [sys.executable, "-m", "query_predictor.cli", "predict", "--sql", sql]
        result = subprocess.run([*command, "--models", str(built[0])], capture_output=True)
        assert result.returncode == 0, result.stderr
        answers.append(json.loads(result.stdout))
    assert answers[0] == answers[1]
    assert answers[0]["stage"] == MODEL


@pytest.mark.parametrize("sql", ["", "   ", "-- nothing", "/* a */ ; /* b */", None])
def test_a_statement_with_nothing_to_run_skips_the_model(predictor: Predictor, sql) -> None:
    prediction = predictor.predict(sql)
    assert (prediction.stage, prediction.heavy, prediction.probability) == (
        NO_SQL_STAGE,
        False,
        0.0,
    )
    batch = predictor.predict_many([sql, "SELECT 1 FROM hive.sales.orders"], [QueryContext()] * 2)
    assert batch.stage == [NO_SQL_STAGE, MODEL]
    assert np.isnan(batch.dense[0]).all()


def copy_bundle(built: tuple[Path, dict[str, pl.DataFrame]], tmp_path: Path) -> Path:
    for name in BUNDLE_FILES:
        shutil.copy(built[0] / name, tmp_path / name)
    return tmp_path


@pytest.mark.parametrize("name", BUNDLE_FILES)
def test_a_missing_file_is_named(
    built: tuple[Path, dict[str, pl.DataFrame]],
    tmp_path: Path,
    name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory = copy_bundle(built, tmp_path)
    (directory / name).unlink()
    with pytest.raises(ModelError, match=f"{name} missing"):
        Predictor.from_bundle(directory)
    assert main(["predict", "--sql", "SELECT 1", "--models", str(directory)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("query-predictor predict: error:")
    assert name in error
    assert "Traceback" not in error


def test_a_bundle_from_an_older_export_says_what_to_rerun(
    built: tuple[Path, dict[str, pl.DataFrame]], tmp_path: Path
) -> None:
    directory = copy_bundle(built, tmp_path)
    metadata = json.loads((directory / "metadata.json").read_text())
    del metadata["featurizer"]
    write_json(directory / "metadata.json", metadata)
    with pytest.raises(ModelError, match=r"featurizer: Field required.*rerun `dvc repro export`"):
        Predictor.from_bundle(directory)


def test_files_of_different_runs_do_not_load(
    built: tuple[Path, dict[str, pl.DataFrame]], tmp_path: Path
) -> None:
    directory = copy_bundle(built, tmp_path)
    vocab = json.loads((directory / "tfidf_vocab.json").read_text())
    vocab["terms"], vocab["idf"] = vocab["terms"][:-1], vocab["idf"][:-1]
    write_json(directory / "tfidf_vocab.json", vocab)
    with pytest.raises(ModelError, match=r"tfidf_vocab\.json does not belong .* two runs"):
        Predictor.from_bundle(directory)
    rehash(directory, "tfidf_vocab.json")  # even if the hashes agreed, the widths do not
    with pytest.raises(ModelError, match="different runs"):
        Predictor.from_bundle(directory)


def rehash(directory: Path, name: str) -> None:
    """Record ``name``'s current sha256 in the metadata, as if export had seen this file."""
    metadata = json.loads((directory / "metadata.json").read_text())
    metadata["files"][name] = sha256_file(directory / name)
    write_json(directory / "metadata.json", metadata)


def test_a_vocabulary_of_the_same_size_from_another_run_is_refused(
    built: tuple[Path, dict[str, pl.DataFrame]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The interrupted run: featurize refitted the vocabulary (same size, other terms), train
    and export never ran. The model would read TF-IDF columns at the wrong positions."""
    directory = copy_bundle(built, tmp_path)
    vocab = json.loads((directory / "tfidf_vocab.json").read_text())
    order = sorted(range(len(vocab["terms"])), key=lambda i: vocab["terms"][i], reverse=True)
    vocab["terms"] = [vocab["terms"][i] for i in order]
    vocab["idf"] = [vocab["idf"][i] for i in order]
    write_json(directory / "tfidf_vocab.json", vocab)
    with pytest.raises(ModelError, match=r"tfidf_vocab\.json does not belong to this bundle"):
        Predictor.from_bundle(directory)
    assert main(["predict", "--sql", "SELECT 1", "--models", str(directory)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "tfidf_vocab.json" in error


@pytest.mark.parametrize("name", ["history_stats.parquet", "zero_cost_categories.json"])
def test_any_file_from_another_run_is_named(
    built: tuple[Path, dict[str, pl.DataFrame]], tmp_path: Path, name: str
) -> None:
    directory = copy_bundle(built, tmp_path)
    with (directory / name).open("ab") as handle:  # any other bytes: another run's file
        handle.write(b"\n")
    with pytest.raises(ModelError, match=rf"{name} does not belong to this bundle"):
        Predictor.from_bundle(directory)


@pytest.mark.parametrize("metadata", ["42", '{"threshold": "abc"}'])
def test_serve_refuses_bad_metadata_before_listening(
    built: tuple[Path, dict[str, pl.DataFrame]],
    tmp_path: Path,
    metadata: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory = copy_bundle(built, tmp_path)
    (directory / "metadata.json").write_text(metadata)
    assert main(["serve", "--models", str(directory), "--port", "0"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("query-predictor serve: error:") and error.count("\n") == 1
    assert "metadata.json" in error and "listening" not in error


@pytest.mark.parametrize(
    "payload",
    ["not json", json.dumps({"validated": ["SHOW"]}), json.dumps([1, 2])],
)
def test_a_broken_zero_cost_file_is_named(
    built: tuple[Path, dict[str, pl.DataFrame]], tmp_path: Path, payload: str
) -> None:
    directory = copy_bundle(built, tmp_path)
    (directory / "zero_cost_categories.json").write_text(payload)
    rehash(directory, "zero_cost_categories.json")
    with pytest.raises(ModelError, match=r"zero_cost_categories\.json is not the zero_cost"):
        Predictor.from_bundle(directory)


def test_predict_many_is_predict_of_each_statement(
    built: tuple[Path, dict[str, pl.DataFrame]], predictor: Predictor
) -> None:
    rows = pl.concat([built[1]["test"], built[1]["val"].head(40), built[1]["test"].head(30)])
    statements = [*rows["query"].to_list(), "SHOW TABLES", None, b"SELECT '\xff' FROM t"]
    contexts = [*(context_of(r) for r in rows.iter_rows(named=True)), *[QueryContext()] * 3]
    many = predictor.predict_many(statements, contexts)
    assert len(many.stage) == len(statements) == many.dense.shape[0]
    for i, (sql, context) in enumerate(zip(statements, contexts, strict=True)):
        one = predictor.predict(sql, context)
        assert (many.stage[i], many.category[i]) == (one.stage, one.category)
        assert float(many.probability[i]) == one.probability
        assert bool(many.heavy[i]) is one.heavy
        assert bool(np.isnan(many.dense[i]).all()) is (one.stage != MODEL)


def test_predict_batch_is_predict_of_each_statement_to_the_bit(
    built: tuple[Path, dict[str, pl.DataFrame]], predictor: Predictor
) -> None:
    """A server scores the calls that arrive together in one batch: every answer, bands
    included, is exactly the one the statement gets alone, whatever else is in the batch
    (statements the model scores, zero-cost and empty ones, a text twice in two contexts)."""
    _, splits = built
    rows = list(splits["test"].head(50).iter_rows(named=True))
    statements = [r["query"] for r in rows] + ["SHOW TABLES", "-- nothing", rows[0]["query"]]
    contexts = [context_of(r) for r in rows] + [QueryContext()] * 2 + [context_of(rows[1])]
    pairs = list(zip(statements, contexts, strict=True))
    alone = [dataclasses.replace(predictor).predict(s, c) for s, c in pairs]
    assert {a.stage for a in alone} == {MODEL, ZERO_COST, NO_SQL_STAGE}
    for bands in (True, False):
        batch = dataclasses.replace(predictor).predict_batch(pairs, bands=bands)
        assert batch == [a if bands else dataclasses.replace(a, bands=None) for a in alone]
    assert dataclasses.replace(predictor).predict_batch([]) == []


def test_predict_many_needs_a_context_per_statement(predictor: Predictor) -> None:
    with pytest.raises(ValueError, match="2 statements but 1 contexts"):
        predictor.predict_many(["SELECT 1", "SELECT 2"], [QueryContext()])


def test_the_statement_cache_changes_no_answer(
    built: tuple[Path, dict[str, pl.DataFrame]], predictor: Predictor
) -> None:
    """A text that comes again is answered from its kept analysis: every answer, with any
    context (another user, catalog, time), is the one without a cache; only texts are kept."""
    _, splits = built
    rows = list(splits["test"].head(60).iter_rows(named=True))
    uncached = dataclasses.replace(predictor, statement_cache=0)
    cached = dataclasses.replace(predictor)
    assert len(cached.cache) == 0 and cached.cache is not predictor.cache
    others = [*rows[1:], rows[0]]  # each text again, in the context of another row
    for row, other in [*zip(rows, rows, strict=True), *zip(rows, others, strict=True)]:
        context = context_of(other)
        expected = uncached.predict(row["query"], context)
        assert cached.predict(row["query"], context) == expected
        # without the bands (a router that sends no resource estimate): the rest the same
        without = cached.predict(row["query"], context, bands=False)
        assert without == dataclasses.replace(expected, bands=None)
    distinct = len({readable(r["query"]) for r in rows})
    assert len(cached.cache) == distinct and cached.cache.hits == 4 * len(rows) - distinct
    assert len(uncached.cache) == 0 and uncached.cache.hits == 0


def test_the_statement_cache_holds_nothing_the_garbage_collector_tracks(
    built: tuple[Path, dict[str, pl.DataFrame]], predictor: Predictor
) -> None:
    """Kept texts must not lengthen a collection's pause: once collected, no kept record is
    tracked (a dataclass, a named tuple, a dict, a set or a list in it would keep it so), and
    a record read back predicts exactly what the analysis it came from does."""
    _, splits = built
    cached = dataclasses.replace(predictor)
    texts = [readable(sql) for sql in splits["test"]["query"].head(60)]
    for text in texts:
        cached.predict(text, QueryContext(user="alice"))
    records = [cached.cache.get(text) for text in dict.fromkeys(texts)]
    # one pass untracks them all: a nested tuple would take a pass per level
    gc.collect()
    assert any(len(r) > 2 for r in records)  # some went through the model
    assert not [r for r in records if gc.is_tracked(r)]
    for text, record in zip(dict.fromkeys(texts), records, strict=True):
        known = _Known.from_record(record)
        if known.prepared is not None:
            assert known.prepared == cached.featurizer.prepare(text)
            assert np.array_equal(known.columns, record[2]) and known.weights is record[3]


def test_kept_records_are_untracked_without_waiting_for_the_collector(
    built: tuple[Path, dict[str, pl.DataFrame]], predictor: Predictor
) -> None:
    """The collector's own pass over new objects is due only after 700 allocations net of
    deallocations, which a full cache (a record freed for each one kept) may not reach for
    thousands of requests: the cache runs it every SWEEP_EVERY records. With the automatic
    collector off, every record kept before the last SWEEP_EVERY is untracked, to the last
    nested tuple, by those passes alone (one pass each)."""
    _, splits = built
    cached = dataclasses.replace(predictor)
    statements = list(dict.fromkeys(readable(sql) for sql in splits["test"]["query"]))
    # distinct texts (each kept apart), as many as needed: the split's, numbered
    texts = [f"{statements[i % len(statements)]}\n-- {i}" for i in range(3 * SWEEP_EVERY + 5)]

    def tracked(record: Any) -> list[Any]:
        inner = [t for item in record if isinstance(item, tuple) for t in tracked(item)]
        return [record, *inner] if gc.is_tracked(record) else inner

    gc.collect()
    gc.disable()
    try:
        for text in texts:
            cached.predict(text, QueryContext(user="alice"))
        records = [cached.cache.get(text) for text in texts]
        swept, unswept = records[: 3 * SWEEP_EVERY], records[3 * SWEEP_EVERY :]
        assert any(len(r) > 2 for r in swept)  # some went through the model
        assert [t for r in swept for t in tracked(r)] == []
        assert all(tracked(r) for r in unswept if len(r) > 2)  # no pass over them yet
    finally:
        gc.enable()


def test_predictions_leave_nothing_tracked_behind_one_pass(
    built: tuple[Path, dict[str, pl.DataFrame]], predictor: Predictor
) -> None:
    """What a prediction keeps (the cached records, the caches of tables read and of codes)
    is untracked by one pass of the collector, so a worker's later passes, and the full
    ones most of all, walk only what a few requests allocated, however many it answered.
    A nested tuple kept anywhere stays tracked into the older generations: each distinct
    set of tables read left one behind, thousands per worker (docs/serving.md)."""
    _, splits = built
    cached = dataclasses.replace(predictor)
    texts = list(dict.fromkeys(readable(sql) for sql in splits["test"]["query"]))
    # each statement in 30 sessions: the tables it names resolve 30 ways
    contexts = [QueryContext(user="alice", catalog=f"c{i}", schema="s") for i in range(30)]
    gc.collect()
    gc.freeze()  # as a worker does once its bundle is loaded (app.settle_heap)
    gc.disable()
    try:
        for context in contexts:
            for text in texts:
                cached.predict(text, context)
        gc.collect(0)
        left = gc.get_objects()  # tracked, not frozen
        assert len(texts) * len(contexts) > 300 and len(cached.cache) > 5
        assert len(left) < 50, collections.Counter(type(o).__name__ for o in left).most_common(5)
    finally:
        gc.enable()
        gc.unfreeze()


def test_a_text_whose_record_could_not_be_read_back_is_not_kept(predictor: Predictor) -> None:
    """A record joins the strings of a field with NUL: a text with a NUL in an identifier
    is predicted as any other, and not kept (its record would not read back the same)."""
    cached = dataclasses.replace(predictor)
    uncached = dataclasses.replace(predictor, statement_cache=0)
    context = QueryContext(user="alice")
    plain = "SELECT a, id FROM hive.sales.orders"
    for text in ['SELECT "a\x00b", id FROM hive.sales.orders', plain]:
        assert cached.predict(text, context) == uncached.predict(text, context)
    assert len(cached.cache) == 1 and cached.cache.get(plain)


def test_the_statement_cache_is_bounded() -> None:
    """Least recently used out first, past ``entries`` or ``chars``; a text longer than
    ``chars // 64`` is never kept; ``entries=0`` keeps nothing."""
    known = _Known("OTHER", MODEL, None)
    cache = TextCache(entries=3, chars=6400)
    for text in ["a", "b", "c"]:
        cache.put(text, known)
    assert cache.get("a") is known  # now the most recent
    cache.put("d", known)
    assert [cache.get(t) is not None for t in "abcd"] == [True, False, True, True]
    cache.put("x" * 101, known)  # longer than 6400 // 64
    assert cache.get("x" * 101) is None and len(cache) == 3
    by_chars = TextCache(entries=100, chars=640)
    texts = [f"{i:010d}" for i in range(70)]  # 700 characters in all
    for text in texts:
        by_chars.put(text, known)
    assert len(by_chars) == 64
    assert by_chars.get(texts[5]) is None and by_chars.get(texts[6]) is known
    none = TextCache(entries=0)
    none.put("a", known)
    assert none.get("a") is None and len(none) == 0
