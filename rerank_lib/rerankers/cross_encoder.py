"""The BERT-like cross-encoder reranker (bge-reranker, RAG-Retrieval `bert_encoder`) and `fit`, its training.

A cross-encoder reads `[CLS] query [SEP] document [SEP]` and a linear head on top gives one logit: the relevance
score. Training and inference build their inputs with the same `encode_pairs`, so what the model learns on is what
it is scored on.

`fit` trains any ranker that offers four things (this class, or part B's LLM-decoder reranker):
    ranker.model                                  the torch module that is trained in place
    ranker.encode_pairs(queries, docs)            -> list of unpadded feature dicts (input_ids, ...)
    ranker.collate(features)                      -> a padded batch (dynamic padding; nested groups pad too)
    ranker.batch_logits(model, batch)             -> logits [N] for pairs, [B, G] for groups
and, for eval_fn / restore_best, `ranker.rerank(...)` and optionally `ranker.load_weights(folder)` (default: the
state dict of the loop's best/ folder is copied into ranker.model).
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from ..progress import tqdm

from ..atomic import write_json
from ..data.pairs import TrainGroup, sample_group
from ..data.trec import ranked, top_k
from ..data.types import Document, Run
from ..evaluation import evaluate
from ..losses import GROUPWISE, LOSSES, POINTWISE, group_ce, kd_term
from ..models import autocast_context, load_model, load_tokenizer, pick_device, pick_dtype
from ..training import TrainConfig, TrainResult, pad_collate, train

__all__ = ["CrossEncoder", "fit", "RerankEvaluator", "CONFIG_FILE"]

CONFIG_FILE = "cross_encoder.json"
_TOKEN_KEYS = ("input_ids", "attention_mask", "token_type_ids")


class CrossEncoder:
    """A one-logit sequence classifier over (query, document) pairs.

    model_name: an offline built-in ('minilm-l6': all-MiniLM-L6-v2's encoder under a NEW, untrained head), a local
        folder (a saved CrossEncoder, a checkpoint) or a hub id (e.g. BAAI/bge-reranker-v2-m3, its trained head).
    max_length: tokens per pair; the document is cut to fit ('longest_first': the query is cut only when it is the
        longer of the two).
    dtype: the inference compute dtype (autocast); None picks bf16 where the hardware computes it natively (GPU,
        CPU with AVX512-BF16/AMX) and fp32 elsewhere. Weights stay fp32 (training keeps fp32 master weights).
    init_seed: seeds the fresh head (when there is one) without touching the global RNG.
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
        self.compute_dtype = dtype if dtype is not None else pick_dtype(self.device)
        self.tokenizer = load_tokenizer(self.model_name)
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the "newly initialized head" warning is expected: we say it ourselves
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(init_seed)
                self.model = load_model(self.model_name, auto_class=AutoModelForSequenceClassification,
                                        device=self.device, dtype=torch.float32, num_labels=1)
        finally:
            hf_logging.set_verbosity(verbosity)
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.eval()
        self._collate = pad_collate(self.tokenizer)

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
        """Dynamic padding to the longest sequence of the batch (groups: [B, G, L])."""
        return self._collate(features)

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
        mixed = self.compute_dtype != torch.float32
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode(), autocast_context(self.device, enabled=mixed,
                                                          dtype=self.compute_dtype if mixed else None):
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

    def save(self, directory: str | os.PathLike) -> Path:
        """save_pretrained (weights + config) and the tokenizer, plus cross_encoder.json (max_length, formats)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        write_json(directory / CONFIG_FILE, {"max_length": self.max_length, "query_format": self.query_format,
                                             "document_format": self.document_format, "base_model": self.model_name})
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, device=None, dtype: torch.dtype | None = None) -> "CrossEncoder":
        directory = Path(directory)
        meta_path = directory / CONFIG_FILE
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        return cls(directory, max_length=meta.get("max_length", 512), device=device, dtype=dtype,
                   query_format=meta.get("query_format", "{}"), document_format=meta.get("document_format", "{}"))

    def load_weights(self, folder: str | os.PathLike) -> None:
        """Copy weights saved by the training loop (save_pretrained output or model.pt) into self.model."""
        _load_state(self.model, Path(folder))


def rerank_with(ranker, run: Run, corpus: Mapping[str, Document], queries: Mapping[str, str], depth: int = 100,
                batch_size: int = 64, show_progress: bool = False) -> Run:
    """`ranker.score` over each query's top-`depth` candidates of `run`, assembled into a Run."""
    candidates = top_k(run, depth)
    missing_q = [q for q in candidates if q not in queries]
    missing_d = sorted({d for docs in candidates.values() for d in docs if d not in corpus})
    if missing_q or missing_d:
        raise KeyError(f"rerank: {len(missing_q)} queries and {len(missing_d)} documents have no text, "
                       f"e.g. {(missing_q + missing_d)[:3]}")
    pairs = [(q, d) for q, docs in candidates.items() for d, _ in ranked(docs)]
    scores = ranker.score([queries[q] for q, _ in pairs], [corpus[d].text_for_model for _, d in pairs],
                          batch_size=batch_size, show_progress=show_progress)
    out: Run = {q: {} for q in candidates}
    for (q, d), s in zip(pairs, scores.tolist()):
        out[q][d] = float(s)
    return out


def _load_state(model: torch.nn.Module, folder: Path) -> None:
    if (folder / "model.pt").exists():
        state = torch.load(folder / "model.pt", map_location="cpu")
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


# ---------------------------------------------------------------------------------------------------- evaluation


class RerankEvaluator:
    """An eval_fn for `fit`: rerank a dev run's top-`depth` and return ir-measures metrics, e.g. {'nDCG@10': ..}.

    Keeps every reranked run (`self.runs`, in evaluation order) so that the best checkpoint's dev run can choose
    an interpolation weight without scoring the dev slice again.
    """

    def __init__(self, run: Run, corpus: Mapping[str, Document], queries: Mapping[str, str], qrels,
                 depth: int = 20, measures: Sequence[str] = ("nDCG@10",), batch_size: int = 64):
        self.run, self.corpus, self.queries, self.qrels = top_k(run, depth), corpus, queries, qrels
        self.depth, self.measures, self.batch_size = depth, list(measures), batch_size
        self.runs: list[Run] = []

    def __call__(self, ranker) -> dict[str, float]:
        reranked = ranker.rerank(self.run, self.corpus, self.queries, depth=self.depth, batch_size=self.batch_size)
        self.runs.append(reranked)
        return evaluate(reranked, self.qrels, self.measures)

    def run_at(self, result: TrainResult, step: int | None = None) -> Run:
        """The dev run of the evaluation at `step` (default: the best step of `result`)."""
        step = result.best_step if step is None else step
        steps = [row["step"] for row in result.eval_history]
        if step not in steps or len(self.runs) != len(steps):
            raise KeyError(f"no dev run kept for step {step} (evaluated steps: {steps})")
        return self.runs[steps.index(step)]


# ---------------------------------------------------------------------------------------------------- training


class _GroupExamples(torch.utils.data.Dataset):
    """Pre-drawn groups: example k is group `gi[k]` with docs `idx[k]` (positive first), features pre-encoded."""

    def __init__(self, encoded: list[list[dict]], groups: Sequence[TrainGroup], plan: list[tuple[int, list[int]]],
                 with_teacher: bool):
        self.encoded, self.groups, self.plan, self.with_teacher = encoded, groups, plan, with_teacher

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, k: int) -> dict:
        gi, idx = self.plan[k]
        feats = [self.encoded[gi][j] for j in idx]
        item = {key: [f[key] for f in feats] for key in feats[0]}
        item["target"] = [float(self.groups[gi].labels[j]) for j in idx]
        if self.with_teacher:
            item["teacher"] = [float(self.groups[gi].teacher_scores[j]) for j in idx]
        return item

    def length(self, k: int) -> int:
        gi, idx = self.plan[k]
        return sum(len(self.encoded[gi][j]["input_ids"]) for j in idx)


def fit(ranker, groups: Sequence[TrainGroup], *, loss: str, config: TrainConfig, group_size: int = 8,
        kd_weight: float = 0.0, kd_temperature: float = 1.0, eval_fn: Callable | None = None,
        restore_best: bool = True, head_lr: float | None = None, length_grouping: bool = True) -> TrainResult:
    """Fine-tune `ranker` on `groups` with one of the losses of rerank_lib.losses (`LOSSES`); returns the loop's
    TrainResult (history = loss curve, eval_history = dev curve).

    Pointwise losses (point_ce, point_mse; RAG-Retrieval): every (query, doc, label) pair of every group is one
        example; `config.per_device_batch_size` counts pairs; `config.num_epochs` passes over all pairs.
    Group losses (group_ce, ranknet, listwise_ce; FlagEmbedding): one example is a group of `group_size` docs,
        1 positive + group_size-1 negatives drawn per pass with `sample_group` (seeded by config.seed, the pass
        and the group); `per_device_batch_size` counts groups. The `config.num_epochs` passes are drawn up front
        and trained as one shuffled epoch of passes x groups (so every pass has fresh negatives and resuming is
        exact); history rows report `epoch` in passes.
    kd_weight > 0 (group losses): adds kd_weight x -sum softmax(teacher/kd_temperature) log_softmax(student), the
        FlagEmbedding distillation term (kd_weight 1, T 1 there); every group needs teacher_scores.
    eval_fn(ranker) -> {metric: value} runs every config.eval_every_steps and at the end; with restore_best the
        ranker ends with the weights of the best evaluation (checkpoint selection on a dev set).
    head_lr: a separate learning rate for the freshly initialised classification head (None: config's).
    length_grouping: batches of similar token length (less padding), via the loop's length-grouped sampler.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    groups = [g for g in groups if g.docs]
    if not groups:
        raise ValueError("no training groups with documents")
    if kd_weight and loss in POINTWISE:
        raise ValueError("kd_weight applies to group losses (the KD term is over a group's softmax)")
    if kd_weight and any(g.teacher_scores is None for g in groups):
        raise ValueError("kd_weight > 0 needs teacher_scores on every group")

    # Encode every (query, doc) of every group once; examples only point into this.
    flat_q = [g.query for g in groups for _ in g.docs]
    flat_d = [d for g in groups for d in g.docs]
    flat = ranker.encode_pairs(flat_q, flat_d)
    encoded, pos = [], 0
    for g in groups:
        encoded.append(flat[pos:pos + len(g.docs)])
        pos += len(g.docs)

    run_config = config
    passes = 1
    if loss in POINTWISE:
        dataset = [dict(encoded[gi][j], target=float(g.labels[j])) for gi, g in enumerate(groups)
                   for j in range(len(g.docs))]
        lengths = [len(ex["input_ids"]) for ex in dataset]

        def compute_loss(model, batch):
            return LOSSES[loss](ranker.batch_logits(model, batch), batch["target"])
    else:
        passes = max(1, int(config.num_epochs))
        plan = [(gi, sample_group(g, group_size, config.seed, epoch, gi))
                for epoch in range(passes) for gi, g in enumerate(groups)]
        dataset = _GroupExamples(encoded, groups, plan, with_teacher=bool(kd_weight))
        lengths = [dataset.length(k) for k in range(len(dataset))]
        run_config = dataclasses.replace(config, num_epochs=1)
        loss_fn = LOSSES[loss]

        def compute_loss(model, batch):
            logits = ranker.batch_logits(model, batch)
            if loss == "group_ce":
                value = group_ce(logits)
            else:
                value = loss_fn(logits, batch["target"])
            if kd_weight:
                value = value + kd_weight * kd_term(logits, batch["teacher"].to(logits.device), kd_temperature)
            return value

    optimizer_params = _head_param_groups(ranker.model, config, head_lr) if head_lr else None
    wrapped_eval = (lambda model: eval_fn(ranker)) if eval_fn is not None else None
    result = train(ranker.model, dataset, ranker.collate, compute_loss, run_config, eval_fn=wrapped_eval,
                   optimizer_params=optimizer_params, lengths=lengths if length_grouping else None)
    if passes > 1:  # report progress in passes over the groups
        for row in result.history + result.eval_history:
            row["epoch"] = round(row["epoch"] * passes, 4)
    result.run_info.update(loss=loss, passes=passes, examples=len(dataset), group_size=group_size
                           if loss in GROUPWISE else 1, kd_weight=kd_weight, kd_temperature=kd_temperature,
                           pairs_per_step=run_config.per_device_batch_size * run_config.gradient_accumulation_steps
                           * (group_size if loss in GROUPWISE else 1))
    if restore_best and result.best_dir is not None:
        if hasattr(ranker, "load_weights"):
            ranker.load_weights(result.best_dir)
        else:
            _load_state(ranker.model, Path(result.best_dir))
    ranker.model.eval()
    return result


def _head_param_groups(model: torch.nn.Module, config: TrainConfig, head_lr: float) -> list[dict]:
    """AdamW groups: the encoder at config.learning_rate, the classification head (and pooler) at head_lr;
    weight decay on matrices only."""
    head_names = ("classifier", "score", "pooler")
    groups: dict[tuple, list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_head = any(part in name.split(".") for part in head_names)
        key = (head_lr if is_head else config.learning_rate, config.weight_decay if p.ndim >= 2 else 0.0)
        groups.setdefault(key, []).append(p)
    return [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]
