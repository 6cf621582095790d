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
