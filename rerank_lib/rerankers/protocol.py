"""The one interface every reranker offers, so the experiment layer evaluates any of them the same way.

`rerank(run, corpus, queries, depth=100) -> Run`: rerank each query's top-`depth` candidates of a first-stage
`run` ({qid: {docid: score}}, rerank_lib.data.types.Run) with the documents of `corpus` and the query texts of
`queries`, and return the new scores as a Run. Implementations may add keyword-only options with defaults
(batch_size, show_progress); the positional part is exactly this. Implemented by CrossEncoder, T5Ranker,
DecoderReranker, HeadOnlyRanker and ListwiseReranker.
"""
from __future__ import annotations

from typing import Mapping, Protocol, runtime_checkable

from ..data.types import Document, Run

RERANK_PARAMETERS = ("run", "corpus", "queries", "depth")  # the positional parameters of `rerank`, in order


@runtime_checkable
class Ranker(Protocol):
    def rerank(self, run: Run, corpus: Mapping[str, Document], queries: Mapping[str, str],
               depth: int = 100) -> Run: ...
