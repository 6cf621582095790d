"""The retriever-training settings: faire's and SciFact's configs and profiles, the encoder, checkpoint folders."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ...paths import cache_dir
from ...retrievers.bi_encoder import BiEncoder
from ...settings import resolve_profile

PIPELINE = "retriever"
FAIRE = "localrqa-faire"
METHODS = ("ctl", "dca", "rpg")
FAIRE_MEASURES = ("recall@1", "recall@4", "nDCG@10")


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
