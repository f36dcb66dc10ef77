"""The routing decision as a Trino client tag: the service writes it, replay reads it back.

``/v1/route`` appends one tag to the client's own ``X-Trino-Client-Tags``; Trino records the
tags of every query in its completed-query events, so the decision comes back in the
``client_tags`` column of the raw log, beside what the query really cost. The tag is one
``key=value`` list separated by semicolons, decision first::

    qp=heavy;p=0.8731;v=heavy-query-classifier@cb9b97515359
    qp=light;p=0;s=zero_cost;v=heavy-query-classifier@cb9b97515359

- ``qp``: ``heavy`` or ``light``, the group the service chose;
- ``p``: the model's probability (4 significant digits; 0 when the model did not run);
- ``s``: what decided, when it was not the model (``zero_cost``, ``no_sql``, ``unparsed``);
- ``v``: the bundle's model version (``name@`` 12 hex digits of the ONNX file's sha256).

Trino reads ``X-Trino-Client-Tags`` as a comma-separated list and trims each tag, so a tag
must not hold a comma: none of the fields can (a version with a comma or a semicolon has
them replaced by ``_``). Keys a later version adds are ignored by :func:`parse_tag`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "CLIENT_TAGS_HEADER",
    "TAG_PREFIX",
    "TAG_STATUSES",
    "Decision",
    "TagStatus",
    "append_tag",
    "find_decision",
    "format_tag",
    "parse_tag",
    "split_header",
    "tag_version",
]

CLIENT_TAGS_HEADER = "X-Trino-Client-Tags"
TAG_PREFIX = "qp="
MODEL_STAGE = "model"
_DECISIONS = {"heavy": True, "light": False}


class TagStatus:
    """What a row's client tags say about the routing decision (counted by replay)."""

    UNTAGGED = "untagged"  # no decision tag: the service did not route it, or tagging is off
    TAGGED = "tagged"  # exactly one well-formed decision (repeated identically is one)
    MALFORMED = "malformed"  # a tag starting with ``qp=`` that does not parse
    CONFLICTING = "conflicting"  # two well-formed decision tags that disagree


TAG_STATUSES = (TagStatus.TAGGED, TagStatus.UNTAGGED, TagStatus.MALFORMED, TagStatus.CONFLICTING)


@dataclass(frozen=True)
class Decision:
    """One routing decision as the tag carries it."""

    heavy: bool
    probability: float  # in [0, 1]
    version: str  # the bundle's model version, as :func:`tag_version` writes it
    stage: str = MODEL_STAGE  # what decided: model, zero_cost, no_sql, unparsed


def tag_version(version: str) -> str:
    """``version`` as a tag can carry it: no comma (Trino's separator) nor semicolon."""
    return version.replace(",", "_").replace(";", "_").strip()


def format_tag(decision: Decision) -> str:
    """The client tag of ``decision`` (see the module docstring)."""
    group = "heavy" if decision.heavy else "light"
    fields = [f"{TAG_PREFIX}{group}", f"p={decision.probability:.4g}"]
    if decision.stage != MODEL_STAGE:
        fields.append(f"s={decision.stage}")
    fields.append(f"v={tag_version(decision.version)}")
    return ";".join(fields)


def parse_tag(tag: str) -> Decision | None:
    """The decision in ``tag``, or None when it is not a well-formed decision tag (a tag
    that does not start with ``qp=`` is not one; see :func:`find_decision` for the count)."""
    fields = {}
    for item in tag.strip().split(";"):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or key.strip() in fields:
            return None
        fields[key.strip()] = value.strip()
    heavy = _DECISIONS.get(fields.get("qp", ""))
    version = fields.get("v", "")
    if heavy is None or not version or not tag.lstrip().startswith(TAG_PREFIX):
        return None
    try:
        probability = float(fields.get("p", ""))
    except ValueError:
        return None
    if not math.isfinite(probability) or not 0.0 <= probability <= 1.0:
        return None
    stage = fields.get("s", MODEL_STAGE) or MODEL_STAGE
    return Decision(heavy, probability, version, stage)


def find_decision(tags: Iterable[str] | None) -> tuple[Decision | None, str]:
    """The routing decision among a query's client tags and its :class:`TagStatus`.

    Other tags (the client's own) are passed over; a ``qp=`` tag that does not parse makes
    the row MALFORMED, two decisions that differ make it CONFLICTING (the query went
    through two routers, or a client forged one): neither is trusted."""
    found: set[Decision] = set()
    for tag in tags or ():
        if tag is None or not tag.lstrip().startswith(TAG_PREFIX):
            continue
        decision = parse_tag(tag)
        if decision is None:
            return None, TagStatus.MALFORMED
        found.add(decision)
    if not found:
        return None, TagStatus.UNTAGGED
    if len(found) > 1:
        return None, TagStatus.CONFLICTING
    return found.pop(), TagStatus.TAGGED


def split_header(values: Sequence[str]) -> list[str]:
    """The tags in the ``X-Trino-Client-Tags`` header values, as Trino reads them: split at
    commas, trimmed, empty ones left out."""
    return [tag.strip() for value in values for tag in value.split(",") if tag.strip()]


def append_tag(values: Sequence[str], tag: str) -> str:
    """The ``X-Trino-Client-Tags`` value carrying the client's tags (``values``: the header
    as the client sent it, possibly repeated) and then ``tag``. Nothing of the client's is
    dropped or rewritten, not even a ``qp=`` tag of its own: replay then counts the query
    as CONFLICTING (or TAGGED, when both say the same)."""
    if "," in tag:
        raise ValueError(f"a client tag cannot contain a comma: {tag!r}")
    return ",".join([*split_header(values), tag])
