"""RPG: REPLUG's LM-supervised retrieval (Shi et al., 2023, "REPLUG LSR"), as LocalRQA runs it
(trainers/retriever/retriever_replug_trainer.py).

Each training step, for every question of the batch:
1. retrieve `num_docs` passages with the current query encoder from an index of passage embeddings that is
   re-encoded every `refresh_every` steps (LocalRQA: num_docs 20, refresh_step 10); the gold passage replaces the
   last one when it was not retrieved (LocalRQA inserts it);
2. retrieval likelihood: softmax over cos(q, p) / retrieve_temperature (0.1), with grad;
3. LM likelihood: a frozen LM reads each passage alone with the question and scores the gold answer by its mean
   token log-probability; softmax over those / lm_temperature (0.1), without grad, cached;
4. loss: KL(LM distribution || retrieval distribution) (objectives.rpg; losses.distillation.kl_divergence for the
   direction).

Known LocalRQA problems, avoided here:
- misaligned scores: LocalRQA computes the retriever's scores over the passages in retrieval order, but the LM's
  over `ctxs`, where the gold passage was moved to the front (or inserted there, the last passage dropped): the
  KL compares the retriever's score of passage i with the LM's score of another passage. Here both score lists
  are computed over one candidate list, in one order (a test permutes the passages and checks the targets follow).
- `model.eval()` inside the training step: LocalRQA rebuilds its index inside compute_loss through
  `LocalEmbeddings(self.model, ...)`, whose constructor calls `model.eval()` and never switches back, so dropout
  is off from the first step on. Here the index is built by BiEncoder.encode, which restores the training mode.
- the index is rebuilt from scratch (and the document database reloaded from disk) at every step, then reused
  only through an embedding cache; here the index is a tensor refreshed every `refresh_every` optimizer steps,
  whose encoding is shared (weights-keyed cache) with the evaluation that runs at the same step.
Resuming a run refreshes the index at the first step after the resume.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

from ..data.types import Document
from . import objectives
from .readers import LMReader
from .training import RetrievalExample, ScoreCache, encoder_forward, tokenize_documents, tokenize_queries


@dataclass(frozen=True)
class RPGConfig:
    num_docs: int = 4  # passages per question in training (LocalRQA: 20)
    refresh_every: int = 10  # optimizer steps between index refreshes (LocalRQA: refresh_step 10)
    lm_temperature: float = 0.1
    retrieve_temperature: float = 0.1
    lm_batch_size: int = 4
    ensure_gold: bool = True

    def __post_init__(self):
        if self.num_docs < 2 or self.refresh_every < 1:
            raise ValueError("num_docs must be >= 2 and refresh_every >= 1")


def answer_loglik(reader: LMReader, question: str, passages: Sequence[str], answer: str,
                  batch_size: int = 4) -> list[float]:
    """Mean log-probability of the gold answer's tokens given each passage alone (+ the question), aligned with
    `passages` (LocalRQA's get_seq_prob: log-softmax over the vocabulary, gathered, averaged over the answer)."""
    inputs = [reader.build(question, [p], answer) for p in passages]
    out: list[float] = []
    for chunk in (inputs[start:start + batch_size] for start in range(0, len(inputs), batch_size)):
        logits = reader.forward(chunk).logits.float()
        for row, inp in enumerate(chunk):
            start, end = inp.answer_span
            logp = F.log_softmax(logits[row, start - 1:end - 1], dim=-1)
            target = torch.tensor(inp.input_ids[start:end], device=logp.device)
            out.append(float(logp.gather(1, target[:, None]).mean()))
    return out


def rpg_candidates(retrieved: Sequence[str], example: RetrievalExample, k: int, ensure_gold: bool = True) -> list[str]:
    """The k passages both distributions are computed over: the top k retrieved; with ensure_gold, the gold
    passage takes the last place when it was not retrieved."""
    top = list(retrieved[:k])
    if ensure_gold and example.positive_id not in top:
        top[-1] = example.positive_id
    return top


@dataclass
class RPGStats:
    steps: int = 0
    refreshes: list[int] = field(default_factory=list)  # optimizer steps at which the index was re-encoded
    questions: int = 0
    gold_retrieved: int = 0  # questions whose gold passage was among the retrieved num_docs
    lm_scored: int = 0  # (question, passage) pairs the LM scored (cache misses)
    lm_gold_first: int = 0  # questions whose gold passage the LM scored highest among the candidates
    chance: float = 0.0  # the rate at which a random order puts the gold passage first: 1 / candidates


def gold_first(batch: Sequence[RetrievalExample], candidates: Sequence[Sequence[str]], lm) -> int:
    """How many questions' gold passage gets the LM's highest score among their candidates (ties: the first): whether
    the LM's probabilities, RPG's target, carry the relevance the retriever is to learn (the reader check of DCA)."""
    return sum(int(ex.positive_id in c and max(range(len(c)), key=lambda i: float(row[i])) == list(c).index(
        ex.positive_id)) for ex, c, row in zip(batch, candidates, lm))


class RPGObjective:
    """compute_loss(model, batch) for `train()` (batch: a list of RetrievalExample with answers)."""

    def __init__(self, encoder, reader: LMReader, corpus: Mapping[str, Document], passages: Mapping[str, str],
                 config: RPGConfig = RPGConfig(), gradient_accumulation_steps: int = 1, cache: bool = True):
        self.encoder, self.reader, self.corpus, self.passages, self.config = encoder, reader, corpus, passages, config
        self.doc_ids = list(corpus)
        self.documents = {d: corpus[d].text_for_model for d in self.doc_ids}
        self.grad_acc = gradient_accumulation_steps
        self.store = ScoreCache("rpg", reader.settings(), enabled=cache, code=(__name__,))
        self.index: torch.Tensor | None = None
        self.calls = 0
        self.stats = RPGStats()

    def refresh(self) -> None:
        """Re-encode the passage index with the current weights (no grad; the training mode is restored)."""
        emb = self.encoder.encode_corpus(self.corpus, cache=True, show_progress=False)
        self.index = torch.from_numpy(emb)
        self.stats.refreshes.append(self.calls // self.grad_acc)

    def retrieve(self, questions: Sequence[str]) -> list[list[str]]:
        query = torch.from_numpy(self.encoder.encode_queries(list(questions)))
        top = torch.topk(query @ self.index.T, k=min(self.config.num_docs, len(self.doc_ids)), dim=1).indices
        return [[self.doc_ids[i] for i in row] for row in top.tolist()]

    def lm_scores(self, example: RetrievalExample, doc_ids: Sequence[str]) -> list[float]:
        if example.answer is None:
            raise ValueError(f"RPG needs a gold answer; question {example.qid} has none")
        keys = [ScoreCache.key(example.question, example.answer, self.passages[d]) for d in doc_ids]
        missing = [i for i, k in enumerate(keys) if self.store.get(k) is None]
        if missing:
            fresh = answer_loglik(self.reader, example.question, [self.passages[doc_ids[i]] for i in missing],
                                  example.answer, self.config.lm_batch_size)
            for i, value in zip(missing, fresh):
                self.store.put(keys[i], value)
            self.stats.lm_scored += len(missing)
        return [self.store.get(k) for k in keys]

    def candidates(self, batch: Sequence[RetrievalExample]) -> list[list[str]]:
        retrieved = self.retrieve([ex.question for ex in batch])
        self.stats.gold_retrieved += sum(ex.positive_id in r for ex, r in zip(batch, retrieved))
        self.stats.questions += len(batch)
        return [rpg_candidates(r, ex, self.config.num_docs, self.config.ensure_gold) for r, ex in zip(retrieved, batch)]

    def __call__(self, model, batch: Sequence[RetrievalExample]) -> torch.Tensor:
        step_start = self.calls % self.grad_acc == 0
        if self.index is None or (step_start and (self.calls // self.grad_acc) % self.config.refresh_every == 0
                                  and self.stats.refreshes[-1] != self.calls // self.grad_acc):
            self.refresh()
        self.calls += 1
        self.stats.steps = self.calls // self.grad_acc
        cands = self.candidates(batch)
        lm = torch.tensor([self.lm_scores(ex, c) for ex, c in zip(batch, cands)], dtype=torch.float32)
        self.store.save()
        self.stats.lm_gold_first += gold_first(batch, cands, lm)
        self.stats.chance = 1.0 / len(cands[0])
        q = encoder_forward(self.encoder, model, tokenize_queries(self.encoder, [ex.question for ex in batch]))
        p = encoder_forward(self.encoder, model,
                            tokenize_documents(self.encoder, [self.documents[d] for c in cands for d in c]))
        p = p.view(len(batch), len(cands[0]), -1)
        retriever = F.cosine_similarity(q[:, None, :], p, dim=-1)
        return objectives.rpg(self.config, lm.to(retriever.device), retriever)


def rpg_collate(examples: Sequence[RetrievalExample]) -> list[RetrievalExample]:
    """RPG's batch is the examples themselves: retrieval happens inside the step (LocalRQA's NoopDataCollator)."""
    return list(examples)
