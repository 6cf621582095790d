"""The LLM-reranker recipe's data: SciFact training groups, the dev slice and the (sampled) test set; the frozen LLM
and one cached forward pass per pair of every set."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ...data.pairs import TrainGroup
from ...data.trec import run_pairs, top_k
from ...data.types import Dataset, Run
from ...negatives import sample_negatives
from ...experiment import Timer, TrainingSplit, load_run, sample_ids, scifact_training_split, test_sample
from ...rerankers.llm_reranker import DecoderReranker
from .settings import LLMRerankerConfig


@dataclass
class LLMData:
    split: TrainingSplit
    groups: list[TrainGroup]  # training groups (qrels positives first, then BM25 negatives)
    train_bm25: Run  # BM25 candidates of every train and dev query (the offline teacher scores them all at once)
    dev: Dataset
    dev_bm25: Run
    test: Dataset
    test_bm25: Run
    test_split: str  # record split name: 'test' or 'test-<n>q' when a subset

    def sizes(self) -> pd.DataFrame:
        rows = [("train", len(self.groups), sum(len(g.docs) for g in self.groups)),
                ("dev", len(self.dev_bm25), sum(map(len, self.dev_bm25.values()))),
                (self.test_split, len(self.test_bm25), sum(map(len, self.test_bm25.values())))]
        return pd.DataFrame(rows, columns=["set", "queries", "pairs"]).set_index("set")


def build_data(cfg: LLMRerankerConfig, results_dir) -> LLMData:
    train_bm25 = load_run(results_dir, cfg.profile, "scifact", "train", "bm25")
    split = scifact_training_split(cfg.data_root, seed=cfg.seed, restrict_to=sorted(train_bm25))
    train = split.train
    positives = {q: sorted(d for d, r in train.qrels[q].items() if r > 0) for q in train.queries}
    qids = sample_ids([q for q, p in positives.items() if p], cfg.train_queries, cfg.seed)
    n_neg = {q: max(1, cfg.group_size - len(positives[q])) for q in qids}
    negs = sample_negatives(train_bm25, {q: positives[q] for q in qids}, cfg.negative_range, max(n_neg.values()),
                            cfg.seed, fill_from=list(train.corpus))
    groups = []
    for q in qids:
        docs = positives[q] + negs[q][: n_neg[q]]
        groups.append(TrainGroup(train.queries[q], [train.corpus[d].text_for_model for d in docs],
                                 [1.0] * len(positives[q]) + [0.0] * n_neg[q], n_pos=len(positives[q]),
                                 query_id=q, doc_ids=docs))
    dev_ids = sample_ids(split.dev.queries, cfg.dev_queries, cfg.seed)
    dev = split.dev.subset(dev_ids)
    dev_bm25 = top_k({q: train_bm25[q] for q in dev_ids}, cfg.dev_depth)

    test, test_bm25, test_split = test_sample("scifact", load_run(results_dir, cfg.profile, "scifact", "test", "bm25"),
                                              cfg.test_queries, cfg.seed, cfg.data_root)
    keep = set(split.train.queries) | set(split.dev.queries)
    return LLMData(split, groups, {q: r for q, r in train_bm25.items() if q in keep}, dev, dev_bm25, test,
                   top_k(test_bm25, cfg.depth), test_split)


def load_llm(cfg: LLMRerankerConfig, prompt: str = "flagembedding") -> DecoderReranker:
    """The decoder with its Yes/No head and the FlagEmbedding prompt (frozen; features are cached)."""
    return DecoderReranker(cfg.llm, head="yes", prompt=prompt, max_length=cfg.max_length)


def pairs_of(run: Run, ds: Dataset) -> tuple[list[str], list[str]]:
    """The (query text, document text) of every pair of `run`, in rank order."""
    pairs = run_pairs(run)
    return [ds.queries[q] for q, _ in pairs], [ds.corpus[d].text_for_model for _, d in pairs]


def llm_features(cfg: LLMRerankerConfig, llm: DecoderReranker, data: LLMData) -> pd.DataFrame:
    """One forward pass per pair of every set (train groups, dev, test), cached; returns the cost per set."""
    rows = []
    sets = {"train": ([g.query for g in data.groups for _ in g.docs], [d for g in data.groups for d in g.docs]),
            "dev": pairs_of(data.dev_bm25, data.dev), data.test_split: pairs_of(data.test_bm25, data.test)}
    for name, (qs, ds) in sets.items():
        with Timer() as t:
            llm.hidden_features(qs, ds, batch_size=cfg.feature_batch_size, show_progress=True)
        tokens = sum(len(f["input_ids"]) for f in llm.encode_pairs(qs, ds))
        rows.append({"set": name, "pairs": len(qs), "tokens": tokens, "wall_s": round(t.s, 1),
                     "pairs/s": round(len(qs) / max(t.s, 1e-9), 2)})
    return pd.DataFrame(rows).set_index("set")
