"""Notebook 41: CTL on SciFact train (qrels + BM25 hard negatives), evaluated by dense retrieval on test."""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from ...data import Dataset, assert_no_leak, load_dataset
from ...data.trec import pooled_corpus, top_k
from ...data.types import Run
from ...first_stage import dense_search
from ...experiment import (
    DevEvaluator, EvalSet, Evaluated, Row, RunName, Timer, first_seed, jsonable, load_run, publish_selected,
    record_reranker, results_table, save_run, scifact_training_split, train_encoder_in_run_dir,
)
from ...retrievers.ctl import CTLCollator, CTLConfig, ctl_compute_loss
from ...retrievers.training import RetrievalExample, examples_from_qrels
from ...export import ModelCard
from ...settings import snapshot
from ..recipe import Recipe, Trained, is_main, main_first
from .settings import PIPELINE, SciFactConfig, encoder, short_name
from .records import PER_SEED
from .training import Outcome


def training(cfg: SciFactConfig, results_dir, evaluate: bool) -> dict:
    """Notebook 41 from the shell (01_'s BM25 runs built first when missing)."""
    from ..first_stage import ensure_first_stage

    with main_first():
        ensure_first_stage(cfg, results_dir)
        data = load_scifact(cfg, results_dir)
    ctl = train_scifact(cfg, data, results_dir)
    if evaluate and is_main():
        print(scifact_table(scifact_records(cfg, data, ctl, results_dir).records, results_dir, cfg.profile).to_string())
    return {out.label: Trained.bi_encoder(out.selected, out.encoder) for out in ctl}


#: No LocalRQA recipe exists for SciFact: its generic CTL command is the paper profile
#: (recipes/paper_profiles/retriever_scifact.yaml).
RECIPE = Recipe("retriever_scifact", "41_retriever_scifact", SciFactConfig, stages=("train",),
                flags={"model_name_or_path": "model"},
                steps=("load_scifact", "train_scifact", "scifact_records", "scifact_table"), training=training,
                multi_seed=True)
scifact_config = RECIPE.config


@dataclass
class SciFactData:
    split: Any  # TrainingSplit
    test: Dataset
    bm25_test: Run
    bm25_train: Run
    start_test: Run | None  # 01_first_stage's zero-shot dense run (max_length 256)
    examples: list[RetrievalExample]
    documents: dict[str, str]  # every abstract's text as the encoder reads it (training keys)


def load_scifact(cfg: SciFactConfig, results_dir) -> SciFactData:
    """scifact_training_split (the queries 01_first_stage ran on), BM25 runs of 01, training examples with
    BM25 hard negatives; the smoke profile restricts the test corpus to a pool as 01's smoke run did."""
    bm25_train = load_run(results_dir, cfg.profile, "scifact", "train", "bm25")
    bm25_test = load_run(results_dir, cfg.profile, "scifact", "test", "bm25")
    split = scifact_training_split(cfg.data_root, seed=cfg.seed, dev_fraction=cfg.dev_fraction,
                                   restrict_to=sorted(bm25_train))
    test = load_dataset("scifact", "test", root=cfg.data_root)
    documents = {d: doc.text_for_model for d, doc in test.corpus.items()}
    test = test.subset(sorted(q for q in test.queries if q in bm25_test)[: cfg.max_test] if cfg.max_test
                       else sorted(q for q in test.queries if q in bm25_test))
    if cfg.smoke_pool:
        runs = [{q: bm25_test[q] for q in test.queries}, {q: bm25_train.get(q, {}) for q in split.dev.queries}]
        corpus = pooled_corpus(test.corpus, runs, cfg.smoke_pool, [test.qrels, split.dev.qrels])
        test = Dataset(test.name, test.split, corpus, test.queries, test.qrels)
    try:
        start = load_run(results_dir, cfg.profile, "scifact", "test", "minilm-l6-dense")
    except FileNotFoundError:
        start = None
    examples = examples_from_qrels(split.train.queries, split.train.qrels, negatives=bm25_train, n_hard=cfg.n_hard)
    assert_no_leak([split.provenance], "scifact/test", test.queries)
    return SciFactData(split, test, {q: bm25_test[q] for q in test.queries}, bm25_train, start, examples, documents)


@RECIPE.training_step
def train_scifact(cfg: SciFactConfig, data: SciFactData, results_dir) -> list[Outcome]:
    """CTL from the zero-shot encoder, once per training seed (`seeds`; else `train.seed`); dev signal = nDCG@10 of
    reranking each dev query's BM25 top-dev_depth (the start is step 0, a candidate); then each selected checkpoint
    retrieves from the whole (test) corpus for test and dev queries."""
    configs = RECIPE.seeded(cfg)
    return [dataclasses.replace(train_ctl(seeded, data, results_dir),
                                seed=seeded.train.seed if len(configs) > 1 else None) for seeded in configs]


def train_ctl(cfg: SciFactConfig, data: SciFactData, results_dir) -> Outcome:
    """One CTL run of train_scifact (its run folder keyed by `train.seed`); the first seed's test run is saved."""
    enc, dev, corpus = encoder(cfg), data.split.dev, data.test.corpus
    candidates = top_k({q: data.bm25_train.get(q, {}) for q in dev.queries}, cfg.dev_depth)
    evaluator = DevEvaluator.retrieval(enc, corpus, dev.queries, dev.qrels, cfg.dev_depth, candidates=candidates, ks=())
    ctl = CTLConfig(cfg.hard_neg_ratio, cfg.temperature)
    settings = {k: v for k, v in snapshot(cfg).items() if k not in ("profile", "train", "launch", "seeds")}
    with Timer() as t:
        sel = train_encoder_in_run_dir(enc, data.examples, CTLCollator(enc, data.documents, ctl, cfg.seed),
                                       ctl_compute_loss(enc, ctl), cfg.train, evaluator,
                                       RunName("retriever_training", cfg.profile, "scifact-ctl", settings))
        corpus_emb = enc.encode_corpus(corpus)
        runs = {"test": dense_search(enc, corpus, data.test.queries, k=cfg.depth, corpus_embeddings=corpus_emb),
                "dev": dense_search(enc, corpus, dev.queries, k=100, corpus_embeddings=corpus_emb)}
    if not cfg.seeds or cfg.train.seed == cfg.seeds[0]:  # one saved run per row: the first seed's
        save_run(runs["test"], results_dir, cfg.profile, "scifact", "test", f"ctl-{short_name(cfg.model)}")
    params = {"trainer": "ctl", **asdict(ctl), "examples": len(data.examples), "selected_step": sel.step,
              "selected_is_start": sel.is_start, "train": snapshot(cfg.train)}  # its seed: this run's
    return Outcome("ctl", sel, runs, t.s, params, encoder=enc)


def scifact_records(cfg: SciFactConfig, data: SciFactData, outs: list[Outcome], results_dir) -> Evaluated:
    """CTL on SciFact test (train_scifact's runs: the mean over seeds when several) with paired tests against BM25
    and the zero-shot start, and its BM25 +interp row (the weight chosen on the dev slice, per seed)."""
    test, dev, out = data.test, data.split.dev, outs[0]
    several = len(outs) > 1
    params = {**out.params, **({k: [o.params[k] for o in outs] for k in PER_SEED} if several else {})}
    baselines = {"bm25": data.bm25_test}
    if data.start_test is not None:
        baselines["start"] = {q: data.start_test[q] for q in test.queries if q in data.start_test}
    records = record_reranker(
        [o.runs["test"] for o in outs], EvalSet.of(test, data.bm25_test, first_stage="corpus", depth=cfg.depth),
        Row(PIPELINE, f"ctl-{short_name(cfg.model)}", cfg.profile,
            f"{cfg.model} trained with CTL (max_length {cfg.max_length})", jsonable({**snapshot(cfg), **params}),
            cfg.seed, wall_s=sum(o.wall_s for o in outs), seeds=cfg.seeds if several else (),
            train_s=sum(o.selected.train_s for o in outs)),
        results_dir, baselines=baselines, training=data.split.provenance,
        dev=EvalSet.of(dev, top_k({q: data.bm25_train.get(q, {}) for q in dev.queries}, 100)),
        dev_run=[o.runs["dev"] for o in outs])
    own = first_seed(records[0], params=jsonable({**snapshot(cfg), **out.params}))  # the first seed's model
    publish_selected("bi_encoder", out.encoder, own, out.selected, results_dir, ModelCard(cfg.model),
                     name=f"{records[0].method}-scifact")
    return Evaluated(records)


def scifact_table(records, results_dir, profile: str) -> pd.DataFrame:
    """Our CTL rows beside BM25, the zero-shot start and the teachers (records of 01 and 02)."""
    from ...results import load_records

    wanted = {("first_stage", "bm25"), ("first_stage", "minilm-l6-dense"), ("first_stage", "rrf-bm25-minilm"),
              ("teacher", "minilm-l6"), ("teacher", "bm25+minilm-l6")}
    others = [r for r in load_records(results_dir, profile) if r.dataset == "scifact" and r.split == "test"
              and (r.pipeline, r.method) in wanted]
    return results_table([*others, *records], measures=("nDCG@10", "R@100"), bases=("bm25", "start"))
