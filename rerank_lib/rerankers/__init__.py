"""Rerankers that score (query, document) pairs, their losses and their training (`fit`).

protocol: `Ranker`, the rerank(run, corpus, queries, depth) -> Run that every reranker implements;
cross_encoder: the BERT-like cross-encoder (bge-reranker / RAG-Retrieval `bert_encoder`) and `fit`;
losses: point_ce, point_mse, group_ce (+ KD), ranknet, listwise_ce.
"""
from .cross_encoder import CrossEncoder, RerankEvaluator, fit, rerank_with
from .losses import GROUPWISE, LOSSES, POINTWISE, group_ce, kd_term, listwise_ce, point_ce, point_mse, ranknet
from .protocol import Ranker

__all__ = [
    "Ranker", "CrossEncoder", "RerankEvaluator", "fit", "rerank_with", "LOSSES", "POINTWISE", "GROUPWISE", "point_ce",
    "point_mse", "group_ce", "kd_term", "ranknet", "listwise_ce",
]
