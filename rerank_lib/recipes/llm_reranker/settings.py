"""The LLM-reranker recipe's settings: the config dataclass, its profiles, and the names they imply."""
from __future__ import annotations

from dataclasses import dataclass, field

from ...training import TrainConfig
from ..recipe import Recipe, RecipeSettings

PIPELINE = "cross_encoder"
DECODER_VARIANTS = {
    # name -> (head, prompt, lora?, loss)
    "lora-yes": ("yes", "flagembedding", True, "group_ce"),  # FlagEmbedding bge-reranker-v2-gemma fine-tuning
    "full-score": ("score", "rag-retrieval", False, "point_ce"),  # RAG-Retrieval LLMDecoder, every weight
}
LLM_SOURCES = ("llm-zero-shot", "llm-head")  # the SmolLM2 / LLM rerankers: what distill_source='auto' picks from
SOURCES = (*LLM_SOURCES, "bm25+minilm-l6")  # the offline teacher: measured beside them, distilled only when named
STAGES = ("head_train", "decoder_train", "student_train")  # the trained models, each with its own TrainConfig


@dataclass(frozen=True)
class LLMRerankerConfig(RecipeSettings):
    READ_ONLY_WHEN = {name: "a decoder variant runs (decoder_variants: lora-yes in default, both in paper)"
                      for name in ("score_llm", "decoder_train", "lora_r", "lora_alpha", "lora_dropout")}

    launch: str | None = None  # an accelerate config (configs/accelerate/NAME.yaml): train under it
    llm: str = "smollm2-135m-instruct"  # the Yes-logit model (zero-shot, head-only, LoRA, teacher)
    score_llm: str | None = None  # the score-head model of 'full-score' (None: llm)
    max_length: int = 128
    feature_batch_size: int = 16
    # evaluation
    depth: int = 20  # SciFact test: rerank the BM25 top-`depth`
    # (None, all, is the base: a profile cannot set None; the default profile sets 100 / 24 / 64)
    test_queries: int | None = None  # a seeded subset of SciFact test (None: all 300); ~0.2 s per SmolLM2 pair here
    dev_queries: int | None = None  # of the dev slice (None: all)
    dev_depth: int = 10
    # training data (SciFact train minus the dev slice)
    train_queries: int | None = None
    group_size: int = 8  # positives + BM25 negatives per query
    negative_range: tuple[int, int] = (0, 30)
    # score head on the frozen decoder; its batch counts pairs (pointwise) or groups (group losses)
    head_losses: tuple[str, ...] = ("point_ce", "group_ce")
    head_init: str = "yes-no"  # the head's first weights: the Yes-minus-No rows (its start = that zero-shot row)
    head_train: TrainConfig = field(default_factory=TrainConfig)
    # whole-decoder training (the paper path; costly on CPU; mixed precision 'no' on a CPU)
    decoder_variants: tuple[str, ...] = ()
    decoder_train: TrainConfig = field(default_factory=TrainConfig)
    lora_r: int = 32
    lora_alpha: float = 64
    lora_dropout: float = 0.1
    # LLM teacher and distillation
    teacher_prompt: str = "flagembedding"  # 'chat' = RAG-Retrieval's chat-template teacher (one more forward)
    teacher_normalize: str = "yes_no"  # 'vocab': softmax over the vocabulary at the first step (RAG-Retrieval)
    distill_sources: tuple[str, ...] = SOURCES
    distill_source: str = "auto"  # 'auto': the best LLM source (LLM_SOURCES) on the dev slice (nDCG@10)
    student: str = "minilm-l6"
    student_max_length: int = 128
    student_loss: str = "point_ce"
    student_train: TrainConfig = field(default_factory=TrainConfig)
    score_batch_size: int = 64
    interpolate: bool = True


def _check(cfg: LLMRerankerConfig) -> None:
    from ...losses import LOSSES

    for name, values, known in (("decoder variant", cfg.decoder_variants, DECODER_VARIANTS),
                                ("distillation source", cfg.distill_sources, SOURCES),
                                ("head loss", cfg.head_losses, LOSSES)):
        bad = [v for v in values if v not in known]
        if bad:
            raise ValueError(f"unknown {name}(s) {bad}; known: {sorted(known)}")
    if cfg.distill_source != "auto" and cfg.distill_source not in cfg.distill_sources:
        raise ValueError(f"distill_source must be 'auto' or one of {cfg.distill_sources}")
    if cfg.distill_source == "auto" and not set(cfg.distill_sources) & set(LLM_SOURCES):
        raise ValueError(f"distill_source 'auto' picks among the LLM sources {LLM_SOURCES}: distill_sources "
                         f"{cfg.distill_sources} has none (name the source instead)")
    if cfg.head_init not in ("yes", "yes-no"):
        raise ValueError("head_init must be 'yes' or 'yes-no' (a zero-shot read-out, the head's recorded start)")
    if cfg.teacher_prompt not in ("flagembedding", "chat"):
        raise ValueError("teacher_prompt must be 'flagembedding' or 'chat'")


def check(cfg: LLMRerankerConfig, overrides) -> LLMRerankerConfig:
    _check(cfg)
    return cfg


RECIPE = Recipe("llm_reranker", "12_llm_reranker", LLMRerankerConfig, stages=STAGES, flags={"model_name_or_path": "llm"},
                steps=("build_data", "load_llm", "llm_features", "zero_shot", "train_head", "train_decoder",
                       "distillation_sources", "distillation_file", "distill"),
                check=check)
config = RECIPE.config


def slug(name: str) -> str:
    """A model's short name in method names."""
    return {"smollm2-135m-instruct": "smollm2"}.get(name, name.split("/")[-1].lower())
