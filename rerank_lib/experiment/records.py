"""Evaluate a ranker's run into records: the row, its `+interp` row with the dev-chosen weight, and paired tests
against named baselines (the first stage, the untrained start). Every notebook writes its results this way."""
from __future__ import annotations

import time
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from ..data import TrainingQueries, assert_no_leak
from ..data.types import Run
from ..evaluation import evaluate, interpolate, measures_for, paired_test, per_query
from ..results import Record, make_record, write_record
from ..training import process_state


def record_run(
    run: Run, qrels, *, pipeline: str, method: str, dataset: str, split: str, profile: str, results_dir,
    baselines: Mapping[str, Run] | None = None, measures=None, model: str = "", first_stage: str = "",
    depth: int | None = None, reference: Mapping[str, Any] | None = None, training_queries: str = "none (zero-shot)",
    n_training_queries: int | None = None, params: Mapping[str, Any] | None = None, seed: int | None = None,
    wall_s: float | None = None, training: TrainingQueries | None = None, eval_queries: Mapping[str, str] | None = None,
    scorer: Callable[[Run, Any], pd.DataFrame] | None = None,
) -> Record:
    """Evaluate `run`, test it against each baseline run (paired t-test per measure), write the record + per-query CSV.

    A trained model passes `training` (its TrainingQueries) and `eval_queries` (the queries it is evaluated on):
    the leak guard refuses the record when they share a query, and the record names the training queries.
    `scorer(run, qrels)` replaces ir-measures for measures it does not know (e.g. LocalRQA's recall@k): a long
    per-query frame (qid, measure, value) whose means are the metrics.
    """
    if training is not None:
        if eval_queries is None:
            raise TypeError("record_run(training=...) needs eval_queries= (the evaluated queries) for the leak guard")
        assert_no_leak([training], f"{dataset}/{split}", dict(eval_queries))
        training_queries = training.describe()
        n_training_queries = len(training.query_ids)
    measures = list(measures or measures_for(dataset))
    score = scorer or (lambda r, q: per_query(r, q, measures))
    pq = score(run, qrels)
    significance = {}
    for name, base in (baselines or {}).items():
        pq_base = score(base, qrels)
        significance[name] = {m: paired_test(pq_base, pq, m).to_dict() for m in measures}
    metrics = ({m: float(pq[pq.measure == m]["value"].mean()) for m in measures} if scorer
               else evaluate(run, qrels, measures))
    record = make_record(
        pipeline, method, dataset, split, metrics, model=model, first_stage=first_stage,
        depth=depth, significance=significance, reference=dict(reference or {}), training_queries=training_queries,
        n_training_queries=n_training_queries, profile=profile, params=dict(params or {}), seed=seed, wall_s=wall_s,
    )
    if process_state().is_main_process:  # under `accelerate launch`, one process writes the results
        write_record(record, results_dir, per_query=pq)
    return record


def record_interpolation(reranked: Run, first_stage_run: Run, weight: float, qrels, *, method: str, baselines=None,
                         **record_kwargs) -> Record:
    """The standard `reranker + first stage` row: normalised score interpolation with a dev-chosen weight.

    `record_kwargs` go to record_run (including its `first_stage=` label, which names the first stage in the table).
    """
    params = {**dict(record_kwargs.pop("params", None) or {}), "interpolation_weight": weight}
    return record_run(interpolate(reranked, first_stage_run, weight), qrels, method=f"{method}+interp",
                      baselines=baselines, params=params, **record_kwargs)


def record_reranker(run: Run, qrels, *, first_stage_run: Run, dev_run: Run | None = None,
                    first_stage_dev: Run | None = None, dev_qrels=None, interpolate_with_first_stage: bool = True,
                    method: str, params: Mapping[str, Any] | None = None, **record_kwargs) -> list[Record]:
    """A reranker's test run as records: its row, and (with a dev run) its `+interp` row whose weight the dev
    slice chose, each tested against the baselines in `record_kwargs['baselines']`. The one way a trained or
    zero-shot reranker enters the results."""
    records = [record_run(run, qrels, method=method, params=params, **record_kwargs)]
    if interpolate_with_first_stage and dev_run is not None:
        weight, curve = choose_interpolation_weight(dev_run, first_stage_dev, dev_qrels)
        interp_kwargs = {k: v for k, v in record_kwargs.items() if k != "first_stage"}
        records.append(record_interpolation(
            run, first_stage_run, weight, qrels, method=method, first_stage=record_kwargs.get("first_stage", ""),
            params={**dict(params or {}), "dev_curve": curve.to_dict("list")}, **interp_kwargs))
    return records


def choose_interpolation_weight(reranked_dev: Run, first_stage_dev: Run, dev_qrels, measure: str = "nDCG@10",
                                grid=None) -> tuple[float, pd.DataFrame]:
    """The weight of `interpolate(reranker, first stage, w)` that is best on the dev slice (ties: larger weight).

    Returns the weight and the whole dev curve, to show in the notebook.
    """
    grid = [round(float(w), 2) for w in (np.linspace(0.0, 1.0, 11) if grid is None else grid)]
    rows = [{"weight": w, measure: evaluate(interpolate(reranked_dev, first_stage_dev, w), dev_qrels, [measure])[measure]}
            for w in grid]
    curve = pd.DataFrame(rows)
    best = curve[curve[measure] == curve[measure].max()]["weight"].max()
    return float(best), curve


def comparison_cells(record: Record, bases=("bm25", "start"), measure: str = "nDCG@10", alpha: float = 0.05,
                     label: str = "Δ vs {base}") -> dict:
    """The table cells every notebook shows beside a row: its paired-test delta against each named baseline
    ('+0.031▲ (p=0.004)': ▲/▼ when p < alpha) and the dev-chosen interpolation weight of a '+interp' row."""
    cells = {}
    for base in bases:
        test = (record.significance or {}).get(base, {}).get(measure)
        if test:
            mark = ("▲" if test["delta"] > 0 else "▼") if test["p_value"] < alpha else ""
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
        self.s = time.perf_counter() - self.start
        return False
