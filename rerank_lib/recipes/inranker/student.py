"""What one trained InRanker student carries to the evaluation, and the untrained student it starts from."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...data import TrainingQueries
from ...data.types import Dataset, Run
from .settings import InRankerConfig


@dataclass
class Student:
    method: str  # record method name, e.g. 'minilm-monot5-stage1'
    model_dir: Path | None  # the selected weights (None: the untrained start, built in memory)
    provenance: TrainingQueries | None
    dev: Dataset | None = None  # dev queries: checkpoint and interpolation-weight selection
    dev_candidates: Run | None = None
    dev_run: Run | None = None  # the selected model's reranking of dev_candidates
    curve: list = field(default_factory=list)  # dev evaluations, step 0 included
    history: list = field(default_factory=list)  # training loss rows
    wall_s: float = 0.0
    data: dict = field(default_factory=dict)  # training data summary
    params: dict = field(default_factory=dict)


def _student_options(cfg: InRankerConfig, name: str) -> dict:
    if name == "minilm-monot5":
        return {"decoder_layers": cfg.decoder_layers, "seed": cfg.seed}
    if name == "t5-efficient-tiny-random":
        return {"seed": cfg.seed}
    return {}


def start_model(cfg: InRankerConfig, name: str | None = None):
    """The untrained student (seeded): (model, tokenizer)."""
    from ...rerankers.monot5 import load_seq2seq

    name = name or cfg.student
    return load_seq2seq(name, **_student_options(cfg, name))
