"""The one training loop of the project.

Every pipeline (cross-encoder fine-tuning, monoT5 distillation, listwise LLM training, bi-encoder training) calls
`train()` with its own model, dataset, collate_fn and loss; the loop knows no paper and no model class.
What it promises, and tests/test_training.py checks:

- an interrupted run, resumed from its last checkpoint, ends with the same weights as an uninterrupted one;
- N processes at the same global batch end with the same weights as one process (up to float rounding);
- per_device_batch_size x gradient_accumulation_steps trains like one batch of their product.
- whatever a crash interrupts (a checkpoint, best/, final/), the next call's best/ and final/ hold the weights of
  the steps its log names, or it stops with a line saying which: both are written through a staging folder whose
  last file (saved.json) names the step and each file's checksum, best/ is brought back to the best step of the
  log a resume keeps, and a checkpoint whose files do not match their checksums is skipped for the one before
  (tests/test_crash_safety.py).

- a run that ended with a checkpoint at its last step is found finished by a later call with the same
  output_dir, in any number of processes: that call loads the weights and trains no further, so a notebook
  can evaluate what `accelerate launch ... -m rerank_lib.train` trained on several GPUs (a DeepSpeed or FSDP
  run's sharded state is not loaded outside its world: the weights are in output_dir/final and best).
  `$RERANK_CHECKPOINT_AT_END` (set by that command) makes every run end with such a checkpoint, even with
  save_every_steps None.

On several GPUs: `accelerate launch --config_file configs/accelerate/ddp.yaml -m rerank_lib.train PIPELINE ...`.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import DataLoaderConfiguration, DistributedType, broadcast_object_list, set_seed
from accelerate.utils.environment import parse_flag_from_env
from torch.utils.data import DataLoader
from rerank_lib.progress import tqdm
from transformers import get_scheduler

from rerank_lib.atomic import write_json, write_text
from rerank_lib.paths import shown
from rerank_lib.settings import SettingError, Settings, check_range, recording_reads, replay_reads, snapshot
from rerank_lib.training.checkpoints import (
    checkpoint_dir, checkpoint_is_good, drop_previous, latest_checkpoint, latest_good_checkpoint, list_checkpoints,
    mark_complete, mark_saved, place_saved, prune_checkpoints, read_state, recover_saved, saved_step, saving,
    staging_dir,
)
from rerank_lib.training.optimizers import OPTIMIZERS, build_optimizer, deepspeed_replaces_optimizer
from rerank_lib.training.precision import MIXED_PRECISIONS, resolve_mixed_precision
from rerank_lib.training.run_lock import holds_run_folder
from rerank_lib.training.sampling import EpochSampler

# Our names -> transformers.get_scheduler names ('constant' keeps the warmup when one is asked for).
SCHEDULERS = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}
LOG_FILE = "log.jsonl"
READS_FILE = "settings_read.json"  # the settings the training read (settings.recording_reads)


@dataclass
class TrainConfig(Settings):
    """Everything that decides a run; written to output_dir/train_config.json beside the log."""

    output_dir: str = ""  # set by the experiment layer (experiment.run_dir) when a recipe config nests this
    seed: int = 42
    learning_rate: float = 2e-5
    num_epochs: int = 1
    max_steps: int | None = None  # cap on optimizer steps: the run ends at min(num_epochs, max_steps)
    per_device_batch_size: int = 8
    gradient_accumulation_steps: int = 1  # global batch = per_device x processes x accumulation
    warmup_steps: int = 0
    warmup_ratio: float = 0.0  # used when warmup_steps is 0
    lr_scheduler: str = "linear"  # linear | cosine | constant
    weight_decay: float = 0.01  # AdamW; never applied to biases and norm weights
    optimizer: str = "adamw"  # adamw (torch) | adamw_8bit (bitsandbytes, the [gpu] extra; rank_llm's choice)
    max_grad_norm: float | None = 1.0
    mixed_precision: str = "auto"  # no | bf16 | fp16 | auto (see precision.resolve_mixed_precision)
    gradient_checkpointing: bool = False
    save_every_steps: int | None = 500  # None: no checkpoints, hence no resume
    keep_last_checkpoints: int | None = 2  # None keeps all
    log_every_steps: int = 10
    eval_every_steps: int | None = None  # None: evaluate at the end only
    eval_at_start: bool = True  # with eval_fn: evaluate the untrained start as step 0, a checkpoint candidate
    metric_for_best: str | None = None  # default: the first metric eval_fn returns
    greater_is_better: bool = True
    save_best: bool = True  # with eval_fn: keep the weights of the best evaluation in output_dir/best
    dataloader_num_workers: int = 0
    resume: bool = True  # False starts over and deletes output_dir's old checkpoints
    # accelerate trackers to log to as well as log.jsonl, e.g. ("tensorboard",) (offline, under output_dir);
    # any of accelerate.utils.LoggerType ('wandb', 'mlflow', ... need their package); () / None: none
    report_to: tuple[str, ...] | str | None = ()

    def __post_init__(self):
        """Types are checked by Settings (from the annotations); here the ranges, each error naming its setting.
        A step count or epoch count of 0 or less would train nothing (or, for max_steps 0, a whole epoch) while the
        run reports success, so it is refused; None stays 'unset' where the field allows it."""
        self.report_to = _tracker_names(self.report_to)
        if self.mixed_precision not in MIXED_PRECISIONS:
            raise SettingError("mixed_precision", f"must be one of {MIXED_PRECISIONS}, got {self.mixed_precision!r}")
        if self.optimizer not in OPTIMIZERS:
            raise SettingError("optimizer", f"must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.lr_scheduler not in SCHEDULERS:
            raise SettingError("lr_scheduler", f"must be one of {sorted(SCHEDULERS)}, got {self.lr_scheduler!r}")
        for name in ("num_epochs", "per_device_batch_size", "gradient_accumulation_steps", "log_every_steps"):
            check_range(name, getattr(self, name), minimum=1)
        for name in ("max_steps", "save_every_steps", "keep_last_checkpoints", "eval_every_steps"):
            check_range(name, getattr(self, name), minimum=1, allow_none=True)
        check_range("learning_rate", self.learning_rate, above=0)
        check_range("warmup_steps", self.warmup_steps, minimum=0)
        check_range("warmup_ratio", self.warmup_ratio, minimum=0, maximum=1)
        check_range("weight_decay", self.weight_decay, minimum=0)
        check_range("max_grad_norm", self.max_grad_norm, above=0, allow_none=True)
        check_range("dataloader_num_workers", self.dataloader_num_workers, minimum=0)
        check_range("seed", self.seed, minimum=0, maximum=2**32 - 1)  # what numpy seeds with


@dataclass
class TrainResult:
    """What a notebook needs after training; the same rows are in output_dir/log.jsonl."""

    global_step: int
    history: list[dict]  # one row per logged step: step, epoch, loss, lr, elapsed_s
    eval_history: list[dict]  # one row per evaluation: step, epoch and eval_fn's metrics
    final_dir: Path  # the trained model: save_pretrained() output, or model.pt (a state dict)
    last_checkpoint: Path | None
    best_metric: float | None = None
    best_step: int | None = None
    metric_for_best: str | None = None
    best_dir: Path | None = None  # the weights of best_step (save_best), for checkpoint selection on a dev set
    run_info: dict = field(default_factory=dict)  # num_processes, mixed_precision, global_batch, total_steps...
    cached: bool = False  # the run was found finished in output_dir: loaded, not trained
    train_s: float | None = None  # training wall seconds across resumes (a cached run: what its training took)


def _tracker_names(report_to) -> tuple[str, ...]:
    """report_to as a tuple of accelerate tracker names; a clear error for an unknown one."""
    from accelerate.utils import LoggerType

    if report_to is None:
        return ()
    names = (report_to,) if isinstance(report_to, str) else tuple(report_to)
    known = [t.value for t in LoggerType]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SettingError("report_to", f"unknown tracker(s) {unknown}; accelerate knows {known}")
    return names


@holds_run_folder  # one process (one world) trains in a run folder at a time
def train(
    model: torch.nn.Module,
    train_dataset: Sequence,
    collate_fn: Callable[[list], Any],
    compute_loss: Callable[[torch.nn.Module, Any], torch.Tensor],
    config: TrainConfig,
    eval_fn: Callable[[torch.nn.Module], dict[str, float]] | None = None,
    optimizer_params: Iterable | None = None,
    lengths: Sequence[int] | None = None,
) -> TrainResult:
    """Train `model` in place; resume from the newest complete checkpoint in config.output_dir if there is one.

    compute_loss(model, batch): a scalar, the mean over the batch's examples.
    eval_fn(model): {metric: value}, every eval_every_steps and at the end, in eval mode without grad, on the
        main process (on every process when the model is sharded: FSDP, ZeRO-3). The other processes wait for
        it, so on several GPUs keep it well under the process group's timeout (evaluate a dev subset).
    train_dataset: anything with len() and integer indexing (a list, a datasets.Dataset).
    optimizer_params: the optimizer's parameter groups (e.g. a higher learning rate for a fresh head); default: all
        trainable parameters, weight decay on matrices only.
    lengths: per-example token counts; when given, batches group examples of similar length (less padding).
    """
    if not config.output_dir:
        raise ValueError("TrainConfig.output_dir is empty: name the run's folder (experiment.run_dir does)")
    with recording_reads() as reads:
        result = _train(model, train_dataset, collate_fn, compute_loss, config, eval_fn, optimizer_params, lengths)
    reads_file = Path(config.output_dir) / READS_FILE
    if result.cached:  # nothing trained in this call: the settings read are those the training read
        saved = json.loads(reads_file.read_text(encoding="utf-8")) if reads_file.exists() else []
        replay_reads(saved)
    elif process_state().is_main_process:
        write_json(reads_file, sorted(map(list, reads)))
    return result


def _train(model, train_dataset, collate_fn, compute_loss, config, eval_fn, optimizer_params, lengths) -> TrainResult:
    accelerator = _new_accelerator(config)
    set_seed(config.seed)
    _let_deepspeed_clip(accelerator, config.max_grad_norm)
    _check_deepspeed_optimizer(accelerator, config.optimizer)
    if config.gradient_checkpointing:
        _enable_gradient_checkpointing(model)

    run = _Run(accelerator, model, train_dataset, collate_fn, config, optimizer_params, lengths)
    checkpoint = run.resume()
    run.open_log(resumed=checkpoint is not None)
    if eval_fn is not None and config.eval_at_start and not any(row["step"] == 0 for row in run.eval_history):
        run.evaluate_start(eval_fn)
    run.train_steps(compute_loss, eval_fn)
    return run.finish()


def _new_accelerator(config: TrainConfig) -> Accelerator:
    """A fresh accelerate state per call: a notebook may train twice in one kernel, with different precisions."""
    AcceleratorState._reset_state()
    GradientState._reset_state()
    # The DataLoader yields global batches which accelerate splits across processes, so which examples make up a
    # step, and the LR schedule, do not depend on the number of processes. Trackers (off by default) write under
    # output_dir: tensorboard's event files need no network.
    return Accelerator(mixed_precision=resolve_mixed_precision(config.mixed_precision),
                       gradient_accumulation_steps=config.gradient_accumulation_steps,
                       dataloader_config=DataLoaderConfiguration(split_batches=True),
                       log_with=list(config.report_to) or None,
                       project_dir=str(Path(config.output_dir)) if config.report_to else None)


def _let_deepspeed_clip(accelerator: Accelerator, max_grad_norm: float | None) -> None:
    """DeepSpeed clips inside its engine; give it our max_grad_norm unless the launcher's config set one."""
    if accelerator.distributed_type != DistributedType.DEEPSPEED:
        return
    ds_config = accelerator.state.deepspeed_plugin.deepspeed_config
    if ds_config.get("gradient_clipping", "auto") == "auto":
        ds_config["gradient_clipping"] = max_grad_norm or 0.0


def _check_deepspeed_optimizer(accelerator: Accelerator, optimizer: str) -> None:
    """An offloading DeepSpeed config trains with DeepSpeed's CPU Adam whatever optimizer it is given: refuse a
    choice that would silently not be used."""
    if accelerator.distributed_type != DistributedType.DEEPSPEED or optimizer == "adamw":
        return
    if deepspeed_replaces_optimizer(accelerator.state.deepspeed_plugin.deepspeed_config):
        raise ValueError(f"TrainConfig.optimizer={optimizer!r} would not be used: this DeepSpeed config offloads the "
                         "optimizer to CPU, and accelerate then trains with DeepSpeed's CPU Adam instead. Use "
                         "optimizer='adamw' (what the offloaded run computes) or a config without "
                         "offload_optimizer_device.")


class _Run:
    """One call of train(): the prepared model, optimizer and data, the position in the data, the log so far.

    train() calls its methods in order; they share this state as nanoGPT's train.py shares its globals.
    """

    def __init__(self, accelerator: Accelerator, model: torch.nn.Module, train_dataset: Sequence,
                 collate_fn: Callable, config: TrainConfig, optimizer_params: Iterable | None,
                 lengths: Sequence[int] | None):
        self.accelerator, self.config = accelerator, config
        self.output_dir = Path(config.output_dir)
        self.is_main = accelerator.is_main_process
        self.num_examples = len(train_dataset)

        # Data: each DataLoader batch is one global micro-batch; an epoch holds whole optimizer steps only.
        micro_batch = config.per_device_batch_size * accelerator.num_processes
        self.examples_per_step = micro_batch * config.gradient_accumulation_steps
        self.sampler = EpochSampler(self.num_examples, config.seed, step_size=self.examples_per_step,
                                    lengths=lengths, batch_size=micro_batch)
        if len(self.sampler) == 0:
            raise ValueError(f"{self.num_examples} examples cannot fill one step of {self.examples_per_step}")
        # The DataLoader draws a worker seed each time it is iterated; its own generator keeps that draw off the
        # global RNG, so a resumed run's dropout masks match the uninterrupted run's.
        dataloader = DataLoader(train_dataset, batch_size=micro_batch, sampler=self.sampler, drop_last=True,
                                collate_fn=collate_fn, num_workers=config.dataloader_num_workers,
                                pin_memory=accelerator.device.type == "cuda",
                                generator=torch.Generator().manual_seed(config.seed))
        steps_per_epoch = len(dataloader) // config.gradient_accumulation_steps
        self.total_steps = config.num_epochs * steps_per_epoch
        if config.max_steps:
            self.total_steps = min(self.total_steps, config.max_steps)
        warmup_steps = config.warmup_steps or math.ceil(config.warmup_ratio * self.total_steps)

        params = optimizer_params if optimizer_params is not None else _param_groups(model, config.weight_decay)
        optimizer = build_optimizer(config.optimizer, params, learning_rate=config.learning_rate,
                                    weight_decay=config.weight_decay)
        scheduler = get_scheduler(SCHEDULERS[config.lr_scheduler], optimizer, num_warmup_steps=warmup_steps,
                                  num_training_steps=self.total_steps)
        self.model, self.optimizer, self.dataloader, self.scheduler = accelerator.prepare(
            model, optimizer, dataloader, scheduler)
        self.run_info = dict(num_processes=accelerator.num_processes, mixed_precision=accelerator.mixed_precision,
                             global_batch=self.examples_per_step, steps_per_epoch=steps_per_epoch,
                             total_steps=self.total_steps)
        # The position in the data (resume() may move it), and what has been logged (open_log() reads it).
        self.global_step, self.epoch, self.batches_done, self.elapsed_before = 0, 0, 0, 0.0
        self.finished = False  # resume() found the run's checkpoint at its last step
        self.weights_loaded = True  # False: a finished sharded run of another world, its weights not loaded
        self.history: list[dict] = []
        self.eval_history: list[dict] = []

    def resume(self) -> Path | None:
        """Weights, optimizer, scheduler and RNG from the newest undamaged complete checkpoint, then the loop's
        position; best/ made to hold the weights of the best evaluation logged up to there."""
        checkpoint = latest_good_checkpoint(self.output_dir, self.accelerator.print) if self.config.resume else None
        if checkpoint is None:
            self.restore_best(resumed_step=0, loaded=False)
            return None
        state = read_state(checkpoint)
        # A finished run (maybe trained in another number of processes) only has its weights loaded.
        self.finished = state.get("total_steps", self.total_steps) == state["global_step"]  # older states lack it
        if self.finished:
            self.total_steps, self.examples_per_step = state.get("total_steps", self.total_steps), state["examples_per_step"]
            self.run_info = {**self.run_info, **self.saved_run_info()}
        if (state["examples_per_step"], state["num_examples"]) != (self.examples_per_step, self.num_examples):
            raise ValueError(f"{checkpoint} was written with {state['examples_per_step']} examples per step over "
                             f"{state['num_examples']} examples; resuming with other values would skip the wrong "
                             "batches. Use a new output_dir or resume=False.")
        theirs, ours = state.get("distributed_type", "NO"), self.accelerator.distributed_type.value
        if self.finished and theirs != ours and {theirs, ours} & {"DEEPSPEED", "FSDP"}:
            # Sharded state of another world cannot load here; the caller loads final/ or best/ (full weights).
            self.accelerator.print(f"{shown(checkpoint)}: a finished {theirs} run; `model` is left as given")
            self.weights_loaded = False
        else:
            self.restore_best(state["global_step"], loaded=False)  # the model is still the start here
            self.accelerator.load_state(str(checkpoint))
            self.weights_loaded = True
            self.restore_best(state["global_step"], loaded=True, checkpoint=checkpoint)
        self.global_step, self.epoch, self.batches_done = state["global_step"], state["epoch"], state["batches_done"]
        self.elapsed_before = state["elapsed_s"]
        if not self.finished:  # a finished run is reported once, by whoever reads its result (TrainResult.cached)
            self.accelerator.print(f"training: resuming {shown(checkpoint)} at step {self.global_step}")
        return checkpoint

    def restore_best(self, resumed_step: int, loaded: bool, checkpoint: Path | None = None) -> None:
        """Make best/ hold the weights of the best evaluation in the log up to `resumed_step` (the step the run
        goes on from): a crash while best/ or a checkpoint was written can leave it missing, cut short, or a newer
        best than the log keeps. Its earlier version or staging folder is used when it holds that step; else the
        weights at hand when they are that step's (the untrained start before a checkpoint is loaded, the
        checkpoint's own step after), else a kept checkpoint of that step; else a one-line error."""
        if not self.config.save_best:
            return
        best = self.output_dir / "best"
        rows = [r for r in _read_log(self.output_dir / LOG_FILE, resumed_step) if r["kind"] == "eval"]
        _, best_row = _best(rows, self.config)
        if best_row is None:
            if self.is_main:
                recover_saved(best, -1)  # nothing evaluated yet: a leftover best/ is from a run not continued
            self.accelerator.wait_for_everyone()
            return
        step = best_row["step"]
        if broadcast_object_list([recover_saved(best, step) if self.is_main else True], from_process=0)[0]:
            return
        if not loaded:  # the model is the untrained start: step 0's weights; any other step waits for the load
            if step == 0:
                _save_final_model(self.accelerator, self.model, best, step=0)
            return
        kept = checkpoint_dir(self.output_dir, step)
        if step == resumed_step:
            _save_final_model(self.accelerator, self.model, best, step=step)
        elif step < resumed_step and checkpoint_is_good(kept):
            self.accelerator.load_state(str(kept))
            _save_final_model(self.accelerator, self.model, best, step=step)
            self.accelerator.load_state(str(checkpoint))
        else:
            raise RuntimeError(
                f"{shown(best)} does not hold the weights of step {step}, the best evaluation in "
                f"{shown(self.output_dir / LOG_FILE)}, and no kept checkpoint has them: train again with "
                "resume=False (or delete the folder)")

    def saved_run_info(self) -> dict:
        """The run_info a finished run wrote (its world: processes, global batch), not this call's."""
        path = self.output_dir / "train_config.json"
        saved = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        return {k: saved[k] for k in self.run_info if k in saved}

    def open_log(self, resumed: bool) -> None:
        """The log up to the resumed step, train_config.json and the trackers; then the clock starts."""
        config, accelerator = self.config, self.accelerator
        rows = _read_log(self.output_dir / LOG_FILE, up_to_step=self.global_step)
        self.history = [row for row in rows if row["kind"] == "train"]
        self.eval_history = [row for row in rows if row["kind"] == "eval"]
        if self.is_main and not self.finished:  # a finished run keeps its log and train_config.json
            if not resumed:
                for stale in list_checkpoints(self.output_dir):  # from an earlier run this one does not continue
                    shutil.rmtree(stale)
            # Drop what a crashed run logged after its last checkpoint: those steps are about to be redone.
            write_text(self.output_dir / LOG_FILE, "".join(json.dumps(row) + "\n" for row in rows))
            write_json(self.output_dir / "train_config.json", {**snapshot(config), **self.run_info})
        if config.report_to:  # hyperparameters as trackers take them: bool/int/float/str only
            hparams = {k: v if isinstance(v, (bool, int, float, str)) else str(v)
                       for k, v in {**snapshot(config), **self.run_info}.items()}
            accelerator.init_trackers(self.output_dir.name or "rerank-repro", config=hparams)
        accelerator.wait_for_everyone()
        self.start = time.perf_counter()

    def evaluate_start(self, eval_fn: Callable) -> None:
        """The untrained start is a candidate: a run whose training only hurts on dev selects its start."""
        row = dict(kind="eval", step=0, epoch=0.0, **_evaluate(self.accelerator, self.model, eval_fn))
        self.eval_history.append(row)
        self.log(row)
        if self.config.save_best:
            _save_final_model(self.accelerator, self.model, self.output_dir / "best", step=0, keep_previous=True)

    def train_steps(self, compute_loss: Callable, eval_fn: Callable | None) -> None:
        """Optimizer steps up to total_steps, epoch after epoch, each followed by end_step()."""
        accelerator, model, config = self.accelerator, self.model, self.config
        self.progress = tqdm(total=self.total_steps, initial=self.global_step, disable=not self.is_main or self.finished,
                             desc="train", dynamic_ncols=True)
        try:  # a crash mid-training closes its bar too: an open bar shifts every later bar of the process
            self.loss_sum, self.loss_count = torch.zeros(1, device=accelerator.device), 0
            model.train()
            while self.global_step < self.total_steps:
                self.sampler.set_epoch(self.epoch)
                # Mid-epoch resume: the same order as the interrupted epoch, minus the batches already trained on.
                epoch_loader = (accelerator.skip_first_batches(self.dataloader, self.batches_done)
                                if self.batches_done else self.dataloader)
                epoch_loader.set_epoch(self.epoch)
                for batch in epoch_loader:
                    with accelerator.accumulate(model):
                        loss = compute_loss(model, batch)
                        accelerator.backward(loss)  # divides by gradient_accumulation_steps
                        if accelerator.sync_gradients and config.max_grad_norm:
                            accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                        self.optimizer.step()  # these three are no-ops until the last micro-batch of the step
                        self.scheduler.step()
                        self.optimizer.zero_grad(set_to_none=True)
                    self.batches_done += 1
                    self.loss_sum += loss.detach().float()
                    self.loss_count += 1
                    if accelerator.sync_gradients:  # the last micro-batch of an optimizer step
                        self.end_step(eval_fn)
                        if self.global_step == self.total_steps:
                            break
        finally:
            self.progress.close()

    def end_step(self, eval_fn: Callable | None) -> None:
        """After an optimizer step: advance the position, then log, evaluate and checkpoint when due."""
        config = self.config
        self.global_step += 1
        if self.batches_done == len(self.dataloader):
            self.epoch, self.batches_done = self.epoch + 1, 0
        self.progress.update(1)
        fractional_epoch = round(self.epoch + self.batches_done / len(self.dataloader), 4)
        last_step = self.global_step == self.total_steps

        if self.global_step % config.log_every_steps == 0 or last_step:
            self.log_loss(fractional_epoch)
        eval_due = last_step or (config.eval_every_steps and self.global_step % config.eval_every_steps == 0)
        if eval_fn is not None and eval_due:
            self.evaluate(eval_fn, fractional_epoch)
        if self.checkpoint_due(last_step):
            self.save_checkpoint()

    def checkpoint_due(self, last_step: bool) -> bool:
        """Every save_every_steps and at the last step; save_every_steps None: never (hence no resume), but at
        the last step when checkpoint_at_end()."""
        every = self.config.save_every_steps
        return (last_step and (bool(every) or checkpoint_at_end())) or (bool(every) and self.global_step % every == 0)

    def log_loss(self, fractional_epoch: float) -> None:
        """The mean loss over every process since the last logged step, with the learning rate."""
        mean_loss = self.accelerator.reduce(self.loss_sum / self.loss_count, reduction="mean").item()
        self.loss_sum.zero_()
        self.loss_count = 0
        row = dict(kind="train", step=self.global_step, epoch=fractional_epoch, loss=mean_loss,
                   lr=self.scheduler.get_last_lr()[0], elapsed_s=self.elapsed())
        self.history.append(row)
        self.log(row)
        self.progress.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{row['lr']:.2e}")

    def evaluate(self, eval_fn: Callable, fractional_epoch: float) -> None:
        """eval_fn's metrics as a log row; best/ gets the weights when they are strictly better than before."""
        metrics = _evaluate(self.accelerator, self.model, eval_fn)
        row = dict(kind="eval", step=self.global_step, epoch=fractional_epoch, **metrics)
        self.eval_history.append(row)
        self.log(row)
        if self.config.save_best and _best(self.eval_history, self.config)[1] is row:
            _save_final_model(self.accelerator, self.model, self.output_dir / "best", step=self.global_step,
                              keep_previous=True)

    def elapsed(self) -> float:
        """Training wall time, across resumes."""
        return round(self.elapsed_before + time.perf_counter() - self.start, 3)

    def log(self, row: dict) -> None:
        """One row to log.jsonl (main process) and to the trackers, as train/loss, eval/nDCG@10, ..."""
        if self.is_main:
            with open(self.output_dir / LOG_FILE, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
        if self.config.report_to:
            values = {f"{row['kind']}/{k}": v for k, v in row.items()
                      if k not in ("kind", "step") and isinstance(v, (int, float))}
            self.accelerator.log(values, step=row["step"])

    def save_checkpoint(self) -> Path:
        """accelerate's save_state from every process, then the position and the COMPLETE marker, then prune."""
        accelerator = self.accelerator
        path = checkpoint_dir(self.output_dir, self.global_step)
        if self.is_main and path.exists():
            shutil.rmtree(path)  # an incomplete leftover of a crashed run at this same step
        accelerator.wait_for_everyone()
        with saving(path, f"checkpoint {self.global_step}"):
            accelerator.save_state(str(path))
            accelerator.wait_for_everyone()  # every process has written its part (RNG state, shards)
            if self.is_main:
                mark_complete(path, dict(global_step=self.global_step, epoch=self.epoch,
                                         batches_done=self.batches_done, elapsed_s=self.elapsed(),
                                         examples_per_step=self.examples_per_step, num_examples=self.num_examples,
                                         total_steps=self.total_steps,
                                         distributed_type=accelerator.distributed_type.value))
        if self.is_main:
            drop_previous(self.output_dir / "best")  # this checkpoint covers best/ as it is now
            prune_checkpoints(self.output_dir, self.config.keep_last_checkpoints)
        accelerator.wait_for_everyone()
        return path

    def finish(self) -> TrainResult:
        """The final weights, the best evaluation, and the trackers closed."""
        accelerator, output_dir = self.accelerator, self.output_dir
        final_dir = output_dir / "final"
        if not (self.finished and saved_step(final_dir) == self.global_step):
            if not self.weights_loaded and self.global_step > 0:
                raise RuntimeError(f"{shown(final_dir)} is missing or damaged, and this run's sharded checkpoint "
                                   "cannot be loaded here: load it in its own world, or train again")
            final_dir = _save_final_model(accelerator, self.model, final_dir, step=self.global_step)
        best_name, best_row = _best(self.eval_history, self.config)
        best_dir = output_dir / "best"
        if self.config.save_best and best_row is not None and saved_step(best_dir) != best_row["step"]:
            if best_row["step"] != self.global_step or not self.weights_loaded:
                raise RuntimeError(f"{shown(best_dir)} does not hold the weights of step {best_row['step']}, the "
                                   f"best evaluation in {shown(output_dir / LOG_FILE)}: train again with resume=False "
                                   "(or delete the folder)")
            _save_final_model(accelerator, self.model, best_dir, step=self.global_step)
        if self.is_main:
            drop_previous(best_dir)  # the run is complete: no resume needs best/'s earlier version
        result = TrainResult(self.global_step, self.history, self.eval_history, final_dir, latest_checkpoint(output_dir),
                             best_metric=best_row[best_name] if best_row else None,
                             best_step=best_row["step"] if best_row else None, metric_for_best=best_name,
                             best_dir=best_dir if self.config.save_best and best_row is not None else None,
                             run_info=self.run_info, cached=self.finished,
                             train_s=self.elapsed_before if self.finished else self.elapsed())
        if self.config.report_to:
            accelerator.end_training()  # flush and close the trackers
        accelerator.free_memory()  # drop the accelerator's references, so a notebook can train the next model
        return result


def process_state() -> PartialState:
    """accelerate's process state as the loop's Accelerator makes it ($ACCELERATE_USE_CPU honoured): code that asks
    which process it is before training must ask here, or its PartialState() fixes a one-process world."""
    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def checkpoint_at_end() -> bool:
    """Whether every run ends with a checkpoint ($RERANK_CHECKPOINT_AT_END, set by `python -m rerank_lib.train`),
    so that a later call finds it finished."""
    return os.environ.get("RERANK_CHECKPOINT_AT_END", "") not in ("", "0")


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only: decaying biases and LayerNorm gains just hurts (BERT's recipe)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if p.ndim >= 2], "weight_decay": weight_decay},
              {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]


def _enable_gradient_checkpointing(model: torch.nn.Module) -> None:
    """Recompute activations in the backward pass: less memory for long listwise prompts, ~30% more compute."""
    # Non-reentrant checkpointing works under DDP and with frozen embeddings (LoRA).
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5 name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    elif hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    else:
        warnings.warn(f"{type(model).__name__} cannot checkpoint activations; training without it")


def _model_is_sharded(accelerator: Accelerator) -> bool:
    kind = accelerator.distributed_type
    return kind == DistributedType.FSDP or (kind == DistributedType.DEEPSPEED
                                             and accelerator.state.deepspeed_plugin.zero_stage == 3)


def _evaluate(accelerator: Accelerator, model: torch.nn.Module, eval_fn: Callable) -> dict[str, float]:
    """eval_fn's metrics on every process; the RNG is forked so that evaluating never changes training."""
    sharded = _model_is_sharded(accelerator)  # a sharded model needs every process for a forward pass
    metrics = None
    if sharded or accelerator.is_main_process:
        cuda_devices = [accelerator.device.index or 0] if accelerator.device.type == "cuda" else []
        model.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=cuda_devices):
            raw = eval_fn(model if sharded else accelerator.unwrap_model(model))
        model.train()
        metrics = {name: float(value) for name, value in raw.items()}
    return broadcast_object_list([metrics], from_process=0)[0]


def _save_final_model(accelerator: Accelerator, model: torch.nn.Module, final_dir: Path, step: int,
                      keep_previous: bool = False) -> Path:
    """The full weights of `step`, gathered from every shard, as save_pretrained output or a model.pt state dict,
    written into a staging folder that ends with saved.json (the step and each file's checksum) and is then
    renamed to final_dir: a crash never leaves a final/ or best/ that a reader takes for some step's weights."""
    state_dict = accelerator.get_state_dict(model)  # a collective under FSDP and ZeRO-3: all processes call it
    unwrapped = accelerator.unwrap_model(model)
    if accelerator.is_main_process:
        staging = staging_dir(final_dir)
        shutil.rmtree(staging, ignore_errors=True)
        with saving(staging, f"the weights of step {step}"):
            _write_weights(unwrapped, state_dict, staging)
            mark_saved(staging, step)
        place_saved(staging, final_dir, keep_previous=keep_previous)
    accelerator.wait_for_everyone()
    return final_dir


def _write_weights(model: torch.nn.Module, state_dict: dict, folder: Path) -> None:
    if hasattr(model, "save_pretrained"):
        model.save_pretrained(folder, state_dict=state_dict)
    else:
        folder.mkdir(parents=True)
        torch.save(state_dict, folder / "model.pt")


def _read_log(path: Path, up_to_step: int) -> list[dict]:
    """The log rows of steps <= up_to_step; a line cut short by a crash is skipped."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("step", 0) <= up_to_step:
            rows.append(row)
    return rows


def _best(eval_history: list[dict], config: TrainConfig) -> tuple[str | None, dict | None]:
    if not eval_history:
        return None, None
    name = config.metric_for_best or next((k for k in eval_history[0] if k not in ("kind", "step", "epoch")), None)
    if name is None:
        return None, None
    pick = max if config.greater_is_better else min
    return name, pick(eval_history, key=lambda row: row[name])
