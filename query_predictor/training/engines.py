"""The engine a stage computes with (``engine.name``): polars here, or Spark.

Both expose the same three data-parallel steps, and both call the same library functions
for them, so a stage does not know which one ran:

* ``load_runner()``: who processes the load's day partitions (:mod:`.partitions`);
* ``categorized(labeled_dir, window, classifier, compact=...)``: labeled rows of a window
  with their statement category (stages zero_cost and split); ``compact`` (a module-level
  function of a frame) trims each batch once categorized, e.g. drops the SQL text, so only
  what the stage uses is ever held for the whole window;
* ``analyze(frame, full=..., workers=...)``: base features, tables, template and TF-IDF terms
  of every row (stage featurize).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import polars as pl

from query_predictor.params import Params

# Imported where used, so that a stage depends only on the steps it runs (dvc.yaml deps).
if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

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
        compact: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
    ) -> pl.DataFrame: ...

    def analyze(self, frame: pl.DataFrame, *, full: pl.Series, workers: int) -> Analyzed: ...

    def close(self) -> None:
        """Stop the engine's workers (Spark: its session); a second call does nothing."""
        ...


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
        compact: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
    ) -> pl.DataFrame:
        from .windows import labeled_parts
        from .zero_cost import categorize

        parts = []
        for part in labeled_parts(labeled_dir, window, columns=columns):
            done = categorize(part, classifier)
            parts.append(compact(done) if compact is not None else done)
        return pl.concat(parts)

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    def analyze(self, frame: pl.DataFrame, *, full: pl.Series, workers: int) -> Analyzed:
        """:func:`analyze_frame`; the worker processes are started once and serve every call
        (featurize calls once a day)."""
        from .featurize import analyze_frame, worker_pool

        if workers > 1 and self._pool is None:
            self._pool = worker_pool(workers)
        return analyze_frame(frame, workers=workers, full=full, pool=self._pool)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


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
