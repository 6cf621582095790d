"""InRanker's data: the test sets, the teacher's scores, their calibration to two logits, the stage-1 DL folds."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import pandas as pd

from ...data.inranker import soft_label_examples, write_msmarco_soft_labels
from ...data.trec import qid_order, top_k
from ...data.types import Dataset, Run
from ...experiment import TrainingSplit, dl_training_split, first_stage_of, saved_teacher
from ...paths import cache_dir
from ...teacher import Calibration, fit_calibration
from .settings import InRankerConfig


@dataclass
class DevSlice:
    """Dev queries (checkpoint and interpolation-weight selection), their BM25 candidates, the teacher's scores."""

    data: Dataset
    candidates: Run
    teacher: Run | None = None


def test_set(cfg: InRankerConfig, name: str, results_dir) -> tuple[Dataset, Run]:
    """A test split and its BM25 top-depth (judged queries; the first max_eval_queries in smoke)."""
    ds, run = first_stage_of(results_dir, cfg.profile, name, "test", cfg.data_root)
    ids = sorted(ds.judged_queries(), key=qid_order)[: cfg.max_eval_queries or None]
    ds = ds.subset(ids)
    return ds, top_k({q: run[q] for q in ds.queries}, cfg.scifact_depth if name == "scifact" else cfg.dl_depth)


@dataclass
class Fold:
    """Stage-1 training data of one TREC DL fold: train on `train_on`'s queries, test on `eval_on`."""

    train_on: str
    eval_on: str
    split: TrainingSplit
    calibration: Calibration
    labels_file: Path
    dev: DevSlice


def dl_folds(cfg: InRankerConfig, results_dir) -> dict[str, Fold]:
    """For each DL year: its queries split into train/dev, the teacher's scores on their BM25 candidates, the
    calibration fitted on the TRAIN part's judgments, and the labelled pairs in the MS MARCO soft-label format."""
    folds = {}
    for train_on, eval_on in (("trec-dl-2020", "trec-dl-2019"), ("trec-dl-2019", "trec-dl-2020")):
        full, bm25 = first_stage_of(results_dir, cfg.profile, train_on, "test", cfg.data_root)
        split = dl_training_split(train_on, data_root=cfg.data_root, seed=cfg.seed, restrict_to=list(full.queries))
        train_q, dev_q = split.train, split.dev
        candidates = top_k({q: bm25[q] for q in full.queries}, cfg.teacher_depth)
        teacher = saved_teacher(results_dir, cfg.profile, train_on, "test", cfg.dl_teacher, candidates, full.corpus,
                                full.queries)
        calibration = fit_calibration({q: teacher[q] for q in train_q.queries}, train_q.qrels,
                                      min_grade=cfg.dl_min_grade, teacher=cfg.dl_teacher,
                                      fitted_on=f"{train_on} train part ({len(train_q.queries)} q)")
        pairs = {q: {d: teacher[q][d] for d in top_k({q: bm25[q]}, cfg.stage1_depth)[q]} for q in train_q.queries}
        path = cache_dir("inranker", cfg.profile) / f"stage1_{train_on}_{cfg.dl_teacher}_{cfg.stage1_depth}.tsv"
        write_msmarco_soft_labels(path, soft_label_examples(pairs, calibration, train_q.queries, full.corpus))
        dev_candidates = top_k({q: bm25[q] for q in dev_q.queries}, cfg.dl_depth)
        dev = DevSlice(dev_q, dev_candidates, {q: teacher[q] for q in dev_q.queries})
        folds[train_on] = Fold(train_on, eval_on, split, calibration, path, dev)
    return folds


def fold_table(folds: Mapping[str, Fold]) -> pd.DataFrame:
    rows = []
    for f in folds.values():
        top = max(s for d in f.dev.teacher.values() for s in d.values())
        rows.append({"train on": f.train_on, "test on": f.eval_on, "train q": len(f.split.train.queries),
                     "dev q": len(f.split.dev.queries), "labelled pairs": sum(1 for _ in open(f.labels_file)),
                     "calibration": f.calibration.describe(),
                     "P(rel) at teacher's max": round(f.calibration.probability(top), 3)})
    return pd.DataFrame(rows)
