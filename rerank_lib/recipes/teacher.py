"""02_teacher: measure the offline teacher on every test set and cache its scores for the training pipelines.

The teacher reranks the saved BM25 top-`depth` of SciFact test, TREC DL 2019 and 2020 (records, with paired
tests against BM25), and labels the SciFact train candidates that the training pipelines distil from. Its quality
on the training side is shown on the SciFact dev slice only (queries that later select checkpoints), never on
a test set.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..data import dev_slice, load_dataset, without_overlap
from ..data.trec import top_k
from ..evaluation import evaluate, measures_for, per_query
from ..results import load_per_query, plot_per_query_delta
from ..teacher import fuse, load_teacher, spec, teacher_scores
from ..experiment import EvalSet, Evaluated, Row, Timer, load_run, record_run, save_run
from ..settings import snapshot
from .recipe import Recipe, RecipeSettings, is_main

PIPELINE = "teacher"
TEST_SETS = (("scifact", "test"), ("trec-dl-2019", "test"), ("trec-dl-2020", "test"))


@dataclass(frozen=True)
class TeacherConfig(RecipeSettings):
    teachers: tuple[str, ...] = ("minilm-l6", "bm25+minilm-l6")
    depth: int = 100
    label_train: bool = True  # score the SciFact train candidates (the distillation labels of later notebooks)
    dev_fraction: float = 0.1


def training(cfg: TeacherConfig, results_dir, evaluate: bool) -> dict:
    """The notebook's teacher runs: its scores of the test sets, then the SciFact train labels (no model trains)."""
    from .first_stage import ensure_first_stage

    if not is_main():
        return {}
    ensure_first_stage(cfg, results_dir)
    score_test_sets(cfg, results_dir)
    label_training_candidates(cfg, results_dir)
    return {}


def check(cfg: TeacherConfig, overrides) -> TeacherConfig:
    for name in overrides.get("teachers") or ():
        spec(name)  # an unknown teacher is an error now, not after the first test set
    return cfg


RECIPE = Recipe(PIPELINE, "02_teacher", TeacherConfig, steps=("score_test_sets", "label_training_candidates"),
                training=training, check=check)
config = RECIPE.config


def ensure_teacher(cfg, results_dir, test_sets: bool = False) -> None:
    """02_teacher's runs, built with its steps when missing: the SciFact train labels, and with `test_sets` its
    scores of the test sets' BM25 top-depth."""
    from ..experiment import run_path

    tc = config(cfg.profile, data_root=cfg.data_root)
    sets = (TEST_SETS if test_sets else ()) + (("scifact", "train"),)
    if all(run_path(results_dir, cfg.profile, n, s, f"teacher-{t}").exists() for n, s in sets for t in tc.teachers):
        return
    print("building 02_teacher's runs (missing from the results folder)", flush=True)
    if test_sets:
        score_test_sets(tc, results_dir)
    label_training_candidates(tc, results_dir)


def _dataset(cfg: TeacherConfig, name: str, split: str, results_dir):
    """The dataset restricted to the queries 01_first_stage ran (smoke runs fewer), with its saved BM25 run."""
    run = top_k(load_run(results_dir, cfg.profile, name, split, "bm25"), cfg.depth)
    return load_dataset(name, split, root=cfg.data_root).subset(sorted(run)), run


def score_test_sets(cfg: TeacherConfig, results_dir) -> Evaluated:
    """Each teacher on each test set's BM25 top-depth; records with paired tests against BM25 (same depth). The
    scores are computed from the texts (no cached scores or embeddings), so the record's latency is the teacher's; a
    fusion teacher whose bi-encoder was scored just before fuses those scores (the same floats it would compute) and
    its seconds are theirs plus the fusion's."""
    records = []
    for name, split in TEST_SETS:
        ds, bm25 = _dataset(cfg, name, split, results_dir)
        dense: dict[str, tuple[dict, float]] = {}  # bi-encoder model -> its scores here and their seconds
        for teacher in cfg.teachers:
            kind, model = spec(teacher).kind, spec(teacher).model
            load_teacher(teacher)  # loaded before the clock: the latency is the scoring
            with Timer() as t:
                scores = (fuse(bm25, dense[model][0]) if kind == "fusion" and model in dense else
                          teacher_scores(teacher, bm25, ds.corpus, ds.queries, depth=cfg.depth, cache=False))
            seconds = t.s + (dense[model][1] if kind == "fusion" and model in dense else 0.0)
            if kind == "bi-encoder":
                dense[model] = (scores, t.s)
            save_run(scores, results_dir, cfg.profile, name, split, f"teacher-{teacher}")
            records.append(record_run(
                scores, EvalSet.of(ds, bm25, first_stage="bm25", depth=cfg.depth),
                Row(PIPELINE, teacher, cfg.profile, spec(teacher).note, snapshot(cfg), cfg.seed, rerank_s=seconds),
                results_dir, baselines={"bm25": bm25}))
    return Evaluated(records)


def label_training_candidates(cfg: TeacherConfig, results_dir) -> pd.DataFrame:
    """Teacher scores for the SciFact train BM25 candidates (cached), and each teacher's quality on the dev slice."""
    test = load_dataset("scifact", "test", root=cfg.data_root)
    ds, bm25 = _dataset(cfg, "scifact", "train", results_dir)
    ds = ds.subset(without_overlap(ds.queries, test.queries))
    _, dev_ids = dev_slice(ds.queries, fraction=cfg.dev_fraction, seed=cfg.seed, min_size=min(20, len(ds.queries) // 2))
    dev = ds.subset(dev_ids)
    measures = measures_for("scifact")
    rows = [{"teacher": "bm25 (first stage)", **evaluate({q: bm25[q] for q in dev.queries}, dev.qrels, measures)}]
    for teacher in cfg.teachers:
        with Timer() as t:
            scores = teacher_scores(teacher, bm25, ds.corpus, ds.queries, depth=cfg.depth)
        save_run(scores, results_dir, cfg.profile, "scifact", "train", f"teacher-{teacher}")
        rows.append({"teacher": teacher, **evaluate({q: scores[q] for q in dev.queries}, dev.qrels, measures),
                     "labelled_queries": len(scores), "labelled_pairs": sum(map(len, scores.values())),
                     "wall_s": round(t.s, 1)})
    return pd.DataFrame(rows).set_index("teacher").round(4).assign(dev_queries=len(dev.queries))


def per_query_figure(cfg: TeacherConfig, records, results_dir, teacher: str | None = None):
    """Per-query nDCG@10 change of a teacher over BM25 on each test set: where the gain comes from."""
    teacher = teacher or cfg.teachers[0]
    deltas = {}
    for name, split in TEST_SETS:
        ds, bm25 = _dataset(cfg, name, split, results_dir)
        base = per_query(bm25, ds.qrels, ["nDCG@10"], wide=True)["nDCG@10"]
        rec = next(r for r in records if r.method == teacher and r.dataset == name)
        mine = load_per_query(rec, results_dir)
        mine = mine[mine["measure"] == "nDCG@10"].set_index("qid")["value"] if "measure" in mine else mine["nDCG@10"]
        deltas[f"{name}/{split}"] = {q: float(mine.get(q, 0.0) - base[q]) for q in base.index}
    path = results_dir / "figures" / f"teacher_{teacher}_per_query_{cfg.profile}.png"
    return plot_per_query_delta(deltas, "nDCG@10", path, title=f"teacher {teacher} vs BM25, per query")
