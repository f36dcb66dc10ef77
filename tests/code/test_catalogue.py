"""The feature catalogue in docs/ is generated from the code and must match it."""

from __future__ import annotations

from pathlib import Path

from query_predictor.catalogue import HISTORY_MEANINGS, render
from query_predictor.core.featurizer import FEATURE_NAMES
from query_predictor.core.history import HISTORY_NAMES

DOC = Path(__file__).resolve().parents[2] / "docs" / "features.md"


def test_docs_catalogue_is_up_to_date() -> None:
    assert DOC.read_text() == render(), (
        "docs/features.md is stale: run `python -m query_predictor.catalogue > docs/features.md`"
    )


def test_every_feature_is_documented_once_in_order() -> None:
    assert len(FEATURE_NAMES) == 95 == len(set(FEATURE_NAMES))
    assert set(HISTORY_MEANINGS) == set(HISTORY_NAMES)
    text = render()
    positions = [text.index(f"`{name}`") for name in FEATURE_NAMES]
    assert positions == sorted(positions)
