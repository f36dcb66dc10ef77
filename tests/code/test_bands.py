"""Resource bands: a query's expected CPU and memory from the history it resembles most."""

from __future__ import annotations

import math

import pytest

from query_predictor.core.history import HistoryLookup, Stats, bands_of, resource_bands

PRIOR = Stats(1000, 30, math.log1p(2.0), 1.0, math.log1p(0.1), 0.5, 100)
TEMPLATE = Stats(40, 10, math.log1p(600.0), 0.5, math.log1p(12.0), 0.2, 100)
SMALL_TABLE = Stats(500, 0, math.log1p(1.0), 0.1, math.log1p(0.01), 0.1, 100)
BIG_TABLE = Stats(200, 20, math.log1p(120.0), 0.8, math.log1p(4.0), 0.4, 100)
USER = Stats(80, 2, math.log1p(30.0), 0.3, math.log1p(1.0), 0.3, 100)


def lookup() -> HistoryLookup:
    return HistoryLookup(
        users={"ann": USER},
        templates={"t1": TEMPLATE},
        tables={"a.b.small": SMALL_TABLE, "a.b.big": BIG_TABLE},
        prior=PRIOR,
        weight=20.0,
    )


def test_quantiles_of_the_log_normal_fit() -> None:
    bands = bands_of("template", TEMPLATE)
    assert bands.cpu_seconds_p50 == pytest.approx(600.0, abs=1e-3)
    assert bands.cpu_seconds_p90 == pytest.approx(math.expm1(math.log1p(600) + 1.2816 * 0.5), 1e-3)
    assert bands.peak_memory_gib_p50 == pytest.approx(12.0, abs=1e-3)
    assert bands.cpu_seconds_p50 <= bands.cpu_seconds_p90
    assert bands.as_dict()["cpu_seconds"] == {"p50": 600.0, "p90": bands.cpu_seconds_p90}


@pytest.mark.parametrize(
    ("user", "template", "tables", "basis", "runs"),
    [
        ("ann", "t1", ["a.b.small"], "template", 40),
        ("ann", "new", ["a.b.small", "a.b.big"], "table", 200),  # the costliest table
        ("ann", "new", ["x.y.unknown"], "user", 80),
        ("bob", "new", [], "global", 1000),
    ],
)
def test_the_most_specific_history_decides(
    user: str, template: str, tables: list[str], basis: str, runs: int
) -> None:
    bands = resource_bands(lookup(), user=user, template=template, tables=tables)
    assert (bands.basis, bands.runs) == (basis, runs)
