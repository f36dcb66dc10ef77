"""Typed view of ``params.yaml``: parsed once, checked once, then passed around as objects.

Each section of ``params.yaml`` is a frozen pydantic model that rejects unknown keys and wrong
types; :func:`load_params` turns any problem into a :class:`ParamsError` naming the dotted key,
the value and the rule, so library code never sees the raw dict.

    >>> params = load_params("params.yaml")
    >>> params.data_loading.cpu_threshold_seconds
    300.0
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from query_predictor.core.errors import PipelineError

__all__ = ["DataLoading", "Filters", "Params", "ParamsError", "Spark", "Synth", "load_params"]


class ParamsError(PipelineError, ValueError):
    """params.yaml has an unknown key, a wrong type or a value out of range."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_window(start: dt.date, end: dt.date, section: str) -> None:
    if end < start:
        raise ValueError(
            f"end_date={end} is before start_date={start}; set {section}.end_date on or after it"
        )


class Synth(_Section):
    """The synthetic Trino query log (stage ``generate``)."""

    seed: int = 20250601
    start_date: dt.date = dt.date(2025, 6, 1)
    end_date: dt.date = dt.date(2025, 7, 29)
    queries_per_day: int = Field(20_000, gt=0, le=5_000_000)
    metadata_share: float = Field(0.14, ge=0.0, lt=0.9)
    curated_share: float = Field(0.12, ge=0.0, lt=0.9)
    volume_growth: float = Field(0.15, ge=-0.5, le=5.0)
    duplicate_event_rate: float = Field(0.003, ge=0.0, le=0.2)
    corrupt_rate: float = Field(0.0002, ge=0.0, le=0.2)
    # Of the recurring templates (dashboard charts, scheduled jobs, saved and notebook
    # queries) run in any 14 days, the share that first ran in those 14 days: new ones arrive
    # every day and old ones retire. 0 keeps every template for the whole range.
    new_template_share: float = Field(0.25, ge=0.0, lt=0.9)
    drift: bool = True  # false: no table growth, new tables or users, volume growth

    @model_validator(mode="after")
    def _window(self) -> Synth:
        _check_window(self.start_date, self.end_date, "synth")
        if self.metadata_share + self.curated_share >= 0.95:
            raise ValueError("metadata_share + curated_share must stay below 0.95")
        return self


class DataLoading(_Section):
    """Reading, labelling and sampling the raw log (stage ``load``)."""

    raw_path: str = "data/raw"
    start_date: dt.date = dt.date(2025, 6, 1)
    end_date: dt.date = dt.date(2025, 7, 15)
    cpu_threshold_seconds: float = Field(300.0, gt=0)
    memory_threshold_gb: float = Field(10.0, gt=0)
    resource_error_codes: tuple[str, ...] = (
        "EXCEEDED_LOCAL_MEMORY_LIMIT",
        "EXCEEDED_GLOBAL_MEMORY_LIMIT",
        "CLUSTER_OUT_OF_MEMORY",
        "EXCEEDED_CPU_LIMIT",
        "EXCEEDED_TIME_LIMIT",
        "EXCEEDED_SPILL_LIMIT",
        "EXCEEDED_SCAN_LIMIT",
    )
    sample_fraction: float = Field(1.0, gt=0.0, le=1.0)
    sample_seed: int = Field(0, ge=0, lt=2**63)
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    checkpoint_dir: str | None = Field(
        "data/checkpoints/load",
        description="finished days of an interrupted load, reused by the rerun; null: none",
    )

    @model_validator(mode="after")
    def _window(self) -> DataLoading:
        _check_window(self.start_date, self.end_date, "data_loading")
        return self


class Filters(_Section):
    """Which labeled queries the model is trained on (stage ``load``)."""

    curated_column: str = "resource_group_id"
    curated_pattern: str = r"^global\.curated(\.|$)"
    keep_workload: Literal["NON-CURATED", "CURATED", "ALL"] = "NON-CURATED"
    query_types: tuple[str, ...] = ("SELECT", "INSERT", "EXPLAIN", "DESCRIBE", "DATA_DEFINITION")
    dedup_window_seconds: float = Field(60.0, ge=0.0)

    @model_validator(mode="after")
    def _column(self) -> Filters:
        from query_predictor.core.schema import RAW_SCHEMA

        if RAW_SCHEMA.get(self.curated_column) != pl.String:
            text = [name for name, dtype in RAW_SCHEMA.items() if dtype == pl.String]
            raise ValueError(
                f"curated_column={self.curated_column!r} is not a text column of the raw log; "
                f"choose one of {text}"
            )
        return self


class ZeroCost(_Section):
    """Which statement categories serving may answer "not heavy" without the model."""

    candidates: tuple[str, ...] = (
        "SHOW",
        "DESCRIBE",
        "EXPLAIN",
        "SET_SESSION",
        "RESET_SESSION",
        "USE",
        "PREPARE",
        "DEALLOCATE",
        "TRANSACTION",
        "SET_OTHER",
        "METADATA",
        "CONSTANT_SELECT",
        "SMALL_LIMIT_SELECT",
        "DDL",
    )
    max_heavy_rate: float = Field(0.01, ge=0.0, le=1.0)
    min_support: int = Field(100, ge=1)
    require_zero_heavy: bool = True
    small_limit: int = Field(1000, gt=0)

    @model_validator(mode="after")
    def _known(self) -> ZeroCost:
        from query_predictor.core.classifier import CANDIDATES

        unknown = sorted(set(self.candidates) - set(CANDIDATES))
        if unknown:
            raise ValueError(
                f"candidates {unknown} are not zero-cost candidate categories; "
                f"choose from {list(CANDIDATES)}"
            )
        return self


class Splits(_Section):
    """Time windows, counted back from data_loading.end_date: test is the most recent."""

    train_days: int = Field(30, gt=0)
    val_days: int = Field(7, gt=0)
    test_days: int = Field(7, gt=0)


class Analysis(_Section):
    """Distribution summaries written by load and split for people to look at."""

    enabled: bool = False
    top_users: int = Field(20, gt=0)


class BoundarySampling(_Section):
    balance_ratio: float = Field(5.0, gt=0)
    max_boost: float = Field(2.0, gt=0)
    min_multiplier: float = Field(0.05, gt=0)
    seed: int = Field(42, ge=0, lt=2**63)


class Features(_Section):
    """Feature extraction (stage ``featurize``)."""

    base_feature_count: Literal[78] = 78
    historical_feature_count: Literal[24] = 24
    tfidf_vocab_size: int = Field(1000, ge=10, le=100_000)
    history_prior_weight: float = Field(20.0, gt=0)
    # conventions learned in the training window (query_predictor/core/conventions.py)
    partition_min_templates: int = Field(3, ge=1)
    service_min_queries: int = Field(50, ge=1)
    service_repeat_share: float = Field(0.9, gt=0, le=1)
    service_user_pattern: str | None = None
    parity_sample: int = Field(2000, ge=1)
    seed: int = Field(7, ge=0, lt=2**63)


class Model(_Section):
    algorithm: Literal["xgboost"] = "xgboost"
    n_estimators: int = Field(100, gt=0)
    cv_folds: int = Field(5, ge=2)
    # day: each fold holds out whole days (a statement's repeats on one day never sit on both
    # sides), as the model meets new days in use; random: stratified over rows
    cv_split: Literal["day", "random"] = "day"
    cost_fn: float = Field(100.0, gt=0)
    cost_fp: float = Field(1.0, gt=0)
    seed: int = Field(42, ge=0, lt=2**31)
    max_depth: int = Field(6, ge=1, le=20)
    learning_rate: float = Field(0.1, gt=0, le=1)
    early_stopping_rounds: int = Field(20, ge=1)
    early_stopping_min_delta: float = Field(0.0, ge=0, lt=1)
    min_child_weight: float = Field(1.0, ge=0)
    scale_pos_weight: float = Field(1.0, gt=0)
    max_bin: int = Field(256, ge=2, le=1024)
    threshold_policy: Literal["cost_optimal", "recall", "confident_recall"] = "cost_optimal"
    threshold_confidence: float = Field(0.9, gt=0.5, lt=1.0)
    # after the threshold is chosen on validation, fit the exported model again on the
    # training and (boundary-sampled) validation rows, same trees, same threshold
    refit_on_validation: bool = False


class Prd(_Section):
    """The product requirement the model must meet on the test split."""

    min_recall: float = Field(0.98, gt=0, le=1)
    max_fnr: float = Field(0.02, ge=0, lt=1)
    enforce: bool = False  # true: a failing PRD fails `dvc repro`


class Replay(_Section):
    """The days after the training data that stage ``replay`` answers as a router would."""

    start_date: dt.date = dt.date(2025, 7, 16)
    end_date: dt.date = dt.date(2025, 7, 29)
    psi_alert: float = Field(
        0.25, gt=0, description="population stability index above which a shift is drift"
    )
    psi_bins: int = Field(10, ge=2, le=100, description="quantile bins of the reference")
    min_queries: int = Field(
        100, ge=1, description="replayed queries a table needs before its cost growth is judged"
    )
    cost_ratio_alert: float = Field(
        1.5, gt=1.0, description="templates on a table costing this much more is drift"
    )
    new_user_heavy_share: float = Field(
        0.05, gt=0.0, le=1.0, description="share of heavy queries from new users that is drift"
    )

    @model_validator(mode="after")
    def _window(self) -> Replay:
        _check_window(self.start_date, self.end_date, "replay")
        return self


class Engine(_Section):
    """How stages compute: polars in this process, or Spark (section ``spark``)."""

    name: Literal["polars", "spark"] = "polars"
    workers: int = Field(0, ge=0, description="processes for generate; 0 = one per core")


class Spark(_Section):
    """The Spark session of ``engine.name: spark`` (stages load, zero_cost, split, featurize,
    and replay's reading). ``local[*]`` runs on this machine; ``spark://host:7077``,
    ``yarn`` or an EMR cluster run on a cluster (docs/spark.md)."""

    master: str = "local[*]"
    app_name: str = "trino-query-predictor"
    driver_memory: str = Field("2g", pattern=r"^[0-9]+[kmgt]?$")
    executor_memory: str = Field("2g", pattern=r"^[0-9]+[kmgt]?$")
    shuffle_partitions: int = Field(8, ge=1)
    conf: dict[str, str] = Field(
        default_factory=dict, description="any other spark.* setting, e.g. spark.archives"
    )


class SimulateOnline(_Section):
    """Stage ``simulate_online``: the replay window of the synthetic log as if a deployed
    service had routed it, so that replay's online section has tags to read."""

    enabled: bool = True  # false: no simulated tags; replay reads the log's own client_tags
    skew_share: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="share of queries routed by a service whose history snapshot lost its "
        "per-key statistics (planted train/serve skew)",
    )
    seed: int = Field(13, ge=0, lt=2**63, description="picks the skewed queries (by hash)")


class Params(_Section):
    synth: Synth = Synth()
    data_loading: DataLoading = DataLoading()
    filters: Filters = Filters()
    zero_cost: ZeroCost = ZeroCost()
    splits: Splits = Splits()
    boundary_sampling: BoundarySampling = BoundarySampling()
    features: Features = Features()
    model: Model = Model()
    prd: Prd = Prd()
    replay: Replay = Replay()
    simulate_online: SimulateOnline = SimulateOnline()
    engine: Engine = Engine()
    spark: Spark = Spark()
    analysis: Analysis = Analysis()


def _format(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key; remove it or fix its spelling"
    if not key:  # a rule across sections
        return str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    shown = "" if isinstance(value, dict) else f"={value!r}"
    return f"{key}{shown}: {error['msg']}"


def parse_params(raw: dict[str, Any], *, origin: str = "params.yaml") -> Params:
    """Validate an already-parsed params mapping (see :func:`load_params`)."""
    try:
        return Params.model_validate(raw or {})
    except ValidationError as exc:
        lines = "\n  ".join(_format(e) for e in exc.errors())
        raise ParamsError(f"{origin} is invalid:\n  {lines}\nFix these keys in {origin}.") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; raises :class:`ParamsError` naming every bad key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path} not found; run from the repository root") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ParamsError(f"{path} must hold a mapping of sections, found {type(raw).__name__}")
    return parse_params(raw, origin=str(path))
