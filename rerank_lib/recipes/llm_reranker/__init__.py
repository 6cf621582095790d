"""12_: LLM-decoder rerankers (RAG-Retrieval score head, bge-reranker-v2-gemma Yes logit) and LLM -> BERT
distillation, on SciFact. The notebook calls, in order: build_data (training groups, dev slice, a seeded test
subset), llm_features (one cached forward pass per pair: the zero-shot read-outs, the heads' inputs, the LLM
teacher), zero_shot, train_head (a linear score head on the frozen decoder), train_decoder (the paper path: LoRA
Yes logit or a full score head), distillation_sources (each candidate teacher measured on dev), distillation_file
(RAG-Retrieval's format) and distill (MiniLM on the soft labels). Every model trains through
experiment.train_with_dev_selection (the untrained start is step 0, a candidate) and enters the results through
experiment.record_reranker: a row vs BM25 and vs its start, and a "+interp" row (weight chosen on dev).
"""
from .data import LLMData, build_data, llm_features, load_llm
from .distillation import Sources, choose_source, distill, distillation_file, distillation_sources
from .rows import ZERO_SHOT, Row, decoder_scale, record_bm25, train_decoder, train_head, zero_shot
from .settings import DECODER_VARIANTS, LLM_SOURCES, PIPELINE, RECIPE, SOURCES, LLMRerankerConfig, config

__all__ = [
    "DECODER_VARIANTS", "LLM_SOURCES", "LLMData", "LLMRerankerConfig", "PIPELINE", "RECIPE", "Row", "SOURCES", "Sources", "ZERO_SHOT",
    "build_data", "choose_source", "config", "decoder_scale", "distill", "distillation_file", "distillation_sources", "llm_features", "load_llm",
    "record_bm25", "train_decoder", "train_head", "zero_shot",
]
