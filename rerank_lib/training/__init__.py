"""The shared training loop: `train(model, dataset, collate_fn, compute_loss, TrainConfig(...))`.

loop.py holds the loop; sampling.py the seed-and-epoch determined example order
(optionally length-grouped); checkpoints.py the checkpoint folders; precision.py the 'auto' mixed precision.
"""
from rerank_lib.training.checkpoints import latest_checkpoint, list_checkpoints, prune_checkpoints, saved_step
from rerank_lib.collate import pad_collate
from rerank_lib.training.loop import TrainConfig, TrainResult, process_state, train
from rerank_lib.training.precision import cpu_supports_bf16, resolve_mixed_precision
from rerank_lib.training.sampling import EpochSampler, epoch_order

__all__ = [
    "EpochSampler",
    "TrainConfig",
    "TrainResult",
    "cpu_supports_bf16",
    "epoch_order",
    "latest_checkpoint",
    "list_checkpoints",
    "pad_collate",
    "process_state",
    "prune_checkpoints",
    "resolve_mixed_precision",
    "saved_step",
    "train",
]
