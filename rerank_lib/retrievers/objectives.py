"""The one place where a retriever trainer's loss settings become a loss call: LocalRQA's CTL, DCA and RPG, each a
function of the trainer's config (CTLConfig, DCAConfig, RPGConfig) and the batch's tensors, `LOSSES[method]`.

The formulas are tensor functions in rerank_lib.losses; what is bound here is which setting goes where.
"""
from __future__ import annotations

import torch

from ..losses import ctl_loss, kl_divergence


def ctl(config, queries: torch.Tensor, keys: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """CTL (LocalRQA trainers/retriever/retriever_trainer.py `_inbatch_contrastive_w_hardneg`): cross-entropy over
    q . k / tau with each question's gold passage as the label, tau = config.temperature (losses.ctl_loss)."""
    return ctl_loss(queries, keys, labels, config.temperature, mask)


def dca_scores(query_emb: torch.Tensor, passage_emb: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """(B, d) x (B, k, d) -> (B, k): q . p times `scale` (1/sqrt(d) by default, LocalRQA's FidRetrieverTrainer)."""
    scale = scale if scale is not None else query_emb.shape[-1] ** -0.5
    return torch.einsum("bd,bkd->bk", query_emb, passage_emb) * scale


def dca(config, queries: torch.Tensor, passages: torch.Tensor, reader_scores: torch.Tensor) -> torch.Tensor:
    """DCA (Izacard & Grave 2021; LocalRQA retriever_fid_trainer.py): KL(softmax(reader / T) || softmax(dca_scores))
    per question, T = config.reader_temperature, the retriever's scale config.score_scale (losses.kl_divergence)."""
    return kl_divergence(reader_scores, dca_scores(queries, passages, config.score_scale), config.reader_temperature,
                         1.0)


def rpg(config, lm_scores: torch.Tensor, retriever_scores: torch.Tensor) -> torch.Tensor:
    """RPG (REPLUG LSR, Shi et al. 2023; LocalRQA retriever_replug_trainer.py): KL(softmax(LM / T_lm) ||
    softmax(retriever / T_ret)), T_lm = config.lm_temperature, T_ret = config.retrieve_temperature; the two (B, k)
    tensors aligned passage by passage (losses.kl_divergence)."""
    return kl_divergence(lm_scores, retriever_scores, config.lm_temperature, config.retrieve_temperature)


#: method -> loss(config, *tensors)
LOSSES = {"ctl": ctl, "dca": dca, "rpg": rpg}
