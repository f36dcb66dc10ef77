"""scripts/fire_rates.py on two tiny logs: rates of known statements, flags, the docs table."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

from query_predictor.catalogue import FIRE_RATE_NOTES
from query_predictor.core.features import BASE_NAMES
from query_predictor.core.schema import absent_columns, split_valid
from query_predictor.params import Synth
from query_predictor.synth.generator import generate
from query_predictor.training.loading import scan_raw
from tests.foreign_log import build_log, write_log

REPO = Path(__file__).resolve().parents[2]
JOIN = "SELECT a FROM t JOIN u ON t.k = u.k"
COMMA = "SELECT a FROM t, u WHERE t.k = u.k"
STATEMENTS = [JOIN, COMMA, "SELECT 1", "SHOW TABLES"]


def test_fire_rates_of_a_tiny_synthetic_and_foreign_log(tmp_path: Path) -> None:
    day = dt.date(2025, 6, 2)
    synth = Synth(queries_per_day=150, start_date=day, end_date=day + dt.timedelta(days=1))
    generate(synth, output_dir=tmp_path / "synthetic", workers=1)
    foreign = build_log(STATEMENTS, start=dt.date(2024, 3, 4), days=5)
    write_log(foreign, tmp_path / "foreign", description="four statements")
    out, docs = tmp_path / "rates.json", tmp_path / "features.md"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "fire_rates.py"),
         "--synthetic", str(tmp_path / "synthetic"), "--foreign", str(tmp_path / "foreign"),
         "--json", str(out), "--docs", str(docs), "--params", str(REPO / "params.yaml")],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    measured = json.loads(out.read_text())
    assert tuple(f["name"] for f in measured["features"]) == BASE_NAMES
    assert measured["logs"]["foreign"] == {"description": "four statements", "rows": foreign.height}
    conformed = scan_raw(str(tmp_path / "synthetic")).collect()
    valid, _ = split_valid(conformed, absent=absent_columns(conformed))
    assert measured["logs"]["synthetic"]["rows"] == valid.height
    rates = {f["name"]: f for f in measured["features"]}
    runs = foreign["query"].value_counts()
    share = {q: n / foreign.height for q, n in runs.iter_rows()}
    assert rates["n_join"]["foreign"]["fired"] == round(share[JOIN], 6)
    assert rates["n_implicit_join"]["foreign"]["fired"] == round(share[COMMA], 6)
    assert rates["stmt_select"]["foreign"] == {"fired": round(1 - share["SHOW TABLES"], 6),
                                               "distinct": 2}  # fmt: skip
    for r in rates.values():
        for log in ("synthetic", "foreign"):
            assert 0.0 <= r[log]["fired"] <= 1.0 and r[log]["distinct"] >= 1
    # no source column in the foreign log: one code there, several in the synthetic log
    assert rates["source_kind"]["foreign"]["distinct"] == 1
    assert rates["source_kind"]["synthetic"]["distinct"] > 1
    text = docs.read_text()
    assert text.startswith("# Feature catalogue")
    section = text[text.index("## Fire rates") :]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]
    assert len(rows) == len(BASE_NAMES)
    row = rows[BASE_NAMES.index("source_kind")]
    assert "`source_kind`" in row and "**foreign**" in row
    assert FIRE_RATE_NOTES["source_kind"] in row
    assert "source_kind" in done.stdout and "foreign" in done.stdout
