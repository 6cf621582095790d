"""Training objectives of rank_llm's listwise trainer (castorini/rank_llm training/utils/{loss,train_utils}.py).

- `generation`: cross-entropy of the assistant answer ('[C] > [A] > ...' + EOS), prompt tokens masked; the mean
  over all answer tokens of the batch (rank_llm's compute_generation_loss with label smoothing 0).
- `ranking` (FIRST, Reddy et al. 2024): at the answer's first position (the input token is the opening '[', its
  logits predict the first identifier) the logits of the window's identifier tokens are scores; a learning-to-rank
  loss compares them with the teacher order. rank_llm's combined path reads that position (index = prompt
  length); its ranking-only path reads position 0 (`compute_ranking_loss(outputs, [label], [0], ...)`), i.e. the
  logits after the first prompt token; here both read the first answer position.
- `combined` = generation + lambda * ranking. rank_llm hard-codes lambda: 10 for weighted RankNet, 0.1 for ListNet,
  1 for LambdaRank (process_batch); `ranking_weight=None` keeps those, a number overrides them.

The tensor formulas (generation_loss, ranknet_loss / listnet_loss / lambdarank_loss through ranking_loss, and
self_sorted_targets, rank_llm's targets for ListNet and LambdaRank) live in rerank_lib.losses (pairwise.py,
listwise.py); this module picks the positions, assembles them and holds rank_llm's constants.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..losses import RANKING_LOSSES, generation_loss, ranking_loss

OBJECTIVES = ("generation", "ranking", "combined")
IGNORE_INDEX = -100  # labels of the prompt tokens; the cross-entropy's default ignore_index


def default_ranking_weight(ranking_loss: str, weighted: bool) -> float:
    """rank_llm's hard-coded lambda of the combined objective."""
    if ranking_loss == "listnet":
        return 0.1
    if ranking_loss == "ranknet" and weighted:
        return 10.0
    return 1.0


def answer_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(select mask [B, T] of the positions whose next token is an answer token, their targets [n])."""
    nxt = labels[:, 1:]
    keep = nxt != IGNORE_INDEX
    select = torch.zeros_like(labels, dtype=torch.bool)
    select[:, :-1] = keep
    return select, nxt[keep]


def first_position_mask(first_pos: torch.Tensor, shape) -> torch.Tensor:
    select = torch.zeros(shape, dtype=torch.bool, device=first_pos.device)
    select[torch.arange(shape[0], device=first_pos.device), first_pos] = True
    return select


@dataclass
class ListwiseObjective:
    """compute_loss(model, batch) for a ListwiseLM and batches of training_data.encode_conversation examples.

    identifier_ids: token id of each identifier ('A', 'B', ... or '1', '2', ...) right after '['.
    """

    objective: str = "generation"
    identifier_ids: Sequence[int] = ()
    ranking: str = "ranknet"
    weighted: bool = True
    ranking_weight: float | None = None  # None: rank_llm's constant for this ranking loss

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, not {self.objective!r}")
        if self.ranking not in RANKING_LOSSES:
            raise ValueError(f"ranking loss must be one of {RANKING_LOSSES}, not {self.ranking!r}")
        if self.objective != "generation" and not self.identifier_ids:
            raise ValueError("the ranking objectives need identifier_ids (prompts.identifier_token_ids)")
        self.lam = (default_ranking_weight(self.ranking, self.weighted) if self.ranking_weight is None
                    else float(self.ranking_weight))

    def scores(self, first_logits: torch.Tensor, n_passages: torch.Tensor) -> list[torch.Tensor]:
        ids = torch.as_tensor(list(self.identifier_ids), device=first_logits.device)
        return [first_logits[b, ids[: int(n)]] for b, n in enumerate(n_passages)]

    def rank_loss(self, first_logits: torch.Tensor, batch: dict) -> torch.Tensor:
        losses = []
        for b, s in enumerate(self.scores(first_logits, batch["n_passages"])):
            ranks = batch["ranks"][b, : s.numel()].to(s.device)
            losses.append(ranking_loss(s, ranks, self.ranking, self.weighted))
        return torch.stack(losses).mean()

    def parts(self, model, batch: dict) -> dict[str, torch.Tensor]:
        """The loss and its parts ('generation', 'ranking') for logging and tests."""
        input_ids, mask = batch["input_ids"], batch.get("attention_mask")
        if mask is not None and not bool(mask[:, 0].all()):
            raise ValueError("listwise batches must be padded on the right (first_pos counts from the start): "
                             "pad_collate(tokenizer, padding_side='right')")
        first_sel = first_position_mask(batch["first_pos"], input_ids.shape)
        out = {}
        if self.objective == "ranking":
            first_logits = model(input_ids, mask, select=first_sel)
            rank = self.rank_loss(first_logits, batch)
            out["ranking"] = rank
            out["loss"] = first_logits.sum() * 0.0 if torch.isnan(rank) else rank  # no pair to learn from
            return out
        gen_sel, targets = answer_positions(batch["labels"])
        if self.objective == "generation":
            out["generation"] = out["loss"] = generation_loss(model(input_ids, mask, select=gen_sel), targets)
            return out
        gen_logits, first_logits = model(input_ids, mask, select=[gen_sel, first_sel])
        gen = generation_loss(gen_logits, targets)
        rank = self.rank_loss(first_logits, batch)
        out["generation"], out["ranking"] = gen, rank
        out["loss"] = gen if torch.isnan(rank) else gen + self.lam * rank  # rank_llm skips a NaN ranking loss
        return out

    def __call__(self, model, batch: dict) -> torch.Tensor:
        return self.parts(model, batch)["loss"]


def full_logits_generation_loss(causal_lm, batch: dict) -> torch.Tensor:
    """The same generation loss the usual way (rank_llm's): full [B, T, vocab] logits, then the answer positions.
    For the benchmark and the equivalence test only."""
    logits = causal_lm(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")).logits
    labels = batch["labels"][:, 1:]
    return generation_loss(logits[:, :-1].reshape(-1, logits.shape[-1]), labels.reshape(-1))
