"""The LLM-reranker recipe's data: SciFact training groups, the dev slice and the (sampled) test set."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ...data.pairs import TrainGroup
from ...data.trec import top_k
from ...data.types import Dataset, Run
from ...negatives import sample_negatives
from ...experiment import TrainingSplit, load_run, sample_ids, scifact_training_split, test_sample
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
