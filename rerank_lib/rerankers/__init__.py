"""Rerankers that score (query, document) pairs.

protocol: `Ranker`, the rerank(run, corpus, queries, depth) -> Run that every reranker implements;
cross_encoder: the BERT-like cross-encoder (bge-reranker / RAG-Retrieval `bert_encoder`) and `fit`, which trains
with the losses of rerank_lib.losses named in `losses.LOSSES` (point_ce, point_mse, group_ce (+ KD), ranknet,
listwise_ce).
"""
from .cross_encoder import CrossEncoder, RerankEvaluator, fit, rerank_with
from .protocol import Ranker

__all__ = ["Ranker", "CrossEncoder", "RerankEvaluator", "fit", "rerank_with"]
