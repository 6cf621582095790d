"""The LLM-reranker recipe's settings: the config dataclass, its profiles, and the names and folders they imply."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...experiment import pipeline_cache
from ...settings import resolve_profile

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
    from ...losses import LOSSES

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


def cache_root(cfg: LLMRerankerConfig, results_dir) -> Path:
    return pipeline_cache(results_dir, cfg.profile, "llm_reranker")
