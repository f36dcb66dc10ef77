"""The engine a stage computes with (``engine.name``): polars here, or Spark.

Both expose the same three data-parallel steps, and both call the same library functions
for them, so a stage does not know which one ran:

* ``load_runner()``: who processes the load's day partitions (:mod:`.partitions`);
* ``categorized(labeled_dir, window, classifier)``: labeled rows of a window with their
  statement category (stages zero_cost and split);
* ``analyze(frame, full=..., workers=...)``: base features, tables, template and TF-IDF terms
  of every row (stage featurize).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import polars as pl

from query_predictor.params import Params

# Imported where used, so that a stage depends only on the steps it runs (dvc.yaml deps).
if TYPE_CHECKING:
    from query_predictor.core.classifier import QueryClassifier

    from .featurize import Analyzed
    from .partitions import Runner
    from .windows import Window


class Engine(Protocol):
    name: str

    def load_runner(self) -> Runner: ...

    def categorized(
        self,
        labeled_dir: str | Path,
        window: Window,
        classifier: QueryClassifier,
        *,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame: ...

    def analyze(self, frame: pl.DataFrame, *, full: pl.Series, workers: int) -> Analyzed: ...

    def close(self) -> None: ...


class PolarsEngine:
    name = "polars"

    def load_runner(self) -> Runner:
        from .partitions import PolarsRunner

        return PolarsRunner()

    def categorized(
        self,
        labeled_dir: str | Path,
        window: Window,
        classifier: QueryClassifier,
        *,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        from .windows import read_labeled
        from .zero_cost import categorize

        return categorize(read_labeled(labeled_dir, window, columns=columns), classifier)

    def analyze(self, frame: pl.DataFrame, *, full: pl.Series, workers: int) -> Analyzed:
        from .featurize import analyze_frame

        return analyze_frame(frame, workers=workers, full=full)

    def close(self) -> None:
        pass


@contextlib.contextmanager
def open_engine(params: Params) -> Iterator[Engine]:
    """The engine ``params.engine.name`` selects, closed (Spark session stopped) on exit."""
    engine: Engine
    if params.engine.name == "spark":
        from .spark_engine import SparkEngine

        engine = SparkEngine(params.spark)
    else:
        engine = PolarsEngine()
    try:
        yield engine
    finally:
        engine.close()
