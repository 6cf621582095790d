"""Rerankers that score (query, document) pairs; none trains or evaluates itself.

protocol: `Ranker`, the rerank(run, corpus, queries, depth) -> Run that every reranker implements;
cross_encoder: the BERT-like cross-encoder (bge-reranker / RAG-Retrieval `bert_encoder`). Its training examples
are built by rerank_lib.training.groups with the losses of rerank_lib.losses; the experiment layer trains and
evaluates it.
"""
from .cross_encoder import CrossEncoder
from .protocol import Ranker, rerank_with

__all__ = ["Ranker", "CrossEncoder", "rerank_with"]
