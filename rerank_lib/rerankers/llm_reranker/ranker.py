"""DecoderReranker: a decoder-only LM as a pointwise reranker (the package docstring describes heads and prompts)."""
from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from ...progress import tqdm

from ...atomic import write_json
from ...code_version import code_version
from ...data.types import Document, Run
from ...models import autocast_context, compute_dtype, load_causal_lm, load_tokenizer, pick_device, precision_setting
from ...collate import pad_collate
from ..protocol import rerank_with
from .features import FeatureStore, pair_key, weights_fingerprint
from .inputs import build_input_ids, first_token_id
from .scorer import DecoderScorer
from .settings import CONFIG_FILE, HEADS, LoraSettings, PromptFormat


@dataclass(frozen=True)
class ReadyDecoder:
    """A causal LM and its tokenizer already in memory (tests build tiny ones), called `name` in settings and saves:
    `DecoderReranker(ReadyDecoder(name, causal_lm, tokenizer), ...)` instead of loading a model by name."""

    name: str
    causal_lm: Any
    tokenizer: Any


class DecoderReranker:
    """A decoder-only LM as a pointwise reranker (see the module docstring for the two heads and three prompts).

    model_name: an offline built-in ('smollm2-135m-instruct'), a local folder or a hub id (Qwen/Qwen2.5-1.5B-Instruct,
        BAAI/bge-reranker-v2-gemma), or a ReadyDecoder (objects in memory).
    head: 'score' (RAG-Retrieval) or 'yes' (FlagEmbedding / the teacher). prompt: a PromptFormat or its kind;
        default 'rag-retrieval' for the score head and 'flagembedding' for the yes head.
    lora: LoraSettings to train adapters only (the head stays trainable for 'score', frozen for 'yes'); None trains
        every weight (RAG-Retrieval's recipe).
    max_length: tokens per pair, document truncated to fit. padding_side: 'right' (default) or 'left'; both score
        identically. Inference autocasts to the precision setting's dtype (models.compute_dtype; 'auto' on a CPU:
        fp32, see below); weights stay fp32.
    """

    def __init__(self, model_name: str | os.PathLike | ReadyDecoder = "smollm2-135m-instruct", head: str = "score",
                 prompt: PromptFormat | str | None = None, max_length: int = 192, lora: LoraSettings | None = None,
                 device=None, init_seed: int = 0, padding_side: str = "right"):
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        if prompt is None:
            prompt = "rag-retrieval" if head == "score" else "flagembedding"
        self.prompt = PromptFormat(kind=prompt) if isinstance(prompt, str) else prompt
        if max_length < 8:
            raise ValueError(f"max_length must be >= 8, got {max_length}")
        ready = model_name if isinstance(model_name, ReadyDecoder) else None
        self.model_name = ready.name if ready else os.fspath(model_name)
        self.head, self.max_length, self.lora = head, int(max_length), lora
        self.device = torch.device(device) if device is not None else pick_device()
        # CPU: fp32. bf16 autocast made SmolLM2's forward ~5x SLOWER on this machine's AVX512-BF16 CPU (measured,
        # 8 x 192 tokens), unlike MiniLM where it helps; on GPUs bf16/fp16 as usual.
        # The precision setting 'auto' (models.compute_dtype) keeps that CPU exception; 'bf16' / 'fp32' are obeyed.
        self.compute_dtype = (compute_dtype(self.device) if self.device.type == "cuda" or precision_setting() != "auto"
                              else torch.float32)

        tok = copy.copy(ready.tokenizer) if ready else load_tokenizer(self.model_name)  # padding is ours
        if tok.pad_token_id is None:  # RAG-Retrieval: pad with EOS (the attention mask tells them apart)
            tok.pad_token = tok.eos_token
        tok.padding_side = padding_side
        self.tokenizer = tok
        self.yes_id, self.no_id = first_token_id(tok, "Yes"), first_token_id(tok, "No")

        # models.load_causal_lm hands out the caller's own copy (one GGUF de-quantisation per machine, one load per
        # process); a ready causal_lm is copied so that training never changes the caller's model.
        base = copy.deepcopy(ready.causal_lm) if ready else load_causal_lm(self.model_name, device="cpu")
        backbone = base.get_decoder() if hasattr(base, "get_decoder") else base.model
        hidden = int(base.config.hidden_size)
        # The LM head stays outside the trained module: only the teacher's full-vocabulary normalisation uses it,
        # at one position per pair.
        self.lm_head = base.get_output_embeddings()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            if head == "score":  # AutoModelForSequenceClassification's score layer: no bias, N(0, initializer_range)
                layer = nn.Linear(hidden, 1, bias=False)
                nn.init.normal_(layer.weight, std=float(getattr(base.config, "initializer_range", 0.02)))
            else:
                lm_weight = self.lm_head.weight.detach()
                lm_bias = getattr(self.lm_head, "bias", None)
                layer = nn.Linear(hidden, 2, bias=lm_bias is not None)
                with torch.no_grad():
                    layer.weight.copy_(lm_weight[[self.yes_id, self.no_id]])
                    if lm_bias is not None:
                        layer.bias.copy_(lm_bias.detach()[[self.yes_id, self.no_id]])
        if lora is not None:
            from peft import LoraConfig, get_peft_model

            backbone = get_peft_model(backbone, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                                           target_modules=list(lora.target_modules), bias="none"))
            layer.requires_grad_(head == "score")  # FlagEmbedding's LoRA leaves the LM head frozen
        # a 'score' head is a new layer until trained weights are loaded (load / load_weights); 'yes' reads the LM head
        self.fresh_head = ["score layer (new)"] if head == "score" else []
        self.model = DecoderScorer(backbone, layer, head).to(self.device)
        self.lm_head.to(self.device)
        self.model.eval()
        self.cache_features = True  # score() reuses cached hidden states (see score)
        self._collate = pad_collate(self.tokenizer, padding_side=padding_side)

    def __repr__(self) -> str:
        lora = f", lora=r{self.lora.r}" if self.lora else ""
        return (f"DecoderReranker({self.model_name!r}, head={self.head!r}, prompt={self.prompt.kind!r}, "
                f"max_length={self.max_length}{lora})")

    def trainable_parameters(self) -> tuple[int, int]:
        """(trainable, total) parameter counts."""
        params = list(self.model.parameters())
        return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)

    # -- the shared path: training and inference -------------------------------------------------------------

    def encode_pairs(self, queries: Sequence[str], docs: Sequence[str]) -> list[dict]:
        """Unpadded token ids of each pair (build_input_ids)."""
        if len(queries) != len(docs):
            raise ValueError(f"{len(queries)} queries for {len(docs)} docs")
        return [{"input_ids": build_input_ids(self.tokenizer, self.prompt, q, d, self.max_length)}
                for q, d in zip(queries, docs)]

    def collate(self, features: list[dict]) -> dict:
        return self._collate(features)

    def batch_logits(self, model: nn.Module, batch: Mapping) -> torch.Tensor:
        """[N] for pairs, [B, G] for groups (flattened through the model and back)."""
        device = next(model.parameters()).device
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        shape = ids.shape
        if ids.dim() == 3:
            ids, mask = ids.reshape(-1, shape[-1]), mask.reshape(-1, shape[-1])
        return model(ids, mask).reshape(shape[:-1])

    # -- inference -------------------------------------------------------------------------------------------

    def _batches(self, queries, docs, batch_size: int, show_progress: bool, desc: str):
        if isinstance(queries, str):
            queries = [queries] * len(docs)
        features = self.encode_pairs(list(queries), list(docs))
        order = np.argsort(-np.fromiter((len(f["input_ids"]) for f in features), dtype=np.int64), kind="stable")
        for start in tqdm(range(0, len(features), batch_size), disable=not show_progress, desc=desc, unit="batch"):
            idx = order[start:start + batch_size]
            yield idx, self.collate([features[i] for i in idx])

    def score(self, queries: str | Sequence[str], docs: Sequence[str], batch_size: int = 16,
              show_progress: bool = False) -> np.ndarray:
        """float32 scores (score-head logit or Yes logit), one per pair, in input order; length-sorted batches.

        With `cache_features` (the default) the backbone's hidden states come from hidden_features' disk cache
        (keyed by the current weights, so a trained backbone never reuses stale ones) and only the head runs
        here; set it False while training the backbone, whose dev evaluations would only fill the cache."""
        if self.cache_features:
            feats = self.hidden_features(queries, docs, batch_size=batch_size, show_progress=show_progress)
            with torch.no_grad():
                last = torch.from_numpy(feats).to(self.device)
                return self.model.head_logits(last)[:, 0].float().cpu().numpy().astype(np.float32)
        out = np.empty(len(docs), dtype=np.float32)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode(), autocast_context(self.device, dtype=self.compute_dtype):
                for idx, batch in self._batches(queries, docs, batch_size, show_progress, "score"):
                    out[idx] = self.batch_logits(self.model, batch).float().cpu().numpy()
        finally:
            self.model.train(was_training)
        return out

    def yes_probability(self, queries: str | Sequence[str], docs: Sequence[str], normalize: str = "yes_no",
                        batch_size: int = 16, show_progress: bool = False, cache: bool = True) -> np.ndarray:
        """P("Yes") at the first generated step, from one forward pass per pair (head='yes'; the hidden states come
        from hidden_features, so pairs already scored cost nothing).

        normalize='yes_no': softmax over the two logits (Yes, No) -> in [0, 1], symmetric, what the distillation
        format's pos_scores need; 'vocab': softmax over the whole vocabulary at that one position (RAG-Retrieval's
        model_llm_generate.py: softmax(first-step logits)[yes]).
        """
        if self.head != "yes":
            raise ValueError("yes_probability needs head='yes'")
        if normalize not in ("yes_no", "vocab"):
            raise ValueError(f"normalize must be 'yes_no' or 'vocab', got {normalize!r}")
        feats = self.hidden_features(queries, docs, batch_size=batch_size, show_progress=show_progress, cache=cache)
        return self.probability_from_features(feats, normalize)

    @torch.no_grad()
    def probability_from_features(self, feats: np.ndarray, normalize: str = "yes_no") -> np.ndarray:
        """yes_probability's projection of hidden states (hidden_features' rows) onto Yes/No or the vocabulary."""
        last = torch.from_numpy(np.asarray(feats, dtype=np.float32)).to(self.device)
        if normalize == "yes_no":
            prob = torch.softmax(self.model.head_logits(last).float(), dim=-1)[:, 0]
        else:
            prob = torch.softmax(self.lm_head(last.to(self.lm_head.weight.dtype)).float(), dim=-1)[:, self.yes_id]
        return prob.cpu().numpy().astype(np.float32)

    def rerank(self, run: Run, corpus: Mapping[str, Document], queries: Mapping[str, str], depth: int = 100, *,
               batch_size: int = 16, show_progress: bool = False) -> Run:
        """The Ranker protocol: score each query's top-`depth` candidates of `run` (rerank_with)."""
        return rerank_with(self, run, corpus, queries, depth=depth, batch_size=batch_size,
                           show_progress=show_progress)

    def hidden_features(self, queries: str | Sequence[str], docs: Sequence[str], batch_size: int = 16,
                        show_progress: bool = False, cache: bool = True) -> np.ndarray:
        """float32 [N, hidden]: the backbone's hidden state at the scored position of each pair, one forward each.

        With cache=True the rows are kept on disk (cache_dir('llm_features')), keyed by the model, its trained
        weights, the prompt, max_length and each pair's text, so scoring the same pairs again (another head, the
        teacher probability, a second notebook run) costs no forward pass.
        """
        if isinstance(queries, str):
            queries = [queries] * len(docs)
        queries, docs = list(queries), list(docs)
        if len(queries) != len(docs):
            raise ValueError(f"{len(queries)} queries for {len(docs)} docs")
        hidden = int(self.model.backbone.config.hidden_size) if not docs else None
        store = FeatureStore(self._feature_key()) if cache else None
        keys = [pair_key(q, d) for q, d in zip(queries, docs)]
        found = store.get(keys) if store is not None else {}
        todo = [i for i, k in enumerate(keys) if k not in found]
        if todo:
            self.model.eval()
            with torch.inference_mode(), autocast_context(self.device, dtype=self.compute_dtype):
                parts = {}
                for idx, batch in self._batches([queries[i] for i in todo], [docs[i] for i in todo], batch_size,
                                                show_progress, "features"):
                    last = self.model.last_hidden(batch["input_ids"].to(self.device),
                                                  batch["attention_mask"].to(self.device))
                    for row, vec in zip(idx, last.float().cpu().numpy()):
                        parts[int(row)] = vec
            new = np.stack([parts[j] for j in range(len(todo))]).astype(np.float32)
            for j, i in enumerate(todo):
                found[keys[i]] = new[j]
            if store is not None:
                store.put({keys[i]: new[j] for j, i in enumerate(todo)})
        if not keys:
            return np.zeros((0, hidden or 0), dtype=np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32)

    def head_rows(self) -> dict[str, np.ndarray]:
        """The head's weight rows as arrays: {'score'} or {'yes', 'no'} (to start a head-only ranker from)."""
        if self.head == "score":
            return {"score": self.model.score.weight.detach()[0].cpu().numpy()}
        weight = self.model.yes_no.weight.detach().cpu().numpy()
        return {"yes": weight[0], "no": weight[1]}

    def _feature_key(self) -> str:
        h = hashlib.sha256(json.dumps({**self.settings(), "padding_side": None, "code": code_version(__name__)},
                                      sort_keys=True).encode())
        h.update(weights_fingerprint(self.model.backbone).encode())
        return h.hexdigest()[:24]

    # -- persistence ------------------------------------------------------------------------------------------

    def settings(self) -> dict:
        return {"model_name": self.model_name, "head": self.head, "prompt": asdict(self.prompt),
                "max_length": self.max_length, "lora": asdict(self.lora) if self.lora else None,
                "padding_side": self.tokenizer.padding_side}

    def save(self, directory: str | os.PathLike) -> Path:
        """The trained weights only (head, adapters; every weight when trained fully) and the settings."""
        directory = Path(directory)
        self.model.save_pretrained(directory)
        write_json(directory / CONFIG_FILE, self.settings())
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, device=None, ready: ReadyDecoder | None = None) -> "DecoderReranker":
        """A saved ranker (`save`): its settings, its trained weights over its base model (loaded by name, or
        `ready`)."""
        directory = Path(directory)
        meta_path = directory / CONFIG_FILE
        if not meta_path.exists():
            raise FileNotFoundError(f"{meta_path}: not a saved DecoderReranker")
        meta = json.loads(meta_path.read_text())
        lora = meta.get("lora")
        if lora:
            lora["target_modules"] = tuple(lora["target_modules"])
        ranker = cls(ready or meta["model_name"], head=meta["head"], prompt=PromptFormat(**meta["prompt"]),
                     max_length=meta["max_length"], lora=LoraSettings(**lora) if lora else None, device=device,
                     padding_side=meta.get("padding_side", "right"))
        ranker.load_weights(directory)
        return ranker

    def load_weights(self, folder: str | os.PathLike) -> None:
        """Copy trained weights saved by the training loop (best/, final/) or by save() into the model."""
        self.model.load_trainable(folder)
        self.fresh_head = []
