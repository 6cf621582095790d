"""InRanker's settings: the config (one `Stage` per training run, each with its TrainConfig), the profiles."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import pandas as pd

from ...paper_profiles import paper_profile
from ...settings import Settings, resolve_profile, settings_table
from ...training import TrainConfig

PIPELINE = "inranker"
STAGES = ("stage1", "stage2", "ablation")

_2CR = ("rank_llm 2CR (castorini/rank_llm @1b3cabb) src/rank_llm/2cr/msmarco-v1-passage.yaml lines 46-59: "
        "castorini/monot5-3b-msmarco-10k reranking the Anserini BM25 top-100 of the judged queries; ours: bm25s BM25 "
        "top-dl_depth (100 in the paper profile), max_length 512")
#: Published nDCG@10 to show beside ours, by (dataset, method). Found: monoT5-3B, the paper profile's teacher row
#: (teacher-monot5-3b-msmarco-10k), on TREC DL 2019 / 2020 (rank_llm's 2CR table, read in the repository).
#: Not found, so left out: the InRanker paper's own BEIR table (InRanker-small / -base / -3B and the monoT5-60M /
#: -220M / -3B baselines on SciFact and the BEIR mean; its first stage and depth). Searched: the stored text of
#: http://cord.distantreader.org/stacks/journals-ojs/bracis/bracis-33590.htm and https://arxiv.org/html/2401.06910v1
#: (stored copies, searched for InRanker / monoT5-60M / -220M / SciFact / nDCG@10 / BEIR table / BM25 top-1000:
#: only their abstract and introduction are reachable), the model cards unicamp-dl/InRanker-small / -3B (no numbers),
#: the repository unicamp-dl/InRanker @e85f2c6 (README.md, docs/: no scores), and for monoT5 on SciFact the
#: repository of Rosa et al. (arXiv 2206.02873; guilhermemr04/scaling-zero-shot-retrieval @fb5866f: README.md,
#: src/beir_results.PNG is a plot of the BEIR mean, BEIR.ipynb has no saved outputs). A SciFact row goes here as
#: ("scifact", method): {"nDCG@10": {"value": v, "source": "InRanker (arXiv 2401.06910) Table N: first stage, depth"}}.
REFERENCES: dict[tuple[str, str], dict] = {
    ("trec-dl-2019", "teacher-monot5-3b-msmarco-10k"): {"nDCG@10": {"value": 0.7173, "source": f"{_2CR} (dl19)"}},
    ("trec-dl-2020", "teacher-monot5-3b-msmarco-10k"): {"nDCG@10": {"value": 0.6887, "source": f"{_2CR} (dl20)"}},
}


def _train(**values) -> TrainConfig:
    base = dict(seed=13, per_device_batch_size=16, warmup_ratio=0.1, weight_decay=0.01, log_every_steps=5,
                save_every_steps=None, keep_last_checkpoints=1, metric_for_best="nDCG@10")
    return TrainConfig(**{**base, **values})


@dataclass(frozen=True)
class Stage(Settings):
    """One distillation run: the loop's settings, and the two the loop does not know."""

    train: TrainConfig = field(default_factory=_train)
    decoder_learning_rate: float | None = None  # the parameters outside the encoder (a fresh decoder); None: one rate
    center_labels: bool = True  # subtract each pair's mean from its two logits (the package: stage 2 only)


@dataclass(frozen=True)
class InRankerConfig(Settings):
    """The settings a profile leaves alone; what may be None here (a profile cannot set None) is set by the
    profiles that need a value."""

    READ_ONLY_WHEN: ClassVar[dict] = {f"generator_{k}": "an LLM writes the queries (generator is not 'title')"
                                      for k in ("max_doc_tokens", "max_new_tokens")}
    profile: str = "default"
    seed: int = 13  # splits, samples, the students' random parts; also each stage's train.seed
    data_root: str | None = None
    launch: str | None = None  # an accelerate config (configs/accelerate/NAME.yaml): train under accelerate launch
    # student (offline default: pretrained MiniLM encoder + small random decoder, monoT5 scoring)
    student: str = "minilm-monot5"
    decoder_layers: int = 2
    max_length: int = 128
    eval_batch_size: int = 32
    stage1: Stage = Stage(_train(learning_rate=1e-4, num_epochs=2))
    # chosen on the SciFact dev slice: at 1e-4 stage 2 lowered dev nDCG@10 0.33 -> 0.18; at 2e-5 it raised it to 0.44
    stage2: Stage = Stage(_train(learning_rate=2e-5, num_epochs=1))
    # ablation: a T5 built from a config (random weights), stage 1 on the stage2_from fold only (None: skipped)
    ablation_student: str | None = "t5-efficient-tiny-random"
    ablation: Stage = Stage(_train(learning_rate=5e-4, num_epochs=1))
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
    n_synthetic: int = 100
    keep_fraction: float = 1.0  # InPars-v1 keeps the queries with the highest mean log-probability
    generator: str = "smollm2-135m-instruct"  # 'title' (smoke only): the document title stands in for a query
    generator_max_doc_tokens: int = 128
    generator_max_new_tokens: int = 32
    negatives: int = 9
    negatives_depth: int = 1000
    calibration_queries: int = 200  # SciFact train queries whose top-1000 fit the stage-2 calibration
    # evaluation
    scifact_depth: int = 20
    dl_depth: int = 30  # the BM25 top-30 of TREC DL (top-100 in the paper profile): the budget
    scifact_dev_queries: int | None = None  # dev queries of SciFact used for checkpoint/weight selection (cost)
    max_eval_queries: int | None = None  # smoke: evaluate on the first N test queries


def _each_stage(**values) -> dict:
    return {f"{stage}.train.{k}": v for stage in STAGES for k, v in values.items()}


#: The published configuration as data (recipes/paper_profiles/inranker.yaml): each setting with its source, and
#: the published settings the code cannot apply (gaps): the inranker package's trainer defaults, docs/training.md.
PAPER = paper_profile(PIPELINE, InRankerConfig())
PAPER_SOURCES, PAPER_GAPS = PAPER.sources, PAPER.gaps
#: The embedded default's fresh decoder learns faster than the pretrained encoder (stage 2: the earlier
#: 5e-4 x 2e-5 / 1e-4, which rounds to the same float32); dev checkpoints every 40 steps.
_DEFAULT = {"stage1.decoder_learning_rate": 5e-4, "stage2.decoder_learning_rate": 1e-4,
            **_each_stage(eval_every_steps=40)}
#: A finished run keeps one checkpoint at its end, so a re-run with the same data and settings skips training.
_KEEP_END = _each_stage(save_every_steps=10**9)

PROFILES = {
    "smoke": {**_DEFAULT, "stage1_depth": 3, "max_length": 64, "stage1.train.num_epochs": 1, "n_synthetic": 3, "generator": "title",
              "negatives": 2, "negatives_depth": 10, "calibration_queries": 5, "scifact_depth": 5, "dl_depth": 5,
              "teacher_depth": 20, "scifact_dev_queries": 3, "max_eval_queries": 4, "decoder_layers": 1,
              **_each_stage(per_device_batch_size=4)},
    "default": {**_DEFAULT, **_KEEP_END, "scifact_dev_queries": 40},
    "paper": PAPER.values,
    # paper-tiny: the paper profile with only sizes, steps and queries made small (models: rerank_lib.standin)
    "paper-tiny": {"stage1_depth": 3, "max_length": 64, "n_synthetic": 3, "negatives": 2, "negatives_depth": 10,
                   "calibration_queries": 5, "scifact_depth": 5, "dl_depth": 5, "teacher_depth": 20,
                   "scifact_dev_queries": 3, "max_eval_queries": 4, "eval_batch_size": 8, "generator_max_doc_tokens": 32,
                   "generator_max_new_tokens": 8, **_each_stage(per_device_batch_size=4, max_steps=2, warmup_steps=1)},
}


def config(profile: str = "default", **overrides) -> InRankerConfig:
    """The profile's config with dotted-path overrides; `seed` also seeds each stage's training unless a
    `<stage>.train.seed` is given."""
    if overrides.get("seed") is not None:
        overrides = {**_each_stage(seed=overrides["seed"]), **overrides}
    cfg = resolve_profile(InRankerConfig(), PROFILES, profile, overrides)
    if cfg.stage1_data not in ("dl-folds", "published") or cfg.stage2_data not in ("synthetic", "published"):
        raise ValueError("stage1_data is dl-folds|published and stage2_data synthetic|published")
    if cfg.stage2_from not in ("trec-dl-2019", "trec-dl-2020"):
        raise ValueError("stage2_from must be trec-dl-2019 or trec-dl-2020")
    return cfg


def summary(cfg: InRankerConfig) -> pd.DataFrame:
    """Every setting by its dotted path (what `overrides` takes)."""
    return settings_table(cfg)
