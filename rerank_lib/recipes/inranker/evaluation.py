"""InRanker's evaluation: each student on the test sets its training leaves clean, records, +interp rows, tables."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from ...data import TrainingQueries
from ...data.trec import top_k
from ...data.types import Run
from ...evaluation import evaluate
from ...rerankers.monot5 import T5Ranker
from ...results import load_records
from ...experiment import Timer, choose_interpolation_weight, load_run, record_interpolation, record_run, save_run
from .data import saved_teacher, test_set
from .settings import PIPELINE, REFERENCES, InRankerConfig
from .student import Student, start_model
from .training import _short


@dataclass
class Evaluation:
    records: list
    runs: dict  # (method, dataset) -> Run, for the figures
    teacher: dict  # dataset -> the teacher's scores on the same candidates


def _other_year(year: str) -> str:
    return "trec-dl-2019" if year == "trec-dl-2020" else "trec-dl-2020"


def evaluate_all(cfg: InRankerConfig, students: Mapping[str, Student | None], results_dir) -> Evaluation:
    """Score every test set with the untrained student (the 'start' of every trained row) and with each trained
    student on the test sets its training leaves clean; write the records and the '+interp' rows.

    students: {'stage1/trec-dl-2020': s, 'stage1/trec-dl-2019': s, 'stage2': s, 'ablation': s} (any may be None).
    SciFact rows use the stage-1 student of `stage2_from` (stage 2's starting point); DL rows use each fold's.
    """
    records, runs, teachers = [], {}, {}
    sets = {name: test_set(cfg, name, results_dir) for name in ("scifact", "trec-dl-2019", "trec-dl-2020")}

    def depth_of(name):
        return cfg.scifact_depth if name == "scifact" else cfg.dl_depth

    def record(run, name, method, model, baselines, student=None, wall_s=0.0, extra_training=None):
        ds, _ = sets[name]
        training = None
        if student is not None:
            training = student.provenance | extra_training if extra_training else student.provenance
        records.append(record_run(
            run, ds.qrels, pipeline=PIPELINE, method=method, dataset=ds.name, split=ds.split, profile=cfg.profile,
            results_dir=results_dir, baselines=baselines, model=model, first_stage="bm25", depth=depth_of(name),
            params=student.params if student else asdict(cfg), seed=cfg.seed, wall_s=wall_s, training=training,
            eval_queries=ds.queries if training else None, reference=REFERENCES.get((ds.name, method))))

    def untrained(name_of_student, label):
        model, tok = start_model(cfg, name_of_student)
        return T5Ranker.from_model(model, tok, batch_size=cfg.eval_batch_size, max_length=cfg.max_length), label

    # The teacher on the same candidates (figures, agreement, the 'same candidates' row of the table).
    for name, (ds, bm25) in sets.items():
        if cfg.teacher_model is not None:
            continue
        teacher_name = cfg.scifact_teacher if name == "scifact" else cfg.dl_teacher
        full_run = load_run(results_dir, cfg.profile, name, "test", "bm25")
        full = saved_teacher(cfg, results_dir, name, "test", teacher_name,
                             top_k({q: full_run[q] for q in ds.queries}, cfg.teacher_depth), ds.corpus, ds.queries)
        teachers[name] = {q: {d: full[q][d] for d in bm25[q]} for q in bm25}
    if cfg.teacher_model is not None:  # paper: the monoT5 teacher is a ranker of its own, recorded here
        teacher = T5Ranker(cfg.teacher_model, batch_size=cfg.eval_batch_size, max_length=512)
        for name, (ds, bm25) in sets.items():
            with Timer() as t:
                teachers[name] = teacher.rerank(bm25, ds.corpus, ds.queries, depth=depth_of(name))
            record(teachers[name], name, "teacher-" + _short(cfg.teacher_model), cfg.teacher_model, {"bm25": bm25},
                   wall_s=t.s)
        del teacher

    start_name = f"{_short(cfg.student)}-start"
    start_ranker, _ = untrained(cfg.student, start_name)
    start_runs = {}
    for name, (ds, bm25) in sets.items():
        with Timer() as t:
            start_runs[name] = start_ranker.rerank(bm25, ds.corpus, ds.queries, depth=depth_of(name))
        runs[(start_name, name)] = start_runs[name]
        record(start_runs[name], name, start_name, f"untrained {cfg.student} (seed {cfg.seed})", {"bm25": bm25},
               wall_s=t.s)
    del start_ranker

    def trained(student: Student, name: str, baselines: dict, dev_first_stage: Run | None, extra_training=None):
        ds, bm25 = sets[name]
        ranker = T5Ranker(str(student.model_dir), batch_size=cfg.eval_batch_size, max_length=cfg.max_length)
        with Timer() as t:
            run = ranker.rerank(bm25, ds.corpus, ds.queries, depth=depth_of(name))
        runs[(student.method, name)] = run
        save_run(run, results_dir, cfg.profile, name, "test", f"inranker-{student.method}")
        model = f"{student.params.get('init')} -> {student.method}"
        record(run, name, student.method, model, baselines, student, t.s + student.wall_s, extra_training)
        if dev_first_stage is not None and student.dev_run is not None:
            weight, _ = choose_interpolation_weight(student.dev_run, dev_first_stage, student.dev.qrels)
            training = student.provenance | extra_training if extra_training else student.provenance
            records.append(record_interpolation(
                run, bm25, weight, ds.qrels, method=student.method, baselines=baselines,
                pipeline=PIPELINE, dataset=ds.name, split=ds.split, profile=cfg.profile, results_dir=results_dir,
                model=f"{model} + bm25", first_stage="bm25", depth=depth_of(name),
                params=student.params, seed=cfg.seed, training=training, eval_queries=ds.queries))
        return run

    for train_on in ("trec-dl-2020", "trec-dl-2019"):
        student = students.get(f"stage1/{train_on}")
        if student is not None:
            eval_on = _other_year(train_on)
            trained(student, eval_on, {"bm25": sets[eval_on][1], "start": start_runs[eval_on]}, student.dev_candidates)

    s1, s2 = students.get(f"stage1/{cfg.stage2_from}"), students.get("stage2")
    if s1 is not None:
        sci_bm25 = sets["scifact"][1]
        extra, dev_first = None, None
        if s2 is not None and s2.dev is not None:
            # The stage-1 model's interpolation weight on SciFact is chosen on SciFact's dev slice, as stage 2's.
            s1 = Student(s1.method, s1.model_dir, s1.provenance, s2.dev, s2.dev_candidates, None, s1.curve,
                         s1.history, s1.wall_s, s1.data, s1.params)
            s1.dev_run = T5Ranker(str(s1.model_dir), batch_size=cfg.eval_batch_size, max_length=cfg.max_length).rerank(
                s2.dev_candidates, sets["scifact"][0].corpus, s2.dev.queries, depth=cfg.scifact_depth)
            extra, dev_first = TrainingQueries.of("scifact/train-dev", s2.dev.queries), s2.dev_candidates
        stage1_run = trained(s1, "scifact", {"bm25": sci_bm25, "start": start_runs["scifact"]}, dev_first, extra)
        if s2 is not None:
            trained(s2, "scifact", {"bm25": sci_bm25, "start": start_runs["scifact"], "stage1": stage1_run},
                    s2.dev_candidates)

    abl = students.get("ablation")
    if abl is not None:
        eval_on = _other_year(cfg.stage2_from)
        ds, bm25 = sets[eval_on]
        abl_name = f"{_short(cfg.ablation_student)}-start"
        abl_ranker, _ = untrained(cfg.ablation_student, abl_name)
        with Timer() as t:
            abl_start = abl_ranker.rerank(bm25, ds.corpus, ds.queries, depth=cfg.dl_depth)
        runs[(abl_name, eval_on)] = abl_start
        record(abl_start, eval_on, abl_name, f"untrained {cfg.ablation_student} (seed {cfg.seed})", {"bm25": bm25},
               wall_s=t.s)
        trained(abl, eval_on, {"bm25": bm25, "start": abl_start}, abl.dev_candidates)
    return Evaluation(records, runs, teachers)


def results_table(cfg: InRankerConfig, evaluation: Evaluation, results_dir) -> pd.DataFrame:
    """nDCG@10 per test set: BM25 and the teacher (records of 01/02, plus the teacher at our depth), the start
    student and each trained student, with p-values against BM25 and against the start."""
    rows = []
    mine = {(r.method, r.dataset): r for r in evaluation.records}
    others = [r for r in load_records(results_dir, cfg.profile)
              if (r.pipeline, r.method) in {("first_stage", "bm25"), ("teacher", cfg.dl_teacher),
                                            ("teacher", cfg.scifact_teacher)}]
    for dataset in ("scifact", "trec-dl-2019", "trec-dl-2020"):
        depth = cfg.scifact_depth if dataset == "scifact" else cfg.dl_depth
        teacher_name = cfg.scifact_teacher if dataset == "scifact" else cfg.dl_teacher
        for r in others:
            if r.dataset == dataset and r.split == "test" and (r.pipeline == "first_stage" or r.method == teacher_name):
                rows.append({"dataset": dataset, "row": f"{r.pipeline}/{r.method}", "depth": r.depth,
                             "nDCG@10": r.metrics.get("nDCG@10"), "training": r.training_queries})
        ds, bm25 = test_set(cfg, dataset, results_dir)
        rows.append({"dataset": dataset, "row": "first_stage/bm25 (same queries)", "depth": depth,
                     "nDCG@10": evaluate(bm25, ds.qrels, ["nDCG@10"])["nDCG@10"], "training": "none (zero-shot)"})
        if evaluation.teacher.get(dataset):
            rows.append({"dataset": dataset, "row": f"teacher/{teacher_name} (same candidates)", "depth": depth,
                         "nDCG@10": evaluate(evaluation.teacher[dataset], ds.qrels, ["nDCG@10"])["nDCG@10"],
                         "training": "none (zero-shot)"})
        for (method, ds_name), r in mine.items():
            if ds_name != dataset:
                continue
            sig = r.significance
            rows.append({"dataset": dataset, "row": f"inranker/{method}", "depth": r.depth,
                         "nDCG@10": r.metrics.get("nDCG@10"), "training": r.training_queries,
                         "p vs bm25": sig.get("bm25", {}).get("nDCG@10", {}).get("p_value"),
                         "Δ vs bm25": sig.get("bm25", {}).get("nDCG@10", {}).get("delta"),
                         "p vs start": sig.get("start", {}).get("nDCG@10", {}).get("p_value"),
                         "Δ vs start": sig.get("start", {}).get("nDCG@10", {}).get("delta"),
                         "interp w": r.params.get("interpolation_weight")})
    table = pd.DataFrame(rows)
    return table.round(4)


def fold_summary(evaluation: Evaluation) -> pd.DataFrame:
    """TREC DL: each method's two folds (train on one year, test on the other) and their mean."""
    by = {}
    for r in evaluation.records:
        if r.dataset.startswith("trec-dl"):
            by.setdefault(r.method, {})[r.dataset] = r.metrics["nDCG@10"]
    rows = [{"method": m, **v, "mean": float(np.mean(list(v.values()))) if len(v) == 2 else None}
            for m, v in by.items()]
    return pd.DataFrame(rows).round(4)
