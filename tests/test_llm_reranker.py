"""LLM-decoder rerankers on a tiny Llama built from a config (with the real Mistral tokenizer): indexing, inputs,
the Yes logit, training through fit, saving and loading, and the head-only ranker."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from rerank_lib.data.pairs import TrainGroup
from rerank_lib.models import load_tokenizer
from rerank_lib.training.groups import GroupObjective, fit
from rerank_lib.rerankers.llm_reranker import (
    FLAG_PROMPT, DecoderReranker, HeadOnlyRanker, LoraSettings, PromptFormat, ReadyDecoder, build_input_ids, last_token_index,
    position_ids_from_mask,
)
from rerank_lib.training import TrainConfig

QUERIES = ["does aspirin reduce stroke risk", "vitamin d and bone density"]
DOCS = ["Aspirin lowers the risk of a second stroke in adults over fifty. " * 3,
        "Bone mineral density rose with vitamin D supplements."]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("mistral-v0.1-tokenizer")


@pytest.fixture(scope="module")
def tiny_lm(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(config).eval()


def make(tiny_lm, tokenizer, **kw):
    kw.setdefault("device", "cpu")
    return DecoderReranker(ReadyDecoder("tiny", tiny_lm, tokenizer), **kw)


# ---------------------------------------------------------------------------------------------------- indexing


def test_last_token_index_right_and_left_padding():
    right = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    left = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]])
    assert last_token_index(right).tolist() == [2, 4, 0]
    assert last_token_index(left).tolist() == [4, 4, 4]
    assert position_ids_from_mask(left)[0].tolist() == [0, 0, 0, 1, 2]
    assert position_ids_from_mask(right)[0].tolist() == [0, 1, 2, 2, 2]
    with pytest.raises(ValueError, match="all padding"):
        last_token_index(torch.tensor([[1, 1], [0, 0]]))
    with pytest.raises(ValueError, match="batch, length"):
        last_token_index(torch.ones(3))


@pytest.mark.parametrize("head", ["score", "yes"])
def test_left_and_right_padding_score_like_unpadded(tiny_lm, tokenizer, head):
    right = make(tiny_lm, tokenizer, head=head, padding_side="right")
    left = make(tiny_lm, tokenizer, head=head, padding_side="left")
    right.cache_features = left.cache_features = False  # run the model itself, padded as asked
    alone = np.array([right.score([q], [d])[0] for q, d in zip(QUERIES, DOCS)])
    batch = right.collate(right.encode_pairs(QUERIES, DOCS))
    assert batch["attention_mask"][1, -1] == 0  # the short pair really is padded
    np.testing.assert_allclose(right.score(QUERIES, DOCS), alone, atol=1e-5)
    np.testing.assert_allclose(left.score(QUERIES, DOCS), alone, atol=1e-5)
    left.cache_features = True  # the cached path (hidden states + head) gives the same scores
    np.testing.assert_allclose(left.score(QUERIES, DOCS), alone, atol=1e-5)


# ---------------------------------------------------------------------------------------------------- inputs


def test_rag_retrieval_input_keeps_query_and_special_token(tokenizer):
    fmt = PromptFormat(kind="rag-retrieval")
    ids = build_input_ids(tokenizer, fmt, "what causes scurvy", "vitamin c deficiency " * 100, max_length=40)
    assert len(ids) == 40
    enc = lambda text: tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
    assert ids[0] == tokenizer.bos_token_id
    assert ids[1:1 + len(enc("query: what causes scurvy"))] == enc("query: what causes scurvy")
    assert ids[-len(enc("</s>")):] == enc("</s>")  # the special token survives truncation
    short = build_input_ids(tokenizer, fmt, "q", "a short doc", max_length=40)
    assert len(short) < 40 and short[-len(enc("</s>")):] == enc("</s>")


def test_flagembedding_input_layout(tokenizer):
    ids = build_input_ids(tokenizer, PromptFormat(kind="flagembedding"), "q1", "passage " * 300, max_length=80)
    text = tokenizer.decode(ids)
    assert len(ids) == 80
    assert text.startswith("<s>") and "A: q1" in text and "B: passage" in text
    assert text.endswith(FLAG_PROMPT)  # the prompt is never cut, the passage is


def test_long_query_is_capped_and_bad_input_errors(tokenizer):
    fmt = PromptFormat(kind="rag-retrieval", max_query_fraction=0.5)
    ids = build_input_ids(tokenizer, fmt, "word " * 200, "doc text", max_length=40)
    assert len(ids) <= 40
    with pytest.raises(ValueError, match="no room"):
        build_input_ids(tokenizer, PromptFormat(kind="flagembedding"), "q", "d", max_length=20)
    with pytest.raises(TypeError):
        build_input_ids(tokenizer, fmt, "q", None, max_length=40)
    with pytest.raises(ValueError, match="prompt kind"):
        PromptFormat(kind="alpaca")
    with pytest.raises(ValueError, match="chat template"):
        build_input_ids(tokenizer, PromptFormat(kind="chat"), "q", "d", max_length=60)


def test_bad_constructor_arguments(tiny_lm, tokenizer):
    with pytest.raises(ValueError, match="head"):
        make(tiny_lm, tokenizer, head="cls")
    with pytest.raises(ValueError, match="padding_side"):
        make(tiny_lm, tokenizer, padding_side="middle")
    with pytest.raises(ValueError, match="yes_probability"):
        make(tiny_lm, tokenizer, head="score").yes_probability(QUERIES, DOCS)


# ---------------------------------------------------------------------------------------------------- yes logit


def test_yes_logit_equals_full_logits_reference(tiny_lm, tokenizer):
    ranker = make(tiny_lm, tokenizer, head="yes")
    ranker.cache_features = False
    feats = ranker.encode_pairs(QUERIES, DOCS)
    with torch.no_grad():
        reference = []
        for f in feats:  # the full model, unpadded, every vocabulary logit at every position
            logits = tiny_lm(input_ids=torch.tensor([f["input_ids"]])).logits[0]
            reference.append((logits[-1, ranker.yes_id].item(), torch.softmax(logits[-1], -1)))
    np.testing.assert_allclose(ranker.score(QUERIES, DOCS), [r[0] for r in reference], atol=1e-4)
    vocab = ranker.yes_probability(QUERIES, DOCS, normalize="vocab")
    np.testing.assert_allclose(vocab, [r[1][ranker.yes_id].item() for r in reference], atol=1e-5)
    two_way = ranker.yes_probability(QUERIES, DOCS, normalize="yes_no")
    expect = [(r[1][ranker.yes_id] / (r[1][ranker.yes_id] + r[1][ranker.no_id])).item() for r in reference]
    np.testing.assert_allclose(two_way, expect, atol=1e-5)
    assert ranker.yes_id == tokenizer("Yes", add_special_tokens=False)["input_ids"][0]


# ---------------------------------------------------------------------------------------------------- training


def _groups():
    return [TrainGroup(q, [d, "unrelated text about trains", "more unrelated words"], [1.0, 0.0, 0.0])
            for q, d in zip(QUERIES, DOCS)]


def test_lora_yes_head_trains_with_fit_and_reloads(tiny_lm, tokenizer, tmp_path):
    ranker = make(tiny_lm, tokenizer, head="yes", lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    trainable, total = ranker.trainable_parameters()
    assert 0 < trainable < total and not ranker.model.yes_no.weight.requires_grad
    before = ranker.score(QUERIES, DOCS)
    cfg = TrainConfig(output_dir=str(tmp_path / "run"), learning_rate=1e-2, num_epochs=2, per_device_batch_size=2,
                      save_every_steps=None, mixed_precision="no", log_every_steps=1)
    result = fit(ranker, _groups(), GroupObjective("group_ce", group_size=3), cfg)
    assert result.global_step == 2 and all(np.isfinite(r["loss"]) for r in result.history)
    after = ranker.score(QUERIES, DOCS)
    assert not np.allclose(before, after)
    ranker.save(tmp_path / "saved")
    again = DecoderReranker.load(tmp_path / "saved", device="cpu", ready=ReadyDecoder("tiny", tiny_lm, tokenizer))
    np.testing.assert_allclose(again.score(QUERIES, DOCS), after, atol=1e-5)


def test_score_head_full_finetune_point_ce(tiny_lm, tokenizer, tmp_path):
    ranker = make(tiny_lm, tokenizer, head="score", init_seed=3)
    assert ranker.trainable_parameters()[0] == ranker.trainable_parameters()[1]
    cfg = TrainConfig(output_dir=str(tmp_path / "run"), learning_rate=1e-3, num_epochs=1, per_device_batch_size=3,
                      save_every_steps=None, mixed_precision="no")
    result = fit(ranker, _groups(), GroupObjective("point_ce"), cfg)
    assert result.global_step == 2
    ranker.load_weights(result.final_dir)  # the loop's save_pretrained output loads back
    with pytest.raises(RuntimeError, match="do not exist"):
        make(tiny_lm, tokenizer, head="yes").load_weights(result.final_dir)


def test_head_only_starts_at_the_zero_shot_yes_logit_and_learns(tiny_lm, tokenizer, tmp_path):
    decoder = make(tiny_lm, tokenizer, head="yes")
    probe = HeadOnlyRanker(decoder, init="yes")
    np.testing.assert_allclose(probe.score(QUERIES, DOCS), decoder.score(QUERIES, DOCS), atol=1e-4)
    cached = decoder.hidden_features(QUERIES, DOCS)  # second call: from the disk cache
    assert (tmp_path / "cache" / "llm_features").is_dir() and cached.shape == (2, 32)
    groups = _groups()
    cfg = TrainConfig(output_dir=str(tmp_path / "run"), learning_rate=5e-2, num_epochs=20, per_device_batch_size=2,
                      save_every_steps=None, mixed_precision="no", log_every_steps=1)
    result = fit(probe, groups, GroupObjective("group_ce", group_size=3), cfg)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    pointwise = HeadOnlyRanker(decoder, init="random", init_seed=1)
    cfg_pt = TrainConfig(output_dir=str(tmp_path / "pt"), learning_rate=5e-2, num_epochs=10, per_device_batch_size=6,
                         save_every_steps=None, mixed_precision="no", log_every_steps=1)
    result = fit(pointwise, groups, GroupObjective("point_ce"), cfg_pt)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    pointwise.load_weights(result.final_dir)  # the loop's model.pt loads back
    with pytest.raises(ValueError, match="head='yes'"):
        HeadOnlyRanker(make(tiny_lm, tokenizer, head="score"), init="yes")


def test_recipe_profiles_resolve_offline_and_reject_typos():
    from rerank_lib.recipes import llm_reranker as recipe

    paper = recipe.config("paper")  # hub models: resolves and prints offline, runs on a GPU online
    assert paper.llm == "BAAI/bge-reranker-v2-gemma" and paper.score_llm == "Qwen/Qwen2.5-1.5B-Instruct"
    assert set(paper.decoder_variants) == set(recipe.DECODER_VARIANTS) and paper.test_queries is None
    assert recipe.config("default", test_queries=300).test_queries == 300
    with pytest.raises(ValueError, match="head loss"):
        recipe.config("default", head_losses=["hinge"])
    with pytest.raises(ValueError, match="decoder variant"):
        recipe.config("default", decoder_variants=["qlora"])
    with pytest.raises(TypeError, match="unknown setting"):
        recipe.config("default", test_querys=10)
    default = recipe.config("default")  # the values of the flat settings these nested configs replace
    assert (default.test_queries, default.dev_queries, default.train_queries) == (100, 24, 64)
    head, student = default.head_train, default.student_train
    assert (head.learning_rate, head.num_epochs, head.per_device_batch_size, head.eval_every_steps) == (2e-3, 40, 8, 10)
    assert (head.weight_decay, head.mixed_precision, head.metric_for_best) == (0.0, "no", "nDCG@10")
    assert (student.learning_rate, student.max_steps, student.per_device_batch_size, student.eval_every_steps) == (
        2e-4, 100, 32, 20)
    smoke = recipe.config("smoke", seed=5, **{"student_train.seed": 1})
    assert (smoke.head_train.seed, smoke.decoder_train.seed, smoke.student_train.seed) == (5, 5, 1)
    assert smoke.student_train.save_every_steps == smoke.student_train.max_steps == 3
    # RAG-Retrieval distilling_bert.yaml: 2 epochs (not a step count), v2-m3 student; its LLM teacher's vocab softmax
    assert (paper.student_train.max_steps, paper.student_train.num_epochs, paper.student) == (
        None, 2, "BAAI/bge-reranker-v2-m3")
    assert paper.teacher_normalize == "vocab" and paper.decoder_train.eval_every_steps == 500
    decoder = paper.decoder_train  # training_llm.yaml: lr 5e-5, 2 epochs, 12 x 2, cosine
    assert (decoder.learning_rate, decoder.num_epochs, decoder.per_device_batch_size,
            decoder.gradient_accumulation_steps, decoder.lr_scheduler) == (5e-5, 2, 12, 2, "cosine")


def test_default_profile_distils_an_llm_and_runs_lora_yes_at_a_small_scale():
    from rerank_lib.recipes import llm_reranker as recipe

    default = recipe.config("default")
    assert default.decoder_variants == ("lora-yes",) and default.distill_source == "auto"
    dec = default.decoder_train
    assert (dec.max_steps, dec.per_device_batch_size, dec.eval_every_steps, dec.learning_rate) == (32, 1, 16, 2e-4)
    assert recipe.decoder_scale(default, dec, "group_ce", 64) == "32 steps x 1 group of 8 (64 training queries)"
    assert recipe.decoder_scale(default, replace(dec, per_device_batch_size=12, gradient_accumulation_steps=2,
                                                      max_steps=None, num_epochs=2), "point_ce", 64) == (
        "2 epoch(s) x 24 pairs (64 training queries)")
    # auto picks the best LLM source on dev even where the offline teacher measures higher (it is "LLM -> BERT")
    dev = {"llm-zero-shot": 0.21, "llm-head": 0.34, "bm25+minilm-l6": 0.71}
    assert recipe.choose_source(default, dev) == "llm-head"
    assert recipe.choose_source(default, {"llm-zero-shot": 0.3, "bm25+minilm-l6": 0.7}) == "llm-zero-shot"
    named = recipe.config("default", distill_source="bm25+minilm-l6")
    assert recipe.choose_source(named, dev) == "bm25+minilm-l6"  # named: taken as asked
    with pytest.raises(ValueError, match="picks among the LLM sources"):
        recipe.config("default", distill_sources=["bm25+minilm-l6"])
    with pytest.raises(ValueError, match="none was measured"):
        recipe.choose_source(default, {"bm25+minilm-l6": 0.7})


def test_sources_name_the_chosen_teacher():
    import pandas as pd
    from rerank_lib.recipes import llm_reranker as recipe

    sources = recipe.Sources(pd.DataFrame(), {}, "llm-head", {
        "llm-head": ("smollm2-head-group-ce", "smollm2-head-group-ce (score head on the frozen smollm2-135m-instruct, "
                                              "Platt-scaled)")})
    assert sources.teacher_name == "smollm2-head-group-ce"
    assert sources.teacher_model.startswith("smollm2-head-group-ce (score head")


def test_platt_probability_by_hand():
    """teacher.platt_probability: scores that say nothing give 0.5 everywhere; an informative score ranks as it is."""
    from rerank_lib.teacher import platt_probability

    flat = platt_probability(np.array([-1.0, -1.0, 1.0, 1.0]), np.array([0, 1, 0, 1]))
    assert flat(np.array([-1.0, 0.0, 1.0])) == pytest.approx([0.5, 0.5, 0.5], abs=1e-6)
    p = platt_probability(np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0]), np.array([0, 0, 1, 0, 1, 1]))
    values = p(np.array([0.0, 2.5, 5.0]))
    assert values[0] < 0.5 < values[2] and values[1] == pytest.approx(0.5, abs=1e-6)  # symmetric data: 0.5 at 2.5
