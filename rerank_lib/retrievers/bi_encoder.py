"""A bi-encoder (dual encoder) retriever: one transformer encodes queries and documents into vectors, the score is
their dot product (cosine when normalised).

Why one class with an `embed` method: the retriever-training pipeline trains `self.model` with the same
tokenisation, pooling and normalisation that inference uses, so `encode` is only `embed` under inference_mode plus
length bucketing. With mean pooling and normalisation it reproduces sentence-transformers' all-MiniLM-L6-v2
embeddings (tested to cosine > 0.9999).
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from ..progress import tqdm

from ..atomic import atomic_cache_open, trusted_cache_file
from ..code_version import code_version
from ..data.types import Document
from ..models import (autocast_context, check_folder, compute_dtype, load_model, load_tokenizer, pick_device,
                      resolve, sentence_transformers_settings)
from ..paths import cache_dir

POOLINGS = ("mean", "cls")


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[batch, dim] mean of `hidden` [batch, seq, dim] over the positions where `attention_mask` is 1
    (sentence-transformers' mean pooling; a row without any token gives zeros, not NaN)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class BiEncoder:
    """Encode texts with `model_name` (an offline built-in, a local folder or a hub id; see rerank_lib.models).

    pooling: 'mean' over non-padding tokens (sentence-transformers' default) or 'cls' (first token; BGE, E5-style
    CLS models). bf16: 'auto' follows the precision setting (models.compute_dtype: unless $RERANK_PRECISION or the
    CLI's --precision says otherwise, bf16 autocast only where the hardware computes it natively: GPU, or a CPU
    with AVX512-BF16/AMX), True forces it (emulated on older CPUs: slow, for accuracy checks), False keeps fp32.

    pooling, normalize, max_length, query_prefix, doc_prefix left as None take the model folder's own
    sentence-transformers settings (modules.json: Pooling, Normalize, max length, the 'query' / 'document'
    prompts) when it has them, so that a folder encodes as `SentenceTransformer(folder)` does; else mean pooling,
    normalised, 256 tokens, no prefixes.
    """

    def __init__(self, model_name: str = "minilm-l6", pooling: str | None = None, normalize: bool | None = None,
                 max_length: int | None = None, query_prefix: str | None = None, doc_prefix: str | None = None,
                 device=None, bf16: bool | str = "auto"):
        if pooling is not None and pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if bf16 not in ("auto", True, False):
            raise ValueError(f"bf16 must be 'auto', True or False, got {bf16!r}")
        self.model_name = model_name
        self.resolved = resolve(model_name)
        folder = Path(self.resolved.source)
        own = None
        if self.resolved.kind in ("local", "builtin") and not self.resolved.gguf_file and folder.is_dir():
            if self.resolved.kind == "local":
                check_folder(folder, "bi_encoder")
            own = sentence_transformers_settings(folder)
        self.pooling = pooling if pooling is not None else own.pooling if own else "mean"
        self.normalize = normalize if normalize is not None else own.normalize if own else True
        self.max_length = max_length if max_length is not None else own.max_length if own else 256
        self.query_prefix = query_prefix if query_prefix is not None else own.query_prompt if own else ""
        self.doc_prefix = doc_prefix if doc_prefix is not None else own.document_prompt if own else ""
        self.device = torch.device(device) if device is not None else pick_device()
        if bf16 == "auto":
            self.compute_dtype = compute_dtype(self.device)
        else:
            self.compute_dtype = torch.bfloat16 if bf16 else torch.float32
        self.tokenizer = load_tokenizer(model_name)
        self.model = load_model(model_name, device=self.device, dtype=torch.float32)
        self.model.eval()

    # -- the shared path: training calls tokenize + embed, inference calls encode --------------------------------

    def tokenize(self, texts: Sequence[str]):
        """Dynamic padding: pad to the longest text of this batch, truncate at max_length."""
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        return batch.to(self.device)

    def embed(self, batch_inputs, model: torch.nn.Module | None = None) -> torch.Tensor:
        """Pooled (and normalised) float32 embeddings of a tokenised batch, WITH grad: the forward of training.
        `model`: the transformer to run instead of self.model (the same one wrapped by the training loop, e.g. DDP)."""
        mixed = self.compute_dtype != torch.float32
        with autocast_context(self.device, enabled=mixed, dtype=self.compute_dtype if mixed else None):
            hidden = (self.model if model is None else model)(**batch_inputs).last_hidden_state
        hidden = hidden.float()  # pool and normalise in fp32 even under autocast
        pooled = hidden[:, 0] if self.pooling == "cls" else mean_pool(hidden, batch_inputs["attention_mask"])
        return F.normalize(pooled, p=2, dim=-1) if self.normalize else pooled

    # -- inference -------------------------------------------------------------------------------------------

    def encode(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = True,
               prefix: str = "") -> np.ndarray:
        """float32 array (len(texts), dim) in input order. Texts are sorted by token length so that each batch pads
        to nearly its own length (the original order is restored)."""
        texts = [prefix + t for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        lengths = [len(ids) for ids in self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]]
        order = np.argsort(-np.asarray(lengths), kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                starts = range(0, len(texts), batch_size)
                for start in tqdm(starts, disable=not show_progress, desc="encode", unit="batch"):
                    idx = order[start:start + batch_size]
                    out[idx] = self.embed(self.tokenize([texts[i] for i in idx])).cpu().numpy()
        finally:
            self.model.train(was_training)
        return out

    def encode_queries(self, queries: Sequence[str] | Mapping[str, str], batch_size: int = 64,
                       show_progress: bool = False) -> np.ndarray:
        """Queries (a list, or a {qid: text} dict in its order) with `query_prefix`."""
        texts = list(queries.values()) if isinstance(queries, Mapping) else list(queries)
        return self.encode(texts, batch_size=batch_size, show_progress=show_progress, prefix=self.query_prefix)

    def encode_corpus(self, corpus: Mapping[str, Document], cache: bool = True, batch_size: int = 64,
                      show_progress: bool = True) -> np.ndarray:
        """Embeddings of `corpus` in its iteration order (title + text, with `doc_prefix`).

        With cache=True the array is stored under cache_dir('embeddings'), keyed by the model (source and a
        fingerprint of its current weights, so a fine-tuned model never reuses stale vectors), pooling,
        max_length, prefixes, precision, the version of this code and every doc id and text: notebooks that
        encode the same corpus share one computation. The file carries its checksum: a cut or damaged array is
        recomputed, never used."""
        ids = list(corpus)
        texts = [corpus[d].text_for_model for d in ids]
        if not cache:
            return self.encode(texts, batch_size=batch_size, show_progress=show_progress, prefix=self.doc_prefix)
        path = self.cache_path(ids, texts)
        if trusted_cache_file(path):  # checksummed: a cut or damaged array is recomputed, never used
            cached = np.load(path)
            if cached.shape == (len(ids), self.dim):
                return cached
        emb = self.encode(texts, batch_size=batch_size, show_progress=show_progress, prefix=self.doc_prefix)
        with atomic_cache_open(path, "wb") as handle:
            np.save(handle, emb)
        return emb

    # -- helpers -----------------------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        config = self.model.config
        return int(getattr(config, "hidden_size", None) or config.d_model)

    def cache_path(self, doc_ids: Iterable[str], texts: Iterable[str]):
        """Where encode_corpus keeps the embeddings of these documents under the current settings."""
        h = hashlib.sha256()
        settings = {
            "source": self.resolved.source if self.resolved.kind == "hub" else self.resolved.name,
            "gguf": self.resolved.gguf_file, "weights": self._weights_fingerprint(),
            "tokenizer": [type(self.tokenizer).__name__, len(self.tokenizer)], "pooling": self.pooling,
            "normalize": self.normalize, "max_length": self.max_length, "query_prefix": self.query_prefix,
            "doc_prefix": self.doc_prefix, "dtype": str(self.compute_dtype), "code": code_version(__name__),
        }
        h.update(json.dumps(settings, sort_keys=True).encode())
        for doc_id, text in zip(doc_ids, texts):
            h.update(f"{doc_id}\x00{text}\x01".encode())
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(self.model_name).strip("/").split("/")[-1])[:48]
        return cache_dir("embeddings") / f"{slug}-{h.hexdigest()[:24]}.npy"

    @torch.no_grad()
    def _weights_fingerprint(self) -> str:
        """A cheap hash of a strided sample of every parameter: any training step changes it."""
        h = hashlib.sha256()
        for name, param in self.model.named_parameters():
            flat = param.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // 1024)].float().cpu().numpy()
            h.update(name.encode())
            h.update(sample.tobytes())
        return h.hexdigest()
