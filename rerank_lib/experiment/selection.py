"""Train with dev selection, the one way every recipe trains: the loop evaluates dev at step 0 (the untrained start
is a candidate) and keeps the best weights; this adds the selected step, the curve, the model and its dev run."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from ..data.types import Run
from ..paths import shown
from ..training import TrainConfig, TrainResult, process_state, saved_step, train
from .dev import DevEvaluator


@dataclass
class Selected:
    """A trained run and the checkpoint the dev slice chose (step 0 is the untrained start)."""

    result: TrainResult
    step: int | None  # the selected step; None when there was no dev evaluation
    metric: str | None
    value: float | None  # the selected checkpoint's own dev value
    model_dir: Path  # its weights (best/ holds the start when step 0 won)
    curve: list[dict] = field(default_factory=list)  # dev rows, step 0 first
    dev_run: Run | None = None  # the selected checkpoint's dev run
    wall_s: float = 0.0

    @property
    def train_s(self) -> float:
        """Training wall seconds (the loop's own clock, dev evaluations included): for a run found finished on disk
        (a notebook run again, a run trained under `accelerate launch` first) what its training took, not the seconds
        spent loading it, which `wall_s` holds then."""
        return self.result.train_s if self.result.train_s is not None else self.wall_s

    @property
    def is_start(self) -> bool:
        return self.step == 0

    @property
    def start_value(self) -> float | None:
        return next((row[self.metric] for row in self.curve if row["step"] == 0), None) if self.metric else None

    @property
    def step_s(self) -> float | None:
        """Seconds per optimizer step on the training log's clock (which survives resumes and cached runs): the
        median over consecutive logged steps, so the steps that also ran a dev evaluation or a checkpoint move it
        little; None with fewer than two logged steps."""
        rows = self.result.history
        rates = [(b["elapsed_s"] - a["elapsed_s"]) / (b["step"] - a["step"]) for a, b in zip(rows, rows[1:])
                 if b["step"] > a["step"] and "elapsed_s" in a and "elapsed_s" in b]
        return float(statistics.median(rates)) if rates else None

    def describe(self) -> str:
        if self.step is None:
            return f"{self.result.global_step} steps (no dev selection)"
        chosen = "the untrained start" if self.is_start else f"step {self.step}"
        return (f"{self.result.global_step} steps in {self.wall_s:.0f} s; dev {self.metric} "
                f"{self.start_value:.4f} at the start -> {self.value:.4f} selected ({chosen})")


def train_with_dev_selection(model, train_dataset: Sequence, collate_fn: Callable, compute_loss: Callable,
                             config: TrainConfig, dev: DevEvaluator | None, *,
                             load_selected: Callable[[Path], Any] | None = None, **train_options) -> Selected:
    """`training.train` with `dev` as its eval_fn, then the selected checkpoint: its step, curve and dev run.
    load_selected(model_dir) returns what `dev.produce` accepts, loaded with the selected weights; it is called only
    when that checkpoint's dev run is not at hand (a resumed or cached run). `train_options` go to `training.train`.
    """
    if dev is not None and config.eval_every_steps is None and not config.eval_at_start:
        config = replace(config, eval_at_start=True)
    start = time.perf_counter()
    result = train(model, train_dataset, collate_fn, compute_loss, config, eval_fn=dev, **train_options)
    wall = time.perf_counter() - start
    if result.cached and process_state().is_main_process:
        print(cached_run_line(result))
    if dev is None or result.best_step is None:
        return Selected(result, None, None, None, result.final_dir, wall_s=wall)
    curve = [{k: v for k, v in row.items() if k != "kind"} for row in result.eval_history]
    model_dir = result.best_dir or result.final_dir
    held = saved_step(model_dir)
    if held != result.best_step:  # never a record that names one checkpoint with the weights of another
        raise RuntimeError(f"{shown(model_dir)} holds the weights of "
                           f"{'no intact step' if held is None else f'step {held}'}, not those of step "
                           f"{result.best_step} that the dev slice selected; train again with resume=False "
                           "(or delete the folder)")
    dev_run = dev.run_at(result.eval_history, result.best_step)
    if dev_run is None and load_selected is not None:
        dev_run = dev.produce(load_selected(model_dir))
    return Selected(result, result.best_step, result.metric_for_best, result.best_metric, Path(model_dir), curve,
                    dev_run, wall)


def cached_run_line(result: TrainResult) -> str:
    """The one line a notebook shows for a run found finished on disk (loaded, not trained again)."""
    run_dir = shown(result.final_dir.parent)
    if result.best_step is None:
        return f"training: cached run {run_dir} ({result.global_step} steps, no dev selection)"
    chosen = "the untrained start" if result.best_step == 0 else f"step {result.best_step}"
    return f"training: cached run {run_dir} ({chosen} of {result.global_step} selected)"
