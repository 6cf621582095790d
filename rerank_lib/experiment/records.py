"""Evaluate a ranker's run into records: the row, its `+interp` row with the dev-chosen weight, and paired tests
against named baselines (the first stage, the untrained start). Every notebook writes its results this way.

One convention for every pipeline: a step that evaluates returns an object with `.records` (a list of
`results.Record`): `Evaluated`, or the step's own result type holding `records` beside what its notebook shows
(the LLM reranker's Row, InRanker's Evaluation, RankLLM's ListwiseRows); never a bare Record or list of records. A
notebook collects them with `records_of([...steps...])` (or one step's `.records`)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

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
    """What a record says about the method that made a run; the EvalSet says what it was measured on."""

    pipeline: str
    method: str
    profile: str
    model: str = ""
    params: Mapping[str, Any] | None = None
    seed: int | None = None
    reference: Mapping[str, Any] | None = None
    wall_s: float | None = None

    def but(self, **changes) -> "Row":
        return replace(self, **changes)


def record_run(run: Run, evalset: EvalSet, row: Row, results_dir, *, baselines: Mapping[str, Run] | None = None,
               training: TrainingQueries | None = None,
               scorer: Callable[[Run, Any], pd.DataFrame] | None = None) -> Record:
    """Evaluate `run`, test it against each baseline run (paired t-test per measure), write the record + per-query CSV.
    A trained model passes `training`: the leak guard refuses it when it shares a query with `evalset.queries`.
    `scorer(run, qrels)` measures what ir-measures does not know (LocalRQA's recall@k): a (qid, measure, value) frame.
    """
    training_queries, n_training_queries = "none (zero-shot)", None
    if training is not None:
        assert_no_leak([training], f"{evalset.dataset}/{evalset.split}", dict(evalset.queries))
        training_queries, n_training_queries = training.describe(), len(training.query_ids)
    measures = list(evalset.measures or measures_for(evalset.dataset))
    score = scorer or (lambda r, q: per_query(r, q, measures))
    pq = score(run, evalset.qrels)
    significance = {}
    for name, base in (baselines or {}).items():
        pq_base = score(base, evalset.qrels)
        significance[name] = {m: paired_test(pq_base, pq, m).to_dict() for m in measures}
    metrics = ({m: float(pq[pq.measure == m]["value"].mean()) for m in measures} if scorer
               else evaluate(run, evalset.qrels, measures))
    record = make_record(
        row.pipeline, row.method, evalset.dataset, evalset.split, metrics, model=row.model,
        first_stage=evalset.first_stage, depth=evalset.depth, significance=significance,
        reference=dict(row.reference or {}), training_queries=training_queries, n_training_queries=n_training_queries,
        profile=row.profile, params=dict(row.params or {}), seed=row.seed, wall_s=row.wall_s,
    )
    if process_state().is_main_process:  # under `accelerate launch`, one process writes the results
        write_record(record, results_dir, per_query=pq)
    return record


def record_reranker(run: Run, evalset: EvalSet, row: Row, results_dir, *,
                    baselines: Mapping[str, Run] | None = None, training: TrainingQueries | None = None,
                    dev: EvalSet | None = None, dev_run: Run | None = None) -> list[Record]:
    """A reranker's test run as records: its row, and with a `dev_run` (the reranker on `dev`'s first-stage run)
    its `+interp` row: normalised score interpolation with `evalset.run` (the first stage), the weight chosen on
    dev. The one way a trained or zero-shot reranker enters the results."""
    records = [record_run(run, evalset, row, results_dir, baselines=baselines, training=training)]
    if dev_run is not None:
        weight, curve = choose_interpolation_weight(dev_run, dev.run, dev.qrels)
        params = {**dict(row.params or {}), "dev_curve": curve.to_dict("list"), "interpolation_weight": weight}
        records.append(record_run(interpolate(run, evalset.run, weight), evalset,
                                  row.but(method=f"{row.method}+interp", params=params), results_dir,
                                  baselines=baselines, training=training))
    return records


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
