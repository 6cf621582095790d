"""Retrievers: the bi-encoder (pooling, encode, the forward that training shares)."""
from .bi_encoder import BiEncoder

__all__ = ["BiEncoder"]
