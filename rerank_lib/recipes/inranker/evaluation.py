"""InRanker's evaluation: each student on the test sets its training leaves clean, as records (+interp rows); the
figures and per-student tables: learning curves, agreement with the teacher, training summary."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from ...data import TrainingQueries, own_training
from ...data.trec import top_k
from ...evaluation import evaluate, kendall_tau_agreement
from ...experiment import (
    EvalSet, Row, Timer, first_seed, learning_curves, load_run, publish_selected, record_reranker, save_run,
    saved_teacher, selection_row,
)
from ...experiment import results_table as experiment_table
from ...export import ModelCard, has_t5_vocabulary
from ...rerankers.monot5 import T5Ranker
from ...results import Record
from ...results.figures import teacher_agreement_figure
from ...settings import snapshot
from .data import test_set
from .settings import OWN_FILE, PIPELINE, RECIPE, InRankerConfig
from .training import Student, labelled, short_name, start_model

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


#: a trained row's params that differ between training seeds: a seeded record lists them per seed
PER_SEED = ("train", "selected_step", "steps")


def row_params(students: Sequence[Student]) -> dict:
    """A trained row's params: its student's, or with several training seeds the first seed's with each of PER_SEED
    listed per seed (in `seeds` order; results.record.selected_steps reads each seed's selected step)."""
    first = students[0].params
    return first if len(students) == 1 else {**first, **{k: [s.params[k] for s in students] for k in PER_SEED}}


def dev_runs(students: Sequence[Student]) -> list | None:
    """Each seed's selected checkpoint on its dev slice (the +interp row's weight is chosen on it); None without a
    dev slice (the published stage-1 data has none)."""
    runs = [s.selected.dev_run for s in students]
    return None if any(run is None for run in runs) else runs


def evaluate_all(cfg: InRankerConfig, students: Mapping[str, Sequence[Student] | None], results_dir) -> Evaluation:
    """The untrained student (the 'start' of every trained row) on every test set, each trained student on the
    test sets its training leaves clean (a DL fold on the other year, SciFact rows on SciFact test).

    students: {'stage1/trec-dl-2020': [s], 'stage1/trec-dl-2019': [s], 'stage2': [s], 'ablation': [s]}, one student
    per training seed (any may be None). A row trained over several seeds is one record (experiment.record_reranker:
    the mean over seeds, each seed's values; stage 2 is tested against stage 1's per-query mean over seeds); the
    start rows are one run (the untrained student does not depend on the training seed). The figures, the saved
    test runs and a published model are the first seed's.
    """
    sets = {name: test_set(cfg, name, results_dir) for name in DATASETS}
    ev = Evaluation(sets, {} if cfg.teacher_model else teacher_runs(cfg, sets, results_dir))

    def score(rankers, name, method, model, baselines, trained=(), on_dev=None, dev=None):
        """The test runs on `name` of `rankers` (one per training seed of `trained`, or one untrained ranker) and
        their records; `trained` students add their training queries, params and training time (stage 2's: its own)."""
        ds, bm25 = sets[name]
        depth = cfg.scifact_depth if name == "scifact" else cfg.dl_depth
        with Timer() as t:
            runs = [ranker.rerank(bm25, ds.corpus, ds.queries, depth=depth) for ranker in rankers]
        ev.runs[(method, name)] = runs[0]
        params = row_params(trained) if trained else own_training.without_unset(snapshot(cfg), OWN_FILE)
        seeds = tuple(s.seed for s in trained) if len(trained) > 1 else ()
        ev.records += record_reranker(
            runs, EvalSet.of(ds, bm25, first_stage="bm25", depth=depth),
            Row(PIPELINE, method, cfg.profile, model, params, cfg.seed, RECIPE.references.get((ds.name, method)),
                seeds=seeds, rerank_s=t.s, train_s=sum(s.selected.train_s for s in trained) if trained else None),
            results_dir, baselines=baselines, training=trained[0].provenance if trained else None,
            dev=dev and EvalSet.of(dev.data, dev.candidates), dev_run=on_dev)
        return runs

    def ranker_of(s: Student) -> T5Ranker:
        return T5Ranker(str(s.model_dir), batch_size=cfg.eval_batch_size, max_length=cfg.max_length)

    def start(name_of_student, datasets):
        method = f"{short_name(name_of_student)}-start"
        ranker = T5Ranker.from_model(*start_model(cfg, name_of_student), batch_size=cfg.eval_batch_size,
                                     max_length=cfg.max_length)
        return {n: score([ranker], n, method, f"untrained {name_of_student} (seed {cfg.seed})", {"bm25": sets[n][1]})
                for n in datasets}

    def trained(ss: Sequence[Student], name, baselines, dev, on_dev, extra=None):
        """A trained row's records (one student per training seed); its +interp weight chosen per seed on `dev`
        from `on_dev`, each seed's run on it (None: no +interp row)."""
        s, rankers = ss[0], [ranker_of(one) for one in ss]
        runs = score(rankers, name, s.method, f"{s.params['init']} -> {s.method}", baselines,
                     [replace(one, provenance=one.provenance | extra) for one in ss] if extra else ss, on_dev, dev)
        save_run(runs[0], results_dir, cfg.profile, name, "test", f"inranker-{s.method}")
        if has_t5_vocabulary(rankers[0]):  # inranker's T5Ranker loads T5-vocabulary students (not the MiniLM one)
            row = next(r for r in ev.records if r.method == s.method and r.dataset == name)
            publish_selected("monot5", rankers[0], first_seed(row), s.selected, results_dir,
                             ModelCard(s.params["init"], settings=s.params), name=f"{s.method}-{name}")
        return runs

    if cfg.teacher_model is not None:  # paper: the monoT5 teacher is a ranker of its own, recorded here
        teacher = T5Ranker(cfg.teacher_model, batch_size=cfg.eval_batch_size, max_length=512)
        ev.teacher = {n: score([teacher], n, "teacher-" + short_name(cfg.teacher_model), cfg.teacher_model,
                               {"bm25": sets[n][1]})[0] for n in DATASETS}
    start_runs = start(cfg.student, DATASETS)
    for train_on, eval_on in OTHER_YEAR.items():
        ss = students.get(f"stage1/{train_on}")
        if ss:
            trained(ss, eval_on, {"bm25": sets[eval_on][1], "start": start_runs[eval_on]}, ss[0].dev, dev_runs(ss))
    s1, s2 = students.get(f"stage1/{cfg.stage2_from}"), students.get("stage2")
    if s1:
        base = {"bm25": sets["scifact"][1], "start": start_runs["scifact"]}
        dev, on_dev, extra = None, None, None
        if s2 and s2[0].dev is not None:  # its interpolation weight chosen on SciFact dev, as stage 2's (per seed)
            dev, extra = s2[0].dev, TrainingQueries.of("scifact/train-dev", s2[0].dev.data.queries)
            on_dev = [ranker_of(s).rerank(dev.candidates, dev.data.corpus, dev.data.queries, depth=cfg.scifact_depth)
                      for s in s1]
        stage1_runs = trained(s1, "scifact", base, dev, on_dev, extra)
        if s2:
            trained(s2, "scifact", {**base, "stage1": stage1_runs}, s2[0].dev, dev_runs(s2))
    abl = students.get("ablation")
    if abl:
        eval_on = OTHER_YEAR[cfg.stage2_from]
        abl_start = start(cfg.ablation_student, [eval_on])[eval_on]
        trained(abl, eval_on, {"bm25": sets[eval_on][1], "start": abl_start}, abl[0].dev, dev_runs(abl))
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


def learning_curves_figure(cfg: InRankerConfig, students: Mapping[str, Sequence[Student] | None],
                           results_dir) -> Path:
    """Training loss and dev nDCG@10 against steps (step 0: the start), the selected checkpoint circled; one line
    per student and training seed."""
    shown = {label: s.selected for label, s in labelled(students).items() if s.selected.curve}
    return learning_curves(shown, Path(results_dir) / "figures" / f"inranker_learning_curves_{cfg.profile}.png")


def agreement(ev: Evaluation, pairs: Mapping[str, tuple[str, str]]) -> pd.DataFrame:
    """Kendall tau (per query, averaged) between each model's scores and the teacher's on the same candidates (a
    row trained over several seeds: its first seed's model)."""
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


def training_table(students: Mapping[str, Sequence[Student] | None]) -> pd.DataFrame:
    """One row per trained student and training seed: its data, steps, the dev values at the start and at the
    selected checkpoint."""
    return pd.DataFrame([{"student": key, "method": s.method, "pairs": s.data.get("pairs"),
                          "queries": s.data.get("queries"),
                          "label margin mean±sd": f"{s.data.get('margin_mean')}±{s.data.get('margin_std')}",
                          **selection_row(s.selected, {"nDCG@10": "nDCG@10", "τ": "teacher_tau"})}
                         for key, s in labelled(students).items()]).round(4)
