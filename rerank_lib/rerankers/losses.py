"""The training losses of the bge-reranker family, each a small function over one-logit-per-pair scores.

Shapes: pointwise losses take `logits` [N] and `labels` [N] in [0, 1]; group losses take `logits` [B, G] (B
queries, G docs each) and, where they need them, `labels` [B, G]. Every loss returns the mean over the batch as a
scalar and is checked against hand-computed values in tests/test_cross_encoder.py. Imports only torch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["point_ce", "point_mse", "group_ce", "kd_term", "ranknet", "listwise_ce", "LOSSES", "POINTWISE", "GROUPWISE"]


def point_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with logits, soft labels allowed (RAG-Retrieval `point_ce`, model_bert.py).

    L = mean_i [ -y_i log sigmoid(s_i) - (1 - y_i) log(1 - sigmoid(s_i)) ],  y_i in [0, 1].
    """
    return F.binary_cross_entropy_with_logits(logits.float().reshape(-1), labels.float().reshape(-1))


def point_mse(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the sigmoid of the logit and the label (RAG-Retrieval `point_mse`).

    L = mean_i ( sigmoid(s_i) - y_i )^2.
    """
    return F.mse_loss(torch.sigmoid(logits.float().reshape(-1)), labels.float().reshape(-1))


def kd_term(logits: torch.Tensor, teacher_scores: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """FlagEmbedding's knowledge-distillation term (AbsRerankerModel.forward), per group, averaged over groups.

    KD = mean_b [ -sum_j softmax(t_b / T)_j * log_softmax(s_b)_j ].  FlagEmbedding uses T = 1 on raw teacher
    logits; T rescales teachers whose scores live on another scale (e.g. probabilities in [0, 1]).
    """
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    target = torch.softmax(teacher_scores.float().detach() / temperature, dim=-1)
    return -(target * torch.log_softmax(logits.float(), dim=-1)).sum(-1).mean()


def group_ce(logits: torch.Tensor, teacher_scores: torch.Tensor | None = None, kd_weight: float = 1.0,
             temperature: float = 1.0) -> torch.Tensor:
    """Group-wise softmax cross-entropy with the positive in column 0 (FlagEmbedding's reranker loss), plus
    kd_weight x `kd_term` when teacher scores are given.

    L = mean_b [ -log softmax(s_b)_0 ] + kd_weight * KD.   (FlagEmbedding: kd_weight = 1, T = 1.)
    """
    logits = logits.float()
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    loss = F.cross_entropy(logits, target)
    if teacher_scores is not None and kd_weight:
        loss = loss + kd_weight * kd_term(logits, teacher_scores.to(logits.device), temperature)
    return loss


def ranknet(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Pairwise RankNet (Burges et al., 2005) weighted by the label difference, within each group.

    L = sum_{b, i, j: y_bi > y_bj} (y_bi - y_bj) * log(1 + exp(-(s_bi - s_bj)))  /  sum_{same pairs} (y_bi - y_bj).
    A batch with no ordered pair gives 0 (with a gradient path, so accumulation never breaks).
    """
    s, y = logits.float(), labels.float().to(logits.device)
    diff_s = s.unsqueeze(-1) - s.unsqueeze(-2)  # [B, G, G]: s_i - s_j
    weight = (y.unsqueeze(-1) - y.unsqueeze(-2)).clamp(min=0)  # y_i - y_j where positive, else 0
    total = weight.sum()
    if total <= 0:
        return s.sum() * 0.0
    return (weight * F.softplus(-diff_s)).sum() / total


def listwise_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Listwise softmax cross-entropy (ListNet top-one with labels as the target distribution).

    p_b = y_b / sum_j y_bj;   L = mean over groups with sum_j y_bj > 0 of [ -sum_j p_bj log_softmax(s_b)_j ].
    With one positive of label 1 and negatives of 0 it equals group_ce without KD.
    """
    s, y = logits.float(), labels.float().to(logits.device).clamp(min=0)
    mass = y.sum(-1)
    keep = mass > 0
    if not bool(keep.any()):
        return s.sum() * 0.0
    p = y[keep] / mass[keep].unsqueeze(-1)
    return -(p * torch.log_softmax(s[keep], dim=-1)).sum(-1).mean()


POINTWISE = ("point_ce", "point_mse")
GROUPWISE = ("group_ce", "ranknet", "listwise_ce")
LOSSES = {"point_ce": point_ce, "point_mse": point_mse, "group_ce": group_ce, "ranknet": ranknet,
          "listwise_ce": listwise_ce}
