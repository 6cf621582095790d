"""Retrievers: the bi-encoder (pooling, encode, the forward that training shares)."""
from .bi_encoder import BiEncoder, mean_pool

__all__ = ["BiEncoder", "mean_pool"]
