"""The information limit of routing on the synthetic log: the least share of test rows a router
that knew the generator's latent quantities must send to the heavy cluster.

    python benchmarks/oracle_bound.py [--draws N] [--seed S] [--out FILE]

The test window's days (plus the day before: a query created just before midnight lands in
the previous day's file) are generated again in this process, exactly as the ``generate``
stage does, while recording for every emitted query the arguments the generator passed to
:func:`~query_predictor.synth.execution.execute` (the plan's work, hidden factor, cluster load,
human or not, resource group, parse error rate, catalog), the plan's ``hidden`` and the user's
``appetite``; each regenerated day must equal its file in ``--raw``.

For each test row, P(heavy | latents) is estimated by running the real ``execute`` again with
fresh random streams and labelling every outcome with the real label rule
(``LabelRule.from_params(params.data_loading)``), conditioned on the load stage keeping the
row (it drops failed queries that are not heavy). Ties (e.g. P = 0) are broken by the expected
cost ratio ``max(cpu / cpu threshold, memory / memory threshold)`` over the same draws.
Information sets:

- ``hidden known``: everything but the run's own random draws;
- ``appetite known``: the plan's hidden factor replaced, draw by draw, by
  ``appetite * exp(sigma * z)``, sigma estimated from the test days' plans;
- ``kind known``: the user's appetite drawn too, from the appetites of the world's users of
  the same kind.

Every row gets ``--draws`` draws; rows with a heavy draw whose estimate is within three
standard errors of a threshold that decides a reported figure get four times as many, again
and again up to ``--max-draws`` (common random numbers: in one round every row runs on the
same random stream). The figures: the routed share at recall 0.98 (all rows and rows of
seen templates) and 0.97 (rows of unseen templates, ``template_unseen`` of
``data/features/test.parquet``): rows sorted by score, the least k whose top k hold that
share of the heavy rows, over the rows; and PR-AUC (average precision).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from unittest import mock

import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score
from tqdm import tqdm

from query_predictor.core.label import GIB, LabelRule
from query_predictor.params import Synth, load_params
from query_predictor.synth import generator
from query_predictor.synth.execution import execute
from query_predictor.synth.plans import Work
from query_predictor.training.windows import windows_for

REPO = Path(__file__).resolve().parents[1]
TARGETS = (("overall", 0.98), ("unseen", 0.97), ("seen", 0.98))
SPREAD = 3.0  # standard errors around a threshold within which a row gets more draws
GROWTH = 4  # draws per refined row grow by this factor each round
CHUNK_DRAWS = 200_000  # draws labelled at once


@dataclass(frozen=True)
class Latent:
    """What the generator knew when one query ran: the arguments of its ``execute`` call,
    the plan's hidden factor (None without a plan), its user's appetite and kind, and what
    the log recorded (cpu_time_millis, peak_memory_bytes, error_code)."""

    work: Work
    hidden: float
    load: float
    human: bool
    resource_group: str
    parse_error_rate: float
    catalog: str
    plan_hidden: float | None
    appetite: float
    kind: str
    logged: tuple[object, object, object]

    @property
    def uses_plan_hidden(self) -> bool:
        """True when ``execute`` ran with the plan's own hidden factor (not a fixed 1.0)."""
        return self.plan_hidden is not None and self.hidden == self.plan_hidden


def regenerate(synth: Synth, indices: range, raw: Path) -> tuple[dict[str, Latent], dict]:
    """The latents of every query of the days ``indices`` by query id, and the appetites of
    the world's users by kind; SystemExit if a regenerated day differs from ``raw``."""
    catalogue = generator.build_catalogue(synth)
    calls: list[dict] = []

    def recording_execute(rng: random.Random, work: Work, **kwargs: object) -> object:
        calls.append({"work": work, **kwargs})
        return execute(rng, work, **kwargs)

    class RecordingDay(generator.Day):
        """A day that keeps the latents of each row it emits, by the row's identity."""

        latents: dict[int, Latent]

        def emit(self, **kwargs: object) -> None:
            before = len(calls)
            super().emit(**kwargs)
            (call,) = calls[before:]
            plan = kwargs["plan"]
            user = self.cat.world.users[kwargs["user_index"]]
            row = self.rows[-1]
            self.latents[id(row)] = Latent(
                plan_hidden=None if plan is None else plan.hidden,
                appetite=user.appetite,
                kind=user.kind,
                logged=(),
                **call,
            )

    found: dict[str, Latent] = {}
    with mock.patch.object(generator, "execute", recording_execute):
        for index in tqdm(indices, desc="regenerate", unit="day", disable=None):
            day = RecordingDay(catalogue, synth, index)
            day.latents = {}
            frame = day.run()
            path = generator._day_file(raw, day.date)
            if not path.exists():
                raise SystemExit(f"{path} is missing: is --raw the generated log?")
            if not pl.read_parquet(path).equals(frame):
                raise SystemExit(
                    f"{path} differs from the day params.yaml's synth section generates: "
                    "the log was generated with other params or code"
                )
            previous: Latent | None = None
            for row in day.rows:  # emission order; a row not emitted is a client retry copy
                latent = day.latents.get(id(row), previous)
                if latent is None:
                    raise SystemExit(f"{day.date}: a row without an execute() call comes first")
                logged = (row["cpu_time_millis"], row["peak_memory_bytes"], row["error_code"])
                found[str(row["query_id"])] = replace(latent, logged=logged)
                previous = latent
    pools: dict[str, list[float]] = {}
    for user in catalogue.world.users:
        pools.setdefault(user.kind, []).append(user.appetite)
    return found, pools


def split_rows(splits: Path, features: Path, latents: dict[str, Latent]) -> pl.DataFrame:
    """The test split's query ids, labels and unseen flags; SystemExit if a row has no latents
    or its logged outcome differs from the regenerated one."""
    test = pl.read_parquet(
        splits / "test.parquet",
        columns=["query_id", "is_heavy", "cpu_time_millis", "peak_memory_bytes", "error_code"],
    )
    flags = pl.read_parquet(features / "test.parquet", columns=["query_id", "template_unseen"])
    test = test.join(flags, on="query_id", how="left")
    if test["template_unseen"].null_count():
        raise SystemExit(f"{features / 'test.parquet'} lacks rows of the test split")
    missing = [q for q in test["query_id"] if q not in latents]
    if missing:
        raise SystemExit(f"{len(missing)} test rows were not regenerated, e.g. {missing[0]}")
    logged = test.select("cpu_time_millis", "peak_memory_bytes", "error_code").rows()
    differ = sum(latents[q].logged != row for q, row in zip(test["query_id"], logged, strict=True))
    if differ:
        raise SystemExit(f"{differ} test rows differ from the regenerated log: stale splits?")
    return test.select("query_id", "is_heavy", unseen=pl.col("template_unseen") > 0.5)


def hidden_spread(rows: list[Latent]) -> tuple[float, float, int]:
    """Mean and standard deviation of log(hidden / appetite) over the distinct plans whose
    hidden factor the rows ran with, and how many plans that is."""
    ratios = {(r.plan_hidden, r.appetite) for r in rows if r.uses_plan_hidden}
    logs = np.log([h / a for h, a in ratios])
    return float(logs.mean()), float(logs.std(ddof=1)), len(logs)


# A hidden-factor model: (rows, standard normals, uniforms) -> hidden of each row and draw.
HiddenModel = Callable[[list[Latent], np.ndarray, np.ndarray], np.ndarray]


def hidden_known(rows: list[Latent], z: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The hidden factor each row ran with, for every draw."""
    return np.repeat(np.array([[r.hidden] for r in rows]), len(z), axis=1)


def appetite_known(sigma: float) -> HiddenModel:
    """The plan's hidden factor drawn as ``appetite * exp(sigma * z)``."""

    def model(rows: list[Latent], z: np.ndarray, u: np.ndarray) -> np.ndarray:
        known = hidden_known(rows, z, u)
        plan = np.array([r.uses_plan_hidden for r in rows])
        appetite = np.array([[r.appetite] for r in rows])
        return np.where(plan[:, None], appetite * np.exp(sigma * z)[None, :], known)

    return model


def kind_known(sigma: float, pools: dict[str, list[float]]) -> HiddenModel:
    """Also the appetite drawn: an appetite of a world user of the row's kind (uniformly)."""
    sorted_pools = {kind: np.sort(values) for kind, values in pools.items()}

    def model(rows: list[Latent], z: np.ndarray, u: np.ndarray) -> np.ndarray:
        known = hidden_known(rows, z, u)
        plan = np.array([r.uses_plan_hidden for r in rows])
        drawn = {k: p[(u * len(p)).astype(int)] for k, p in sorted_pools.items()}
        appetite = np.stack([drawn[r.kind] for r in rows])
        return np.where(plan[:, None], appetite * np.exp(sigma * z)[None, :], known)

    return model


@dataclass
class Tally:
    """Per row: draws run, heavy draws, kept draws, and CPU ms and memory summed over kept."""

    draws: np.ndarray
    heavy: np.ndarray
    kept: np.ndarray
    cpu: np.ndarray
    memory: np.ndarray

    @classmethod
    def empty(cls, rows: int) -> Tally:
        return cls(*(np.zeros(rows) for _ in range(5)))

    def add(self, where: np.ndarray, other: Tally) -> None:
        for name in ("draws", "heavy", "kept", "cpu", "memory"):
            getattr(self, name)[where] += getattr(other, name)

    def p_heavy(self) -> np.ndarray:
        """P(heavy | the load stage keeps the row)."""
        return np.divide(self.heavy, self.kept, out=np.zeros_like(self.heavy), where=self.kept > 0)

    def cost_ratio(self, rule: LabelRule) -> np.ndarray:
        """max(E cpu / cpu threshold, E memory / memory threshold) over the kept draws."""
        kept = np.maximum(self.kept, 1.0)
        return np.maximum(
            self.cpu / kept / (rule.cpu_threshold_seconds * 1e3),
            self.memory / kept / (rule.memory_threshold_gb * GIB),
        )


def simulate(
    rows: list[Latent], hidden: np.ndarray, seed: str, rule: LabelRule, bar: tqdm
) -> Tally:
    """Run each row's query ``hidden.shape[1]`` times (row i with hidden factors ``hidden[i]``),
    every row on the same random stream, and tally the labelled outcomes."""
    stream = random.Random(seed)
    start = stream.getstate()
    cpu: list[int] = []
    memory: list[int] = []
    codes: list[str | None] = []
    for row, factors in zip(rows, hidden.tolist(), strict=True):
        stream.setstate(start)
        for factor in factors:
            out = execute(
                stream,
                row.work,
                hidden=factor,
                load=row.load,
                human=row.human,
                resource_group=row.resource_group,
                parse_error_rate=row.parse_error_rate,
                catalog=row.catalog,
            )
            # the log's columns as Day.emit writes them
            cpu.append(round(out.cpu_seconds * 1000))
            memory.append(round(out.memory_bytes))
            codes.append(out.error_code)
        bar.update()
    outcomes = pl.DataFrame(
        {"cpu_time_millis": cpu, "peak_memory_bytes": memory, "error_code": codes},
        schema={
            "cpu_time_millis": pl.Int64,
            "peak_memory_bytes": pl.Int64,
            "error_code": pl.String,
        },
    )
    heavy = rule.is_heavy()
    # the load stage drops FAILED rows (an error code) that are not heavy
    labels = outcomes.select(heavy=heavy, kept=heavy | pl.col("error_code").is_null())
    shape = hidden.shape
    is_heavy = labels["heavy"].to_numpy().reshape(shape)
    kept = labels["kept"].to_numpy().reshape(shape)
    return Tally(
        draws=np.full(shape[0], float(shape[1])),
        heavy=is_heavy.sum(axis=1).astype(float),
        kept=kept.sum(axis=1).astype(float),
        cpu=(np.array(cpu, dtype=float).reshape(shape) * kept).sum(axis=1),
        memory=(np.array(memory, dtype=float).reshape(shape) * kept).sum(axis=1),
    )


def ranking(score: np.ndarray, tie: np.ndarray) -> np.ndarray:
    """Row positions by score, then tie-break value, both descending."""
    return np.lexsort((-tie, -score))


def routed_at_recall(order: np.ndarray, heavy: np.ndarray, recall: float) -> int:
    """The least k whose top k rows of ``order`` hold at least ``recall`` of the heavy rows."""
    caught = np.cumsum(heavy[order])
    return int(np.searchsorted(caught, math.ceil(recall * caught[-1] - 1e-9))) + 1


def target_masks(test: pl.DataFrame) -> dict[str, np.ndarray]:
    """The rows each figure of :data:`TARGETS` is taken over."""
    unseen = test["unseen"].to_numpy()
    return {"overall": np.ones_like(unseen), "unseen": unseen, "seen": ~unseen}


def estimate(
    name: str,
    model: HiddenModel,
    rows: list[Latent],
    test: pl.DataFrame,
    rule: LabelRule,
    args: argparse.Namespace,
) -> Tally:
    """Adaptive Monte Carlo P(heavy) of every row under one hidden-factor model."""
    heavy = test["is_heavy"].to_numpy()
    masks = target_masks(test)
    tally = Tally.empty(len(rows))
    todo = np.arange(len(rows))
    draws, added, round_ = args.draws, args.draws, 0
    while len(todo):
        normal = np.random.default_rng([args.seed, round_, 0])
        z, u = normal.standard_normal(added), normal.random(added)
        with tqdm(
            total=len(todo), desc=f"{name} x{draws}", unit="row", disable=None, leave=False
        ) as bar:
            per_chunk = max(1, CHUNK_DRAWS // added)
            for start in range(0, len(todo), per_chunk):
                part = todo[start : start + per_chunk]
                chunk = [rows[i] for i in part]
                seed = f"{args.seed}:{round_}"
                tally.add(part, simulate(chunk, model(chunk, z, u), seed, rule, bar))
        if draws >= args.max_draws:
            break
        p, tie = tally.p_heavy(), tally.cost_ratio(rule)
        error = np.sqrt(p * (1.0 - p) / np.maximum(tally.kept, 1.0))
        near = np.zeros(len(rows), dtype=bool)
        for target, recall in TARGETS:
            index = np.flatnonzero(masks[target])
            order = ranking(p[index], tie[index])
            threshold = p[index][order][routed_at_recall(order, heavy[index], recall) - 1]
            near[index] |= np.abs(p[index] - threshold) < SPREAD * error[index]
        todo = np.flatnonzero(near & (tally.heavy > 0))
        added = min(draws * GROWTH, args.max_draws) - draws
        draws += added
        round_ += 1
    return tally


def figures(tally: Tally, test: pl.DataFrame, rule: LabelRule) -> dict[str, float]:
    """Routed shares at the target recalls and PR-AUC of one information set's scores."""
    heavy = test["is_heavy"].to_numpy()
    p, tie = tally.p_heavy(), tally.cost_ratio(rule)
    out: dict[str, float] = {}
    for target, recall in TARGETS:
        mask = target_masks(test)[target]
        order = ranking(p[mask], tie[mask])
        share = routed_at_recall(order, heavy[mask], recall) / int(mask.sum())
        out[f"{target} routed@{recall}"] = share
    rank = np.empty(len(p))
    rank[ranking(p, tie)] = np.arange(len(p), 0, -1)  # the tie-break included
    out["PR-AUC"] = float(average_precision_score(heavy, rank))
    out["mean draws per row"] = float(tally.draws.mean())
    out["rows with P = 0"] = int((p == 0).sum())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=64, help="draws per row in the first round")
    parser.add_argument("--max-draws", type=int, default=4096, help="draws of a refined row")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--raw", type=Path, default=REPO / "data" / "raw")
    parser.add_argument("--splits", type=Path, default=REPO / "data" / "splits")
    parser.add_argument("--features", type=Path, default=REPO / "data" / "features")
    parser.add_argument("--out", type=Path, help="write the figures here (JSON)")
    args = parser.parse_args()
    started = time.perf_counter()
    params = load_params(args.params)
    synth, window = params.synth, windows_for(params)["test"]
    first, last = ((d - synth.start_date).days for d in (window.start, window.end))
    if first < 0 or synth.end_date < window.end:
        raise SystemExit(f"the test window {window.as_dict()} is not in synth's date range")
    latents, pools = regenerate(synth, range(max(0, first - 1), last + 1), args.raw)
    test = split_rows(args.splits, args.features, latents)
    rows = [latents[q] for q in test["query_id"]]
    mean, sigma, plans = hidden_spread(rows)
    rule = LabelRule.from_params(params.data_loading)
    models: dict[str, HiddenModel] = {
        "hidden known": hidden_known,
        "appetite known": appetite_known(sigma),
        "kind known": kind_known(sigma, pools),
    }
    results = {
        name: figures(estimate(name, model, rows, test, rule, args), test, rule)
        for name, model in models.items()
    }
    seconds = time.perf_counter() - started
    heavy, unseen = test["is_heavy"].to_numpy(), test["unseen"].to_numpy()
    counts = {
        "test rows": len(rows),
        "heavy": int(heavy.sum()),
        "unseen rows": int(unseen.sum()),
        "unseen heavy": int((heavy & unseen).sum()),
    }
    machine = f"{platform.platform()}, {os.cpu_count()} cores, python {platform.python_version()}"
    print(f"machine: {machine}; one process, {seconds:.0f} s")
    print(
        f"test window {window.start} to {window.end}: "
        + ", ".join(f"{k} {v:,}" for k, v in counts.items())
    )
    print(
        f"log(hidden / appetite) over {plans:,} plans: mean {mean:+.4f}, sigma {sigma:.4f}; "
        f"draws {args.draws} to {args.max_draws} per row, seed {args.seed}"
    )
    columns = list(next(iter(results.values())))
    print("| information set | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name, row in results.items():
        cells = [f"{v:.4f}" if isinstance(v, float) else f"{v:,}" for v in row.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.out:
        report = {
            "machine": machine,
            "seconds": round(seconds, 1),
            "draws": args.draws,
            "max_draws": args.max_draws,
            "seed": args.seed,
            "test_window": window.as_dict(),
            "counts": counts,
            "log_hidden_over_appetite": {"mean": mean, "sigma": sigma, "plans": plans},
            "information_sets": results,
        }
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
