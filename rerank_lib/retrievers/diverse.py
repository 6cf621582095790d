"""HopWeaver's diverse retriever (Zh1yuShen/HopWeaver, hopweaver/components/bridge/bridge_retriever.py,
DiverseRetrieverWrapper): a dense retriever returns a pool of 3 x top_k candidates (the source document removed);
then greedy MMR picks top_k of them, each time the candidate with the highest

    score(d) = l1 * rel(q, d) - l2 * sim(d, d0) - l3 * max_{s in S} sim(d, s)

where rel is the retriever's score, d0 the source document, S the documents picked so far, sim the cosine of
document embeddings, and (l1, l2, l3) renormalised to sum to 1 (README defaults 0.85 / 0.05 / 0.1; the ablation
script uses 0.87 / 0.03 / 0.1). As in the seed, the max-similarity term starts at 0 (so it is never negative), a
zero vector has similarity 0 with everything (so no source document means no l2 term), and ties keep the earlier
candidate of the pool.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..data.trec import ranked
from ..data.types import Document, Run

README_LAMBDAS = (0.85, 0.05, 0.1)
ABLATION_LAMBDAS = (0.87, 0.03, 0.1)


@dataclass(frozen=True)
class MMRWeights:
    """(l1, l2, l3) as given; `normalised()` divides by their sum, as DiverseRetrieverWrapper does."""

    l1: float = README_LAMBDAS[0]
    l2: float = README_LAMBDAS[1]
    l3: float = README_LAMBDAS[2]

    def normalised(self) -> tuple[float, float, float]:
        values = (self.l1, self.l2, self.l3)
        if any(v < 0 for v in values) or sum(values) <= 0:
            raise ValueError(f"MMR weights must be >= 0 with a positive sum, got {values}")
        total = sum(values)
        return tuple(v / total for v in values)


def _cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarities [len(a), len(b)]; a zero vector has similarity 0 with everything (seed rule)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    na, nb = np.linalg.norm(a, axis=-1, keepdims=True), np.linalg.norm(b, axis=-1, keepdims=True)
    a = np.divide(a, na, out=np.zeros_like(a), where=na > 0)
    b = np.divide(b, nb, out=np.zeros_like(b), where=nb > 0)
    return a @ b.T


def mmr_select(relevance: Sequence[float], doc_vectors: np.ndarray, source_vector: np.ndarray | None, top_k: int,
               weights: MMRWeights = MMRWeights()) -> list[tuple[int, float]]:
    """Greedy MMR over a candidate pool: [(pool index, MMR score at selection)] in selection order.

    relevance[i] is rel(q, d_i) (the retriever's score); doc_vectors [n, dim]; source_vector [dim] or None (no
    source document: the l2 term is 0, as for the seed's zero-norm vector).
    """
    rel = np.asarray(relevance, dtype=np.float64).reshape(-1)
    vecs = np.asarray(doc_vectors, dtype=np.float64)
    if vecs.ndim != 2 or len(vecs) != len(rel):
        raise ValueError(f"doc_vectors must be [{len(rel)}, dim], got shape {vecs.shape}")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    l1, l2, l3 = weights.normalised()
    n = len(rel)
    if n == 0:
        return []
    source_sim = (np.zeros(n) if source_vector is None
                  else _cosine_matrix(vecs, np.asarray(source_vector).reshape(1, -1))[:, 0])
    pair_sim = _cosine_matrix(vecs, vecs)
    max_sim = np.zeros(n)  # max similarity to the selected set, starting at 0 as in the seed
    chosen: list[tuple[int, float]] = []
    available = np.ones(n, dtype=bool)
    for _ in range(min(top_k, n)):
        scores = l1 * rel - l2 * source_sim - l3 * max_sim
        scores[~available] = -np.inf
        best = int(np.argmax(scores))  # first index among ties, like the seed's strict '>'
        chosen.append((best, float(scores[best])))
        available[best] = False
        max_sim = np.maximum(max_sim, pair_sim[:, best])
    return chosen


class DiverseRetriever:
    """HopWeaver's standard and diverse retrieval over a corpus encoded once with a bi-encoder (cosine scores).

    encoder: a rerank_lib BiEncoder (normalised embeddings); the corpus embeddings are cached on disk by it.
    `standard` = RetrieverWrapper.retrieve_related_documents (top 2k searched, source removed, top k);
    `diverse`  = DiverseRetrieverWrapper.retrieve_with_diversity (pool of 3k, source removed, MMR to k).
    """

    def __init__(self, encoder, corpus: Mapping[str, Document], weights: MMRWeights = MMRWeights(),
                 corpus_embeddings: np.ndarray | None = None):
        self.encoder, self.corpus, self.weights = encoder, corpus, weights
        self.doc_ids = list(corpus)
        self.row = {d: i for i, d in enumerate(self.doc_ids)}
        self.embeddings = (np.asarray(corpus_embeddings, dtype=np.float32) if corpus_embeddings is not None
                           else encoder.encode_corpus(corpus))
        if len(self.embeddings) != len(self.doc_ids):
            raise ValueError(f"{len(self.embeddings)} embeddings for {len(self.doc_ids)} documents")

    def _search(self, query_vectors: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        scores = query_vectors @ self.embeddings.T
        k = min(k, len(self.doc_ids))
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        out = []
        for row, idx in zip(scores, top):
            idx = idx[np.argsort(-row[idx], kind="stable")]
            out.append([(self.doc_ids[i], float(row[i])) for i in idx])
        return out

    def query_vectors(self, queries: Sequence[str]) -> np.ndarray:
        """float32 [len(queries), dim] query embeddings (the encoder's query prefix), comparable to `embeddings`."""
        return np.asarray(self.encoder.encode_queries(list(queries)), dtype=np.float32)

    def cosines(self, queries: Mapping[str, str], pairs: Sequence[tuple[str, str]]) -> list[float]:
        """The retriever's score of each (query id, doc id) pair."""
        vectors = dict(zip(queries, self.query_vectors(list(queries.values()))))
        return [float(self.embeddings[self.row[d]] @ vectors[q]) for q, d in pairs]

    def mean_pairwise_cosine(self, run: Run) -> float:
        """Mean over queries of the mean cosine between two of its documents: what MMR trades relevance for."""
        sims = []
        for docs in run.values():
            if len(docs) >= 2:
                v = self.embeddings[[self.row[d] for d, _ in ranked(docs)]]
                sims.append(float((v @ v.T)[np.triu_indices(len(v), 1)].mean()))
        return float(np.mean(sims))

    def diversity_table(self, runs: Mapping[str, Run]):
        """Mean pairwise cosine among each run's candidates (what MMR trades relevance for), one row per run."""
        import pandas as pd

        return pd.DataFrame([{"retriever": name, "mean pairwise cosine of the top_k": round(
            self.mean_pairwise_cosine(run), 4)} for name, run in runs.items()]).set_index("retriever")

    def standard(self, queries: Mapping[str, str], top_k: int = 10,
                 sources: Mapping[str, str | None] | None = None) -> Run:
        """{qid: {doc: cosine}}: the top 2k, minus the query's source document, cut to k."""
        sources = sources or {}
        qids = list(queries)
        hits = self._search(self.query_vectors([queries[q] for q in qids]), 2 * top_k)
        return {q: dict([(d, s) for d, s in h if d != sources.get(q)][:top_k]) for q, h in zip(qids, hits)}

    def diverse(self, queries: Mapping[str, str], top_k: int = 10, sources: Mapping[str, str | None] | None = None,
                pool: Run | None = None, weights: MMRWeights | None = None) -> Run:
        """{qid: {doc: score}} of the MMR selection, scores decreasing with the selection order.

        pool: candidate scores per query to select from instead of the dense top 3k (e.g. another first stage);
        its scores are the rel term. weights: this call's lambdas (default: the retriever's). The returned scores are top_k - rank (the MMR values themselves are not
        monotone in the selection order) and the MMR values are kept in `self.last_mmr_scores`.
        """
        sources = sources or {}
        qids = list(queries)
        if pool is None:
            hits = self._search(self.query_vectors([queries[q] for q in qids]), 3 * top_k)
            candidates = {q: h for q, h in zip(qids, hits)}
        else:
            candidates = {q: ranked(pool.get(q, {}))[:3 * top_k] for q in qids}
        out: Run = {}
        self.last_mmr_scores: dict[str, list[float]] = {}
        for q in qids:
            source = sources.get(q)
            cand = [(d, s) for d, s in candidates[q] if d != source]
            if not cand:
                out[q] = {}
                continue
            vecs = self.embeddings[[self.row[d] for d, _ in cand]]
            source_vec = self.embeddings[self.row[source]] if source is not None else None
            picked = mmr_select([s for _, s in cand], vecs, source_vec, top_k, weights or self.weights)
            out[q] = {cand[i][0]: float(top_k - rank) for rank, (i, _) in enumerate(picked)}
            self.last_mmr_scores[q] = [s for _, s in picked]
        return out
