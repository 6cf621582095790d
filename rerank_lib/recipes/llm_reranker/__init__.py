"""12_: LLM-decoder rerankers (RAG-Retrieval score head, bge-reranker-v2-gemma Yes logit) and LLM -> BERT
distillation, on SciFact. The notebook calls, in order: build_data (training groups, dev slice, a seeded test
subset), llm_features (one cached forward pass per pair: the zero-shot read-outs, the heads' inputs, the LLM
teacher), zero_shot, train_head (a linear score head on the frozen decoder), train_decoder (the paper path: LoRA
Yes logit or a full score head), distillation_sources (each candidate teacher measured on dev), distillation_file
(RAG-Retrieval's format) and distill (MiniLM on the soft labels). Every model trains through
experiment.train_with_dev_selection (the untrained start is step 0, a candidate) and enters the results through
experiment.record_reranker: a row vs BM25 and vs its start, and a "+interp" row (weight chosen on dev).
"""
import dataclasses

from ..recipe import Trained, is_main, main_first
from .data import LLMData, build_data, llm_features, load_llm
from .distillation import Sources, choose_source, distill, distillation_file, distillation_sources
from .rows import ZERO_SHOT, Row, decoder_scale, record_bm25, train_decoder, train_head, zero_shot
from .settings import DECODER_VARIANTS, LLM_SOURCES, PIPELINE, RECIPE, SOURCES, LLMRerankerConfig, config

__all__ = [
    "DECODER_VARIANTS", "LLM_SOURCES", "LLMData", "LLMRerankerConfig", "PIPELINE", "RECIPE", "Row", "SOURCES", "Sources", "ZERO_SHOT",
    "build_data", "choose_source", "config", "decoder_scale", "distill", "distillation_file", "distillation_sources", "llm_features", "load_llm",
    "record_bm25", "train_decoder", "train_head", "zero_shot",
]


def train_from_shell(cfg: LLMRerankerConfig, results_dir, evaluate: bool) -> dict:
    """Notebook 12 from the shell; its zero-shot start and trained rows write their records as they go."""
    from ...experiment import records_of, results_table
    from ..first_stage import ensure_first_stage

    with main_first():
        ensure_first_stage(cfg, results_dir)
        data = build_data(cfg, results_dir)
    llm = load_llm(cfg)
    llm_features(cfg, llm, data)
    zs = zero_shot(cfg, llm, data, results_dir, init=cfg.head_init)
    heads = [train_head(cfg, llm, data, loss, zs, results_dir) for loss in cfg.head_losses]
    decoders = [train_decoder(cfg, v, data, zs, results_dir) for v in cfg.decoder_variants]
    best_head = max(heads, key=lambda h: h.selected.value) if heads else None
    sources = distillation_sources(cfg, llm, data, best_head)
    with main_first():
        path = distillation_file(cfg, data, sources, results_dir)
    start, student = distill(cfg, data, path, sources, results_dir)
    rows = [zs, *heads, *decoders, start, student]
    if evaluate and is_main():
        rows.insert(0, record_bm25(cfg, data, results_dir))
        print(results_table(records_of(rows), bases=("bm25", "start")).to_string())
    trained = {row.method: Trained.llm_reranker(row.selected, row.ranker) for row in [*heads, *decoders]}
    return {**trained, student.method: Trained.cross_encoder(student.selected, student.ranker)}


#: the pipeline with its shell training (settings.RECIPE, which the steps use, is the same recipe without it)
RECIPE = dataclasses.replace(RECIPE, training=train_from_shell)
