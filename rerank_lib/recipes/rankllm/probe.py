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
from .settings import PIPELINE, RankLLMConfig


def listwise_memorisation_probe(model, tokenizer, conversations: Sequence[dict], identifier_ids: list[int],
                                cfg: RankLLMConfig, passes: int = 3, learning_rate: float = 1e-4) -> pd.DataFrame:
    """FIRST ranking loss on `conversations` for `passes` passes (batch 1, no NEFTune, constant lr), then Kendall
    tau between the model's identifier-logit order and the teacher's order on those same conversations, before and
    after, beside the input order's tau (a one-row table). Trains `model` (`cfg.model`) in place, below
    `cfg.train_layers` frozen, with the recipe's ranking loss, context size and seed; its run directory is keyed by
    the profile, the model, the conversations' ids and the settings."""
    examples = [encode_conversation(c, tokenizer, "ranking", cfg.chat_template, max_length=cfg.context_size)
                for c in conversations]
    lm = ListwiseLM(model)
    objective = ListwiseObjective("ranking", identifier_ids, ranking=cfg.ranking_loss, weighted=cfg.weighted)

    input_tau, before = input_order_tau(examples), window_tau(lm, objective, examples)
    freeze_below(model, cfg.train_layers)
    tc = TrainConfig(seed=cfg.train.seed, learning_rate=learning_rate, num_epochs=passes, per_device_batch_size=1,
                     gradient_accumulation_steps=1, warmup_steps=0, lr_scheduler="constant", log_every_steps=1,
                     mixed_precision=cfg.train.mixed_precision, save_every_steps=len(examples), keep_last_checkpoints=1)
    path = run_dir(PIPELINE, cfg.profile, "probe", data=[c["id"] for c in conversations],
                   settings={"train": snapshot(tc), "model": cfg.model, "train_layers": cfg.train_layers})
    trained = train_with_dev_selection(lm, examples, pad_collate(tokenizer, padding_side="right"), objective,
                                       replace(tc, output_dir=str(path)), dev=None)
    after = window_tau(lm, objective, examples)
    return pd.DataFrame([{"conversations": len(examples), "passes": passes, "steps": trained.result.global_step,
                          "learning_rate": learning_rate, "input-order tau": round(input_tau, 3),
                          "model tau before": round(before, 3), "model tau after": round(after, 3),
                          "seconds": round(trained.wall_s)}])
