"""Fine-tune a pair scorer (a cross-encoder, an LLM reranker) from TrainGroups, or a bi-encoder from a trainer's
examples, with dev selection: the loop through `train_with_dev_selection`, and the model left holding the selected
weights (the untrained start's when step 0 won on dev)."""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from ..data.pairs import TrainGroup
from ..settings import snapshot
from ..training import TrainConfig
from ..training.groups import GroupObjective, group_training
from .dev import DevEvaluator
from .run_dir import RunName, calling_module, run_dir
from .selection import Selected, train_with_dev_selection


def train_scorer(ranker, groups: Sequence[TrainGroup], dev: DevEvaluator, objective: GroupObjective,
                 config: TrainConfig) -> Selected:
    """`ranker` (model, encode_pairs, collate, batch_logits, load_weights) trained on `groups` towards `objective`
    (`training.groups.group_training`); `dev` scores it (build it with `as_ranker=lambda _: ranker`). History rows
    report epochs in passes over the groups."""
    plan = group_training(ranker, groups, objective, config)

    def load_selected(folder):
        ranker.load_weights(folder)
        return ranker.model

    selected = train_with_dev_selection(ranker.model, plan.dataset, plan.collate_fn, plan.compute_loss, plan.config,
                                        dev, load_selected=load_selected, **plan.train_options)
    plan.report_in_passes(selected.result)  # the curve too: its rows were copied before the history was rescaled
    selected = replace(selected, curve=[{k: v for k, v in row.items() if k != "kind"}
                                        for row in selected.result.eval_history])
    load_selected(selected.model_dir)
    ranker.model.eval()
    return selected


def train_encoder_in_run_dir(encoder, dataset: Sequence, collate_fn, compute_loss, config: TrainConfig,
                             dev: DevEvaluator, run: RunName) -> Selected:
    """Train a bi-encoder's transformer (`encoder.model`, a retrievers.BiEncoder) in the run folder named by `run`,
    the number of examples, the dev questions and the code version of the calling recipe, with a batch never larger
    than the dataset; then load the dev-selected weights (the start's when step 0 won) into the encoder, with its
    tokenizer beside them."""
    from ..retrievers.training import load_weights

    folder = run_dir(run.pipeline, run.profile, run.name, data={"examples": len(dataset), "dev": sorted(dev.qrels)},
                     settings={**run.settings, "train": snapshot(config)}, code=calling_module())
    config = replace(config, output_dir=str(folder),
                     per_device_batch_size=min(config.per_device_batch_size, len(dataset)))

    def load_selected(model_dir):
        load_weights(encoder, model_dir)
        return encoder.model

    selected = train_with_dev_selection(encoder.model, dataset, collate_fn, compute_loss, config, dev,
                                        load_selected=load_selected)
    load_selected(selected.model_dir)
    encoder.tokenizer.save_pretrained(selected.model_dir)
    return selected
