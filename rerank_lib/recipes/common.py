"""What every recipe does the same way: profiles, saved runs, and evaluating a run into a record.

Runs travel between notebooks as TREC files under <results>/runs/<profile>/, named
`<dataset>_<split>.<method>.trec`, so a later notebook reranks exactly the first stage an earlier one measured.
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Mapping

from ..data.trec import read_run, write_run
from ..data.types import Run
from ..evaluation import evaluate, measures_for, paired_test, per_query
from ..results import Record, make_record, write_record

PROFILES = ("smoke", "default", "paper")


def resolve_profile(base: Any, profiles: Mapping[str, Mapping[str, Any]], profile: str, overrides: Mapping[str, Any]):
    """A config dataclass for `profile`: the base defaults, then the profile's values, then the caller's overrides.

    Unknown override names are an error (a typo must not silently do nothing).
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, not {profile!r}")
    names = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"unknown parameter(s) {unknown} for {type(base).__name__}; known: {sorted(names)}")
    values = {**profiles.get(profile, {}), **{k: v for k, v in overrides.items() if v is not None}}
    return dataclasses.replace(base, profile=profile, **values)


def run_path(results_dir: str | os.PathLike, profile: str, dataset: str, split: str, method: str) -> Path:
    return Path(results_dir) / "runs" / profile / f"{dataset}_{split}.{method}.trec"


def save_run(run: Run, results_dir, profile: str, dataset: str, split: str, method: str) -> Path:
    return write_run(run, run_path(results_dir, profile, dataset, split, method), tag=method)


def load_run(results_dir, profile: str, dataset: str, split: str, method: str) -> Run:
    path = run_path(results_dir, profile, dataset, split, method)
    if not path.exists():
        raise FileNotFoundError(f"{path}: run not found; run the notebook that produces it first (01_first_stage)")
    return read_run(path)


def record_run(
    run: Run, qrels, *, pipeline: str, method: str, dataset: str, split: str, profile: str, results_dir,
    baselines: Mapping[str, Run] | None = None, measures=None, model: str = "", first_stage: str = "",
    depth: int | None = None, reference: Mapping[str, Any] | None = None, training_queries: str = "none (zero-shot)",
    n_training_queries: int | None = None, params: Mapping[str, Any] | None = None, seed: int | None = None,
    wall_s: float | None = None,
) -> Record:
    """Evaluate `run`, test it against each baseline run (paired t-test per measure), write the record + per-query CSV."""
    measures = list(measures or measures_for(dataset))
    pq = per_query(run, qrels, measures)
    significance = {}
    for name, base in (baselines or {}).items():
        pq_base = per_query(base, qrels, measures)
        significance[name] = {m: paired_test(pq_base, pq, m).to_dict() for m in measures}
    record = make_record(
        pipeline, method, dataset, split, evaluate(run, qrels, measures), model=model, first_stage=first_stage,
        depth=depth, significance=significance, reference=dict(reference or {}), training_queries=training_queries,
        n_training_queries=n_training_queries, profile=profile, params=dict(params or {}), seed=seed, wall_s=wall_s,
    )
    write_record(record, results_dir, per_query=pq)
    return record


class Timer:
    """`with Timer() as t: ...; t.s` — wall seconds of a step, for the record."""

    def __enter__(self):
        self.start = time.perf_counter()
        self.s = 0.0
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self.start
        return False
