"""The RankLLM recipe's settings: pipeline constants, the published reference numbers, the config and its
profiles (smoke, default, paper), and the config as a table. Named settings, not config, because `config()` is the
function the package re-exports."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from ...data import folds_dl
from ...models import resolve
from ...settings import resolve_profile


PIPELINE = "rankllm"
MEASURE = "nDCG@10"
SELECT_ON = ("dl",)  # dev slices evaluated during training (learning curve, checkpoint selection)
TINY = "tiny-random-llama"  # smoke profile: a 2-layer random Llama with the Mistral tokenizer (seconds, not minutes)

# A Zephyr-style chat template for tokenizers that ship without one (the smoke model; the bare Mistral tokenizers).
ZEPHYR_STYLE_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + eos_token }}"
    "{% elif message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + eos_token }}"
    "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\n' + message['content'] + eos_token }}{% endif %}"
    "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}{% endfor %}"
)

_SRC = "rank_llm 2CR, msmarco-v1-passage, BM25 top-100, window 20 / stride 10"
REFERENCES = {  # published nDCG@10 of the full-size models on BM25 top-100
    ("trec-dl-2019", "generation"): (0.7365, f"RankZephyr-7B ({_SRC})"),
    ("trec-dl-2020", "generation"): (0.7080, f"RankZephyr-7B ({_SRC})"),
    ("trec-dl-2019", "combined"): (0.7294, f"FirstMistral-7B ({_SRC}); monoT5-3B 0.7173 in the same table"),
    ("trec-dl-2020", "combined"): (0.7043, f"FirstMistral-7B ({_SRC}); monoT5-3B 0.6887 in the same table"),
}


@dataclass(frozen=True)
class RankLLMConfig:
    profile: str = "default"
    seed: int = 13
    data_root: str | None = None
    tag: str = "smollm2"  # short model name in method names
    model: str = "smollm2-135m-instruct"  # the start (zero-shot rows) and the base of both objectives
    generation_model: str | None = None  # base model of the generation objective (None: `model`)
    combined_model: str | None = None  # base model of the combined objective (None: `model`)
    chat_template: str | None = None  # for tokenizers without one
    # inference
    depth: int = 20  # BM25 top-depth is reranked (the MiniLM teacher gains +0.03 nDCG@10 on DL reordering the top-10,
    window: int = 20  # +0.09 reordering the top-20: a top-10 student could show almost nothing)
    stride: int = 10
    max_words: int = 20
    context_size: int = 4096
    identifiers: str = "auto"  # auto: numbers when single tokens in the tokenizer, else letters
    inference_bf16: bool = False  # bf16 autocast at inference (measured 6x slower than fp32 for SmolLM2 on this CPU)
    scifact_test_queries: int | None = 25  # a seeded sample of SciFact test (None: all 300); its own split name
    generation_eval: tuple[str, ...] = ()  # metric rows of the generation-trained model decoded by generation
    # (default: none; it is decoded by generation on the `quality_queries` DL19 sample for output quality and latency)
    quality_queries: int = 5  # generation decoding (zero-shot, generation-trained) of this many DL19 queries
    # training data
    folds: tuple[tuple[str, str], ...] = tuple(folds_dl())
    objectives: tuple[str, ...] = ("generation", "combined")
    train_window: int = 20  # passages per training conversation (plus the 2..train_window subsets)
    train_max_words: int = 20
    n_variable: int = 1  # variable-length subsets per query (RankZephyr's augmentation)
    shuffle_inputs: bool = False  # passages of each conversation in a seeded random order (RankVicuna's augmentation)
    scifact_train_queries: int | None = 100  # SciFact train queries added to each fold (None: all)
    dev_scifact_queries: int = 5
    dl_teacher: str = "teacher-minilm-l6"
    scifact_teacher: str = "teacher-bm25+minilm-l6"
    # objective
    ranking_loss: str = "ranknet"
    weighted: bool = True
    ranking_weight: float | None = None  # None: rank_llm's constant (10 for weighted RankNet)
    noise_alpha: float | None = 5.0  # NEFTune
    # optimisation
    learning_rate: float = 5e-5
    num_epochs: int = 1
    max_steps: int | None = 12
    batch_size: int = 1
    gradient_accumulation_steps: int = 2
    warmup_steps: int = 2
    lr_scheduler: str = "cosine"
    weight_decay: float = 0.0
    mixed_precision: str = "no"  # CPU: fp32 (bf16 autocast is slower for this model here); paper: bf16
    gradient_checkpointing: bool = False
    train_layers: int | None = 12  # train the top N decoder layers + final norm only (None: the whole model)
    eval_every_steps: int | None = 6
    save_every_steps: int | None = 6
    accelerate_config: str | None = None  # paper: the DeepSpeed ZeRO-3 config to launch with


PROFILES = {
    "smoke": {
        "tag": "tiny", "model": TINY, "chat_template": ZEPHYR_STYLE_TEMPLATE, "depth": 6, "window": 4, "stride": 2,
        "max_words": 12, "scifact_test_queries": 4, "quality_queries": 2, "train_window": 4, "train_max_words": 12,
        "scifact_train_queries": 4, "dev_scifact_queries": 2, "max_steps": 2, "gradient_accumulation_steps": 1,
        "warmup_steps": 0, "train_layers": None, "eval_every_steps": 1, "save_every_steps": 1,
        "learning_rate": 1e-3, "generation_eval": ("trec-dl-2019",),
    },
    "default": {},
    "paper": {
        "tag": "mistral-7b", "model": "mistralai/Mistral-7B-Instruct-v0.3",
        "generation_model": "HuggingFaceH4/zephyr-7b-beta", "combined_model": "mistralai/Mistral-7B-Instruct-v0.3",
        "depth": 100, "window": 20, "stride": 10, "max_words": 300, "scifact_test_queries": None,
        "generation_eval": ("trec-dl-2019", "trec-dl-2020"), "quality_queries": 43, "train_window": 20,
        "train_max_words": 300, "n_variable": 1, "scifact_train_queries": None, "inference_bf16": True,
        "learning_rate": 5e-6, "num_epochs": 3, "max_steps": None, "batch_size": 8, "gradient_accumulation_steps": 4,
        "warmup_steps": 50, "lr_scheduler": "cosine", "mixed_precision": "bf16", "gradient_checkpointing": True,
        "train_layers": None, "eval_every_steps": 200, "save_every_steps": 500,
        "accelerate_config": "configs/accelerate/deepspeed_zero3.yaml",
    },
}


def config(profile: str = "default", **overrides) -> RankLLMConfig:
    for key in ("objectives", "generation_eval"):
        if overrides.get(key) is not None:
            overrides[key] = tuple(overrides[key])
    if overrides.get("folds") is not None:
        overrides["folds"] = tuple(tuple(f) for f in overrides["folds"])
    cfg = resolve_profile(RankLLMConfig(), PROFILES, profile, overrides)
    for objective in cfg.objectives:
        if objective not in ("generation", "ranking", "combined"):
            raise ValueError(f"unknown objective {objective!r}")
    return cfg


def summary(cfg: RankLLMConfig) -> pd.DataFrame:
    """The configuration as a table, with where each model would come from (resolvable offline or not)."""
    rows = [{"parameter": k, "value": v} for k, v in asdict(cfg).items() if k != "chat_template"]
    for role, name in (("start", cfg.model), ("generation base", cfg.generation_model or cfg.model),
                       ("combined base", cfg.combined_model or cfg.model)):
        if name == TINY:
            where = "built from a config (smoke)"
        else:
            try:
                where = resolve(name).description  # says which weights (Q4_1 stand-in or the hub model), no paths
            except Exception as err:  # offline, hub id: say so, the paper profile cannot run here
                where = f"unavailable here ({type(err).__name__})"
        rows.append({"parameter": f"{role} model", "value": f"{name} [{where}]"})
    return pd.DataFrame(rows).set_index("parameter")
