"""A second, foreign raw query log: SQL the synthetic generator did not write.

    python -m tests.foreign_log --out .cache/foreign-log

The statements are the SQL test fixtures that sqlglot ships in its source distribution
(``tests/fixtures/*.sql`` but the incomplete ``partial.sql``, ``tests/fixtures/optimizer/*.sql``
and the string literals of the Presto, Trino and Athena dialect tests), read straight from the
sdist that ``make test`` downloads into ``.cache/corpus/`` (the version pinned in
``requirements.lock``, checked by sha256). TPC-H and TPC-DS are left out entirely: their
files are skipped, and so is any statement naming one of their tables or key columns, because
they are kept aside as an independent check of the project. Only statements are kept (the
text starts with a statement keyword: fixtures also hold bare expressions like ``x + 1``),
each distinct text once.

Everything else is assigned by a documented deterministic rule, a keyed BLAKE2b hash of the
statement text (:func:`~query_predictor.training.hashing.unit_hash`), so the log is the same
bytes on every machine. Its purpose is to exercise the pipeline and the features on foreign
SQL, not to judge the model:

* **users**: 40 people-like names; 6 of them behave like services (they own ~12 % of the
  statements and run each of them every day at the same minute), the 34 others run a statement
  1-3 times on hash-chosen days, in office hours, mostly its owner and sometimes a colleague.
* **create times**: ``days`` days from ``start``.
* **CPU and memory**: log-normal around a weight of the statement's size, JOINs and SELECTs,
  with noise shared by all runs of a statement plus noise per run, so that some rows are heavy
  (CPU >= 300 s or peak memory > 10 GiB); statements that read no table cost milliseconds.
* **states and error codes**: ~3 % of runs fail with a user error (``SYNTAX_ERROR``...), and a
  share of the most memory- or CPU-hungry runs fail with a resource error
  (``EXCEEDED_LOCAL_MEMORY_LIMIT``, ``EXCEEDED_TIME_LIMIT``).

Only the minimal columns are written (:data:`MINIMAL`: what a label and a routing decision
need); the pipeline derives ``query_type`` from the SQL. Should the raw schema ever require
another column, building the log fails and names it rather than guessing a value.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import hashlib
import io
import math
import re
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import polars as pl

from query_predictor.core.schema import RAW_COLUMNS, RAW_SCHEMA
from query_predictor.storage import atomic_dir, write_parquet
from query_predictor.training.hashing import unit_hash

REPO = Path(__file__).resolve().parents[1]
CORPUS_DIR = REPO / ".cache" / "corpus"
SEED = 11
DIALECT_TESTS = ("test_presto.py", "test_trino.py", "test_athena.py")
SKIPPED = ("partial.sql",)  # deliberately incomplete statements (SELECT a FROM x WHERE)

# The first word of a statement (after comments and parentheses); anything else in the
# fixtures is an expression, a fragment or a placeholder.
_STATEMENT_WORDS = {
    "select", "with", "values", "table", "insert", "create", "drop", "alter", "delete",
    "update", "merge", "explain", "describe", "desc", "show", "use", "set", "reset", "analyze",
    "call", "grant", "revoke", "comment", "truncate", "prepare", "execute", "deallocate",
    "start", "commit", "rollback", "refresh",
}  # fmt: skip
_LEADING = re.compile(r"^(?:\s+|\(|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.S)
_FIRST_WORD = re.compile(r"[A-Za-z_]+")
# TPC-H and TPC-DS: their distinctive tables, TPC-H's key columns, TPC-DS's surrogate keys.
_TPC = re.compile(
    r"\b(?:lineitem|partsupp|store_sales|store_returns|catalog_sales|catalog_returns|web_sales"
    r"|web_returns|date_dim|time_dim|customer_demographics|household_demographics"
    r"|customer_address|call_center|catalog_page|web_page|web_site|ship_mode|income_band"
    r"|[a-z]{1,2}_(?:orderkey|partkey|suppkey|custkey|nationkey|regionkey)|[a-z]+_[a-z_]*_sk)\b",
    re.I,
)

FIRST_NAMES = ("ana", "bruno", "chen", "dara", "emeka", "fatima", "goran", "hana")
LAST_NAMES = ("ito", "kovac", "lund", "moreau", "ndiaye")
USERS = tuple(f"{f}.{last}" for last in LAST_NAMES for f in FIRST_NAMES)  # 40
SERVICE_USERS = USERS[::7][:6]  # ordinary names; only their behaviour tells them apart
HUMAN_USERS = tuple(u for u in USERS if u not in SERVICE_USERS)
USER_ERRORS = ("SYNTAX_ERROR", "TABLE_NOT_FOUND", "COLUMN_NOT_FOUND", "FUNCTION_NOT_FOUND")
GIB = 1 << 30


@dataclass(frozen=True)
class Corpus:
    """The statements taken from one sdist, and how many were left out and why."""

    source: str  # e.g. sqlglot-30.30.0.tar.gz
    statements: tuple[str, ...]
    excluded_tpc: int
    not_statements: int


def default_sdist() -> Path:
    """The sqlglot sdist of the installed (pinned) version in ``.cache/corpus``."""
    return CORPUS_DIR / f"sqlglot-{version('sqlglot')}.tar.gz"


def read_corpus(sdist: Path) -> Corpus:
    """The distinct statements of the sdist's SQL fixtures and dialect tests, TPC left out."""
    if not sdist.is_file():
        raise FileNotFoundError(
            f"SQL corpus {sdist} is missing: run `make test` once (it downloads the sqlglot sdist)"
        )
    seen: dict[str, None] = {}
    excluded_tpc = not_statements = 0
    with tarfile.open(sdist, "r:gz") as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            parts = member.name.split("/")
            if not member.isfile() or "tests" not in parts or any("tpc" in p for p in parts):
                continue
            name = parts[-1]
            if name.endswith(".sql") and "fixtures" in parts and name not in SKIPPED:
                texts = _fixture_statements(_read(archive, member))
            elif "dialects" in parts and name in DIALECT_TESTS:
                texts = _python_strings(_read(archive, member))
            else:
                continue
            for text in texts:
                text = text.strip().rstrip(";").strip()
                if not _is_statement(text):
                    not_statements += 1
                elif _TPC.search(text):
                    excluded_tpc += 1
                else:
                    seen.setdefault(text)
    return Corpus(sdist.name, tuple(seen), excluded_tpc, not_statements)


def _read(archive: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    handle = archive.extractfile(member)
    assert handle is not None  # a regular file, checked by the caller
    with io.TextIOWrapper(handle, encoding="utf-8", errors="replace") as text:
        return text.read()


def _fixture_statements(text: str) -> Iterator[str]:
    """Statements of a fixture file: ``#`` lines are metadata; a ``;`` at a line end ends a
    statement, and in a file without one (``identity.sql``) each line is a statement."""
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    if not any(line.rstrip().endswith(";") for line in lines):
        yield from lines
        return
    for block in re.split(r";[ \t]*(?:\n|$)", "\n".join(lines)):
        kept = [line for line in block.splitlines() if line.strip()]
        if kept:
            yield "\n".join(kept)


def _python_strings(source: str) -> Iterator[str]:
    """Every string literal of a Python test module (f-strings are skipped)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


def _is_statement(text: str) -> bool:
    word = _FIRST_WORD.match(_LEADING.sub("", text, count=1))
    return bool(word) and word.group(0).lower() in _STATEMENT_WORDS


# --------------------------------------------------------------------------- the log


# What a label and a routing decision need: the columns this log has.
MINIMAL = (
    "query_id",
    "query",
    "user",
    "create_time",
    "cpu_time_millis",
    "peak_memory_bytes",
    "query_state",
    "error_code",
)


def _u(key: str, text: str) -> float:
    return unit_hash(f"{key}\x00{text}", SEED)


def _costs(sql: str, run: str) -> tuple[int, int]:
    """(cpu_time_millis, peak_memory_bytes) of one run: log-normal around a weight of size,
    JOINs and SELECTs; half the noise belongs to the statement, half to the run."""
    low = sql.lower()
    if not re.search(r"\bfrom\b", low):
        return 5 + int(200 * _u("cpu", run)), 1_000_000 + int(5e6 * _u("mem", run))
    joins = len(re.findall(r"\bjoin\b", low))
    selects = len(re.findall(r"\bselect\b", low))
    weight = math.log1p(len(sql) / 60) + 0.7 * joins + 0.3 * max(0, selects - 1)
    noise = 3.0 * (_u("cost", sql) - 0.5) + 2.0 * (_u("cost", run) - 0.5)
    cpu_seconds = 10 ** (-0.3 + 0.8 * weight + noise)
    memory = 10 ** (7.3 + 0.6 * weight + 0.8 * noise + 0.6 * (_u("mem", run) - 0.5))
    return int(min(cpu_seconds * 1000, 20 * 24 * 3600 * 1000)), int(min(memory, 2e13))


def _outcome(sql: str, run: str, cpu_millis: int, memory: int) -> tuple[str, str | None]:
    u = _u("fail", run)
    if memory > 10 * GIB and u < 0.3:
        return "FAILED", "EXCEEDED_LOCAL_MEMORY_LIMIT"
    if cpu_millis > 3600 * 1000 and u < 0.2:
        return "FAILED", "EXCEEDED_TIME_LIMIT"
    if u > 0.97:
        return "FAILED", USER_ERRORS[int(_u("error", sql) * len(USER_ERRORS))]
    return "FINISHED", None


def _runs(sql: str, start: dt.date, days: int) -> Iterator[tuple[str, dt.datetime]]:
    """(user, create time) of each run of ``sql``."""
    midnight = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    if _u("service", sql) < 0.12:
        user = SERVICE_USERS[int(_u("owner", sql) * len(SERVICE_USERS))]
        at = dt.timedelta(seconds=int(_u("minute", sql) * 24 * 60) * 60)
        for day in range(days):
            yield user, midnight + dt.timedelta(days=day) + at
        return
    owner = HUMAN_USERS[int(_u("owner", sql) * len(HUMAN_USERS))]
    for n in range(1 + int(_u("runs", sql) * 3)):
        key = f"{n}\x00{sql}"
        user = owner if _u("colleague", key) < 0.7 else HUMAN_USERS[int(_u("who", key) * 34)]
        day = int(_u("day", key) * days)
        seconds = int((7 + 11 * _u("time", key)) * 3600)  # 07:00-18:00 UTC
        yield user, midnight + dt.timedelta(days=day, seconds=seconds)


def build_log(statements: Iterable[str], *, start: dt.date, days: int) -> pl.DataFrame:
    """The raw log of ``statements`` over ``days`` days from ``start``, sorted by time, with
    exactly the columns the raw schema requires."""
    unknown = [c.name for c in RAW_COLUMNS if c.required and c.name not in MINIMAL]
    if unknown:
        raise ValueError(f"the raw schema requires {unknown}: the foreign log has no rule for it")
    rows: dict[str, list] = {c: [] for c in MINIMAL}
    for sql in statements:
        for n, (user, when) in enumerate(_runs(sql, start, days)):
            run = f"{n}\x00{user}\x00{when.isoformat()}\x00{sql}"
            cpu, memory = _costs(sql, run)
            state, error = _outcome(sql, run, cpu, memory)
            digest = hashlib.blake2b(run.encode(), digest_size=5).hexdigest()
            values = {
                "query_id": f"{when:%Y%m%d_%H%M%S}_{digest[:5]}_{digest[5:]}",
                "query": sql,
                "user": user,
                "create_time": when,
                "cpu_time_millis": cpu,
                "peak_memory_bytes": memory,
                "query_state": state,
                "error_code": error,
            }
            for column in rows:
                rows[column].append(values[column])
    frame = pl.DataFrame(rows, schema={c: RAW_SCHEMA[c] for c in rows})
    return frame.sort("create_time", "query_id")


def write_log(frame: pl.DataFrame, out: Path, *, description: str = "") -> None:
    """One ``date=YYYY-MM-DD/part-0.parquet`` per day under ``out`` (replaced as a whole),
    and ``description`` in ``description.txt`` beside them."""
    with atomic_dir(out) as tmp:
        for (day,), part in frame.group_by(pl.col("create_time").dt.date(), maintain_order=True):
            write_parquet(part, tmp / f"date={day}" / "part-0.parquet")
        if description:
            (tmp / "description.txt").write_text(description + "\n")


def describe(corpus: Corpus, frame: pl.DataFrame, *, start: dt.date, days: int) -> str:
    """One line: where the statements come from and what the log holds."""
    heavy = (pl.col("cpu_time_millis") >= 300_000) | (pl.col("peak_memory_bytes") > 10 * GIB)
    failed = pl.col("query_state") == "FAILED"
    heavy_share, failed_share = frame.select(heavy.mean(), failed.mean()).row(0)
    return (
        f"{len(corpus.statements):,} distinct statements of the SQL fixtures and Presto/Trino/"
        f"Athena dialect tests in {corpus.source} ({corpus.excluded_tpc} naming TPC-H/TPC-DS "
        f"tables and {corpus.not_statements:,} expressions left out; tests/foreign_log.py), "
        f"{frame.height:,} runs by {frame['user'].n_unique()} users over {days} days from "
        f"{start}, heavy share {heavy_share:.3f}, failed {failed_share:.3f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory of the raw log")
    parser.add_argument("--sdist", type=Path, default=None, help="sqlglot sdist (.tar.gz)")
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2024, 3, 4))
    parser.add_argument("--days", type=int, default=21)
    args = parser.parse_args(argv)
    corpus = read_corpus(args.sdist or default_sdist())
    frame = build_log(corpus.statements, start=args.start, days=args.days)
    description = describe(corpus, frame, start=args.start, days=args.days)
    write_log(frame, args.out, description=description)
    print(f"{description} -> {args.out}")


if __name__ == "__main__":
    main()
