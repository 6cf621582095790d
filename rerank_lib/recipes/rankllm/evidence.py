"""Evidence for a student that stays at its start: a recipe search on the first fold's dev slice and a
memorisation probe (does the model fit the windows it trained on)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pandas as pd
import torch

from ...listwise import ListwiseLM, ListwiseObjective, encode_conversation, identifier_token_ids
from ...listwise.objectives import first_position_mask
from ...paths import cache_dir
from ...training import TrainConfig, pad_collate, train
from ...experiment import Timer
from .data import FoldData, fold_data
from .models import load_lm, use_letters
from .settings import MEASURE, RankLLMConfig
from .training import Trained, _freeze_below, train_objective


# Variants tried on the first fold's dev slice beside the main recipe (overrides of the config). Default: the FIRST
# ranking objective alone, on 10-passage windows (~3 s a step instead of ~7), from a low to a high learning rate,
# in BM25 order and shuffled (RankVicuna's augmentation, so that copying the input order no longer lowers the loss).
SEARCH_GRIDS: dict[str, list[dict]] = {
    "smoke": [{"learning_rate": 1e-3, "max_steps": 2, "eval_every_steps": 1, "save_every_steps": 1}],
    "default": [
        {"learning_rate": lr, "train_window": 10, "shuffle_inputs": shuffled, "max_steps": 60, "warmup_steps": 5,
         "eval_every_steps": 20, "save_every_steps": 20}
        for lr, shuffled in ((1e-5, False), (1e-4, False), (5e-5, True))
    ],
    "paper": [],  # the published recipe is the experiment
}


def search_grid(cfg: RankLLMConfig) -> list[dict]:
    return SEARCH_GRIDS.get(cfg.profile, [])


def _variant_label(overrides: dict) -> str:
    keys = {"learning_rate": "lr", "train_window": "window", "max_steps": "steps"}
    parts = [f"{keys[k]}={v:g}" if isinstance(v, float) else f"{keys[k]}={v}"
             for k, v in overrides.items() if k in keys]
    if overrides.get("shuffle_inputs"):
        parts.append("shuffled")
    return " ".join(parts)


def recipe_search(cfg: RankLLMConfig, results_dir, grid: list[dict], objective: str = "ranking",
                  start_dev: dict | None = None) -> tuple[list[Trained], pd.DataFrame]:
    """Train `objective` once per override set of `grid` on the first fold (checkpoints chosen on its dev slice,
    never on a test year) and tabulate each dev curve against the untrained model: where no recipe lifts the dev
    slice, the main rows staying at their start is what the model does, not a recipe left untried."""
    if not grid:
        return [], pd.DataFrame()
    train_on, evaluate_on = cfg.folds[0]
    runs, rows = [], []
    for overrides in grid:
        variant = replace(cfg, **overrides)
        fold = fold_data(variant, train_on, evaluate_on, results_dir)
        tr = train_objective(variant, fold, objective, start_dev)  # None: it scores the untrained model once
        start_dev = tr.start_dev
        tr.label = _variant_label(overrides)
        runs.append(tr)
        hist = [row[f"dev_{MEASURE}"] for row in tr.result.eval_history]
        rows.append({"variant": tr.label, "objective": objective, "conversations": len(fold.conversations),
                     "steps": tr.result.global_step, f"dev {MEASURE} start": start_dev[f"dev_{MEASURE}"],
                     f"dev {MEASURE} best": tr.result.best_metric, "best step": tr.result.best_step,
                     f"dev {MEASURE} last": hist[-1] if hist else None, "seconds": round(tr.wall_s)})
    return runs, pd.DataFrame(rows).round(4)


def memorisation_probe(cfg: RankLLMConfig, fold: FoldData, n: int = 16, passes: int = 3,
                       learning_rate: float = 1e-4, max_passages: int | None = 10) -> pd.DataFrame:
    """Can the student fit its own training windows? FIRST ranking loss on `n` of the fold's conversations (3 to
    `max_passages` passages) for `passes` passes (no NEFTune, constant lr), then Kendall tau between the model's
    identifier-logit order and the teacher's order on those same conversations, before and after, beside the
    input order's tau. Tells a student that cannot learn (broken loss, frozen weights, too low a rate) from one that
    learns the windows it sees but does not generalise from them (flat dev curves)."""
    from scipy.stats import kendalltau

    model, tokenizer = load_lm(cfg, cfg.model)
    alpha = use_letters(cfg, tokenizer)
    n_max = max(c["num_passages"] for c in fold.conversations)
    ident = identifier_token_ids(tokenizer, max(cfg.window, cfg.train_window, n_max), alpha, cfg.chat_template)
    convs = [c for c in fold.conversations if 3 <= c["num_passages"] <= (max_passages or n_max)][:n]
    if not convs:
        raise ValueError(f"no conversation of 3..{max_passages or n_max} passages in the fold")
    examples = [encode_conversation(c, tokenizer, "ranking", cfg.chat_template, max_length=cfg.context_size)
                for c in convs]
    lm = ListwiseLM(model)
    objective = ListwiseObjective("ranking", ident, ranking=cfg.ranking_loss, weighted=cfg.weighted)

    def agreement() -> float:  # the training loss's own FIRST scores of each window, against the teacher ranks
        model.eval()
        taus = []
        with torch.no_grad():
            for e in examples:
                ids = torch.tensor([e["input_ids"]], device=next(model.parameters()).device)
                select = first_position_mask(torch.tensor([e["first_pos"]], device=ids.device), ids.shape)
                first = lm(ids, select=select)
                scores = objective.scores(first, [e["n_passages"]])[0]
                taus.append(kendalltau((-scores.float()).cpu().numpy(), e["ranks"][: e["n_passages"]]).statistic)
        return float(sum(taus) / len(taus))

    input_tau = sum(kendalltau(list(range(e["n_passages"])), e["ranks"][: e["n_passages"]]).statistic
                    for e in examples) / len(examples)
    before = agreement()
    _freeze_below(model, cfg.train_layers)
    blob = json.dumps([cfg.seed, n, passes, learning_rate, cfg.train_layers, cfg.model, [c["id"] for c in convs]])
    out = cache_dir("checkpoints", "rankllm", cfg.profile, f"probe-{hashlib.sha1(blob.encode()).hexdigest()[:10]}")
    tc = TrainConfig(output_dir=str(out), seed=cfg.seed, learning_rate=learning_rate, num_epochs=passes,
                     per_device_batch_size=1, gradient_accumulation_steps=1, warmup_steps=0, lr_scheduler="constant",
                     mixed_precision=cfg.mixed_precision, log_every_steps=1, save_every_steps=len(examples),
                     keep_last_checkpoints=1)
    with Timer() as t:
        result = train(lm, examples, pad_collate(tokenizer, padding_side="right"), objective, tc)
    after = agreement()
    return pd.DataFrame([{"conversations": len(examples), "passes": passes, "steps": result.global_step,
                          "learning_rate": learning_rate, "input-order tau": round(input_tau, 3),
                          "model tau before": round(before, 3), "model tau after": round(after, 3),
                          "seconds": round(t.s)}])
