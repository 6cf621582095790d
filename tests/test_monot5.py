"""monoT5 scoring: the prompt, EOS and truncation, the true/false ids from the tokenizer, and scores/logits that equal
a hand-written forward pass, for a T5 from a config and for the MiniLM encoder-decoder student."""
import numpy as np
import pytest
import torch

from rerank_lib.data.types import Document
from rerank_lib.models import load_tokenizer
from rerank_lib.rerankers.monot5 import (
    T5Ranker, build_minilm_student, build_t5_from_config, encode_pairs, first_step_logits, relevance_token_ids,
)

QUERY = "what causes muscle cramps after exercise"
DOCS = [
    "Muscle cramps after exercise are often linked to fatigue and dehydration.",
    "Paris is the capital of France.",
    "Exercise-associated muscle cramps: electrolyte loss and neuromuscular fatigue both play a part, studies say.",
]


@pytest.fixture(scope="module")
def t5_tok():
    return load_tokenizer("t5-tokenizer")


@pytest.fixture(scope="module")
def bert_tok():
    return load_tokenizer("minilm-l6")


@pytest.fixture(scope="module")
def tiny_t5(t5_tok):
    model, tok = build_t5_from_config(seed=3, d_model=16, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=2,
                                      d_kv=8)
    return model.eval(), tok


@pytest.fixture(scope="module")
def tiny_student():
    model, tok = build_minilm_student(decoder_layers=1, decoder_intermediate_size=64, seed=5)
    return model.eval(), tok


def test_true_false_ids_come_from_the_tokenizer(t5_tok, bert_tok):
    assert relevance_token_ids(t5_tok) == (t5_tok.get_vocab()["▁false"], t5_tok.get_vocab()["▁true"])
    assert relevance_token_ids(t5_tok) == (6136, 1176)  # the ids monoT5 scores on (shared/README)
    f, t = relevance_token_ids(bert_tok)
    assert (f, t) == tuple(bert_tok.convert_tokens_to_ids(["false", "true"])) and f != t


def test_a_tokenizer_without_single_tokens_is_refused():
    class Splitting:
        def get_vocab(self):
            return {"fa": 1, "lse": 2}

        def encode(self, word, add_special_tokens=False):
            return [1, 2]

    with pytest.raises(ValueError, match="no single token for 'false'"):
        relevance_token_ids(Splitting())


def test_inputs_equal_the_package_prompt_with_eos_when_they_fit(t5_tok, bert_tok, shared_data):
    from rerank_lib.data import load_dataset

    ds = load_dataset("trec-dl-2019")
    qid = sorted(ds.queries)[0]
    docs = [ds.corpus[d].text_for_model for d in list(ds.runs["bm25"][qid])[:12]]
    for tok in (t5_tok, bert_tok):
        ours = encode_pairs(tok, [ds.queries[qid]] * len(docs), docs, max_length=512)
        package = [tok(f"Query: {ds.queries[qid]} Document: {d} Relevant:", truncation=True,
                       max_length=512)["input_ids"] for d in docs]
        assert ours == package
    assert all(ids[-1] == t5_tok.eos_token_id for ids in encode_pairs(t5_tok, [QUERY] * 3, DOCS))


def test_truncation_cuts_the_document_and_keeps_relevant_and_eos(t5_tok):
    long_doc = " ".join(["cramp"] * 400)
    ids = encode_pairs(t5_tok, [QUERY], [long_doc], max_length=40)[0]
    suffix = t5_tok.encode("Relevant:", add_special_tokens=False)
    prefix = t5_tok.encode(f"Query: {QUERY} Document:", add_special_tokens=False)
    assert len(ids) == 40 and ids[-1] == t5_tok.eos_token_id
    assert ids[-1 - len(suffix):-1] == suffix and ids[: len(prefix)] == prefix
    # The package's inference truncation keeps EOS but loses " Relevant:" on such an input:
    package = t5_tok(f"Query: {QUERY} Document: {long_doc} Relevant:", truncation=True, max_length=40)["input_ids"]
    assert package[-1 - len(suffix):-1] != suffix and package[-1] == t5_tok.eos_token_id
    # a query longer than the whole budget is cut too, still ending with " Relevant:" + EOS
    ids = encode_pairs(t5_tok, [" ".join(["why"] * 100)], ["doc"], max_length=20)[0]
    assert len(ids) == 20 and ids[-1 - len(suffix):] == suffix + [t5_tok.eos_token_id]
    with pytest.raises(ValueError, match="no room"):
        encode_pairs(t5_tok, [QUERY], ["doc"], max_length=len(suffix) + 1)


def _manual(model, tok, query, docs, max_length=512):
    """The monoT5 forward written out: prompt + EOS, one decoder step from decoder_start_token_id, two logits."""
    f_id, t_id = tok.get_vocab().get("▁false", None), tok.get_vocab().get("▁true", None)
    if f_id is None:
        f_id, t_id = tok.convert_tokens_to_ids(["false", "true"])
    out = []
    for d in docs:
        enc = tok(f"Query: {query} Document: {d} Relevant:", return_tensors="pt", truncation=True,
                  max_length=max_length)
        start = model.config.decoder_start_token_id
        with torch.no_grad():
            logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                           decoder_input_ids=torch.tensor([[start]])).logits[0, 0]
        out.append([logits[f_id].item(), logits[t_id].item()])
    logits = np.array(out)
    scores = np.exp(logits[:, 1]) / np.exp(logits).sum(1)
    return scores, logits


@pytest.mark.parametrize("which", ["tiny_t5", "tiny_student"])
def test_scores_and_logits_equal_a_manual_forward(which, request):
    model, tok = request.getfixturevalue(which)
    expected_scores, expected_logits = _manual(model, tok, QUERY, DOCS)
    for batch_size, sort in ((1, False), (2, True), (8, True)):
        ranker = T5Ranker.from_model(model, tok, batch_size=batch_size, sort_by_length=sort, bf16=False)
        scores, logits = ranker.get_scores(QUERY, DOCS, return_logits=True)
        np.testing.assert_allclose(logits, expected_logits, atol=1e-4)  # [false, true] per document
        np.testing.assert_allclose(scores, expected_scores, atol=1e-5)  # softmax over the two, index true
        assert ranker.get_scores(QUERY, DOCS) == pytest.approx(scores, abs=1e-6)


def test_first_step_logits_have_grad_for_training(tiny_t5):
    model, tok = tiny_t5
    ids = encode_pairs(tok, [QUERY], DOCS[:1])
    x = torch.tensor(ids)
    logits = first_step_logits(model, x, torch.ones_like(x), relevance_token_ids(tok))
    assert logits.shape == (1, 2) and logits.requires_grad


def test_rerank_orders_by_margin_within_depth(tiny_t5):
    model, tok = tiny_t5
    corpus = {f"d{i}": Document(f"d{i}", text) for i, text in enumerate(DOCS)}
    run = {"q": {"d0": 3.0, "d1": 2.0, "d2": 1.0}}
    ranker = T5Ranker.from_model(model, tok, bf16=False)
    out = ranker.rerank(run, corpus, {"q": QUERY}, depth=2)
    assert set(out["q"]) == {"d0", "d1"}  # the third candidate is beyond the depth
    _, logits = ranker.get_scores(QUERY, DOCS[:2], return_logits=True)
    assert [out["q"]["d0"], out["q"]["d1"]] == pytest.approx([t - f for f, t in logits], abs=1e-5)
    with pytest.raises(KeyError, match="no text"):
        ranker.rerank({"q": {"nope": 1.0}}, corpus, {"q": QUERY})


def test_student_saved_and_reloaded_by_path_scores_the_same(tiny_student, tmp_path):
    model, tok = tiny_student
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    before = T5Ranker.from_model(model, tok, bf16=False).get_scores(QUERY, DOCS, return_logits=True)[1]
    after = T5Ranker(str(tmp_path), device="cpu", bf16=False).get_scores(QUERY, DOCS, return_logits=True)[1]
    np.testing.assert_allclose(after, before, atol=1e-5)
    assert type(T5Ranker(str(tmp_path), device="cpu").model).__name__ == "EncoderDecoderModel"


def test_student_shape(tiny_student, bert_tok):
    model, tok = tiny_student
    assert model.config.decoder_start_token_id == bert_tok.cls_token_id
    assert model.decoder.config.add_cross_attention and model.decoder.config.is_decoder
    assert model.decoder.config.vocab_size == bert_tok.vocab_size
    emb = model.decoder.get_input_embeddings().weight
    assert torch.equal(emb, model.encoder.get_input_embeddings().weight)  # copied from the pretrained encoder
    assert model.decoder.get_output_embeddings().weight.data_ptr() == emb.data_ptr()  # LM head tied to them


def test_fp16_and_fp8_need_cuda(tiny_t5):
    model, tok = tiny_t5
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ValueError, match="CUDA"):
        T5Ranker.from_model(model, tok, fp16=True)
    with pytest.raises(ValueError, match="CUDA"):
        T5Ranker(None, model=model, tokenizer=tok, device="cpu", fp8=True)


def test_loading_reports_a_fresh_decoder_and_refuses_a_folder_without_tokenizer(tiny_student, tmp_path):
    from rerank_lib.models import IncompleteModelFolder

    model, tok = tiny_student
    model.save_pretrained(tmp_path / "complete")
    tok.save_pretrained(tmp_path / "complete")
    assert T5Ranker(str(tmp_path / "complete"), device="cpu").fresh_head == []  # every weight came from the folder
    assert T5Ranker("minilm-monot5", device="cpu").fresh_head  # a built student: a random decoder
    model.save_pretrained(tmp_path / "no-tokenizer")
    with pytest.raises(IncompleteModelFolder, match="no-tokenizer: incomplete monot5 folder, missing tokenizer"):
        T5Ranker(str(tmp_path / "no-tokenizer"), device="cpu")
