"""First-stage retrieval: BM25 (bm25s + PyStemmer) and exact dense search, both returning TREC-shaped runs.

Every function returns a `Run` ({qid: {docid: score}}) that `rerank_lib.data.trec.write_run` writes and
ir-measures evaluates, so later stages never see anything but runs plus the corpus texts.

BM25 defaults follow Pyserini/Anserini (k1=0.9, b=0.4, Lucene's BM25 variant), the setting behind the BEIR /
Pyserini SciFact anchors; documents are indexed as title + text (`Document.text_for_model`), lower-cased,
English stop words removed and Snowball-stemmed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from .atomic import write_json
from .data.candidates import candidates_from_run
from .data.trec import ranked
from .data.types import Document, Run


def _stemmer(name: str | None):
    if not name:
        return None
    import Stemmer

    return Stemmer.Stemmer(name)


class BM25Index:
    """A bm25s index over one corpus, built once and searched with any number of query sets; save/load it to skip
    re-indexing large corpora."""

    META = "rerank_bm25.json"

    def __init__(self, retriever, doc_ids: list[str], stemmer: str | None, stopwords: str | list[str] | None):
        self.retriever = retriever
        self.doc_ids = doc_ids
        self.stemmer_name = stemmer
        self.stopwords = stopwords
        self._stemmer = _stemmer(stemmer)

    @classmethod
    def build(cls, corpus: Mapping[str, Document], k1: float = 0.9, b: float = 0.4, method: str = "lucene",
              stemmer: str | None = "english", stopwords: str | list[str] | None = "en",
              show_progress: bool = False) -> "BM25Index":
        """Index title + text of every document. `stemmer` is a PyStemmer algorithm ('english' = Snowball/Porter2,
        'porter' = Lucene's EnglishAnalyzer) or None; `stopwords` a bm25s list name ('en') or a list, or None."""
        import bm25s

        doc_ids = list(corpus)
        tokens = bm25s.tokenize([corpus[d].text_for_model for d in doc_ids], stopwords=stopwords,
                                stemmer=_stemmer(stemmer), show_progress=show_progress)
        retriever = bm25s.BM25(k1=k1, b=b, method=method)
        retriever.index(tokens, show_progress=show_progress)
        return cls(retriever, doc_ids, stemmer, stopwords)

    @property
    def params(self) -> dict:
        return {"k1": self.retriever.k1, "b": self.retriever.b, "method": self.retriever.method,
                "stemmer": self.stemmer_name, "stopwords": self.stopwords}

    def search(self, queries: Mapping[str, str], k: int = 1000, ignore_identical_ids: bool = False,
               show_progress: bool = False) -> Run:
        """Top-k documents per query with their BM25 scores; documents sharing no term with the query (score 0)
        are left out, as Lucene does. ignore_identical_ids drops a document whose id equals the query id (BEIR's
        option for datasets whose queries are also documents, e.g. ArguAna, Quora)."""
        import bm25s

        qids = list(queries)
        if not qids or not self.doc_ids:
            return {q: {} for q in qids}
        tokens = bm25s.tokenize([queries[q] for q in qids], stopwords=self.stopwords, stemmer=self._stemmer,
                                return_ids=False, show_progress=False)
        depth = min(k + (1 if ignore_identical_ids else 0), len(self.doc_ids))
        indices, scores = self.retriever.retrieve(tokens, k=depth, show_progress=show_progress)
        run: Run = {}
        for qid, row_idx, row_scores in zip(qids, indices, scores):
            hits = {self.doc_ids[int(i)]: float(s) for i, s in zip(row_idx, row_scores) if s > 0}
            if ignore_identical_ids:
                hits.pop(qid, None)
            run[qid] = dict(ranked(hits)[:k])
        return run

    def save(self, path: str | os.PathLike) -> Path:
        """bm25s' own files plus our doc ids and tokenisation settings (needed to tokenise queries the same way)."""
        path = Path(path)
        self.retriever.save(str(path), show_progress=False)
        write_json(path / self.META, {"doc_ids": self.doc_ids, "stemmer": self.stemmer_name,
                                      "stopwords": self.stopwords})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BM25Index":
        import bm25s

        path = Path(path)
        meta_path = path / cls.META
        if not meta_path.exists():
            raise FileNotFoundError(f"{path}: not a saved BM25Index ({cls.META} missing)")
        meta = json.loads(meta_path.read_text())
        retriever = bm25s.BM25.load(str(path), show_progress=False)
        return cls(retriever, meta["doc_ids"], meta["stemmer"], meta["stopwords"])


def bm25_search(corpus: Mapping[str, Document], queries: Mapping[str, str], k: int = 1000,
                ignore_identical_ids: bool = False) -> Run:
    """One-shot BM25 with `BM25Index.build`'s settings (Pyserini's k1 0.9, b 0.4, stemmed, English stopwords);
    other settings, or one index searched many times: `BM25Index.build(corpus, ...).search(queries, k)`."""
    return BM25Index.build(corpus).search(queries, k=k, ignore_identical_ids=ignore_identical_ids)


def dense_search(encoder, corpus: Mapping[str, Document], queries: Mapping[str, str], k: int = 1000,
                 corpus_embeddings: np.ndarray | None = None, ignore_identical_ids: bool = False,
                 query_chunk: int = 256) -> Run:
    """Exact (brute-force) search: dot products of query and document embeddings (cosine for a normalising
    encoder), top-k per query with torch.topk over chunks of queries. `corpus_embeddings`, if given, must follow
    the corpus' iteration order (as `encoder.encode_corpus` returns them); otherwise they are computed (cached)."""
    doc_ids = list(corpus)
    qids = list(queries)
    if not qids or not doc_ids:
        return {q: {} for q in qids}
    if corpus_embeddings is None:
        corpus_embeddings = encoder.encode_corpus(corpus)
    if len(corpus_embeddings) != len(doc_ids):
        raise ValueError(f"corpus_embeddings has {len(corpus_embeddings)} rows for {len(doc_ids)} documents")
    docs = torch.from_numpy(np.ascontiguousarray(corpus_embeddings, dtype=np.float32))
    query_emb = torch.from_numpy(encoder.encode_queries([queries[q] for q in qids]))
    position = {d: i for i, d in enumerate(doc_ids)} if ignore_identical_ids else {}
    depth = min(k, len(doc_ids))
    run: Run = {}
    for start in range(0, len(qids), query_chunk):
        chunk = qids[start:start + query_chunk]
        scores = query_emb[start:start + len(chunk)] @ docs.T
        if ignore_identical_ids:
            for row, qid in enumerate(chunk):
                if qid in position:
                    scores[row, position[qid]] = float("-inf")
        top_scores, top_idx = torch.topk(scores, k=depth, dim=1)
        for qid, row_scores, row_idx in zip(chunk, top_scores.tolist(), top_idx.tolist()):
            run[qid] = {doc_ids[i]: s for i, s in zip(row_idx, row_scores) if s != float("-inf")}
    return run


#: rerank_with_encoder encodes the whole corpus (one cached array) once candidates cover this share of it.
SHARE_CORPUS_ENCODING = 0.5


def rerank_with_encoder(encoder, run: Run, corpus: Mapping[str, Document], queries: Mapping[str, str],
                        depth: int = 100, cache: bool = True) -> Run:
    """Re-score each query's top-`depth` candidates of `run` by query-document embedding similarity (for TREC DL,
    where only the BM25 top-100 passages have text). Candidates beyond `depth` are dropped. cache=False encodes
    the candidates only, with no embedding cache read or written."""
    candidates = candidates_from_run(run, corpus, queries, depth, who="rerank_with_encoder")
    needed = sorted({x.doc_id for c in candidates for x in c.candidates})
    if cache and len(needed) >= SHARE_CORPUS_ENCODING * len(corpus):
        # Most of the corpus is needed anyway: encode all of it, so this shares one cached encoding with
        # dense_search and every other notebook that reads the same corpus.
        doc_emb = encoder.encode_corpus(corpus, cache=cache)
        row = {d: i for i, d in enumerate(corpus)}
    else:
        doc_emb = encoder.encode_corpus({d: corpus[d] for d in needed}, cache=cache)
        row = {d: i for i, d in enumerate(needed)}
    query_emb = encoder.encode_queries([c.query for c in candidates])
    out: Run = {}
    for c, q_vec in zip(candidates, query_emb):
        docs = [x.doc_id for x in c.candidates]
        if not docs:
            out[c.query_id] = {}
            continue
        scores = doc_emb[[row[d] for d in docs]] @ q_vec
        out[c.query_id] = {d: float(s) for d, s in zip(docs, scores)}
    return out
