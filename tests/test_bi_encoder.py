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


# ------------------------------------------------------------------------------ a folder's own settings


def st_folder(path, pooling="cls", max_seq_length=32, prompts=None, normalize=True):
    """minilm-l6 saved as a SentenceTransformer folder with non-default pooling, max length and prompts."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    from rerank_lib.models import resolve

    modules = [Transformer(resolve("minilm-l6").source, max_seq_length=max_seq_length), Pooling(384, pooling)]
    model = SentenceTransformer(modules=modules + ([Normalize()] if normalize else []), device="cpu",
                                prompts=prompts if prompts is not None else {"query": "query: ",
                                                                              "document": "passage: "})
    model.save(str(path))
    return path


@pytest.fixture(scope="module")
def cls_folder(tmp_path_factory):
    return st_folder(tmp_path_factory.mktemp("st") / "cls-32-prompts")


def test_a_sentence_transformers_folder_encodes_with_its_own_settings(cls_folder):
    """Pooling (CLS), max length (32), normalisation and the query/document prompts come from the folder, so that
    queries and documents embed as SentenceTransformer(folder).encode_query / encode_document do (to 1e-5)."""
    from sentence_transformers import SentenceTransformer

    ours = BiEncoder(str(cls_folder), device="cpu", bf16=False)
    assert (ours.pooling, ours.normalize, ours.max_length) == ("cls", True, 32)
    assert (ours.query_prefix, ours.doc_prefix) == ("query: ", "passage: ")
    peer = SentenceTransformer(str(cls_folder), device="cpu")
    np.testing.assert_allclose(ours.encode_queries(TEXTS), peer.encode_query(TEXTS), atol=1e-5)
    corpus = {str(i): Document(str(i), text) for i, text in enumerate(TEXTS)}
    np.testing.assert_allclose(ours.encode_corpus(corpus, cache=False, show_progress=False),
                               peer.encode_document(TEXTS), atol=1e-5)
    # explicit arguments still win over the folder's settings
    assert BiEncoder(str(cls_folder), pooling="mean", max_length=64, device="cpu", bf16=False).max_length == 64


def test_the_builtin_keeps_its_settings(encoder):
    """minilm-l6 is itself a sentence-transformers folder: mean pooling, normalised, 256 tokens, no prompts."""
    assert (encoder.pooling, encoder.normalize, encoder.max_length, encoder.query_prefix, encoder.doc_prefix) == \
        ("mean", True, 256, "", "")


def test_incomplete_or_unsupported_sentence_transformers_folders_are_refused(cls_folder, tmp_path):
    import json
    import shutil

    from rerank_lib.models import IncompleteModelFolder

    no_pooling = tmp_path / "no-pooling"
    shutil.copytree(cls_folder, no_pooling)
    (no_pooling / "1_Pooling" / "config.json").unlink()
    with pytest.raises(IncompleteModelFolder, match=r"no-pooling: incomplete bi-encoder folder, missing "
                                                    r"1_Pooling/config.json \(pooling\)"):
        BiEncoder(str(no_pooling), device="cpu")
    no_modules = tmp_path / "no-modules"
    shutil.copytree(cls_folder, no_modules)
    (no_modules / "modules.json").unlink()
    with pytest.raises(IncompleteModelFolder, match="no-modules: incomplete bi-encoder folder, missing modules.json"):
        BiEncoder(str(no_modules), device="cpu")
    max_pooling = tmp_path / "max-pooling"
    shutil.copytree(cls_folder, max_pooling)
    (max_pooling / "1_Pooling" / "config.json").write_text(json.dumps({"embedding_dimension": 384,
                                                                      "pooling_mode": "max"}))
    with pytest.raises(IncompleteModelFolder, match="pooling 'max' is not one this library computes"):
        BiEncoder(str(max_pooling), device="cpu")
