"""CTL: LocalRQA's contrastive retriever training (trainers/retriever/retriever_trainer.py,
`_inbatch_contrastive_w_hardneg`).

For a batch of B (question, gold passage, hard negatives) examples, the keys are the B gold passages followed by
floor(rho * B) hard negatives sampled from the batch's pooled hard negatives, after dropping any hard negative
that is a gold passage of the batch. The logits are q . k / tau and the loss is cross-entropy with each
question's own gold passage as the label (objectives.ctl; the formula: rerank_lib.losses.contrastive.ctl_loss):

    L = -1/B sum_i log( exp(q_i . p_i / tau) / sum_j exp(q_i . k_j / tau) )

Published defaults (arguments.py ContrasitiveTrainingArgs, and the faire / docs recipes): rho = 0.05,
tau = 0.05, learning rate 1e-5 (the docs' e5 example uses 1e-4), batch 256, cosine schedule with 10% warmup,
weight decay 0.01, metric_for_best_model = recall@4.

Differences from LocalRQA's code, each deliberate:
- a question's other gold passages (two questions of one passage in the same batch; SciFact queries with several
  relevant abstracts) are masked out of its negatives instead of counting as negatives (false negatives);
- the hard-negative pool is de-duplicated (the two questions of a LocalRQA line share their hard negatives, so
  `random.sample` could draw one passage twice) and sampling is seeded by the batch (reproducible, resumable);
- when the pool is smaller than floor(rho * B), all of it is used (LocalRQA's `random.sample` raises);
- the loss and the inference path share one encoder (pooling, normalisation, prefixes): with a normalising encoder
  such as all-MiniLM-L6-v2, q . k is the cosine, so tau = 0.05 is sentence-transformers' MNRL scale 20.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from . import objectives
from .training import RetrievalExample, encoder_forward, tokenize_documents, tokenize_queries


@dataclass(frozen=True)
class CTLConfig:
    hard_neg_ratio: float = 0.05  # rho: floor(rho * B) hard negatives per batch
    temperature: float = 0.05  # tau

    def __post_init__(self):
        if not 0.0 <= self.hard_neg_ratio:
            raise ValueError("hard_neg_ratio must be >= 0")
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0")


def build_ctl_batch(examples: Sequence[RetrievalExample], hard_neg_ratio: float,
                    rng: random.Random) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Key doc ids, labels and the negative mask of one CTL batch (see the module docstring).

    Returns (doc_ids, labels, mask): doc_ids are the B positives then the sampled hard negatives; labels[i] = i;
    mask[i, j] is True where key j is a gold passage of question i other than its label (excluded from the
    softmax)."""
    positives = [ex.positive_id for ex in examples]
    gold_in_batch = {d for ex in examples for d in (ex.positive_id, *ex.gold_ids)}
    pool = list(dict.fromkeys(d for ex in examples for d in ex.hard_neg_ids if d not in gold_in_batch))
    n_hard = min(math.floor(hard_neg_ratio * len(examples)), len(pool))
    doc_ids = positives + (rng.sample(pool, n_hard) if n_hard else [])
    labels = torch.arange(len(examples), dtype=torch.long)
    mask = torch.tensor([[j != i and d in {ex.positive_id, *ex.gold_ids} for j, d in enumerate(doc_ids)]
                         for i, ex in enumerate(examples)], dtype=torch.bool).reshape(len(examples), len(doc_ids))
    return doc_ids, labels, mask


class CTLCollator:
    """collate_fn for `train()`: samples the batch's hard negatives (seeded by the seed and the batch's question
    ids, so a resumed run draws the same ones) and tokenises questions and keys."""

    def __init__(self, encoder, documents: Mapping[str, str], config: CTLConfig = CTLConfig(), seed: int = 0):
        self.encoder, self.documents, self.config, self.seed = encoder, documents, config, seed

    def __call__(self, examples: Sequence[RetrievalExample]) -> dict:
        rng = random.Random(f"{self.seed}:" + ",".join(f"{ex.qid}/{ex.positive_id}" for ex in examples))
        doc_ids, labels, mask = build_ctl_batch(examples, self.config.hard_neg_ratio, rng)
        return {
            "queries": tokenize_queries(self.encoder, [ex.question for ex in examples]),
            "keys": tokenize_documents(self.encoder, [self.documents[d] for d in doc_ids]),
            "labels": labels, "mask": mask, "doc_ids": doc_ids,
        }


def ctl_compute_loss(encoder, config: CTLConfig = CTLConfig()):
    """compute_loss(model, batch) for `train()`."""

    def compute_loss(model, batch) -> torch.Tensor:
        q = encoder_forward(encoder, model, batch["queries"])
        k = encoder_forward(encoder, model, batch["keys"])
        return objectives.ctl(config, q, k, batch["labels"], batch["mask"])

    return compute_loss
