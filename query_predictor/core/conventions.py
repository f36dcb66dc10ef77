"""What a site's SQL and users look like, learned from its own log, not from names we chose.

Two base features depend on conventions that differ from one Trino deployment to the next:

* ``has_partition_predicate``: which columns are date partitions. Every site names them its
  own way (``ds``, ``dt``, ``load_date``, ``p_day``...). A column is taken as a partition
  column when, in the training window, at least ``partition_min_templates`` distinct
  statements (templates) compare it with a date: a date literal, ``DATE '...'``, an 8-digit
  day number, ``current_date``, a date function or a CAST of a date literal.
* ``user_is_service``: which users are automated. Service accounts need not be named
  ``svc_...``: a user is a service when, in the training window, it ran at least
  ``service_min_queries`` queries of which at least ``service_repeat_share`` repeat a
  template it had already run (schedulers and dashboards repeat, people explore), or when
  its name matches ``service_user_pattern`` (a regular expression, off by default).

:func:`fit_conventions` learns both on the training window (the featurize stage), the result
travels in the model bundle (``models/sql_conventions.json``) and serving applies the same
two methods, :meth:`Conventions.partition_predicate` and :meth:`Conventions.is_service`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import polars as pl

__all__ = ["Conventions", "fit_conventions"]


@dataclass(frozen=True)
class Conventions:
    """The learned partition columns and service users (empty: both features are 0)."""

    partition_columns: frozenset[str] = frozenset()
    service_users: frozenset[str] = frozenset()
    service_user_pattern: str | None = None
    stats: dict[str, int] = field(default_factory=dict, compare=False)

    @cached_property
    def _pattern(self) -> re.Pattern[str] | None:
        return re.compile(self.service_user_pattern) if self.service_user_pattern else None

    def partition_predicate(self, compared: Iterable[str]) -> float:
        """1.0 when one of the ``compared`` columns is a learned partition column."""
        return float(not self.partition_columns.isdisjoint(compared))

    def is_service(self, user: str | None) -> float:
        """1.0 when ``user`` behaved like a service in training or matches the pattern."""
        if not user:
            return 0.0
        if user in self.service_users:
            return 1.0
        pattern = self._pattern
        return float(pattern is not None and pattern.search(user) is not None)

    def to_payload(self) -> dict[str, object]:
        return {
            "partition_columns": sorted(self.partition_columns),
            "service_users": sorted(self.service_users),
            "service_user_pattern": self.service_user_pattern,
            "stats": dict(sorted(self.stats.items())),
        }

    @classmethod
    def from_payload(cls, payload: dict[str, object]) -> Conventions:
        try:
            pattern = payload.get("service_user_pattern")
            return cls(
                frozenset(map(str, payload["partition_columns"])),  # type: ignore[call-overload]
                frozenset(map(str, payload["service_users"])),  # type: ignore[call-overload]
                str(pattern) if pattern is not None else None,
                {str(k): int(v) for k, v in dict(payload.get("stats", {})).items()},  # type: ignore[call-overload]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a conventions payload: {exc}") from None

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_payload(), indent=1) + "\n")

    @classmethod
    def from_json(cls, path: str | Path) -> Conventions:
        return cls.from_payload(json.loads(Path(path).read_text()))


def fit_conventions(
    rows: pl.DataFrame,
    *,
    partition_min_templates: int,
    service_min_queries: int,
    service_repeat_share: float,
    service_user_pattern: str | None,
) -> Conventions:
    """Learn the conventions from training-window ``rows`` with columns ``user``,
    ``template`` (the statement's fingerprint) and ``dated`` (list of the columns it
    compares with a date). See the module docstring for the rules."""
    templates = rows.select("template", "dated").unique("template")
    partitions = (
        templates.explode("dated")
        .drop_nulls("dated")
        .group_by("dated")
        .len()
        .filter(pl.col("len") >= partition_min_templates)
    )
    per_user = rows.group_by("user").agg(
        pl.len().alias("queries"), pl.col("template").n_unique().alias("templates")
    )
    repeat_share = 1.0 - pl.col("templates") / pl.col("queries")
    services = per_user.filter(
        (pl.col("queries") >= service_min_queries) & (repeat_share >= service_repeat_share)
    )
    return Conventions(
        frozenset(partitions["dated"].to_list()),
        frozenset(u for u in services["user"].to_list() if u),
        service_user_pattern,
        {
            "templates_seen": templates.height,
            "users_seen": per_user.height,
            "partition_columns": partitions.height,
            "service_users": services.height,
        },
    )
