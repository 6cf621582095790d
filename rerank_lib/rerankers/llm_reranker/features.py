"""The disk cache of a decoder's hidden states per pair, keyed by the model's current weights and the code version;
checksummed, so a damaged file is recomputed rather than read."""
from __future__ import annotations

import hashlib
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ...atomic import atomic_cache_open, trusted_cache_file
from ...paths import cache_dir


def pair_key(query: str, doc: str) -> str:
    return hashlib.sha1(f"{query}\x00{doc}".encode()).hexdigest()


@torch.no_grad()
def weights_fingerprint(module: nn.Module) -> str:
    """A cheap hash of a strided sample of every parameter: trained weights never reuse stale features."""
    h = hashlib.sha256()
    for name, param in module.named_parameters():
        flat = param.detach().reshape(-1)
        h.update(name.encode())
        h.update(flat[:: max(1, flat.numel() // 256)].float().cpu().numpy().tobytes())
    return h.hexdigest()


class FeatureStore:
    """One .npz per (model, prompt, max_length) key under cache_dir('llm_features'): pair key -> hidden vector."""

    def __init__(self, key: str):
        self.path = cache_dir("llm_features") / f"{key}.npz"
        self._data: dict[str, np.ndarray] | None = None

    def _load(self) -> dict[str, np.ndarray]:
        if self._data is None:
            self._data = {}
            if trusted_cache_file(self.path):
                with np.load(self.path) as npz:
                    self._data = dict(zip(npz["keys"].tolist(), npz["vectors"]))
        return self._data

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        data = self._load()
        return {k: data[k] for k in keys if k in data}

    def put(self, rows: Mapping[str, np.ndarray]) -> None:
        data = self._load()
        data.update(rows)
        keys = list(data)
        with atomic_cache_open(self.path, "wb") as handle:
            np.savez(handle, keys=np.array(keys), vectors=np.stack([data[k] for k in keys]).astype(np.float32))
