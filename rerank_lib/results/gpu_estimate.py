"""How much GPU a claim needs at paper scale, from the model's size and the tokens it processes.

Why computed, not typed: an estimate written beside a claim goes stale when its model or data changes; computed from
parameters and tokens with stated assumptions, a reader can check it and redo it for their own GPU.

Assumptions (the usual transformer accounting, Kaplan et al. 2020): training costs 6 * N * T FLOPs (forward 2NT,
backward 4NT) and scoring 2 * N * T, for N parameters and T tokens; the GPU sustains `utilisation` of an H100 SXM's
dense bf16 peak (989 TFLOP/s). Training memory is weights, gradients and AdamW states in mixed precision: bf16
weights (2 bytes) + bf16 gradients (2) + fp32 master weights (4) + fp32 Adam moments (8) = 16 bytes per parameter;
scoring holds the bf16 weights (2 bytes per parameter). Activations, the KV cache and framework overhead are not
counted, so memory is a lower bound; ZeRO-3 or offload (the papers' launches) divide the training states over GPUs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

H100_BF16_PEAK_FLOPS = 989e12  # dense bf16, H100 SXM
H100_MEMORY_GB = 80.0
UTILISATION = 0.4  # model FLOPs utilisation a well-tuned training run reaches
TRAIN_BYTES_PER_PARAM = 16  # bf16 weights 2 + bf16 grads 2 + fp32 master 4 + fp32 Adam m and v 8
INFERENCE_BYTES_PER_PARAM = 2  # bf16 weights


@dataclass(frozen=True)
class GpuEstimate:
    train_hours: float  # H100-hours to train
    eval_hours: float  # H100-hours to score the test sets
    train_memory_gb: float  # weights + gradients + AdamW states (no activations)
    eval_memory_gb: float  # bf16 weights
    utilisation: float

    @property
    def gpu_hours(self) -> float:
        return self.train_hours + self.eval_hours

    @property
    def h100s(self) -> int:
        """H100s (80 GB) whose memory holds the training states sharded (ZeRO-3) or the weights, at least 1."""
        return max(1, math.ceil(max(self.train_memory_gb, self.eval_memory_gb) / H100_MEMORY_GB))

    def words(self) -> str:
        return (f"~{self.gpu_hours:.2g} H100-hours ({self.train_hours:.2g} training, {self.eval_hours:.2g} scoring, "
                f"at {self.utilisation:.0%} of bf16 peak); >= {self.train_memory_gb:.1f} GB for training states "
                f"({self.h100s} x 80 GB), {self.eval_memory_gb:.1f} GB of weights to score")


def estimate(params_billion: float, train_tokens: float, eval_tokens: float = 0.0,
             utilisation: float = UTILISATION, peak_flops: float = H100_BF16_PEAK_FLOPS) -> GpuEstimate:
    """GPU hours and memory of training on `train_tokens` and scoring `eval_tokens` with a model of
    `params_billion` parameters (see the module's assumptions)."""
    if params_billion <= 0 or train_tokens < 0 or eval_tokens < 0 or not 0 < utilisation <= 1:
        raise ValueError(f"estimate needs params_billion > 0, tokens >= 0 and 0 < utilisation <= 1, not "
                         f"{params_billion}, {train_tokens}, {eval_tokens}, {utilisation}")
    n = params_billion * 1e9
    rate = utilisation * peak_flops
    return GpuEstimate(train_hours=6 * n * train_tokens / rate / 3600, eval_hours=2 * n * eval_tokens / rate / 3600,
                       train_memory_gb=TRAIN_BYTES_PER_PARAM * n / 1e9 if train_tokens else 0.0,
                       eval_memory_gb=INFERENCE_BYTES_PER_PARAM * n / 1e9, utilisation=utilisation)
