"""Evidence for a student that stays at its start: a recipe search on the first fold's dev slice and a
memorisation probe (does the model fit the windows it trained on)."""
from __future__ import annotations

from dataclasses import replace

import pandas as pd

from ...experiment import run_dir, selection_row, train_with_dev_selection
from ...listwise import ListwiseLM, ListwiseObjective, encode_conversation, freeze_below, identifier_token_ids
from ...listwise.analysis import input_order_tau, window_tau
from ...models import load_chat_lm
from ...settings import override, snapshot
from ...training import TrainConfig, pad_collate
from .evalsets import use_letters
from .settings import PAPER, PIPELINE, RankLLMConfig
from .training import FoldData, Trained, fold_data, train_objective

#: Variants tried on the first fold's dev slice beside the main recipe, by profile (dotted overrides of the config):
#: the `grids:` of recipes/paper_profiles/rankllm.yaml, where each grid's reason is written.
SEARCH_GRIDS = PAPER.grids


def search_grid(cfg: RankLLMConfig) -> list[dict]:
    return SEARCH_GRIDS.get(cfg.profile, [])


def variant_label(overrides: dict) -> str:
    keys = {"train.learning_rate": "lr", "train_window": "window", "train.max_steps": "steps"}
    parts = [f"{keys[k]}={v:g}" if isinstance(v, float) else f"{keys[k]}={v}" for k, v in overrides.items() if k in keys]
    return " ".join(parts + (["shuffled"] if overrides.get("shuffle_inputs") else []))


def recipe_search(cfg: RankLLMConfig, results_dir, grid: list[dict], objective: str = "ranking"
                  ) -> tuple[list[Trained], pd.DataFrame]:
    """Train `objective` once per override set of `grid` on the first fold (checkpoints chosen on its dev slice,
    the untrained start included, never on a test year) and tabulate each dev curve: where no variant lifts the
    dev slice above the start, the main rows staying at their start is what the model does, not a recipe left
    untried."""
    runs, rows = [], []
    for overrides in grid:
        variant = override(cfg, overrides)
        fold = fold_data(variant, *cfg.folds[0], results_dir)
        tr = train_objective(variant, fold, objective, label=variant_label(overrides))
        runs.append(tr)
        rows.append({"variant": tr.label, "objective": objective, "conversations": len(fold.conversations),
                     **selection_row(tr.selected, last=True)})
    return runs, pd.DataFrame(rows).round(4)


def memorisation_probe(cfg: RankLLMConfig, fold: FoldData, n: int = 16, passes: int = 3,
                       learning_rate: float = 1e-4, max_passages: int | None = 10) -> pd.DataFrame:
    """Can the student fit its own training windows? FIRST ranking loss on `n` of the fold's conversations (3 to
    `max_passages` passages) for `passes` passes (no NEFTune, constant lr), then Kendall tau between the model's
    identifier-logit order and the teacher's order on those same conversations, before and after, beside the
    input order's tau. Tells a student that cannot learn (broken loss, frozen weights, too low a rate) from one that
    learns the windows it sees but does not generalise from them (flat dev curves)."""
    model, tokenizer = load_chat_lm(cfg.model, cfg.chat_template)
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

    input_tau, before = input_order_tau(examples), window_tau(lm, objective, examples)
    freeze_below(model, cfg.train_layers)
    tc = TrainConfig(seed=cfg.train.seed, learning_rate=learning_rate, num_epochs=passes, per_device_batch_size=1,
                     gradient_accumulation_steps=1, warmup_steps=0, lr_scheduler="constant", log_every_steps=1,
                     mixed_precision=cfg.train.mixed_precision, save_every_steps=len(examples), keep_last_checkpoints=1)
    path = run_dir(PIPELINE, cfg.profile, "probe", data=[c["id"] for c in convs],
                   settings={"train": snapshot(tc), "model": cfg.model, "train_layers": cfg.train_layers})
    trained = train_with_dev_selection(lm, examples, pad_collate(tokenizer, padding_side="right"), objective,
                                       replace(tc, output_dir=str(path)), dev=None)
    after = window_tau(lm, objective, examples)
    return pd.DataFrame([{"conversations": len(examples), "passes": passes, "steps": trained.result.global_step,
                          "learning_rate": learning_rate, "input-order tau": round(input_tau, 3),
                          "model tau before": round(before, 3), "model tau after": round(after, 3),
                          "seconds": round(trained.wall_s)}])
