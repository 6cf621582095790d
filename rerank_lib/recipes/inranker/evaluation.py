"""InRanker's evaluation: each student on the test sets its training leaves clean, as records (+interp rows); the
figures and per-student tables: learning curves, agreement with the teacher, training summary."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

import pandas as pd

from ...data import TrainingQueries, own_training
from ...data.trec import top_k
from ...evaluation import evaluate, kendall_tau_agreement
from ...experiment import (
    EvalSet, Row, Timer, learning_curves, load_run, publish_selected, record_reranker, save_run, saved_teacher,
    selection_row,
)
from ...experiment import results_table as experiment_table
from ...export import ModelCard, has_t5_vocabulary
from ...rerankers.monot5 import T5Ranker
from ...results import Record
from ...results.figures import teacher_agreement_figure
from ...settings import snapshot
from .data import test_set
from .settings import OWN_FILE, PIPELINE, RECIPE, InRankerConfig
from .training import Student, short_name, start_model

DATASETS = ("scifact", "trec-dl-2019", "trec-dl-2020")
OTHER_YEAR = {"trec-dl-2020": "trec-dl-2019", "trec-dl-2019": "trec-dl-2020"}


@dataclass
class Evaluation:
    sets: dict  # dataset -> (test Dataset, its BM25 candidates)
    teacher: dict  # dataset -> the teacher's scores on the same candidates
    records: list[Record] = field(default_factory=list)  # every record, in order (the notebook's results)
    runs: dict = field(default_factory=dict)  # (method, dataset) -> Run, for the figures


def teacher_runs(cfg: InRankerConfig, sets: Mapping, results_dir) -> dict:
    """The offline teacher on each test set's candidates (02_teacher's scores over its top-teacher_depth)."""
    out = {}
    for name, (ds, bm25) in sets.items():
        teacher = cfg.scifact_teacher if name == "scifact" else cfg.dl_teacher
        full_run = load_run(results_dir, cfg.profile, name, "test", "bm25")
        full = saved_teacher(results_dir, cfg.profile, name, "test", teacher,
                             top_k({q: full_run[q] for q in ds.queries}, cfg.teacher_depth), ds.corpus, ds.queries)
        out[name] = {q: {d: full[q][d] for d in bm25[q]} for q in bm25}
    return out


def evaluate_all(cfg: InRankerConfig, students: Mapping[str, Student | None], results_dir) -> Evaluation:
    """The untrained student (the 'start' of every trained row) on every test set, each trained student on the
    test sets its training leaves clean (a DL fold on the other year, SciFact rows on SciFact test).

    students: {'stage1/trec-dl-2020': s, 'stage1/trec-dl-2019': s, 'stage2': s, 'ablation': s} (any may be None).
    """
    sets = {name: test_set(cfg, name, results_dir) for name in DATASETS}
    ev = Evaluation(sets, {} if cfg.teacher_model else teacher_runs(cfg, sets, results_dir))

    def score(ranker, name, method, model, baselines, student=None, dev_run=None, dev=None):
        """The ranker's test run on `name` and its records; a trained `student` adds its training queries (its
        `provenance`), params and training time (its own run's: stage 2's excludes the stage 1 it starts from)."""
        ds, bm25 = sets[name]
        depth = cfg.scifact_depth if name == "scifact" else cfg.dl_depth
        with Timer() as t:
            run = ranker.rerank(bm25, ds.corpus, ds.queries, depth=depth)
        ev.runs[(method, name)] = run
        training = None if student is None else student.provenance
        params = student.params if student else own_training.without_unset(snapshot(cfg), OWN_FILE)
        ev.records += record_reranker(
            run, EvalSet.of(ds, bm25, first_stage="bm25", depth=depth),
            Row(PIPELINE, method, cfg.profile, model, params, cfg.seed, RECIPE.references.get((ds.name, method)),
                rerank_s=t.s, train_s=student.selected.train_s if student else None),
            results_dir, baselines=baselines, training=training,
            dev=dev and EvalSet.of(dev.data, dev.candidates), dev_run=dev_run)
        return run

    def start(name_of_student, datasets):
        method = f"{short_name(name_of_student)}-start"
        ranker = T5Ranker.from_model(*start_model(cfg, name_of_student), batch_size=cfg.eval_batch_size,
                                     max_length=cfg.max_length)
        return {n: score(ranker, n, method, f"untrained {name_of_student} (seed {cfg.seed})", {"bm25": sets[n][1]})
                for n in datasets}

    def trained(s: Student, name, baselines, dev, dev_run, extra=None):
        """A trained student's rows; its +interp weight chosen on `dev` from `dev_run` (None: no +interp row)."""
        ranker = T5Ranker(str(s.model_dir), batch_size=cfg.eval_batch_size, max_length=cfg.max_length)
        run = score(ranker, name, s.method, f"{s.params['init']} -> {s.method}", baselines,
                    replace(s, provenance=s.provenance | extra) if extra else s, dev_run, dev)
        save_run(run, results_dir, cfg.profile, name, "test", f"inranker-{s.method}")
        if has_t5_vocabulary(ranker):  # inranker's T5Ranker loads T5-vocabulary students (not the MiniLM one)
            row = next(r for r in ev.records if r.method == s.method and r.dataset == name)
            publish_selected("monot5", ranker, row, s.selected, results_dir,
                             ModelCard(s.params["init"], settings=s.params), name=f"{s.method}-{name}")
        return run

    if cfg.teacher_model is not None:  # paper: the monoT5 teacher is a ranker of its own, recorded here
        teacher = T5Ranker(cfg.teacher_model, batch_size=cfg.eval_batch_size, max_length=512)
        ev.teacher = {n: score(teacher, n, "teacher-" + short_name(cfg.teacher_model), cfg.teacher_model,
                               {"bm25": sets[n][1]}) for n in DATASETS}
    start_runs = start(cfg.student, DATASETS)
    for train_on, eval_on in OTHER_YEAR.items():
        s = students.get(f"stage1/{train_on}")
        if s is not None:
            trained(s, eval_on, {"bm25": sets[eval_on][1], "start": start_runs[eval_on]}, s.dev, s.selected.dev_run)
    s1, s2 = students.get(f"stage1/{cfg.stage2_from}"), students.get("stage2")
    if s1 is not None:
        base = {"bm25": sets["scifact"][1], "start": start_runs["scifact"]}
        dev, dev_run, extra = None, None, None
        if s2 is not None and s2.dev is not None:  # its interpolation weight chosen on SciFact dev, as stage 2's
            dev, extra = s2.dev, TrainingQueries.of("scifact/train-dev", s2.dev.data.queries)
            dev_run = T5Ranker(str(s1.model_dir), batch_size=cfg.eval_batch_size, max_length=cfg.max_length).rerank(
                dev.candidates, dev.data.corpus, dev.data.queries, depth=cfg.scifact_depth)
        stage1_run = trained(s1, "scifact", base, dev, dev_run, extra)
        if s2 is not None:
            trained(s2, "scifact", {**base, "stage1": stage1_run}, s2.dev, s2.selected.dev_run)
    abl = students.get("ablation")
    if abl is not None:
        eval_on = OTHER_YEAR[cfg.stage2_from]
        abl_start = start(cfg.ablation_student, [eval_on])[eval_on]
        trained(abl, eval_on, {"bm25": sets[eval_on][1], "start": abl_start}, abl.dev, abl.selected.dev_run)
    return ev


def results_table(cfg: InRankerConfig, ev: Evaluation) -> pd.DataFrame:
    """nDCG@10 per test set: BM25 and the teacher on the same candidates, the start student and each trained
    student, with paired tests against BM25 and against the start (and stage 1, for stage 2)."""
    tables = {}
    for name, (ds, bm25) in ev.sets.items():
        table = experiment_table([r for r in ev.records if r.dataset == name], ("nDCG@10",),
                                 bases=("bm25", "start", "stage1"), first_stage=("bm25 (same queries)", bm25, ds.qrels))
        if ev.teacher.get(name) and cfg.teacher_model is None:
            teacher = cfg.scifact_teacher if name == "scifact" else cfg.dl_teacher
            table.loc[f"teacher {teacher} (same candidates)", "nDCG@10"] = round(
                evaluate(ev.teacher[name], ds.qrels, ["nDCG@10"])["nDCG@10"], 4)
        tables[name] = table.fillna("")
    return pd.concat(tables, names=["dataset"])


def learning_curves_figure(cfg: InRankerConfig, students: Mapping[str, Student | None], results_dir) -> Path:
    """Training loss and dev nDCG@10 against steps (step 0: the start), the selected checkpoint circled."""
    shown = {key: s.selected for key, s in students.items() if s is not None and s.selected.curve}
    return learning_curves(shown, Path(results_dir) / "figures" / f"inranker_learning_curves_{cfg.profile}.png")


def agreement(ev: Evaluation, pairs: Mapping[str, tuple[str, str]]) -> pd.DataFrame:
    """Kendall tau (per query, averaged) between each model's scores and the teacher's on the same candidates."""
    rows = [{"model": label, "dataset": dataset,
             "Kendall tau with teacher": kendall_tau_agreement(ev.runs[(method, dataset)], ev.teacher[dataset])}
            for label, (method, dataset) in pairs.items() if (method, dataset) in ev.runs and ev.teacher.get(dataset)]
    return pd.DataFrame(rows).round(4)


def agreement_pairs(cfg: InRankerConfig) -> dict[str, tuple[str, str]]:
    """(method, test set) per label of the teacher-agreement table and figure: the start and stage 1 on DL19 (the
    student trained on DL20), the start, stage 1 (of `stage2_from`) and stage 2 on SciFact. A SciFact label that
    would repeat a DL19 one ends in a space (the figure's panels are keyed by label)."""
    student, dl = short_name(cfg.student), lambda year: "DL" + year[-2:]
    return {"start": (f"{student}-start", "trec-dl-2019"),
            f"stage 1 ({dl(OTHER_YEAR['trec-dl-2019'])})": (f"{student}-stage1", "trec-dl-2019"),
            "start ": (f"{student}-start", "scifact"),
            f"stage 1 ({dl(cfg.stage2_from)}) ": (f"{student}-stage1", "scifact"),
            "stage 2": (f"{student}-stage2", "scifact")}


def agreement_figure(cfg: InRankerConfig, ev: Evaluation, pairs: Mapping[str, tuple[str, str]], results_dir) -> Path:
    """Scatter of student score (true - false margin) against teacher score, pooled over queries, per panel."""
    return teacher_agreement_figure(ev.runs, ev.teacher, pairs,
                                    Path(results_dir) / "figures" / f"inranker_teacher_agreement_{cfg.profile}.png",
                                    ylabel="student margin (true − false)")


def training_table(students: Mapping[str, Student | None]) -> pd.DataFrame:
    """One row per trained student: its data, steps, the dev values at the start and at the selected checkpoint."""
    return pd.DataFrame([{"student": key, "method": s.method, "pairs": s.data.get("pairs"),
                          "queries": s.data.get("queries"),
                          "label margin mean±sd": f"{s.data.get('margin_mean')}±{s.data.get('margin_std')}",
                          **selection_row(s.selected, {"nDCG@10": "nDCG@10", "τ": "teacher_tau"})}
                         for key, s in students.items() if s is not None]).round(4)
