"""What LocalRQA's three retriever trainers (ctl.py, dca.py, rpg.py) share: training examples, the bi-encoder forward
with grad, the evaluation run during training, the best-checkpoint reload and the reader-score cache (the readers:
readers.py). Each trainer gives `train()` a collate_fn and a compute_loss, whose settings become a loss call in
objectives.py. `train()` updates the bi-encoder's own transformer (`encoder.model`), so inference
(`BiEncoder.encode`) uses exactly the tokenisation, pooling and normalisation that training used.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch

from ..atomic import discard, trusted_cache_file, write_checksum, write_json
from ..code_version import code_version
from ..data.localrqa import QAExample
from ..data.trec import ranked
from ..data.types import Document, Run
from ..first_stage import dense_search, rerank_with_encoder
from ..paths import cache_dir

@dataclass(frozen=True)
class RetrievalExample:
    """One training question: the gold passage it learns (`positive_id`), all its gold passages (never used as
    negatives for it), hard negatives, and the gold answer (DCA / RPG)."""

    qid: str
    question: str
    positive_id: str
    gold_ids: tuple[str, ...]
    hard_neg_ids: tuple[str, ...] = ()
    answer: str | None = None


def examples_from_localrqa(examples: Iterable[QAExample]) -> list[RetrievalExample]:
    """LocalRQA's flattened (question, gold_docs[0], hard_neg_docs) examples (trainers/retriever/datasets.py)."""
    return [RetrievalExample(ex.qid, ex.question, ex.gold_doc_ids[0], ex.gold_doc_ids, ex.hard_neg_doc_ids,
                             ex.gold_answer) for ex in examples]


def examples_from_qrels(queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]],
                        negatives: Run | None = None, n_hard: int = 2,
                        answers: Mapping[str, str] | None = None) -> list[RetrievalExample]:
    """BEIR-style training data: one example per (query, relevant document); hard negatives are the top `n_hard`
    non-relevant documents of `negatives` (e.g. the BM25 run), as LocalRQA's data has two per question."""
    out = []
    for qid in sorted(qrels):
        if qid not in queries:
            continue
        gold = tuple(sorted(d for d, g in qrels[qid].items() if g > 0))
        hard = tuple(d for d, _ in ranked(negatives.get(qid, {})) if d not in gold)[:n_hard] if negatives else ()
        for doc_id in gold:
            out.append(RetrievalExample(qid, queries[qid], doc_id, gold, hard, (answers or {}).get(qid)))
    return out


def tokenize_queries(encoder, texts: Sequence[str]):
    return encoder.tokenize([encoder.query_prefix + t for t in texts])


def tokenize_documents(encoder, texts: Sequence[str]):
    return encoder.tokenize([encoder.doc_prefix + t for t in texts])


def encoder_forward(encoder, model: torch.nn.Module, batch) -> torch.Tensor:
    """Pooled embeddings of a tokenised batch with grad, through `model` (the encoder's transformer as `train()`
    hands it over, possibly wrapped for DDP): BiEncoder.embed itself, so training and inference cannot drift."""
    return encoder.embed(batch, model=model)


def retrieve(encoder, corpus: Mapping[str, Document], queries: Mapping[str, str], depth: int = 100,
             candidates: Run | None = None, cache: bool = True) -> Run:
    """What LocalRQA retrieves while it evaluates a retriever under training (DevEvaluator's `produce`): the whole
    `corpus` searched (its FaissRetriever), or each query's top-`depth` `candidates` reranked (a cheap dev signal).
    Corpus embeddings are cached by weights: RPG's index refresh and the selected checkpoint's test run reuse them."""
    if candidates is not None:
        return rerank_with_encoder(encoder, candidates, corpus, queries, depth=depth, cache=cache)
    corpus_emb = encoder.encode_corpus(corpus, cache=cache, show_progress=False)
    return dense_search(encoder, corpus, queries, k=depth, corpus_embeddings=corpus_emb)


def load_weights(encoder, folder: str | Path) -> None:
    """Load the weights `train()` saved (best/ or final/, save_pretrained output) into the encoder in place."""
    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors"))
    if files:
        from safetensors.torch import load_file

        state = {}
        for f in files:
            state.update(load_file(str(f)))
    elif (folder / "pytorch_model.bin").exists():
        state = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    elif (folder / "model.pt").exists():
        state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    else:
        raise FileNotFoundError(f"{folder}: no weights (model.safetensors, pytorch_model.bin or model.pt)")
    missing, unexpected = encoder.model.load_state_dict(state, strict=False)
    real_missing = [m for m in missing if "position_ids" not in m]
    if real_missing or unexpected:
        raise ValueError(f"{folder}: weights do not fit {encoder.model_name}: missing {real_missing[:3]}, "
                         f"unexpected {unexpected[:3]}")


class ScoreCache:
    """Reader scores on disk (one JSON file per reader + signal + settings + version of the code that computes them:
    this module and `code`, the signal's module), keyed by the texts they were computed from: the LM calls are the
    expensive part of DCA and RPG on a CPU, so a rerun computes nothing twice. The file carries its checksum: a
    damaged one is recomputed, never read."""

    def __init__(self, kind: str, settings: Mapping, enabled: bool = True, code: Sequence[str] = ()):
        key = {"kind": kind, **settings, "code": code_version(__name__, *code)}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        self.path = cache_dir("reader_scores") / f"{kind}-{digest}.json"
        self.enabled = enabled
        self.values: dict[str, list[float]] = {}
        if enabled and trusted_cache_file(self.path):
            self.values = json.loads(self.path.read_text(encoding="utf-8"))
        self._dirty = False

    @staticmethod
    def key(*texts: str | Sequence[str]) -> str:
        h = hashlib.sha256()
        for t in texts:
            for piece in ([t] if isinstance(t, str) else list(t)):
                h.update(f"{piece}\x00".encode("utf-8"))
            h.update(b"\x01")
        return h.hexdigest()

    def get(self, key: str):
        return self.values.get(key)

    def put(self, key: str, value) -> None:
        self.values[key] = value
        self._dirty = True

    def save(self) -> None:
        if self.enabled and self._dirty:
            discard(self.path)
            write_checksum(write_json(self.path, self.values))
            self._dirty = False
