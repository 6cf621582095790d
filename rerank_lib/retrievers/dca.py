"""DCA: distilling a reader's cross-attention into the retriever (Izacard & Grave, "Distilling Knowledge from Reader
to Retriever", ICLR 2021), as LocalRQA runs it (trainers/retriever/retriever_fid_trainer.py and
scripts/train/retriever/train_fid_retriever.py).

1. Each training question gets `n_context` candidate passages ("ctxs": the gold passage first, then passages of a
   first-stage retriever) and the gold answer.
2. A reader scores every candidate by the attention the answer pays to it, averaged over heads, layers and the
   passage's tokens, once, without grad (LocalRQA stores these as `crossattention_score`).
3. LocalRQA's `modify_score` raises the gold passage's score to max + std of the question's scores.
4. The retriever scores the same candidates with q . p / sqrt(d) and is trained with
   KL( softmax(reader / T) || softmax(retriever) ), T = reader_temperature = 0.1.

Readers:
- FiD (`FiDReader`, e.g. google/flan-t5-* online, LocalRQA's choice): each "question: q title: t context: p" is
  encoded separately, the decoder reads their concatenation, and the score is the decoder's cross-attention from
  its first step (the one that emits the answer's first token), as FiD's `get_crossattention_scores`.
- decoder-only LM (`LMReader`, SmolLM2 offline), an adaptation: one prompt holds all candidates (in a seeded
  shuffled order, so the reader's position bias is not the retriever's rank) followed by the question and the
  gold answer; the score of a passage is the self-attention of the answer tokens (positions that predict them)
  over that passage's token span, averaged over heads, layers, answer tokens and passage tokens.

Both aggregate log-attention: FiD's code averages the pre-softmax scores, and the mean over a passage's tokens of
log(attention) equals the mean pre-softmax score minus the log-normaliser of that query row, a constant shared by
every passage of the question, which the softmax over passages ignores. (Averaging the probabilities instead
gives scores of order 1e-3 that T = 0.1 turns into a flat target.)

Known LocalRQA problems, avoided here:
- its optional projection layer (`--projection True`, used in its DCA docs) is created outside the model: the
  optimizer never sees it (it stays at its random initialisation) and it is never saved, so the saved retriever
  is not the trained one. There is no projection here: the trained transformer is the whole retriever.
- KLDivLoss's default 'mean' reduction divides by batch x passages (see losses.distillation.kl_divergence).
- With a normalising encoder (all-MiniLM-L6-v2, cosine), q . p / sqrt(d) lies in [-1/sqrt(d), 1/sqrt(d)]
  (+-0.05 for d = 384) and the retriever's softmax cannot leave uniform; `score_scale` then replaces 1/sqrt(d) by
  1/tau (tau = 0.05, the CTL temperature). For un-normalised encoders (Contriever, the paper profile) keep None.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from ..data.trec import ranked
from ..data.types import Run
from . import objectives
from .readers import TINY, FiDReader, LMReader
from .training import RetrievalExample, ScoreCache, encoder_forward, tokenize_documents, tokenize_queries


@dataclass(frozen=True)
class DCAConfig:
    n_context: int = 4  # candidates per question (LocalRQA: 50)
    reader_temperature: float = 0.1
    boost_gold: bool = True  # LocalRQA's modify_score: gold passage -> max + std
    score_scale: float | None = None  # None: 1/sqrt(d) (the paper); 1/tau for normalised encoders
    answer_positions: str | None = None  # 'first' | 'all'; None: 'first' for FiD, 'all' for a decoder-only LM
    shuffle_passages: bool = True  # decoder-only reader: seeded prompt order

    def __post_init__(self):
        if self.n_context < 2:
            raise ValueError("n_context must be >= 2")
        if self.answer_positions not in (None, "first", "all"):
            raise ValueError("answer_positions must be 'first', 'all' or None")


def span_scores(log_attention: torch.Tensor, spans: Sequence[tuple[int, int]]) -> list[float]:
    """log_attention: (layers, heads, rows, keys). Mean over layers, heads, rows and each span's keys."""
    return [float(log_attention[..., s:e].mean()) if e > s else float("-inf") for s, e in spans]


def _rows(answer_span: tuple[int, int], positions: str) -> list[int]:
    start, end = answer_span
    return [start - 1] if positions == "first" else list(range(start - 1, end - 1))


def decoder_attention_scores(reader: LMReader, question: str, passages: Sequence[str], answer: str,
                             positions: str = "all", order: Sequence[int] | None = None) -> list[float]:
    """Per-passage attention scores from one concatenated prompt, returned in the order of `passages`.

    `order` is the order in which passages appear in the prompt (a permutation of range(len(passages)));
    rows are the positions that predict the answer tokens (`first`: only the one predicting its first token)."""
    order = list(range(len(passages))) if order is None else list(order)
    if sorted(order) != list(range(len(passages))):
        raise ValueError(f"order {order} is not a permutation of {len(passages)} passages")
    inp = reader.build(question, [passages[i] for i in order], answer)
    out = reader.forward([inp], output_attentions=True)
    rows = _rows(inp.answer_span, positions)
    att = torch.stack([layer[0][:, rows, :] for layer in out.attentions]).float()  # (L, H, R, T)
    in_prompt = span_scores(att.clamp_min(TINY).log(), inp.passage_spans)
    scores = [0.0] * len(passages)
    for slot, idx in enumerate(order):
        scores[idx] = in_prompt[slot]
    return scores


def boost_gold(scores: Sequence[float], gold_index: int = 0) -> list[float]:
    """LocalRQA's modify_score: the gold passage's score becomes max + std (population std) of the question's
    scores, so the target ranks it first whatever the reader thought."""
    values = np.asarray(scores, dtype=float)
    out = values.tolist()
    out[gold_index] = float(values.max() + values.std())
    return out


def build_candidates(example: RetrievalExample, run: Run | None, n_context: int) -> list[str]:
    """LocalRQA's ctxs: the gold passage first, then the best-ranked non-gold passages of a first-stage run."""
    others = [d for d, _ in ranked((run or {}).get(example.qid, {})) if d not in example.gold_ids]
    return [example.positive_id] + others[: n_context - 1]


@dataclass(frozen=True)
class DCAExample:
    qid: str
    question: str
    doc_ids: tuple[str, ...]  # candidates; doc_ids[0] is the gold passage
    target: tuple[float, ...]  # reader scores (gold boosted), aligned with doc_ids
    reader_raw: tuple[float, ...]  # reader scores before the boost


def reader_targets(reader, examples: Sequence[RetrievalExample], candidates: Mapping[str, Sequence[str]],
                   passages: Mapping[str, str], config: DCAConfig = DCAConfig(), seed: int = 0,
                   titles: Mapping[str, str] | None = None, progress: bool = True) -> list[DCAExample]:
    """Reader scores for every example's candidates (cached on disk, computed once), aligned with the candidates."""
    from ..progress import tqdm

    fid = isinstance(reader, FiDReader)
    positions = config.answer_positions or ("first" if fid else "all")
    store = ScoreCache("dca", {**reader.settings(), "positions": positions, "shuffle": config.shuffle_passages,
                               "seed": seed}, code=(__name__,))
    out = []
    for n, ex in enumerate(tqdm(examples, desc="reader attention", unit="q", disable=not progress)):
        if ex.answer is None:
            raise ValueError(f"DCA needs a gold answer; question {ex.qid} has none")
        doc_ids = list(candidates[ex.qid])
        texts = [passages[d] for d in doc_ids]
        key = ScoreCache.key(ex.question, ex.answer, texts)
        raw = store.get(key)
        if raw is None:
            if fid:
                raw = reader.attention_scores(ex.question, texts, ex.answer, positions,
                                              titles=[(titles or {}).get(d, "") for d in doc_ids])
            else:
                order = list(range(len(texts)))
                if config.shuffle_passages:
                    random.Random(f"{seed}:{ex.qid}").shuffle(order)
                raw = decoder_attention_scores(reader, ex.question, texts, ex.answer, positions, order)
            store.put(key, raw)
            if n % 16 == 15:
                store.save()
        gold_index = doc_ids.index(ex.positive_id)
        target = boost_gold(raw, gold_index) if config.boost_gold else list(raw)
        out.append(DCAExample(ex.qid, ex.question, tuple(doc_ids), tuple(target), tuple(raw)))
    store.save()
    return out


class DCACollator:
    def __init__(self, encoder, documents: Mapping[str, str]):
        self.encoder, self.documents = encoder, documents

    def __call__(self, examples: Sequence[DCAExample]) -> dict:
        k = {len(ex.doc_ids) for ex in examples}
        if len(k) != 1:
            raise ValueError(f"every DCA example needs the same number of candidates, got {sorted(k)}")
        return {
            "queries": tokenize_queries(self.encoder, [ex.question for ex in examples]),
            "passages": tokenize_documents(self.encoder, [self.documents[d] for ex in examples for d in ex.doc_ids]),
            "target": torch.tensor([ex.target for ex in examples], dtype=torch.float32),
        }


def dca_compute_loss(encoder, config: DCAConfig = DCAConfig()):
    def compute_loss(model, batch) -> torch.Tensor:
        q = encoder_forward(encoder, model, batch["queries"])
        target = batch["target"].to(q.device)
        p = encoder_forward(encoder, model, batch["passages"]).view(target.shape[0], target.shape[1], -1)
        return objectives.dca(config, q, p, target)

    return compute_loss


def reader_agreement(examples: Sequence[DCAExample]) -> dict[str, float]:
    """How often the reader's own score (before LocalRQA's gold boost) ranks the gold passage first, against the
    chance rate: evidence of whether the reader's attention carries any relevance signal."""
    firsts = [float(max(range(len(ex.reader_raw)), key=lambda i: ex.reader_raw[i]) == 0) for ex in examples]
    k = len(examples[0].doc_ids) if examples else 1
    return {"gold_first_rate": sum(firsts) / max(1, len(firsts)), "chance": 1.0 / k, "questions": len(firsts)}
