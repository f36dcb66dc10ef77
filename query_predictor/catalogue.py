"""The feature catalogue as Markdown, generated from the code so it cannot drift.

    python -m query_predictor.catalogue > docs/features.md

The fire-rate section comes from ``docs/feature_fire_rates.json``, measured on data by
``scripts/fire_rates.py`` (``make fire-rates``), which also rewrites ``docs/features.md``.
``tests/code/test_catalogue.py`` fails when ``docs/features.md`` differs from this output.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from query_predictor.core.features import BASE_FEATURES
from query_predictor.core.history import HISTORY_NAMES, RECENCY_HORIZON_DAYS, RECENT_DAYS

# name -> (meaning in terms of the history H, its cutoff C and its span S = days from its
# first day to C; what differs between training and serving). Training: H = labeled rows of
# the days before the row's day D (C = D - 1; validation rows: C = the training window's
# last day; test rows: the bundle's). Serving: H = the bundle's snapshot, C = the validation
# window's last day, however long ago that is. No feature reads the query's own day.
_HORIZON = f"{RECENCY_HORIZON_DAYS:g}"
_SAME = "same formula; S grows with C in training, fixed by the snapshot in serving"
_STAT = "same formula over H; estimates are shrunk harder on a short history"
HISTORY_MEANINGS = {
    "user_daily_count_log": ("log(1 + the user's queries in H / S): queries per day", _SAME),
    "user_heavy_rate": ("share of the user's queries in H that were heavy, smoothed", _STAT),
    "user_cpu_p50_log": ("median log(1 + CPU s) of the user's queries in H (log-normal)", _STAT),
    "user_cpu_p90_log": ("90th percentile log(1 + CPU s) of the user's queries in H", _STAT),
    "user_memory_p90_log": ("90th percentile log(1 + peak GiB) of the user's queries", _STAT),
    "user_unseen": (
        "1 when the user has no query in H (cold start)",
        "training: first day D; serving: any user new since C",
    ),
    "template_daily_count_log": ("log(1 + runs of the template in H / S), literals aside", _SAME),
    "template_heavy_rate": ("share of the template's runs in H that were heavy, smoothed", _STAT),
    "template_cpu_p90_log": ("90th percentile log(1 + CPU s) of the template's runs", _STAT),
    "template_memory_p90_log": ("90th percentile log(1 + peak GiB) of the template's runs", _STAT),
    "template_idle_days": (
        f"days from the template's last run to C, capped at {_HORIZON} ({_HORIZON} when never)",
        "counted back from C in both, never from the query's day",
    ),
    "template_unseen": (
        "1 when the template has no run in H",
        "training: first run; serving: any template new since C",
    ),
    "table_daily_count_log_max": ("largest log(1 + queries per day in H) over the tables", _SAME),
    "table_heavy_rate_max": ("largest smoothed heavy rate over the tables read", _STAT),
    "table_cpu_p90_log_max": ("largest 90th percentile log(1 + CPU s) over the tables", _STAT),
    "table_memory_p90_log_max": (
        "largest 90th percentile log(1 + peak GiB) over the tables",
        _STAT,
    ),
    "table_unseen_share": (
        "share of the tables read that have no query in H",
        "training: tables first read on D; serving: tables new since C",
    ),
    "table_scan_gib_log_max": (
        "largest mean log(1 + GiB scanned) per query over the tables read, smoothed "
        "(physical_input_bytes; 0 on a log without it)",
        _STAT,
    ),
    "table_growth_log_max": (
        f"largest growth over the tables read: mean log(1 + CPU s) of the table's queries in the "
        f"last {RECENT_DAYS} days to C minus that over H, shrunk towards 0",
        f"the {RECENT_DAYS} days up to C in both, never up to the query's day",
    ),
    "table_mode_heavy_rate_max": (
        "largest smoothed heavy rate over the tables read, among the queries in H that read "
        "the table as this one does: with or without a partition predicate",
        _STAT,
    ),
    "table_mode_cpu_p90_log_max": (
        "largest 90th percentile log(1 + CPU s) over the tables read, among the queries in H "
        "that read the table as this one does (with or without a partition predicate)",
        _STAT,
    ),
    "source_heavy_rate": ("share of the client's (source) queries in H that were heavy", _STAT),
    "source_cpu_p90_log": ("90th percentile log(1 + CPU s) of the client's queries in H", _STAT),
    "scan_estimate_gib_log": (
        "log(1 + GiB the statement should scan), summed over the tables read: with a partition "
        "predicate, the table's GiB per day of data x days read (date_lookback_days or "
        "interval_days, at least 1); without one, or for a table never read by day, the table "
        "whole (its largest read); sizes from the queries in H that read the table's data "
        "alone (not a DESCRIBE or SHOW COLUMNS of it); a table H read only joined to others "
        "adds nothing, one H never saw counts as a typical one (physical_input_bytes; 0 on a "
        "log without it)",
        "sizes: same formula over H; days read count to the query's own day, as "
        "date_lookback_days does (a statement reading from a fixed date reads more later)",
    ),
}

FIRE_RATES = Path("docs") / "feature_fire_rates.json"  # from the repository root
# Why a feature is constant on one log and varies on the other (the table flags it).
_ABSENT = (
    "the foreign log has only the required columns, so this takes its 'unknown' value on "
    "every row, as on any log without the {} column"
)
FIRE_RATE_NOTES: dict[str, str] = {
    "catalog_code": _ABSENT.format("`catalog`"),
    "source_kind": _ABSENT.format("`source`"),
    "n_session_properties": _ABSENT.format("`session_properties`"),
    "stmt_explain": "the corpus (a parser's tests) holds no EXPLAIN statement",
    "stmt_explain_analyze": "the corpus (a parser's tests) holds no EXPLAIN ANALYZE statement",
    "reads_lake": "no foreign statement names a hive / iceberg / delta / hudi catalog, and "
    "without a `catalog` column no unqualified table resolves to one",
    "has_partition_predicate": "no column of the foreign SQL is compared with a date by "
    "enough distinct statements to be learned as a partition column",
}

# The base features a site's naming or habits could bend, and how each is decided instead.
SITE_DEPENDENT = {
    "has_partition_predicate": (
        "learned: the columns that at least `features.partition_min_templates` statements of "
        "the training window compare with a date (literal, `DATE '...'`, 8-digit day number, "
        "`current_date`, a date function, a CAST of a date) are the site's partition columns "
        "(`models/sql_conventions.json`); the feature is 1 when the statement compares one."
    ),
    "user_is_service": (
        "learned: users with at least `features.service_min_queries` training queries of which "
        "`features.service_repeat_share` repeat a template they ran before; or a name matching "
        "`features.service_user_pattern` (off by default). No name prefix is built in."
    ),
    "query_type_code": (
        "Trino's own QueryType names; a log without the column gets them from the SQL text, "
        "by Trino's statement-to-type mapping."
    ),
    "catalog_code, reads_lake, reads_jdbc": (
        "catalog names compared with connector names (hive, iceberg, delta, hudi, mysql, "
        "postgresql...): Trino names a catalog after its properties file, and most sites keep "
        "the connector's name; any other name is `other` (and counts as JDBC for `reads_jdbc`)."
    ),
    "reads_metadata": "Trino's fixed names: `information_schema` and the `system` catalog.",
    "source_kind": (
        "substrings of the client's declared source, matched against the names real clients "
        "send (superset, tableau, airflow, dbt, jupyter, trino-cli, dbeaver...); unknown "
        "clients are `other`, an absent source `missing`."
    ),
    "n_implicit_join, n_tables, n_distinct_tables": (
        "counted from FROM / JOIN / comma lists with no upper bound (comma joins count)."
    ),
    "date_lookback_days, date_span_days, interval_days": (
        "days, uncapped but for INTERVAL (100 years): a look-back of decades is its real value."
    ),
    "hour_of_day, day_of_week": "UTC, from the arrival time.",
}


def read_fire_rates(path: str | Path = FIRE_RATES) -> dict[str, Any] | None:
    """The measured fire rates (``scripts/fire_rates.py``), or None when never measured."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None


def constant_on(rates: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The log a feature is constant on while it varies on the other one, else None."""
    synthetic, foreign = rates["synthetic"]["distinct"], rates["foreign"]["distinct"]
    if synthetic <= 1 < foreign:
        return "synthetic"
    if foreign <= 1 < synthetic:
        return "foreign"
    return None


def _fire_rate_lines(measured: Mapping[str, Any]) -> list[str]:
    logs = measured["logs"]
    lines = [
        "",
        "## Fire rates: synthetic versus a foreign log",
        "",
        "Measured by `make fire-rates` (`scripts/fire_rates.py`) with the featurize stage's",
        "code on every valid row of each raw log, partition columns and service users learned",
        "from that log:",
    ]
    for name in ("synthetic", "foreign"):
        log = logs[name]
        lines.append(f"- {name}: {log['description']}; {log['rows']:,} rows.")
    lines += [
        "",
        "*fired* is the share of rows where the feature is not zero; *distinct* the number of",
        "distinct values (what counts for codes and values). A feature constant on one log and",
        "varied on the other is flagged, with the reason.",
        "",
        "| # | name | kind | synthetic fired | synthetic distinct | foreign fired "
        "| foreign distinct | constant on one side |",
        "|---:|---|---|---:|---:|---:|---:|---|",
    ]
    kinds = {f.name: f.kind for f in BASE_FEATURES}
    for i, rates in enumerate(measured["features"]):
        name, side = rates["name"], constant_on(rates)
        flag = ""
        if side:
            flag = f"**{side}**: {FIRE_RATE_NOTES.get(name, '**no reason written**')}"
        cells = [
            f"{rates[log]['fired']:.1%} | {rates[log]['distinct']:,}"
            for log in ("synthetic", "foreign")
        ]
        lines.append(f"| {i} | `{name}` | {kinds.get(name, '?')} | {' | '.join(cells)} | {flag} |")
    return lines


def render(fire_rates: Mapping[str, Any] | None = None) -> str:
    lines = [
        "# Feature catalogue",
        "",
        "Generated by `python -m query_predictor.catalogue > docs/features.md` from",
        "`query_predictor/core/features.py` and `query_predictor/core/history.py`; a test",
        "fails when this file is out of date. Columns of the feature matrices follow this",
        "order, then the TF-IDF terms of `models/tfidf_vocab.json`.",
        "",
        f"## Base features ({len(BASE_FEATURES)})",
        "",
        "| # | name | kind | meaning | example |",
        "|---:|---|---|---|---|",
    ]
    for i, f in enumerate(BASE_FEATURES):
        example = f.example.replace("|", "\\|")
        lines.append(f"| {i} | `{f.name}` | {f.kind} | {f.meaning} | {example} |")
    lines += [
        "",
        f"## Historical features ({len(HISTORY_NAMES)})",
        "",
        "Per user, client (source), query template (fingerprint of the normalised SQL), table,",
        "and table read with or without a partition predicate, from a",
        "history H with a cutoff C (its last day) and a span S (days from its first day to C),",
        "smoothed towards the global prior. **Training**: for a row on day D, H is every labeled",
        "row before D and C = D - 1 (validation rows: H stops at the training window's end, C",
        "is that day; test rows: H is the bundle's snapshot). **Serving**: H is the bundle's",
        "snapshot, every labeled row up to the validation window's end, and C that day, however",
        "long the bundle has been deployed. No feature but the scan estimate",
        "reads the query's own day, so the same statement gets the same history features a day",
        "or a month after C;",
        "recency counts back from C and counts are per day of S, so they mean the same whether",
        "the history is one day old (training) or weeks old (serving).",
        "",
        "| # | name | meaning | training and serving |",
        "|---:|---|---|---|",
    ]
    offset = len(BASE_FEATURES)
    for i, name in enumerate(HISTORY_NAMES):
        meaning, where = HISTORY_MEANINGS[name]
        lines.append(f"| {offset + i} | `{name}` | {meaning} | {where} |")
    lines += ["", "## How the site-dependent features are decided", ""]
    lines += [f"- `{name}`: {how}" for name, how in SITE_DEPENDENT.items()]
    lines += [
        "",
        "Every other base feature is read from the SQL text by its grammar (keywords, literals,",
        "operators, parentheses) and does not depend on how a site names things.",
        "",
        "## Names stamped with dates and counters",
        "",
        "Before any feature, term, template or table key is taken from a name (an identifier,",
        "quoted or not), the digit runs that stamp it are replaced: a date written",
        "`YYYYMMDD`, `YYYY_MM_DD` or `YYYYMM` (years 1900-2099) becomes `YYYYMMDD` or `YYYYMM`,",
        "the number of a version `_v12` becomes `_vN`, and any other run of four or more",
        "digits after `_` becomes `N`. So `sales.orders_20250603` and `sales.orders_2025_06_04`",
        "are one TF-IDF term, one template and one table history, and a table created per day",
        "or per run keeps its history. Shorter numbers (`address_line_2`, `p90`) stay.",
    ]
    if fire_rates is not None:
        lines += _fire_rate_lines(fire_rates)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(read_fire_rates()), end="")
