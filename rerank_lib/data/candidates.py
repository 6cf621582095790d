"""Candidates as values: a query's first-stage candidates with texts and scores (rank_llm's Request / Candidate),
as every ranker reads them, and the evaluation set a ranker is measured on and its records name."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from .trec import ranked
from .types import Dataset, Document, Qrels, Run


@dataclass(frozen=True)
class Candidate:
    doc_id: str
    doc: Document  # the whole document: a listwise prompt shows its title and text apart
    score: float  # the first stage's


@dataclass(frozen=True)
class Candidates:
    """One query and its candidates, best first."""

    query_id: str
    query: str
    candidates: tuple[Candidate, ...]


def candidates_from_run(run: Run, corpus: Mapping[str, Document], queries: Mapping[str, str],
                        depth: int | None = None, who: str = "rerank") -> list[Candidates]:
    """Each query of `run` (in its order) with its top-`depth` candidates (all for None) in the order trec_eval ranks
    them (data.trec.ranked); a KeyError naming what has no text, before any model runs."""
    top = {q: ranked(docs)[:depth] for q, docs in run.items()}
    missing_q = [q for q in top if q not in queries]
    missing_d = sorted({d for docs in top.values() for d, _ in docs if d not in corpus})
    if missing_q or missing_d:
        raise KeyError(f"{who}: {len(missing_q)} queries and {len(missing_d)} candidate documents have no text, "
                       f"e.g. {(missing_q + missing_d)[:3]}")
    return [Candidates(q, queries[q], tuple(Candidate(d, corpus[d], float(s)) for d, s in docs))
            for q, docs in top.items()]


def score_pairs(score: Callable[[list[str], list[str]], Iterable[float]], candidates: Sequence[Candidates]) -> Run:
    """Every (query, candidate) pair of all `candidates` scored in one call of `score(query texts, document texts)`
    (so a ranker sorts batches by length across queries), the scores as a Run of every query, even one without."""
    pairs = [(c.query, x.doc.text_for_model) for c in candidates for x in c.candidates]
    scores = iter(score([q for q, _ in pairs], [d for _, d in pairs]))
    return {c.query_id: {x.doc_id: float(next(scores)) for x in c.candidates} for c in candidates}


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
        return candidates_from_run({query_id: self.run.get(query_id, {})}, self.corpus, self.queries, self.depth,
                                   who=f"{self.dataset}/{self.split}")[0]

    def __iter__(self) -> Iterator[Candidates]:
        return (self.candidates(q) for q in self.queries if q in (self.run or {}))
