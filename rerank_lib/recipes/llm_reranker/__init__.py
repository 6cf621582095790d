"""12_: LLM-decoder rerankers (RAG-Retrieval score head, bge-reranker-v2-gemma Yes logit) and LLM -> BERT
distillation, on SciFact.

Steps, one function each (the notebook calls them in order):
  build_data        SciFact train minus the dev slice: `train_queries` queries, each a group of its qrels positives
                    and BM25 negatives; the dev slice's BM25 top-`dev_depth`; a seeded subset of SciFact test with
                    its BM25 top-`depth` (the LLM is slow on CPU: see the notebook for the measured cost).
  llm_features      ONE forward pass of the decoder per pair (FlagEmbedding prompt), cached: it gives the zero-shot
                    Yes logit, the inputs of the score heads, and the LLM teacher's P(Yes) at the first step.
  zero_shot         the zero-shot Yes-logit reranker (the start of every SmolLM2 model).
  train_head        RAG-Retrieval's linear score head on the frozen decoder (starting at the Yes row), with a loss
                    of rerank_lib.rerankers.losses, through `fit` (the shared loop); dev curve, best on dev.
  train_decoder     (optional; the paper path) the whole decoder: LoRA Yes-logit (FlagEmbedding) or full
                    fine-tuning of a score head (RAG-Retrieval), same `fit`.
  distillation_sources / distill
                    each candidate teacher measured on the dev slice (LLM zero-shot P(Yes), the trained LLM head,
                    the offline teacher bm25+minilm-l6); the best one labels the training pairs in RAG-Retrieval's
                    distillation format {query, pos: every doc, pos_scores in [0, 1]}, written and read back, and a
                    MiniLM cross-encoder is trained on it (point_ce on soft labels, RAG-Retrieval's distilling_bert).
Every trained model gets a record vs BM25 and vs its own start, and a "+interp" row (weight chosen on dev).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ...data import load_dataset
from ...data.pairs import TrainGroup, read_rag_retrieval, write_pairs_jsonl
from ...data.trec import ranked, top_k
from ...data.types import Dataset, Run
from ...evaluation import evaluate, interpolate
from ...negatives import sample_negatives
from ...rerankers import CrossEncoder, RerankEvaluator, fit
from ...rerankers.llm_reranker import DecoderReranker, HeadOnlyRanker, LoraSettings
from ...results import save_figure
from ...teacher import teacher_scores
from ...training import TrainConfig
from ..common import (
    Timer, TrainingSplit, choose_interpolation_weight, jsonable, load_run, pipeline_cache, record_run, resolve_profile,
    sample_ids, scifact_training_split,
)

PIPELINE = "cross_encoder"
DECODER_VARIANTS = {
    # name -> (head, prompt, lora?, loss)
    "lora-yes": ("yes", "flagembedding", True, "group_ce"),  # FlagEmbedding bge-reranker-v2-gemma fine-tuning
    "full-score": ("score", "rag-retrieval", False, "point_ce"),  # RAG-Retrieval LLMDecoder, every weight
}
SOURCES = ("llm-zero-shot", "llm-head", "bm25+minilm-l6")


@dataclass(frozen=True)
class LLMRerankerConfig:
    profile: str = "default"
    seed: int = 13
    data_root: str | None = None
    llm: str = "smollm2-135m-instruct"  # the Yes-logit model (zero-shot, head-only, LoRA, teacher)
    score_llm: str | None = None  # the score-head model of 'full-score' (None: llm)
    max_length: int = 128
    feature_batch_size: int = 16
    # evaluation
    depth: int = 20  # SciFact test: rerank the BM25 top-`depth`
    test_queries: int | None = 100  # a seeded subset of SciFact test (None: all 300); ~0.2 s per SmolLM2 pair here
    dev_queries: int | None = 24  # of the dev slice (None: all)
    dev_depth: int = 10
    # training data (SciFact train minus the dev slice)
    train_queries: int | None = 64
    group_size: int = 8  # positives + BM25 negatives per query
    negative_range: tuple[int, int] = (0, 30)
    # score head on the frozen decoder
    head_losses: tuple[str, ...] = ("point_ce", "group_ce")
    head_init: str = "yes-no"  # the head's first weights: the Yes-minus-No rows (its start = that zero-shot row)
    head_lr: float = 2e-3
    head_epochs: int = 40
    head_batch: int = 8  # pairs (pointwise) or groups (group losses) per step
    head_eval_every: int = 10
    # whole-decoder training (the paper path; costly on CPU)
    decoder_variants: tuple[str, ...] = ()
    decoder_lr: float = 2e-4
    decoder_epochs: int = 1
    decoder_max_steps: int | None = None
    decoder_batch: int = 2
    decoder_eval_every: int | None = None
    lora_r: int = 32
    lora_alpha: float = 64
    lora_dropout: float = 0.1
    # LLM teacher and distillation
    teacher_prompt: str = "flagembedding"  # 'chat' = RAG-Retrieval's chat-template teacher (one more forward)
    teacher_normalize: str = "yes_no"  # 'vocab': softmax over the vocabulary at the first step (RAG-Retrieval)
    distill_sources: tuple[str, ...] = SOURCES
    distill_source: str = "auto"  # 'auto': the best source on the dev slice (nDCG@10)
    student: str = "minilm-l6"
    student_max_length: int = 128
    student_loss: str = "point_ce"
    student_lr: float = 2e-4
    student_steps: int = 100
    student_batch: int = 32
    student_eval_every: int = 20
    score_batch_size: int = 64
    interpolate: bool = True


PROFILES = {
    "smoke": {"max_length": 96, "depth": 4, "test_queries": 3, "dev_queries": 2, "dev_depth": 4, "train_queries": 3,
              "group_size": 4, "negative_range": (0, 10), "head_losses": ("group_ce",), "head_epochs": 4,
              "head_batch": 2, "head_eval_every": 4, "student_max_length": 64, "student_steps": 3, "student_batch": 8,
              "student_eval_every": 3, "feature_batch_size": 8,
              # the offline teacher would encode a corpus subset here (minutes); default and paper measure it
              "distill_sources": ("llm-zero-shot", "llm-head")},
    "default": {},
    # GPU users online. RAG-Retrieval config/training_llm.yaml: Qwen2.5-1.5B-Instruct, point_ce, lr 5e-5, 2 epochs,
    # batch 12 x accumulation 2, max_len 1024, query "query: {}", document "document: {}", seq "\n", special
    # token "</s>". FlagEmbedding examples/finetune/reranker/decoder_only/base.sh: bge-reranker-v2-gemma, LoRA r 32,
    # alpha 64 on q/k/v/o, lr 2e-4, 1 epoch, train_group_size 8, query/passage max 512, "A: "/"B: ". Distillation:
    # distilling_bert.yaml (point_ce, lr 5e-5, 2 epochs, batch 96, max_len 512).
    "paper": {"llm": "BAAI/bge-reranker-v2-gemma", "score_llm": "Qwen/Qwen2.5-1.5B-Instruct", "max_length": 1024,
              "depth": 100, "test_queries": None, "dev_queries": None, "dev_depth": 100, "train_queries": None,
              "group_size": 8, "negative_range": (0, 100), "decoder_variants": ("lora-yes", "full-score"),
              "decoder_lr": 2e-4, "decoder_epochs": 1, "decoder_batch": 2, "decoder_eval_every": 500,
              "teacher_prompt": "chat", "student": "BAAI/bge-reranker-base", "student_max_length": 512,
              "student_lr": 5e-5, "student_steps": 2000, "student_batch": 96, "student_eval_every": 500,
              "feature_batch_size": 64},
}


def config(profile: str = "default", **overrides) -> LLMRerankerConfig:
    for name in ("head_losses", "decoder_variants", "distill_sources", "negative_range"):
        if overrides.get(name) is not None:
            overrides[name] = tuple(overrides[name])
    cfg = resolve_profile(LLMRerankerConfig(), PROFILES, profile, overrides)
    bad = [v for v in cfg.decoder_variants if v not in DECODER_VARIANTS]
    if bad:
        raise ValueError(f"unknown decoder variant(s) {bad}; known: {list(DECODER_VARIANTS)}")
    bad = [s for s in cfg.distill_sources if s not in SOURCES]
    if bad:
        raise ValueError(f"unknown distillation source(s) {bad}; known: {list(SOURCES)}")
    if cfg.distill_source != "auto" and cfg.distill_source not in cfg.distill_sources:
        raise ValueError(f"distill_source must be 'auto' or one of {cfg.distill_sources}")
    from ...rerankers.losses import LOSSES

    bad = [loss for loss in cfg.head_losses if loss not in LOSSES]
    if bad:
        raise ValueError(f"unknown head loss(es) {bad}; known: {sorted(LOSSES)}")
    if cfg.head_init not in ("yes", "yes-no"):
        raise ValueError("head_init must be 'yes' or 'yes-no' (a zero-shot read-out, the head's recorded start)")
    if cfg.teacher_prompt not in ("flagembedding", "chat"):
        raise ValueError("teacher_prompt must be 'flagembedding' or 'chat'")
    return cfg


def _slug(name: str) -> str:
    return {"smollm2-135m-instruct": "smollm2"}.get(name, name.split("/")[-1].lower())


def _record_interp(reranked: Run, first_stage_run: Run, weight: float, qrels, *, method: str, params: dict, **kwargs):
    """common.record_interpolation, which cannot also name the first stage (its run parameter is called
    `first_stage`, the same name as record_run's label): the same interpolation and record, with the label."""
    return record_run(interpolate(reranked, first_stage_run, weight), qrels, method=f"{method}+interp",
                      params={**params, "interpolation_weight": weight}, **kwargs)


def cache_root(cfg: LLMRerankerConfig, results_dir) -> Path:
    return pipeline_cache(results_dir, cfg.profile, "llm_reranker")


# ---------------------------------------------------------------------------------------------------- data


@dataclass
class LLMData:
    split: TrainingSplit
    groups: list[TrainGroup]  # training groups (qrels positives first, then BM25 negatives)
    train_bm25: Run  # BM25 candidates of every train and dev query (the offline teacher scores them all at once)
    dev: Dataset
    dev_bm25: Run
    test: Dataset
    test_bm25: Run
    test_split: str  # record split name: 'test' or 'test-<n>q' when a subset

    def sizes(self) -> pd.DataFrame:
        rows = [("train", len(self.groups), sum(len(g.docs) for g in self.groups)),
                ("dev", len(self.dev_bm25), sum(map(len, self.dev_bm25.values()))),
                (self.test_split, len(self.test_bm25), sum(map(len, self.test_bm25.values())))]
        return pd.DataFrame(rows, columns=["set", "queries", "pairs"]).set_index("set")


def build_data(cfg: LLMRerankerConfig, results_dir) -> LLMData:
    train_bm25 = load_run(results_dir, cfg.profile, "scifact", "train", "bm25")
    split = scifact_training_split(cfg.data_root, seed=cfg.seed, restrict_to=sorted(train_bm25))
    train = split.train
    positives = {q: sorted(d for d, r in train.qrels[q].items() if r > 0) for q in train.queries}
    qids = sample_ids([q for q, p in positives.items() if p], cfg.train_queries, cfg.seed)
    n_neg = {q: max(1, cfg.group_size - len(positives[q])) for q in qids}
    negs = sample_negatives(train_bm25, {q: positives[q] for q in qids}, cfg.negative_range, max(n_neg.values()),
                            cfg.seed, fill_from=list(train.corpus))
    groups = []
    for q in qids:
        docs = positives[q] + negs[q][: n_neg[q]]
        groups.append(TrainGroup(train.queries[q], [train.corpus[d].text_for_model for d in docs],
                                 [1.0] * len(positives[q]) + [0.0] * n_neg[q], n_pos=len(positives[q]),
                                 query_id=q, doc_ids=docs))
    dev_ids = sample_ids(split.dev.queries, cfg.dev_queries, cfg.seed)
    dev = split.dev.subset(dev_ids)
    dev_bm25 = top_k({q: train_bm25[q] for q in dev_ids}, cfg.dev_depth)

    test_bm25_all = load_run(results_dir, cfg.profile, "scifact", "test", "bm25")
    test_all = load_dataset("scifact", "test", root=cfg.data_root)
    judged = [q for q in test_bm25_all if q in test_all.qrels]
    test_ids = sample_ids(judged, cfg.test_queries, cfg.seed)
    test = test_all.subset(test_ids)
    test_bm25 = top_k({q: test_bm25_all[q] for q in test_ids}, cfg.depth)
    test_split = "test" if len(test_ids) == len(judged) else f"test-{len(test_ids)}q"
    keep = set(split.train.queries) | set(split.dev.queries)
    return LLMData(split, groups, {q: r for q, r in train_bm25.items() if q in keep}, dev, dev_bm25, test, test_bm25,
                   test_split)


# ---------------------------------------------------------------------------------------------------- the LLM


def load_llm(cfg: LLMRerankerConfig, prompt: str = "flagembedding") -> DecoderReranker:
    """The decoder with its Yes/No head and the FlagEmbedding prompt (frozen; features are cached)."""
    return DecoderReranker(cfg.llm, head="yes", prompt=prompt, max_length=cfg.max_length)


def _pairs(run: Run, ds: Dataset) -> tuple[list[str], list[str]]:
    pairs = [(q, d) for q, docs in run.items() for d, _ in ranked(docs)]
    return [ds.queries[q] for q, _ in pairs], [ds.corpus[d].text_for_model for _, d in pairs]


def llm_features(cfg: LLMRerankerConfig, llm: DecoderReranker, data: LLMData) -> pd.DataFrame:
    """One forward pass per pair of every set (train groups, dev, test), cached; returns the cost per set."""
    rows = []
    sets = {"train": ([g.query for g in data.groups for _ in g.docs], [d for g in data.groups for d in g.docs]),
            "dev": _pairs(data.dev_bm25, data.dev), data.test_split: _pairs(data.test_bm25, data.test)}
    for name, (qs, ds) in sets.items():
        with Timer() as t:
            llm.hidden_features(qs, ds, batch_size=cfg.feature_batch_size, show_progress=True)
        tokens = sum(len(f["input_ids"]) for f in llm.encode_pairs(qs, ds))
        rows.append({"set": name, "pairs": len(qs), "tokens": tokens, "wall_s": round(t.s, 1),
                     "pairs/s": round(len(qs) / max(t.s, 1e-9), 2)})
    return pd.DataFrame(rows).set_index("set")


# ---------------------------------------------------------------------------------------------------- rows


@dataclass
class Row:
    """One evaluated model: its test run, dev run, training result (None for zero-shot) and record(s)."""

    method: str
    test_run: Run
    dev_run: Run
    result: object = None
    records: list = field(default_factory=list)
    start_dev: dict | None = None  # dev metrics of its starting point (step 0 of the learning curve)


def _common(cfg, data: LLMData, results_dir, trained: bool) -> dict:
    common = dict(pipeline=PIPELINE, dataset="scifact", split=data.test_split, profile=cfg.profile,
                  results_dir=results_dir, first_stage="bm25", depth=cfg.depth, seed=cfg.seed)
    if trained:
        used = data.split.used([g.query_id for g in data.groups], data.dev.queries)  # what trained and selected
        common.update(training=used, eval_queries=data.test.queries)
    return common


def record_bm25(cfg: LLMRerankerConfig, data: LLMData, results_dir):
    """BM25 on the same test queries (its own section of the results when the test set is a subset)."""
    return record_run(data.test_bm25, data.test.qrels, method="bm25", model="bm25s (stemmed, title + text)",
                      params={"depth": cfg.depth, "test_queries": cfg.test_queries},
                      **{**_common(cfg, data, results_dir, False), "pipeline": "first_stage"})


ZERO_SHOT = {
    "yes": "the logit of 'Yes' (FlagEmbedding's score)",
    "yes-no": "the Yes-minus-No logit margin (ranks as the two-way P(Yes) of RAG-Retrieval's teacher)",
}


def zero_shot(cfg: LLMRerankerConfig, llm: DecoderReranker, data: LLMData, results_dir, init: str = "yes") -> Row:
    """A zero-shot read-out of the FlagEmbedding prompt's last position, from the cached hidden states: 'yes' (the
    Yes logit) or 'yes-no' (the Yes-minus-No margin). Each is the untrained start of a score head of that init."""
    if init not in ZERO_SHOT:
        raise ValueError(f"init must be one of {list(ZERO_SHOT)}")
    start = HeadOnlyRanker(llm, init=init, feature_batch_size=cfg.feature_batch_size)
    with Timer() as t:
        test_run = start.rerank(data.test_bm25, data.test.corpus, data.test.queries, depth=cfg.depth)
        dev_run = start.rerank(data.dev_bm25, data.dev.corpus, data.dev.queries, depth=cfg.dev_depth)
    method = f"{_slug(cfg.llm)}-{init}-zero-shot"
    record = record_run(test_run, data.test.qrels, method=method,
                        model=f"{cfg.llm} zero-shot, FlagEmbedding prompt: {ZERO_SHOT[init]}",
                        baselines={"bm25": data.test_bm25}, params=jsonable({**asdict(cfg), "zero_shot": init}),
                        wall_s=t.s, **_common(cfg, data, results_dir, False))
    return Row(method, test_run, dev_run, records=[record],
               start_dev=evaluate(dev_run, data.dev.qrels, ["nDCG@10", "RR@10"]))


def _dev_evaluator(cfg, data: LLMData, batch_size: int) -> RerankEvaluator:
    return RerankEvaluator(data.dev_bm25, data.dev.corpus, data.dev.queries, data.dev.qrels, depth=cfg.dev_depth,
                           measures=["nDCG@10", "RR@10"], batch_size=batch_size)


def _output_dir(cfg, results_dir, name: str, payload) -> str:
    key = hashlib.sha256(json.dumps(jsonable({"p": payload}), sort_keys=True).encode()).hexdigest()[:12]
    return str(cache_root(cfg, results_dir) / "checkpoints" / f"{name}-{key}")


def _fingerprint(groups: list[TrainGroup]) -> str:
    return hashlib.sha256(json.dumps([[g.query, g.docs, g.labels] for g in groups]).encode()).hexdigest()[:16]


def _dev_run(dev: RerankEvaluator, ranker, result) -> Run:
    if len(dev.runs) == len(result.eval_history) and result.best_step is not None:
        return dev.run_at(result)
    dev(ranker)  # resumed from a finished run: score the restored best weights once
    return dev.runs[-1]


def _evaluate_trained(cfg, data: LLMData, results_dir, method: str, ranker, result, dev_run: Run, start: Row,
                      model: str, params: dict, wall_s: float, depth: int | None = None) -> tuple[list, Run]:
    with Timer() as t:
        test_run = ranker.rerank(data.test_bm25, data.test.corpus, data.test.queries, depth=depth or cfg.depth)
    common = _common(cfg, data, results_dir, True)
    params = jsonable({**asdict(cfg), **params, "best_step": result.best_step, "dev_best": result.best_metric,
                        "steps": result.global_step})
    baselines = {"bm25": data.test_bm25, "start": start.test_run}
    records = [record_run(test_run, data.test.qrels, method=method, model=model, baselines=baselines, params=params,
                          wall_s=wall_s + t.s, **common)]
    if cfg.interpolate:
        weight, curve = choose_interpolation_weight(dev_run, data.dev_bm25, data.dev.qrels)
        records.append(_record_interp(test_run, data.test_bm25, weight, data.test.qrels, method=method,
                                            model=model, baselines=baselines,
                                            params={**params, "dev_curve": curve.to_dict("list")},
                                            wall_s=wall_s + t.s, **common))
    return records, test_run


def train_head(cfg: LLMRerankerConfig, llm: DecoderReranker, data: LLMData, loss: str, start: Row,
               results_dir) -> Row:
    """RAG-Retrieval's score head on the frozen decoder's cached last-token state, trained with `loss` via fit.
    `start` is the zero-shot row of `cfg.head_init` (the head before training): its dev metrics are step 0."""
    probe = HeadOnlyRanker(llm, init=cfg.head_init, init_seed=cfg.seed, feature_batch_size=cfg.feature_batch_size)
    dev = _dev_evaluator(cfg, data, batch_size=256)
    start_dev = start.start_dev
    if start_dev is None:  # a start without dev metrics: score the untrained head once
        start_dev = evaluate(probe.rerank(dev.run, data.dev.corpus, data.dev.queries, depth=cfg.dev_depth),
                             data.dev.qrels, ["nDCG@10", "RR@10"])
    train_cfg = TrainConfig(
        output_dir=_output_dir(cfg, results_dir, f"head-{loss}", [asdict(cfg), loss, _fingerprint(data.groups)]),
        seed=cfg.seed, learning_rate=cfg.head_lr, num_epochs=cfg.head_epochs, per_device_batch_size=cfg.head_batch,
        warmup_ratio=0.0, weight_decay=0.0, mixed_precision="no", log_every_steps=1,
        eval_every_steps=cfg.head_eval_every, save_every_steps=200, keep_last_checkpoints=1,
        metric_for_best="nDCG@10")
    with Timer() as t:
        result = fit(probe, data.groups, loss=loss, config=train_cfg, group_size=cfg.group_size, eval_fn=dev)
    dev_run = _dev_run(dev, probe, result)
    method = f"{_slug(cfg.llm)}-head-{loss.replace('_', '-')}"
    records, test_run = _evaluate_trained(
        cfg, data, results_dir, method, probe, result, dev_run, start,
        model=f"{cfg.llm} frozen + linear score head from the {cfg.head_init} row(s) ({loss})",
        params={"loss": loss, "recipe": "head-only"}, wall_s=t.s)
    row = Row(method, test_run, dev_run, result, records, start_dev)
    row.ranker = probe
    return row


def train_decoder(cfg: LLMRerankerConfig, variant: str, data: LLMData, start: Row, results_dir) -> Row:
    """The whole decoder (the paper path): 'lora-yes' (FlagEmbedding LoRA on the Yes logit, group CE) or
    'full-score' (RAG-Retrieval: every weight, fresh score head, point_ce)."""
    head, prompt, lora, loss = DECODER_VARIANTS[variant]
    model_name = cfg.llm if head == "yes" else (cfg.score_llm or cfg.llm)
    settings = LoraSettings(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout) if lora else None
    ranker = DecoderReranker(model_name, head=head, prompt=prompt, max_length=cfg.max_length, lora=settings,
                             init_seed=cfg.seed)
    ranker.cache_features = False  # the backbone changes every step: dev scores run the model itself
    if head == "score":  # a fresh head: its own untrained start, not the zero-shot Yes logit
        start_run = ranker.rerank(data.test_bm25, data.test.corpus, data.test.queries, depth=cfg.depth)
        start = Row(f"{_slug(model_name)}-score-untrained", start_run, {})
    dev = _dev_evaluator(cfg, data, batch_size=cfg.feature_batch_size)
    train_cfg = TrainConfig(
        output_dir=_output_dir(cfg, results_dir, variant, [asdict(cfg), variant, _fingerprint(data.groups)]),
        seed=cfg.seed, learning_rate=cfg.decoder_lr, num_epochs=cfg.decoder_epochs, max_steps=cfg.decoder_max_steps,
        per_device_batch_size=cfg.decoder_batch, warmup_ratio=0.1, log_every_steps=1,
        eval_every_steps=cfg.decoder_eval_every, save_every_steps=50, keep_last_checkpoints=1,
        metric_for_best="nDCG@10", mixed_precision="no" if ranker.device.type == "cpu" else "auto")
    with Timer() as t:
        result = fit(ranker, data.groups, loss=loss, config=train_cfg, group_size=cfg.group_size, eval_fn=dev)
    dev_run = _dev_run(dev, ranker, result)
    method = f"{_slug(model_name)}-{variant}"
    records, test_run = _evaluate_trained(
        cfg, data, results_dir, method, ranker, result, dev_run, start,
        model=f"{model_name} ({variant}: {'LoRA r%d' % cfg.lora_r if lora else 'all weights'}, {loss})",
        params={"loss": loss, "recipe": variant}, wall_s=t.s)
    row = Row(method, test_run, dev_run, result, records)
    row.ranker = ranker
    return row


# ---------------------------------------------------------------------------------------------------- distillation


def _platt(scores: np.ndarray, labels: np.ndarray):
    """p = sigmoid(a s + b) fitted on the training pairs' qrels labels (for teachers whose scores are not
    probabilities, e.g. reciprocal-rank fusion)."""
    from sklearn.linear_model import LogisticRegression

    mu, sd = float(scores.mean()), float(scores.std() or 1.0)
    model = LogisticRegression(C=1e4, max_iter=1000).fit(((scores - mu) / sd)[:, None], labels.astype(int))
    a, b = float(model.coef_[0, 0] / sd), float(model.intercept_[0] - model.coef_[0, 0] * mu / sd)
    return lambda s: 1.0 / (1.0 + np.exp(-(a * np.asarray(s, dtype=float) + b)))


def _offline_teacher(data: LLMData) -> Run:
    """bm25+minilm-l6 over every train and dev query's BM25 top-100, plus the training groups' documents that BM25
    missed (below its last candidate). Scoring all of them at once makes the teacher reuse the cached encoding of
    the whole corpus (what 02_teacher computed) instead of encoding a subset."""
    extra = {g.query_id: g.doc_ids for g in data.groups}
    candidates = {}
    for q, run in data.train_bm25.items():
        docs = dict(ranked(run)[:100])
        floor = min(docs.values(), default=0.0)
        for i, d in enumerate([x for x in extra.get(q, []) if x not in docs], start=1):
            docs[d] = floor - i
        candidates[q] = docs
    queries = {**data.split.train.queries, **data.split.dev.queries}
    return teacher_scores("bm25+minilm-l6", candidates, data.split.train.corpus, queries,
                          depth=max(len(v) for v in candidates.values()))


@dataclass
class Sources:
    dev_table: pd.DataFrame
    train_scores: dict[str, list[list[float]]]  # source -> per group, per doc: a label in [0, 1]
    chosen: str


def distillation_sources(cfg: LLMRerankerConfig, llm: DecoderReranker, data: LLMData, head_row: Row | None,
                         teacher_llm: DecoderReranker | None = None) -> Sources:
    """Each candidate teacher on the dev slice (nDCG@10, RR@10 of its ranking of the dev BM25 top-dev_depth) and its
    labels for the training pairs, in [0, 1]: LLM P(Yes) at the first step (RAG-Retrieval's teacher), the trained
    head's and the offline teacher's scores Platt-scaled on the training pairs' qrels."""
    teacher_llm = teacher_llm or llm
    flat_q = [g.query for g in data.groups for _ in g.docs]
    flat_d = [d for g in data.groups for d in g.docs]
    dev_q, dev_d = _pairs(data.dev_bm25, data.dev)
    dev_keys = [(q, d) for q, docs in data.dev_bm25.items() for d, _ in ranked(docs)]

    def to_run(values) -> Run:
        out: Run = {q: {} for q in data.dev_bm25}
        for (q, d), v in zip(dev_keys, values):
            out[q][d] = float(v)
        return out

    def per_group(values) -> list[list[float]]:
        out, pos = [], 0
        for g in data.groups:
            out.append([float(v) for v in values[pos:pos + len(g.docs)]])
            pos += len(g.docs)
        return out

    rows, labels, dev_runs = [], {}, {}
    measures = ["nDCG@10", "RR@10"]
    rows.append({"source": "bm25 (first stage)", **evaluate(data.dev_bm25, data.dev.qrels, measures)})
    for source in cfg.distill_sources:
        if source == "llm-zero-shot":
            dev_vals = teacher_llm.yes_probability(dev_q, dev_d, normalize=cfg.teacher_normalize,
                                                   batch_size=cfg.feature_batch_size)
            train_vals = teacher_llm.yes_probability(flat_q, flat_d, normalize=cfg.teacher_normalize,
                                                     batch_size=cfg.feature_batch_size)
        elif source == "llm-head":
            if head_row is None:
                continue
            # RAG-Retrieval maps its head's logit with a sigmoid, calibrated because it trains with point_ce; a
            # head started at the Yes row (logits ~ +10) or trained with a shift-invariant loss is not, so its
            # logit is Platt-scaled on the training pairs' qrels (a monotone map: the ranking is unchanged).
            raw = head_row.ranker.score(flat_q, flat_d)
            calib = _platt(raw, np.array([lab > 0 for g in data.groups for lab in g.labels]))
            dev_vals, train_vals = calib(head_row.ranker.score(dev_q, dev_d)), calib(raw)
        else:
            tr = _offline_teacher(data)
            raw = np.array([tr[g.query_id][d] for g in data.groups for d in g.doc_ids])
            truth = np.array([lab > 0 for g in data.groups for lab in g.labels])
            calib = _platt(raw, truth)
            train_vals = calib(raw)
            dev_vals = calib(np.array([tr[q][d] for q, d in dev_keys]))
        dev_runs[source] = to_run(dev_vals)
        labels[source] = per_group(train_vals)
        truth = np.array([lab > 0 for g in data.groups for lab in g.labels])
        vals = np.asarray(train_vals, dtype=float)
        rows.append({"source": source, **evaluate(dev_runs[source], data.dev.qrels, measures),
                     "train mean p(pos)": float(vals[truth].mean()), "train mean p(neg)": float(vals[~truth].mean())})
    table = pd.DataFrame(rows).set_index("source").round(4)
    candidates = table.drop(index="bm25 (first stage)")
    chosen = cfg.distill_source if cfg.distill_source != "auto" else str(candidates["nDCG@10"].idxmax())
    return Sources(table, labels, chosen)


def distillation_file(cfg: LLMRerankerConfig, data: LLMData, sources: Sources, results_dir) -> Path:
    """The chosen teacher's labels in RAG-Retrieval's distillation format {query, pos: every doc, pos_scores}."""
    groups = [TrainGroup(g.query, g.docs, [min(1.0, max(0.0, s)) for s in scores], n_pos=len(g.docs),
                         query_id=g.query_id, doc_ids=g.doc_ids)
              for g, scores in zip(data.groups, sources.train_scores[sources.chosen])]
    path = cache_root(cfg, results_dir) / f"scifact_train.distill.{sources.chosen}.jsonl"
    return write_pairs_jsonl(path, groups, "rag-retrieval", distillation=True)


def distill(cfg: LLMRerankerConfig, data: LLMData, path: Path, source: str, results_dir) -> tuple[Row, Row]:
    """MiniLM trained on the distillation file (read back with RAG-Retrieval's reader): point_ce on the soft labels.
    Returns (the untrained start, the distilled student)."""
    groups = read_rag_retrieval(path)
    for g, orig in zip(groups, data.groups):
        g.query_id = orig.query_id
    student = CrossEncoder(cfg.student, max_length=cfg.student_max_length, init_seed=cfg.seed)
    with Timer() as t0:
        start_test = student.rerank(data.test_bm25, data.test.corpus, data.test.queries, depth=cfg.depth,
                                    batch_size=cfg.score_batch_size)
        start_dev_run = student.rerank(data.dev_bm25, data.dev.corpus, data.dev.queries, depth=cfg.dev_depth,
                                       batch_size=cfg.score_batch_size)
    start_method = f"ce-{_slug(cfg.student)}-start"
    start_rec = record_run(start_test, data.test.qrels, method=start_method,
                           model=f"{cfg.student} (untrained head)", baselines={"bm25": data.test_bm25},
                           params=jsonable(asdict(cfg)), wall_s=t0.s, **_common(cfg, data, results_dir, False))
    start = Row(start_method, start_test, start_dev_run, records=[start_rec],
                start_dev=evaluate(start_dev_run, data.dev.qrels, ["nDCG@10", "RR@10"]))
    dev = _dev_evaluator(cfg, data, batch_size=cfg.score_batch_size)
    train_cfg = TrainConfig(
        output_dir=_output_dir(cfg, results_dir, f"distill-{source}",
                               [{k: v for k, v in asdict(cfg).items() if k.startswith("student") or k in (
                                   "seed", "dev_queries", "dev_depth")}, source, _fingerprint(groups),
                                [g.labels for g in groups]]),
        seed=cfg.seed, learning_rate=cfg.student_lr, num_epochs=1000, max_steps=cfg.student_steps,
        per_device_batch_size=cfg.student_batch, warmup_ratio=0.1, log_every_steps=1,
        eval_every_steps=cfg.student_eval_every, save_every_steps=cfg.student_steps, keep_last_checkpoints=1,
        metric_for_best="nDCG@10")
    with Timer() as t:
        result = fit(student, groups, loss=cfg.student_loss, config=train_cfg, eval_fn=dev)
    dev_run = _dev_run(dev, student, result)
    method = f"ce-{_slug(cfg.student)}-distill-{source}"
    records, test_run = _evaluate_trained(
        cfg, data, results_dir, method, student, result, dev_run, start,
        model=f"{cfg.student} distilled from {source} ({cfg.student_loss}, soft labels)",
        params={"distill_source": source, "loss": cfg.student_loss}, wall_s=t.s)
    row = Row(method, test_run, dev_run, result, records, start.start_dev)
    row.ranker = student
    return start, row


# ---------------------------------------------------------------------------------------------------- report


def results_table(rows_or_records, data: LLMData, alpha: float = 0.05) -> pd.DataFrame:
    """nDCG@10 / RR@10 per record on the evaluated test queries, with paired tests vs BM25 and vs the start."""
    records = [r for x in rows_or_records for r in (x.records if isinstance(x, Row) else [x])]
    out = []
    for r in records:
        row = {"method": r.method, "nDCG@10": round(r.metrics["nDCG@10"], 4), "RR@10": round(r.metrics["RR@10"], 4)}
        for base in ("bm25", "start"):
            test = (r.significance or {}).get(base, {}).get("nDCG@10")
            if test:
                mark = ("▲" if test["delta"] > 0 else "▼") if test["p_value"] < alpha else ""
                row[f"Δ nDCG@10 vs {base}"] = f"{test['delta']:+.3f}{mark} (p={test['p_value']:.3f})"
        if "interpolation_weight" in (r.params or {}):
            row["interp w (dev)"] = r.params["interpolation_weight"]
        row["training"] = r.training_queries
        out.append(row)
    return pd.DataFrame(out).set_index("method")


def curves_figure(rows: list[Row], path) -> Path:
    """Dev nDCG@10 against training step for every trained model, step 0 = its starting point."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.8))
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for row in rows:
        if row.result is None:
            continue
        hist = row.result.history
        ax1.plot([h["step"] for h in hist], [h["loss"] for h in hist], label=row.method)
        ev = row.result.eval_history
        steps = ([0] if row.start_dev else []) + [e["step"] for e in ev]
        values = ([row.start_dev["nDCG@10"]] if row.start_dev else []) + [e["nDCG@10"] for e in ev]
        ax2.plot(steps, values, marker="o", label=row.method)
    ax1.set(xlabel="step", ylabel="training loss", title="training loss (each model its own loss)")
    ax2.set(xlabel="step", ylabel="dev nDCG@10", title="dev slice: learning curve (step 0 = start)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    return save_figure(fig, path)


def learning_curves(rows: list[Row]) -> pd.DataFrame:
    data = []
    for row in rows:
        if row.result is None:
            continue
        if row.start_dev:
            data.append({"model": row.method, "step": 0, "dev nDCG@10": round(row.start_dev["nDCG@10"], 4)})
        data += [{"model": row.method, "step": e["step"], "dev nDCG@10": round(e["nDCG@10"], 4)}
                 for e in row.result.eval_history]
    return pd.DataFrame(data).pivot_table(index="step", columns="model", values="dev nDCG@10")
