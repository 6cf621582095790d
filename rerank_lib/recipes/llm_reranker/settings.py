"""The LLM-reranker recipe's settings: the config dataclass, its profiles, and the names they imply."""
from __future__ import annotations

from dataclasses import dataclass, field

from ...settings import Settings, override, profile_values, resolve_profile
from ...training import TrainConfig

PIPELINE = "cross_encoder"
DECODER_VARIANTS = {
    # name -> (head, prompt, lora?, loss)
    "lora-yes": ("yes", "flagembedding", True, "group_ce"),  # FlagEmbedding bge-reranker-v2-gemma fine-tuning
    "full-score": ("score", "rag-retrieval", False, "point_ce"),  # RAG-Retrieval LLMDecoder, every weight
}
LLM_SOURCES = ("llm-zero-shot", "llm-head")  # the SmolLM2 / LLM rerankers: what distill_source='auto' picks from
SOURCES = (*LLM_SOURCES, "bm25+minilm-l6")  # the offline teacher: measured beside them, distilled only when named
STAGES = ("head_train", "decoder_train", "student_train")  # the trained models, each with its own TrainConfig


def _train(**values) -> TrainConfig:
    """A stage's TrainConfig; seed 13 is the recipe's seed (config() keeps each stage's seed equal to `seed`
    unless a `<stage>.seed` override names one)."""
    values = {"seed": 13, "log_every_steps": 1, "keep_last_checkpoints": 1, "metric_for_best": "nDCG@10", **values}
    return TrainConfig(**values)


@dataclass(frozen=True)
class LLMRerankerConfig(Settings):
    READ_ONLY_WHEN = {name: "a decoder variant runs (decoder_variants: lora-yes in default, both in paper)"
                      for name in ("score_llm", "decoder_train", "lora_r", "lora_alpha", "lora_dropout")}

    profile: str = "default"
    seed: int = 13
    data_root: str | None = None
    launch: str | None = None  # an accelerate config (configs/accelerate/NAME.yaml): train under accelerate launch
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
    head_train: TrainConfig = field(default_factory=lambda: _train(
        learning_rate=2e-3, num_epochs=40, per_device_batch_size=8, eval_every_steps=10, warmup_ratio=0.0,
        weight_decay=0.0, mixed_precision="no", save_every_steps=200))
    # whole-decoder training (the paper path; costly on CPU; mixed precision 'no' on a CPU)
    decoder_variants: tuple[str, ...] = ()
    decoder_train: TrainConfig = field(default_factory=lambda: _train(
        learning_rate=2e-4, num_epochs=1, per_device_batch_size=2, warmup_ratio=0.1, save_every_steps=50))
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
    student_train: TrainConfig = field(default_factory=lambda: _train(
        learning_rate=2e-4, num_epochs=1000, max_steps=100, per_device_batch_size=32, warmup_ratio=0.1,
        eval_every_steps=20, save_every_steps=100))
    score_batch_size: int = 64
    interpolate: bool = True


PROFILES = {
    "smoke": {"max_length": 96, "depth": 4, "test_queries": 3, "dev_queries": 2, "dev_depth": 4, "train_queries": 3,
              "group_size": 4, "negative_range": (0, 10), "head_losses": ("group_ce",), "head_train.num_epochs": 4,
              "head_train.per_device_batch_size": 2, "head_train.eval_every_steps": 4, "student_max_length": 64,
              "student_train.max_steps": 3, "student_train.save_every_steps": 3, "student_train.per_device_batch_size": 8,
              "student_train.eval_every_steps": 3, "feature_batch_size": 8,
              # the offline teacher would encode a corpus subset here (minutes); default and paper measure it
              "distill_sources": ("llm-zero-shot", "llm-head"),
              "decoder_variants": ("lora-yes",), "decoder_train.max_steps": 2, "decoder_train.per_device_batch_size": 1,
              "decoder_train.eval_every_steps": 2, "decoder_train.save_every_steps": 2},
    # lora-yes at a small scale: 32 steps of one group of 8 (half a pass over the 64 training queries), ~7.5 s a step
    # on 2 cores; with its dev checks and the 2000 test pairs the row costs ~9 min
    "default": {"test_queries": 100, "dev_queries": 24, "train_queries": 64, "decoder_variants": ("lora-yes",),
                "decoder_train.max_steps": 32, "decoder_train.per_device_batch_size": 1,
                "decoder_train.eval_every_steps": 16, "decoder_train.save_every_steps": 16},
    # The published recipes, setting by setting (sources in PAPER_SOURCES, what cannot be applied in PAPER_GAPS):
    # FlagEmbedding's decoder_only fine-tuning of bge-reranker-v2-gemma (LoRA), RAG-Retrieval's training_llm.yaml
    # (full-score) whose settings decoder_train holds, and its LLM -> BERT distillation (distilling_bert.yaml).
    "paper": {"llm": "BAAI/bge-reranker-v2-gemma", "score_llm": "Qwen/Qwen2.5-1.5B-Instruct", "max_length": 1024,
              "depth": 100, "test_queries": None, "dev_queries": None, "dev_depth": 100, "train_queries": None,
              "group_size": 8, "negative_range": (0, 100), "decoder_variants": ("lora-yes", "full-score"),
              "lora_r": 32, "lora_alpha": 64, "lora_dropout": 0.1,
              "decoder_train.learning_rate": 5e-5, "decoder_train.num_epochs": 2, "decoder_train.per_device_batch_size": 12,
              "decoder_train.gradient_accumulation_steps": 2, "decoder_train.lr_scheduler": "cosine",
              "decoder_train.warmup_ratio": 0.1, "decoder_train.weight_decay": 0.01, "decoder_train.mixed_precision": "bf16",
              "decoder_train.gradient_checkpointing": True, "decoder_train.eval_every_steps": 500,
              "teacher_prompt": "chat", "teacher_normalize": "vocab", "student": "BAAI/bge-reranker-v2-m3",
              "student_max_length": 512, "student_loss": "point_ce", "student_train.learning_rate": 5e-5,
              "student_train.num_epochs": 2, "student_train.max_steps": None, "student_train.per_device_batch_size": 96,
              "student_train.gradient_accumulation_steps": 2, "student_train.lr_scheduler": "cosine",
              "student_train.warmup_ratio": 0.1, "student_train.weight_decay": 0.01,
              "student_train.mixed_precision": "fp16", "student_train.save_every_steps": 2000,
              "student_train.eval_every_steps": 500, "feature_batch_size": 64},
    # paper-tiny: the paper profile with only sizes, steps and queries made small (models: rerank_lib.standin)
    "paper-tiny": {"max_length": 256, "depth": 4, "test_queries": 3, "dev_queries": 2, "dev_depth": 4, "train_queries": 3,
                   "group_size": 4, "negative_range": (0, 10), "head_train.max_steps": 2,
                   "head_train.per_device_batch_size": 2, "head_train.eval_every_steps": 1,
                   "decoder_train.max_steps": 2, "decoder_train.per_device_batch_size": 2,
                   "decoder_train.gradient_accumulation_steps": 1, "decoder_train.eval_every_steps": 1,
                   "student_max_length": 64, "student_train.max_steps": 2, "student_train.save_every_steps": 2,
                   "student_train.per_device_batch_size": 8, "student_train.gradient_accumulation_steps": 1,
                   "student_train.eval_every_steps": 1, "feature_batch_size": 8},
}

_FE = "FlagEmbedding (FlagOpen/FlagEmbedding @7ed43d6) examples/finetune/reranker/decoder_only/base.sh"
_RAG = "RAG-Retrieval (NLPJCL/RAG-Retrieval @4193c8c) rag_retrieval/train/reranker/config/"
_LLM = _RAG + "training_llm.yaml"
_BERT = _RAG + "distilling_bert.yaml"
_GEN = "RAG-Retrieval examples/distill_llm_to_bert_reranker/model_llm_generate.py"
#: Where each paper setting comes from (a test checks that every key of PROFILES["paper"] has one).
PAPER_SOURCES = {
    "llm": f"{_FE} line 20 (fine-tunes the released BAAI/bge-reranker-v2-gemma; FE research/llm_reranker README "
           "line 265 trained it from google/gemma-2b)",
    "score_llm": f"{_LLM} line 2 (./Qwen2.5-1.5B-Instruct/)",
    "max_length": f"{_FE} lines 35-36 (query 512 + passage 512 = pair 1024); {_LLM} line 12 (max_len 1024)",
    "depth": "FE research/llm_reranker/README.md lines 392-396: BEIR reranks the top-100 (of bge-large-en-v1.5; ours: "
             "of BM25)",
    "test_queries": "every SciFact test query (BEIR)",
    "dev_queries": "ours: the whole dev slice selects checkpoints (the published runs keep the final model)",
    "dev_depth": "ours: the dev slice is reranked at the test depth (100)",
    "train_queries": "every SciFact train query (the training data are ours by design)",
    "group_size": f"{_FE} line 10 (train_group_size 8)",
    "negative_range": "ours: BM25 negatives from the top-100 (FE's examples ship mined negatives; RAG-Retrieval binary "
                      f"{{query, pos, neg}}, {_LLM} lines 8-11)",
    "decoder_variants": f"lora-yes: {_FE}; full-score: {_LLM}",
    "lora_r": f"{_FE} line 22 (lora_rank 32; the argument default 64 is overridden)",
    "lora_alpha": f"{_FE} line 23 (lora_alpha 64)",
    "lora_dropout": "FE FlagEmbedding/finetune/reranker/decoder_only/base/arguments.py lines 20-30 (default 0.1)",
    "decoder_train.learning_rate": f"{_LLM} line 32 (5e-5, full-score). Sources disagree: lora-yes's {_FE} line 48 "
                                   "uses 2e-4; decoder_train is shared, RAG-Retrieval's is applied (see PAPER_GAPS)",
    "decoder_train.num_epochs": f"{_LLM} line 31 (2; lora-yes: 1, {_FE} line 7)",
    "decoder_train.per_device_batch_size": f"{_LLM} line 33 (12 pairs; lora-yes: 2 groups, {_FE} line 8)",
    "decoder_train.gradient_accumulation_steps": f"{_LLM} line 36 (2; lora-yes: 1, {_FE} line 9)",
    "decoder_train.lr_scheduler": "RAG-Retrieval rag_retrieval/train/reranker/train_reranker.py lines 185-189 (cosine "
                                  "with warmup; lora-yes: linear, FE ds_stage0.json WarmupDecayLR)",
    "decoder_train.warmup_ratio": f"{_LLM} line 35 (warmup_proportion 0.1); {_FE} line 53 (0.1)",
    "decoder_train.weight_decay": f"RAG-Retrieval train_reranker.py lines 16-34 (0.01); {_FE} line 56 (0.01)",
    "decoder_train.mixed_precision": f"{_LLM} line 37 (bf16); {_FE} lines 25, 49 (--bf16)",
    "decoder_train.gradient_checkpointing": f"{_FE} line 55 (on; memory only)",
    "decoder_train.eval_every_steps": "ours: dev selection every 500 steps (FE saves every 1000, .sh line 59)",
    "teacher_prompt": f"{_GEN} lines 21-25, 61-74: the chat template, one user turn (an English rendering of its Chinese "
                      "instruction, see PAPER_GAPS)",
    "teacher_normalize": f"{_GEN} lines 56-57: softmax over the whole vocabulary at the first generated position, "
                         "P('是')",
    "student": f"{_BERT} line 2 (./bge-reranker-m3-base = BAAI/bge-reranker-v2-m3)",
    "student_max_length": f"{_BERT} line 12 (max_len 512)",
    "student_loss": f"{_BERT} line 23 (loss_type point_ce)",
    "student_train.learning_rate": f"{_BERT} line 25 (5e-5)",
    "student_train.num_epochs": f"{_BERT} line 24 (2 epochs)",
    "student_train.max_steps": "none: the published distillation is epoch-based",
    "student_train.per_device_batch_size": f"{_BERT} line 26 (batch_size 96 pairs per GPU)",
    "student_train.gradient_accumulation_steps": "2 processes in RAG-Retrieval's config/xlmroberta_default_config.yaml "
                                                 "(FSDP NO_SHARD = DDP): accumulation 2 on one process, 192 pairs",
    "student_train.lr_scheduler": "RAG-Retrieval train_reranker.py lines 185-189 (cosine with warmup)",
    "student_train.warmup_ratio": f"{_BERT} line 28 (0.1)",
    "student_train.weight_decay": "RAG-Retrieval train_reranker.py lines 16-34 (0.01)",
    "student_train.mixed_precision": f"{_BERT} line 30 (fp16)",
    "student_train.save_every_steps": "ours (checkpoints for resume); RAG-Retrieval saves on epoch end",
    "student_train.eval_every_steps": "ours: dev selection every 500 steps",
    "feature_batch_size": "ours: scoring batch (speed only)",
}
#: Published settings the code cannot apply (yet): the setting, its published value, and why not.
PAPER_GAPS = [
    {"setting": "lora-yes training", "published": "lr 2e-4, 1 epoch, 2 groups x accumulation 1, linear "
     "(FE decoder_only/base.sh lines 7-9, 48)", "why": "decoder_train is shared by both decoder variants (per-variant "
     "decoder settings are missing): RAG-Retrieval's applies. FE's: overrides {'decoder_variants': ['lora-yes'], "
     "'decoder_train.learning_rate': 2e-4, 'decoder_train.num_epochs': 1, 'decoder_train.per_device_batch_size': 2, "
     "'decoder_train.gradient_accumulation_steps': 1, 'decoder_train.lr_scheduler': 'linear'}"},
    {"setting": "teacher max length", "published": "512 (model_llm_generate.py line 45)",
     "why": "the teacher shares max_length (1024) with the decoders"},
    {"setting": "teacher instruction", "published": "Chinese: judge whether the passage answers; answer 是 or 否",
     "why": "an English rendering for SciFact"},
    {"setting": "launch", "published": "FE: DeepSpeed ZeRO-0 on 2 GPUs; RAG-Retrieval LLM: ZeRO-1 on 2 processes "
     "(config/deepspeed/deepspeed_zero1.yaml); student: FSDP NO_SHARD on 2 processes",
     "why": "one process here, accumulation 2 for the second; on 2 GPUs: accelerate launch --config_file "
            "configs/accelerate/deepspeed_zero1.yaml (or deepspeed_zero0.yaml for FE) with accumulation 1"},
    {"setting": "checkpoint", "published": "the final model (FE save_steps 1000; RAG-Retrieval epoch end)",
     "why": "we select on the dev slice, the start included"},
    {"setting": "seed", "published": "RAG-Retrieval 666; FE 42", "why": "one seed (13) for data and training; cosmetic"},
]
#: Published nDCG@10 of a model used without training here (its zero-shot row), by model name. Not found: any
#: RAG-Retrieval number for its LLM reranker or distilled BERT, any SciFact number for Qwen2.5-1.5B as a reranker.
_FE_BEIR = ("FlagEmbedding research/llm_reranker BEIR table (evaluation/BEIR-bge-en-v1.5.png), SciFact, reranking "
            "the bge-large-en-v1.5 top-100 at length 1024 (ours: BM25 top-100)")
REFERENCES = {
    "BAAI/bge-reranker-v2-gemma": {"nDCG@10": {"value": 0.7722, "source": _FE_BEIR}},
    "BAAI/bge-reranker-v2-m3": {"nDCG@10": {"value": 0.7308, "source": _FE_BEIR}},
}


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


def config(profile: str = "default", **overrides) -> LLMRerankerConfig:
    """The profile's settings with `overrides` (dotted paths: `{"head_train.learning_rate": 1e-3}`); each stage's
    training seed follows `seed` unless its own `<stage>.seed` is given."""
    cfg = resolve_profile(LLMRerankerConfig(), PROFILES, profile, overrides)
    named = set(overrides) | set(profile_values(PROFILES, profile))
    cfg = override(cfg, {f"{stage}.seed": cfg.seed for stage in STAGES if f"{stage}.seed" not in named})
    _check(cfg)
    return cfg


def slug(name: str) -> str:
    """A model's short name in method names."""
    return {"smollm2-135m-instruct": "smollm2"}.get(name, name.split("/")[-1].lower())
