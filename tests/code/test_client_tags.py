"""The decision's client tag: written by the service, read back by replay."""

from __future__ import annotations

import pytest

from query_predictor.core.client_tags import (
    Decision,
    TagStatus,
    append_tag,
    find_decision,
    format_tag,
    parse_tag,
    split_header,
    tag_version,
)

V = "heavy-query-classifier@cb9b97515359"


@pytest.mark.parametrize(
    ("decision", "tag"),
    [
        (Decision(True, 0.87312, V), f"qp=heavy;p=0.8731;v={V}"),
        (Decision(False, 0.0123456, V), f"qp=light;p=0.01235;v={V}"),
        (Decision(False, 0.0, V, "zero_cost"), f"qp=light;p=0;s=zero_cost;v={V}"),
        (Decision(False, 3.2e-05, V), f"qp=light;p=3.2e-05;v={V}"),
        (Decision(True, 1.0, "a,b;c@1"), "qp=heavy;p=1;v=a_b_c@1"),
    ],
)
def test_a_tag_is_compact_without_commas_and_reads_back(decision: Decision, tag: str) -> None:
    assert format_tag(decision) == tag
    assert "," not in tag and " " not in tag
    back = parse_tag(tag)
    assert back is not None
    assert (back.heavy, back.version, back.stage) == (
        decision.heavy,
        tag_version(decision.version),
        decision.stage,
    )
    assert back.probability == pytest.approx(decision.probability, rel=1e-3)


@pytest.mark.parametrize(
    "tag",
    [
        "qp=maybe;p=0.5;v=m@1",  # not a decision
        "qp=heavy;p=0.5",  # no version
        "qp=heavy;p=;v=m@1",  # no probability
        "qp=heavy;p=high;v=m@1",
        "qp=heavy;p=1.5;v=m@1",  # not a probability
        "qp=heavy;p=nan;v=m@1",
        "qp=heavy;p=0.5;v=m@1;v=m@2",  # a key twice
        "qp=heavy;0.5;v=m@1",  # a field without '='
        "qp=heavy;p=0.5;v=",
        "p=0.5;qp=heavy;v=m@1",  # the decision must come first
    ],
)
def test_malformed_tags_do_not_parse(tag: str) -> None:
    assert parse_tag(tag) is None


def test_keys_a_later_version_adds_are_ignored() -> None:
    assert parse_tag("qp=heavy;p=0.9;b=cpu;v=m@1") == Decision(True, 0.9, "m@1")


@pytest.mark.parametrize(
    ("tags", "status", "heavy"),
    [
        (None, TagStatus.UNTAGGED, None),
        ([], TagStatus.UNTAGGED, None),
        (["team:growth", "adhoc"], TagStatus.UNTAGGED, None),
        (["team:growth", "qp=heavy;p=0.9;v=m@1", "adhoc"], TagStatus.TAGGED, True),
        (["qp=light;p=0.1;v=m@1", "qp=light;p=0.1;v=m@1"], TagStatus.TAGGED, False),
        (["qp=light;p=0.1;v=m@1", "qp=heavy;p=0.9;v=m@1"], TagStatus.CONFLICTING, None),
        (["team:growth", "qp=heavy;p=oops;v=m@1"], TagStatus.MALFORMED, None),
        (["qp=heavy;p=0.9;v=m@1", "qp="], TagStatus.MALFORMED, None),
        (["qpx=heavy", "notqp=heavy;p=1;v=m@1"], TagStatus.UNTAGGED, None),
    ],
)
def test_the_decision_among_other_tags(
    tags: list[str] | None, status: str, heavy: bool | None
) -> None:
    decision, found = find_decision(tags)
    assert found == status
    assert (decision.heavy if decision else None) == heavy


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], "qp=heavy;p=0.9;v=m@1"),
        ([""], "qp=heavy;p=0.9;v=m@1"),
        (["team:growth, adhoc"], "team:growth,adhoc,qp=heavy;p=0.9;v=m@1"),
        (["a", "b,c"], "a,b,c,qp=heavy;p=0.9;v=m@1"),  # the header sent twice
        # a client's own decision tag is kept (replay counts the row as conflicting)
        (["qp=light;p=0;v=x@1"], "qp=light;p=0;v=x@1,qp=heavy;p=0.9;v=m@1"),
    ],
)
def test_the_tag_is_appended_to_the_clients_own(values: list[str], expected: str) -> None:
    header = append_tag(values, "qp=heavy;p=0.9;v=m@1")
    assert header == expected
    assert split_header([header])[: len(split_header(values))] == split_header(values)


def test_a_tag_with_a_comma_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot contain a comma"):
        append_tag([], "qp=heavy,oops")
