"""The toy problem of tests/test_training.py, and the entry point of its multi-process run:

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/_train_worker.py OUT PER_DEVICE_BATCH

A seeded linear regression learned by a 2-layer MLP: small enough to train in a second on a CPU core, and with no
batch-dependent layer, so equal batches give equal gradients however they are split.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import default_collate

from rerank_lib.training import TrainConfig, train

DIM = 8


def toy_dataset(n: int = 48, seed: int = 0) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    w = torch.randn(DIM, generator=generator)  # drawn first: the same target function whatever n
    x = torch.randn(n, DIM, generator=generator)
    y = x @ w + 0.1 * torch.randn(n, generator=generator)
    return [{"x": x[i], "y": y[i]} for i in range(n)]


def toy_model(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(DIM, 16), nn.Tanh(), nn.Dropout(dropout), nn.Linear(16, 1))


def mse_loss(model: nn.Module, batch: dict) -> torch.Tensor:
    return F.mse_loss(model(batch["x"]).squeeze(-1), batch["y"])


def toy_config(output_dir, **overrides) -> TrainConfig:
    settings = dict(
        output_dir=str(output_dir), seed=0, learning_rate=1e-2, num_epochs=2, per_device_batch_size=8,
        warmup_steps=2, lr_scheduler="linear", mixed_precision="no", save_every_steps=None, log_every_steps=1,
    )
    return TrainConfig(**{**settings, **overrides})


def final_params(output_dir) -> dict[str, torch.Tensor]:
    return torch.load(Path(output_dir) / "final" / "model.pt", map_location="cpu")


if __name__ == "__main__":
    out, per_device_batch = sys.argv[1], int(sys.argv[2])
    config = toy_config(out, per_device_batch_size=per_device_batch, save_every_steps=6)
    train(toy_model(), toy_dataset(), default_collate, mse_loss, config)
