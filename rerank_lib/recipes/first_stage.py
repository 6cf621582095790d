"""01_first_stage: BM25 and zero-shot MiniLM dense retrieval on SciFact, and the BM25 top-100 of TREC DL
2019/2020, each beside its published anchor. The runs it saves are the first stage of
every later notebook.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..data import Dataset, load_dataset, without_overlap
from ..data.trec import pooled_corpus, qid_order, top_k
from ..evaluation import reciprocal_rank_fusion
from ..first_stage import BM25Index, dense_search
from ..retrievers.bi_encoder import BiEncoder
from ..experiment import EvalSet, Evaluated, Row, Timer, record_run, save_run
from ..settings import snapshot
from .recipe import Recipe, RecipeSettings, is_main

PIPELINE = "first_stage"


@dataclass(frozen=True)
class FirstStageConfig(RecipeSettings):
    bm25_k1: float = 0.9  # Pyserini's defaults, the ones behind the BEIR / Pyserini anchors
    bm25_b: float = 0.4
    depth: int = 1000  # documents kept per SciFact query (the first stage later notebooks rerank)
    train_depth: int = 100  # SciFact train: candidates for negatives and teacher labels
    dense_model: str = "minilm-l6"
    dense_pooling: str = "mean"
    dense_max_length: int = 256
    dense_batch_size: int = 32  # documents per forward pass when encoding the corpus
    query_prefix: str = ""
    doc_prefix: str = ""
    dl_depth: int = 100  # TREC DL: the BM25 top-100 is all the text we have
    max_queries: int | None = None  # smoke: evaluate on the first N queries only
    smoke_dense_pool: int | None = None  # smoke: encode only the BM25 top-N of each query (+ judged docs)


def training(cfg: FirstStageConfig, results_dir, evaluate: bool) -> dict:
    """The notebook's runs (no model is trained: the later pipelines read these runs), on the main process."""
    if not is_main():
        return {}
    data = load(cfg)
    run_scifact(cfg, data, results_dir)
    run_trec_dl(cfg, data, results_dir)
    return {}


RECIPE = Recipe(PIPELINE, "01_first_stage", FirstStageConfig, steps=("load", "run_scifact", "run_trec_dl"),
                training=training)
config = RECIPE.config


def ensure_first_stage(cfg, results_dir) -> None:
    """01_first_stage's BM25 runs, built with its steps when missing (a later pipeline from the shell)."""
    from ..experiment import run_path

    if all(run_path(results_dir, cfg.profile, name, split, "bm25").exists() for name, split in
           (("scifact", "test"), ("scifact", "train"), ("trec-dl-2019", "test"), ("trec-dl-2020", "test"))):
        return
    print("building 01_first_stage's runs (missing from the results folder)", flush=True)
    training(config(cfg.profile, data_root=cfg.data_root), results_dir, False)


def _limit(dataset: Dataset, n: int | None) -> Dataset:
    return dataset if n is None else dataset.subset(sorted(dataset.queries, key=qid_order)[:n])


def load(cfg: FirstStageConfig) -> dict[str, Dataset]:
    """SciFact test and train (train minus the claims it shares with test) and TREC DL 2019/2020."""
    test = load_dataset("scifact", "test", root=cfg.data_root)
    train = load_dataset("scifact", "train", root=cfg.data_root)
    train = train.subset(without_overlap(train.queries, test.queries))
    out = {"scifact/test": _limit(test, cfg.max_queries), "scifact/train": _limit(train, cfg.max_queries)}
    for year in ("trec-dl-2019", "trec-dl-2020"):
        out[f"{year}/test"] = _limit(load_dataset(year, "test", root=cfg.data_root), cfg.max_queries)
    return out


def encoder(cfg: FirstStageConfig) -> BiEncoder:
    return BiEncoder(cfg.dense_model, pooling=cfg.dense_pooling, max_length=cfg.dense_max_length,
                     query_prefix=cfg.query_prefix, doc_prefix=cfg.doc_prefix)


def run_scifact(cfg: FirstStageConfig, data: dict[str, Dataset], results_dir) -> Evaluated:
    """BM25, MiniLM dense and their reciprocal-rank fusion on SciFact test; BM25 on train (saved for later notebooks)."""
    test, train = data["scifact/test"], data["scifact/train"]
    evalset, row = EvalSet.of(test, first_stage="corpus", depth=cfg.depth), Row(PIPELINE, "bm25", cfg.profile,
                                                                               params=snapshot(cfg), seed=cfg.seed)
    with Timer() as t_index:
        index = BM25Index.build(test.corpus, k1=cfg.bm25_k1, b=cfg.bm25_b)
    with Timer() as t:
        bm25 = index.search(test.queries, k=cfg.depth)
    save_run(bm25, results_dir, cfg.profile, "scifact", "test", "bm25")
    save_run(index.search(train.queries, k=cfg.train_depth), results_dir, cfg.profile, "scifact", "train", "bm25")
    records = [record_run(bm25, evalset, row.but(model="bm25s (stemmed, title + text)", wall_s=t_index.s + t.s,
                                                 reference=RECIPE.references[("scifact", "bm25")]), results_dir)]

    corpus = test.corpus
    if cfg.smoke_dense_pool:  # smoke: a small pool that still holds every judged document
        corpus = pooled_corpus(corpus, [bm25], cfg.smoke_dense_pool, [test.qrels])
    enc = encoder(cfg)
    with Timer() as t:
        embeddings = enc.encode_corpus(corpus, batch_size=cfg.dense_batch_size)
        dense = dense_search(enc, corpus, test.queries, k=cfg.depth, corpus_embeddings=embeddings)
    save_run(dense, results_dir, cfg.profile, "scifact", "test", "minilm-l6-dense")
    records.append(record_run(dense, evalset, row.but(method="minilm-l6-dense", model=cfg.dense_model, wall_s=t.s,
                                                      reference=RECIPE.references[("scifact", "minilm-l6-dense")]),
                              results_dir, baselines={"bm25": bm25}))
    fused = top_k(reciprocal_rank_fusion({"bm25": bm25, "dense": dense}, k=60), cfg.depth)
    save_run(fused, results_dir, cfg.profile, "scifact", "test", "rrf-bm25-minilm")
    records.append(record_run(fused, evalset, row.but(method="rrf-bm25-minilm",
                                                      model=f"RRF(k=60) of bm25 and {cfg.dense_model}"),
                              results_dir, baselines={"bm25": bm25}))
    return Evaluated(records)


def run_trec_dl(cfg: FirstStageConfig, data: dict[str, Dataset], results_dir) -> Evaluated:
    """TREC DL: the BM25 top-`dl_depth` that rank_llm distributes (its reranking by MiniLM is 02_teacher's)."""
    records = []
    for year in ("trec-dl-2019", "trec-dl-2020"):
        ds = data[f"{year}/test"]
        bm25 = top_k(ds.runs["bm25"], cfg.dl_depth)
        save_run(bm25, results_dir, cfg.profile, year, "test", "bm25")
        records.append(record_run(
            bm25, EvalSet.of(ds, first_stage="corpus", depth=cfg.dl_depth),
            Row(PIPELINE, "bm25", cfg.profile, "Anserini BM25 (rank_llm's run)", snapshot(cfg), cfg.seed,
                RECIPE.references[(year, "bm25")]), results_dir))
    return Evaluated(records)
