"""faire (LocalRQA's example): its splits, train de-duplicated against eval and test, the corpus and passages."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ...data import Dataset, TrainingQueries, assert_no_leak
from ...data.localrqa import LocalRQAData, QAExample, load_localrqa
from ...data.types import Document
from .settings import FAIRE, FaireConfig


@dataclass
class FaireData:
    raw: LocalRQAData
    train: list[QAExample]  # train minus questions that repeat an eval/test question
    eval: Dataset  # checkpoint and weight selection
    test: Dataset  # evaluated once
    provenance: TrainingQueries  # train + eval: closed to evaluation
    passages: dict[str, str]  # what the LM reader reads: page_content (LocalRQA's ctx text)
    dropped_overlap: list[str]

    @property
    def corpus(self) -> dict[str, Document]:
        return self.eval.corpus

    def summary(self) -> pd.DataFrame:
        rows = [{"split": "corpus (chunks)", "questions": None, "documents": len(self.corpus)},
                {"split": "train (used)", "questions": len(self.train), "documents": None},
                {"split": "eval (dev)", "questions": len(self.eval.queries), "documents": None},
                {"split": "test", "questions": len(self.test.queries), "documents": None}]
        frame = pd.DataFrame(rows).set_index("split")
        frame.attrs["skipped"] = self.raw.skipped
        frame.attrs["dropped_overlap"] = self.dropped_overlap
        return frame


def load_faire(cfg: FaireConfig) -> FaireData:
    """faire's splits (train de-duplicated against eval and test), the corpus and the reader's passages."""
    raw = load_localrqa(cfg.collection, root=cfg.data_root, documents=cfg.documents)
    clean = raw.without_overlap("train", "eval", "test")
    dropped = [ex.qid for ex in raw.examples("train") if ex not in clean]
    train = clean[: cfg.max_train] if cfg.max_train else clean
    evals = raw.examples("eval")[: cfg.max_eval] if cfg.max_eval else raw.examples("eval")
    tests = raw.examples("test")[: cfg.max_test] if cfg.max_test else raw.examples("test")
    chunks = raw.chunks
    if cfg.restrict_corpus:
        keep = {d for ex in (*train, *evals, *tests) for d in (*ex.gold_doc_ids, *ex.hard_neg_doc_ids)}
        chunks = {d: c for d, c in chunks.items() if d in keep}
    corpus = {d: c.to_document() for d, c in chunks.items()}

    def dataset(split, examples):
        return Dataset(FAIRE, split, corpus, {ex.qid: ex.question for ex in examples},
                       {ex.qid: {d: 1 for d in ex.gold_doc_ids} for ex in examples})

    provenance = (TrainingQueries.of(f"{FAIRE}/train", {ex.qid: ex.question for ex in train})
                  | TrainingQueries.of(f"{FAIRE}/eval", {ex.qid: ex.question for ex in evals}))
    data = FaireData(raw, train, dataset("eval", evals), dataset("test", tests), provenance,
                     {d: c.page_content for d, c in chunks.items()}, dropped)
    assert_no_leak([provenance], f"{FAIRE}/test", data.test.queries)
    return data
