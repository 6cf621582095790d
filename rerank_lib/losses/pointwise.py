"""Pointwise losses: each (query, document) pair is scored alone against its own label (RAG-Retrieval's
`point_ce` / `point_mse`, rag_retrieval/train/reranker/model_bert.py).

Inputs: `logits` [N] (one logit per pair; any shape, flattened) and `labels` [N] in [0, 1] (hard or soft labels).
Each loss returns the mean over the N pairs as a scalar. `soft_point_ce` takes a teacher's margins [N] instead of
labels: point CE on the teacher's probabilities.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def point_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with logits, soft labels allowed (RAG-Retrieval `point_ce`).

    L = mean_i [ -y_i log sigmoid(s_i) - (1 - y_i) log(1 - sigmoid(s_i)) ],  y_i in [0, 1].
    """
    return F.binary_cross_entropy_with_logits(logits.float().reshape(-1), labels.float().reshape(-1))


def point_mse(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the sigmoid of the logit and the label (RAG-Retrieval `point_mse`, its
    distillation loss on teacher probabilities).

    L = mean_i ( sigmoid(s_i) - y_i )^2.
    """
    return F.mse_loss(torch.sigmoid(logits.float().reshape(-1)), labels.float().reshape(-1))


def soft_point_ce(logits: torch.Tensor, teacher_margins: torch.Tensor) -> torch.Tensor:
    """`point_ce` on soft labels: the teacher's probabilities sigmoid(m_i) as the BCE targets of every pair.

    L = mean_i [ -p_i log sigmoid(s_i) - (1 - p_i) log(1 - sigmoid(s_i)) ],  p_i = sigmoid(m_i).
    """
    return point_ce(logits, torch.sigmoid(teacher_margins.float().to(logits.device)))
