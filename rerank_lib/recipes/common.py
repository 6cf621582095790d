"""What every recipe does the same way: profiles, saved runs, and evaluating a run into a record.

Runs travel between notebooks as TREC files under <results>/runs/<profile>/, named
`<dataset>_<split>.<method>.trec`, so a later notebook reranks exactly the first stage an earlier one measured.
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..data import TrainingQueries, assert_no_leak, dev_slice, load_dataset, without_overlap
from ..data.trec import read_run, write_run
from ..data.types import Dataset, Run
from ..evaluation import evaluate, interpolate, measures_for, paired_test, per_query
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


def pipeline_cache(results_dir: str | os.PathLike, profile: str, pipeline: str) -> Path:
    """A recipe's working folder for derived files (training data, checkpoints): <results>/cache/<profile>/<pipeline>,
    ignored by git and rebuilt on demand."""
    path = Path(results_dir) / "cache" / profile / pipeline
    path.mkdir(parents=True, exist_ok=True)
    return path


def jsonable(value: Any) -> Any:
    """`value` as plain JSON types (tuples and sets become lists, anything else its str): what record params and
    cache keys hold, so a config with tuples hashes and prints the same after a round trip."""
    return json.loads(json.dumps(value, default=lambda o: list(o) if isinstance(o, (tuple, set)) else str(o)))


def sample_ids(ids, n: int | None, seed: int) -> list[str]:
    """A seeded, sorted sample of `n` ids (all of them, sorted, when n is None or not smaller): the same subset for
    the same seed on every machine, whatever the order `ids` came in."""
    ids = sorted(ids)
    return ids if n is None or n >= len(ids) else sorted(random.Random(seed).sample(ids, n))


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
    wall_s: float | None = None, training: TrainingQueries | None = None, eval_queries: Mapping[str, str] | None = None,
) -> Record:
    """Evaluate `run`, test it against each baseline run (paired t-test per measure), write the record + per-query CSV.

    A trained model passes `training` (its TrainingQueries) and `eval_queries` (the queries it is evaluated on):
    the leak guard refuses the record when they share a query, and the record names the training queries.
    """
    if training is not None:
        if eval_queries is None:
            raise TypeError("record_run(training=...) needs eval_queries= (the evaluated queries) for the leak guard")
        assert_no_leak([training], f"{dataset}/{split}", dict(eval_queries))
        training_queries = training.describe()
        n_training_queries = len(training.query_ids)
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


@dataclasses.dataclass
class TrainingSplit:
    """Queries a model may learn from: `train` (labels), `dev` (checkpoint and weight selection), and their provenance.

    `provenance` covers train and dev together: both are closed to evaluation.
    """

    train: Dataset
    dev: Dataset
    provenance: TrainingQueries

    def describe(self) -> str:
        return f"{self.provenance.source}: {len(self.train.queries)} train + {len(self.dev.queries)} dev q"

    def used(self, train_ids, dev_ids) -> TrainingQueries:
        """The provenance of the queries a recipe actually drew on (a sample of train, a sample of dev), so a row
        trained on 24 queries does not claim the whole split; it stays inside the split's leak guard."""
        train_ids, dev_ids = set(train_ids), set(dev_ids)
        unknown = sorted((train_ids - set(self.train.queries)) | (dev_ids - set(self.dev.queries)))
        if unknown:
            raise ValueError(f"{self.provenance.source}: query ids {unknown[:5]} are not in this split's train/dev")
        queries = {**{q: self.train.queries[q] for q in train_ids}, **{q: self.dev.queries[q] for q in dev_ids}}
        return TrainingQueries.of(f"{self.provenance.source} sample", queries)


def _split(ds: Dataset, source: str, seed: int, dev_fraction: float, min_dev: int) -> TrainingSplit:
    ds = ds.subset(sorted(ds.judged_queries()))
    train_ids, dev_ids = dev_slice(ds.queries, fraction=dev_fraction, min_size=min(min_dev, len(ds.queries) // 2), seed=seed)
    provenance = TrainingQueries.of(source, ds.queries)
    return TrainingSplit(train=ds.subset(train_ids), dev=ds.subset(dev_ids), provenance=provenance)


def scifact_training_split(data_root=None, seed: int = 13, dev_fraction: float = 0.1, min_dev: int = 20,
                           restrict_to=None) -> TrainingSplit:
    """SciFact train minus the claims repeated in test (2 of 809), minus a seeded dev slice.

    `restrict_to` limits it to some query ids (the smoke profile trains on the queries 01_first_stage ran).
    The same seed and fraction give the dev slice 02_teacher reports on.
    """
    test = load_dataset("scifact", "test", root=data_root)
    ds = load_dataset("scifact", "train", root=data_root)
    ds = ds.subset(sorted(without_overlap(ds.queries, test.queries)))
    if restrict_to is not None:
        ds = ds.subset([q for q in ds.queries if q in set(restrict_to)])
    return _split(ds, "scifact/train", seed, dev_fraction, min_dev)


def dl_training_split(train_on: str, data_root=None, seed: int = 13, dev_fraction: float = 0.2, min_dev: int = 8,
                      restrict_to=None) -> TrainingSplit:
    """One TREC DL year as training data for the other year's evaluation (folds_dl), with its own dev slice."""
    ds = load_dataset(train_on, "test", root=data_root)
    if restrict_to is not None:
        ds = ds.subset([q for q in ds.queries if q in set(restrict_to)])
    return _split(ds, f"{train_on}/test", seed, dev_fraction, min_dev)


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


def record_interpolation(reranked: Run, first_stage_run: Run, weight: float, qrels, *, method: str, baselines=None,
                         **record_kwargs) -> Record:
    """The standard `reranker + first stage` row: normalised score interpolation with a dev-chosen weight.

    `record_kwargs` go to record_run (including its `first_stage=` label, which names the first stage in the table).
    """
    params = {**dict(record_kwargs.pop("params", None) or {}), "interpolation_weight": weight}
    return record_run(interpolate(reranked, first_stage_run, weight), qrels, method=f"{method}+interp",
                      baselines=baselines, params=params, **record_kwargs)
