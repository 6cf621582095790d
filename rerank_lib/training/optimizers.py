"""The optimizers train() can build: torch's AdamW, or bitsandbytes' 8-bit AdamW as rank_llm trains its 7B rerankers.

8-bit AdamW keeps both moment estimates in 8 bits (block-wise quantised), about a quarter of AdamW's optimizer
memory; rank_llm's training/utils/model_utils.py builds `bnb.optim.AdamW8bit(groups, lr=...)`. bitsandbytes comes
with the [gpu] extra and is imported only when chosen.
"""
from __future__ import annotations

import importlib
from typing import Iterable

import torch

OPTIMIZERS = ("adamw", "adamw_8bit")


def build_optimizer(name: str, params: Iterable, learning_rate: float, weight_decay: float) -> torch.optim.Optimizer:
    """The optimizer `name` over `params` (tensors or parameter groups; a group's own weight_decay wins)."""
    if name == "adamw":
        return torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    if name == "adamw_8bit":
        try:
            bnb_optim = importlib.import_module("bitsandbytes.optim")
        except ImportError as error:
            raise ImportError(
                "TrainConfig.optimizer='adamw_8bit' needs bitsandbytes, which the [gpu] extra installs: "
                "pip install -e '.[gpu]' (or pip install bitsandbytes); optimizer='adamw' needs nothing"
            ) from error
        return bnb_optim.AdamW8bit(params, lr=learning_rate, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def deepspeed_replaces_optimizer(deepspeed_config: dict) -> bool:
    """True when accelerate will swap the optimizer we build for DeepSpeed's CPU Adam: the optimizer state is
    offloaded to CPU and the config does not turn that off (`zero_force_ds_cpu_optimizer`, default true)."""
    offload = deepspeed_config.get("zero_optimization", {}).get("offload_optimizer", {}).get("device", "none")
    return str(offload).lower() != "none" and deepspeed_config.get("zero_force_ds_cpu_optimizer", True)
