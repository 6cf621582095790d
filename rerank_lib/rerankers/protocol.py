"""The one interface every reranker offers, so the experiment layer evaluates any of them the same way.

`rerank(run, corpus, queries, depth=100) -> Run`: rerank each query's top-`depth` candidates of a first-stage
`run` ({qid: {docid: score}}, rerank_lib.data.types.Run) with the documents of `corpus` and the query texts of
`queries`, and return the new scores as a Run. Implementations may add keyword-only options with defaults
(batch_size, show_progress); the positional part is exactly this. Implemented by CrossEncoder, T5Ranker,
DecoderReranker, HeadOnlyRanker and ListwiseReranker.
"""
from __future__ import annotations

from typing import Mapping, Protocol, runtime_checkable

from ..data.trec import run_from_pairs, run_pairs, top_k
from ..data.types import Document, Run

RERANK_PARAMETERS = ("run", "corpus", "queries", "depth")  # the positional parameters of `rerank`, in order


@runtime_checkable
class Ranker(Protocol):
    def rerank(self, run: Run, corpus: Mapping[str, Document], queries: Mapping[str, str],
               depth: int = 100) -> Run: ...


def candidate_pairs(run: Run, corpus: Mapping[str, Document], queries: Mapping[str, str], depth: int,
                    who: str = "rerank") -> tuple[Run, list[tuple[str, str]]]:
    """Each query's top-`depth` candidates of `run` and their (query, doc) pairs in rank order (data.trec.run_pairs);
    a KeyError naming what has no text, before any model runs."""
    candidates = top_k(run, depth)
    missing_q = [q for q in candidates if q not in queries]
    missing_d = sorted({d for docs in candidates.values() for d in docs if d not in corpus})
    if missing_q or missing_d:
        raise KeyError(f"{who}: {len(missing_q)} queries and {len(missing_d)} candidate documents have no text, "
                       f"e.g. {(missing_q + missing_d)[:3]}")
    return candidates, run_pairs(candidates)


def rerank_with(ranker, run: Run, corpus: Mapping[str, Document], queries: Mapping[str, str], depth: int = 100,
                batch_size: int = 64, show_progress: bool = False) -> Run:
    """`rerank` for any ranker with a pairwise `score(queries, docs, batch_size, show_progress)`: all pairs of all
    queries scored in one call (length-sorted batches across queries), assembled into a Run."""
    candidates, pairs = candidate_pairs(run, corpus, queries, depth)
    scores = ranker.score([queries[q] for q, _ in pairs], [corpus[d].text_for_model for _, d in pairs],
                          batch_size=batch_size, show_progress=show_progress)
    return run_from_pairs(candidates, pairs, scores.tolist())
