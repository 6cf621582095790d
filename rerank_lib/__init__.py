"""rerank_lib: the thin shared library behind the rerank-repro notebooks."""
__version__ = "0.1.0"
