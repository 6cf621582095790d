"""Rerankers that score (query, document) pairs, and their losses.

cross_encoder: the BERT-like cross-encoder (bge-reranker / RAG-Retrieval `bert_encoder`);
losses: point_ce, point_mse, group_ce (+ KD), ranknet, listwise_ce.
Their training examples are built by rerank_lib.training.groups; the experiment layer trains and evaluates them.
"""
from .cross_encoder import CrossEncoder, rerank_with
from .losses import GROUPWISE, LOSSES, POINTWISE, group_ce, kd_term, listwise_ce, point_ce, point_mse, ranknet

__all__ = [
    "CrossEncoder", "rerank_with", "LOSSES", "POINTWISE", "GROUPWISE", "point_ce", "point_mse", "group_ce", "kd_term",
    "ranknet", "listwise_ce",
]
