"""12_: LLM-decoder rerankers (RAG-Retrieval score head, bge-reranker-v2-gemma Yes logit) and LLM -> BERT
distillation, on SciFact.

Steps, one function each (the notebook calls them in order):
  build_data        SciFact train minus the dev slice: `train_queries` queries, each a group of its qrels positives
                    and BM25 negatives; the dev slice's BM25 top-`dev_depth`; a seeded subset of SciFact test with
                    its BM25 top-`depth` (the LLM is slow on CPU: see the notebook for the measured cost).
  llm_features      ONE forward pass of the decoder per pair (FlagEmbedding prompt), cached: it gives the zero-shot
                    Yes logit, the inputs of the score heads, and the LLM teacher's P(Yes) at the first step.
  zero_shot         the zero-shot Yes-logit reranker (the start of every SmolLM2 model).
  train_head        RAG-Retrieval's linear score head on the frozen decoder (starting at the Yes row), with a loss
                    of rerank_lib.losses, through `fit` (the shared loop); dev curve, best on dev.
  train_decoder     (optional; the paper path) the whole decoder: LoRA Yes-logit (FlagEmbedding) or full
                    fine-tuning of a score head (RAG-Retrieval), same `fit`.
  distillation_sources / distill
                    each candidate teacher measured on the dev slice (LLM zero-shot P(Yes), the trained LLM head,
                    the offline teacher bm25+minilm-l6); the best one labels the training pairs in RAG-Retrieval's
                    distillation format {query, pos: every doc, pos_scores in [0, 1]}, written and read back, and a
                    MiniLM cross-encoder is trained on it (point_ce on soft labels, RAG-Retrieval's distilling_bert).
Every trained model gets a record vs BM25 and vs its own start, and a "+interp" row (weight chosen on dev).
"""
# The code lives in one submodule per step: settings, data, llm (features), rows (zero-shot and trained models),
# distillation and report. This package re-exports what the notebook (`recipe.<name>`) and the tests use. To
# monkeypatch a name, patch it in the submodule that looks it up: rebinding it here does not reach the submodules.
from .settings import (
    DECODER_VARIANTS as DECODER_VARIANTS, PIPELINE as PIPELINE, PROFILES as PROFILES, SOURCES as SOURCES,
    LLMRerankerConfig as LLMRerankerConfig, cache_root as cache_root, config as config,
)
from .data import LLMData as LLMData, build_data as build_data
from .llm import llm_features as llm_features, load_llm as load_llm
from .rows import (
    ZERO_SHOT as ZERO_SHOT, Row as Row, record_bm25 as record_bm25, train_decoder as train_decoder,
    train_head as train_head, zero_shot as zero_shot,
)
from .distillation import (
    Sources as Sources, distill as distill, distillation_file as distillation_file,
    distillation_sources as distillation_sources,
)
from .report import curves_figure as curves_figure, learning_curves as learning_curves, results_table as results_table
