"""``params.yaml`` parsed into typed sections; every problem named by its dotted key."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pydantic
import pytest

from query_predictor.params import (
    DataLoading,
    Filters,
    Params,
    ParamsError,
    Synth,
    load_params,
    parse_params,
)

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- the repository file


def test_repository_params_yaml_has_the_documented_values() -> None:
    params = load_params(REPO / "params.yaml")
    data, model = params.data_loading, params.model
    assert data.cpu_threshold_seconds == 300.0
    assert data.memory_threshold_gb == 10.0
    assert data.sample_fraction == 1.0
    assert "EXCEEDED_LOCAL_MEMORY_LIMIT" in data.resource_error_codes
    assert "QUERY_QUEUE_FULL" not in data.resource_error_codes
    assert params.boundary_sampling.balance_ratio == 5.0
    assert params.boundary_sampling.max_boost == 2.0
    assert params.boundary_sampling.min_multiplier == 0.05
    assert params.features.base_feature_count == 78
    assert params.features.historical_feature_count == 24
    assert params.features.tfidf_vocab_size == 1000
    assert model.n_estimators == 600
    assert model.early_stopping_min_delta == 0.0002
    assert model.cv_folds == 3
    assert model.cv_split == "day"
    assert model.cost_fn == 100.0
    assert model.cost_fp == 1.0
    assert params.synth.start_date == date(2025, 6, 1)
    assert params.synth.end_date == date(2025, 7, 29)
    assert params.synth.queries_per_day == 20_000


def test_repository_params_yaml_load_window_lies_inside_the_synthetic_log() -> None:
    params = load_params(REPO / "params.yaml")
    assert params.synth.start_date <= params.data_loading.start_date
    assert params.data_loading.end_date < params.replay.start_date
    assert params.replay.end_date <= params.synth.end_date


def test_code_defaults_match_the_documented_values() -> None:
    params = Params()
    assert params.data_loading.cpu_threshold_seconds == 300.0
    assert params.data_loading.memory_threshold_gb == 10.0
    assert params.data_loading.sample_fraction == 1.0
    assert params.boundary_sampling.balance_ratio == 5.0
    assert params.model.cost_fn == 100.0
    assert params.filters.keep_workload == "NON-CURATED"
    assert params.filters.dedup_window_seconds == 60.0
    assert params.filters.query_types == (
        "SELECT",
        "INSERT",
        "EXPLAIN",
        "DESCRIBE",
        "DATA_DEFINITION",
    )


def test_values_are_typed() -> None:
    params = parse_params(
        {
            "data_loading": {"cpu_threshold_seconds": 60, "start_date": "2025-06-02"},
            "filters": {"query_types": ["SELECT"]},
        }
    )
    assert params.data_loading.cpu_threshold_seconds == 60.0
    assert isinstance(params.data_loading.cpu_threshold_seconds, float)
    assert params.data_loading.start_date == date(2025, 6, 2)
    assert params.filters.query_types == ("SELECT",)
    assert params.model == Params().model  # untouched sections keep their defaults


def test_sections_are_frozen() -> None:
    params = Params()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        params.data_loading.sample_fraction = 0.5  # type: ignore[misc]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"data_loading": {"cpu_threshold": 60}},
            r"data_loading\.cpu_threshold: unknown key; remove it or fix its spelling",
        ),
        ({"filter": {}}, r"\n  filter: unknown key"),
        (
            {"model": {"n_estimators": 10, "learning_rat": 0.1}},
            r"model\.learning_rat: unknown key",
        ),
        ({"synth": {"seed": 1, "sede": 2}}, r"synth\.sede: unknown key"),
    ],
)
def test_unknown_key_is_named(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        parse_params(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"model": {"n_estimators": "many"}}, r"model\.n_estimators='many': .*valid integer"),
        ({"model": {"n_estimators": 10.5}}, r"model\.n_estimators=10\.5: "),
        ({"data_loading": {"cpu_threshold_seconds": "5m"}}, r"cpu_threshold_seconds='5m': "),
        ({"data_loading": {"start_date": "June"}}, r"data_loading\.start_date='June': .*date"),
        ({"filters": {"query_types": "SELECT"}}, r"filters\.query_types='SELECT': .*tuple"),
        ({"data_loading": []}, r"\n  data_loading=\[\]: .*dictionary"),
        ({"filters": {"keep_workload": "SOME"}}, r"filters\.keep_workload='SOME': "),
        ({"model": {"algorithm": "lightgbm"}}, r"model\.algorithm='lightgbm': "),
        ({"engine": {"name": "dask"}}, r"engine\.name='dask': "),
        ({"spark": {"driver_memory": "lots"}}, r"spark\.driver_memory='lots': "),
    ],
)
def test_wrong_type_is_named_with_its_value(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        parse_params(raw)


@pytest.mark.parametrize(
    ("section", "key", "value", "rule"),
    [
        ("data_loading", "cpu_threshold_seconds", 0, "greater than 0"),
        ("data_loading", "cpu_threshold_seconds", -300, "greater than 0"),
        ("data_loading", "memory_threshold_gb", 0.0, "greater than 0"),
        ("data_loading", "sample_fraction", 0.0, "greater than 0"),
        ("data_loading", "sample_fraction", 1.5, "less than or equal to 1"),
        ("filters", "dedup_window_seconds", -1, "greater than or equal to 0"),
        ("synth", "queries_per_day", 0, "greater than 0"),
        ("synth", "queries_per_day", 5_000_001, "less than or equal to 5000000"),
        ("synth", "metadata_share", 0.9, "less than 0.9"),
        ("synth", "new_template_share", 0.9, "less than 0.9"),
        ("boundary_sampling", "balance_ratio", 0, "greater than 0"),
        ("features", "tfidf_vocab_size", 9, "greater than or equal to 10"),
        ("features", "base_feature_count", 80, "78"),
        ("features", "historical_feature_count", 17, "24"),
        ("model", "cv_folds", 1, "greater than or equal to 2"),
        ("model", "cost_fn", 0, "greater than 0"),
        ("splits", "train_days", 0, "greater than 0"),
        ("engine", "workers", -1, "greater than or equal to 0"),
    ],
)
def test_out_of_range_is_named_with_value_and_rule(
    section: str, key: str, value: Any, rule: str
) -> None:
    with pytest.raises(ParamsError) as info:
        parse_params({section: {key: value}})
    (line,) = [ln.strip() for ln in str(info.value).splitlines() if ln.startswith("  ")]
    assert line.startswith(f"{section}.{key}={value!r}: ")
    assert rule in line


def test_every_bad_key_is_reported_at_once() -> None:
    with pytest.raises(ParamsError) as info:
        parse_params(
            {
                "data_loading": {"sample_fraction": 2, "cpu_threshold_seconds": 0},
                "model": {"cv_folds": 1},
                "typo": 1,
            },
            origin="conf/params.yaml",
        )
    lines = str(info.value).splitlines()
    assert lines[0] == "conf/params.yaml is invalid:"
    assert lines[-1] == "Fix these keys in conf/params.yaml."
    named = sorted(line.strip().split(":")[0].split("=")[0] for line in lines[1:-1])
    assert named == [
        "data_loading.cpu_threshold_seconds",
        "data_loading.sample_fraction",
        "model.cv_folds",
        "typo",
    ]


@pytest.mark.parametrize("section", ["data_loading", "synth", "replay"])
def test_end_date_before_start_date_is_named(section: str) -> None:
    raw = {section: {"start_date": "2025-07-01", "end_date": "2025-06-30"}}
    with pytest.raises(
        ParamsError,
        match=(
            rf"{section}: .*end_date=2025-06-30 is before start_date=2025-07-01; "
            rf"set {section}\.end_date on or after it"
        ),
    ):
        parse_params(raw)


@pytest.mark.parametrize("section", ["data_loading", "synth", "replay"])
def test_one_day_window_is_allowed(section: str) -> None:
    params = parse_params({section: {"start_date": "2025-07-01", "end_date": "2025-07-01"}})
    assert getattr(params, section).end_date == date(2025, 7, 1)


def test_end_date_default_is_checked_against_a_later_start_date() -> None:
    with pytest.raises(ParamsError, match=r"end_date=2025-07-15 is before start_date=2025-08-01"):
        parse_params({"data_loading": {"start_date": "2025-08-01"}})


def test_synth_shares_must_leave_room_for_adhoc_queries() -> None:
    with pytest.raises(ParamsError, match=r"synth: .*metadata_share \+ curated_share"):
        parse_params({"synth": {"metadata_share": 0.5, "curated_share": 0.45}})
    assert parse_params({"synth": {"metadata_share": 0.5, "curated_share": 0.44}}).synth


def test_sample_seed_outside_int64_is_rejected_by_name() -> None:
    with pytest.raises(ParamsError, match=r"data_loading\.sample_seed="):
        parse_params({"data_loading": {"sample_seed": 2**63}})


# --------------------------------------------------------------------------- load_params


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_missing_file_is_a_params_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ParamsError, match=rf"^{re.escape(str(path))} not found"):
        load_params(path)


@pytest.mark.parametrize(
    "text", ["data_loading: [unclosed\n", "a: b: c\n", "data_loading:\n  x: 1\n y: 2\n"]
)
def test_invalid_yaml_is_a_params_error(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ParamsError, match=rf"^{re.escape(str(path))} is not valid YAML: "):
        load_params(path)


@pytest.mark.parametrize("text", ["", "\n", "# nothing set yet\n", "---\n"])
def test_empty_file_gives_all_defaults(tmp_path: Path, text: str) -> None:
    assert load_params(write(tmp_path, text)) == Params()


def test_empty_section_gives_its_defaults(tmp_path: Path) -> None:
    params = load_params(write(tmp_path, "data_loading:\n  sample_fraction: 0.1\nfilters: {}\n"))
    assert params.data_loading == DataLoading(sample_fraction=0.1)
    assert params.filters == Filters()
    assert params.synth == Synth()


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("42\n", "int")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    with pytest.raises(ParamsError, match=rf"must hold a mapping of sections, found {kind}$"):
        load_params(write(tmp_path, text))


def test_load_params_names_the_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "model:\n  cv_folds: 1\n")
    with pytest.raises(
        ParamsError, match=rf"^{re.escape(str(path))} is invalid:\n  model\.cv_folds=1"
    ):
        load_params(path)


def test_yaml_dates_and_strings_parse_alike(tmp_path: Path) -> None:
    unquoted = load_params(write(tmp_path, "replay:\n  start_date: 2025-07-20\n"))
    quoted = load_params(write(tmp_path, "replay:\n  start_date: '2025-07-20'\n"))
    assert unquoted == quoted
    assert unquoted.replay.start_date == date(2025, 7, 20)


def test_params_error_is_a_value_error() -> None:
    assert issubclass(ParamsError, ValueError)
