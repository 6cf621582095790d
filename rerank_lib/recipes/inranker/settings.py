"""InRanker's settings: the config (one `Stage` per training run, each with its TrainConfig), the profiles."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import pandas as pd

from ...settings import Settings, check_range, settings_table
from ...training import TrainConfig
from ..recipe import Recipe, RecipeSettings

PIPELINE = "inranker"
STAGES = ("stage1", "stage2", "ablation")
OWN_FILE = ("stage2_file", "stage2_eval_file")  # a training file of your own (records name them only when set)


@dataclass(frozen=True)
class Stage(Settings):
    """One distillation run: the loop's settings, and the two the loop does not know."""

    train: TrainConfig = field(default_factory=TrainConfig)  # the recipe's values: its YAML's default profile
    decoder_learning_rate: float | None = None  # the parameters outside the encoder (a fresh decoder); None: one rate
    center_labels: bool = True  # subtract each pair's mean from its two logits (the package: stage 2 only)


@dataclass(frozen=True)
class InRankerConfig(RecipeSettings):
    """The settings a profile leaves alone; what may be None here (a profile cannot set None) is set by the
    profiles that need a value."""

    READ_ONLY_WHEN: ClassVar[dict] = {f"generator_{k}": "an LLM writes the queries (generator is not 'title')"
                                      for k in ("max_doc_tokens", "max_new_tokens")}
    launch: str | None = None  # an accelerate config (configs/accelerate/NAME.yaml): train under it
    # student (offline default: pretrained MiniLM encoder + small random decoder, monoT5 scoring)
    student: str = "minilm-monot5"
    decoder_layers: int = 2
    max_length: int = 128
    eval_batch_size: int = 32
    stage1: Stage = field(default_factory=Stage)
    stage2: Stage = field(default_factory=Stage)
    # ablation: a T5 built from a config (random weights), stage 1 on the stage2_from fold only (None: skipped)
    ablation_student: str | None = "t5-efficient-tiny-random"
    ablation: Stage = field(default_factory=Stage)
    # teachers and their calibration to two logits
    dl_teacher: str = "minilm-l6"
    scifact_teacher: str = "bm25+minilm-l6"
    teacher_model: str | None = None  # a monoT5 teacher giving logits directly (paper: monoT5-3B), no calibration
    teacher_depth: int = 100  # candidates the teacher scores per training query (02_teacher's depth: cache hit)
    dl_min_grade: int = 2  # TREC DL: grade >= 2 counts as relevant (the MS MARCO convention)
    # stage-1 data
    stage1_data: str = "dl-folds"  # dl-folds (offline) | published (InRanker's MS MARCO soft labels + mMARCO)
    stage1_depth: int = 20  # BM25 candidates per DL training query that become labelled pairs
    # stage-2 data
    stage2_data: str = "synthetic"  # synthetic | published (InRanker's BEIR soft labels)
    stage2_from: str = "trec-dl-2020"  # stage 2 starts from the student trained on this DL year (tested on the other)
    n_synthetic: int = 100  # documents the generator writes a query for
    keep_fraction: float = 1.0  # InPars-v1's filter: the best fraction of them by mean log-probability (1: all)
    min_query_tokens: int = 0  # InPars-v1's filter: fewer generated tokens drop first (titles: not counted)
    generator: str = "smollm2-135m-instruct"  # 'title' (smoke only): the document title stands in for a query
    generator_max_doc_tokens: int = 128
    generator_max_new_tokens: int = 32
    # an InRanker custom jsonl of your own ({query, contents, true_logit, false_logit}): stage 2 distils on it instead
    # of the synthetic queries; its dev set: stage2_eval_file (same format), else a seeded slice of its queries
    stage2_file: str | None = None
    stage2_eval_file: str | None = None
    negatives: int = 9
    negatives_depth: int = 1000
    calibration_queries: int = 200  # SciFact train queries whose top-1000 fit the stage-2 calibration
    # evaluation
    scifact_depth: int = 20
    dl_depth: int = 30  # the BM25 top-30 of TREC DL (top-100 in the paper profile): the budget
    scifact_dev_queries: int | None = None  # dev queries of SciFact used for checkpoint/weight selection (cost)
    max_eval_queries: int | None = None  # smoke: evaluate on the first N test queries


def check(cfg: InRankerConfig, overrides) -> InRankerConfig:
    if cfg.stage1_data not in ("dl-folds", "published") or cfg.stage2_data not in ("synthetic", "published"):
        raise ValueError("stage1_data is dl-folds|published and stage2_data synthetic|published")
    if cfg.stage2_eval_file and not cfg.stage2_file:
        raise ValueError("stage2_eval_file is the dev set of a stage2_file: give stage2_file too")
    if cfg.stage2_from not in ("trec-dl-2019", "trec-dl-2020"):
        raise ValueError("stage2_from must be trec-dl-2019 or trec-dl-2020")
    check_range("keep_fraction", cfg.keep_fraction, above=0, maximum=1)
    check_range("min_query_tokens", cfg.min_query_tokens, minimum=0)
    return cfg


RECIPE = Recipe(PIPELINE, "20_inranker", InRankerConfig, stages=tuple(f"{s}.train" for s in STAGES),
                flags={"model_name_or_path": "student"},
                steps=("dl_folds", "stage1", "synthetic_data", "stage2", "ablation", "evaluate_all", "results_table"),
                check=check, multi_seed=True)
config = RECIPE.config


def summary(cfg: InRankerConfig) -> pd.DataFrame:
    """Every setting by its dotted path (what `overrides` takes)."""
    return settings_table(cfg)
