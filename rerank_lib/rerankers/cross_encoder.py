"""The BERT-like cross-encoder reranker (bge-reranker, RAG-Retrieval `bert_encoder`).

A cross-encoder reads `[CLS] query [SEP] document [SEP]` and a linear head on top gives one logit: the relevance
score. Training and inference build their inputs with the same `encode_pairs`, so what the model learns on is what
it is scored on. The ranker neither trains nor evaluates itself: `training.groups` builds its training examples
and losses from what it offers (`model`, `encode_pairs`, `collate`, `batch_logits`, `load_weights`), and the
experiment layer trains and evaluates it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from ..atomic import write_json
from ..collate import pad_collate
from ..data.types import Document, Run
from ..models import (autocast_context, check_folder, compute_dtype, cross_encoder_max_length, fresh_keys,
                      load_model, load_tokenizer, pick_device)
from ..progress import tqdm
from .protocol import rerank_with as rerank_with

CONFIG_FILE = "cross_encoder.json"
_TOKEN_KEYS = ("input_ids", "attention_mask", "token_type_ids")


class CrossEncoder:
    """A one-logit sequence classifier over (query, document) pairs.

    model_name: an offline built-in ('minilm-l6': all-MiniLM-L6-v2's encoder under a NEW, untrained head), a local
        folder (a saved CrossEncoder, a checkpoint) or a hub id (e.g. BAAI/bge-reranker-v2-m3, its trained head).
    max_length: tokens per pair; the document is cut to fit ('longest_first': the query is cut only when it is the
        longer of the two).
    dtype: the inference compute dtype (autocast); None follows the precision setting (models.compute_dtype:
        'auto' unless $RERANK_PRECISION or the CLI's --precision says otherwise, i.e. bf16 where the hardware
        computes it natively, fp32 elsewhere). Weights stay fp32 (training keeps fp32 master weights).
    init_seed: seeds the fresh head (when there is one) without touching the global RNG.

    `fresh_head` lists the head parameters that loading initialised afresh (from transformers' loading report):
    non-empty means the scores come from a random head, not from a trained reranker.
    """

    def __init__(self, model_name: str | os.PathLike = "minilm-l6", max_length: int = 256, device=None,
                 dtype: torch.dtype | None = None, query_format: str = "{}", document_format: str = "{}",
                 init_seed: int = 0):
        from transformers import AutoModelForSequenceClassification
        from transformers.utils import logging as hf_logging

        self.model_name = os.fspath(model_name)
        self.max_length = int(max_length)
        self.query_format, self.document_format = query_format, document_format
        self.device = torch.device(device) if device is not None else pick_device()
        self.compute_dtype = dtype if dtype is not None else compute_dtype(self.device)
        if Path(self.model_name).expanduser().is_dir():
            check_folder(Path(self.model_name).expanduser(), "cross_encoder")
        self.tokenizer = load_tokenizer(self.model_name)
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the "newly initialized head" warning is expected: we say it ourselves
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(init_seed)
                self.model, report = load_model(self.model_name, auto_class=AutoModelForSequenceClassification,
                                                device=self.device, dtype=torch.float32, num_labels=1,
                                                output_loading_info=True)
        finally:
            hf_logging.set_verbosity(verbosity)
        self.fresh_head = fresh_keys(report)
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.eval()

    def __repr__(self) -> str:
        return (f"CrossEncoder({self.model_name!r}, max_length={self.max_length}, device={self.device}, "
                f"dtype={str(self.compute_dtype).replace('torch.', '')})")

    # -- the shared path: training and inference ---------------------------------------------------------------

    def encode_pairs(self, queries: Sequence[str], docs: Sequence[str]) -> list[dict]:
        """Token ids (no padding) of each (query, doc) pair, truncated to max_length."""
        if len(queries) != len(docs):
            raise ValueError(f"{len(queries)} queries for {len(docs)} docs")
        if not len(docs):
            return []
        q = [self.query_format.format(x.strip()) for x in queries]
        d = [self.document_format.format(x.strip()) for x in docs]
        enc = self.tokenizer(q, d, truncation="longest_first", max_length=self.max_length,
                             return_attention_mask=False)
        keys = [k for k in ("input_ids", "token_type_ids") if k in enc]
        return [{k: enc[k][i] for k in keys} for i in range(len(d))]

    def collate(self, features: list[dict]) -> dict:
        """Dynamic padding (collate.pad_collate, as training pads): [N, L] for pairs, [B, G, L] for groups; other
        fields (training targets, teacher scores) become tensors."""
        return pad_collate(self.tokenizer)(features)

    def batch_logits(self, model: torch.nn.Module, batch: Mapping) -> torch.Tensor:
        """One logit per pair: [N] for a batch of pairs, [B, G] for a batch of groups."""
        device = next(model.parameters()).device
        inputs = {k: batch[k].to(device) for k in _TOKEN_KEYS if k in batch}
        shape = inputs["input_ids"].shape
        if len(shape) == 3:  # groups: flatten to pairs and back
            inputs = {k: v.reshape(-1, shape[-1]) for k, v in inputs.items()}
        logits = model(**inputs).logits
        logits = logits[:, 0] if logits.shape[-1] == 1 else logits[:, -1]
        return logits.reshape(shape[:-1])

    # -- inference -------------------------------------------------------------------------------------------

    def score(self, queries: str | Sequence[str], docs: Sequence[str], batch_size: int = 64,
              show_progress: bool = False) -> np.ndarray:
        """float32 logits, one per (query, doc) pair, in input order (one query string applies to every doc).

        Pairs are sorted by token length so that each batch pads to nearly its own length; inference_mode;
        bf16 autocast only where native."""
        if isinstance(queries, str):
            queries = [queries] * len(docs)
        features = self.encode_pairs(list(queries), list(docs))
        out = np.empty(len(features), dtype=np.float32)
        if not features:
            return out
        order = np.argsort(-np.fromiter((len(f["input_ids"]) for f in features), dtype=np.int64), kind="stable")
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode(), autocast_context(self.device, dtype=self.compute_dtype):
                starts = range(0, len(features), batch_size)
                for start in tqdm(starts, disable=not show_progress, desc="score", unit="batch"):
                    idx = order[start:start + batch_size]
                    batch = self.collate([features[i] for i in idx])
                    out[idx] = self.batch_logits(self.model, batch).float().cpu().numpy()
        finally:
            self.model.train(was_training)
        return out

    def rerank(self, run: Run, corpus: Mapping[str, Document], queries: Mapping[str, str], depth: int = 100, *,
               batch_size: int = 64, show_progress: bool = False) -> Run:
        """Score each query's top-`depth` candidates of `run`; returns {qid: {docid: logit}} (deeper ones dropped).
        All pairs of all queries are scored together, so batches are length-sorted across queries."""
        return rerank_with(self, run, corpus, queries, depth=depth, batch_size=batch_size, show_progress=show_progress)

    # -- persistence ------------------------------------------------------------------------------------------

    def settings(self) -> dict:
        """What cross_encoder.json holds beside the weights, so that `load` scores as this ranker does."""
        return {"max_length": self.max_length, "query_format": self.query_format,
                "document_format": self.document_format, "base_model": self.model_name}

    def save(self, directory: str | os.PathLike) -> Path:
        """save_pretrained (weights + config) and the tokenizer, plus cross_encoder.json (`settings`)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        write_json(directory / CONFIG_FILE, self.settings())
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, device=None, dtype: torch.dtype | None = None) -> "CrossEncoder":
        """A saved folder with its own settings: this project's cross_encoder.json, else those of a
        sentence-transformers CrossEncoder folder (its max length), so that scores equal
        `sentence_transformers.CrossEncoder(folder).predict(pairs, activation_fn=Identity())`."""
        directory = Path(directory)
        check_folder(directory, "cross_encoder")
        meta_path = directory / CONFIG_FILE
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        max_length = meta.get("max_length") or cross_encoder_max_length(directory) or 512
        return cls(directory, max_length=max_length, device=device, dtype=dtype,
                   query_format=meta.get("query_format", "{}"), document_format=meta.get("document_format", "{}"))

    def load_weights(self, folder: str | os.PathLike) -> None:
        """Copy weights saved by the training loop (save_pretrained output or model.pt) into self.model."""
        _load_state(self.model, Path(folder))


def has_trained_head(ranker) -> bool:
    """Whether a cross-encoder's checkpoint held its score head (e.g. bge-reranker-v2-m3) or loading initialised a
    fresh one (an encoder such as the offline all-MiniLM-L6-v2): only the first is a zero-shot reranker. Read from
    the loading report (`fresh_head`), not from names; a ranker built without one falls back to the architecture."""
    fresh = getattr(ranker, "fresh_head", None)
    if fresh is not None:
        return not fresh
    return any(a.endswith("ForSequenceClassification") for a in (ranker.model.config.architectures or []))


def _load_state(model: torch.nn.Module, folder: Path) -> None:
    if (folder / "model.pt").exists():
        state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    else:
        from safetensors.torch import load_file

        files = sorted(folder.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"{folder}: no model.pt or *.safetensors to load")
        state = {}
        for f in files:
            state.update(load_file(str(f)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if "position_ids" not in k and not k.endswith("lm_head.weight")]:
        raise RuntimeError(f"{folder}: weights do not match the model (missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]})")
