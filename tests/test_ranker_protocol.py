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


def test_candidates_from_run_orders_cuts_and_names_what_has_no_text():
    from rerank_lib.data.candidates import candidates_from_run

    run = {"q2": {"d0": 1.0, "d2": 5.0, "d1": 1.0}, "q": {}}
    [q2, q] = candidates_from_run(run, CORPUS, {"q": QUERY, "q2": "vitamin"}, depth=2)
    # the run's query order; best first, the tie d0/d1 by descending doc id (trec_eval's order); depth 2 drops d0
    assert (q2.query_id, q2.query, q.query_id, q.candidates) == ("q2", "vitamin", "q", ())
    assert [(c.doc_id, c.score, c.doc.text_for_model) for c in q2.candidates] == [
        ("d2", 5.0, "Unrelated text about the weather."), ("d1", 1.0, "Vitamin D Bone density rose with vitamin D.")]
    assert q2.candidates[1].doc is CORPUS["d1"]
    assert [len(c.candidates) for c in candidates_from_run(run, CORPUS, {"q": QUERY, "q2": "v"})] == [3, 0]  # all
    with pytest.raises(KeyError, match=r"teacher x: 1 queries and 2 candidate documents have no text, "
                                       r"e.g. \['q3', 'a', 'b'\]"):
        candidates_from_run({**run, "q3": {"b": 1.0, "a": 2.0, "c": 0.5}}, CORPUS, {"q": QUERY, "q2": "v"}, depth=2,
                            who="teacher x")  # c is below the depth: its text is not needed


class _PositionRanker:
    """A pairwise ranker scoring a pair by its position in the call; records each call's pairs."""

    def __init__(self):
        self.calls = []

    def score(self, queries, docs, batch_size, show_progress):
        import numpy as np

        self.calls.append((list(queries), list(docs), batch_size))
        return np.arange(len(docs), dtype=np.float32)


def test_rerank_candidates_scores_every_query_in_one_call_as_rerank_does():
    from rerank_lib.data.candidates import EvalSet
    from rerank_lib.rerankers.protocol import rerank_candidates, rerank_with

    run = {"q": RUN["q"], "q2": {"d1": 1.0}}
    queries = {"q": QUERY, "q2": "vitamin"}
    evalset = EvalSet("toy", "test", queries, {}, depth=2, run=run, corpus=CORPUS)
    ranker = _PositionRanker()
    out = rerank_candidates(ranker, list(evalset), batch_size=7)
    assert ranker.calls == [([QUERY, QUERY, "vitamin"], [CORPUS["d0"].text, CORPUS["d1"].text_for_model,
                                                         CORPUS["d1"].text_for_model], 7)]
    assert out == {"q": {"d0": 0.0, "d1": 1.0}, "q2": {"d1": 2.0}}  # each pair's score back to it; d2 below depth 2
    assert rerank_with(ranker, run, CORPUS, queries, depth=2, batch_size=7) == out
