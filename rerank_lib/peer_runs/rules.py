"""How one peer setting becomes ours: a rule per setting, each giving mapped / refused / ignored with a reason.

A rule is `rule(value, given) -> Outcome`, `given` holding every setting of the same command (a rule may read a
neighbour: FlagEmbedding's max length is query_max_len + passage_max_len). Settings named `TRAIN.<field>` go to
each training section of the pipeline (rankllm's `train`, the retriever's `ctl_train` ...); `--output_dir` is the
train command's own --output_dir (where the selected model is copied).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

MAPPED, REFUSED, IGNORED = "mapped", "refused", "ignored"
OUTPUT_DIR = "--output_dir"  # not a setting: the train command's option
TRAIN = "TRAIN."  # each training section of the pipeline


@dataclass(frozen=True)
class Outcome:
    status: str
    settings: dict = field(default_factory=dict)
    reason: str = ""


Rule = Callable[[object, dict], Outcome]


def plain(value):
    """A command-line word as the value it means: 1e-5 -> 1e-05, True/true -> True, a bare switch -> True."""
    if value is None:
        return True
    if not isinstance(value, str):
        return value
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def placeholder(value) -> bool:
    """A template's `<path-to-model>`: not a value."""
    return isinstance(value, str) and bool(re.fullmatch(r"<[A-Za-z][^<>|]{2,}>", value.strip()))


def to(path: str, convert: Callable = plain, note: str = "") -> Rule:
    return lambda value, given: Outcome(MAPPED, {path: convert(value)}, note)


def ignore(reason: str) -> Rule:
    return lambda value, given: Outcome(IGNORED, {}, reason)


def refuse(reason: str) -> Rule:
    return lambda value, given: Outcome(REFUSED, {}, reason)


def when(test: Callable, then: Rule, otherwise: Rule) -> Rule:
    """`then` where test(plain value) holds, else `otherwise` (a switch that is off, a value equal to ours ...)."""
    return lambda value, given: (then if test(plain(value)) else otherwise)(value, given)


def as_list(value):
    value = plain(value)
    return list(value) if isinstance(value, (list, tuple)) else [value]


def scheduler_rule(value, given) -> Outcome:
    names = {"linear": "linear", "cosine": "cosine", "constant": "constant", "constant_with_warmup": "constant"}
    if value not in names:
        return Outcome(REFUSED, {}, f"scheduler {value!r}: ours are linear, cosine and constant (with warmup)")
    return Outcome(MAPPED, {"TRAIN.lr_scheduler": names[value]})


def trackers(value, given) -> Outcome:
    names = [v for v in as_list(value) if v not in ("none", "None", None)]
    return Outcome(MAPPED, {"TRAIN.report_to": names}, "" if names else "no tracker")


def precision(kind: str) -> Rule:
    """--fp16 / --bf16 (a switch or true/false)."""
    return when(bool, to("TRAIN.mixed_precision", lambda v: kind), ignore(f"{kind} off: the precision is set elsewhere"))


def metric_rule(value, given) -> Outcome:
    """LocalRQA's eval_retr/document_recall/recall4 -> recall@4 (ir-measures' name, our retriever dev metric)."""
    found = re.search(r"(recall|ndcg|mrr|precision)[@_]?(\d+)$", str(value), re.I)
    if not found:
        return Outcome(REFUSED, {}, f"{value!r} names no ranking measure we compute on the dev split")
    name = {"ndcg": "nDCG", "mrr": "MRR", "recall": "recall", "precision": "P"}[found.group(1).lower()]
    return Outcome(MAPPED, {"TRAIN.metric_for_best": f"{name}@{found.group(2)}"})


# Settings of the Hugging Face Trainer (TrainingArguments) that FlagEmbedding, LocalRQA, HopWeaver and rank_llm share.
HF_TRAINER: dict[str, Rule] = {
    "learning_rate": to("TRAIN.learning_rate"),
    "num_train_epochs": to("TRAIN.num_epochs"),
    "max_steps": to("TRAIN.max_steps"),
    "per_device_train_batch_size": to("TRAIN.per_device_batch_size"),
    "gradient_accumulation_steps": to("TRAIN.gradient_accumulation_steps"),
    "warmup_ratio": to("TRAIN.warmup_ratio"),
    "warmup_steps": to("TRAIN.warmup_steps"),
    "weight_decay": to("TRAIN.weight_decay"),
    "max_grad_norm": to("TRAIN.max_grad_norm"),
    "lr_scheduler_type": scheduler_rule,
    "seed": to("seed"),
    "fp16": precision("fp16"),
    "bf16": precision("bf16"),
    "gradient_checkpointing": to("TRAIN.gradient_checkpointing"),
    "output_dir": to(OUTPUT_DIR, str),
    "logging_steps": to("TRAIN.log_every_steps"),
    "save_steps": to("TRAIN.save_every_steps"),
    "eval_steps": to("TRAIN.eval_every_steps"),
    "save_total_limit": to("TRAIN.keep_last_checkpoints"),
    "dataloader_num_workers": to("TRAIN.dataloader_num_workers"),
    "metric_for_best_model": metric_rule,
    "report_to": trackers,
    "overwrite_output_dir": ignore("each run trains in its own run folder; --output_dir receives a copy, replaced "
                                   "atomically"),
    "per_device_eval_batch_size": ignore("the batch size of scoring: the scores are the same"),
    "dataloader_drop_last": when(bool, ignore("ours drops the last partial batch too"),
                                 refuse("ours always drops the last partial batch")),
    "cache_dir": ignore("where downloaded models are cached"),
    "cache_path": ignore("where the tokenized data is cached"),
    "pad_to_multiple_of": ignore("padding to a multiple of 8 tokens (tensor cores): attention masks it, scores are "
                                 "the same"),
    "use_flash_attn": ignore("an attention kernel: the same scores up to rounding"),
    "use_flash_attention": ignore("an attention kernel: the same scores up to rounding"),
    "deepspeed": lambda value, given: Outcome(MAPPED, {}, "the DeepSpeed config: its settings follow"),
    "trust_remote_code": ignore("the hub's model code: our models are built in the library"),
}

# The process environment of a launch.
ENVIRONMENT: dict[str, Rule] = {
    "WANDB_MODE": lambda value, given: (Outcome(MAPPED, {"TRAIN.report_to": []}, "wandb off")
                                        if value == "disabled" else Outcome(IGNORED, {}, f"wandb mode {value}: "
                                                                            "WANDB_MODE is read by wandb itself")),
    "CUDA_VISIBLE_DEVICES": ignore("which GPUs the machine shows: the launch takes every visible GPU"),
    "DS_SKIP_CUDA_CHECK": ignore("a DeepSpeed install check"),
    "NCCL_IB_DISABLE": ignore("the machine's network (InfiniBand) for NCCL"),
    "NCCL_P2P_DISABLE": ignore("the machine's GPU peer-to-peer transport for NCCL"),
    "PYTORCH_CUDA_ALLOC_CONF": ignore("the CUDA memory allocator's layout"),
    "HF_HUB_CACHE": ignore("where downloaded models are cached"),
}

NUM_PROCESSES = ("the number of GPUs is the launching machine's (`accelerate launch --num_processes {v}`); the "
                  "per-device batch and accumulation are mapped, so on {v} GPUs the global batch is theirs")
_TUNING = "DeepSpeed's communication and memory tuning: what is computed is the same"
_CPU_ADAM = ("the optimizer state offloaded to CPU: DeepSpeed then trains with its CPU Adam (AdamW's update) "
             "whatever optimizer the script builds (rank_llm's AdamW8bit too)")

# accelerate config files (accelerate launch --config_file).
ACCELERATE: dict[str, Rule] = {
    "num_processes": lambda value, given: Outcome(IGNORED, {}, NUM_PROCESSES.format(v=value)),
    "num_machines": when(lambda v: v == 1, ignore("one machine, as ours"), refuse("several machines: our launch "
                                                                                   "configs run on one")),
    "mixed_precision": lambda value, given: Outcome(MAPPED, {"TRAIN.mixed_precision": str(value)}),
    "downcast_bf16": ignore("TPU only"),
    "use_cpu": when(lambda v: not v, ignore("GPUs, as ours"), refuse("a CPU-only launch: run without --set launch")),
    "deepspeed_config.deepspeed_config_file": lambda value, given: Outcome(MAPPED, {}, "the DeepSpeed config: its "
                                                                           "settings follow"),
    "deepspeed_config.gradient_clipping": ignore("auto: the trainer's max_grad_norm (ours: TRAIN.max_grad_norm)"),
    "deepspeed_config.train_micro_batch_size_per_gpu": ignore("auto: the trainer's per-device batch (mapped)"),
    "deepspeed_config.zero3_init_flag": ignore("how ZeRO-3 builds the model (sharded at init): same weights"),
    "deepspeed_config.zero3_save_16bit_model": ignore("how a ZeRO-3 checkpoint is gathered: ours saves full weights"),
    "fsdp_config": ignore("no FSDP settings"),
    "deepspeed_config": ignore("no DeepSpeed settings"),
}
for _key in ("compute_environment", "machine_rank", "main_training_function", "same_network", "rdzv_backend",
             "main_process_ip", "main_process_port", "tpu_env", "tpu_use_cluster", "tpu_use_sudo", "gpu_ids", "debug"):
    ACCELERATE[_key] = ignore("where and how accelerate starts the processes, not what they train")
for _key in ("fsdp_auto_wrap_policy", "fsdp_backward_prefetch_policy", "fsdp_offload_params", "fsdp_state_dict_type",
             "fsdp_transformer_layer_cls_to_wrap", "fsdp_sync_module_states", "fsdp_use_orig_params",
             "fsdp_forward_prefetch", "fsdp_cpu_ram_efficient_loading"):
    ACCELERATE[f"fsdp_config.{_key}"] = ignore("how FSDP wraps and gathers the model: the updates are the same")
ACCELERATE["deepspeed_config.offload_param_device"] = when(lambda v: v in ("none", None), ignore("no offload, as ours"),
                                                          ignore("offload to CPU memory: in the launch chosen"))
ACCELERATE["deepspeed_config.offload_optimizer_device"] = when(
    lambda v: v in ("none", None), ignore("no offload, as ours"),
    lambda value, given: Outcome(MAPPED, {"TRAIN.optimizer": "adamw"}, _CPU_ADAM))


def deepspeed_rule(name: str, value) -> Outcome:
    """A DeepSpeed JSON setting (dotted) other than the ZeRO stage, which decides the launch (deepspeed_rows)."""
    auto = value == "auto"
    if name == "zero_optimization.offload_optimizer.device" and value not in ("none", None):
        return Outcome(MAPPED, {"TRAIN.optimizer": "adamw"}, _CPU_ADAM)
    if name.startswith("zero_optimization.offload"):
        return Outcome(IGNORED, {}, "where DeepSpeed keeps optimizer state / parameters (CPU memory): the updates "
                       "are the same; the launch with CPU offload is deepspeed_zero3_offload")
    if name.startswith("zero_optimization."):
        return Outcome(IGNORED, {}, _TUNING)
    if name in ("fp16.enabled", "bf16.enabled"):
        if auto:
            return Outcome(IGNORED, {}, "auto: the trainer's --fp16 / --bf16 decides (mapped from the command)")
        kind = name.split(".")[0]
        return (Outcome(MAPPED, {"TRAIN.mixed_precision": kind}) if value is True
                else Outcome(IGNORED, {}, f"{kind} off"))
    if name.startswith("fp16."):
        return Outcome(IGNORED, {}, "fp16 loss scaling: dynamic, as accelerate's GradScaler does it in ours")
    if name.startswith("bf16."):
        return Outcome(IGNORED, {}, "loss scaling: bf16 needs none")
    if name == "optimizer.type":
        return (Outcome(MAPPED, {"TRAIN.optimizer": "adamw"}) if str(value).lower() in ("adamw", "adam")
                else Outcome(REFUSED, {}, f"optimizer {value}: ours are adamw and adamw_8bit"))
    if name == "optimizer.params.torch_adam":
        return Outcome(IGNORED, {}, "PyTorch's AdamW kernel: ours")
    if name.startswith("optimizer.params."):
        if auto:
            return Outcome(IGNORED, {}, "auto: the trainer's value (learning rate and weight decay are mapped from "
                           "the command; betas and eps are AdamW's defaults in both)")
        key = name.rsplit(".", 1)[1]
        return ({"lr": Outcome(MAPPED, {"TRAIN.learning_rate": value}),
                 "weight_decay": Outcome(MAPPED, {"TRAIN.weight_decay": value})}.get(key)
                or Outcome(REFUSED, {}, f"AdamW {key}={value}: ours keeps the defaults"))
    if name == "scheduler.type":
        known = {"WarmupDecayLR": "linear", "WarmupLR": "constant", "WarmupCosineLR": "cosine"}
        return (Outcome(MAPPED, {"TRAIN.lr_scheduler": known[value]}, "linear warmup, then its decay")
                if value in known else Outcome(REFUSED, {}, f"scheduler {value}: ours are linear, cosine, constant"))
    if name == "scheduler.params.warmup_type":
        return (Outcome(IGNORED, {}, "linear warmup, ours") if value == "linear"
                else Outcome(REFUSED, {}, f"a {value} warmup curve: our warmup rises linearly"))
    if name == "scheduler.params.last_batch_iteration":
        return Outcome(IGNORED, {}, "the schedule starts at step 0 (-1): ours too")
    if name.startswith("scheduler.params."):
        return Outcome(IGNORED, {}, "auto: the trainer's warmup and total steps (mapped from the command)") if auto \
            else Outcome(REFUSED, {}, f"{name}={value}: set the warmup in the training settings")
    if name in ("gradient_accumulation_steps", "gradient_clipping", "train_batch_size", "train_micro_batch_size_per_gpu"):
        if auto:
            return Outcome(IGNORED, {}, "auto: the trainer's value (mapped from the command)")
        target = {"gradient_accumulation_steps": "TRAIN.gradient_accumulation_steps",
                  "gradient_clipping": "TRAIN.max_grad_norm",
                  "train_micro_batch_size_per_gpu": "TRAIN.per_device_batch_size"}.get(name)
        return (Outcome(MAPPED, {target: value}) if target
                else Outcome(REFUSED, {}, "a global batch: give the per-device batch and accumulation"))
    if name in ("steps_per_print", "wall_clock_breakdown"):
        return Outcome(IGNORED, {}, "DeepSpeed's own logging")
    if name.startswith("activation_checkpointing."):
        return Outcome(IGNORED, {}, "DeepSpeed's activation partitioning (memory); gradient checkpointing is the "
                       "trainer's flag (mapped from the command)")
    return Outcome(REFUSED, {}, "a DeepSpeed setting we do not know")


def zero_launch(stage: int, offload: bool) -> str:
    """Our accelerate config (configs/accelerate/) for a ZeRO stage."""
    return "deepspeed_zero3_offload" if stage == 3 and offload else f"deepspeed_zero{stage}"
