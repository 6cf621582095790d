"""Which mixed precision to train in when the user says 'auto'.

bf16 only pays off where the hardware computes it natively; emulated bf16 on an older CPU is slower than fp32,
so 'auto' must look at the machine rather than assume.
"""
from __future__ import annotations

import os

import torch

from ..models import cpu_supports_bf16  # the one detector, on the ground floor

MIXED_PRECISIONS = ("no", "bf16", "fp16", "auto")


def resolve_mixed_precision(requested: str = "auto") -> str:
    """'no'|'bf16'|'fp16' pass through; 'auto' follows `accelerate launch` if it chose one, else the hardware."""
    if requested not in MIXED_PRECISIONS:
        raise ValueError(f"mixed_precision must be one of {MIXED_PRECISIONS}, got {requested!r}")
    if requested != "auto":
        return requested
    launcher_choice = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")  # set from the accelerate yaml
    if launcher_choice in ("bf16", "fp16"):
        return launcher_choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    return "bf16" if cpu_supports_bf16() else "no"
