"""Stage ``generate``: a deterministic synthetic Trino query log, one parquet file per day.

    python stages/generate.py

Workloads and their habits:

* dashboards (BI service accounts) re-render fixed charts with today's dates, 3-30 queries
  per render, mostly over small aggregate tables, a few over raw facts;
* ETL jobs (Airflow, dbt) run INSERT / CTAS over joins at their cron hour; curated pipelines
  run in ``global.curated.*`` resource groups, team jobs in ``global.etl.adhoc``;
* analysts and data scientists work in sessions: saved queries, fresh ad hoc queries, re-runs
  and edits; engineers EXPLAIN, SET SESSION, USE and peek at ``system`` tables;
* BI tools and people introspect metadata (SHOW, DESCRIBE, information_schema);
* monitoring pings and platform maintenance (ANALYZE, ALTER TABLE EXECUTE).

Recurring templates (dashboards, jobs, saved and notebook queries) arrive every day and retire
after a while (``synth.new_template_share``); a few of them are wide queries over 10-40 tables.

Each day uses its own random stream seeded by (``synth.seed``, day), so days are generated in
parallel and the output does not depend on the number of workers.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import multiprocessing
import os
import random
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from tqdm import tqdm

from query_predictor.core.label import LabelRule, workload
from query_predictor.core.schema import RAW_SCHEMA
from query_predictor.params import DataLoading, Filters, Synth
from query_predictor.storage import atomic_dir, write_parquet

from .execution import execute
from .plans import COMMENT_TEXTS, Plan, Work, pick_weighted, plan_for, render, work
from .world import GB, ICEBERG_PARTITIONS, Table, User, World, build_world, without_drift, written

# Share of each workload in the query count (metadata and curated shares come from params).
BASE_SHARES = {
    "bi": 0.44,
    "etl": 0.06,
    "analyst": 0.24,
    "data_scientist": 0.08,
    "engineer": 0.06,
    "monitoring": 0.1,
    "maintenance": 0.02,
}
HUMAN = ("analyst", "data_scientist", "engineer")
WEEKEND = {"bi": 0.5, "analyst": 0.35, "data_scientist": 0.4, "engineer": 0.4, "metadata": 0.5}
# UTC hour profile of interactive work (peaks ~2x the mean in business hours).
HOURLY = [
    0.3,
    0.25,
    0.2,
    0.2,
    0.2,
    0.25,
    0.35,
    0.5,
    0.7,
    0.9,
    1.1,
    1.3,
    1.5,
    1.7,
    1.9,
    2.0,
    2.0,
    1.9,
    1.8,
    1.6,
    1.3,
    1.0,
    0.7,
    0.45,
]
UPGRADE_DAY = dt.date(2025, 7, 8)
# synth.new_template_share is the share of recurring templates first run within this many
# days, among those run in them.
NEW_WINDOW_DAYS = 14
# Probability that a recurring template is a wide query (10-40 tables): report charts,
# ETL jobs, saved notebook queries.
WIDE = {"dashboard": 0.01, "etl": 0.06, "analyst": 0.01, "data_scientist": 0.03, "engineer": 0.0}


@dataclass
class Recurring:
    """A plan run again and again: a dashboard chart, an ETL step or a saved query."""

    plan: Plan
    user_index: int
    start_day: int
    end_day: int
    hour: int = 0
    minute: int = 0
    runs_per_day: int = 1
    client_info: str | None = None
    pre: list[str] = field(default_factory=list)
    partition: str = "event_date"  # the target's partition column (DELETE before INSERT)


@dataclass
class Dashboard:
    charts: list[Recurring]
    rate: float  # renders per weekday
    dashboard_id: int


@dataclass
class Catalogue:
    world: World
    dashboards: list[Dashboard]
    jobs: list[Recurring]
    saved: dict[int, list[Recurring]]


def _shares(synth: Synth) -> dict[str, float]:
    rest = 1.0 - synth.metadata_share - synth.curated_share
    total = sum(BASE_SHARES.values())
    shares = {k: v / total * rest for k, v in BASE_SHARES.items()}
    shares["metadata"] = synth.metadata_share
    shares["etl_curated"] = synth.curated_share
    return shares


def _lifetimes(
    rng: random.Random, share: float, n_days: int
) -> tuple[Callable[[], tuple[int, int]], float]:
    """Start and end days of recurring templates, and how many to draw per live one.

    Templates arrive every day and retire after an exponential lifetime, so the live pool
    stays the same size. The mean lifetime is chosen so that of the templates live in any
    :data:`NEW_WINDOW_DAYS` days, ``share`` first ran within them (arrivals over window /
    (pool + arrivals over window)). ``share`` 0 keeps every template for the whole range.
    """
    if share <= 0.0:
        return (lambda: (0, n_days + 1000)), 1.0
    mean = NEW_WINDOW_DAYS * (1.0 - share) / share
    arrivals = n_days / mean  # per live template over the range

    def lifetime() -> tuple[int, int]:
        start = 0 if rng.random() < 1.0 / (1.0 + arrivals) else rng.randint(1, n_days - 1)
        return start, start + max(3, round(rng.expovariate(1.0 / mean)))

    return lifetime, 1.0 + arrivals


def _wide_pool(rng: random.Random, world: World, base: list[Table], start: int) -> list[Table]:
    """Tables for a wide query: the owner's, then (mostly) dimensions and aggregates from the
    whole catalog, about as many as a 10-40 table report or ETL query needs."""
    extra = [t for t in world.tables if t.created_day <= start and t not in base]
    weight = {"dim": 4.0, "agg": 2.0, "ops": 1.0, "fact": 1.0}
    # weighted sampling without replacement (Efraimidis-Spirakis keys)
    keyed = sorted(extra, key=lambda t: -(rng.random() ** (1.0 / weight[t.role])))
    return base + keyed[:45]


def _wide_joins(rng: random.Random) -> int:
    """Joins of a wide query: 9-39 (10-40 tables), log-uniform, so 10-20 is the common case."""
    return int(math.exp(rng.uniform(math.log(9), math.log(40))))


def _target_name(rng: random.Random, team: str, source: str, j: int) -> str:
    """Where an ETL job writes, named in one of the styles teams use."""
    base = source.lower().replace(" ", "_").replace("-", "_")
    schema = rng.choice(["hive.tmp", "hive.stage_01", "iceberg.marts", "iceberg.sandbox"])
    name = rng.choice(
        [
            f"{team}_{base}_{j}",
            f"stg_{base}_v{j % 5 + 1}",
            f"{team.capitalize()}{base.title().replace('_', '')}{j}",
            f"tmp_{team}_{j}",
            f"{base}_out",
        ]
    )
    return f"{schema}.{name}"


def build_catalogue(synth: Synth) -> Catalogue:
    n_days = (synth.end_date - synth.start_date).days + 1
    world = build_world(synth.seed, n_days)
    if not synth.drift:
        world = without_drift(world)
    rng = random.Random(synth.seed + 1)
    shares = _shares(synth)
    users = world.users
    lifetime, per_live = _lifetimes(rng, synth.new_template_share, n_days)

    def alive(tables: list[Table], start: int) -> list[Table]:
        return [t for t in tables if t.created_day <= start] or tables

    def tables_for(u: User, start: int, wide: float) -> tuple[list[Table], int | None]:
        """Tables ``u`` queries from ``start`` and, with probability ``wide``, the joins of
        a wide query over them (else None)."""
        tables = alive(u.tables, start)
        if rng.random() >= wide:
            return tables, None
        return _wide_pool(rng, world, tables, start), _wide_joins(rng)

    dashboards: list[Dashboard] = []
    bi = [i for i, u in enumerate(users) if u.kind == "bi"]
    mean_renders = synth.queries_per_day * shares["bi"] / (16.5 * 4.0)
    for d in range(max(4, round(mean_renders * per_live))):
        ui = rng.choice(bi)
        u = users[ui]
        start, end = lifetime()
        charts = []
        for c in range(rng.randint(3, 30)):
            tables, n_joins = tables_for(u, start, WIDE["dashboard"])
            plan = plan_for(rng, u, tables, profile="dashboard", n_joins=n_joins)
            if u.style.get("comment") and rng.random() < 0.5:
                plan.comment = f"dashboard {d}: chart {c}"
            info = json.dumps({"dashboard_id": 1000 + d, "chart_id": c})
            charts.append(Recurring(plan, ui, start, end, client_info=info))
        dashboards.append(Dashboard(charts, math.exp(rng.gauss(1.0, 0.8)), 1000 + d))

    jobs: list[Recurring] = []
    for kind in ("etl_curated", "etl"):
        owners = [i for i, u in enumerate(users) if u.kind == kind]
        n_jobs = max(2, round(synth.queries_per_day * shares[kind] / 3.3 * per_live))
        for j in range(n_jobs):
            ui = rng.choice(owners)
            u = users[ui]
            start, end = lifetime()
            start = max(start, u.start_day)
            lake, n_joins = tables_for(u, start, WIDE["etl"])
            statement = "ctas" if rng.random() < 0.3 else "insert"
            target = _target_name(rng, u.team, rng.choice(lake).name, j)
            stamped = statement == "ctas" and rng.random() < 0.5
            plan = plan_for(
                rng,
                u,
                lake,
                profile="etl",
                discipline=1.0,
                statement=statement,
                target=f"{target}_{{day}}" if stamped else target,
                n_joins=n_joins,
            )
            if u.style.get("comment"):
                plan.comment = f"airflow dag {u.team}_daily_{j}, task load_{plan.fact.name}"
            info = json.dumps({"dag_id": f"{u.team}_daily_{j}", "task_id": f"load_{j}"})
            pre = []
            if statement == "insert" and target.startswith("iceberg") and rng.random() < 0.5:
                pre.append("delete")
            if statement == "ctas" and (not stamped or rng.random() < 0.5):
                pre.append("drop")
            runs = rng.choices([1, 4, 24], weights=[0.8, 0.15, 0.05])[0]
            jobs.append(
                Recurring(
                    plan,
                    ui,
                    start,
                    end,
                    rng.choice([0, 1, 2, 3, 4, 5, 6, 12]),
                    rng.choice([0, 0, 15, 30, 45]),
                    runs,
                    info,
                    pre,
                    pick_weighted(rng, [(n, w) for n, _, w in ICEBERG_PARTITIONS]),
                )
            )

    saved: dict[int, list[Recurring]] = {}
    for ui, u in enumerate(users):
        if u.kind not in HUMAN:
            continue
        items = []
        for _ in range(round(rng.randint(2, 8) * per_live)):
            start, end = lifetime()
            start = max(start, u.start_day)
            tables, n_joins = tables_for(u, start, WIDE[u.kind])
            plan = plan_for(rng, u, tables, n_joins=n_joins)
            items.append(Recurring(plan, ui, start, end))
        saved[ui] = items
    return Catalogue(world, dashboards, jobs, saved)


# ------------------------------------------------------------------------------------------
# One day


class Day:
    """Collects the rows of one day; every row goes through :meth:`emit`."""

    def __init__(self, cat: Catalogue, synth: Synth, index: int) -> None:
        self.cat, self.synth, self.index = cat, synth, index
        self.date = synth.start_date + dt.timedelta(days=index)
        self.rng = random.Random(synth.seed * 1_000_003 + index)
        self.weekend = self.date.weekday() >= 5
        n_days = cat.world.n_days
        growth = synth.volume_growth if synth.drift else 0.0
        self.volume = 1.0 + growth * (index / max(1, n_days - 1) - 0.5)
        self.midnight = dt.datetime.combine(self.date, dt.time(), tzinfo=dt.UTC)
        self.rows: list[dict[str, object]] = []
        self.recurring = 0

    # -- helpers ---------------------------------------------------------------------------

    def quota(self, kind: str) -> int:
        share = _shares(self.synth)[kind]
        factor = WEEKEND.get(kind, 1.0) if self.weekend else 1.0
        weekly = (5 + 2 * WEEKEND.get(kind, 1.0)) / 7
        mean = self.synth.queries_per_day * share * self.volume * factor / weekly
        return max(0, round(self.rng.gauss(mean, math.sqrt(max(mean, 1.0)))))

    def busy_time(self) -> dt.datetime:
        hour = self.rng.choices(range(24), weights=HOURLY)[0]
        return self.midnight + dt.timedelta(hours=hour, seconds=self.rng.uniform(0, 3600))

    def load_at(self, when: dt.datetime) -> float:
        base = HOURLY[when.hour] / 1.0
        return max(0.4, base * (0.7 if self.weekend else 1.0) * math.exp(self.rng.gauss(0, 0.1)))

    def active_users(self, kind: str) -> list[int]:
        return [
            i
            for i, u in enumerate(self.cat.world.users)
            if u.kind == kind and u.start_day <= self.index
        ]

    # -- the one place rows are made --------------------------------------------------------

    def emit(
        self,
        *,
        user_index: int,
        sql: str,
        when: dt.datetime,
        query_type: str,
        update_type: str | None,
        plan: Plan | None,
        inputs: list[str],
        cpu: float = 0.0,
        memory: float = 0.0,
        client_info: str | None = None,
        recurring: bool = False,
        session: dict[str, str] | None = None,
    ) -> None:
        rng = self.rng
        user = self.cat.world.users[user_index]
        human = user.kind in HUMAN
        load = self.load_at(when)
        if plan is not None:
            w = work(plan, self.index)
            hidden = 1.0 if plan.statement == "explain" else plan.hidden
            catalog = plan.fact.catalog
        else:
            w = Work(cpu, memory, 0.0, 0.0, rng.randint(1, 200), 0.0, 1)
            hidden, catalog = 1.0, user.style.get("catalog", "hive")
        parse_rate = {"analyst": 0.02, "data_scientist": 0.015, "engineer": 0.025}.get(
            user.kind, 0.0005
        )
        out = execute(
            rng,
            w,
            hidden=hidden,
            load=load,
            human=human,
            resource_group=user.resource_group,
            parse_error_rate=parse_rate,
            catalog=str(catalog),
        )
        queued = dt.timedelta(seconds=out.queued_seconds)
        start = when + queued
        end = start + dt.timedelta(seconds=out.wall_seconds)
        done = out.fraction_done
        scanned = w.scanned_bytes * done
        rows_in = w.input_rows * done
        output_rows = 0 if out.error_code else round(w.output_rows)
        written = 0 if out.error_code else w.written_bytes
        self.recurring += recurring
        tags = {
            "bi": ["dashboard", f"team:{user.team}"],
            "etl": ["scheduled", f"team:{user.team}"],
            "etl_curated": ["scheduled", f"team:{user.team}"],
        }.get(user.kind, [])
        if user.source == "superset" and human:
            tags = ["sqllab"]
        catalog_default = plan.fact.catalog if plan else "hive"
        schema_default = plan.fact.schema.lower() if plan else None
        self.rows.append(
            {
                "query_state": "FAILED" if out.error_code else "FINISHED",
                "query": sql,
                "query_type": query_type,
                "update_type": update_type,
                "user": user.name,
                "principal": user.principal,
                "source": user.source,
                "client_info": client_info,
                "client_tags": tags,
                "catalog": catalog_default,
                "schema": schema_default,
                "resource_group_id": user.resource_group,
                "session_properties": json.dumps(session or {}, sort_keys=True),
                "environment": "prod",
                "server_version": "476" if self.date >= UPGRADE_DAY else "472",
                "create_time": when,
                "execution_start_time": start,
                "end_time": end,
                "cpu_time_millis": round(out.cpu_seconds * 1000),
                "wall_time_millis": round((out.wall_seconds + out.queued_seconds) * 1000),
                "queued_time_millis": round(out.queued_seconds * 1000),
                "peak_memory_bytes": round(out.memory_bytes),
                "peak_task_memory_bytes": round(
                    out.memory_bytes / max(1.0, scanned / (512 * 2**20))
                ),
                "physical_input_bytes": round(scanned),
                "physical_input_rows": round(rows_in),
                "total_bytes": round(scanned * 1.04),
                "total_rows": round(rows_in),
                "output_bytes": output_rows * 48,
                "output_rows": output_rows,
                "written_bytes": round(written),
                "written_rows": round(written / 60),
                "cumulative_memory": out.memory_bytes * out.wall_seconds * 0.4,
                "completed_splits": round(scanned / (64 * 2**20)) + w.stages,
                "error_code": out.error_code,
                "error_type": out.error_type,
                "failure_type": out.failure_type,
                "failure_message": out.failure_message,
                "inputs": inputs,
            }
        )

    def run_plan(
        self,
        plan: Plan,
        user_index: int,
        when: dt.datetime,
        *,
        client_info: str | None = None,
        recurring: bool = False,
        session: dict[str, str] | None = None,
    ) -> None:
        user = self.cat.world.users[user_index]
        sql = render(plan, self.date, self.rng, user.style)
        qtype, utype = {
            "select": ("SELECT", None),
            "insert": ("INSERT", "INSERT"),
            "ctas": ("INSERT", "CREATE TABLE"),
            "explain": ("EXPLAIN", None),
            "explain_analyze": ("EXPLAIN", None),
        }[plan.statement]
        inputs = [plan.fact.fqn] + [j.table.fqn for j in plan.joins]
        if plan.set_op and plan.second is not None:
            inputs.append(plan.second.fqn)
        self.emit(
            user_index=user_index,
            sql=sql,
            when=when,
            query_type=qtype,
            update_type=utype,
            plan=plan,
            inputs=sorted(set(inputs)),
            client_info=client_info,
            recurring=recurring,
            session=session,
        )

    # -- workloads --------------------------------------------------------------------------

    def dashboards(self) -> None:
        quota = self.quota("bi")
        live = [
            d
            for d in self.cat.dashboards
            if d.charts[0].start_day <= self.index < d.charts[0].end_day
        ]
        if not live:
            return
        weights = [d.rate for d in live]
        emitted = 0
        while emitted < quota:
            dash = self.rng.choices(live, weights=weights)[0]
            when = self.busy_time()
            for chart in dash.charts:
                at = when + dt.timedelta(seconds=self.rng.uniform(0, 3))
                self.run_plan(
                    chart.plan, chart.user_index, at, client_info=chart.client_info, recurring=True
                )
                if self.rng.random() < 0.004:  # client retry: same text, new query id
                    again = at + dt.timedelta(seconds=self.rng.uniform(1, 20))
                    self.rows.append(
                        dict(
                            self.rows[-1],
                            create_time=again,
                            execution_start_time=again,
                            end_time=again + (self.rows[-1]["end_time"] - at),
                        )
                    )
            emitted += len(dash.charts)

    def jobs(self) -> None:
        for job in self.cat.jobs:
            if not job.start_day <= self.index < job.end_day:
                continue
            user = self.cat.world.users[job.user_index]
            for run in range(job.runs_per_day):
                hour = (job.hour + run * (24 // job.runs_per_day)) % 24
                when = self.midnight + dt.timedelta(
                    hours=hour, minutes=job.minute, seconds=self.rng.uniform(0, 90)
                )
                target = job.plan.target or ""
                if "delete" in job.pre:
                    day = self.date - dt.timedelta(days=1)
                    sql = f"DELETE FROM {target} WHERE {job.partition} = DATE '{day}'"
                    self.emit(
                        user_index=job.user_index,
                        sql=sql,
                        when=when,
                        query_type="DELETE",
                        update_type="DELETE",
                        plan=None,
                        inputs=[target],
                        cpu=self.rng.uniform(0.5, 20),
                        memory=self.rng.uniform(5, 200) * 2**20,
                        recurring=True,
                    )
                    when += dt.timedelta(seconds=self.rng.uniform(2, 30))
                if "drop" in job.pre:
                    old = (self.date - dt.timedelta(days=7)).strftime("%Y%m%d")
                    self.emit(
                        user_index=job.user_index,
                        sql=f"DROP TABLE IF EXISTS {target.replace('{day}', old)}",
                        when=when,
                        query_type="DATA_DEFINITION",
                        update_type="DROP TABLE",
                        plan=None,
                        inputs=[],
                        cpu=0.01,
                        memory=2**20,
                        recurring=True,
                    )
                    when += dt.timedelta(seconds=self.rng.uniform(1, 5))
                session = {"scale_writers": "true"}
                if user.kind == "etl_curated":
                    session["query_max_execution_time"] = "8h"
                self.run_plan(
                    job.plan,
                    job.user_index,
                    when,
                    client_info=job.client_info,
                    recurring=True,
                    session=session,
                )

    def sessions(self, kind: str) -> None:
        quota = self.quota(kind)
        people = self.active_users(kind)
        if not people:
            return
        weights = [self.cat.world.users[i].weight for i in people]
        emitted = 0
        rng = self.rng
        while emitted < quota:
            ui = rng.choices(people, weights=weights)[0]
            user = self.cat.world.users[ui]
            when = self.busy_time()
            saved = [s for s in self.cat.saved.get(ui, []) if s.start_day <= self.index < s.end_day]
            last: Plan | None = None
            tables = [t for t in user.tables if t.created_day <= self.index] or user.tables
            for _ in range(rng.randint(2, 14)):
                when += dt.timedelta(seconds=rng.expovariate(1 / 150.0))
                u = rng.random()
                session = {"query_max_execution_time": "2h"} if rng.random() < 0.05 else None
                if kind == "engineer" and u < 0.45:
                    self.engineer_statement(ui, when, tables)
                    emitted += 1
                    continue
                recurring = False
                if saved and u < 0.45:
                    plan, recurring = rng.choice(saved).plan, True
                elif last is not None and u < 0.55:
                    plan, recurring = last, True  # re-run the same query
                elif last is not None and u < 0.7:
                    plan = last.with_changes(  # edit: another window or limit
                        lookback=rng.choice(user.lookback) if last.lookback else None,
                        years=None,
                        limit=rng.choice([None, 10, 100, 1000]),
                    )
                else:
                    profile = "analyst" if kind == "engineer" else kind
                    plan = plan_for(rng, user, tables, profile=profile)
                    if user.style.get("comment") and rng.random() < 0.4:
                        plan.comment = rng.choice(COMMENT_TEXTS).format(
                            n=rng.randint(1, 9999), team=user.team, tool=user.source
                        )
                if kind == "data_scientist" and rng.random() < 0.15:
                    session = {"join_distribution_type": "BROADCAST"}
                self.run_plan(plan, ui, when, recurring=recurring, session=session)
                last = plan
                emitted += 1

    def engineer_statement(self, ui: int, when: dt.datetime, tables: list) -> None:
        rng = self.rng
        user = self.cat.world.users[ui]
        t = rng.choice(tables)
        u = rng.random()
        if u < 0.3:
            statement = "explain_analyze" if rng.random() < 0.12 else "explain"
            plan = plan_for(rng, user, tables, profile="analyst", statement=statement)
            self.run_plan(plan, ui, when)
        elif u < 0.75:
            prop = rng.choice(
                [
                    "query_max_run_time = '2h'",
                    "join_distribution_type = 'PARTITIONED'",
                    "hive.parquet_use_column_names = true",
                    "task_concurrency = 8",
                    "optimize_hash_generation = false",
                ]
            )
            sql, update_type = rng.choices(
                [
                    (f"SET SESSION {prop}", "SET SESSION"),
                    (f"RESET SESSION {prop.split(' =')[0]}", "RESET SESSION"),
                    (f"USE {t.catalog}.{written(t.schema)}", "USE"),
                ],
                weights=[0.2, 0.1, 0.15],
            )[0]
            self.emit(
                user_index=ui,
                sql=sql,
                when=when,
                query_type="DATA_DEFINITION",
                update_type=update_type,
                plan=None,
                inputs=[],
            )
        else:
            sql = rng.choice(
                [
                    "SELECT query_id, state, user, query FROM system.runtime.queries "
                    "WHERE state = 'RUNNING' ORDER BY created DESC",
                    "SELECT node_id, http_uri, state FROM system.runtime.nodes",
                    "SELECT * FROM system.runtime.tasks WHERE state <> 'FINISHED' LIMIT 100",
                    f'SELECT count(*) FROM "{t.catalog}"."{t.schema}"."{t.name}$partitions"'
                    if t.partition_col
                    else "SELECT now()",
                ]
            )
            self.emit(
                user_index=ui,
                sql=sql,
                when=when,
                query_type="SELECT",
                update_type=None,
                plan=None,
                inputs=["system.runtime.queries"] if "runtime" in sql else [],
                cpu=rng.uniform(0.01, 2.0),
                memory=rng.uniform(1, 50) * 2**20,
            )

    def metadata(self) -> None:
        quota = self.quota("metadata")
        rng = self.rng
        users = self.cat.world.users
        pools = {k: self.active_users(k) for k in ("bi", "analyst", "engineer", "data_scientist")}
        emitted = 0
        tables = self.cat.world.tables
        while emitted < quota:
            kind = rng.choices(
                ["bi", "analyst", "engineer", "data_scientist"], weights=[0.5, 0.25, 0.15, 0.1]
            )[0]
            ui = rng.choice(pools[kind])
            when = self.busy_time()
            for _ in range(rng.randint(1, 6 if kind == "bi" else 3)):
                t = rng.choice(users[ui].tables or tables)
                statements = [
                    ("SHOW CATALOGS", "DESCRIBE", 0.01),
                    (f"SHOW SCHEMAS FROM {t.catalog}", "DESCRIBE", 0.05),
                    (f"SHOW TABLES FROM {t.catalog}.{written(t.schema)}", "DESCRIBE", 0.05),
                    (
                        f"SHOW TABLES FROM {t.catalog}.{written(t.schema)} "
                        f"LIKE '%{t.name[:4].lower()}%'",
                        "DESCRIBE",
                        0.05,
                    ),
                    (f"DESCRIBE {t.ref}", "DESCRIBE", 0.05),
                    (f"SHOW COLUMNS FROM {t.ref}", "DESCRIBE", 0.05),
                    (f"SHOW CREATE TABLE {t.ref}", "DESCRIBE", 0.05),
                    (f"SHOW STATS FOR {t.ref}", "DESCRIBE", 0.8),
                    ("SHOW FUNCTIONS", "DESCRIBE", 0.2),
                    ("SHOW SESSION", "DESCRIBE", 0.02),
                    (
                        f"SELECT table_name, table_type FROM {t.catalog}.information_schema.tables "
                        f"WHERE table_schema = '{t.schema.lower()}'",
                        "SELECT",
                        0.3,
                    ),
                    (
                        "SELECT column_name, data_type FROM "
                        f"{t.catalog}.information_schema.columns "
                        f"WHERE table_schema = '{t.schema.lower()}' "
                        f"AND table_name = '{t.name.lower()}'",
                        "SELECT",
                        0.2,
                    ),
                    (f"select * from {t.catalog}.information_schema.columns", "SELECT", 9.0),
                    (
                        f"SELECT * FROM system.jdbc.tables WHERE table_cat = '{t.catalog}' AND "
                        f"table_schem LIKE '{t.schema.lower()}'",
                        "SELECT",
                        0.6,
                    ),
                    (
                        f"SELECT * FROM system.metadata.table_comments WHERE catalog_name = "
                        f"'{t.catalog}'",
                        "SELECT",
                        0.5,
                    ),
                ]
                weights = [2, 4, 6, 2, 8, 5, 2, 1, 1, 1, 5, 5, 0.3, 3, 0.5]
                sql, qtype, cpu = rng.choices(statements, weights=weights)[0]
                if not users[ui].style.get("upper"):
                    sql = sql.replace("SHOW", "show").replace("DESCRIBE", "describe")
                self.emit(
                    user_index=ui,
                    sql=sql,
                    when=when,
                    query_type=qtype,
                    update_type=None,
                    plan=None,
                    inputs=[],
                    cpu=cpu * math.exp(rng.gauss(0, 0.5)),
                    memory=rng.uniform(1, 40) * 2**20,
                    recurring=True,
                )
                when += dt.timedelta(seconds=rng.uniform(0.05, 5))
                emitted += 1

    def monitoring(self) -> None:
        rng = self.rng
        people = self.active_users("monitoring")
        for _ in range(self.quota("monitoring")):
            when = self.midnight + dt.timedelta(seconds=rng.uniform(0, 86400))
            sql, cpu = rng.choices(
                [
                    ("SELECT 1", 0.0),
                    ("select 1", 0.0),
                    ("SELECT count(*) FROM system.runtime.nodes WHERE state = 'active'", 0.02),
                    ("SELECT state, count(*) FROM system.runtime.queries GROUP BY state", 0.05),
                    ("SELECT now()", 0.0),
                ],
                weights=[4, 1, 3, 3, 1],
            )[0]
            self.emit(
                user_index=rng.choice(people),
                sql=sql,
                when=when,
                query_type="SELECT",
                update_type=None,
                plan=None,
                inputs=["system.runtime.nodes"] if "nodes" in sql else [],
                cpu=cpu,
                memory=rng.uniform(0.1, 4) * 2**20,
                recurring=True,
            )

    def maintenance(self) -> None:
        rng = self.rng
        (ui,) = self.active_users("maintenance")
        tables = [t for t in self.cat.world.users[ui].tables if t.date_partitioned]
        for _ in range(self.quota("maintenance")):
            t = rng.choice(tables)
            when = self.midnight + dt.timedelta(
                hours=rng.choice([1, 2, 3]), seconds=rng.uniform(0, 3600)
            )
            day = self.date - dt.timedelta(days=1)
            value = day.strftime("%Y%m%d" if t.partition_kind == "int" else t.day_format)
            size = t.day_bytes(self.index)
            if t.catalog == "hive" and rng.random() < 0.5:
                sql = (
                    f"ANALYZE {t.ref} WITH (partitions = ARRAY[ARRAY['{value}']])",
                    "ANALYZE",
                    "ANALYZE",
                )
                cpu = size / GB * 6
            elif t.catalog == "hive":
                sql = (
                    f"CALL system.sync_partition_metadata('{t.schema.lower()}', "
                    f"'{t.name.lower()}', 'ADD')",
                    "DATA_DEFINITION",
                    "CALL",
                )
                cpu = 0.5
            else:
                literal = value if t.partition_kind == "int" else f"DATE '{value}'"
                sql = (
                    f"ALTER TABLE {t.ref} EXECUTE optimize WHERE {t.partition_col} = {literal}",
                    "ALTER_TABLE_EXECUTE",
                    "ALTER TABLE EXECUTE",
                )
                cpu = size / GB * 10
            self.emit(
                user_index=ui,
                sql=sql[0],
                when=when,
                query_type=sql[1],
                update_type=sql[2],
                plan=None,
                inputs=[t.fqn],
                cpu=cpu,
                memory=min(size, 8 * GB) * 0.1,
                recurring=True,
            )

    def run(self) -> pl.DataFrame:
        self.dashboards()
        self.jobs()
        for kind in HUMAN:
            self.sessions(kind)
        self.metadata()
        self.monitoring()
        self.maintenance()
        return self.finish()

    def finish(self) -> pl.DataFrame:
        rng = self.rng
        rows = sorted(self.rows, key=lambda r: r["create_time"])  # type: ignore[arg-type,return-value]
        # Coordinator restarts (Sundays and the upgrade day) change the query id suffix.
        suffix = "".join(
            random.Random(f"{self.synth.seed}-{self.date.isocalendar()[1]}").choices(
                "abcdefghijkmnpqrstuvwxyz23456789", k=5
            )
        )
        for n, row in enumerate(rows):
            ts = row["create_time"]
            row["query_id"] = f"{ts:%Y%m%d_%H%M%S}_{n % 100_000:05d}_{suffix}"  # type: ignore[str-format]
        out = [dict(r) for r in rows]
        # At-least-once delivery: some events arrive twice with the same query id.
        for row in rows:
            if rng.random() < self.synth.duplicate_event_rate:
                out.append(dict(row))
        # A few corrupt records, as real listeners and ETL bugs produce.
        for row in rng.sample(out, k=min(len(out), round(len(out) * self.synth.corrupt_rate))):
            fault = rng.choice(["query", "user", "cpu", "clock", "memory"])
            if fault == "query":
                row["query"] = None if rng.random() < 0.5 else "   "
            elif fault == "user":
                row["user"] = None
            elif fault == "cpu":
                row["cpu_time_millis"] = -1
            elif fault == "memory":
                row["peak_memory_bytes"] = -(2**31)
            else:
                row["end_time"] = row["create_time"] - dt.timedelta(seconds=rng.uniform(1, 300))
        frame = pl.DataFrame(out, schema=RAW_SCHEMA)
        return frame.sort("create_time", "query_id", maintain_order=True)


# ------------------------------------------------------------------------------------------
# Driver

_CATALOGUE: Catalogue | None = None


def _day_file(out_dir: Path, date: dt.date) -> Path:
    return out_dir / f"date={date}" / "queries.parquet"


def _generate_day(synth: Synth, index: int, out_dir: Path) -> dict[str, object]:
    global _CATALOGUE
    if _CATALOGUE is None:
        _CATALOGUE = build_catalogue(synth)
    day = Day(_CATALOGUE, synth, index)
    frame = day.run()
    write_parquet(frame, _day_file(out_dir, day.date))
    return {
        "date": str(day.date),
        "rows": frame.height,
        "recurring": day.recurring,
        "generated": len(day.rows),
    }


def generate(synth: Synth, *, output_dir: str | Path, workers: int = 0) -> dict[str, object]:
    """Write the query log under ``output_dir`` (one ``date=YYYY-MM-DD/queries.parquet`` per
    day) and return a summary. Output bytes depend only on ``synth``, not on ``workers``."""
    global _CATALOGUE
    _CATALOGUE = None
    n_days = (synth.end_date - synth.start_date).days + 1
    workers = workers or os.cpu_count() or 1
    days: list[dict[str, object]] = []
    with atomic_dir(output_dir) as tmp:
        if workers == 1:
            for i in tqdm(range(n_days), desc="generate", unit="day", disable=None):
                days.append(_generate_day(synth, i, tmp))
        else:
            # spawn, not fork: forking a process in which polars' thread pool already runs
            # can deadlock the child
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=min(workers, n_days), mp_context=context) as pool:
                futures = pool.map(_generate_day, [synth] * n_days, range(n_days), [tmp] * n_days)
                days = list(tqdm(futures, total=n_days, desc="generate", unit="day", disable=None))
    return {"days": days}


def summarize(raw_dir: str | Path) -> dict[str, object]:
    """Realism figures of a generated log (docs/pipeline.md reports them, tests check them)."""
    lf = pl.scan_parquet(f"{raw_dir}/**/*.parquet", hive_partitioning=False)
    # the label and the workload split of the load stage, at their default params
    flagged = lf.with_columns(
        heavy=LabelRule.from_params(DataLoading()).is_heavy(),
        curated=workload(Filters()) == "CURATED",
        metadata=pl.col("query_type").eq("DESCRIBE")
        | pl.col("query").str.contains(r"(?i)information_schema|system\.(jdbc|metadata)"),
    )
    stats = (
        flagged.select(
            rows=pl.len(),
            users=pl.col("user").n_unique(),
            curated_share=pl.col("curated").mean(),
            metadata_share=pl.col("metadata").mean(),
            failed_share=(pl.col("query_state") == "FAILED").mean(),
            heavy_share_all=pl.col("heavy").mean(),
            heavy_share_non_curated=pl.col("heavy").filter(~pl.col("curated")).mean(),
            heavy_cpu_share_non_curated=(
                pl.col("cpu_time_millis").filter(pl.col("heavy") & ~pl.col("curated")).sum()
                / pl.col("cpu_time_millis")
                .filter(~pl.col("curated") & (pl.col("cpu_time_millis") > 0))
                .sum()
            ),
        )
        .collect()
        .row(0, named=True)
    )
    types = flagged.group_by("query_type").len().sort("query_type").collect()
    stats["query_types"] = dict(zip(types["query_type"], types["len"], strict=True))
    errors = (
        flagged.filter(pl.col("error_code").is_not_null())
        .group_by("error_code")
        .len()
        .sort("error_code")
        .collect()
    )
    stats["error_codes"] = dict(zip(errors["error_code"], errors["len"], strict=True))
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in stats.items()}
