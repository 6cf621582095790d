"""40_ / 41_: LocalRQA's retriever trainers (CTL, DCA, RPG) on LocalRQA's own faire example, and CTL on SciFact.

faire (notebook 40): LocalRQA's train / eval / test questions (train minus the questions that repeat an eval or test
question word for word); eval selects checkpoints (LocalRQA's metric_for_best_model recall@4) and interpolation
weights; test is evaluated once, with LocalRQA's document recall@1/@4 and nDCG@10, against BM25 and the zero-shot
start. SciFact (notebook 41): CTL from the qrels of scifact_training_split (BM25 hard negatives), dev slice for
checkpoint selection, dense retrieval over the whole corpus on test.

SciFact has no gold answers, which DCA and RPG need (the reader is scored on the answer): they run on faire only.
A proxy answer (e.g. the gold abstract's first sentence) would make the "answer" a copy of the gold passage, so
the LM would reward lexical overlap with the gold abstract rather than usefulness for answering: a different
method, and the same supervision as CTL's qrels, so it is not run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ...data import Dataset, TrainingQueries, assert_no_leak, load_dataset
from ...data.localrqa import LocalRQAData, QAExample, document_recall, load_localrqa
from ...data.trec import qid_order, top_k
from ...data.types import Document, Run
from ...evaluation import interpolate, paired_test, per_query, reciprocal_rank_fusion
from ...first_stage import BM25Index, dense_search, rerank_with_encoder
from ...paths import cache_dir
from ...results import make_record, plot_curve, write_record
from ...retrievers.bi_encoder import BiEncoder
from ...retrievers.ctl import CTLCollator, CTLConfig, ctl_compute_loss
from ...retrievers.dca import DCACollator, DCAConfig, FiDReader, build_candidates, dca_compute_loss, reader_targets
from ...retrievers.rpg import RPGConfig, RPGObjective, rpg_collate
from ...retrievers.training import (
    LMReader,
    RetrievalEvaluator,
    RetrievalExample,
    examples_from_localrqa,
    examples_from_qrels,
    load_weights,
)
from ...training import TrainConfig, train
from ..common import (
    Timer,
    choose_interpolation_weight,
    load_run,
    record_interpolation,
    record_run,
    resolve_profile,
    save_run,
    scifact_training_split,
)

PIPELINE = "retriever"
FAIRE = "localrqa-faire"
METHODS = ("ctl", "dca", "rpg")
FAIRE_MEASURES = ("recall@1", "recall@4", "nDCG@10")


# ================================================================================================ configs


@dataclass(frozen=True)
class FaireConfig:
    """Notebook 40: CTL, DCA and RPG on LocalRQA's faire example."""

    profile: str = "default"
    seed: int = 13
    data_root: str | None = None
    collection: str = "faire"
    documents: str | None = None  # a chunked documents JSONL as the corpus (default: every chunk the splits name)
    methods: tuple[str, ...] = METHODS
    # the bi-encoder (start point of every trainer)
    model: str = "minilm-l6"
    pooling: str = "mean"
    normalize: bool = True
    max_length: int = 128
    query_prefix: str = ""
    doc_prefix: str = ""
    # data limits (smoke)
    max_train: int | None = None
    max_eval: int | None = None
    max_test: int | None = None
    restrict_corpus: bool = False  # only the chunks the used questions name (smoke)
    depth: int = 100  # documents kept per query in the saved runs
    # shared training settings (LocalRQA: cosine schedule, 10% warmup, weight decay 0.01)
    warmup_ratio: float = 0.1
    lr_scheduler: str = "cosine"
    weight_decay: float = 0.01
    metric_for_best: str = "recall@4"
    mixed_precision: str = "auto"
    # CTL (LocalRQA defaults: rho 0.05, tau 0.05, lr 1e-5, batch 256)
    ctl_lr: float = 1e-5
    ctl_batch_size: int = 256
    ctl_epochs: int = 1
    ctl_max_steps: int | None = 100
    ctl_eval_every: int | None = 10
    ctl_hard_neg_ratio: float = 0.05
    ctl_temperature: float = 0.05
    # the reader DCA and RPG distil from
    reader: str = "smollm2-135m-instruct"
    reader_fid: bool = False  # True: a T5 reader used Fusion-in-Decoder style (google/flan-t5-*)
    rpg_reader: str | None = None  # None: the same reader as DCA
    reader_passage_tokens: int = 96
    reader_answer_tokens: int = 32
    # DCA (LocalRQA docs: n_context 50, reader temperature 0.1, lr 1e-5, batch 10)
    dca_questions: int | None = None  # training questions given to the reader (None: all)
    dca_n_context: int = 50
    dca_reader_temperature: float = 0.1
    dca_boost_gold: bool = True
    dca_score_scale: float | None = None  # None: 1/sqrt(d); 1/tau for a normalising encoder
    dca_lr: float = 1e-5
    dca_batch_size: int = 10
    dca_epochs: int = 1
    dca_max_steps: int | None = None
    dca_eval_every: int | None = 10
    # RPG (LocalRQA docs: 20 docs, refresh every 10 steps, temperatures 0.1, batch 4)
    rpg_questions: int | None = None
    rpg_num_docs: int = 20
    rpg_refresh_every: int = 10
    rpg_lm_temperature: float = 0.1
    rpg_retrieve_temperature: float = 0.1
    rpg_lr: float = 1e-5
    rpg_batch_size: int = 4
    rpg_epochs: int = 1
    rpg_max_steps: int | None = None
    rpg_eval_every: int | None = 10
    resume: bool = True  # a rerun with the same settings resumes (or skips) finished training


FAIRE_PROFILES: dict[str, dict[str, Any]] = {
    # the test path: a few questions, the chunks they name, two steps per trainer
    "smoke": dict(max_train=16, max_eval=8, max_test=8, restrict_corpus=True, max_length=64, ctl_batch_size=8,
                  ctl_max_steps=2, ctl_eval_every=1, reader_passage_tokens=24, reader_answer_tokens=8,
                  dca_questions=4, dca_n_context=2, dca_batch_size=2, dca_max_steps=2, dca_eval_every=2,
                  dca_score_scale=20.0, rpg_questions=4, rpg_num_docs=2, rpg_batch_size=2, rpg_max_steps=2,
                  rpg_refresh_every=1, rpg_eval_every=2, ctl_lr=5e-5, dca_lr=5e-5, rpg_lr=5e-5, depth=20),
    # the embedded CPU reproduction (see the notebook for how each recipe was chosen on the eval split)
    "default": dict(max_length=128,
                    ctl_lr=5e-5, ctl_batch_size=32, ctl_epochs=1, ctl_max_steps=None, ctl_eval_every=9,
                    dca_questions=48, dca_n_context=4, dca_score_scale=20.0, dca_lr=5e-5, dca_batch_size=4,
                    dca_epochs=2, dca_eval_every=12,
                    rpg_questions=32, rpg_num_docs=4, rpg_refresh_every=8, rpg_lr=5e-5, rpg_batch_size=4,
                    rpg_epochs=2, rpg_eval_every=8),
    # LocalRQA's published configuration (GPU, hub models): Contriever (its ModelArguments default, mean pooling,
    # no normalisation), flan-t5-xl FiD reader for DCA, stablelm-zephyr-3b for RPG
    "paper": dict(model="facebook/contriever-msmarco", normalize=False, max_length=512, reader="google/flan-t5-xl",
                  reader_fid=True, rpg_reader="stabilityai/stablelm-zephyr-3b", reader_passage_tokens=512,
                  reader_answer_tokens=128, ctl_eval_every=2),
}


@dataclass(frozen=True)
class SciFactConfig:
    """Notebook 41: CTL on SciFact train (qrels + BM25 hard negatives), evaluated by dense retrieval on test."""

    profile: str = "default"
    seed: int = 13
    data_root: str | None = None
    model: str = "minilm-l6"
    pooling: str = "mean"
    normalize: bool = True
    max_length: int = 128
    query_prefix: str = ""
    doc_prefix: str = ""
    n_hard: int = 2  # BM25 hard negatives per query (LocalRQA's data has two per question)
    dev_fraction: float = 0.1
    dev_depth: int = 10  # the dev signal during training: reranking each dev query's BM25 top-dev_depth
    depth: int = 1000  # test: documents kept per query (as 01_first_stage)
    max_test: int | None = None  # smoke
    smoke_pool: int | None = None  # smoke: the test corpus is the BM25 top-N of each test query + judged docs
    warmup_ratio: float = 0.1
    lr_scheduler: str = "cosine"
    weight_decay: float = 0.01
    mixed_precision: str = "auto"
    metric_for_best: str = "nDCG@10"
    lr: float = 1e-5
    batch_size: int = 256
    epochs: int = 1
    max_steps: int | None = 100
    eval_every: int | None = 10
    hard_neg_ratio: float = 0.05
    temperature: float = 0.05
    resume: bool = True


SCIFACT_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": dict(max_length=64, batch_size=8, max_steps=2, eval_every=1, max_test=10, smoke_pool=30, depth=100,
                  dev_depth=5, lr=5e-5),
    "default": dict(max_length=128, lr=5e-5, batch_size=32, epochs=1, max_steps=None, eval_every=12),
    "paper": dict(model="facebook/contriever-msmarco", normalize=False, max_length=512),
}


def config(profile: str = "default", **overrides) -> FaireConfig:
    if overrides.get("methods") is not None:
        overrides["methods"] = tuple(overrides["methods"])
        unknown = sorted(set(overrides["methods"]) - set(METHODS))
        if unknown:
            raise ValueError(f"unknown methods {unknown}; known: {METHODS}")
    return resolve_profile(FaireConfig(), FAIRE_PROFILES, profile, overrides)


def scifact_config(profile: str = "default", **overrides) -> SciFactConfig:
    return resolve_profile(SciFactConfig(), SCIFACT_PROFILES, profile, overrides)


def encoder(cfg) -> BiEncoder:
    return BiEncoder(cfg.model, pooling=cfg.pooling, normalize=cfg.normalize, max_length=cfg.max_length,
                     query_prefix=cfg.query_prefix, doc_prefix=cfg.doc_prefix)


_OTHER_TRAINERS = {"ctl": ("dca_", "rpg_", "reader"), "dca": ("ctl_", "rpg_"), "rpg": ("ctl_", "dca_")}


def _checkpoint_dir(cfg, name: str, method: str, n_examples: int) -> Path:
    """One folder per (settings, data): a rerun with the same settings resumes or reuses, never mixes runs.
    The key leaves out the other trainers' settings, so tuning one trainer does not retrain the others."""
    skip = _OTHER_TRAINERS.get(method, ())
    settings = {k: v for k, v in asdict(cfg).items()
                if k not in ("resume", "methods", "profile") and not k.startswith(skip)}
    key = json.dumps({"cfg": settings, "method": method, "n": n_examples}, sort_keys=True, default=str)
    return cache_dir("retriever_training", cfg.profile, name, f"{method}-{hashlib.sha1(key.encode()).hexdigest()[:10]}")


# ================================================================================================ faire data


@dataclass
class FaireData:
    raw: LocalRQAData
    train: list[QAExample]  # train minus questions that repeat an eval/test question
    eval: Dataset  # checkpoint and weight selection
    test: Dataset  # evaluated once
    provenance: TrainingQueries  # train + eval: closed to evaluation
    passages: dict[str, str]  # what the LM reader reads: page_content (LocalRQA's ctx text)
    dropped_overlap: list[str]

    @property
    def corpus(self) -> dict[str, Document]:
        return self.eval.corpus

    def summary(self) -> pd.DataFrame:
        rows = [{"split": "corpus (chunks)", "questions": None, "documents": len(self.corpus)},
                {"split": "train (used)", "questions": len(self.train), "documents": None},
                {"split": "eval (dev)", "questions": len(self.eval.queries), "documents": None},
                {"split": "test", "questions": len(self.test.queries), "documents": None}]
        frame = pd.DataFrame(rows).set_index("split")
        frame.attrs["skipped"] = self.raw.skipped
        frame.attrs["dropped_overlap"] = self.dropped_overlap
        return frame


def load_faire(cfg: FaireConfig) -> FaireData:
    """faire's splits (train de-duplicated against eval and test), the corpus and the reader's passages."""
    raw = load_localrqa(cfg.collection, root=cfg.data_root, documents=cfg.documents)
    clean = raw.without_overlap("train", "eval", "test")
    dropped = [ex.qid for ex in raw.examples("train") if ex not in clean]
    train = clean[: cfg.max_train] if cfg.max_train else clean
    evals = raw.examples("eval")[: cfg.max_eval] if cfg.max_eval else raw.examples("eval")
    tests = raw.examples("test")[: cfg.max_test] if cfg.max_test else raw.examples("test")
    chunks = raw.chunks
    if cfg.restrict_corpus:
        keep = {d for ex in (*train, *evals, *tests) for d in (*ex.gold_doc_ids, *ex.hard_neg_doc_ids)}
        chunks = {d: c for d, c in chunks.items() if d in keep}
    corpus = {d: c.to_document() for d, c in chunks.items()}

    def dataset(split, examples):
        return Dataset(FAIRE, split, corpus, {ex.qid: ex.question for ex in examples},
                       {ex.qid: {d: 1 for d in ex.gold_doc_ids} for ex in examples})

    provenance = (TrainingQueries.of(f"{FAIRE}/train", {ex.qid: ex.question for ex in train})
                  | TrainingQueries.of(f"{FAIRE}/eval", {ex.qid: ex.question for ex in evals}))
    data = FaireData(raw, train, dataset("eval", evals), dataset("test", tests), provenance,
                     {d: c.page_content for d, c in chunks.items()}, dropped)
    assert_no_leak([provenance], f"{FAIRE}/test", data.test.queries)
    return data


# ================================================================================================ baselines


@dataclass
class Baselines:
    """Runs of the untrained systems on eval and test, and the start model's evaluation (step 0 of every curve)."""

    runs: dict[str, dict[str, Run]]  # method -> split -> run
    start_eval: dict[str, float]


def faire_baselines(cfg: FaireConfig, data: FaireData, enc: BiEncoder, results_dir) -> Baselines:
    """BM25 (bm25s over fmt_content), the zero-shot encoder (the start point of every trainer) and the offline
    teachers (MiniLM reranking BM25's top-depth, and its RRF fusion with BM25) on eval and test."""
    index = BM25Index.build(data.corpus)
    runs: dict[str, dict[str, Run]] = {"bm25": {}, "zero-shot": {}}
    for split, ds in (("eval", data.eval), ("test", data.test)):
        runs["bm25"][split] = index.search(ds.queries, k=cfg.depth)
        runs["zero-shot"][split] = RetrievalEvaluator(enc, ds.corpus, ds.queries, ds.qrels, depth=cfg.depth).run()
    start_eval = RetrievalEvaluator(enc, data.eval.corpus, data.eval.queries, data.eval.qrels, depth=cfg.depth).metrics(
        runs["zero-shot"]["eval"])
    # The offline teachers of rerank_lib.teacher (MiniLM reranking the first stage, and its RRF fusion with it),
    # computed with the start's own embeddings (max_length cfg.max_length, already cached) rather than a second
    # encoding of the corpus at 256 tokens: the same definitions at the training length.
    runs["teacher-minilm-l6"], runs["teacher-bm25+minilm-l6"] = {}, {}
    for split, ds in (("eval", data.eval), ("test", data.test)):
        first = top_k(runs["bm25"][split], cfg.depth)
        dense = rerank_with_encoder(enc, first, ds.corpus, ds.queries, depth=cfg.depth)
        runs["teacher-minilm-l6"][split] = dense
        runs["teacher-bm25+minilm-l6"][split] = reciprocal_rank_fusion({"first_stage": first, "dense": dense}, k=60)
    for method, by_split in runs.items():
        save_run(by_split["test"], results_dir, cfg.profile, FAIRE, "test", method)
    return Baselines(runs, start_eval)


# ================================================================================================ training


@dataclass
class Outcome:
    """A trained retriever: its training result, its curve (step 0 = the start model), its runs."""

    method: str
    result: Any  # TrainResult
    curve: pd.DataFrame
    runs: dict[str, Run]  # eval / test runs of the best checkpoint
    wall_s: float
    params: dict
    details: dict = dataclasses.field(default_factory=dict)


def _train_config(cfg, output_dir: Path, lr: float, batch_size: int, epochs: int, max_steps, eval_every) -> TrainConfig:
    return TrainConfig(
        output_dir=str(output_dir), seed=cfg.seed, learning_rate=lr, num_epochs=epochs, max_steps=max_steps,
        per_device_batch_size=batch_size, warmup_ratio=cfg.warmup_ratio, lr_scheduler=cfg.lr_scheduler,
        weight_decay=cfg.weight_decay, mixed_precision=cfg.mixed_precision, save_every_steps=eval_every,
        keep_last_checkpoints=1, log_every_steps=1, eval_every_steps=eval_every, metric_for_best=cfg.metric_for_best,
        greater_is_better=True, save_best=True, resume=cfg.resume)


def _curve(start_eval: Mapping[str, float], result) -> pd.DataFrame:
    rows = [{"step": 0, **start_eval}] + [{k: v for k, v in r.items() if k not in ("kind", "epoch")}
                                          for r in result.eval_history]
    return pd.DataFrame(rows).drop_duplicates("step", keep="last").set_index("step")


_READERS: dict[tuple, Any] = {}


def reader_for(cfg: FaireConfig, method: str):
    """The frozen reader (loaded once per process and shared by DCA and RPG when they name the same model)."""
    name = cfg.rpg_reader if method == "rpg" and cfg.rpg_reader else cfg.reader
    fid = cfg.reader_fid and method == "dca"
    key = (name, fid, cfg.reader_passage_tokens, cfg.reader_answer_tokens)
    if key not in _READERS:
        if fid:
            _READERS[key] = FiDReader(name, text_maxlength=cfg.reader_passage_tokens)
        else:
            shared = next((r for k, r in _READERS.items() if k[0] == name and not k[1]), None)
            _READERS[key] = LMReader(name, max_passage_tokens=cfg.reader_passage_tokens,
                                     max_answer_tokens=cfg.reader_answer_tokens,
                                     model=shared.model if shared else None,
                                     tokenizer=shared.tokenizer if shared else None)
    return _READERS[key]


def _subset(examples: list[RetrievalExample], n: int | None, seed: int) -> list[RetrievalExample]:
    """The first n examples of a seeded shuffle (the reader-distilled trainers use a budgeted subset)."""
    if not n or n >= len(examples):
        return examples
    import random

    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    return [examples[i] for i in sorted(order[:n])]


def train_faire(cfg: FaireConfig, data: FaireData, method: str, base: Baselines, results_dir) -> Outcome:
    """Train one LocalRQA trainer from the zero-shot encoder; keep the best eval checkpoint; run eval and test."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    enc = encoder(cfg)
    documents = {d: doc.text_for_model for d, doc in data.corpus.items()}
    examples = examples_from_localrqa(data.train)
    evaluator = RetrievalEvaluator(enc, data.eval.corpus, data.eval.queries, data.eval.qrels, depth=cfg.depth)
    details: dict[str, Any] = {}
    with Timer() as t:
        if method == "ctl":
            ctl = CTLConfig(cfg.ctl_hard_neg_ratio, cfg.ctl_temperature)
            params = {"trainer": "ctl", **asdict(ctl)}
            dataset, collate, loss = examples, CTLCollator(enc, documents, ctl, cfg.seed), ctl_compute_loss(enc, ctl)
            tcfg = (cfg.ctl_lr, cfg.ctl_batch_size, cfg.ctl_epochs, cfg.ctl_max_steps, cfg.ctl_eval_every)
        elif method == "dca":
            dca = DCAConfig(cfg.dca_n_context, cfg.dca_reader_temperature, cfg.dca_boost_gold, cfg.dca_score_scale)
            params = {"trainer": "dca", **asdict(dca), "reader": cfg.reader, "questions": cfg.dca_questions}
            chosen = _subset(examples, cfg.dca_questions, cfg.seed)
            first_stage = dense_search(enc, data.corpus, {ex.qid: ex.question for ex in chosen},
                                       k=cfg.dca_n_context + 8)
            candidates = {ex.qid: build_candidates(ex, first_stage, cfg.dca_n_context) for ex in chosen}
            titles = {d: c.title for d, c in data.raw.chunks.items()}  # FiD's "title: t context: p" inputs
            dataset = reader_targets(reader_for(cfg, "dca"), chosen, candidates, data.passages, dca, seed=cfg.seed,
                                     titles=titles)
            details["reader_agreement"] = reader_agreement(dataset)
            collate, loss = DCACollator(enc, documents), dca_compute_loss(enc, dca)
            tcfg = (cfg.dca_lr, cfg.dca_batch_size, cfg.dca_epochs, cfg.dca_max_steps, cfg.dca_eval_every)
        else:
            rpg = RPGConfig(cfg.rpg_num_docs, cfg.rpg_refresh_every, cfg.rpg_lm_temperature,
                            cfg.rpg_retrieve_temperature)
            params = {"trainer": "rpg", **asdict(rpg), "reader": cfg.rpg_reader or cfg.reader,
                      "questions": cfg.rpg_questions}
            dataset = _subset(examples, cfg.rpg_questions, cfg.seed)
            loss = RPGObjective(enc, reader_for(cfg, "rpg"), data.corpus, data.passages, rpg)
            collate = rpg_collate
            tcfg = (cfg.rpg_lr, cfg.rpg_batch_size, cfg.rpg_epochs, cfg.rpg_max_steps, cfg.rpg_eval_every)
            details["rpg_stats"] = loss.stats
        out_dir = _checkpoint_dir(cfg, FAIRE, method, len(dataset))
        batch = min(tcfg[1], len(dataset))
        result = train(enc.model, dataset, collate, loss, _train_config(cfg, out_dir, tcfg[0], batch, *tcfg[2:]),
                       eval_fn=evaluator)
        if result.best_dir is not None:
            load_weights(enc, result.best_dir)
            enc.tokenizer.save_pretrained(result.best_dir)
        runs = {split: RetrievalEvaluator(enc, ds.corpus, ds.queries, ds.qrels, depth=cfg.depth).run()
                for split, ds in (("eval", data.eval), ("test", data.test))}
    save_run(runs["test"], results_dir, cfg.profile, FAIRE, "test", f"{method}-{_short(cfg.model)}")
    params.update(lr=tcfg[0], batch_size=batch, epochs=tcfg[2], max_steps=tcfg[3], eval_every=tcfg[4],
                  examples=len(dataset), best_step=result.best_step)
    return Outcome(method, result, _curve(base.start_eval, result), runs, t.s, params, details)


def reader_agreement(examples) -> dict[str, float]:
    """How often the reader's own score (before LocalRQA's gold boost) ranks the gold passage first, against the
    chance rate: evidence of whether the reader's attention carries any relevance signal."""
    firsts = [float(max(range(len(ex.reader_raw)), key=lambda i: ex.reader_raw[i]) == 0) for ex in examples]
    k = len(examples[0].doc_ids) if examples else 1
    return {"gold_first_rate": sum(firsts) / max(1, len(firsts)), "chance": 1.0 / k, "questions": len(firsts)}


def _short(model: str) -> str:
    return {"minilm-l6": "minilm"}.get(model, model.strip("/").split("/")[-1])


def start_method(cfg) -> str:
    """The record name of the zero-shot start point."""
    return f"{_short(cfg.model)}-zero-shot"


# ================================================================================================ records


def faire_per_query(run: Run, qrels) -> pd.DataFrame:
    """Long per-query frame: LocalRQA's recall@1/@4 (all gold in the top k) and ir-measures' nDCG@10."""
    rows = []
    for k in (1, 4):
        rows += [(q, f"recall@{k}", v) for q, v in document_recall(run, qrels, k).items()]
    pq = per_query(run, qrels, ["nDCG@10"])
    rows += list(pq.itertuples(index=False, name=None))
    order = {m: i for i, m in enumerate(FAIRE_MEASURES)}
    rows.sort(key=lambda r: (qid_order(r[0]), order.get(r[1], 99)))
    return pd.DataFrame(rows, columns=["qid", "measure", "value"])


def _paired(pq_a: pd.DataFrame, pq_b: pd.DataFrame, measure: str) -> dict:
    """evaluation.paired_test's paired t-test for any measure of a long per-query frame (paired_test accepts only
    ir-measures names; LocalRQA's recall@k is not one): same fields, p = 1 when every difference is 0."""
    import math

    import numpy as np
    from scipy import stats

    if measure in ("nDCG@10",):
        return paired_test(pq_a, pq_b, measure).to_dict()
    a = pq_a[pq_a.measure == measure].set_index("qid")["value"]
    b = pq_b[pq_b.measure == measure].set_index("qid")["value"]
    shared = sorted(set(a.index) & set(b.index), key=qid_order)
    va, vb = a.loc[shared].to_numpy(float), b.loc[shared].to_numpy(float)
    diffs = vb - va
    if len(shared) < 2:
        p = math.nan
    elif np.all(np.abs(diffs) < 1e-12):
        p = 1.0
    else:
        p = float(stats.ttest_rel(vb, va).pvalue)
    return {"measure": measure, "mean_a": float(va.mean()), "mean_b": float(vb.mean()),
            "delta": float(vb.mean() - va.mean()), "p_value": p, "n_queries": len(shared), "method": "t"}


def record_faire(run: Run, ds: Dataset, *, method: str, cfg: FaireConfig, results_dir, baselines: Mapping[str, Run],
                 model: str, training: TrainingQueries | None = None, params=None, wall_s=None):
    """A record with LocalRQA's recall@k (not an ir-measures measure, so record_run cannot compute it) and nDCG@10,
    paired t-tests against each baseline on every measure, and the leak guard for trained models."""
    training_queries, n_training = "none (zero-shot)", None
    if training is not None:
        assert_no_leak([training], f"{ds.name}/{ds.split}", ds.queries)
        training_queries, n_training = training.describe(), len(training.query_ids)
    pq = faire_per_query(run, ds.qrels)
    metrics = {m: float(pq[pq.measure == m]["value"].mean()) for m in FAIRE_MEASURES}
    significance = {}
    for name, base in baselines.items():
        pq_base = faire_per_query(base, ds.qrels)
        significance[name] = {m: _paired(pq_base, pq, m) for m in FAIRE_MEASURES}
    record = make_record(PIPELINE, method, ds.name, ds.split, metrics, model=model, first_stage="corpus",
                         depth=cfg.depth, significance=significance, training_queries=training_queries,
                         n_training_queries=n_training, profile=cfg.profile, params=dict(params or {}), seed=cfg.seed,
                         wall_s=wall_s)
    write_record(record, results_dir, per_query=pq)
    return record


def faire_records(cfg: FaireConfig, data: FaireData, base: Baselines, outcomes: list[Outcome], results_dir) -> list:
    """Records on faire test: BM25, the zero-shot start, the teachers, each trainer and its +interp row (BM25
    interpolation, weight chosen on eval by recall@4)."""
    test = data.test
    bm25, start = base.runs["bm25"]["test"], base.runs["zero-shot"]["test"]
    short = _short(cfg.model)
    records = [
        record_faire(bm25, test, method="bm25", cfg=cfg, results_dir=results_dir, baselines={},
                     model="bm25s (stemmed) over fmt_content"),
        record_faire(start, test, method=start_method(cfg), cfg=cfg, results_dir=results_dir,
                     baselines={"bm25": bm25}, model=f"{cfg.model} (max_length {cfg.max_length})"),
    ]
    for teacher in ("minilm-l6", "bm25+minilm-l6"):
        records.append(record_faire(base.runs[f"teacher-{teacher}"]["test"], test, method=f"teacher-{teacher}",
                                    cfg=cfg, results_dir=results_dir, baselines={"bm25": bm25, "start": start},
                                    model=f"offline teacher {teacher} (max_length {cfg.max_length}) on the BM25 top-{cfg.depth}"))
    for out in outcomes:
        name = f"{out.method}-{short}"
        common = dict(cfg=cfg, results_dir=results_dir, baselines={"bm25": bm25, "start": start},
                      model=f"{cfg.model} trained with {out.method.upper()}", training=data.provenance)
        records.append(record_faire(out.runs["test"], test, method=name, params={**asdict(cfg), **out.params},
                                    wall_s=out.wall_s, **common))
        weight, _ = choose_interpolation_weight(out.runs["eval"], base.runs["bm25"]["eval"], data.eval.qrels,
                                                measure="nDCG@10")
        records.append(record_faire(interpolate(out.runs["test"], bm25, weight), test, method=f"{name}+interp",
                                    params={**out.params, "interpolation_weight": weight}, **common))
    return records


def faire_table(records) -> pd.DataFrame:
    rows = []
    for r in records:
        row = {"method": r.method, **{m: round(r.metrics[m], 3) for m in FAIRE_MEASURES}}
        for vs in ("start", "bm25"):
            sig = r.significance.get(vs, {}).get("recall@4")
            row[f"Δrecall@4 vs {vs} (p)"] = None if not sig else f"{sig['delta']:+.3f} ({sig['p_value']:.3f})"
        sig = r.significance.get("start", {}).get("nDCG@10")
        row["ΔnDCG@10 vs start (p)"] = None if not sig else f"{sig['delta']:+.3f} ({sig['p_value']:.3f})"
        row["trained on"] = r.training_queries
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def curves_figure(outcomes: list[Outcome], metric: str, path) -> Path:
    """The eval metric against the training step, one line per trainer (step 0 = the zero-shot start)."""
    frame = pd.concat({o.method: o.curve[metric] for o in outcomes}, axis=1).reset_index()
    return plot_curve(frame, "step", [o.method for o in outcomes], path,
                      title=f"faire eval {metric} during training (step 0 = zero-shot start)")


# ================================================================================================ SciFact


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
        pool = {d for q in test.queries for d in top_k({q: bm25_test[q]}, cfg.smoke_pool)[q]}
        pool |= {d for q in split.dev.queries for d in top_k({q: bm25_train.get(q, {})}, cfg.smoke_pool)[q]}
        pool |= {d for qrels in (test.qrels, split.dev.qrels) for q in qrels for d in qrels[q]}
        corpus = {d: test.corpus[d] for d in sorted(pool) if d in test.corpus}
        test = Dataset(test.name, test.split, corpus, test.queries, test.qrels)
    try:
        start = load_run(results_dir, cfg.profile, "scifact", "test", "minilm-l6-dense")
    except FileNotFoundError:
        start = None
    examples = examples_from_qrels(split.train.queries, split.train.qrels, negatives=bm25_train, n_hard=cfg.n_hard)
    assert_no_leak([split.provenance], "scifact/test", test.queries)
    return SciFactData(split, test, {q: bm25_test[q] for q in test.queries}, bm25_train, start, examples, documents)


def train_scifact(cfg: SciFactConfig, data: SciFactData, results_dir) -> Outcome:
    """CTL from the zero-shot encoder; dev signal = nDCG@10 of reranking each dev query's BM25 top-dev_depth;
    then the best checkpoint retrieves from the whole (test) corpus for test and dev queries."""
    enc = encoder(cfg)
    dev = data.split.dev
    corpus = data.test.corpus
    documents = data.documents
    dev_candidates = top_k({q: data.bm25_train.get(q, {}) for q in dev.queries}, cfg.dev_depth)
    evaluator = RetrievalEvaluator(enc, corpus, dev.queries, dev.qrels, ks=(), measures=("nDCG@10",),
                                   depth=cfg.dev_depth, candidates=dev_candidates)
    ctl = CTLConfig(cfg.hard_neg_ratio, cfg.temperature)
    with Timer() as t:
        start_eval = evaluator()
        out_dir = _checkpoint_dir(cfg, "scifact", "ctl", len(data.examples))
        batch = min(cfg.batch_size, len(data.examples))
        tc = _train_config(cfg, out_dir, cfg.lr, batch, cfg.epochs, cfg.max_steps, cfg.eval_every)
        result = train(enc.model, data.examples, CTLCollator(enc, documents, ctl, cfg.seed), ctl_compute_loss(enc, ctl),
                       tc, eval_fn=evaluator)
        if result.best_dir is not None:
            load_weights(enc, result.best_dir)
            enc.tokenizer.save_pretrained(result.best_dir)
        corpus_emb = enc.encode_corpus(corpus)
        runs = {"test": dense_search(enc, corpus, data.test.queries, k=cfg.depth, corpus_embeddings=corpus_emb),
                "dev": dense_search(enc, corpus, dev.queries, k=100, corpus_embeddings=corpus_emb)}
    save_run(runs["test"], results_dir, cfg.profile, "scifact", "test", f"ctl-{_short(cfg.model)}")
    params = {"trainer": "ctl", **asdict(ctl), "lr": cfg.lr, "batch_size": batch, "epochs": cfg.epochs,
              "max_steps": cfg.max_steps, "examples": len(data.examples), "best_step": result.best_step}
    return Outcome("ctl", result, _curve(start_eval, result), runs, t.s, params)


def scifact_records(cfg: SciFactConfig, data: SciFactData, out: Outcome, results_dir) -> list:
    """CTL on SciFact test with paired tests against BM25 and the zero-shot start, and its BM25 +interp row."""
    test, dev = data.test, data.split.dev
    baselines = {"bm25": data.bm25_test}
    if data.start_test is not None:
        baselines["start"] = {q: data.start_test[q] for q in test.queries if q in data.start_test}
    name = f"ctl-{_short(cfg.model)}"
    common = dict(pipeline=PIPELINE, dataset="scifact", split="test", profile=cfg.profile, results_dir=results_dir,
                  baselines=baselines, model=f"{cfg.model} trained with CTL (max_length {cfg.max_length})",
                  first_stage="corpus", depth=cfg.depth, seed=cfg.seed, training=data.split.provenance,
                  eval_queries=test.queries)
    records = [record_run(out.runs["test"], test.qrels, method=name, params={**asdict(cfg), **out.params},
                          wall_s=out.wall_s, **common)]
    bm25_dev = top_k({q: data.bm25_train.get(q, {}) for q in dev.queries}, 100)
    weight, curve = choose_interpolation_weight(out.runs["dev"], bm25_dev, dev.qrels)
    out.details["interpolation_curve"] = curve
    records.append(record_interpolation(out.runs["test"], data.bm25_test, weight, test.qrels, method=name,
                                        params=out.params, **common))
    return records


def scifact_table(records, results_dir, profile: str) -> pd.DataFrame:
    """Our CTL rows beside BM25, the zero-shot start and the teachers (records of 01 and 02)."""
    from ...results import load_records

    wanted = {("first_stage", "bm25"), ("first_stage", "minilm-l6-dense"), ("first_stage", "rrf-bm25-minilm"),
              ("teacher", "minilm-l6"), ("teacher", "bm25+minilm-l6")}
    others = [r for r in load_records(results_dir, profile) if r.dataset == "scifact" and r.split == "test"
              and (r.pipeline, r.method) in wanted]
    rows = []
    for r in [*others, *records]:
        row = {"pipeline": r.pipeline, "method": r.method, "nDCG@10": round(r.metrics.get("nDCG@10", float("nan")), 4),
               "R@100": round(r.metrics.get("R@100", float("nan")), 4)}
        for vs in ("bm25", "start"):
            sig = r.significance.get(vs, {}).get("nDCG@10")
            row[f"ΔnDCG@10 vs {vs} (p)"] = None if not sig else f"{sig['delta']:+.3f} ({sig['p_value']:.3f})"
        row["trained on"] = r.training_queries
        rows.append(row)
    return pd.DataFrame(rows).set_index(["pipeline", "method"])


__all__ = [
    "FaireConfig", "SciFactConfig", "config", "scifact_config", "encoder", "load_faire", "faire_baselines",
    "train_faire", "faire_records", "faire_table", "curves_figure", "load_scifact", "train_scifact",
    "scifact_records", "scifact_table", "reader_agreement", "faire_per_query", "record_faire", "start_method",
]
