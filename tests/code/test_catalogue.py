"""The feature catalogue in docs/ is generated from the code and must match it."""

from __future__ import annotations

from pathlib import Path

from query_predictor.catalogue import (
    FIRE_RATE_NOTES,
    FIRE_RATES,
    HISTORY_MEANINGS,
    read_fire_rates,
    render,
)
from query_predictor.core.features import BASE_NAMES
from query_predictor.core.featurizer import FEATURE_NAMES
from query_predictor.core.history import HISTORY_NAMES

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "features.md"


def test_docs_catalogue_is_up_to_date() -> None:
    assert DOC.read_text() == render(read_fire_rates(REPO / FIRE_RATES)), (
        "docs/features.md is stale: run `python -m query_predictor.catalogue > docs/features.md`"
    )


def test_fire_rates_were_measured_on_the_features_of_today() -> None:
    measured = read_fire_rates(REPO / FIRE_RATES)
    assert measured is not None, f"{FIRE_RATES} is missing: run `make fire-rates`"
    assert tuple(f["name"] for f in measured["features"]) == BASE_NAMES, (
        f"{FIRE_RATES} names other features than the code: run `make fire-rates`"
    )
    assert set(FIRE_RATE_NOTES) <= set(BASE_NAMES)


def test_every_feature_is_documented_once_in_order() -> None:
    assert len(FEATURE_NAMES) == 102 == len(set(FEATURE_NAMES))
    assert set(HISTORY_MEANINGS) == set(HISTORY_NAMES)
    text = render()
    positions = [text.index(f"`{name}`") for name in FEATURE_NAMES]
    assert positions == sorted(positions)
