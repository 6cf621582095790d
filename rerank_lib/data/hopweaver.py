"""HopWeaver's contrastive reranker data (Zh1yuShen/HopWeaver, hopweaver/train_reranker): each generator attempt
(a query, its candidates in retrieval order, the judge's verdicts) and the `{query, pos: [text], neg: [text]}` file
it writes, one line per attempt with at least one positive and one negative. `pairs.read_hopweaver` reads it."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from .jsonl import write_jsonl
from .pairs import TrainGroup, read_hopweaver
from .types import Document, Qrels

__all__ = ["GeneratedExample", "to_groups", "write_hopweaver", "read_generated", "generation_stats", "generator_yield",
           "sample_sources"]


@dataclass
class GeneratedExample:
    """One generator attempt: its source, query, the candidates in retrieval order and their verdicts."""

    query_id: str
    query: str | None
    source_id: str | None
    candidates: list[str] = field(default_factory=list)
    verdicts: list[bool] = field(default_factory=list)

    @property
    def pos(self) -> list[str]:
        return [d for d, v in zip(self.candidates, self.verdicts) if v]

    @property
    def neg(self) -> list[str]:
        return [d for d, v in zip(self.candidates, self.verdicts) if not v]

    @property
    def usable(self) -> bool:
        return bool(self.query and self.pos and self.neg)


def to_groups(examples: Sequence[GeneratedExample], corpus: Mapping[str, Document]) -> list[TrainGroup]:
    """Usable examples as TrainGroups (positives first), the in-memory form every trainer reads."""
    groups = []
    for e in examples:
        if not e.usable:
            continue
        docs = e.pos + e.neg
        groups.append(TrainGroup(e.query, [corpus[d].text_for_model for d in docs],
                                 [1.0] * len(e.pos) + [0.0] * len(e.neg), n_pos=len(e.pos), query_id=e.query_id,
                                 doc_ids=docs))
    return groups


def write_hopweaver(path, examples: Sequence[GeneratedExample], corpus: Mapping[str, Document]):
    """HopWeaver's training file: one `{query, pos: [text], neg: [text]}` per usable example (atomic write)."""
    rows = [{"query": e.query, "pos": [corpus[d].text_for_model for d in e.pos],
             "neg": [corpus[d].text_for_model for d in e.neg]} for e in examples if e.usable]
    return write_jsonl(path, rows)


def read_generated(path, examples: Sequence[GeneratedExample]) -> list[TrainGroup]:
    """The file `write_hopweaver` wrote from `examples`, read back with HopWeaver's reader (the file is what a model
    trains on), each group given its attempt's query id and document ids."""
    groups = read_hopweaver(path)
    usable = [e for e in examples if e.usable]
    if len(groups) != len(usable):
        raise ValueError(f"{path}: {len(groups)} lines for {len(usable)} usable attempts")
    for g, e in zip(groups, usable):
        g.query_id, g.doc_ids = e.query_id, e.pos + e.neg
    return groups


def generation_stats(examples: Sequence[GeneratedExample]) -> dict:
    """Attempts, usable lines, why the others failed, and positives / negatives per line."""
    usable = [e for e in examples if e.usable]
    mean = lambda values: round(float(np.mean(values)), 2) if values else 0.0  # noqa: E731
    return {"attempts": len(examples), "usable": len(usable),
            "no positive in top_k": sum(1 for e in examples if e.query and not e.pos),
            "no negative": sum(1 for e in examples if e.pos and not e.neg),
            "pos per line": mean([len(e.pos) for e in usable]), "neg per line": mean([len(e.neg) for e in usable])}


def generator_yield(examples: Sequence[GeneratedExample]) -> dict:
    """The generator's yield: lines asked (attempts), produced (a query parsed, candidates judged) and usable (at
    least one positive and one negative verdict, what HopWeaver writes as a training line)."""
    return {"asked": len(examples), "produced": sum(1 for e in examples if e.query),
            "usable": sum(1 for e in examples if e.usable)}


def sample_sources(qrels: Qrels, seed: int, n: int, exclude: Sequence[str] = ()) -> dict[str, str]:
    """{query id: one of its judged documents} for n seeded queries: source documents with a known topic."""
    rng = random.Random(seed)
    qids = sorted(q for q in qrels if q not in set(exclude) and any(g > 0 for g in qrels[q].values()))
    rng.shuffle(qids)
    out = {}
    for q in qids[:n]:
        rel = sorted(d for d, g in qrels[q].items() if g > 0)
        out[q] = rng.choice(rel)
    return out
