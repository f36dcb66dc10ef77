"""From latent work to what Trino's event listener records: noise, limits and failures.

Resource use follows the plan's work but not exactly: a per-plan hidden factor (data skew,
file layout) makes some recurring queries reliably heavier than their text suggests; each run
varies by about +-10 %; a few runs hit a heavy tail (stragglers, spill, retries). Failures
depend on the query *and* the cluster: resource-group limits, load at that hour, people
cancelling slow queries, flaky metastores. That is the label noise real logs carry.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from .plans import Work
from .world import GB, MB

USER_ERROR, INSUFFICIENT = "USER_ERROR", "INSUFFICIENT_RESOURCES"
INTERNAL, EXTERNAL = "INTERNAL_ERROR", "EXTERNAL"


@dataclass(frozen=True)
class Limits:
    """Resource-group limits (query.max-memory, query.max-cpu-time, query.max-execution-time)."""

    memory_bytes: float
    cpu_seconds: float
    wall_seconds: float


LIMITS = {
    "dashboards": Limits(40 * GB, 4 * 3600, 15 * 60),
    "adhoc": Limits(80 * GB, 6 * 3600, 2 * 3600),
    "etl": Limits(160 * GB, 24 * 3600, 4 * 3600),
    "curated": Limits(300 * GB, 48 * 3600, 8 * 3600),
    "system": Limits(8 * GB, 600, 300),
    "maintenance": Limits(120 * GB, 24 * 3600, 6 * 3600),
}


def limits_for(resource_group: str) -> Limits:
    part = resource_group.split(".")[1] if "." in resource_group else "adhoc"
    return LIMITS.get(part, LIMITS["adhoc"])


@dataclass
class Outcome:
    cpu_seconds: float
    memory_bytes: float
    wall_seconds: float
    queued_seconds: float
    fraction_done: float  # share of the work done before a failure
    error_code: str | None = None
    error_type: str | None = None
    failure_type: str | None = None
    failure_message: str | None = None


def _fail(o: Outcome, code: str, kind: str, cls: str, message: str, done: float) -> Outcome:
    o.cpu_seconds *= done
    o.wall_seconds *= max(done, 0.01)
    o.memory_bytes *= min(1.0, 0.3 + done)
    o.fraction_done = done
    o.error_code, o.error_type, o.failure_type, o.failure_message = code, kind, cls, message
    return o


def _size(n: float) -> str:
    return f"{n / GB:.2f}GB" if n >= GB else f"{n / MB:.2f}MB"


def execute(
    rng: random.Random,
    work: Work,
    *,
    hidden: float,
    load: float,
    human: bool,
    resource_group: str,
    parse_error_rate: float,
    catalog: str,
) -> Outcome:
    """Run ``work`` once on a cluster at relative ``load`` (1.0 = average hour)."""
    tail = rng.paretovariate(1.6) if rng.random() < 0.02 else 1.0
    run_noise = math.exp(rng.gauss(0.0, 0.1))
    cpu = work.cpu_seconds * hidden * run_noise * tail
    memory = work.memory_bytes * hidden**0.7 * math.exp(rng.gauss(0.0, 0.12)) * tail**0.5
    parallelism = min(96.0, max(1.0, work.scanned_bytes / (256 * MB)))
    wall = 0.04 + rng.uniform(0.0, 0.15) + cpu / parallelism * load * math.exp(rng.gauss(0, 0.2))
    queued = rng.expovariate(1.0) * 0.05 * load**3
    if rng.random() < 0.02 * load:
        queued += rng.uniform(1.0, 60.0)
    o = Outcome(cpu, memory, wall, queued, 1.0)
    limits = limits_for(resource_group)

    if rng.random() < parse_error_rate:
        token = rng.choice(["FORM", "GROUPBY", "SELCT", "WHER", ")"])
        return _fail(
            o,
            "SYNTAX_ERROR",
            USER_ERROR,
            "io.trino.sql.parser.ParsingException",
            f"line 1:{rng.randint(8, 80)}: mismatched input '{token}'.",
            0.0,
        )
    if human and rng.random() < 0.006:
        return _fail(
            o,
            "TABLE_NOT_FOUND" if rng.random() < 0.6 else "COLUMN_NOT_FOUND",
            USER_ERROR,
            "io.trino.spi.TrinoException",
            "line 3:6: Table or column does not exist",
            0.0,
        )
    if load > 1.5 and rng.random() < 0.004 * load:
        return _fail(
            o,
            "QUERY_QUEUE_FULL",
            INSUFFICIENT,
            "io.trino.spi.TrinoException",
            f'Too many queued queries for "{resource_group}"',
            0.0,
        )
    if catalog in ("mysql", "postgresql") and rng.random() < 0.004:
        return _fail(
            o,
            "JDBC_ERROR",
            EXTERNAL,
            "io.trino.spi.TrinoException",
            "Communications link failure",
            rng.random(),
        )
    if catalog == "hive" and rng.random() < 0.0008:
        return _fail(
            o,
            "HIVE_METASTORE_ERROR",
            EXTERNAL,
            "io.trino.spi.TrinoException",
            "Failed connecting to Hive metastore",
            rng.random() * 0.2,
        )
    if rng.random() < 0.0015:
        return _fail(
            o,
            rng.choice(["REMOTE_TASK_ERROR", "PAGE_TRANSPORT_TIMEOUT", "GENERIC_INTERNAL_ERROR"]),
            INTERNAL,
            "io.trino.spi.TrinoException",
            "Encountered too many errors talking to a worker node",
            rng.random(),
        )
    if memory > limits.memory_bytes:
        done = min(1.0, limits.memory_bytes / memory) * rng.uniform(0.5, 1.0)
        local = rng.random() < 0.4
        o = _fail(
            o,
            "EXCEEDED_LOCAL_MEMORY_LIMIT" if local else "EXCEEDED_GLOBAL_MEMORY_LIMIT",
            INSUFFICIENT,
            "io.trino.ExceededMemoryLimitException",
            f"Query exceeded {'per-node' if local else 'distributed'} user memory limit "
            f"of {_size(limits.memory_bytes / (8 if local else 1))}",
            done,
        )
        o.memory_bytes = limits.memory_bytes * rng.uniform(0.9, 1.0) / (8 if local else 1)
        return o
    if cpu > limits.cpu_seconds:
        o = _fail(
            o,
            "EXCEEDED_CPU_LIMIT",
            INSUFFICIENT,
            "io.trino.ExceededCpuLimitException",
            f"Query exceeded the maximum CPU time limit of {limits.cpu_seconds / 3600:.2f}h",
            limits.cpu_seconds / cpu,
        )
        return o
    if wall > limits.wall_seconds:
        return _fail(
            o,
            "EXCEEDED_TIME_LIMIT",
            INSUFFICIENT,
            "io.trino.spi.TrinoException",
            f"Query exceeded maximum time limit of {limits.wall_seconds / 60:.2f}m",
            limits.wall_seconds / wall,
        )
    if memory > 2 * GB and load > 1.3 and rng.random() < 0.05:
        return _fail(
            o,
            "CLUSTER_OUT_OF_MEMORY",
            INSUFFICIENT,
            "io.trino.spi.TrinoException",
            "Query killed because the cluster is out of memory. Please try again in a few minutes.",
            rng.uniform(0.2, 0.9),
        )
    if memory > 20 * GB and rng.random() < 0.05:
        return _fail(
            o,
            "EXCEEDED_SPILL_LIMIT",
            INSUFFICIENT,
            "io.trino.spi.TrinoException",
            "Query exceeded per-query local spill limit of 100GB",
            rng.uniform(0.3, 0.9),
        )
    if rng.random() < 0.0005:
        return _fail(
            o,
            "ADMINISTRATIVELY_PREEMPTED",
            INSUFFICIENT,
            "io.trino.spi.TrinoException",
            "Query preempted by the administrator",
            rng.random(),
        )
    if human and wall > 60 and rng.random() < min(0.5, 0.05 * math.log(wall / 30.0) + 0.05):
        return _fail(
            o,
            "USER_CANCELED",
            USER_ERROR,
            "io.trino.spi.TrinoException",
            "Query was canceled",
            rng.uniform(0.05, 0.9),
        )
    return o
