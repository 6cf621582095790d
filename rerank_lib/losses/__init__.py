"""Every training loss of the library, by family; each a small function over tensors that imports only torch,
with its formula, its source and its input shapes in the docstring, and a hand-computed test (tests/test_losses.py).

pointwise.py      point_ce, point_mse (RAG-Retrieval), soft_point_ce (point CE on a teacher's probabilities)
pairwise.py       ranknet (label-difference weighted, cross-encoder groups), ranknet_loss (FIRST windows)
listwise.py       group_ce (FlagEmbedding), listwise_ce, and rank_llm's listnet_loss, lambdarank_loss,
                  ranking_loss, generation_loss; teacher_ranknet, teacher_weighted_ranknet, teacher_listnet
                  (rank_llm's RankNet / ListNet per group against a teacher's scores)
distillation.py   kd_term (FlagEmbedding), kl_divergence (LocalRQA DCA / RPG), center + distillation_loss (InRanker),
                  logit_mse (InRanker's loss for a one-logit scorer)
contrastive.py    ctl_loss (LocalRQA CTL, in-batch InfoNCE with hard negatives)

A loss setting becomes a loss call in one place per family: `training/groups.py` for the scorers (cross-encoders,
LLM-decoder heads), over `LOSSES` (POINTWISE: logits and labels [N]; GROUPWISE: logits and labels [B, G]), and
`listwise/objectives.py` for the listwise LLMs, over `RANKING_LOSSES`. The losses of `TEACHER_TARGETS` take a
teacher's scores (calibrated margins, FlagEmbedding's pos/neg_scores) where the others take the labels.
"""
from .contrastive import ctl_loss
from .distillation import center, distillation_loss, kd_term, kl_divergence, logit_mse
from .listwise import (
    RANKING_LOSSES,
    generation_loss,
    group_ce,
    lambdarank_loss,
    listnet_loss,
    listwise_ce,
    ranking_loss,
    self_sorted_targets,
    teacher_listnet,
    teacher_ranknet,
    teacher_ranks,
    teacher_weighted_ranknet,
)
from .pairwise import ranknet, ranknet_loss
from .pointwise import point_ce, point_mse, soft_point_ce

POINTWISE = ("point_ce", "point_mse", "logit_mse", "soft_point_ce")
GROUPWISE = ("group_ce", "ranknet", "listwise_ce", "teacher_ranknet", "teacher_weighted_ranknet", "teacher_listnet")
LOSSES = {"point_ce": point_ce, "point_mse": point_mse, "group_ce": group_ce, "ranknet": ranknet,
          "listwise_ce": listwise_ce, "logit_mse": logit_mse, "soft_point_ce": soft_point_ce,
          "teacher_ranknet": teacher_ranknet, "teacher_weighted_ranknet": teacher_weighted_ranknet,
          "teacher_listnet": teacher_listnet}
#: the losses whose target is the teacher's score of each pair, not its label
TEACHER_TARGETS = ("logit_mse", "soft_point_ce", "teacher_ranknet", "teacher_weighted_ranknet", "teacher_listnet")

__all__ = [
    "GROUPWISE", "LOSSES", "POINTWISE", "RANKING_LOSSES", "TEACHER_TARGETS", "center", "ctl_loss",
    "distillation_loss", "generation_loss", "group_ce", "kd_term", "kl_divergence", "lambdarank_loss", "listnet_loss",
    "listwise_ce", "logit_mse", "point_ce", "point_mse", "ranking_loss", "ranknet", "ranknet_loss",
    "self_sorted_targets", "soft_point_ce", "teacher_listnet", "teacher_ranknet", "teacher_ranks",
    "teacher_weighted_ranknet",
]
