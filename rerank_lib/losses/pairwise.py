"""Pairwise losses: RankNet (Burges et al., 2005) over the ordered pairs of a list, in the two weightings the
papers use.

- `ranknet`: a cross-encoder group loss for graded labels: logits [B, G] and labels [B, G], each pair weighted by
  its label difference.
- `ranknet_loss`: FIRST's ranking loss (Reddy et al. 2024; rank_llm training/utils/loss.py, FirstMistral's
  weighted RankNet) over one window: scores [n] and teacher ranks [n] (0 = best), optionally weighted by
  1 / (r_i + r_j) with 1-based ranks.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def ranknet(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """RankNet within each group, weighted by the label difference; logits, labels: [B, G].

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


def ranknet_loss(scores: torch.Tensor, ranks: torch.Tensor, weighted: bool = False) -> torch.Tensor:
    """FIRST's RankNet over every pair the teacher orders; scores [n], ranks [n] (0 = best).

    L = mean_{(i, j): r_i < r_j} w_ij * log(1 + exp(-(s_i - s_j))),  w_ij = 1 / (r_i + r_j) with 1-based ranks
    when weighted, else 1 (BCE-with-logits of s_i - s_j against target 1). Mean over the pairs, as rank_llm.
    """
    scores, ranks = scores.float(), ranks.long()
    better = ranks[:, None] < ranks[None, :]  # [i, j]: the teacher puts i before j
    diffs = (scores[:, None] - scores[None, :])[better]
    losses = F.softplus(-diffs)
    if weighted:
        r = (ranks + 1).float()
        losses = losses / (r[:, None] + r[None, :])[better]
    return losses.mean()
