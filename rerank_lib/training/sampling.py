"""The order in which training examples are seen: a pure function of (seed, epoch).

torch's RandomSampler draws from a generator whose state depends on everything drawn before, so a resumed run,
or one on a different number of processes, would see different batches. Here the order of epoch e is recomputed
from (seed, e) alone, and every process derives the same global order.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from torch.utils.data import Sampler


def epoch_order(num_examples: int, seed: int, epoch: int, *, step_size: int | None = None,
                lengths: Sequence[int] | None = None, batch_size: int = 1, group_batches: int = 50) -> np.ndarray:
    """Shuffled example indices for one epoch.

    step_size: keep only a multiple of it (the examples of one optimizer step, default: one batch), so that every
        step sees a full global batch and gradient accumulation never ends an epoch half-way.
    lengths: when given, group examples of similar length into the same batch of `batch_size` to cut padding:
        the shuffled order is cut into megabatches of `group_batches` batches, each sorted longest first
        (the trick of HF's LengthGroupedSampler). Batches stay random across megabatches.
    """
    step_size = step_size or batch_size
    if step_size % batch_size:
        raise ValueError(f"step_size ({step_size}) must be a multiple of batch_size ({batch_size})")
    rng = np.random.default_rng([seed, epoch])  # an independent stream per (seed, epoch)
    order = rng.permutation(num_examples)
    order = order[: num_examples // step_size * step_size]
    if lengths is None:
        return order
    lengths = np.asarray(lengths)
    if len(lengths) != num_examples:
        raise ValueError(f"got {len(lengths)} lengths for {num_examples} examples")
    megabatch = batch_size * group_batches
    chunks = [order[start : start + megabatch] for start in range(0, len(order), megabatch)]
    # A stable sort keeps ties in their shuffled order, so the result is still seed-dependent.
    return np.concatenate([chunk[np.argsort(-lengths[chunk], kind="stable")] for chunk in chunks] or [order])


class EpochSampler(Sampler[int]):
    """A DataLoader sampler over `epoch_order`; call `set_epoch(e)` before iterating epoch e."""

    def __init__(self, num_examples: int, seed: int, *, step_size: int | None = None,
                 lengths: Sequence[int] | None = None, batch_size: int = 1, group_batches: int = 50):
        self.num_examples, self.seed, self.step_size, self.epoch = num_examples, seed, step_size or batch_size, 0
        self.options = dict(step_size=self.step_size, lengths=lengths, batch_size=batch_size,
                            group_batches=group_batches)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(epoch_order(self.num_examples, self.seed, self.epoch, **self.options).tolist())

    def __len__(self) -> int:
        return self.num_examples // self.step_size * self.step_size
