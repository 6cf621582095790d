"""InRanker's distillation loss (Laitz et al., 2024, arXiv 2401.06910; code: unicamp-dl/InRanker): a monoT5
student learns a teacher's two first-step logits [false, true] per (query, document) pair.

    L = mean_{b, c} (s_bc - t_bc)^2,  s, t: [B, 2] student and teacher logits (labels centred by `center` when the
    loader does: [f, t] -> [-(t-f)/2, (t-f)/2], leaving only the margin to match).
"""
from __future__ import annotations

import numpy as np
import torch


def center(labels: np.ndarray | torch.Tensor):
    """Subtract each pair's mean: [f, t] -> [f - (f+t)/2, t - (f+t)/2] = [-(t-f)/2, (t-f)/2]."""
    return labels - labels.mean(-1, keepdims=True) if isinstance(labels, np.ndarray) else \
        labels - labels.mean(-1, keepdim=True)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """InRanker's loss: MSE between the student's [false, true] first-step logits and the teacher's,
    mean over the batch and the two logits (torch.nn.MSELoss() on [B, 2], as in the package's T5Trainer)."""
    return torch.nn.functional.mse_loss(student_logits.float(), teacher_logits.float())
