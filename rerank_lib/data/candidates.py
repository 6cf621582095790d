"""Candidates as values: a query's first-stage candidates with texts and scores (rank_llm's Request / Candidate),
and the evaluation set a ranker is measured on and its records name, instead of eight loose arguments."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

from .trec import ranked
from .types import Dataset, Document, Qrels, Run


@dataclass(frozen=True)
class Candidate:
    doc_id: str
    text: str
    score: float  # the first stage's


@dataclass(frozen=True)
class Candidates:
    """One query and its candidates, best first."""

    query_id: str
    query: str
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True, eq=False)
class EvalSet:
    """A split's queries and judgments, the first-stage `run` (what a reranker reads, a `+interp` row mixes with) and
    its label in the records (`first_stage`: 'bm25', or 'corpus' for a full retrieval); None measures: the dataset's."""

    dataset: str
    split: str
    queries: Mapping[str, str]
    qrels: Qrels
    first_stage: str = ""
    depth: int | None = None
    run: Run | None = None
    corpus: Mapping[str, Document] | None = None
    measures: Sequence[str] | None = None

    @classmethod
    def of(cls, ds: Dataset, run: Run | None = None, **labels) -> "EvalSet":
        return cls(ds.name, ds.split, ds.queries, ds.qrels, run=run, corpus=ds.corpus, **labels)

    def candidates(self, query_id: str) -> Candidates:
        """The query's top-`depth` first-stage candidates with their texts, in the order trec_eval ranks them."""
        if self.run is None or self.corpus is None:
            raise ValueError(f"{self.dataset}/{self.split}: no first-stage run or corpus, so no candidates")
        top = ranked(self.run.get(query_id, {}))[: self.depth]
        return Candidates(query_id, self.queries[query_id],
                          tuple(Candidate(d, self.corpus[d].text_for_model, float(s)) for d, s in top))

    def __iter__(self) -> Iterator[Candidates]:
        return (self.candidates(q) for q in self.queries if q in (self.run or {}))
