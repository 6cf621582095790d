"""BiEncoder: equal to sentence-transformers, bf16 close to fp32, one code path with grad, embedding cache."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rerank_lib.data.types import Document
from rerank_lib.retrievers import BiEncoder, mean_pool

TEXTS = [
    "A man is eating food.",
    "Vitamin D deficiency increases the risk of hip fractures in elderly patients. " * 30,  # > 256 tokens
    "short",
    "  Leading spaces and MIXED case  ",
    "Microglia are the resident immune cells of the central nervous system.",
]


pytestmark = pytest.mark.usefixtures("private_cache")


def _cos(a, b):
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_matches_sentence_transformers_in_fp32(encoder):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(encoder.resolved.source, device="cpu")
    assert st.max_seq_length == encoder.max_length == 256
    ours = encoder.encode(TEXTS, show_progress=False)
    theirs = st.encode(TEXTS, convert_to_numpy=True)
    assert ours.dtype == np.float32 and ours.shape == (len(TEXTS), 384)
    assert _cos(ours, theirs).min() > 0.9999


def test_length_sorting_restores_input_order_and_normalises(encoder):
    together = encoder.encode(TEXTS, batch_size=2, show_progress=False)
    alone = np.stack([encoder.encode([t], show_progress=False)[0] for t in TEXTS])
    assert _cos(together, alone).min() > 0.9999
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([], show_progress=False).shape == (0, 384)


def test_bf16_autocast_is_close_to_fp32(encoder):
    bf16 = BiEncoder("minilm-l6", device="cpu", bf16=True)  # forced: emulated where the CPU lacks native bf16
    assert bf16.compute_dtype == torch.bfloat16
    fp32 = encoder.encode(TEXTS, show_progress=False)
    low = bf16.encode(TEXTS, show_progress=False)
    assert low.dtype == np.float32
    assert _cos(fp32, low).min() > 0.999


def test_embed_keeps_grad_for_training(encoder):
    model = encoder.model
    model.train()
    try:
        out = encoder.embed(encoder.tokenize(["a query", "a longer document about something"]))
        assert out.requires_grad and out.shape == (2, 384)
        out.sum().backward()
        assert model.embeddings.word_embeddings.weight.grad is not None
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


def test_cls_pooling_differs_from_mean(encoder):
    cls = BiEncoder("minilm-l6", pooling="cls", device="cpu", bf16=False)
    assert _cos(cls.encode(TEXTS[:2], show_progress=False), encoder.encode(TEXTS[:2], show_progress=False)).max() < 0.999
    with pytest.raises(ValueError):
        BiEncoder("minilm-l6", pooling="max")


def test_corpus_cache_hit_returns_the_same_array_without_recomputing(encoder, tmp_path, monkeypatch):
    corpus = {"d1": Document("d1", "cats sit on mats", "Cats"), "d2": Document("d2", "dogs run fast")}
    first = encoder.encode_corpus(corpus, show_progress=False)
    path = encoder.cache_path(list(corpus), [d.text_for_model for d in corpus.values()])
    assert path.exists() and path.parent == tmp_path / "embeddings"

    def boom(*args, **kwargs):
        raise AssertionError("encode called on a cache hit")

    monkeypatch.setattr(encoder, "encode", boom)
    np.testing.assert_array_equal(encoder.encode_corpus(corpus), first)
    changed = {**corpus, "d2": Document("d2", "dogs run slowly")}
    with pytest.raises(AssertionError, match="cache hit"):  # a changed text is a new key
        encoder.encode_corpus(changed)
    monkeypatch.undo()
    other = BiEncoder("minilm-l6", device="cpu", bf16=False, doc_prefix="passage: ")
    assert other.cache_path(["d1"], ["x"]) != encoder.cache_path(["d1"], ["x"])


def test_mean_pool_by_hand():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]],   # third position is padding
                           [[5.0, 6.0], [7.0, 8.0], [9.0, 10.0]]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert mean_pool(hidden, mask).tolist() == [[2.0, 3.0], [7.0, 8.0]]
    assert mean_pool(hidden[:1], torch.zeros(1, 3, dtype=torch.long)).tolist() == [[0.0, 0.0]]  # no NaN
