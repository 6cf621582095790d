"""Training one InRanker student (the package-style trainer, dev-selected weights): stage 1 and the ablation."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Mapping

from ...data import TrainingQueries, load_dataset
from ...data.types import Dataset, Run
from ...inranker import DistillDataset, InRankerTrainer, ranking_eval_fn
from ...paths import cache_dir
from ...rerankers.monot5 import T5Ranker
from ...experiment import Timer
from .data import Fold
from .settings import InRankerConfig
from .student import Student, _student_options


def _centre(cfg: InRankerConfig, stage: int) -> bool:
    return cfg.center_labels == "both" or (cfg.center_labels == "reference" and stage == 2)


def _run_dir(cfg: InRankerConfig, method: str, key: dict) -> Path:
    """Checkpoints of one training run, named by everything that decides it: a re-run with the same data and
    settings resumes (or finds the run complete) instead of training again."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return cache_dir("inranker", cfg.profile, "runs") / f"{method}-{digest}"


def train_student(cfg: InRankerConfig, method: str, init: str, dataset_loader, dev: Dataset | None,
                  dev_candidates: Run | None, dev_teacher: Run | None, provenance: TrainingQueries | None, corpus, *,
                  learning_rate: float, decoder_learning_rate: float | None, epochs: float,
                  student_options: dict | None = None, source: str = "") -> Student:
    """Distil into `init` (a student name or a checkpoint folder) with the package-style trainer. With a dev set:
    evaluate it at step 0, every eval_every_steps and at the end, and keep the weights of the best dev nDCG@10.
    `provenance` None: the training queries are read from the dataset (named `source`)."""
    with Timer() as t:
        trainer_kwargs = dict(
            batch_size=cfg.batch_size, learning_rate=learning_rate, decoder_learning_rate=decoder_learning_rate,
            warmup_steps=cfg.warmup_steps, warmup_ratio=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
            num_train_epochs=epochs, logging_steps=5, max_length=cfg.max_length, seed=cfg.seed,
            eval_every_steps=cfg.eval_every_steps if dev is not None else None, eval_batch_size=cfg.eval_batch_size,
            bf16="auto", keep_last_checkpoints=1, save_steps=10**9 if cfg.checkpoint_at_end else None,
            save_best=dev is not None and cfg.eval_every_steps is not None)
        trainer = InRankerTrainer(model=init, student_options=student_options, **trainer_kwargs)
        dataset: DistillDataset = dataset_loader(trainer)
        key = {"init": str(init), "options": student_options, "data": dataset.fingerprint(),
               "dev": sorted(dev_candidates or {}), **trainer_kwargs}
        output_dir = _run_dir(cfg, method, key)
        trainer.config.output_dir = str(output_dir)  # known only once the data is tokenised
        eval_fn, curve = None, []
        if dev is not None:
            eval_fn = ranking_eval_fn(trainer.tokenizer, dev_candidates, corpus, dev.queries, dev.qrels,
                                      teacher=dev_teacher, batch_size=cfg.eval_batch_size, max_length=cfg.max_length)
            curve = [{"step": 0, "epoch": 0.0, **eval_fn(trainer.model)}]
        result = trainer.train(train_dataset=dataset, resume_training=True, eval_fn=eval_fn,
                               metric_for_best="nDCG@10" if eval_fn else None)
        model_dir = result.best_dir or result.final_dir
        dev_run = None
        trained_now = bool(result.history) and result.history[-1]["step"] == result.global_step and \
            eval_fn is not None and len(eval_fn.runs) > 1
        if eval_fn is not None and trained_now and result.best_step in (None, result.global_step):
            dev_run = eval_fn.runs[-1]  # the selected model is the last one evaluated: its dev run is at hand
        elif dev is not None:
            ranker = T5Ranker(str(model_dir), batch_size=cfg.eval_batch_size, max_length=cfg.max_length)
            dev_run = ranker.rerank(dev_candidates, corpus, dev.queries, depth=max(map(len, dev_candidates.values())))
    curve += [{k: v for k, v in row.items() if k != "kind"} for row in result.eval_history]
    if provenance is None:
        provenance = TrainingQueries.of(source or dataset.source, dataset.query_texts)
    return Student(method=method, model_dir=model_dir, provenance=provenance, dev=dev, dev_candidates=dev_candidates,
                   dev_run=dev_run, curve=curve, history=result.history, wall_s=t.s, data=dataset.summary(),
                   params={**asdict(cfg), "init": str(init), "learning_rate_used": learning_rate,
                           "decoder_learning_rate_used": decoder_learning_rate, "epochs_used": epochs,
                           "best_step": result.best_step, "steps": result.global_step,
                           "output_dir": str(output_dir)})


def stage1(cfg: InRankerConfig, folds: Mapping[str, Fold] | None, results_dir) -> dict[str, Student]:
    """{train_on: student}: the student trained on each DL fold from the untrained student (offline). With the
    published MS MARCO soft labels (paper profile) one student serves both DL years (its queries are MS MARCO
    train queries, disjoint from both)."""
    method = f"{_short(cfg.student)}-stage1"
    options = _student_options(cfg, cfg.student)
    if cfg.stage1_data == "published":
        student = train_student(
            cfg, method, cfg.student, lambda tr: tr.load_msmarco_dataset(center_labels=_centre(cfg, 1)),
            None, None, None, None, None, learning_rate=cfg.learning_rate,
            decoder_learning_rate=cfg.decoder_learning_rate, epochs=cfg.stage1_epochs, student_options=options,
            source="msmarco/train")
        return {"trec-dl-2020": student, "trec-dl-2019": student}
    out = {}
    for train_on, fold in folds.items():
        full = load_dataset(train_on, "test", root=cfg.data_root)
        out[train_on] = train_student(
            cfg, method, cfg.student,
            lambda tr, f=fold, ds=full: tr.load_msmarco_dataset(f.labels_file, queries=ds.queries, corpus=ds.corpus,
                                                                center_labels=_centre(cfg, 1)),
            fold.split.dev, fold.dev_candidates, fold.dev_teacher, fold.split.provenance, full.corpus,
            learning_rate=cfg.learning_rate, decoder_learning_rate=cfg.decoder_learning_rate, epochs=cfg.stage1_epochs,
            student_options=options)
    return out


def ablation(cfg: InRankerConfig, folds: Mapping[str, Fold] | None, results_dir) -> Student | None:
    """The ablation student (offline: a T5 from config), stage 1 on the stage2_from fold only."""
    if not cfg.ablation_student:
        return None
    method, options = f"{_short(cfg.ablation_student)}-stage1", _student_options(cfg, cfg.ablation_student)
    if cfg.stage1_data == "published":
        return train_student(
            cfg, method, cfg.ablation_student, lambda tr: tr.load_msmarco_dataset(center_labels=_centre(cfg, 1)),
            None, None, None, None, None, learning_rate=cfg.ablation_learning_rate, decoder_learning_rate=None,
            epochs=cfg.ablation_epochs, student_options=options, source="msmarco/train")
    fold = folds[cfg.stage2_from]
    full = load_dataset(fold.train_on, "test", root=cfg.data_root)
    return train_student(
        cfg, method, cfg.ablation_student,
        lambda tr: tr.load_msmarco_dataset(fold.labels_file, queries=full.queries, corpus=full.corpus,
                                           center_labels=_centre(cfg, 1)),
        fold.split.dev, fold.dev_candidates, fold.dev_teacher, fold.split.provenance, full.corpus,
        learning_rate=cfg.ablation_learning_rate, decoder_learning_rate=None, epochs=cfg.ablation_epochs,
        student_options=options)


def _short(name: str) -> str:
    return {"t5-efficient-tiny-random": "t5tiny-random"}.get(name, Path(str(name)).name)
