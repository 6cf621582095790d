"""Evidence for a student that stays at its start: a recipe search on the first fold's dev slice and a
memorisation probe (does the model fit the windows it trained on)."""
from __future__ import annotations

import pandas as pd

from ...experiment import selection_row
from .probe import listwise_memorisation_probe
from ...listwise import identifier_token_ids
from ...models import load_chat_lm
from ...settings import override
from .evalsets import use_letters
from .settings import RECIPE, RankLLMConfig
from .training import FoldData, Trained, fold_data, train_objective

def search_grid(cfg: RankLLMConfig) -> list[dict]:
    """Variants tried on the first fold's dev slice beside the main recipe (dotted overrides of the config): the
    profile's `grids:` in recipes/paper_profiles/rankllm.yaml, where each grid's reason is written."""
    return RECIPE.file.grids.get(cfg.profile, [])


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
    learns the windows it sees but does not generalise from them (flat dev curves). The probe itself is
    probe.listwise_memorisation_probe; this picks the model, identifiers and conversations."""
    model, tokenizer = load_chat_lm(cfg.model, cfg.chat_template)
    alpha = use_letters(cfg, tokenizer)
    n_max = max(c["num_passages"] for c in fold.conversations)
    ident = identifier_token_ids(tokenizer, max(cfg.window, cfg.train_window, n_max), alpha, cfg.chat_template)
    convs = [c for c in fold.conversations if 3 <= c["num_passages"] <= (max_passages or n_max)][:n]
    if not convs:
        raise ValueError(f"no conversation of 3..{max_passages or n_max} passages in the fold")
    return listwise_memorisation_probe(model, tokenizer, convs, ident, cfg, passes, learning_rate)
