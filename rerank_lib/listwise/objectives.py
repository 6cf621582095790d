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

Ranking losses take one example's `scores` [n] and the teacher's `ranks` [n] (0 = best) of its n passages:
- `ranknet_loss`: BCE-with-logits on s_i - s_j for every pair the teacher orders i before j; weighted: each pair
  weighted by 1 / (r_i + r_j) with 1-based ranks (FirstMistral's weighted RankNet); mean over pairs.
- `listnet_loss` and `lambdarank_loss` need target *values*: rank_llm builds them from the model's own scores,
  sorted and handed out by teacher rank (`self_sorted_targets`); rank_llm lets gradients flow into those targets,
  here they are detached (a target is a constant).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

OBJECTIVES = ("generation", "ranking", "combined")
RANKING_LOSSES = ("ranknet", "listnet", "lambdarank")
IGNORE_INDEX = -100


def default_ranking_weight(ranking_loss: str, weighted: bool) -> float:
    """rank_llm's hard-coded lambda of the combined objective."""
    if ranking_loss == "listnet":
        return 0.1
    if ranking_loss == "ranknet" and weighted:
        return 10.0
    return 1.0


# ---------------------------------------------------------------------------------------------------------------
# Losses on scores (pure torch)
# ---------------------------------------------------------------------------------------------------------------

def generation_loss(answer_logits: torch.Tensor, answer_targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the answer tokens: logits [n_tokens, vocab] at the positions before each target."""
    return F.cross_entropy(answer_logits.float(), answer_targets)


def self_sorted_targets(scores: torch.Tensor, ranks: torch.Tensor) -> torch.Tensor:
    """rank_llm's target values: the model's scores sorted descending, the k-th largest given to the passage the
    teacher ranks k-th. Detached."""
    return scores.detach().sort(descending=True).values[ranks]


def ranknet_loss(scores: torch.Tensor, ranks: torch.Tensor, weighted: bool = False) -> torch.Tensor:
    """RankNet (Burges et al., 2005) over all teacher-ordered pairs; weighted by 1/(r_i + r_j), 1-based ranks."""
    scores, ranks = scores.float(), ranks.long()
    better = ranks[:, None] < ranks[None, :]  # [i, j]: the teacher puts i before j
    diffs = (scores[:, None] - scores[None, :])[better]
    losses = F.softplus(-diffs)  # BCE-with-logits of diff against target 1
    if weighted:
        r = (ranks + 1).float()
        losses = losses / (r[:, None] + r[None, :])[better]
    return losses.mean()


def listnet_loss(scores: torch.Tensor, targets: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """ListNet top-one cross-entropy: -sum softmax(targets) * log(softmax(scores) + eps)."""
    p_true = torch.softmax(targets.float(), dim=-1)
    return -(p_true * torch.log(torch.softmax(scores.float(), dim=-1) + eps)).sum()


def lambdarank_loss(scores: torch.Tensor, targets: torch.Tensor, eps: float = 1e-10, sigma: float = 1.0,
                    k: int | None = None) -> torch.Tensor:
    """LambdaRank as the LambdaLoss framework's NDCG-Loss2 scheme (Wang et al., 2018; allRank's lambdaLoss with
    weighing_scheme='ndcgLoss2_scheme', base-2 log, mean reduction), as rank_llm uses it. Gains are 2^target - 1."""
    scores, targets = scores.float(), targets.float()
    n = scores.numel()
    order = scores.argsort(descending=True)
    s_sorted = scores[order]
    t_by_pred = targets[order]
    t_ideal = targets.sort(descending=True).values
    true_diffs = t_by_pred[:, None] - t_by_pred[None, :]
    pairs = torch.isfinite(true_diffs) & (true_diffs > 0)
    at_k = torch.zeros(n, n, dtype=torch.bool, device=scores.device)
    at_k[:k, :k] = True
    t_by_pred, t_ideal = t_by_pred.clamp(min=0.0), t_ideal.clamp(min=0.0)
    discounts = torch.log2(1.0 + torch.arange(1, n + 1, device=scores.device, dtype=torch.float32))
    max_dcg = ((2.0 ** t_ideal - 1.0) / discounts)[:k].sum().clamp(min=eps)
    gains = (2.0 ** t_by_pred - 1.0) / max_dcg
    # NDCG-Loss2 weights: |1/D(|i-j|) - 1/D(|i-j|+1)| * |G_i - G_j|, zero on the diagonal
    pos = torch.arange(n, device=scores.device)
    delta = (pos[:, None] - pos[None, :]).abs()
    inv_d = 1.0 / torch.cat([discounts.new_ones(1), discounts])  # inv_d[m] = 1/D(m) with D(0) := 1 (unused)
    rank_weights = (inv_d[delta] - inv_d[delta + 1]).abs()
    rank_weights.fill_diagonal_(0.0)
    weights = rank_weights * (gains[:, None] - gains[None, :]).abs()
    diffs = (s_sorted[:, None] - s_sorted[None, :]).clamp(min=-1e8, max=1e8)
    probas = (torch.sigmoid(sigma * diffs).clamp(min=eps) ** weights).clamp(min=eps)
    return -torch.log2(probas)[pairs & at_k].mean()


def ranking_loss(scores: torch.Tensor, ranks: torch.Tensor, kind: str = "ranknet", weighted: bool = True) -> torch.Tensor:
    """One example's ranking loss from identifier scores [n] and teacher ranks [n]."""
    if kind == "ranknet":
        return ranknet_loss(scores, ranks, weighted=weighted)
    if kind == "listnet":
        return listnet_loss(scores, self_sorted_targets(scores, ranks))
    if kind == "lambdarank":
        return lambdarank_loss(scores, self_sorted_targets(scores, ranks))
    raise ValueError(f"ranking loss must be one of {RANKING_LOSSES}, not {kind!r}")


# ---------------------------------------------------------------------------------------------------------------
# The training step's loss: compute_loss(model, batch) for rerank_lib.training.train
# ---------------------------------------------------------------------------------------------------------------

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
    return F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                           ignore_index=IGNORE_INDEX)
