"""Every reranker implements the one Ranker protocol, rerank(run, corpus, queries, depth=100) -> Run, so the
experiment layer can evaluate any of them the same way; one tiny rerank goes through the protocol alone."""
from __future__ import annotations

import inspect

import pytest
import torch

from rerank_lib.data.types import Document
from rerank_lib.listwise import ListwiseReranker
from rerank_lib.models import load_tokenizer
from rerank_lib.rerankers import CrossEncoder, Ranker
from rerank_lib.rerankers.llm_reranker import DecoderReranker, HeadOnlyRanker, ReadyDecoder
from rerank_lib.rerankers.monot5 import T5Ranker, build_t5_from_config
from rerank_lib.rerankers.protocol import RERANK_PARAMETERS

RANKERS = [CrossEncoder, T5Ranker, DecoderReranker, HeadOnlyRanker, ListwiseReranker]

QUERY = "does aspirin reduce stroke risk"
CORPUS = {"d0": Document("d0", "Aspirin lowers the risk of a second stroke."),
          "d1": Document("d1", "Bone density rose with vitamin D.", title="Vitamin D"),
          "d2": Document("d2", "Unrelated text about the weather.")}
RUN = {"q": {"d0": 3.0, "d1": 2.0, "d2": 1.0}}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize("cls", RANKERS, ids=lambda c: c.__name__)
def test_rerank_signature_is_the_protocols(cls):
    assert issubclass(cls, Ranker)
    params = list(inspect.signature(cls.rerank).parameters.values())[1:]  # without self
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    assert tuple(p.name for p in positional) == RERANK_PARAMETERS
    assert positional[-1].default == 100  # depth
    assert all(p.default is p.empty for p in positional[:-1])
    extra = params[len(positional):]
    assert all(p.kind == p.KEYWORD_ONLY and p.default is not p.empty for p in extra), extra


@pytest.fixture(scope="module")
def mistral():
    from rerank_lib.listwise.prompts import ZEPHYR_STYLE_TEMPLATE

    tok = load_tokenizer("mistral-v0.1-tokenizer")
    tok.chat_template = ZEPHYR_STYLE_TEMPLATE
    tok.pad_token = tok.unk_token
    return tok


def _tiny_llama(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                                        max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
                                        eos_token_id=tokenizer.eos_token_id)).eval()


def test_built_rankers_are_rankers(mistral):
    t5, t5_tok = build_t5_from_config(seed=3, d_model=16, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=2,
                                      d_kv=8)
    decoder = DecoderReranker(ReadyDecoder("tiny", _tiny_llama(mistral), mistral), head="yes", device="cpu")
    built = [CrossEncoder("minilm-l6", device="cpu"), T5Ranker.from_model(t5, t5_tok, bf16=False), decoder,
             HeadOnlyRanker(decoder), ListwiseReranker(_tiny_llama(mistral), mistral, mode="first", window=4,
                                                       stride=2, identifiers="alpha", autocast=False)]
    assert [type(r) for r in built] == RANKERS
    assert all(isinstance(r, Ranker) for r in built)
    assert not isinstance(object(), Ranker)


def _rerank(ranker: Ranker, depth: int):
    """What the experiment layer does: nothing but the protocol."""
    return ranker.rerank(RUN, CORPUS, {"q": QUERY}, depth)


def test_a_tiny_rerank_through_the_protocol():
    model, tok = build_t5_from_config(seed=3, d_model=16, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=2,
                                      d_kv=8)
    ranker = T5Ranker.from_model(model.eval(), tok, bf16=False)
    out = _rerank(ranker, depth=2)
    assert list(out) == ["q"] and set(out["q"]) == {"d0", "d1"}  # d2 is below the depth
    _, logits = ranker.get_scores(QUERY, [CORPUS["d0"].text_for_model, CORPUS["d1"].text_for_model],
                                  return_logits=True)
    assert [out["q"]["d0"], out["q"]["d1"]] == pytest.approx([t - f for f, t in logits], abs=1e-5)
    assert set(_rerank(ranker, depth=100)["q"]) == set(CORPUS)
