"""Which mixed precision to train in when the user says 'auto'.

bf16 only pays off where the hardware computes it natively; emulated bf16 on an older CPU is slower than fp32,
so 'auto' must look at the machine rather than assume.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

MIXED_PRECISIONS = ("no", "bf16", "fp16", "auto")


def cpu_supports_bf16() -> bool:
    """True when this CPU has native bf16 arithmetic (x86 AVX512-BF16 or AMX, ARM BF16)."""
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):  # private but exact, torch >= 2.3
        check = getattr(torch.cpu, probe, None)
        if check is not None and check():
            return True
    # get_cpu_capability() names the ISA torch dispatches to ('AVX2', 'AVX512', 'SVE256', ...).
    capability = torch.backends.cpu.get_cpu_capability().upper()
    if "AMX" in capability or "BF16" in capability:
        return True
    # Last resort, Linux: the kernel's CPU flags (x86 'avx512_bf16'/'amx_bf16', ARM 'bf16').
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


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
