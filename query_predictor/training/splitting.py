"""Stage ``split``: zero-cost categories out, time windows, boundary sampling of train only.

python stages/split.py
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from query_predictor.core.classifier import QueryClassifier
from query_predictor.core.errors import DataError, EmptyWindowError, MissingInputError
from query_predictor.params import Params

from .analysis import ANALYSIS_COLUMNS
from .engines import PolarsEngine
from .sampling import curve, kept_by_bucket, sample_as_configured
from .windows import SPLITS, Window, windows_for


@dataclass
class SplitResult:
    """The rows of each split as decided (:data:`DECIDE_COLUMNS` but the SQL text, and
    ``category``); :meth:`rows` reads a split's full rows, one split at a time."""

    decided: dict[str, pl.DataFrame]
    metrics: dict[str, object]
    curve: list[dict[str, float]]
    buckets: list[dict[str, object]]
    before_sampling: pl.DataFrame  # the training window before sampling (for analysis)
    labeled_dir: Path
    windows: dict[str, Window]

    def rows(self, name: str) -> pl.DataFrame:
        """Every labeled column of split ``name``'s rows, plus ``category``."""
        return full_rows(self.labeled_dir, self.windows[name], self.decided[name])

    @property
    def frames(self) -> dict[str, pl.DataFrame]:
        """:meth:`rows` of every split (all in memory: for small logs and tests)."""
        return {name: self.rows(name) for name in self.decided}


def load_zero_cost(path: str | Path) -> tuple[list[str], int]:
    """(validated categories, small_limit) from the zero_cost stage's JSON."""
    try:
        payload = json.loads(Path(path).read_text())
        return list(payload["validated"]), int(payload["small_limit"])
    except FileNotFoundError:
        raise MissingInputError(f"{path} not found; run `dvc repro zero_cost` first") from None
    except (KeyError, ValueError, TypeError) as exc:
        raise DataError(
            f"{path} is not a zero-cost categories file ({exc!r}); rerun `dvc repro zero_cost`"
        ) from None


# what the split decisions and the analysis tables read (the SQL text only to categorize:
# dropped batch by batch, see :func:`without_text`); the outputs get every column
DECIDE_COLUMNS = tuple(
    dict.fromkeys(
        (
            "query_id",
            "event_date",
            "create_time",
            "query",
            "is_heavy",
            "cpu_time_millis",
            "peak_memory_bytes",
            *ANALYSIS_COLUMNS,
        )
    )
)


def without_text(frame: pl.DataFrame) -> pl.DataFrame:
    """A categorized batch without its SQL text (the decisions need only the category)."""
    return frame.drop("query")


def full_rows(labeled_dir: str | Path, window: Window, decided: pl.DataFrame) -> pl.DataFrame:
    """Every labeled column of the rows of ``decided`` (same order), plus its ``category``."""
    files = sorted(Path(labeled_dir).rglob("*.parquet"))
    ids = decided["query_id"].implode()
    rows = (
        pl.scan_parquet(files, hive_partitioning=False)
        .filter(window.contains() & pl.col("query_id").is_in(ids))
        .collect()
    )
    category = decided.select("query_id", "category")
    return rows.join(category, on="query_id", how="left", maintain_order="left")


def _share(frame: pl.DataFrame) -> float | None:
    return round(float(frame["is_heavy"].mean()), 6) if frame.height else None  # type: ignore[arg-type]


def run_split(
    labeled_dir: str | Path,
    zero_cost_path: str | Path,
    params: Params,
    *,
    categorized: Callable[..., pl.DataFrame] | None = None,
) -> SplitResult:
    """Split the labeled rows; ``categorized`` reads a window with its categories (an
    engine's :meth:`categorized`; default: polars in this process).

    Windows, zero-cost removal and sampling are decided on the few columns they need
    (:data:`DECIDE_COLUMNS`, the SQL text dropped once categorized); the full rows of the
    kept ids are read by :meth:`SplitResult.rows`, one split at a time, so memory follows
    the largest split, not the labeled log."""
    validated, small_limit = load_zero_cost(zero_cost_path)
    sampling = params.boundary_sampling
    windows = windows_for(params)
    span = Window("all", windows["train"].start, windows["test"].end)
    classifier = QueryClassifier(small_limit=small_limit)
    if categorized is None:
        categorized = PolarsEngine().categorized
    frame = categorized(labeled_dir, span, classifier, columns=DECIDE_COLUMNS, compact=without_text)
    frames: dict[str, pl.DataFrame] = {}
    split_metrics: dict[str, dict[str, object]] = {}
    removed: dict[str, int] = {}
    for name in SPLITS:
        window = windows[name]
        rows = frame.filter(window.contains())
        kept = rows.filter(~pl.col("category").is_in(validated))
        removed[name] = rows.height - kept.height
        if kept.is_empty() or not kept["is_heavy"].any():
            raise EmptyWindowError(
                f"the {name} window {window.start}..{window.end} has "
                f"{'no rows' if kept.is_empty() else 'no heavy query'}; widen data_loading or "
                "change splits.* in params.yaml"
            )
        frames[name] = kept
        split_metrics[name] = {
            "rows": kept.height,
            "heavy": int(kept["is_heavy"].sum()),
            "heavy_share": _share(kept),
            **window.as_dict(),
            "days": window.days,
        }

    train = frames["train"]
    result = sample_as_configured(train, params)
    buckets = kept_by_bucket(result, train["is_heavy"].to_numpy())
    frames["train"] = train.filter(result.keep)
    split_metrics["train"].update(
        rows_before_sampling=train.height,
        heavy_share_before_sampling=split_metrics["train"]["heavy_share"],
        rows=frames["train"].height,
        heavy_share=_share(frames["train"]),
    )
    metrics: dict[str, object] = {
        "rows": frame.height,
        "splits": split_metrics,
        "zero_cost_removed": removed,
        "zero_cost_categories": validated,
        "sampling": {
            "balance_ratio": sampling.balance_ratio,
            "achieved_ratio": round(result.achieved_ratio, 6) if result.achieved_ratio else None,
            "ratio_reachable": result.reachable,
            "base_rate": round(result.base_rate, 8),
            "kept_share_by_distance": {b["bucket"]: b["kept_share"] for b in buckets},
        },
    }
    grid = curve(
        base_rate=result.base_rate,
        min_multiplier=sampling.min_multiplier,
        max_boost=sampling.max_boost,
    )
    return SplitResult(frames, metrics, grid, buckets, train, Path(labeled_dir), windows)
