"""Evaluate a ranker's run into records: the row, its `+interp` row with the dev-chosen weight, and paired tests
against named baselines (the first stage, the untrained start). Every notebook writes its results this way.

A row trained over several training seeds passes one run per seed (and `Row.seeds`): its record holds the mean
over seeds, each seed's value, and per-query values averaged over seeds, which its paired tests use.

One convention for every pipeline: a step that evaluates returns an object with `.records` (a list of
`results.Record`): `Evaluated`, or the step's own result type holding `records` beside what its notebook shows
(the LLM reranker's Row, InRanker's Evaluation, RankLLM's ListwiseRows); never a bare Record or list of records. A
notebook collects them with `records_of([...steps...])` (or one step's `.records`)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..data import TrainingQueries, assert_no_leak
from ..data.candidates import EvalSet
from ..data.types import Run
from ..evaluation import evaluate, interpolate, measures_for, paired_test, per_query
from ..results import Record, make_record, write_record
from ..results.record import kept_start
from ..training import process_state


@dataclass(frozen=True)
class Row:
    """What a record says about the method that made a run; the EvalSet says what it was measured on.

    Cost, in wall seconds of this run, every training seed's model together (the record divides by the seeds):
    `rerank_s` is the test reranking, timed around the call that scores the test set's candidates (each reranker at
    its own depth, the record's `depth`) and nothing else; `train_s` is the training (experiment.Selected.train_s);
    `wall_s`, when not given, is their sum. A reranker's record gets `latency_s_per_query` (rerank_s over the
    queries and seeds) and `train_s` (per seed); a `+interp` row keeps its model's, as the interpolation of two
    runs' scores takes milliseconds."""

    pipeline: str
    method: str
    profile: str
    model: str = ""
    params: Mapping[str, Any] | None = None
    seed: int | None = None
    reference: Mapping[str, Any] | None = None
    wall_s: float | None = None
    seeds: tuple[int, ...] = ()  # the training seeds of a row given one run per seed (in that order)
    rerank_s: float | None = None  # the test reranking's wall seconds, every seed's model together
    train_s: float | None = None  # training wall seconds, every seed's run together

    def but(self, **changes) -> "Row":
        return replace(self, **changes)


def seed_runs(runs: Run | Sequence[Run]) -> list[Run]:
    """One run, or one run per training seed, as a list (a Run is a mapping of query id to scores)."""
    return [runs] if isinstance(runs, Mapping) else list(runs)


def reranked_queries(evalset: EvalSet, run: Run) -> int:
    """How many queries a test rerank scored: the evaluation set's queries with first-stage candidates (its `run`),
    else those of the reranked run."""
    if evalset.run is None:
        return len(run)
    return sum(1 for q in evalset.queries if q in evalset.run)


def cost_fields(row: Row, runs: Sequence[Run], evalset: EvalSet) -> dict[str, float | None]:
    """A record's cost from its row's seconds (Row): `latency_s_per_query` = rerank_s / (queries x seeds), `train_s`
    = train_s / seeds (the mean over training seeds), `wall_s` = the row's, else rerank_s + train_s."""
    n_queries = reranked_queries(evalset, runs[0])
    parts = [s for s in (row.rerank_s, row.train_s) if s is not None]
    return {
        "latency_s_per_query": (row.rerank_s / (n_queries * len(runs))
                                if row.rerank_s is not None and n_queries else None),
        "train_s": None if row.train_s is None else row.train_s / len(runs),
        "wall_s": row.wall_s if row.wall_s is not None else (sum(parts) if parts else None),
    }


def mean_per_query(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Long per-query frames (qid, measure, value) of several seeds' runs -> each (qid, measure)'s mean over seeds
    (one frame: itself)."""
    if len(frames) == 1:
        return frames[0]
    keys = frames[0][["qid", "measure"]].reset_index(drop=True)
    for frame in frames[1:]:
        if not keys.equals(frame[["qid", "measure"]].reset_index(drop=True)):
            raise ValueError("the seeds' runs were measured on different queries or measures: they cannot be averaged")
    values = np.mean(np.stack([frame["value"].to_numpy(float) for frame in frames]), axis=0)
    return keys.assign(value=values)


def record_run(runs: Run | Sequence[Run], evalset: EvalSet, row: Row, results_dir, *,
               baselines: Mapping[str, Run | Sequence[Run]] | None = None, training: TrainingQueries | None = None,
               scorer: Callable[[Run, Any], pd.DataFrame] | None = None) -> Record:
    """Evaluate `runs`, test them against each baseline (paired t-test per measure), write the record + per-query CSV.
    One run per training seed (`row.seeds`, same order) makes a seeded record: metrics are the mean over seeds of
    each seed's value, the per-query CSV and the tests use each query's mean over seeds (a baseline given per seed
    is averaged the same way). A trained model passes `training`: the leak guard refuses it when it shares a query
    with `evalset.queries`. `scorer(run, qrels)` measures what ir-measures does not know (LocalRQA's recall@k): a
    (qid, measure, value) frame. The row's seconds become the record's cost (`cost_fields`).
    """
    runs = seed_runs(runs)
    if len(runs) > 1 and len(row.seeds) != len(runs):
        raise ValueError(f"{row.method}: {len(runs)} runs need one training seed each in Row.seeds, got {row.seeds!r}")
    training_queries, n_training_queries = "none (zero-shot)", None
    if training is not None:
        assert_no_leak([training], f"{evalset.dataset}/{evalset.split}", dict(evalset.queries))
        training_queries, n_training_queries = training.describe(), len(training.query_ids)
    measures = list(evalset.measures or measures_for(evalset.dataset))
    score = scorer or (lambda r, q: per_query(r, q, measures))
    per_run = [score(run, evalset.qrels) for run in runs]
    pq = mean_per_query(per_run)
    significance = {}
    for name, base in (baselines or {}).items():
        pq_base = mean_per_query([score(b, evalset.qrels) for b in seed_runs(base)])
        significance[name] = {m: paired_test(pq_base, pq, m).to_dict() for m in measures}
    each = [({m: float(frame[frame.measure == m]["value"].mean()) for m in measures} if scorer
             else evaluate(run, evalset.qrels, measures)) for run, frame in zip(runs, per_run)]
    per_seed = {m: [seed_metrics.get(m) for seed_metrics in each] for m in measures} if len(runs) > 1 else {}
    metrics = {m: (None if None in values else sum(values) / len(values)) for m, values in per_seed.items()} \
        if per_seed else each[0]
    seeds = list(row.seeds) if per_seed else []
    record = make_record(
        row.pipeline, row.method, evalset.dataset, evalset.split, metrics, model=row.model,
        first_stage=evalset.first_stage, depth=evalset.depth, significance=significance,
        reference=dict(row.reference or {}), training_queries=training_queries, n_training_queries=n_training_queries,
        profile=row.profile, params=dict(row.params or {}), seed=seeds[0] if seeds else row.seed, seeds=seeds,
        per_seed=per_seed, **cost_fields(row, runs, evalset),
    )
    if process_state().is_main_process:  # under `accelerate launch`, one process writes the results
        write_record(record, results_dir, per_query=pq)
    return record


def record_reranker(runs: Run | Sequence[Run], evalset: EvalSet, row: Row, results_dir, *,
                    baselines: Mapping[str, Run | Sequence[Run]] | None = None,
                    training: TrainingQueries | None = None, dev: EvalSet | None = None,
                    dev_run: Run | Sequence[Run] | None = None) -> list[Record]:
    """A reranker's test run (or one per training seed) as records: its row, and with a `dev_run` (the reranker on
    `dev`'s first-stage run; one per seed) its `+interp` row: normalised score interpolation with `evalset.run` (the
    first stage), the weight chosen on dev, per seed on that seed's dev run (params: each seed's weight and curve,
    and their mean as `interpolation_weight`). The one way a trained or zero-shot reranker enters the results."""
    runs = seed_runs(runs)
    records = [record_run(runs, evalset, row, results_dir, baselines=baselines, training=training)]
    if dev_run is not None:
        dev_runs = seed_runs(dev_run)
        if len(dev_runs) != len(runs):
            raise ValueError(f"{row.method}: {len(runs)} test runs but {len(dev_runs)} dev runs (one per seed each)")
        chosen = [choose_interpolation_weight(one, dev.run, dev.qrels) for one in dev_runs]
        weights = [weight for weight, _ in chosen]
        if len(runs) == 1:
            interp = {"dev_curve": chosen[0][1].to_dict("list"), "interpolation_weight": weights[0]}
        else:
            interp = {"dev_curves": [curve.to_dict("list") for _, curve in chosen], "interpolation_weights": weights,
                      "interpolation_weight": float(np.mean(weights))}
        mixed = [interpolate(run, evalset.run, weight) for run, weight in zip(runs, weights)]
        records.append(record_run(mixed, evalset, row.but(method=f"{row.method}+interp",
                                                          params={**dict(row.params or {}), **interp}),
                                  results_dir, baselines=baselines, training=training))
    return records


def first_seed(record: Record, **changes) -> Record:
    """What describes one model of a seeded row (a published model's card): the record with its first training
    seed's own values (`per_seed`) and `changes`; a single run's record as it is."""
    if not record.seeds:
        return record
    return replace(record, metrics={m: values[0] for m, values in record.per_seed.items()}, **changes)


@dataclass(frozen=True)
class Evaluated:
    """What a step that evaluates returns: its records, in order, and the runs it measured by name when a later
    step or the notebook needs them (a paired-test baseline, a diversity table)."""

    records: list[Record]
    runs: Mapping[str, Run] = field(default_factory=dict)


def records_of(steps) -> list[Record]:
    """The records of evaluated steps, in order: every step that evaluates returns an object with `.records`, so
    every notebook collects its results the same way."""
    return [record for step in steps for record in step.records]


def choose_interpolation_weight(reranked_dev: Run, first_stage_dev: Run, dev_qrels, measure: str = "nDCG@10",
                                grid=None) -> tuple[float, pd.DataFrame]:
    """The weight of `interpolate(reranker, first stage, w)` best on the dev slice (ties: the larger), and the
    whole dev curve, to show in the notebook."""
    grid = [round(float(w), 2) for w in (np.linspace(0.0, 1.0, 11) if grid is None else grid)]
    rows = [{"weight": w, measure: evaluate(interpolate(reranked_dev, first_stage_dev, w), dev_qrels, [measure])[measure]}
            for w in grid]
    curve = pd.DataFrame(rows)
    best = curve[curve[measure] == curve[measure].max()]["weight"].max()
    return float(best), curve


def interpolation_curves(record: Record) -> pd.DataFrame:
    """A `+interp` record's dev curve as a table: a row per measure (a seeded record: per measure and training seed),
    a column per interpolation weight."""
    params = record.params or {}
    curves = params.get("dev_curves") or [params["dev_curve"]]
    labels = [f" seed {seed}" for seed in record.seeds] if record.seeds else [""]
    tables = [pd.DataFrame(curve).set_index("weight").T.rename(index=lambda m, s=label: f"{m}{s}")
              for curve, label in zip(curves, labels)]
    return pd.concat(tables)


def comparison_cells(record: Record, bases=("bm25", "start"), measure: str = "nDCG@10", alpha: float = 0.05,
                     label: str = "Δ vs {base}") -> dict:
    """The table cells every notebook shows beside a row: its paired-test delta against each named baseline
    ('+0.031▲ (p=0.004)': ▲/▼ when p < alpha) and the dev-chosen interpolation weight of a '+interp' row. Against
    `start`, a row whose dev selection kept the start reads '= start' and a '+interp' row gets no mark (its gain over
    the raw start is mostly the first stage's): no ▲ credits training that the raw row does not show."""
    cells = {}
    params = record.params or {}
    fused = "interpolation_weight" in params or str(getattr(record, "method", "")).endswith("+interp")
    for base in bases:
        test = (record.significance or {}).get(base, {}).get(measure)
        if test and base == "start" and kept_start(record):
            cells[label.format(base=base)] = "= start (dev kept step 0)"
        elif test:
            credited = base != "start" or not fused
            mark = ("▲" if test["delta"] > 0 else "▼") if test["p_value"] < alpha and credited else ""
            cells[label.format(base=base)] = f"{test['delta']:+.3f}{mark} (p={test['p_value']:.3f})"
    if "interpolation_weight" in (record.params or {}):
        cells["interp w (dev)"] = record.params["interpolation_weight"]
    return cells


class Timer:
    """`with Timer() as t: ...; t.s` — wall seconds of a step, for the record."""

    def __enter__(self):
        self.start = time.perf_counter()
        self.s = 0.0
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self.start  # returns None: an exception propagates
