"""Training examples from TrainGroups (the RAG-Retrieval / FlagEmbedding / HopWeaver lines) and the loss each
scorer trains them with: the one place where a scorer's loss setting becomes a loss call, with no recipe in it.

Pointwise losses (point_ce, point_mse; RAG-Retrieval): every (query, doc, label) pair is one example.
Group losses (group_ce, ranknet, listwise_ce; FlagEmbedding): one example is 1 positive + group_size-1 negatives
    drawn per pass with `sample_group` (seeded by config.seed, the pass and the group). The `num_epochs` passes are
    drawn up front and trained as one shuffled epoch (every pass has fresh negatives and resuming is exact).
kd_weight > 0 (group losses): adds kd_weight x losses.kd_term (FlagEmbedding's distillation term).
A loss of losses.TEACHER_TARGETS (logit_mse, soft_point_ce, the teacher_* group losses) trains on each pair's
teacher score (TrainGroup.teacher_scores) in place of its label.

The scorer (CrossEncoder, the LLM decoder reranker, the head-only probe) offers `model` (trained in place),
`encode_pairs(queries, docs)` -> unpadded feature dicts, `collate(features)` -> a padded batch (groups pad to
[B, G, L]) and `batch_logits(model, batch)` -> logits [N] for pairs, [B, G] for groups.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import torch

from ..data.pairs import TrainGroup, sample_group
from ..losses import GROUPWISE, LOSSES, POINTWISE, TEACHER_TARGETS, group_ce, kd_term
from .loop import TrainConfig, TrainResult, train

__all__ = ["GroupExamples", "GroupTraining", "batch_unit", "group_training", "head_param_groups", "fit", "target"]


class GroupExamples(torch.utils.data.Dataset):
    """Pre-drawn groups: example k is group `gi[k]` with docs `idx[k]` (positive first), features pre-encoded."""

    def __init__(self, encoded: list[list[dict]], groups: Sequence[TrainGroup], plan: list[tuple[int, list[int]]],
                 with_teacher: bool, on_teacher: bool = False):
        self.encoded, self.groups, self.plan, self.with_teacher = encoded, groups, plan, with_teacher
        self.on_teacher = on_teacher  # `target` holds the teacher's scores (losses.TEACHER_TARGETS)

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, k: int) -> dict:
        gi, idx = self.plan[k]
        feats = [self.encoded[gi][j] for j in idx]
        item = {key: [f[key] for f in feats] for key in feats[0]}
        item["target"] = [float(target(self.groups[gi], self.on_teacher)[j]) for j in idx]
        if self.with_teacher:
            item["teacher"] = [float(self.groups[gi].teacher_scores[j]) for j in idx]
        return item

    def length(self, k: int) -> int:
        gi, idx = self.plan[k]
        return sum(len(self.encoded[gi][j]["input_ids"]) for j in idx)


@dataclasses.dataclass
class GroupTraining:
    """The arguments of `training.train` (or `experiment.train_with_dev_selection`) for one loss on some groups:
    `config` is the caller's with the group losses' passes folded into one epoch; `train_options` holds the
    optimizer groups (head_lr) and the example lengths (length-grouped batches)."""

    dataset: Sequence
    collate_fn: Callable
    compute_loss: Callable
    config: TrainConfig
    train_options: dict
    passes: int
    run_info: dict

    def report_in_passes(self, result: TrainResult) -> TrainResult:
        """History rows report `epoch` in passes over the groups; run_info gains the loss, passes and pairs/step."""
        if self.passes > 1:
            for row in result.history + result.eval_history:
                row["epoch"] = round(row["epoch"] * self.passes, 4)
        result.run_info.update(self.run_info)
        return result


def target(group: TrainGroup, on_teacher: bool) -> list[float]:
    """What a loss trains each pair of `group` towards: its teacher score (losses.TEACHER_TARGETS) or its label."""
    return group.teacher_scores if on_teacher else group.labels


def _encode(ranker, groups: Sequence[TrainGroup]) -> list[list[dict]]:
    """Every (query, doc) of every group encoded once; examples only point into this."""
    flat = ranker.encode_pairs([g.query for g in groups for _ in g.docs], [d for g in groups for d in g.docs])
    encoded, pos = [], 0
    for g in groups:
        encoded.append(flat[pos:pos + len(g.docs)])
        pos += len(g.docs)
    return encoded


@dataclasses.dataclass(frozen=True)
class GroupObjective:
    """What a pair scorer learns from its groups: `loss` (one of LOSSES), `group_size` pairs per group for the group
    losses, the teacher term (`kd_weight` x soft CE at `kd_temperature`; 0: none), and `head_lr`, a separate
    learning rate for a freshly initialised classification head (None: the TrainConfig's for every weight)."""

    loss: str
    group_size: int = 8
    kd_weight: float = 0.0
    kd_temperature: float = 1.0
    head_lr: float | None = None


def group_training(ranker, groups: Sequence[TrainGroup], objective: GroupObjective, config: TrainConfig,
                   length_grouping: bool = True) -> GroupTraining:
    """Examples, collate_fn and compute_loss that train `ranker` on `groups` towards `objective`.

    config.per_device_batch_size counts pairs (pointwise losses) or groups (group losses)."""
    loss, group_size, kd_weight = objective.loss, objective.group_size, objective.kd_weight
    kd_temperature, head_lr = objective.kd_temperature, objective.head_lr
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    groups = [g for g in groups if g.docs]
    if not groups:
        raise ValueError("no training groups with documents")
    if kd_weight and loss in POINTWISE:
        raise ValueError("kd_weight applies to group losses (the KD term is over a group's softmax)")
    if kd_weight and any(g.teacher_scores is None for g in groups):
        raise ValueError("kd_weight > 0 needs teacher_scores on every group")
    on_teacher = loss in TEACHER_TARGETS
    if on_teacher and any(g.teacher_scores is None for g in groups):
        raise ValueError(f"loss {loss!r} trains on the teacher's scores: every group needs teacher_scores")
    encoded = _encode(ranker, groups)
    loss_fn = LOSSES[loss]
    if loss in POINTWISE:
        passes, run_config = 1, config
        dataset = [dict(encoded[gi][j], target=float(target(g, on_teacher)[j])) for gi, g in enumerate(groups)
                   for j in range(len(g.docs))]
        lengths = [len(ex["input_ids"]) for ex in dataset]

        def compute_loss(model, batch):
            return loss_fn(ranker.batch_logits(model, batch), batch["target"])
    else:
        passes = max(1, int(config.num_epochs))
        plan = [(gi, sample_group(g, group_size, config.seed, epoch, gi))
                for epoch in range(passes) for gi, g in enumerate(groups)]
        dataset = GroupExamples(encoded, groups, plan, with_teacher=bool(kd_weight), on_teacher=on_teacher)
        lengths = [dataset.length(k) for k in range(len(dataset))]
        run_config = dataclasses.replace(config, num_epochs=1)

        def compute_loss(model, batch):
            logits = ranker.batch_logits(model, batch)
            value = group_ce(logits) if loss == "group_ce" else loss_fn(logits, batch["target"])
            if kd_weight:
                value = value + kd_weight * kd_term(logits, batch["teacher"].to(logits.device), kd_temperature)
            return value

    options = {"optimizer_params": head_param_groups(ranker.model, config, head_lr) if head_lr else None,
               "lengths": lengths if length_grouping else None}
    pairs_per_group = group_size if loss in GROUPWISE else 1
    info = dict(loss=loss, passes=passes, examples=len(dataset), group_size=pairs_per_group, kd_weight=kd_weight,
                kd_temperature=kd_temperature, pairs_per_step=run_config.per_device_batch_size
                * run_config.gradient_accumulation_steps * pairs_per_group)
    return GroupTraining(dataset, ranker.collate, compute_loss, run_config, options, passes, info)


def batch_unit(loss: str, size: int, group_size: int) -> str:
    """What a batch of `size` examples holds for `loss`: pairs (pointwise losses) or groups of `group_size`."""
    return f"pair{'s' * (size != 1)}" if loss in POINTWISE else f"group{'s' * (size != 1)} of {group_size}"


def head_param_groups(model: torch.nn.Module, config: TrainConfig, head_lr: float) -> list[dict]:
    """AdamW groups: the encoder at config.learning_rate, the classification head (and pooler) at head_lr;
    weight decay on matrices only."""
    head_names = ("classifier", "score", "pooler")
    param_groups: dict[tuple, list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_head = any(part in name.split(".") for part in head_names)
        key = (head_lr if is_head else config.learning_rate, config.weight_decay if p.ndim >= 2 else 0.0)
        param_groups.setdefault(key, []).append(p)
    return [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in param_groups.items()]


def fit(ranker, groups: Sequence[TrainGroup], objective: GroupObjective, config: TrainConfig,
        eval_fn: Callable | None = None, restore_best: bool = True, length_grouping: bool = True) -> TrainResult:
    """`group_training` run through `training.train` for callers without the experiment layer: eval_fn(ranker)
    -> {metric: value}; with restore_best the ranker ends with the best evaluation's weights (`load_weights`).
    Recipes train through `experiment.train_with_dev_selection` with `group_training`'s pieces instead."""
    plan = group_training(ranker, groups, objective, config, length_grouping)
    wrapped_eval = (lambda model: eval_fn(ranker)) if eval_fn is not None else None
    result = train(ranker.model, plan.dataset, plan.collate_fn, plan.compute_loss, plan.config, eval_fn=wrapped_eval,
                   **plan.train_options)
    plan.report_in_passes(result)
    if restore_best and result.best_dir is not None:
        ranker.load_weights(result.best_dir)
    ranker.model.eval()
    return result
