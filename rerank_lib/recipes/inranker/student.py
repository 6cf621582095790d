"""What one trained InRanker student carries to the evaluation, where it was selected, and its untrained start."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...data import TrainingQueries
from ...data.types import Dataset, Run
from ...experiment import Selected
from ...rerankers.monot5 import load_seq2seq
from .settings import InRankerConfig


@dataclass
class DevSlice:
    """Dev queries (checkpoint and interpolation-weight selection), their BM25 candidates, the teacher's scores."""

    data: Dataset
    candidates: Run
    teacher: Run | None = None


@dataclass
class Student:
    method: str  # record method name, e.g. 'minilm-monot5-stage1'
    selected: Selected  # the dev-selected checkpoint (the untrained start when step 0 won)
    provenance: TrainingQueries
    dev: DevSlice | None = None
    data: dict = field(default_factory=dict)  # training data summary
    params: dict = field(default_factory=dict)

    @property
    def model_dir(self) -> Path:
        return self.selected.model_dir


def student_options(cfg: InRankerConfig, name: str) -> dict:
    """The builder options of an offline student name (`rerankers.monot5.STUDENTS`); none for a hub id."""
    if name == "minilm-monot5":
        return {"decoder_layers": cfg.decoder_layers, "seed": cfg.seed}
    return {"seed": cfg.seed} if name == "t5-efficient-tiny-random" else {}


def start_model(cfg: InRankerConfig, name: str):
    """The untrained student (seeded): (model, tokenizer)."""
    return load_seq2seq(name, **student_options(cfg, name))


def short_name(name: str) -> str:
    return {"t5-efficient-tiny-random": "t5tiny-random"}.get(name, Path(str(name)).name)
