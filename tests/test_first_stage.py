"""BM25 (tiny corpus, save/load, real SciFact) and exact dense search / reranking; runs round-trip as TREC files."""
from __future__ import annotations

import ir_measures
import pytest

from rerank_lib.data.trec import read_run, write_run
from rerank_lib.data.types import Document
from rerank_lib.first_stage import BM25Index, bm25_search, dense_search, rerank_with_encoder

CORPUS = {
    "cat": Document("cat", "The cat sat on the mat and purred at the other cats.", "Cats"),
    "dog": Document("dog", "Dogs are running fast in the park, chasing a ball.", "Dogs"),
    "qm": Document("qm", "Quantum mechanics describes physics at the scale of atoms.", "Physics"),
    "bake": Document("bake", "Bake the bread at 220 degrees until the crust is golden.", "Baking"),
}
QUERIES = {"q1": "where did the cats sit", "q2": "running dogs", "q3": "atomic physics", "q4": "zzzz unknown"}


pytestmark = pytest.mark.usefixtures("private_cache")


def _top(run, qid):
    return max(run[qid], key=run[qid].get)


def test_bm25_ranks_the_obvious_document_first():
    run = bm25_search(CORPUS, QUERIES, k=10)
    assert _top(run, "q1") == "cat" and _top(run, "q2") == "dog" and _top(run, "q3") == "qm"
    assert run["q4"] == {}  # no shared term: nothing, as Lucene returns
    assert all(s > 0 for docs in run.values() for s in docs.values())
    assert len(bm25_search(CORPUS, QUERIES, k=1)["q1"]) == 1


def test_bm25_ignore_identical_ids_and_save_load(tmp_path):
    corpus = {**CORPUS, "q1": Document("q1", "where did the cats sit")}
    index = BM25Index.build(corpus)
    assert _top(index.search({"q1": QUERIES["q1"]}), "q1") == "q1"
    assert "q1" not in index.search({"q1": QUERIES["q1"]}, ignore_identical_ids=True)["q1"]
    loaded = BM25Index.load(index.save(tmp_path / "idx"))
    assert loaded.params == index.params
    assert loaded.search(QUERIES) == index.search(QUERIES)


def test_write_run_round_trip(tmp_path):
    run = bm25_search(CORPUS, QUERIES, k=10)
    back = read_run(write_run(run, tmp_path / "bm25.trec", tag="bm25"))
    assert {q: d for q, d in run.items() if d} == {q: pytest.approx(d, abs=1e-6) for q, d in back.items()}


def test_write_run_exact_gives_back_the_very_floats(tmp_path):
    import numpy as np
    run = {"q1": {"a": 1 / 3, "b": 1 / 63 + 1 / 61, "c": float(np.float32(0.1234567)), "d": -2.5e-9}}
    exact = read_run(write_run(run, tmp_path / "exact.trec", exact=True))
    assert exact == run
    rounded = read_run(write_run(run, tmp_path / "rounded.trec"))
    assert rounded["q1"]["a"] == 0.333333 and rounded["q1"]["d"] == 0.0  # the trec_eval format keeps 6 decimals


def test_bm25_scifact_reaches_the_published_range(shared_data):
    from rerank_lib.data.beir import load_beir

    ds = load_beir(shared_data / "beir" / "scifact", "test")
    run = BM25Index.build(ds.corpus).search(ds.queries, k=1000)  # k1=0.9, b=0.4 (Pyserini); measured 0.676
    ndcg = ir_measures.calc_aggregate([ir_measures.nDCG @ 10], ds.qrels, run)[ir_measures.nDCG @ 10]
    assert 0.65 <= ndcg <= 0.70, ndcg


def test_dense_search_on_a_tiny_corpus(encoder):
    queries = {k: v for k, v in QUERIES.items() if k != "q4"}
    run = dense_search(encoder, CORPUS, queries, k=2)
    assert _top(run, "q1") == "cat" and _top(run, "q2") == "dog" and _top(run, "q3") == "qm"
    assert all(len(docs) == 2 for docs in run.values())
    emb = encoder.encode_corpus(CORPUS)
    assert dense_search(encoder, CORPUS, queries, k=10, corpus_embeddings=emb) == dense_search(encoder, CORPUS, queries, k=10)
    q_vec = encoder.encode_queries(["where did the cats sit"])[0]
    assert run["q1"]["cat"] == pytest.approx(float(emb[0] @ q_vec), abs=1e-5)
    with pytest.raises(ValueError):
        dense_search(encoder, CORPUS, queries, corpus_embeddings=emb[:2])
    corpus = {**CORPUS, "q1": Document("q1", "where did the cats sit")}
    assert "q1" not in dense_search(encoder, corpus, {"q1": QUERIES["q1"]}, ignore_identical_ids=True)["q1"]


def test_rerank_with_encoder_rescores_the_top_depth(encoder, private_cache):
    first = {"q1": {"bake": 3.0, "dog": 2.0, "cat": 1.0, "qm": 0.5}}
    out = rerank_with_encoder(encoder, first, CORPUS, QUERIES, depth=3)
    assert set(out["q1"]) == {"bake", "dog", "cat"}  # qm was beyond depth
    assert _top(out, "q1") == "cat"
    dense = dense_search(encoder, CORPUS, {"q1": QUERIES["q1"]}, k=4)
    for d, s in out["q1"].items():
        assert s == pytest.approx(dense["q1"][d], abs=1e-5)
    # few candidates: only they are encoded (a different cache entry), with the same scores
    few = rerank_with_encoder(encoder, first, CORPUS, QUERIES, depth=1)
    assert list(few["q1"]) == ["bake"] and few["q1"]["bake"] == pytest.approx(dense["q1"]["bake"], abs=1e-5)
    assert len(list((private_cache / "embeddings").glob("*.npy"))) == 2
    with pytest.raises(KeyError):
        rerank_with_encoder(encoder, {"q1": {"missing": 1.0}}, CORPUS, QUERIES)
