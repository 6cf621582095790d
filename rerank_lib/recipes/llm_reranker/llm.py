"""The frozen LLM: loading it, and one cached forward pass per pair of every set."""
from __future__ import annotations

import pandas as pd

from ...data.trec import ranked
from ...data.types import Dataset, Run
from ...rerankers.llm_reranker import DecoderReranker
from ...experiment import Timer
from .data import LLMData
from .settings import LLMRerankerConfig


def load_llm(cfg: LLMRerankerConfig, prompt: str = "flagembedding") -> DecoderReranker:
    """The decoder with its Yes/No head and the FlagEmbedding prompt (frozen; features are cached)."""
    return DecoderReranker(cfg.llm, head="yes", prompt=prompt, max_length=cfg.max_length)


def pairs_of(run: Run, ds: Dataset) -> tuple[list[str], list[str]]:
    """The (query text, document text) of every pair of `run`, in rank order."""
    pairs = [(q, d) for q, docs in run.items() for d, _ in ranked(docs)]
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
