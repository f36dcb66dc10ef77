"""The label rule: when a finished query counts as heavy. One object, built from params.

    >>> rule = LabelRule.from_params(params.data_loading)
    >>> labeled = rule.apply(frame)          # adds is_heavy and heavy_reason

A query is heavy when ``cpu_time_millis >= cpu_threshold_seconds * 1000``, or
``peak_memory_bytes > memory_threshold_gb * 2**30`` (Trino reports memory in binary units:
its "10GB" is 10 GiB), or its ``error_code`` is one of ``resource_error_codes`` (it failed for
lack of resources). The load stage labels with it, boundary sampling measures the distance to
it, the synthetic generator reports the heavy share by it, export records it in the bundle's
metadata, and replay checks that the bundle was trained on the rule it judges by.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from query_predictor.params import DataLoading, Filters

__all__ = ["GIB", "LabelRule", "workload"]

GIB = 1024**3
REASONS = ("cpu", "memory", "resource_error")  # heavy_reason joins the ones that hold by "+"


class LabelRule(BaseModel):
    """Thresholds and error codes that make a query heavy (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu_threshold_seconds: float = Field(gt=0)
    memory_threshold_gb: float = Field(gt=0)
    resource_error_codes: tuple[str, ...]

    @classmethod
    def from_params(cls, data_loading: DataLoading) -> LabelRule:
        """The rule ``params.yaml``'s ``data_loading`` section sets."""
        return cls(
            cpu_threshold_seconds=data_loading.cpu_threshold_seconds,
            memory_threshold_gb=data_loading.memory_threshold_gb,
            resource_error_codes=tuple(data_loading.resource_error_codes),
        )

    def conditions(self) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
        """The three reasons, in :data:`REASONS` order, as boolean polars expressions."""
        return (
            pl.col("cpu_time_millis") >= self.cpu_threshold_seconds * 1000.0,
            pl.col("peak_memory_bytes") > self.memory_threshold_gb * GIB,
            self.resource_failure(),
        )

    def resource_failure(self) -> pl.Expr:
        """True where the query failed with one of the resource error codes."""
        return pl.col("error_code").is_in(list(self.resource_error_codes)).fill_null(False)

    def is_heavy(self) -> pl.Expr:
        cpu, memory, resource = self.conditions()
        return cpu | memory | resource

    def apply(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` with ``is_heavy`` (bool) and ``heavy_reason`` ("cpu", "memory",
        "resource_error", joined by "+"; null for a light query)."""
        conditions = self.conditions()
        reason = pl.concat_str(
            [pl.when(c).then(pl.lit(name)) for c, name in zip(conditions, REASONS, strict=True)],
            separator="+",
            ignore_nulls=True,
        )
        heavy = self.is_heavy()
        return frame.with_columns(is_heavy=heavy, heavy_reason=pl.when(heavy).then(reason))

    def boundary_distance(self, frame: pl.DataFrame) -> np.ndarray:
        """How close each row came to the CPU or memory threshold: ``max(cpu / cpu threshold,
        memory / memory threshold)`` clipped to [0, 1), so 1 is the label boundary."""
        cpu = frame["cpu_time_millis"].to_numpy().astype(np.float64)
        memory = frame["peak_memory_bytes"].to_numpy().astype(np.float64)
        ratio = np.maximum(
            cpu / (self.cpu_threshold_seconds * 1e3), memory / (self.memory_threshold_gb * GIB)
        )
        return np.clip(ratio, 0.0, np.nextafter(1.0, 0.0))


def workload(filters: Filters) -> pl.Expr:
    """``CURATED`` where ``filters.curated_column`` matches ``filters.curated_pattern`` (scheduled
    production pipelines), else ``NON-CURATED``."""
    matched = pl.col(filters.curated_column).str.contains(filters.curated_pattern).fill_null(False)
    return pl.when(matched).then(pl.lit("CURATED")).otherwise(pl.lit("NON-CURATED"))
