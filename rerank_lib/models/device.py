"""Device, dtype, attention and precision choice: what computes, in which dtype, on this machine.

Precision: `compute_dtype` turns the setting fp32 | bf16 | auto ($RERANK_PRECISION, 'auto' when unset; the CLI's
--precision, fp32 by default) into the inference dtype; 'auto' is bf16 only where the hardware computes it natively.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
from pathlib import Path

import torch


def pick_device() -> torch.device:
    """CUDA when present, else CPU (MPS is left to an explicit choice: bf16 and SDPA coverage is patchy there)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@functools.lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """True when this CPU computes bf16 natively (x86 AVX512-BF16 or AMX, ARM BF16). Emulated bf16 on an older CPU
    is slower than fp32, so this looks at the machine instead of assuming."""
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):  # private but exact, torch >= 2.3
        with contextlib.suppress(Exception):
            if getattr(torch.cpu, probe, lambda: False)():
                return True
    with contextlib.suppress(Exception):
        capability = torch.backends.cpu.get_cpu_capability().upper()  # 'AVX2', 'AVX512', 'SVE256', ...
        if "AMX" in capability or "BF16" in capability:
            return True
    with contextlib.suppress(OSError):  # Linux: the kernel's CPU flags (x86 'avx512_bf16'/'amx_bf16', ARM 'bf16')
        return bool(set(Path("/proc/cpuinfo").read_text().split()) & {"avx512_bf16", "amx_bf16", "bf16"})
    return False


def device_of(device) -> torch.device:
    return pick_device() if device is None else torch.device(device)


def pick_dtype(device=None, prefer: str = "bf16") -> torch.dtype:
    """The compute dtype for `device`: `prefer` ('bf16' | 'fp16' | 'fp32') where the hardware does it natively.
    CUDA: bf16 if supported else fp16; CPU: bf16 only with native support (fp16 is never faster there), else fp32."""
    if prefer not in ("bf16", "fp16", "fp32"):
        raise ValueError(f"prefer must be 'bf16', 'fp16' or 'fp32', got {prefer!r}")
    dev = device_of(device)
    if prefer == "fp32":
        return torch.float32
    if dev.type == "cuda":
        if prefer == "bf16" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16
    if dev.type == "cpu" and cpu_supports_bf16():
        return torch.bfloat16
    return torch.float32


PRECISIONS = ("fp32", "bf16", "auto")
#: The process-wide precision setting (the CLI sets it from --precision; notebooks leave it unset: 'auto').
PRECISION_ENV = "RERANK_PRECISION"


def _check(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def precision_setting() -> str:
    """$RERANK_PRECISION ('fp32' | 'bf16' | 'auto'; 'auto' when unset): what the library's default precision means."""
    value = os.environ.get(PRECISION_ENV, "").strip().lower() or "auto"
    if value not in PRECISIONS:
        raise ValueError(f"${PRECISION_ENV}={value!r}: must be one of {', '.join(PRECISIONS)}")
    return value


@contextlib.contextmanager
def precision_scope(precision: str):
    """Set the process-wide precision for a block (a CLI command), restoring what was there after."""
    _check(precision)
    before = os.environ.get(PRECISION_ENV)
    os.environ[PRECISION_ENV] = precision
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PRECISION_ENV, None)
        else:
            os.environ[PRECISION_ENV] = before


def compute_dtype(device=None, precision: str | None = None) -> torch.dtype:
    """The inference compute dtype for a precision ('fp32', 'bf16', or 'auto' = pick_dtype: bf16 only where the
    hardware computes it natively); None reads the process setting (precision_setting). 'bf16' is bf16 even where
    it is emulated: the user asked for it."""
    precision = precision or precision_setting()
    _check(precision)
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    return pick_dtype(device, prefer="bf16")


def precision_name(dtype: torch.dtype) -> str:
    """'fp32' | 'bf16' | 'fp16' for a compute dtype (what records and cards say ran)."""
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))


def _flash_attn_available() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def attn_implementation(device=None, dtype: torch.dtype | None = None) -> str:
    """'flash_attention_2' on CUDA when flash-attn is installed (and weights are half precision, which it needs),
    else 'sdpa' (PyTorch's fused attention, good on CPU and GPU alike)."""
    dev = device_of(device)
    half = dtype is None or dtype in (torch.float16, torch.bfloat16)
    if dev.type == "cuda" and half and _flash_attn_available():
        return "flash_attention_2"
    return "sdpa"


def autocast_context(device=None, enabled: bool = True, dtype: torch.dtype | None = None):
    """`torch.autocast` in bf16 (or fp16 on older GPUs) where the device supports it natively, else a no-op.
    Pass `dtype` to force a precision (e.g. bf16 on a CPU without native support, for accuracy tests)."""
    dev = device_of(device)
    if not enabled:
        return contextlib.nullcontext()
    dtype = dtype or pick_dtype(dev)
    if dtype == torch.float32 or dev.type not in ("cpu", "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(device_type=dev.type, dtype=dtype)

