"""Knowledge-distillation losses: a student's scores pulled towards a teacher's.

- `kd_term`: FlagEmbedding's soft-label cross-entropy over a group (FlagEmbedding/abc/finetune/reranker/
  AbsModeling.py, AbsRerankerModel.forward); logits, teacher_scores [B, G].
- `kl_divergence`: KL(softmax(target / T_t) || softmax(student / T_s)), the loss of LocalRQA's DCA (Izacard &
  Grave, 2021) and RPG (REPLUG LSR, Shi et al., 2023) retriever trainers; target, student [B, k].
- `center` and `distillation_loss`: InRanker's (Laitz et al., 2024; unicamp-dl/InRanker) centred two-logit MSE;
  student and teacher logits [B, 2] = [false, true] first-step logits of monoT5.
- `logit_mse`: the same loss for a one-logit scorer (a cross-encoder): logits and teacher margins [N].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_term(logits: torch.Tensor, teacher_scores: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """FlagEmbedding's knowledge-distillation term, per group, averaged over groups; logits, teacher [B, G].

    KD = mean_b [ -sum_j softmax(t_b / T)_j * log_softmax(s_b)_j ].  FlagEmbedding uses T = 1 on raw teacher
    logits; T rescales teachers whose scores live on another scale (e.g. probabilities in [0, 1]).
    """
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    target = torch.softmax(teacher_scores.float().detach() / temperature, dim=-1)
    return -(target * torch.log_softmax(logits.float(), dim=-1)).sum(-1).mean()


def kl_divergence(target_scores: torch.Tensor, student_scores: torch.Tensor, target_temperature: float = 1.0,
                  student_temperature: float = 1.0) -> torch.Tensor:
    """KL(P_target || P_student) per row, averaged over rows, with P = softmax(scores / temperature); [B, k] each.

    KL = mean_b sum_j p_bj (log p_bj - log q_bj),  p = softmax(target / T_t), q = softmax(student / T_s).
    This is what LocalRQA's DCA and RPG compute (trainers/retriever/retriever_fid_trainer.py,
    retriever_replug_trainer.py) with `KLDivLoss()(log_softmax(student), softmax(target))`, the direction used by
    Izacard & Grave's code and by REPLUG implementations (REPLUG's paper writes the arguments the other way
    round). One deliberate difference: LocalRQA uses KLDivLoss's default reduction 'mean', which divides by
    rows x passages; this is the true KL per question ('batchmean'), i.e. k times larger for k passages (the same
    as LocalRQA's loss with a k times larger learning rate). The target gets no gradient.
    """
    if target_scores.shape != student_scores.shape:
        raise ValueError(f"target {tuple(target_scores.shape)} and student {tuple(student_scores.shape)} differ")
    target = F.softmax(target_scores.detach().float() / target_temperature, dim=-1)
    log_student = F.log_softmax(student_scores.float() / student_temperature, dim=-1)
    return F.kl_div(log_student, target, reduction="batchmean")


def center(labels):
    """InRanker's label centring, for a numpy array or a tensor [..., 2]: subtract each pair's mean,
    [f, t] -> [f - (f+t)/2, t - (f+t)/2] = [-(t-f)/2, (t-f)/2]. Only the margin t - f is left to match."""
    return labels - labels.mean(-1, keepdims=True)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """InRanker's loss: MSE between the student's [false, true] first-step logits and the teacher's (centred with
    `center` when the loader does), [B, 2] each.

    L = mean_{b, c} (s_bc - t_bc)^2 over the batch and the two logits (torch.nn.MSELoss() on [B, 2], as in the
    package's T5Trainer).
    """
    return F.mse_loss(student_logits.float(), teacher_logits.float())


def logit_mse(logits: torch.Tensor, teacher_margins: torch.Tensor) -> torch.Tensor:
    """InRanker's `distillation_loss` for a scorer with one logit per pair; logits, teacher_margins [N] (any shape).

    monoT5 scores a pair with two logits [false, true] and P(relevant) = softmax(.)_true = sigmoid(true - false); a
    one-logit cross-encoder's s plays the margin true - false (sigmoid(s) = P(relevant)). Its two-logit form is
    center([0, s]) = [-s/2, s/2], the teacher's [-m/2, m/2] (what InRanker's loader makes of the teacher's logits,
    and what teacher.Calibration.logits gives), and InRanker's MSE over the two logits is

    L = mean_i [ (-s_i/2 + m_i/2)^2 + (s_i/2 - m_i/2)^2 ] / 2 = mean_i (s_i - m_i)^2 / 4.

    Left out: InRanker centres the teacher only, so its loss also pulls monoT5's (false + true) / 2 towards 0, a
    degree of freedom a one-logit scorer does not have and that changes no ranking.
    """
    def pair(x: torch.Tensor) -> torch.Tensor:
        x = x.float().reshape(-1)
        return center(torch.stack([torch.zeros_like(x), x], dim=-1))

    return distillation_loss(pair(logits), pair(teacher_margins.to(logits.device)))
