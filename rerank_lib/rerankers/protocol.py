"""The one interface every reranker offers, so the experiment layer evaluates any of them the same way.

`rerank(run, corpus, queries, depth=100) -> Run`: rerank each query's top-`depth` candidates of a first-stage
`run` ({qid: {docid: score}}, rerank_lib.data.types.Run) with the documents of `corpus` and the query texts of
`queries`, and return the new scores as a Run. Implementations may add keyword-only options with defaults
(batch_size, show_progress); the positional part is exactly this. Implemented by CrossEncoder, T5Ranker,
DecoderReranker, HeadOnlyRanker and ListwiseReranker.

Every `rerank` reads (run, corpus, queries, depth) through data.candidates.candidates_from_run into `Candidates`
(rank_llm's Request) and ranks those. Candidates already built (an EvalSet's) go in through the typed entry points:
`rerank_candidates(ranker, candidates)` for the pairwise rankers (their `rerank(run, corpus, queries, depth)` is
`rerank_candidates(ranker, candidates_from_run(run, corpus, queries, depth))`), and
`ListwiseReranker.rerank_query(candidates, depth)` for one query's sliding window.
"""
from __future__ import annotations

from typing import Mapping, Protocol, Sequence, runtime_checkable

from ..data.candidates import Candidates, candidates_from_run, score_pairs
from ..data.types import Document, Run

RERANK_PARAMETERS = ("run", "corpus", "queries", "depth")  # the positional parameters of `rerank`, in order


@runtime_checkable
class Ranker(Protocol):
    def rerank(self, run: Run, corpus: Mapping[str, Document], queries: Mapping[str, str],
               depth: int = 100) -> Run: ...


def rerank_candidates(ranker, candidates: Sequence[Candidates], batch_size: int = 64,
                      show_progress: bool = False) -> Run:
    """A ranker with a pairwise `score(queries, docs, batch_size, show_progress)` on `candidates` (score_pairs)."""
    return score_pairs(lambda q, d: ranker.score(q, d, batch_size=batch_size, show_progress=show_progress).tolist(),
                       candidates)


def rerank_with(ranker, run: Run, corpus: Mapping[str, Document], queries: Mapping[str, str], depth: int = 100,
                batch_size: int = 64, show_progress: bool = False) -> Run:
    """`rerank` for a ranker with a pairwise `score`."""
    return rerank_candidates(ranker, candidates_from_run(run, corpus, queries, depth), batch_size, show_progress)
