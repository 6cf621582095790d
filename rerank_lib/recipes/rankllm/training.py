"""Training: one objective of one fold through the shared loop (top layers only, NEFTune, the best dev
checkpoint kept), the untrained model's dev metrics, and every (fold, objective) of the config."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ...data.types import Run
from ...evaluation import evaluate
from ...listwise import ListwiseLM, ListwiseObjective, enable_neftune, encode_conversation, identifier_token_ids
from ...listwise.lm import body_and_head
from ...paths import cache_dir
from ...training import TrainConfig, TrainResult, pad_collate, train
from ...experiment import Timer
from .data import FoldData, fold_data
from .evalsets import rerank_set
from .models import load_lm, reranker, use_letters
from .settings import MEASURE, SELECT_ON, RankLLMConfig


@dataclass
class Trained:
    fold: FoldData
    objective: str
    base: str
    result: TrainResult
    model_dir: Path
    dev_runs: dict[str, Run]  # the dev reranking of the selected checkpoint
    start_dev: dict[str, float]  # dev metrics of the untrained model (step 0 of the learning curve)
    wall_s: float = 0.0
    label: str = ""  # names a recipe-search variant in curves and tables

    @property
    def name(self) -> str:
        return f"{self.fold.train_on}->{self.fold.evaluate_on} {self.objective}" + (f" {self.label}" if self.label else "")


def _freeze_below(model, train_layers: int | None) -> int:
    """Train only the top `train_layers` decoder layers and the final norm (None: everything). Returns the number
    of trainable parameters. Frozen lower layers need no backward pass: a CPU step costs ~1.5 forwards, not 3."""
    if train_layers is None:
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    body, _ = body_and_head(model)
    for p in model.parameters():
        p.requires_grad_(False)
    for module in [*body.layers[-train_layers:], body.norm]:
        for p in module.parameters():
            p.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _dev_eval(cfg, fold: FoldData, tokenizer, store: list):
    def eval_fn(model) -> dict[str, float]:
        rr = reranker(cfg, model, tokenizer, "first")
        runs, metrics = {}, {}
        for key in SELECT_ON:  # the training year's dev slice picks checkpoints (SciFact dev: interpolation only)
            es = fold.dev[key]
            runs[key], _ = rerank_set(rr, es, cfg, progress=False)
            metrics[f"{key}_{MEASURE}"] = evaluate(runs[key], es.dataset.qrels, [MEASURE])[MEASURE]
        metrics[f"dev_{MEASURE}"] = sum(metrics.values()) / len(metrics)
        store.append(runs)
        return metrics
    return eval_fn


def _run_dir(cfg: RankLLMConfig, fold: FoldData, objective: str, base: str) -> Path:
    keys = ("seed", "train_window", "train_max_words", "n_variable", "shuffle_inputs", "scifact_train_queries", "ranking_loss", "weighted",
            "ranking_weight", "noise_alpha", "learning_rate", "num_epochs", "max_steps", "batch_size",
            "gradient_accumulation_steps", "warmup_steps", "lr_scheduler", "weight_decay", "mixed_precision",
            "train_layers", "eval_every_steps", "depth", "window", "max_words", "dev_scifact_queries")
    blob = json.dumps({k: getattr(cfg, k) for k in keys} | {"base": base, "n": len(fold.conversations)}, sort_keys=True)
    digest = hashlib.sha1(blob.encode()).hexdigest()[:10]
    return cache_dir("checkpoints", "rankllm", cfg.profile, f"{fold.train_on}-{objective}-{digest}")


def train_objective(cfg: RankLLMConfig, fold: FoldData, objective: str, start_dev: dict | None = None) -> Trained:
    """Fine-tune the objective's base model on the fold's conversations with the shared loop; keep the best dev
    checkpoint (FIRST reranking of the dev slices, nDCG@10)."""
    base = {"generation": cfg.generation_model, "combined": cfg.combined_model}.get(objective) or cfg.model
    model, tokenizer = load_lm(cfg, base)
    alpha = use_letters(cfg, tokenizer)
    ident = identifier_token_ids(tokenizer, max(cfg.window, cfg.train_window), alpha, cfg.chat_template)
    examples = [encode_conversation(c, tokenizer, objective, cfg.chat_template, max_length=cfg.context_size)
                for c in fold.conversations]
    lm = ListwiseLM(model)
    store: list = []
    eval_fn = _dev_eval(cfg, fold, tokenizer, store)
    if start_dev is None:
        model.eval()
        with torch.no_grad():
            start_dev = eval_fn(lm)
        store.clear()
    _freeze_below(model, cfg.train_layers)
    hook = enable_neftune(lm, cfg.noise_alpha)
    out = _run_dir(cfg, fold, objective, base)
    tc = TrainConfig(
        output_dir=str(out), seed=cfg.seed, learning_rate=cfg.learning_rate, num_epochs=cfg.num_epochs,
        max_steps=cfg.max_steps, per_device_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, warmup_steps=cfg.warmup_steps,
        lr_scheduler=cfg.lr_scheduler, weight_decay=cfg.weight_decay, mixed_precision=cfg.mixed_precision,
        gradient_checkpointing=cfg.gradient_checkpointing, save_every_steps=cfg.save_every_steps,
        keep_last_checkpoints=1, log_every_steps=1, eval_every_steps=cfg.eval_every_steps,
        metric_for_best=f"dev_{MEASURE}", save_best=True)
    loss = ListwiseObjective(objective, ident or (), ranking=cfg.ranking_loss, weighted=cfg.weighted,
                             ranking_weight=cfg.ranking_weight)
    with Timer() as t:
        result = train(lm, examples, pad_collate(tokenizer, padding_side="right"), loss, tc, eval_fn=eval_fn,
                       lengths=[len(e["input_ids"]) for e in examples])
    if hook is not None:
        hook.remove()
    model_dir = result.best_dir or result.final_dir
    # dev runs of the selected checkpoint (kept from its evaluation when this process ran it, else recomputed)
    evals = [row for row in result.eval_history]
    dev_runs = None
    if len(store) == len(evals) and result.best_step is not None:
        dev_runs = store[[row["step"] for row in evals].index(result.best_step)]
    if dev_runs is None:
        best, _ = load_lm(cfg, str(model_dir), tokenizer_from=base)
        rr = reranker(cfg, best, tokenizer, "first")
        dev_runs = {k: rerank_set(rr, fold.dev[k], cfg, progress=False)[0] for k in SELECT_ON}
    return Trained(fold, objective, base, result, Path(model_dir), dev_runs, start_dev, t.s)


def start_dev_metrics(cfg: RankLLMConfig, fold: FoldData) -> dict[str, float]:
    """Dev metrics of the untrained model on a fold's dev slices (step 0 of both objectives' curves)."""
    model, tokenizer = load_lm(cfg, cfg.model)
    with torch.no_grad():
        return _dev_eval(cfg, fold, tokenizer, [])(ListwiseLM(model))


def train_all(cfg: RankLLMConfig, results_dir) -> list[Trained]:
    """Every (fold, objective) of the config, with the untrained model's dev metrics computed once per fold."""
    trained = []
    for train_on, evaluate_on in cfg.folds:
        fold = fold_data(cfg, train_on, evaluate_on, results_dir)
        print(fold.describe())
        start = start_dev_metrics(cfg, fold) if all(
            ({"generation": cfg.generation_model, "combined": cfg.combined_model}.get(o) or cfg.model) == cfg.model
            for o in cfg.objectives) else None
        for objective in cfg.objectives:
            tr = train_objective(cfg, fold, objective, start)
            print(f"{tr.name}: {tr.result.global_step} steps in {tr.wall_s:.0f} s, dev {MEASURE} "
                  f"{tr.start_dev[f'dev_{MEASURE}']:.3f} -> {tr.result.best_metric:.3f} (best step {tr.result.best_step})")
            trained.append(tr)
    return trained
