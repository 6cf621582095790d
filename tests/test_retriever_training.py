"""CTL / DCA / RPG (ctl_loss and kl_divergence by hand: test_losses.py): the CTL batch, DCA / RPG losses and targets
by hand, score alignment, the reference bugs avoided, a tiny training run that lowers the loss, and checkpoint
selection on the eval metric."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from rerank_lib.data.types import Document
from rerank_lib.retrievers.ctl import CTLCollator, CTLConfig, build_ctl_batch, ctl_compute_loss
from rerank_lib.retrievers import objectives
from rerank_lib.retrievers.dca import (
    DCAConfig,
    boost_gold,
    build_candidates,
    decoder_attention_scores,
    reader_targets,
    span_scores,
)
from rerank_lib.retrievers.objectives import dca_scores
from rerank_lib.retrievers.readers import FiDReader, LMReader
from rerank_lib.retrievers.rpg import RPGConfig, RPGObjective, answer_loglik, rpg_candidates
from rerank_lib.evaluation import document_recalls
from rerank_lib.retrievers.training import (
    RetrievalExample,
    encoder_forward,
    examples_from_qrels,
    load_weights,
    tokenize_documents,
    retrieve,
)

pytestmark = pytest.mark.usefixtures("private_cache")


def ex(qid, pos, gold=None, hard=(), answer="an answer"):
    return RetrievalExample(qid, f"question {qid}", pos, tuple(gold or (pos,)), tuple(hard), answer)


# ---------------------------------------------------------------------------------------------- CTL


def test_ctl_batch_drops_gold_hard_negatives_and_masks_false_negatives():
    batch = [ex("q1", "a", hard=("b", "x")), ex("q2", "b", hard=("y", "x")), ex("q3", "a", hard=("z",)),
             ex("q4", "c", gold=("c", "y"), hard=())]
    # pool: b is q2's gold (dropped), x once (de-duplicated), y is a gold of q4 (dropped), z -> [x, z]
    doc_ids, labels, mask = build_ctl_batch(batch, 0.5, random.Random(0))  # floor(0.5 * 4) = 2 hard negatives
    assert doc_ids[:4] == ["a", "b", "a", "c"] and sorted(doc_ids[4:]) == ["x", "z"]
    assert labels.tolist() == [0, 1, 2, 3]
    # q1 and q3 share gold 'a': each masks the other's copy, nothing else is masked
    assert mask.nonzero().tolist() == [[0, 2], [2, 0]]
    assert build_ctl_batch(batch, 0.05, random.Random(0))[0] == ["a", "b", "a", "c"]  # floor(0.2) = 0
    assert len(build_ctl_batch(batch, 5.0, random.Random(0))[0]) == 6  # pool exhausted: all of it, no error


# ---------------------------------------------------------------------------------------------- DCA


def test_dca_target_and_loss_by_hand():
    raw = [-2.0, -1.0, -3.0]
    mean = sum(raw) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in raw) / 3)
    assert boost_gold(raw, 0) == pytest.approx([-1.0 + std, -1.0, -3.0])  # LocalRQA's modify_score: max + std
    assert boost_gold(raw, 1) == pytest.approx([-2.0, -1.0 + std, -3.0])
    q = torch.tensor([[1.0, 2.0, 0.0, 0.0]])  # d = 4: scale 1/2
    p = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]])
    assert dca_scores(q, p).tolist() == [[0.5, 1.0]]
    target = torch.tensor([[0.2, 0.1]])
    pt = torch.softmax(target / 0.1, -1)[0].tolist()
    ps = torch.softmax(torch.tensor([0.5, 1.0]), -1).tolist()
    want = sum(a * math.log(a / b) for a, b in zip(pt, ps))
    assert objectives.dca(DCAConfig(reader_temperature=0.1), q, p, target).item() == pytest.approx(want, rel=1e-6)
    assert dca_scores(q, p, 20.0).tolist() == [[20.0, 40.0]]
    # the config's settings reach the loss: T = 0.5 on the reader, scale 20 on the retriever
    pt = torch.softmax(target / 0.5, -1)[0].tolist()
    ps = torch.softmax(torch.tensor([20.0, 40.0]), -1).tolist()
    want = sum(a * math.log(a / b) for a, b in zip(pt, ps))
    got = objectives.dca(DCAConfig(reader_temperature=0.5, score_scale=20.0), q, p, target).item()
    assert got == pytest.approx(want, rel=1e-5)


def test_span_scores_average_log_attention_by_hand():
    log_att = torch.arange(2 * 1 * 2 * 5, dtype=torch.float32).reshape(2, 1, 2, 5)  # layers, heads, rows, keys
    # span [1, 3): values 1,2 | 6,7 | 11,12 | 16,17 -> mean 9; span [3, 5): 3,4 | 8,9 | 13,14 | 18,19 -> 11
    assert span_scores(log_att, [(1, 3), (3, 5)]) == [9.0, 11.0]


def test_build_candidates_gold_first():
    e = ex("q", "g", gold=("g", "h"))
    assert build_candidates(e, {"q": {"h": 3.0, "a": 2.0, "g": 1.0, "b": 0.5}}, 3) == ["g", "a", "b"]


# ---------------------------------------------------------------------------------------------- tiny readers


@pytest.fixture(scope="module")
def t5_tokenizer():
    from rerank_lib.models import load_tokenizer

    return load_tokenizer("t5-tokenizer")


@pytest.fixture(scope="module")
def tiny_reader(t5_tokenizer):
    """A tiny random Llama (eager attention) with the real T5 vocabulary and a ChatML template."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(t5_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512)
    config._attn_implementation = "eager"
    model = LlamaForCausalLM(config)
    t5_tokenizer.chat_template = ("{% for m in messages %}{{ m['role'] | upper }}: {{ m['content'] }}</s>{% endfor %}"
                                  "{% if add_generation_prompt %}ASSISTANT:{% endif %}")
    return LMReader("tiny-llama", max_passage_tokens=12, max_answer_tokens=6, model=model, tokenizer=t5_tokenizer)


PASSAGES = ["Returns are free within thirty days.", "Shipping takes a week.", "Faire pays the brand net 60."]


def test_reader_prompt_spans_are_the_passages(tiny_reader):
    inp = tiny_reader.build("Are returns free?", PASSAGES, "Yes, within thirty days.")
    tok = tiny_reader.tokenizer
    for (s, e), text in zip(inp.passage_spans, PASSAGES):
        assert inp.input_ids[s:e] == tok(text, add_special_tokens=False)["input_ids"][:12]
    s, e = inp.answer_span
    assert e == len(inp.input_ids) and tok.decode(inp.input_ids[s:e]).startswith("Yes")
    head = tok.decode(inp.input_ids[: inp.passage_spans[0][0]])
    assert head.startswith("USER:") and "This is a chat between a curious user" in head


def test_a_standin_reader_keeps_its_scores_apart_from_the_real_model(tiny_reader):
    """paper-tiny names the paper's reader as a StandInName (equal to the id as text): its cached reader scores must
    not be filed under the real model's key, where a paper run would read them."""
    from rerank_lib.models.standin import StandInName
    from rerank_lib.retrievers.training import ScoreCache

    def reader(name):
        return LMReader(name, max_passage_tokens=12, max_answer_tokens=6, model=tiny_reader.model,
                        tokenizer=tiny_reader.tokenizer)

    real, tiny = reader("google/flan-t5-base").settings(), reader(StandInName("google/flan-t5-base")).settings()
    assert real["reader"] == "google/flan-t5-base" and tiny["reader"] == "tiny:google/flan-t5-base"
    assert ScoreCache("rpg", real, enabled=False).path != ScoreCache("rpg", tiny, enabled=False).path


def test_decoder_attention_scores_follow_their_passages(tiny_reader):
    """Scores come back in the order of the passages given, whatever order the prompt used."""
    order = [2, 0, 1]
    scores = decoder_attention_scores(tiny_reader, "Are returns free?", PASSAGES, "Yes.", "all", order)
    permuted = [PASSAGES[i] for i in order]
    direct = decoder_attention_scores(tiny_reader, "Are returns free?", permuted, "Yes.", "all", [0, 1, 2])
    assert scores == pytest.approx([direct[order.index(i)] for i in range(3)])
    assert all(math.isfinite(s) for s in scores)


def test_reader_targets_align_gold_and_cache(tiny_reader):
    examples = [ex("q1", "d0", answer="Yes, within thirty days."), ex("q2", "d2", answer="Net 60.")]
    passages = {f"d{i}": p for i, p in enumerate(PASSAGES)}
    cands = {"q1": ["d0", "d1", "d2"], "q2": ["d2", "d0", "d1"]}
    cfg = DCAConfig(n_context=3)
    out = reader_targets(tiny_reader, examples, cands, passages, cfg, seed=1, progress=False)
    for dex in out:
        assert dex.target[0] == pytest.approx(max(dex.reader_raw) + torch.tensor(dex.reader_raw).std(unbiased=False).item())
        assert dex.target[1:] == dex.reader_raw[1:]
    again = reader_targets(tiny_reader, examples, cands, passages, cfg, seed=1, progress=False)  # from the cache
    assert [d.reader_raw for d in again] == [d.reader_raw for d in out]


def test_fid_reader_scores_are_permutation_equivariant(t5_tokenizer):
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    model = T5ForConditionalGeneration(T5Config(vocab_size=len(t5_tokenizer), d_model=32, d_ff=64, d_kv=8,
                                                num_layers=2, num_heads=2, decoder_start_token_id=0))
    reader = FiDReader("tiny-t5", text_maxlength=32, model=model, tokenizer=t5_tokenizer)
    a = reader.attention_scores("Are returns free?", PASSAGES, "Yes.")
    b = reader.attention_scores("Are returns free?", PASSAGES[::-1], "Yes.")
    assert len(a) == 3 and a == pytest.approx(b[::-1], abs=1e-5)


# ---------------------------------------------------------------------------------------------- RPG


def test_answer_loglik_by_hand_and_aligned(tiny_reader):
    scores = answer_loglik(tiny_reader, "Are returns free?", PASSAGES, "Yes, free.", batch_size=2)
    perm = [1, 2, 0]
    again = answer_loglik(tiny_reader, "Are returns free?", [PASSAGES[i] for i in perm], "Yes, free.", batch_size=3)
    assert again == pytest.approx([scores[i] for i in perm], abs=1e-5)  # permuted passages, permuted targets
    inp = tiny_reader.build("Are returns free?", [PASSAGES[0]], "Yes, free.")
    logits = tiny_reader.forward([inp]).logits[0]
    s, e = inp.answer_span
    by_hand = sum(torch.log_softmax(logits[t - 1], -1)[inp.input_ids[t]].item() for t in range(s, e)) / (e - s)
    assert scores[0] == pytest.approx(by_hand, abs=1e-5)


def test_rpg_candidates_and_loss():
    e = ex("q", "g")
    assert rpg_candidates(["a", "g", "b"], e, 3) == ["a", "g", "b"]
    assert rpg_candidates(["a", "b", "c", "d"], e, 3) == ["a", "b", "g"]  # gold replaces the last
    assert rpg_candidates(["a", "b", "c"], e, 3, ensure_gold=False) == ["a", "b", "c"]
    lm, ret = torch.tensor([[-1.0, -2.0]]), torch.tensor([[0.3, 0.5]])
    pt = torch.softmax(lm / 0.1, -1)[0].tolist()
    ps = torch.softmax(ret / 0.1, -1)[0].tolist()
    assert objectives.rpg(RPGConfig(), lm, ret).item() == pytest.approx(sum(a * math.log(a / b) for a, b in zip(pt, ps)),
                                                                    rel=1e-5)
    pt = torch.softmax(lm / 0.2, -1)[0].tolist()  # each temperature from its own setting
    ps = torch.softmax(ret / 0.5, -1)[0].tolist()
    got = objectives.rpg(RPGConfig(lm_temperature=0.2, retrieve_temperature=0.5), lm, ret).item()
    assert got == pytest.approx(sum(a * math.log(a / b) for a, b in zip(pt, ps)), rel=1e-5)


def test_every_retriever_method_has_its_loss_in_one_place():
    """One place binds a retriever trainer's loss settings to its loss: objectives.LOSSES, one per method."""
    from rerank_lib.recipes.retriever_training.settings import METHODS

    assert set(objectives.LOSSES) == set(METHODS)
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    labels, mask = torch.tensor([0, 1]), torch.zeros(2, 2, dtype=torch.bool)
    by_hand = -math.log(math.exp(1 / 0.5) / (math.exp(1 / 0.5) + 1.0))  # q . k / tau, tau = 0.5
    assert objectives.LOSSES["ctl"](CTLConfig(temperature=0.5), q, q, labels, mask).item() == pytest.approx(by_hand,
                                                                                                         rel=1e-6)


@pytest.fixture(scope="module")
def minilm():
    from rerank_lib.retrievers import BiEncoder

    return BiEncoder("minilm-l6", device="cpu", bf16=False, max_length=32)


def test_rpg_step_aligns_lm_and_retriever_and_keeps_train_mode(minilm, tiny_reader):
    corpus = {f"d{i}": Document(f"d{i}", p) for i, p in enumerate(PASSAGES)}
    passages = {d: doc.text for d, doc in corpus.items()}
    objective = RPGObjective(minilm, tiny_reader, corpus, passages, RPGConfig(num_docs=2, refresh_every=1))
    batch = [ex("q1", "d0", answer="Free."), ex("q2", "d2", answer="Net 60.")]
    minilm.model.train()
    loss = objective(minilm.model, batch)
    assert minilm.model.training  # LocalRQA's LocalEmbeddings leaves the model in eval mode here
    assert loss.requires_grad and math.isfinite(loss.item())
    cands = objective.candidates(batch)
    for e, c in zip(batch, cands):
        assert e.positive_id in c
        want = answer_loglik(tiny_reader, e.question, [passages[d] for d in c], e.answer)
        assert objective.lm_scores(e, c) == pytest.approx(want, abs=1e-5)  # cached scores follow the doc ids
    assert objective.stats.refreshes == [0] and objective.stats.lm_scored >= 4
    assert 0 <= objective.stats.lm_gold_first <= 2 and objective.stats.chance == 0.5  # 2 questions, 2 candidates


def test_rpg_gold_first_counts_the_lm_top_passage():
    from rerank_lib.retrievers.rpg import gold_first

    batch = [ex("q1", "d0"), ex("q2", "d2"), ex("q3", "d9")]
    cands = [["d1", "d0", "d3"], ["d2", "d4", "d5"], ["d1", "d2", "d3"]]
    lm = [[-3.0, -1.0, -2.0],  # gold d0 scored highest: counted
          [-2.0, -2.0, -5.0],  # a tie at the top: the first candidate, the gold d2, counts
          [-1.0, -2.0, -3.0]]  # gold d9 not among the candidates: not counted
    assert gold_first(batch, cands, lm) == 2
    assert gold_first(batch[:1], [["d1", "d0"]], [[-0.5, -1.5]]) == 0


# ---------------------------------------------------------------------------------------------- training


def test_encoder_forward_through_a_wrapper_equals_embed(minilm):
    class Wrapper(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, **kw):
            return self.inner(**kw)

    batch = minilm.tokenize(["a question", "a somewhat longer passage about returns"])
    minilm.model.eval()
    with torch.no_grad():
        assert torch.allclose(encoder_forward(minilm, Wrapper(minilm.model), batch), minilm.embed(batch), atol=1e-6)



def test_training_forward_and_encode_give_the_same_vectors(minilm):
    """The vectors training optimises are the vectors inference computes: encode() (length-sorted batches of 2,
    inference_mode) and the training forward (one padded batch through the wrapped model, with grad) agree."""
    texts = ["a question", "a somewhat longer passage about returns and refunds", "short",
             "Microglia are the resident immune cells of the central nervous system."]
    minilm.model.eval()
    inference = minilm.encode(texts, batch_size=2, show_progress=False, prefix=minilm.doc_prefix)

    class Wrapper(torch.nn.Module):  # train() may hand over a wrapped model (DDP)
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, **kw):
            return self.inner(**kw)

    training = encoder_forward(minilm, Wrapper(minilm.model), tokenize_documents(minilm, texts))
    assert training.requires_grad
    np.testing.assert_allclose(training.detach().numpy(), inference, atol=1e-6)


FACTS = [
    ("What is the capital of France?", "Paris is the capital and largest city of France."),
    ("Which planet is known as the red planet?", "Mars is called the red planet because of iron oxide dust."),
    ("Who wrote Hamlet?", "Hamlet is a tragedy written by William Shakespeare."),
    ("What do bees produce?", "Honey bees produce honey and beeswax."),
    ("How many legs does a spider have?", "Spiders are arachnids with eight legs."),
    ("What is the boiling point of water?", "Water boils at 100 degrees Celsius at sea level."),
    ("Which ocean is the largest?", "The Pacific Ocean is the largest and deepest ocean."),
    ("What gas do plants absorb?", "Plants absorb carbon dioxide for photosynthesis."),
]


def test_document_recalls_by_hand():
    run = {"q1": {"a": 3.0, "b": 2.0}, "q2": {"b": 3.0, "a": 2.0, "c": 1.0}}
    qrels = {"q1": {"a": 1}, "q2": {"a": 1, "c": 1}}  # q2 needs both a (rank 2) and c (rank 3) in the top k
    assert document_recalls(run, qrels, (1, 2, 4)) == {"recall@1": 0.5, "recall@2": 0.5, "recall@4": 1.0}


def test_tiny_ctl_run_lowers_loss_and_selects_on_dev_from_the_start(tmp_path):
    from rerank_lib.evaluation import evaluate
    from rerank_lib.experiment import DevEvaluator, train_with_dev_selection
    from rerank_lib.retrievers import BiEncoder
    from rerank_lib.training import TrainConfig

    enc = BiEncoder("minilm-l6", device="cpu", bf16=False, max_length=24)
    corpus = {f"d{i}": Document(f"d{i}", text) for i, (_, text) in enumerate(FACTS)}
    queries = {f"q{i}": q for i, (q, _) in enumerate(FACTS)}
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(len(FACTS))}
    examples = examples_from_qrels(queries, qrels, negatives={f"q{i}": {f"d{(i + 1) % 8}": 1.0} for i in range(8)},
                                   n_hard=1)
    documents = {d: doc.text_for_model for d, doc in corpus.items()}
    cfg = CTLConfig(hard_neg_ratio=0.25, temperature=0.5)  # 2 hard negatives per batch of 8
    picks = iter([0.0, 0.0, 1.0, 0.5])  # the named selection metric peaks at the 3rd evaluation (step 4; 0 first)
    dev = DevEvaluator(lambda _model: retrieve(enc, corpus, queries, cache=False), qrels, ["nDCG@10"],
                       extra=lambda run: {**document_recalls(run, qrels, (1,)), "pick": next(picks)})
    tc = TrainConfig(output_dir=str(tmp_path / "run"), seed=0, learning_rate=2e-4, num_epochs=6,
                     per_device_batch_size=8, log_every_steps=1, eval_every_steps=2, save_every_steps=None,
                     metric_for_best="pick", mixed_precision="no", warmup_ratio=0.0, lr_scheduler="constant")
    sel = train_with_dev_selection(enc.model, examples, CTLCollator(enc, documents, cfg, seed=0),
                                   ctl_compute_loss(enc, cfg), tc, dev)
    losses = [row["loss"] for row in sel.result.history]
    assert len(losses) == 6 and losses[-1] < 0.7 * losses[0] and losses == sorted(losses, reverse=True), losses
    assert [r["step"] for r in sel.curve] == [0, 2, 4, 6] and sel.step == 4 and not sel.is_start
    load_weights(enc, sel.model_dir)  # checkpoint selection: the weights of step 4, not of the last step
    again = retrieve(enc, corpus, queries, cache=False)
    assert evaluate(again, qrels, ["nDCG@10"]) == pytest.approx(evaluate(sel.dev_run, qrels, ["nDCG@10"]), abs=1e-9)
    assert document_recalls(again, qrels, (1,))["recall@1"] == pytest.approx(sel.curve[2]["recall@1"])
    final = BiEncoder("minilm-l6", device="cpu", bf16=False, max_length=24)
    load_weights(final, sel.result.final_dir)
    name, param = next(iter(enc.model.named_parameters()))
    assert not torch.equal(param, dict(final.model.named_parameters())[name])


# ---------------------------------------------------------------------------------------------- recipe


def test_profiles_resolve_offline_and_reject_unknown_methods():
    from rerank_lib.recipes import retriever_training as recipe

    paper = recipe.config("paper")
    assert paper.model == "BAAI/bge-base-en-v1.5" and paper.reader_fid and paper.dca_n_context == 50  # faire.rst
    assert (paper.ctl_temperature, paper.ctl_train.learning_rate, paper.ctl_train.max_steps) == (1.2, 1e-5, 100)
    assert paper.dca_train.max_steps == paper.rpg_train.max_steps == 200  # LocalRQA's max_steps default
    assert paper.ctl_train.num_epochs >= 10**6  # max_steps decides, as HF's max_steps overrides epochs
    assert paper.rpg_num_docs == 20 and paper.rpg_refresh_every == 10 and paper.ctl_hard_neg_ratio == 0.05
    assert recipe.config("smoke", methods=["ctl"]).methods == ("ctl",)
    with pytest.raises(ValueError, match="unknown methods"):
        recipe.config("default", methods=["dpr"])
    assert recipe.scifact_config("default").train.metric_for_best == "nDCG@10"


def test_profiles_nest_train_configs_with_the_old_default_values():
    from rerank_lib.recipes import retriever_training as recipe

    default = recipe.config("default")
    assert (default.ctl_train.learning_rate, default.ctl_train.per_device_batch_size, default.ctl_train.max_steps,
            default.ctl_train.eval_every_steps, default.ctl_train.save_every_steps) == (5e-5, 32, None, 9, 9)
    assert (default.dca_train.num_epochs, default.dca_train.eval_every_steps, default.rpg_train.eval_every_steps) == (
        2, 12, 8)
    assert default.rpg_train.lr_scheduler == "cosine" and default.ctl_train.metric_for_best == "recall@4"
    assert recipe.config("paper").ctl_train.max_steps == 100 and recipe.scifact_config("paper").train.max_steps == 200
    sci_paper = recipe.scifact_config("paper")  # LocalRQA's generic CTL command (ctl.rst)
    assert (sci_paper.model, sci_paper.train.learning_rate) == ("intfloat/e5-base-v2", 1e-4)
    sci = recipe.scifact_config("default")
    assert (sci.train.learning_rate, sci.train.per_device_batch_size, sci.train.max_steps) == (5e-5, 32, None)
    moved = recipe.config("default", seed=7, **{"dca_train.seed": 3, "ctl_train.learning_rate": 1e-5})
    assert (moved.ctl_train.seed, moved.rpg_train.seed, moved.dca_train.seed) == (7, 7, 3)
    assert moved.ctl_train.learning_rate == 1e-5
    with pytest.raises(TypeError, match="unknown setting"):
        recipe.config("default", ctl_lr=1e-5)  # the old spelling is gone, not silently ignored


def test_faire_record_carries_localrqa_recall_and_refuses_leaks(tmp_path):
    from rerank_lib.data import Dataset, LeakError, TrainingQueries
    from rerank_lib.recipes import retriever_training as recipe
    from rerank_lib.results import load_per_query

    corpus = {d: Document(d, d) for d in "abc"}
    ds = Dataset("localrqa-toy", "test", corpus, {"q1": "one?", "q2": "two?", "q3": "three?"},
                 {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}})
    good = {"q1": {"a": 3, "b": 2}, "q2": {"b": 3, "a": 2}, "q3": {"a": 3, "b": 2, "c": 1}}
    bad = {"q1": {"b": 3, "a": 2}, "q2": {"a": 3, "b": 2}, "q3": {"a": 3, "b": 2, "c": 1}}
    cfg = recipe.config("smoke")
    rec = recipe.record_faire(good, ds, recipe.faire_row(cfg, "toy", "toy"), cfg=cfg, results_dir=tmp_path,
                              baselines={"bm25": bad}, training=TrainingQueries.of("localrqa-toy/train", {"t1": "other?"}))
    assert rec.metrics["recall@1"] == pytest.approx(2 / 3) and rec.metrics["recall@4"] == 1.0
    assert rec.significance["bm25"]["recall@1"]["delta"] == pytest.approx(2 / 3)
    assert rec.training_queries == "localrqa-toy/train (1 q)"
    pq = load_per_query(rec, tmp_path)
    assert set(pq["measure"]) == {"recall@1", "recall@4", "nDCG@10"} and len(pq) == 9
    with pytest.raises(LeakError):
        recipe.record_faire(good, ds, recipe.faire_row(cfg, "toy", "toy"), cfg=cfg, results_dir=tmp_path, baselines={},
                            training=TrainingQueries.of("localrqa-toy/train", {"x": "Two?"}))


def test_notebook_step_trains_only_the_selected_methods_and_reports_the_curve():
    from pathlib import Path
    from types import SimpleNamespace

    from rerank_lib.experiment import Selected
    from rerank_lib.recipes.retriever_training import Outcome, train_selected
    from rerank_lib.training import TrainResult

    outcomes = []
    assert train_selected(SimpleNamespace(methods=("ctl",)), None, "dca", None, outcomes) == [] and outcomes == []
    curve = [{"step": 0, "recall@4": 0.5}, {"step": 18, "recall@4": 0.625}]
    result = TrainResult(18, [], curve, Path("final"), None, 0.625, 18, "recall@4", Path("best"))
    selected = Selected(result, 18, "recall@4", 0.625, Path("best"), curve, None, 7.0)
    report = Outcome("dca", selected, {}, 7.0, {}, {"reader_agreement": {"top1": 0.75}}).report().splitlines()
    assert report[-2:] == ["18 steps in 7 s; dev recall@4 0.5000 at the start -> 0.6250 selected (step 18)",
                           "reader agreement: {'top1': 0.75}"]
    assert report[0].split() == ["run", "dca"] and report[2].split() == ["0", "0.500"]
    assert report[3].split() == ["18", "0.625"]
