"""The static world of the synthetic cluster: catalogs, tables, users and their habits.

Everything here is drawn once from ``synth.seed`` and is identical in every worker process.
Nothing in a table's or user's *name* says how expensive its queries are: size, growth and
habits are hidden attributes that only show through the cost model.
Names follow no single convention either: partition columns, table and schema names, logins
and service accounts come in the mixed styles of real catalogs, so nothing downstream can
lean on them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

# Cardinality classes of columns; see Column.distinct().
LOW, MEDIUM, HIGH, UNIQUE = "low", "medium", "high", "unique"


@dataclass(frozen=True)
class Col:
    name: str
    kind: str  # "dim" (groupable), "metric" (numeric), "ts", "payload" (json text), "array"
    card: str = LOW
    width: int = 8  # average bytes per value when materialised

    @property
    def sql(self) -> str:
        return f'"{self.name}"' if self.name in RESERVED else self.name


# Column names that Trino only accepts quoted.
RESERVED = {"user", "order", "group", "values", "from", "table"}

LOW_DIMS = [
    "country",
    "region",
    "platform",
    "device_type",
    "os",
    "channel",
    "status",
    "currency",
    "event_type",
    "plan_tier",
    "language",
    "app_version",
    "source_system",
]
MEDIUM_DIMS = [
    "product_id",
    "merchant_id",
    "campaign_id",
    "city_id",
    "store_id",
    "experiment_id",
    "page_path",
    "category",
    "partner_id",
    "sku",
]
HIGH_DIMS = ["user_id", "account_id", "device_id", "customer_id", "driver_id", "email_hash"]
UNIQUE_DIMS = ["event_id", "session_id", "request_id", "order_id", "trip_id", "message_id"]
METRICS = [
    "amount",
    "revenue",
    "duration_ms",
    "latency_ms",
    "quantity",
    "price",
    "score",
    "bytes_sent",
    "clicks",
    "impressions",
    "discount",
    "tax",
    "distance_km",
]
PAYLOADS = ["properties", "payload", "user_agent", "raw_event", "context", "attributes"]
ARRAYS = ["tags", "items", "experiment_ids", "segments"]
TS_COLS = [
    "event_ts",
    "created_at",
    "updated_at",
    "occurred_at",
    "eventTime",
    "log_ts",
    "ingested_at",
]

FACT_NOUNS = [
    "page_view",
    "click",
    "session",
    "search",
    "impression",
    "order",
    "payment",
    "shipment",
    "app_event",
    "api_request",
    "login",
    "cart",
    "ride",
    "trip",
    "message",
    "notification",
    "playback",
    "error",
    "audit",
    "inventory",
    "price_change",
    "ad_request",
    "bid",
    "conversion",
    "email_send",
    "push_open",
    "feature_usage",
    "experiment_exposure",
    "subscription",
    "refund",
    "review",
    "delivery",
    "support_ticket",
    "transaction",
    "location_ping",
]
FACT_SUFFIXES = ["events", "log", "facts", "raw", "enriched", "stream", "history"]
DIM_NOUNS = [
    "user",
    "account",
    "product",
    "merchant",
    "country",
    "device",
    "campaign",
    "experiment",
    "store",
    "driver",
    "city",
    "currency",
    "calendar",
    "plan",
    "partner",
    "employee",
    "warehouse",
    "category",
    "promotion",
    "app_release",
]
OPS_NOUNS = [
    "users",
    "accounts",
    "orders_live",
    "subscriptions",
    "invoices",
    "payouts",
    "feature_flags",
    "tenants",
    "coupons",
    "api_keys",
    "addresses",
    "carts",
]

# Partition columns: (name, how the value is written, weight). "str" is a varchar date
# ('2025-06-01' or '20250601'), "date" a DATE, "int" an integer day key (20250601). Real
# lakes use every one of these names; nothing downstream may rely on any of them.
HIVE_PARTITIONS = [
    ("ds", "str", 0.3),
    ("dt", "str", 0.15),
    ("p_date", "str", 0.1),
    ("batch_dt", "str", 0.08),
    ("load_date", "str", 0.08),
    ("datestr", "str", 0.06),
    ("dateint", "int", 0.08),
    ("partition_key", "int", 0.07),
    ("day", "str", 0.08),
]
ICEBERG_PARTITIONS = [
    ("event_date", "date", 0.3),
    ("snapshot_day", "date", 0.12),
    ("load_date", "date", 0.1),
    ("business_date", "date", 0.1),
    ("dt", "date", 0.1),
    ("p_date", "date", 0.08),
    ("report_date", "date", 0.1),
    ("date_key", "int", 0.1),
]
# Facts partitioned on something that is not a date, or not partitioned at all: a date
# filter on them prunes nothing.
KEY_PARTITIONS = ["region", "tenant_id", "bucket", "source_system", "shard"]
DATE_KINDS = ("str", "date", "int")

# (catalog, schemas, connector family). Hive holds the legacy lake, iceberg the newer one,
# mysql/postgresql are operational replicas reached over JDBC.
CATALOGS = {
    "hive": ["events", "sales", "marketing", "logs", "ml", "tmp", "ods", "legacy_dw", "stage_01"],
    "iceberg": [
        "analytics",
        "finance",
        "product",
        "growth",
        "marts",
        "sandbox",
        "DataMart",
        "bi_2",
        "raw-events",
    ],
    "mysql": ["app", "billing"],
    "postgresql": ["crm", "support"],
}
LAKE = ("hive", "iceberg")

GB = 1024**3
MB = 1024**2


def written(name: str) -> str:
    """``name`` as SQL must spell it: quoted unless it is a plain identifier."""
    plain = name.replace("_", "a").isalnum() and not name[0].isdigit() and name.isascii()
    return name if plain else f'"{name}"'


@dataclass(frozen=True)
class Table:
    catalog: str
    schema: str  # as written in SQL (may be camelCase or need quotes)
    name: str  # as written in SQL
    role: str  # fact, agg, dim, ops
    columns: tuple[Col, ...]
    partition_col: str | None  # partition column (a date in most facts, see partition_kind)
    daily_bytes: float  # bytes per day of data at day 0 (tables that accumulate days)
    static_bytes: float  # size of a table that does not accumulate days, at day 0
    retention_days: int
    growth: float  # multiplicative growth per day
    created_day: int  # first day index the table exists; negative = before the range
    row_bytes: float
    partition_kind: str | None = None  # "str", "date", "int" (dates), "key", or None
    day_format: str = "%Y-%m-%d"  # how a "str" partition writes its day

    @property
    def fqn(self) -> str:
        """Name as the engine reports it in ``inputs``: identifiers folded to lower case."""
        return f"{self.catalog}.{self.schema.lower()}.{self.name.lower()}"

    @property
    def ref(self) -> str:
        """Name as people write it in SQL."""
        return f"{self.catalog}.{written(self.schema)}.{written(self.name)}"

    @property
    def date_partitioned(self) -> bool:
        """A date filter on :attr:`partition_col` prunes days."""
        return self.partition_kind in DATE_KINDS

    @property
    def columnar(self) -> bool:
        return self.catalog in LAKE

    def cols(self, kind: str) -> list[Col]:
        return [c for c in self.columns if c.kind == kind]

    def day_bytes(self, day: int) -> float:
        """Bytes of one day of data on ``day`` (0 = first day of the range)."""
        return self.daily_bytes * (1.0 + self.growth) ** day

    def total_bytes(self, day: int) -> float:
        """Whole-table bytes on ``day``: retained days, or the static size grown."""
        if self.daily_bytes <= 0.0:
            return self.static_bytes * (1.0 + self.growth) ** day
        age = self.age(day)
        kept = min(self.retention_days, age)
        # geometric sum of the kept partitions, each smaller by the growth of its day
        if self.growth <= 1e-9:
            return self.day_bytes(day) * kept
        g = 1.0 + self.growth
        return self.day_bytes(day) * (1.0 - g ** (-kept)) / (1.0 - 1.0 / g)

    def age(self, day: int) -> int:
        """Days of data the table holds on ``day`` (>= 1)."""
        return max(1, day - self.created_day + 1) if self.created_day > -10_000 else 10_000


@dataclass
class User:
    name: str
    kind: str  # analyst, data_scientist, engineer, bi, etl, etl_curated, monitoring, maintenance
    source: str
    resource_group: str
    team: str
    weight: float  # relative activity
    start_day: int
    tables: list[Table]  # favourite tables, most used first
    lookback: list[int]  # habitual date windows (days)
    discipline: float  # probability of writing a partition predicate
    appetite: float  # how much larger than usual this user's queries run (hidden)
    style: dict[str, object] = field(default_factory=dict)

    @property
    def principal(self) -> str:
        return f"{self.name}@CORP.EXAMPLE.COM"


TEAMS = [
    "growth",
    "finance",
    "marketing",
    "product",
    "ops",
    "risk",
    "ads",
    "search",
    "ml",
    "support",
    "logistics",
    "payments",
]
FIRST = [
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "niaj",
    "olivia",
    "peggy",
    "rupert",
    "sybil",
    "trent",
    "victor",
    "walter",
    "xena",
    "yusuf",
    "zoe",
    "amir",
    "bea",
    "chen",
    "dana",
    "eli",
    "fatima",
    "goran",
    "hana",
    "igor",
    "jin",
    "kofi",
    "lena",
    "marco",
    "nora",
    "omar",
    "priya",
    "quinn",
    "rosa",
]
LAST = [
    "smith",
    "garcia",
    "kim",
    "nguyen",
    "patel",
    "muller",
    "rossi",
    "silva",
    "tanaka",
    "kowalski",
    "obrien",
    "haddad",
    "jensen",
    "novak",
    "okafor",
    "larsen",
    "dubois",
    "ivanova",
]

# Share of writers who join with commas by habit (old-school SQL, some BI tools).
COMMA_WRITERS = 0.3
# How service accounts are named (the rest look like a person's login).
SERVICE_MARKED, SERVICE_PLAIN = 0.35, 0.3

HUMAN_SOURCES = {
    "analyst": [
        ("superset", 0.35),
        ("mode", 0.15),
        ("DBeaver", 0.15),
        ("trino-cli", 0.1),
        ("DataGrip", 0.1),
        ("Trino JDBC Driver", 0.15),
    ],
    "data_scientist": [("trino-python-client", 0.55), ("jupyterhub", 0.25), ("superset", 0.2)],
    "engineer": [("trino-cli", 0.6), ("DBeaver", 0.2), ("Trino JDBC Driver", 0.2)],
}


def _weighted(rng: random.Random, pairs: list[tuple[str, float]]) -> str:
    return rng.choices([p for p, _ in pairs], weights=[w for _, w in pairs])[0]


def _lognormal_clip(rng: random.Random, median: float, sigma: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, median * math.exp(rng.gauss(0.0, sigma))))


def _pick_columns(rng: random.Random, role: str) -> tuple[Col, ...]:
    cols: list[Col] = [Col(rng.choice(TS_COLS), "ts", UNIQUE, 8)]
    n_low = {"fact": 4, "agg": 3, "dim": 3, "ops": 3}[role]
    for name in rng.sample(LOW_DIMS, rng.randint(2, n_low + 1)):
        cols.append(Col(name, "dim", LOW, rng.randint(4, 16)))
    for name in rng.sample(MEDIUM_DIMS, rng.randint(1, 3)):
        cols.append(Col(name, "dim", MEDIUM, rng.randint(8, 24)))
    for name in rng.sample(HIGH_DIMS, rng.randint(1, 2)):
        cols.append(Col(name, "dim", HIGH, rng.randint(8, 36)))
    if role in ("fact", "ops"):
        for name in rng.sample(UNIQUE_DIMS, rng.randint(1, 2)):
            cols.append(Col(name, "dim", UNIQUE, rng.randint(16, 36)))
    for name in rng.sample(METRICS, rng.randint(2, 5)):
        cols.append(Col(name, "metric", LOW, 8))
    if role == "fact" and rng.random() < 0.6:
        cols.append(Col(rng.choice(PAYLOADS), "payload", UNIQUE, rng.randint(400, 4000)))
    if role == "fact" and rng.random() < 0.35:
        cols.append(Col(rng.choice(ARRAYS), "array", HIGH, rng.randint(40, 200)))
    if rng.random() < 0.25:
        quoted = rng.choice(sorted(RESERVED - {"from", "table"}))
        cols.append(Col(quoted, "dim", MEDIUM if quoted != "user" else HIGH, 12))
    return tuple(cols)


def _partitioning(rng: random.Random, catalog: str) -> tuple[str | None, str | None, str]:
    """(partition column, its kind, day format) of a table that accumulates days."""
    u = rng.random()
    if u < 0.07:
        return None, None, "%Y-%m-%d"
    if u < 0.14:
        return rng.choice(KEY_PARTITIONS), "key", "%Y-%m-%d"
    pairs = HIVE_PARTITIONS if catalog == "hive" else ICEBERG_PARTITIONS
    name, kind, _ = rng.choices(pairs, weights=[w for *_, w in pairs])[0]
    return name, kind, "%Y%m%d" if kind == "str" and rng.random() < 0.25 else "%Y-%m-%d"


def _make_table(
    rng: random.Random, catalog: str, schema: str, role: str, name: str, n_days: int
) -> Table:
    columns = _pick_columns(rng, role)
    row_bytes = float(sum(c.width for c in columns))
    # Growth: most tables are flat-ish, a quarter grow steadily, a few explode (10x a quarter).
    u = rng.random()
    growth = (
        rng.uniform(0.0, 0.004)
        if u < 0.7
        else (rng.uniform(0.006, 0.02) if u < 0.95 else rng.uniform(0.025, 0.045))
    )
    # A sixth of tables appear during the range: new templates follow them.
    created = rng.randint(1, n_days - 1) if rng.random() < 0.16 else -rng.randint(30, 3000)
    day_format = "%Y-%m-%d"
    if role == "fact":
        partition, kind, day_format = _partitioning(rng, catalog)
        pruned = kind in DATE_KINDS
        # tables no date filter can prune are the smaller ones (nobody keeps 1 TB a day so)
        daily = _lognormal_clip(
            rng, (200 if pruned else 20) * MB, 1.9 if pruned else 1.4, 5 * MB, 2000 * GB
        )
        retention = (
            rng.choice([90, 180, 365, 400, 730])
            if catalog == "hive"
            else rng.choice([60, 90, 180, 365])
        )
        decade = rng.choice([1825, 3650]) if rng.random() < 0.25 else retention
        short = rng.choice([30, 60, 90])
        if not pruned:
            retention = short
        elif daily < 100 * MB:
            retention = decade  # small histories are kept for years
        static = 0.0
    elif role == "agg":
        partition, kind, day_format = _partitioning(rng, catalog)
        daily = _lognormal_clip(rng, 8 * MB, 1.5, 100 * 1024, 5 * GB)
        retention, static = rng.choice([365, 730, 1095, 1825, 3650]), 0.0
        if kind not in DATE_KINDS:
            retention = rng.choice([90, 365])
    else:
        partition, kind, daily, retention = None, None, 0.0, 1
        median = 40 * MB if role == "dim" else 150 * MB
        static = _lognormal_clip(
            rng, median, 1.6, 256 * 1024, 60 * GB if role == "dim" else 20 * GB
        )
    return Table(
        catalog,
        schema,
        name,
        role,
        columns,
        partition,
        daily,
        static,
        retention,
        growth,
        created,
        row_bytes,
        kind,
        day_format,
    )


def _camel(words: list[str], upper_first: bool) -> str:
    out = "".join(w.capitalize() for w in words)
    return out if upper_first else out[0].lower() + out[1:]


def _table_name(rng: random.Random, role: str, noun: str, catalog: str) -> str:
    """A table name in one of the styles real catalogs mix: house prefixes and suffixes,
    warehouse layers (ods_/dwd_/dws_), camelCase, UPPER CASE, versions and numbers."""
    words = noun.split("_")
    if role == "fact":
        if catalog == "iceberg" and rng.random() < 0.25:
            base = f"fact_{noun}s"
        else:
            base = f"{noun}_{rng.choice(FACT_SUFFIXES)}"
    elif role == "agg":
        base = rng.choice(
            [
                f"agg_{noun}_daily",
                f"{noun}_summary",
                f"{noun}_metrics_daily",
                f"{noun}_kpis",
                f"rpt_{noun}",
                f"daily_{noun}s",
                f"mv_{noun}_by_day",
            ]
        )
    else:
        base = rng.choice([f"dim_{noun}", f"{noun}s", f"ref_{noun}", f"lkp_{noun}", f"d_{noun}"])
    u = rng.random()
    if u < 0.5:
        return base
    if u < 0.62:
        return _camel(base.split("_"), upper_first=rng.random() < 0.5)
    if u < 0.72:
        return base.upper()
    if u < 0.84:
        return rng.choice(
            [
                f"{base}_v{rng.randint(2, 4)}",
                f"{base}{rng.randint(1, 9)}",
                f"{base}_{rng.randint(2014, 2024)}",
            ]
        )
    if u < 0.94:
        layer = {"fact": ["ods", "dwd"], "agg": ["dws", "ads"]}.get(role, ["dim", "dwd"])
        return f"{rng.choice(layer)}_{'_'.join(words)}_{rng.choice(['di', 'df', 'hi', 'tbl'])}"
    return rng.choice(
        [
            f"{noun}-{rng.choice(FACT_SUFFIXES)}",
            f"{_camel(words, True)} {rng.choice(['Data', 'Export', 'Copy'])}",
        ]
    )


def build_tables(rng: random.Random, n_days: int) -> list[Table]:
    tables: list[Table] = []
    seen: set[str] = set()

    def add(catalog: str, schema: str, role: str, name: str) -> None:
        key = f"{catalog}.{schema}.{name}".lower()
        if key in seen:
            return
        seen.add(key)
        tables.append(_make_table(rng, catalog, schema, role, name, n_days))

    lake_roles = [("fact", 6, 14, FACT_NOUNS), ("agg", 3, 8, FACT_NOUNS), ("dim", 3, 7, DIM_NOUNS)]
    for catalog in LAKE:
        for schema in CATALOGS[catalog]:
            for role, lo, hi, nouns in lake_roles:
                for _ in range(rng.randint(lo, hi)):
                    add(catalog, schema, role, _table_name(rng, role, rng.choice(nouns), catalog))
    for catalog in ("mysql", "postgresql"):
        for schema in CATALOGS[catalog]:
            for name in rng.sample(OPS_NOUNS, rng.randint(5, 9)):
                camel = rng.random() < 0.3
                add(catalog, schema, "ops", _camel(name.split("_"), True) if camel else name)
    return tables


def _zipf_weights(n: int, s: float) -> list[float]:
    return [1.0 / (i + 1) ** s for i in range(n)]


def _style(rng: random.Random, tool: bool) -> dict[str, object]:
    """How a user (or a BI tool) writes SQL: keyword case, layout, aliases, comments, comma
    joins (``FROM a, b WHERE a.k = b.k``: the share of this writer's multi-table queries
    written so) and identifiers quoted whether they need it or not."""
    return {
        "upper": rng.random() < (0.9 if tool else 0.55),
        "pretty": rng.random() < (0.85 if tool else 0.5),
        "comment": rng.random() < (0.5 if tool else 0.25),
        "alias_as": rng.random() < 0.7,
        "comma": rng.uniform(0.7, 1.0) if rng.random() < COMMA_WRITERS else 0.05,
        "quote_all": rng.random() < (0.3 if tool else 0.05),
    }


def build_users(rng: random.Random, tables: list[Table], n_days: int) -> list[User]:
    by_popularity = tables[:]
    rng.shuffle(by_popularity)
    popularity = _zipf_weights(len(by_popularity), 0.9)
    lake = [t for t in by_popularity if t.columnar]
    lake_pop = _zipf_weights(len(lake), 0.9)

    def favourites(k: int, pool: list[Table], weights: list[float]) -> list[Table]:
        picked: list[Table] = []
        while len(picked) < min(k, len(pool)):
            t = rng.choices(pool, weights=weights)[0]
            if t not in picked:
                picked.append(t)
        return picked

    used: set[str] = set()

    def unique(make: Callable[[], str]) -> str:
        while True:
            name = make()
            if name not in used:
                used.add(name)
                return name

    def person() -> str:
        """A login as directories hand them out: jane.doe, jdoe, jane_doe2, janed."""

        def login() -> str:
            first, last = rng.choice(FIRST), rng.choice(LAST)
            return rng.choices(
                [
                    f"{first}.{last}",
                    f"{first[0]}{last}",
                    f"{first}_{last}",
                    f"{first}.{last}{rng.randint(1, 99)}",
                    f"{first}{last[0]}",
                ],
                weights=[0.5, 0.2, 0.1, 0.1, 0.1],
            )[0]

        return unique(login)

    def service(marked: str, plain: str) -> str:
        """A service account's name: a third carry a marker (svc_, service, bot), a third
        are plain tool or team names, a third look like a person's login."""
        u = rng.random()
        if u < SERVICE_MARKED:
            return unique(lambda: marked)
        if u < SERVICE_MARKED + SERVICE_PLAIN:
            return unique(lambda: plain)
        return person()

    users: list[User] = []
    human_counts = {"analyst": 260, "data_scientist": 60, "engineer": 40}
    for kind, count in human_counts.items():
        for _ in range(count):
            team = rng.choice(TEAMS)
            power = rng.random() < 0.06  # a few people who routinely scan a lot
            lookbacks = {
                "analyst": [1, 3, 7, 14, 30],
                "data_scientist": [7, 30, 60, 90, 180],
                "engineer": [1, 1, 3, 7],
            }[kind]
            users.append(
                User(
                    name=person(),
                    kind=kind,
                    source=_weighted(rng, HUMAN_SOURCES[kind]),
                    resource_group=f"global.adhoc.{'ds' if kind == 'data_scientist' else team}",
                    team=team,
                    weight=math.exp(rng.gauss(0, 1.0)),
                    start_day=rng.randint(1, n_days - 1) if rng.random() < 0.08 else 0,
                    tables=favourites(rng.randint(4, 14), by_popularity, popularity),
                    lookback=rng.sample(lookbacks, k=min(3, len(lookbacks))),
                    discipline=rng.uniform(0.6, 0.85) if power else rng.uniform(0.9, 0.995),
                    appetite=math.exp(rng.gauss(1.2 if power else 0.0, 0.4)),
                    style=_style(rng, tool=False),
                )
            )
    for tool, source in [
        ("superset", "superset"),
        ("tableau", "Tableau"),
        ("looker", "Looker"),
        ("mode", "mode"),
    ]:
        for env in ("prod", "reporting"):
            users.append(
                User(
                    name=service(f"svc_{tool}_{env}", f"{tool}_{env}"),
                    kind="bi",
                    source=source,
                    resource_group=f"global.dashboards.{tool}",
                    team="bi",
                    weight=rng.uniform(0.5, 2.0),
                    start_day=0,
                    tables=favourites(rng.randint(15, 30), lake, lake_pop),
                    lookback=[1, 1, 7, 7, 14, 28],
                    discipline=0.97,
                    appetite=0.8,
                    style=_style(rng, tool=True),
                )
            )
    for team in TEAMS:
        users.append(
            User(
                name=service(f"svc_airflow_{team}", f"airflow_{team}"),
                kind="etl_curated",
                source="airflow",
                resource_group=f"global.curated.{team}",
                team=team,
                weight=rng.uniform(0.5, 2.0),
                start_day=0,
                tables=favourites(rng.randint(8, 16), lake, lake_pop),
                lookback=[1],
                discipline=1.0,
                appetite=math.exp(rng.gauss(0.8, 0.4)),
                style=_style(rng, True),
            )
        )
    for i, team in enumerate(rng.sample(TEAMS, 8)):
        source = "dbt-trino" if i % 2 else "airflow"
        users.append(
            User(
                name=service(
                    f"svc_{'dbt' if i % 2 else 'etl'}_{team}",
                    f"{team}_{'dbt' if i % 2 else 'etl'}",
                ),
                kind="etl",
                source=source,
                resource_group="global.etl.adhoc",
                team=team,
                weight=rng.uniform(0.5, 2.0),
                start_day=rng.randint(1, n_days - 1) if i == 7 else 0,
                tables=favourites(rng.randint(5, 12), lake, lake_pop),
                lookback=[1, 1, 7],
                discipline=0.95,
                appetite=math.exp(rng.gauss(0.3, 0.5)),
                style=_style(rng, True),
            )
        )
    for marked, plain, source in [
        ("svc_monitoring", "monitoring", "prometheus-exporter"),
        ("gateway-healthbot", "gateway_health", "trino-gateway"),
        ("service.datadog", "datadog", "datadog"),
    ]:
        users.append(
            User(
                service(marked, plain),
                "monitoring",
                source,
                "global.system",
                "platform",
                1.0,
                0,
                [],
                [1],
                1.0,
                1.0,
                _style(rng, True),
            )
        )
    users.append(
        User(
            service("svc_maintenance", "lakehouse_ops"),
            "maintenance",
            "trino-maintenance",
            "global.maintenance",
            "platform",
            1.0,
            0,
            lake[:40],
            [1],
            1.0,
            1.0,
            _style(rng, True),
        )
    )
    return users


@dataclass
class World:
    tables: list[Table]
    users: list[User]
    n_days: int

    def by_kind(self, *kinds: str) -> list[User]:
        return [u for u in self.users if u.kind in kinds]


def without_drift(world: World) -> World:
    """``world`` held still (``synth.drift: false``): no table grows or gains partitions during
    the range (each already holds its full retention), and every table and user exists from
    the first day. Templates still come and go at a steady rate."""
    tables = {
        t.fqn: replace(t, growth=0.0, created_day=min(t.created_day, -t.retention_days - 1))
        for t in world.tables
    }
    users = [replace(u, start_day=0, tables=[tables[t.fqn] for t in u.tables]) for u in world.users]
    return World(list(tables.values()), users, world.n_days)


def build_world(seed: int, n_days: int) -> World:
    rng = random.Random(seed)
    tables = build_tables(rng, n_days)
    users = build_users(rng, tables, n_days)
    return World(tables, users, n_days)
