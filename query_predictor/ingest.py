"""Turn Trino event-listener JSON into the raw query log (one parquet file).

Run it with::

    query-predictor ingest events/ --output data/raw/queries.parquet

Input is one JSON object per line (blank lines skipped), or a file holding one JSON array.
Each object is a ``QueryCompletedEvent`` as the HTTP event listener posts it, or the Kafka
event listener's envelope ``{"eventPayload": <event>, "eventMetadata": {...}}``. The output
matches :data:`query_predictor.core.schema.RAW_SCHEMA` exactly.

A line that cannot be turned into a row (bad JSON, no ``metadata.queryId``, a duration,
timestamp or number that does not parse) is *rejected*: it is written with its line number
and reason to ``<output>.rejected.jsonl`` and counted in the :class:`IngestReport`, and the
other lines still land. Row-level checks on well-formed values (negative bytes, unknown query
state...) are left to :func:`query_predictor.core.schema.split_valid` in the ``load`` stage.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import polars as pl

from query_predictor import storage
from query_predictor.core.schema import RAW_COLUMNS, RAW_SCHEMA, conform

__all__ = [
    "INPUT_SUFFIXES",
    "FieldError",
    "IngestReport",
    "event_to_row",
    "ingest",
    "parse_duration_millis",
    "parse_timestamp",
    "rejected_path",
]

log = logging.getLogger(__name__)

INPUT_SUFFIXES = (".json", ".jsonl", ".ndjson")
REJECTED_SUFFIX = ".rejected.jsonl"
MAX_REJECTED_TEXT = 2000
# Numbers above this are epoch milliseconds, below it epoch seconds (see parse_timestamp).
EPOCH_MILLIS_THRESHOLD = 1e11
_INT64_MAX = 2**63 - 1
# Bigger numbers are corrupt in every field (and would overflow Decimal or float arithmetic).
_MAX_MAGNITUDE = Decimal("1e30")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_NUM = r"\d+(?:[.,]\d+)?"
# ISO-8601 duration as java.time.Duration writes and parses it: days, hours, minutes,
# seconds; a sign may lead the whole duration or one component (Java writes "PT-0.5S").
_ISO_DURATION = re.compile(
    rf"(?P<sign>[-+])?P(?:(?P<d>[-+]?{_NUM})D)?"
    rf"(?:T(?:(?P<h>[-+]?{_NUM})H)?(?:(?P<m>[-+]?{_NUM})M)?(?:(?P<s>[-+]?{_NUM})S)?)?",
    re.IGNORECASE,
)
_ISO_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
# airlift Duration strings, e.g. "12.50s", "150ms", "3.20m" (Trino's own JSON and config).
_AIRLIFT_DURATION = re.compile(r"(?P<value>[-+]?\d+(?:\.\d+)?)\s*(?P<unit>ns|us|ms|s|m|h|d)")
_AIRLIFT_UNITS = {
    "ns": Decimal("1e-9"),
    "us": Decimal("1e-6"),
    "ms": Decimal("1e-3"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
    "d": Decimal(86400),
}
_JSON_WS = re.compile(r"[ \t\r\n]*")
_NUMERIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class FieldError(ValueError):
    """One field of an event cannot be converted; ``str()`` is ``"<field>: <problem>"``."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name}: {problem}")
        self.field = field_name


# --------------------------------------------------------------------------- value parsers


def _decimal(value: Any, kind: str) -> Decimal:
    """A JSON number or numeric string as a finite Decimal (exact for the text given)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"cannot parse {kind} {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"cannot parse {kind} {value!r}: not a finite number")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else str(value))
    except InvalidOperation:
        raise ValueError(f"cannot parse {kind} {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"cannot parse {kind} {value!r}: not a finite number")
    if abs(number) > _MAX_MAGNITUDE:
        raise ValueError(f"{kind} {value!r} is out of range")
    return number


def _round(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def _duration_seconds(value: Any) -> Decimal:
    if isinstance(value, str):
        text = value.strip()
        iso = _ISO_DURATION.fullmatch(text)
        if iso and any(iso[u] for u in _ISO_UNITS) and not text.upper().endswith("T"):
            seconds = sum(
                (Decimal(iso[u].replace(",", ".")) * n for u, n in _ISO_UNITS.items() if iso[u]),
                Decimal(0),
            )
            return -seconds if iso["sign"] == "-" else seconds
        airlift = _AIRLIFT_DURATION.fullmatch(text)
        if airlift:
            return Decimal(airlift["value"]) * _AIRLIFT_UNITS[airlift["unit"]]
    return _decimal(value, "duration")


def parse_duration_millis(value: Any) -> int:
    """Parse a duration and return it in whole milliseconds (rounded half up).

    Accepted forms:

    * a JSON number or numeric string: **seconds**, fractional allowed (``12.5``,
      ``12.500000000`` as Jackson writes ``java.time.Duration``);
    * an ISO-8601 duration string: ``PT12.5S``, ``PT1H2M3.004S``, ``P1DT2H``;
    * an airlift duration string: ``250us``, ``150ms``, ``12.50s``, ``3.2m``, ``1.5h``, ``2d``
      (also ``ns``).

    Raises
    ------
    ValueError
        The value is not one of these forms, or is negative (``-PT0.5S``, ``-1``).
    """
    seconds = _duration_seconds(value)
    if seconds < 0:
        raise ValueError(f"negative duration {value!r}")
    millis = _round(seconds * 1000)
    if millis > _INT64_MAX:
        raise ValueError(f"duration {value!r} is out of range")
    return millis


def parse_timestamp(value: Any) -> datetime:
    """Parse an instant and return a timezone-aware UTC datetime (microsecond precision).

    Accepted forms:

    * an ISO-8601 string: ``2025-06-01T10:15:12.345Z``, with an offset
      (``2025-06-01T12:15:12.345+02:00``), or without a zone, which is taken as UTC; digits
      beyond microseconds are dropped;
    * a JSON number or numeric string: epoch **seconds**, fractional allowed (Jackson writes
      ``java.time.Instant`` as ``1748772912.345000000``) -- except that a magnitude above
      ``1e11`` is taken as epoch **milliseconds**. The heuristic is safe both ways: ``1e11``
      seconds is the year 5138, and ``1e11`` milliseconds is March 1973, before any Trino.

    Raises
    ------
    ValueError
        The value is not one of these forms or is outside the years 1-9999.
    """
    if isinstance(value, str) and not _NUMERIC.fullmatch(value.strip()):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"cannot parse timestamp {value!r}") from None
        try:
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        except OverflowError:
            raise ValueError(f"timestamp {value!r} is out of range") from None
    seconds = _decimal(value, "timestamp")
    if abs(seconds) > EPOCH_MILLIS_THRESHOLD:
        seconds /= 1000
    try:
        return _EPOCH + timedelta(microseconds=_round(seconds * 1_000_000))
    except OverflowError:
        raise ValueError(f"timestamp {value!r} is out of range") from None


def _parse_int(value: Any) -> int:
    """A count (bytes, rows, splits): a JSON integer or an integral numeric string."""
    number = _decimal(value, "integer")
    if number != number.to_integral_value():
        raise ValueError(f"cannot parse integer {value!r}: has a fractional part")
    if abs(number) > _INT64_MAX:
        raise ValueError(f"integer {value!r} is out of the int64 range")
    return int(number)


def _parse_float(value: Any) -> float:
    return float(_decimal(value, "number"))


def _text(value: Any) -> str:
    """A string field; a JSON object or list (some serializers nest client info) as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _string_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list of strings, got {type(value).__name__}")
    return [_text(item) for item in value]


def _resource_group(value: Any) -> str:
    """``["global", "adhoc"]`` (Trino's ResourceGroupId as JSON) or ``"global.adhoc"``."""
    if isinstance(value, list):
        return ".".join(_string_list(value))
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a list of segments or a string, got {type(value).__name__}")


def _session_properties(value: Any) -> str:
    """Session properties as compact JSON with sorted keys (a string is kept as given)."""
    if isinstance(value, dict):
        return _text(value)
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a JSON object, got {type(value).__name__}")


# --------------------------------------------------------------------------- event -> row

# (column, JSON path in the QueryCompletedEvent, converter applied to non-null values)
_FIELDS: tuple[tuple[str, str, Callable[[Any], Any]], ...] = (
    ("query_id", "metadata.queryId", _text),
    ("query_state", "metadata.queryState", _text),
    ("query", "metadata.query", _text),
    ("query_type", "context.queryType", _text),
    ("update_type", "metadata.updateType", _text),
    ("user", "context.user", _text),
    ("principal", "context.principal", _text),
    ("source", "context.source", _text),
    ("client_info", "context.clientInfo", _text),
    ("client_tags", "context.clientTags", _string_list),
    ("catalog", "context.catalog", _text),
    ("schema", "context.schema", _text),
    ("resource_group_id", "context.resourceGroupId", _resource_group),
    ("session_properties", "context.sessionProperties", _session_properties),
    ("environment", "context.environment", _text),
    ("server_version", "context.serverVersion", _text),
    ("create_time", "createTime", parse_timestamp),
    ("execution_start_time", "executionStartTime", parse_timestamp),
    ("end_time", "endTime", parse_timestamp),
    ("cpu_time_millis", "statistics.cpuTime", parse_duration_millis),
    ("wall_time_millis", "statistics.wallTime", parse_duration_millis),
    ("queued_time_millis", "statistics.queuedTime", parse_duration_millis),
    ("peak_memory_bytes", "statistics.peakUserMemoryBytes", _parse_int),
    ("peak_task_memory_bytes", "statistics.peakTaskUserMemory", _parse_int),
    ("physical_input_bytes", "statistics.physicalInputBytes", _parse_int),
    ("physical_input_rows", "statistics.physicalInputRows", _parse_int),
    ("total_bytes", "statistics.totalBytes", _parse_int),
    ("total_rows", "statistics.totalRows", _parse_int),
    ("output_bytes", "statistics.outputBytes", _parse_int),
    ("output_rows", "statistics.outputRows", _parse_int),
    ("written_bytes", "statistics.writtenBytes", _parse_int),
    ("written_rows", "statistics.writtenRows", _parse_int),
    ("cumulative_memory", "statistics.cumulativeMemory", _parse_float),
    ("completed_splits", "statistics.completedSplits", _parse_int),
    ("error_code", "failureInfo.errorCode.name", _text),
    ("error_type", "failureInfo.errorCode.type", _text),
    ("failure_type", "failureInfo.failureType", _text),
    ("failure_message", "failureInfo.failureMessage", _text),
)


def _lookup(event: dict[str, Any], path: str) -> Any:
    """The value at a dotted path, or None if any step is absent or null."""
    value: Any = event
    walked: list[str] = []
    for key in path.split("."):
        if value is None:
            return None
        if not isinstance(value, dict):
            raise FieldError(
                ".".join(walked), f"expected a JSON object, got {type(value).__name__}"
            )
        walked.append(key)
        value = value.get(key)
    return value


def _inputs(event: dict[str, Any]) -> list[str]:
    """``ioMetadata.inputs`` as ``catalogName.schema.table`` strings."""
    inputs = _lookup(event, "ioMetadata.inputs")
    if inputs is None:
        return []
    if not isinstance(inputs, list):
        raise FieldError("ioMetadata.inputs", f"expected a list, got {type(inputs).__name__}")
    tables = []
    for index, item in enumerate(inputs):
        parts = []
        for key in ("catalogName", "schema", "table"):
            part = item.get(key) if isinstance(item, dict) else None
            if not isinstance(part, str) or not part:
                raise FieldError(f"ioMetadata.inputs[{index}].{key}", "missing or not a string")
            parts.append(part)
        tables.append(".".join(parts))
    return tables


def event_to_row(event: dict[str, Any]) -> dict[str, Any]:
    """Map one ``QueryCompletedEvent`` (bare, or in a Kafka envelope) to a raw-log row.

    The row has every column of :data:`RAW_SCHEMA`, in order; absent or null fields are
    None (``inputs`` is an empty list). Durations are integer milliseconds, timestamps
    timezone-aware UTC datetimes, byte and row counts integers, ``cumulative_memory``
    byte-seconds as a float.

    Raises
    ------
    FieldError
        (a ValueError) naming the field: the event is not a JSON object, has no
        ``metadata.queryId`` or ``statistics`` (so is not a completed-query event), or a
        value does not parse.
    """
    if not isinstance(event, dict):
        raise FieldError("event", f"expected a JSON object, got {type(event).__name__}")
    if "eventPayload" in event:
        event = event["eventPayload"]
        if not isinstance(event, dict):
            raise FieldError("eventPayload", f"expected a JSON object, got {type(event).__name__}")
    if not _lookup(event, "metadata.queryId"):
        raise FieldError("metadata.queryId", "missing")
    if not isinstance(event.get("statistics"), dict):
        raise FieldError("statistics", "missing (not a QueryCompletedEvent)")
    row: dict[str, Any] = {}
    for column, path, convert in _FIELDS:
        value = _lookup(event, path)
        try:
            row[column] = None if value is None else _unicode(convert(value))
        except ValueError as exc:
            raise FieldError(path, str(exc)) from None
    row["inputs"] = _inputs(event)
    try:
        _unicode(row["inputs"])
    except ValueError as exc:
        raise FieldError("ioMetadata.inputs", str(exc)) from None
    return {c.name: row[c.name] for c in RAW_COLUMNS}


def _unicode(value: Any) -> Any:
    """``value``, unless it is text (or a list of texts) that cannot be written as UTF-8:
    a lone surrogate, which JSON can spell (``"\\ud800"``) but no parquet string holds."""
    for text in value if isinstance(value, list) else (value,):
        if isinstance(text, str):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                code = ord(text[exc.start])
                raise ValueError(
                    f"lone surrogate \\u{code:04x} at character {exc.start} is not Unicode text"
                ) from None
    return value


# --------------------------------------------------------------------------- files


@dataclass
class IngestReport:
    """What one :func:`ingest` run read, wrote and rejected.

    ``rejected`` counts rejected events by kind: the field at fault (``statistics.cpuTime``),
    ``invalid JSON`` or ``not a JSON object``. ``events_read == rows_written + rejected_total``.
    """

    output: Path
    rejected_output: Path
    files_read: int = 0
    events_read: int = 0
    rows_written: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def summary(self) -> str:
        """A few human-readable lines for stderr."""
        lines = [
            f"ingest: {self.files_read} file(s) read, {self.events_read} event(s) read, "
            f"{self.rows_written} row(s) written to {self.output}"
        ]
        if self.rejected:
            lines.append(f"ingest: {self.rejected_total} rejected, see {self.rejected_output}")
            lines += [f"  {n:>6} x {kind}" for kind, n in sorted(self.rejected.items())]
        return "\n".join(lines)


def rejected_path(output: Path) -> Path:
    """The sidecar of rejected lines for ``output``: ``<output>.rejected.jsonl``."""
    return output.with_name(output.name + REJECTED_SUFFIX)


def _input_files(paths: list[Path]) -> list[Path]:
    """Files named, plus the ``*.json``/``*.jsonl``/``*.ndjson`` files under directories."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.suffix in INPUT_SUFFIXES
                and p.is_file()
                and not p.name.endswith(REJECTED_SUFFIX)
            )
            if not found:
                log.warning("no %s files under %s", "/".join(INPUT_SUFFIXES), path)
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"input not found: {path}")
    seen: set[Path] = set()
    unique = []
    for path in files:  # a file named twice (or also under a named directory) is read once
        if path.resolve() not in seen:
            seen.add(path.resolve())
            unique.append(path)
    return unique


def _array_elements(text: str) -> list[tuple[int, str]] | None:
    """(line number, JSON text) of each element if ``text`` is one JSON array, else None."""
    decoder = json.JSONDecoder()
    elements: list[tuple[int, str]] = []
    try:
        pos = _JSON_WS.match(text).end()
        if text[pos] != "[":
            return None
        pos += 1
        line, counted = 1, 0
        while True:
            pos = _JSON_WS.match(text, pos).end()
            if text[pos] == "]" and not elements:
                break
            line, counted = line + text.count("\n", counted, pos), pos
            _, end = decoder.raw_decode(text, pos)
            elements.append((line, text[pos:end]))
            pos = _JSON_WS.match(text, end).end()
            if text[pos] == "]":
                break
            if text[pos] != ",":
                return None
            pos += 1
    except (json.JSONDecodeError, IndexError):
        return None
    return elements if not text[pos + 1 :].strip() else None


def _records(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, JSON text) for each non-blank line, or each element of a JSON array."""
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        first = next((line for line in handle if line.strip()), "")
    if first.lstrip().startswith("["):
        elements = _array_elements(path.read_text(encoding="utf-8-sig", errors="replace"))
        if elements is not None:
            yield from elements
            return
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line.rstrip("\n")


def _parse_record(text: str) -> dict[str, Any]:
    """The row for one JSON text; FieldError (kind = ``field``) if it cannot be one."""
    try:
        event = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FieldError("invalid JSON", f"{exc.msg} at column {exc.colno}") from None
    if not isinstance(event, dict):
        raise FieldError("not a JSON object", f"got {type(event).__name__}")
    return event_to_row(event)


def ingest(paths: list[Path], *, output: Path) -> IngestReport:
    """Convert event-listener JSON files into one raw-log parquet file at ``output``.

    ``paths`` are files, or directories whose ``*.json``, ``*.jsonl`` and ``*.ndjson`` files
    (recursively, sorted) are read. Rows are sorted by (``create_time``, ``query_id``) so the
    same input gives the same file. ``output`` is always written (atomically, empty if no row
    survived) and so is the sidecar ``<output>.rejected.jsonl`` (empty if nothing was
    rejected), so both always describe the latest run.

    Raises
    ------
    FileNotFoundError
        An input path does not exist.
    """
    output = Path(output)
    report = IngestReport(output=output, rejected_output=rejected_path(output))
    rows: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    for path in _input_files(paths):
        report.files_read += 1
        log.info("reading %s", path)
        for line, text in _records(path):
            report.events_read += 1
            try:
                rows.append(_parse_record(text))
            except FieldError as exc:
                report.rejected[exc.field] += 1
                reason = f"line {line}: {exc}"
                rejects.append(
                    {
                        "source": str(path),
                        "line": line,
                        "reason": reason,
                        "text": text[:MAX_REJECTED_TEXT],
                    }
                )
                log.debug("rejected %s %s", path, reason)
    frame = (
        conform(pl.DataFrame(rows, schema=RAW_SCHEMA), origin="ingested events")
        .sort(["create_time", "query_id"], nulls_last=True)
        .collect()
    )
    storage.write_parquet(frame, output)
    with storage.atomic_file(report.rejected_output) as tmp:
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejects))
    report.rows_written = frame.height
    return report
