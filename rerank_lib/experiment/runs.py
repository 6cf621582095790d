"""Runs travel between notebooks as TREC files under <results>/runs/<profile>/, named
`<dataset>_<split>.<method>.trec`, so a later notebook reranks exactly the first stage an earlier one measured."""
from __future__ import annotations

import os
from pathlib import Path

from ..data.trec import read_run, write_run
from ..data.types import Run


def run_path(results_dir: str | os.PathLike, profile: str, dataset: str, split: str, method: str) -> Path:
    return Path(results_dir) / "runs" / profile / f"{dataset}_{split}.{method}.trec"


def save_run(run: Run, results_dir, profile: str, dataset: str, split: str, method: str) -> Path:
    return write_run(run, run_path(results_dir, profile, dataset, split, method), tag=method)


def load_run(results_dir, profile: str, dataset: str, split: str, method: str) -> Run:
    path = run_path(results_dir, profile, dataset, split, method)
    if not path.exists():
        raise FileNotFoundError(f"{path}: run not found; run the notebook that produces it first (01_first_stage)")
    return read_run(path)


def first_stage_of(results_dir, profile: str, dataset: str, split: str, data_root=None):
    """(the dataset restricted to the queries 01_first_stage ran, in query-id order; its saved BM25 run, all of its
    depth): what a later notebook reranks."""
    from ..data import load_dataset
    from ..data.trec import qid_order

    run = load_run(results_dir, profile, dataset, split, "bm25")
    ds = load_dataset(dataset, split, root=data_root)
    ds = ds.subset(sorted((q for q in run if q in ds.queries), key=qid_order))
    return ds, {q: run[q] for q in ds.queries}


def saved_teacher(results_dir, profile: str, dataset: str, split: str, teacher: str, candidates: Run, corpus,
                  queries) -> Run:
    """A teacher's scores on `candidates`: the run 02_teacher saved for this split where it covers them, else
    computed (teacher.scores_from_saved)."""
    from ..teacher import scores_from_saved

    path = run_path(results_dir, profile, dataset, split, f"teacher-{teacher}")
    return scores_from_saved(read_run(path) if path.exists() else {}, teacher, candidates, corpus, queries)
