"""Listwise losses: a softmax over a whole list (a query's group of documents, or a window of passages).

Group losses of the cross-encoder (logits [B, G], B queries with G documents each):
- `group_ce`: FlagEmbedding's reranker loss (FlagEmbedding/abc/finetune/reranker/AbsModeling.py), the positive
  in column 0, plus the optional KD term of distillation.kd_term.
- `listwise_ce`: ListNet top-one (Cao et al., 2007) with graded labels as the target distribution.
- `teacher_ranknet`, `teacher_weighted_ranknet`, `teacher_listnet`: rank_llm's window losses applied to each group
  against a teacher's scores [B, G]: RankNet on the teacher's order (`teacher_ranks`), unweighted or weighted, and
  ListNet on the softmax of the teacher's scores.

rank_llm's listwise LLM losses (castorini/rank_llm training/utils/{loss,train_utils}.py; FIRST, Reddy et al.
2024), over one window's identifier scores [n] at the answer's first position:
- `listnet_loss`, `lambdarank_loss` on target values; `self_sorted_targets` builds those from the teacher ranks;
- `ranking_loss` picks one of them (or pairwise.ranknet_loss) by name;
- `generation_loss`: the token cross-entropy of the answer ('[C] > [A] > ...'), rank_llm's generation loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .distillation import kd_term
from .pairwise import ranknet_loss

RANKING_LOSSES = ("ranknet", "listnet", "lambdarank")


def group_ce(logits: torch.Tensor, teacher_scores: torch.Tensor | None = None, kd_weight: float = 1.0,
             temperature: float = 1.0) -> torch.Tensor:
    """Group-wise softmax cross-entropy with the positive in column 0 (FlagEmbedding's reranker loss), plus
    kd_weight x `kd_term` when teacher scores are given; logits (and teacher_scores) [B, G].

    L = mean_b [ -log softmax(s_b)_0 ] + kd_weight * KD.   (FlagEmbedding: kd_weight = 1, T = 1.)
    """
    logits = logits.float()
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    loss = F.cross_entropy(logits, target)
    if teacher_scores is not None and kd_weight:
        loss = loss + kd_weight * kd_term(logits, teacher_scores.to(logits.device), temperature)
    return loss


def listwise_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Listwise softmax cross-entropy (ListNet top-one with labels as the target distribution); [B, G] each.

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


def generation_loss(answer_logits: torch.Tensor, answer_targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the answer tokens: logits [n_tokens, vocab] at the positions before each target,
    targets [n_tokens] (rank_llm's compute_generation_loss with label smoothing 0). Targets of -100 are ignored.

    L = mean_t [ -log_softmax(z_t)_{y_t} ].
    """
    return F.cross_entropy(answer_logits.float(), answer_targets, ignore_index=-100)


def self_sorted_targets(scores: torch.Tensor, ranks: torch.Tensor) -> torch.Tensor:
    """rank_llm's target values for ListNet / LambdaRank: the model's scores [n] sorted descending, the k-th
    largest given to the passage the teacher ranks k-th (ranks [n], 0 = best). Detached (rank_llm lets gradients
    flow into them; here a target is a constant)."""
    return scores.detach().sort(descending=True).values[ranks]


def listnet_loss(scores: torch.Tensor, targets: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """ListNet top-one cross-entropy (Cao et al., 2007) as rank_llm writes it; scores, targets [n].

    L = -sum_j softmax(targets)_j * log(softmax(scores)_j + eps).
    """
    p_true = torch.softmax(targets.float(), dim=-1)
    return -(p_true * torch.log(torch.softmax(scores.float(), dim=-1) + eps)).sum()


def lambdarank_loss(scores: torch.Tensor, targets: torch.Tensor, eps: float = 1e-10, sigma: float = 1.0,
                    k: int | None = None) -> torch.Tensor:
    """LambdaRank as the LambdaLoss framework's NDCG-Loss2 scheme (Wang et al., 2018; allRank's lambdaLoss with
    weighing_scheme='ndcgLoss2_scheme', base-2 log, mean reduction), as rank_llm uses it; scores, targets [n].

    With documents sorted by score, G_i = (2^t_i - 1) / maxDCG@k, D(m) = log2(1 + m):
    L = mean_{(i, j) in top k, t_i > t_j} [ -log2( sigmoid(sigma (s_i - s_j)) ^ w_ij ) ],
    w_ij = |1/D(|i-j|) - 1/D(|i-j| + 1)| * |G_i - G_j|.
    """
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
    """One window's FIRST ranking loss from identifier scores [n] and teacher ranks [n] (0 = best): `kind` is
    'ranknet' (pairwise.ranknet_loss, `weighted` applies), 'listnet' or 'lambdarank' (on self_sorted_targets)."""
    if kind == "ranknet":
        return ranknet_loss(scores, ranks, weighted=weighted)
    if kind == "listnet":
        return listnet_loss(scores, self_sorted_targets(scores, ranks))
    if kind == "lambdarank":
        return lambdarank_loss(scores, self_sorted_targets(scores, ranks))
    raise ValueError(f"ranking loss must be one of {RANKING_LOSSES}, not {kind!r}")


def teacher_ranks(teacher_scores: torch.Tensor) -> torch.Tensor:
    """Each document's rank in the teacher's order within its list (0 = the teacher's best); [..., G] -> [..., G].
    Equal scores keep their order in the list (a stable sort)."""
    order = torch.sort(teacher_scores.float(), dim=-1, descending=True, stable=True).indices
    return torch.argsort(order, dim=-1)


def _per_group(loss, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The mean over groups of `loss(scores [G], target [G])`, as rank_llm averages its windows' losses."""
    logits, targets = logits.float(), targets.float().to(logits.device)
    return torch.stack([loss(s, t) for s, t in zip(logits, targets)]).mean()


def teacher_ranknet(logits: torch.Tensor, teacher_scores: torch.Tensor) -> torch.Tensor:
    """RankNet on the teacher's order, every ordered pair weighted 1: `ranking_loss(kind='ranknet',
    weighted=False)` per group on `teacher_ranks`, the mean over groups; logits, teacher_scores [B, G]."""
    return _per_group(lambda s, t: ranking_loss(s, teacher_ranks(t), "ranknet", weighted=False), logits, teacher_scores)


def teacher_weighted_ranknet(logits: torch.Tensor, teacher_scores: torch.Tensor) -> torch.Tensor:
    """rank_llm's weighted RankNet (FirstMistral's ranking loss) on the teacher's order: pair (i, j) weighted
    1 / (r_i + r_j) with 1-based teacher ranks, `ranking_loss(kind='ranknet', weighted=True)` per group, the mean
    over groups; logits, teacher_scores [B, G]."""
    return _per_group(lambda s, t: ranking_loss(s, teacher_ranks(t), "ranknet", weighted=True), logits, teacher_scores)


def teacher_listnet(logits: torch.Tensor, teacher_scores: torch.Tensor) -> torch.Tensor:
    """ListNet top-one (Cao et al., 2007) with the softmax of the teacher's scores as the target: `listnet_loss`
    per group (rank_llm's form, its eps included), the mean over groups; logits, teacher_scores [B, G].

    L = mean_b [ -sum_j softmax(t_b)_j log(softmax(s_b)_j + eps) ]   (= kd_term at T = 1, up to eps).
    """
    return _per_group(listnet_loss, logits, teacher_scores)
