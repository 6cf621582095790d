"""Fine-tune a pair scorer (a cross-encoder, an LLM reranker) from TrainGroups with dev selection: the examples and
loss of `training.groups`, the loop through `train_with_dev_selection`, and the scorer left holding the selected
weights (the untrained start's when step 0 won on dev)."""
from __future__ import annotations

from typing import Sequence

from ..data.pairs import TrainGroup
from ..training import TrainConfig
from ..training.groups import group_training
from .dev import DevEvaluator
from .selection import Selected, train_with_dev_selection


def train_scorer(ranker, groups: Sequence[TrainGroup], dev: DevEvaluator, *, loss: str, config: TrainConfig,
                 **group_options) -> Selected:
    """`ranker` (model, encode_pairs, collate, batch_logits, load_weights) trained on `groups` with `loss`;
    `dev` scores it (build it with `as_ranker=lambda _: ranker`); group_options go to `group_training` (group_size,
    kd_weight, kd_temperature, head_lr, length_grouping). History rows report epochs in passes over the groups."""
    plan = group_training(ranker, groups, loss=loss, config=config, **group_options)

    def load_selected(folder):
        ranker.load_weights(folder)
        return ranker.model

    selected = train_with_dev_selection(ranker.model, plan.dataset, plan.collate_fn, plan.compute_loss, plan.config,
                                        dev, load_selected=load_selected, **plan.train_options)
    plan.report_in_passes(selected.result)
    load_selected(selected.model_dir)
    ranker.model.eval()
    return selected
