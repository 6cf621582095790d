"""A memorisation probe for a listwise student: can it fit the very windows it trains on? It tells a student that
cannot learn from one that learns but does not generalise."""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import pandas as pd

from ...experiment import run_dir, train_with_dev_selection
from ...listwise import ListwiseLM, ListwiseObjective, encode_conversation, freeze_below
from ...listwise.analysis import input_order_tau, window_tau
from ...settings import snapshot
from ...training import TrainConfig, pad_collate


def listwise_memorisation_probe(model, tokenizer, conversations: Sequence[dict], identifier_ids: list[int], *,
                                pipeline: str, profile: str, model_name: str, chat_template: str | None,
                                context_size: int, ranking_loss: str, weighted: bool, train_layers: int | None,
                                seed: int, mixed_precision: str, passes: int = 3,
                                learning_rate: float = 1e-4) -> pd.DataFrame:
    """FIRST ranking loss on `conversations` for `passes` passes (batch 1, no NEFTune, constant lr), then Kendall
    tau between the model's identifier-logit order and the teacher's order on those same conversations, before and
    after, beside the input order's tau (a one-row table). Trains `model` in place, below `train_layers` frozen;
    its run directory is keyed by `pipeline`, `profile`, `model_name`, the conversations' ids and the settings."""
    examples = [encode_conversation(c, tokenizer, "ranking", chat_template, max_length=context_size)
                for c in conversations]
    lm = ListwiseLM(model)
    objective = ListwiseObjective("ranking", identifier_ids, ranking=ranking_loss, weighted=weighted)

    input_tau, before = input_order_tau(examples), window_tau(lm, objective, examples)
    freeze_below(model, train_layers)
    tc = TrainConfig(seed=seed, learning_rate=learning_rate, num_epochs=passes, per_device_batch_size=1,
                     gradient_accumulation_steps=1, warmup_steps=0, lr_scheduler="constant", log_every_steps=1,
                     mixed_precision=mixed_precision, save_every_steps=len(examples), keep_last_checkpoints=1)
    path = run_dir(pipeline, profile, "probe", data=[c["id"] for c in conversations],
                   settings={"train": snapshot(tc), "model": model_name, "train_layers": train_layers})
    trained = train_with_dev_selection(lm, examples, pad_collate(tokenizer, padding_side="right"), objective,
                                       replace(tc, output_dir=str(path)), dev=None)
    after = window_tau(lm, objective, examples)
    return pd.DataFrame([{"conversations": len(examples), "passes": passes, "steps": trained.result.global_step,
                          "learning_rate": learning_rate, "input-order tau": round(input_tau, 3),
                          "model tau before": round(before, 3), "model tau after": round(after, 3),
                          "seconds": round(trained.wall_s)}])
