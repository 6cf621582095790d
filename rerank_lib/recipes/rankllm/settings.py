"""The RankLLM recipe's settings: constants, the published reference numbers, the config and its profiles (smoke,
default, paper), and the config as a table (`config()` is the function the package re-exports)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import pandas as pd

from ...data import folds_dl
from ...listwise.prompts import ZEPHYR_STYLE_TEMPLATE
from ...models import TINY_RANDOM_LLAMA, where_from
from ...settings import settings_table
from ...training import TrainConfig
from ..recipe import Recipe, RecipeSettings

PIPELINE = "rankllm"
MEASURE = "nDCG@10"
TINY = TINY_RANDOM_LLAMA  # smoke profile: a 2-layer random Llama with the Mistral tokenizer (seconds, not minutes)


@dataclass(frozen=True)
class RankLLMConfig(RecipeSettings):
    READ_ONLY_WHEN: ClassVar[dict] = {
        **{name: "the substitute training data is built (train_data 'offline')"
           for name in ("n_variable", "shuffle_inputs", "scifact_train_queries")},
        **{name: "RankZephyr's training data is read (train_data 'rank_zephyr', the paper profiles)"
           for name in ("rank_zephyr_file", "rank_zephyr_examples")}}
    launch: str | None = None  # an accelerate config (configs/accelerate/NAME.yaml): train under it
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
    constrained_generation: bool = True  # generation decoding may write only a permutation of the window's
    # identifiers, then EOS (listwise.constrained); rank_llm decodes unconstrained (the paper profile)
    scifact_test_queries: int | None = 25  # a seeded sample of SciFact test (None: all 300); its own split name
    generation_eval: tuple[str, ...] = ()  # metric rows of the generation-trained model decoded by generation
    # (the profiles' YAML names the sets, DL19 in the default; without DL19 the generation-trained model is decoded by
    # generation on the `quality_queries` DL19 sample only, for output quality and latency)
    quality_queries: int = 5  # generation decoding of this many DL19 queries: the zero-shot model's always (output
    # quality and latency, no metric row), the generation-trained model's when DL19 is not in generation_eval
    # training data
    train_data: str = "offline"  # offline: teacher-ordered DL + SciFact windows; rank_zephyr: RankZephyr's data
    rank_zephyr_file: str | None = None  # a local copy of RankZephyr's training file (None: download it), or a
    # ShareGPT RankZephyr jsonl of your own (rank_llm's --train_dataset_path). No eval file and no dev slice of it:
    # its lines carry a teacher's permutation, not relevance judgments, so a slice of it could only measure agreement
    # with the teacher. The checkpoint is selected as the paper's runs are, by nDCG@10 on the training DL year's dev
    # slice (a seeded 20%, at least 8, of that year's judged queries, BM25 top-depth; experiment.dl_training_split):
    # real qrels, disjoint from the other year every fold is measured on, and the file's query texts join the
    # provenance the leak guard checks against every test query.
    rank_zephyr_examples: int | None = None  # the first N records of it (None: all)
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
    # objective and what is trained
    ranking_loss: str = "ranknet"
    weighted: bool = True
    ranking_weight: float | None = None  # None: rank_llm's constant (10 for weighted RankNet)
    noise_alpha: float | None = 5.0  # NEFTune
    train_layers: int | None = 12  # train the top N decoder layers + final norm only (None: the whole model)
    train: TrainConfig = field(default_factory=TrainConfig)  # the loop's settings; the dev slice picks the checkpoint

    def __post_init__(self):
        unknown = set(self.objectives) - {"generation", "ranking", "combined"}
        if unknown:
            raise ValueError(f"unknown objective(s) {sorted(unknown)}")
        if self.train_data not in ("offline", "rank_zephyr"):
            raise ValueError(f"train_data must be 'offline' or 'rank_zephyr', not {self.train_data!r}")
        if self.train_data == "offline" and (self.rank_zephyr_file or self.rank_zephyr_examples):
            raise ValueError("rank_zephyr_file / rank_zephyr_examples are read only with train_data='rank_zephyr'")


RECIPE = Recipe(
    PIPELINE, "30_rankllm", RankLLMConfig, stages=("train",),
    flags={"model_name_or_path": "model", "objective": "objectives", "noisy_embedding_alpha": "noise_alpha"},
    steps=("eval_sets", "reference_rows", "zero_shot", "train_all", "evaluate_all"),
    # the smoke model's tokenizer (Mistral's) has no chat template: the one rank_llm's Zephyr prompts use (code)
    coded={"smoke": {"chat_template": ZEPHYR_STYLE_TEMPLATE}})
config = RECIPE.config


def summary(cfg: RankLLMConfig) -> pd.DataFrame:
    """The configuration as a table (dotted names), with where each model would come from (offline or not)."""
    table = settings_table(cfg, drop=["chat_template"])
    for role, name in (("start", cfg.model), ("generation base", cfg.generation_model or cfg.model),
                       ("combined base", cfg.combined_model or cfg.model)):
        table.loc[f"{role} model"] = f"{name} [{where_from(name)}]"
    return table.rename_axis("parameter")
