"""HeadOnlyRanker: a linear score head trained over a frozen decoder's cached hidden states."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ...atomic import write_json
from ...data.types import Document, Run
from ..protocol import rerank_with
from .ranker import DecoderReranker
from .settings import CONFIG_FILE


class HeadOnlyRanker:
    """A linear score head trained over a FROZEN decoder's cached hidden states (the embedded-budget recipe).

    One forward pass per pair (DecoderReranker.hidden_features, cached) serves every epoch, every dev evaluation
    and every head: training the head costs milliseconds, so a CPU run can afford the full-depth LLM. The head
    starts from a row of the LM head (init='yes': the score at step 0 IS the zero-shot "Yes" logit of the
    FlagEmbedding prompt, so the model's own starting point is the zero-shot reranker; 'yes-no': the Yes-minus-No
    margin) or from N(0, 0.02) ('random', RAG-Retrieval's fresh score layer).

    Offers fit()'s interface (model, encode_pairs, collate, batch_logits, load_weights) and score/rerank.
    """

    def __init__(self, decoder: DecoderReranker, init: str = "yes", init_seed: int = 0, feature_batch_size: int = 16,
                 show_progress: bool = False):
        if init not in ("yes", "yes-no", "random"):
            raise ValueError(f"init must be 'yes', 'yes-no' or 'random', got {init!r}")
        if init != "random" and decoder.head != "yes":
            raise ValueError(f"init={init!r} reads the Yes/No rows: the decoder needs head='yes'")
        self.decoder, self.init = decoder, init
        self.feature_batch_size, self.show_progress = feature_batch_size, show_progress
        hidden = int(decoder.model.backbone.config.hidden_size)
        self.model = nn.Linear(hidden, 1, bias=False)
        with torch.no_grad():
            if init == "random":
                gen = torch.Generator().manual_seed(init_seed)
                self.model.weight.normal_(0.0, 0.02, generator=gen)
            else:
                rows = decoder.head_rows()
                vec = rows["yes"] - (rows["no"] if init == "yes-no" else 0.0)
                self.model.weight.copy_(torch.as_tensor(vec).reshape(1, -1))
        self.model.eval()
        self.cache_features = True  # score() reads the decoder's cached hidden states; False: runs the decoder

    def __repr__(self) -> str:
        return f"HeadOnlyRanker({self.decoder!r}, init={self.init!r})"

    def encode_pairs(self, queries: Sequence[str], docs: Sequence[str]) -> list[dict]:
        feats = self.decoder.hidden_features(list(queries), list(docs), batch_size=self.feature_batch_size,
                                             show_progress=self.show_progress)
        # fit() reads len(input_ids) for length-grouped batches; a cached vector has one "token" of cost
        return [{"h": torch.from_numpy(row), "input_ids": [0]} for row in feats]

    def collate(self, features: list[dict]) -> dict:
        first = features[0]
        if isinstance(first["h"], list):  # a group (fit's group losses): [G] vectors each
            batch = {"h": torch.stack([torch.stack(f["h"]) for f in features])}
        else:
            batch = {"h": torch.stack([f["h"] for f in features])}
        for key in first:
            if key not in ("h", "input_ids"):
                batch[key] = torch.tensor([f[key] for f in features], dtype=torch.float32)
        return batch

    def batch_logits(self, model: nn.Module, batch: Mapping) -> torch.Tensor:
        h = batch["h"].to(model.weight.device, model.weight.dtype)
        return model(h).squeeze(-1)

    def score(self, queries: str | Sequence[str], docs: Sequence[str], batch_size: int = 256,
              show_progress: bool = False) -> np.ndarray:
        if isinstance(queries, str):
            queries = [queries] * len(docs)
        feats = self.decoder.hidden_features(list(queries), list(docs), batch_size=self.feature_batch_size,
                                             show_progress=show_progress or self.show_progress,
                                             cache=self.cache_features)
        with torch.no_grad():
            return self.model(torch.from_numpy(feats)).squeeze(-1).numpy().astype(np.float32)

    def rerank(self, run: Run, corpus: Mapping[str, Document], queries: Mapping[str, str], depth: int = 100, *,
               batch_size: int = 256, show_progress: bool = False) -> Run:
        return rerank_with(self, run, corpus, queries, depth=depth, batch_size=batch_size, show_progress=show_progress)

    def load_weights(self, folder: str | os.PathLike) -> None:
        state = torch.load(Path(folder) / "model.pt", map_location="cpu", weights_only=True)
        self.model.load_state_dict(state)

    def save(self, directory: str | os.PathLike) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), directory / "model.pt")
        write_json(directory / CONFIG_FILE, {**self.decoder.settings(), "head_only": True, "init": self.init})
        return directory
