"""Contrastive losses: in-batch negatives plus hard negatives (InfoNCE).

`ctl_loss` is LocalRQA's CTL retriever loss (trainers/retriever/retriever_trainer.py,
`_inbatch_contrastive_w_hardneg`): queries [B, d], keys [K, d] (the B gold passages, then the batch's sampled
hard negatives), labels [B] (the column of each query's gold key) and an optional mask [B, K] of keys to leave
out of a query's softmax (its other gold passages, which would be false negatives).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def ctl_loss(query_emb: torch.Tensor, key_emb: torch.Tensor, labels: torch.Tensor, temperature: float,
             mask: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy over q . k / tau, masked keys excluded, mean over the batch.

    L = -1/B sum_i log( exp(q_i . k_{l_i} / tau) / sum_{j not masked for i} exp(q_i . k_j / tau) ).
    """
    logits = query_emb @ key_emb.T / temperature
    if mask is not None:
        logits = logits.masked_fill(mask.to(logits.device), float("-inf"))
    return F.cross_entropy(logits, labels.to(logits.device))
