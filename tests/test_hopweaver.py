"""HopWeaver: MMR by hand and the diverse/standard retrievers (retrievers.diverse), the generator and its judges
(synthetic_queries), its output format (data.hopweaver), parsing, the recipe's settings and bad input."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from rerank_lib.data.hopweaver import (
    GeneratedExample, generation_stats, read_generated, sample_sources, to_groups, write_hopweaver,
)
from rerank_lib.data.pairs import read_hopweaver
from rerank_lib.data.types import Document
from rerank_lib.retrievers.diverse import DiverseRetriever, MMRWeights, mmr_select
from rerank_lib.synthetic_queries import (
    BRIDGE_ANSWER_FORMAT, AnswerFormat, QrelsJudge, ScoreJudge, Slot, generate_contrastive_data, in_bridge_format,
)
from rerank_lib.synthetic_queries import parse_bridge_query as parse_query

# d0 = [1, 0], d1 = [1, 0.1], d2 = [0, 1], d3 = [1, 1]; the source points at [-1, 0].
VECS = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [1.0, 1.0]])
REL = [0.9, 0.88, 0.3, 0.7]
SOURCE = np.array([-1.0, 0.0])


def test_mmr_by_hand_with_renormalised_lambdas():
    # (5, 1, 4) renormalise to (0.5, 0.1, 0.4).
    # cos(d1, d0) = 1/sqrt(1.01) = 0.995037; cos(d3, d0) = 0.707107; cos(d1, d2) = 0.099504; cos(d3, d2) = 0.707107;
    # cos(d3, d1) = 1.1 / (sqrt(2) sqrt(1.01)) = 0.773957; sim to the source: d0 -1, d1 -0.995037, d2 0, d3 -0.707107.
    # step 1 (nothing selected, max-sim term 0): d0 0.45+0.1=0.55, d1 0.44+0.0995037=0.5395037, d2 0.15,
    #   d3 0.35+0.0707107=0.4207107 -> d0
    # step 2: d1 0.5395037-0.4*0.995037=0.1414888, d2 0.15-0=0.15, d3 0.4207107-0.4*0.707107=0.1378680 -> d2
    # step 3: d1 keeps 0.1414888 (max(0.995037, 0.099504)), d3 keeps 0.1378680 (max(0.707107, 0.707107)) -> d1
    # step 4: d3 0.4207107-0.4*max(0.707107, 0.707107, 0.773957)=0.1111279
    picked = mmr_select(REL, VECS, SOURCE, top_k=4, weights=MMRWeights(5, 1, 4))
    assert [i for i, _ in picked] == [0, 2, 1, 3]  # relevance alone would give 0, 1, 3, 2
    np.testing.assert_allclose([s for _, s in picked], [0.55, 0.15, 0.1414888, 0.1111279], atol=1e-6)
    assert MMRWeights(5, 1, 4).normalised() == pytest.approx((0.5, 0.1, 0.4))


def test_mmr_degenerate_cases():
    # No source: the l2 term vanishes (the seed's zero vector has similarity 0); top_k above the pool is capped.
    no_src = mmr_select(REL, VECS, None, top_k=10, weights=MMRWeights(1, 0, 0))
    assert [i for i, _ in no_src] == [0, 1, 3, 2]  # pure relevance
    # The max-similarity term starts at 0 and never goes negative: an anti-correlated pick is not rewarded.
    anti = mmr_select([1.0, 0.5, 0.49], np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]), None, 3, MMRWeights(1, 0, 1))
    assert [i for i, _ in anti] == [0, 1, 2]
    assert anti[1][1] == pytest.approx(0.25)  # 0.5*0.5 - 0.5*max(0, -1)
    # ties keep the earlier candidate
    assert mmr_select([0.5, 0.5], np.eye(2), None, 1)[0][0] == 0
    assert mmr_select([], np.zeros((0, 2)), None, 3) == []


def test_mmr_bad_input():
    with pytest.raises(ValueError, match="top_k"):
        mmr_select(REL, VECS, None, top_k=0)
    with pytest.raises(ValueError, match="doc_vectors"):
        mmr_select(REL, VECS[:3], None, top_k=2)
    with pytest.raises(ValueError, match="MMR weights"):
        MMRWeights(-1, 0, 0).normalised()
    with pytest.raises(ValueError, match="MMR weights"):
        MMRWeights(0, 0, 0).normalised()


class FakeEncoder:
    """Query vectors from a fixed table: enough to test retrieval without a model."""

    def __init__(self, table):
        self.table = table

    def encode_queries(self, texts):
        return np.array([self.table[t] for t in texts], dtype=np.float32)


def _corpus():
    return {f"d{i}": Document(f"d{i}", f"text of document {i}", title=f"T{i}") for i in range(6)}


def _retriever(weights=MMRWeights(0.85, 0.05, 0.1)):
    emb = np.array([[1, 0, 0], [0.99, 0.1, 0], [0, 1, 0], [0.7, 0.7, 0], [0, 0, 1], [0.5, 0, 0.5]], dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    enc = FakeEncoder({"q1": [1.0, 0.2, 0.0], "q2": [0.0, 0.3, 1.0]})
    return DiverseRetriever(enc, _corpus(), weights, corpus_embeddings=emb)


def test_standard_and_diverse_retrieval_exclude_the_source():
    r = _retriever()
    std = r.standard({"q1": "q1"}, top_k=2, sources={"q1": "d0"})
    assert list(std["q1"]) == ["d1", "d3"]  # d0 (the source) removed from the top 2k
    div = r.diverse({"q1": "q1"}, top_k=3, sources={"q1": "d0"})
    assert "d0" not in div["q1"] and len(div["q1"]) == 3
    scores = list(div["q1"].values())
    assert scores == sorted(scores, reverse=True)  # a valid run: decreasing with the selection order
    # with a strong diversity weight the near-duplicate of the first pick drops behind
    plain = _retriever(MMRWeights(1, 0, 0)).diverse({"q1": "q1"}, top_k=3)
    assert list(plain["q1"])[:2] == ["d1", "d0"]  # relevance only: d0, a near-duplicate of d1, comes second
    strong = _retriever(MMRWeights(0.5, 0.0, 0.5)).diverse({"q1": "q1"}, top_k=3)
    assert list(strong["q1"])[:2] == ["d1", "d2"]  # 0.5*0.2 - 0.5*cos(d2, d1)=0.0497 beats d0's 0.0025
    # one call's lambdas, the retriever's own left alone
    assert r.diverse({"q1": "q1"}, top_k=3, weights=MMRWeights(0.5, 0.0, 0.5)) == strong
    assert r.weights == MMRWeights(0.85, 0.05, 0.1)
    with pytest.raises(ValueError, match="embeddings"):
        DiverseRetriever(FakeEncoder({}), _corpus(), corpus_embeddings=np.zeros((3, 3)))


def test_retriever_cosines_and_diversity_by_hand():
    r = _retriever()
    # q1 = [1, 0.2, 0] (not normalised by the fake encoder); d0 = [1, 0, 0] -> 1.0; d2 = [0, 1, 0] -> 0.2
    assert r.cosines({"q1": "q1"}, [("q1", "d0"), ("q1", "d2")]) == pytest.approx([1.0, 0.2])
    # d0 . d2 = 0; d0 . d3 = 0.7/sqrt(0.98) = 0.707107, d2 . d3 the same: q1's mean 0.471405; q2 has d4 only
    run = {"q1": {"d0": 3.0, "d2": 2.0, "d3": 1.0}, "q2": {"d4": 1.0}}
    assert r.mean_pairwise_cosine(run) == pytest.approx(2 * 0.7071068 / 3, abs=1e-6)


def test_generator_writes_hopweaver_lines(tmp_path):
    r = _retriever()
    qrels = {"q1": {"d1": 1}, "q2": {"d4": 1, "d5": 1}}
    examples = generate_contrastive_data(r, QrelsJudge(qrels), queries={"q1": "q1", "q2": "q2"}, top_k=3,
                                         stop_when_both=False)
    assert all(e.usable for e in examples)
    path = write_hopweaver(tmp_path / "hw.jsonl", examples, r.corpus)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [sorted(x) for x in lines] == [["neg", "pos", "query"]] * 2
    assert lines[0]["query"] == "q1" and lines[0]["pos"] == ["T1 text of document 1"]
    groups = read_hopweaver(path)  # HopWeaver's own reader takes the file back
    assert groups[1].n_pos == 2 and groups[1].labels[:2] == [1.0, 1.0]
    assert [g.docs for g in to_groups(examples, r.corpus)] == [g.docs for g in groups]
    back = read_generated(path, examples)  # the same, each line given its attempt's ids
    assert [g.query_id for g in back] == ["q1", "q2"] and back[1].doc_ids == examples[1].pos + examples[1].neg
    with pytest.raises(ValueError, match="usable attempts"):
        read_generated(path, examples[:1])


def test_generator_stops_at_one_positive_and_one_negative_like_the_seed():
    r = _retriever()
    calls = []

    def judge(qid, query, source, candidates):
        calls.append([c.doc_id for c in candidates])
        return [c.doc_id == "d3" for c in candidates]

    ex = generate_contrastive_data(r, judge, queries={"q1": "q1"}, top_k=4, stop_when_both=True)[0]
    assert all(len(c) == 1 for c in calls)  # one candidate per judgement
    assert ex.pos == ["d3"] and len(ex.neg) >= 1 and len(ex.candidates) == len(calls)
    assert len(ex.candidates) < 4 or ex.candidates[-1] == "d3"


def test_generator_with_a_proposer_and_unusable_attempts():
    r = _retriever()
    proposals = {"d2": "q1", "d4": None}  # the second source gets no parseable query
    examples = generate_contrastive_data(r, QrelsJudge({}), sources={"a": "d2", "b": "d4"},
                                         proposer=lambda doc: proposals[doc.doc_id], top_k=2)
    assert [e.source_id for e in examples] == ["d2", "d4"]
    assert examples[0].query == "q1" and not examples[0].usable  # the qrels know no positive: all negative
    assert examples[1].query is None and examples[1].candidates == []
    assert "d2" not in examples[0].candidates  # the source is never its own candidate


def test_generator_bad_input():
    r = _retriever()
    judge = QrelsJudge({})
    with pytest.raises(ValueError, match="exactly one"):
        generate_contrastive_data(r, judge)
    with pytest.raises(ValueError, match="exactly one"):
        generate_contrastive_data(r, judge, queries={"q": "q1"}, proposer=lambda d: "x")
    with pytest.raises(ValueError, match="needs sources"):
        generate_contrastive_data(r, judge, proposer=lambda d: "x")
    with pytest.raises(KeyError, match="not in the corpus"):
        generate_contrastive_data(r, judge, queries={"q1": "q1"}, sources={"q1": "nope"})


def test_parse_query_and_judges():
    assert parse_query("Entity: Vitamin D | Query: vitamin D effects on muscle beyond bone density") == \
        "vitamin D effects on muscle beyond bone density"
    assert parse_query("query - insulin signalling outside the liver\nmore text") == "insulin signalling outside the liver"
    assert parse_query("Sure!") is None and parse_query(None) is None
    assert parse_query("the role of p53 in apoptosis instead of repair") == "the role of p53 in apoptosis instead of repair"
    docs = [Document("a", "x"), Document("b", "y")]
    assert QrelsJudge({"q": {"a": 1, "b": 0}})("q", "text", None, docs) == [True, False]
    assert QrelsJudge({"q": {"a": 1}}, min_grade=2)("q", "text", None, docs) == [False, False]
    assert ScoreJudge(lambda q, texts: [0.9, 0.1], 0.5)("q", "text", None, docs) == [True, False]
    assert GeneratedExample("q", "text", None, ["a", "b"], [True, False]).usable
    srcs = sample_sources({"1": {"a": 1, "b": 1}, "2": {"c": 0}, "3": {"d": 2}}, seed=1, n=5)
    assert set(srcs) == {"1", "3"} and srcs["3"] == "d" and srcs["1"] in ("a", "b")
    assert not math.isnan(MMRWeights().normalised()[0])
    stats = generation_stats([GeneratedExample("a", "t", None, ["x", "y", "z"], [True, False, False]),
                              GeneratedExample("b", "t", None, ["x"], [False]), GeneratedExample("c", None, None)])
    assert stats == {"attempts": 3, "usable": 1, "no positive in top_k": 1, "no negative": 0, "pos per line": 1.0,
                     "neg per line": 2.0}


def test_recipe_profiles_and_bad_settings():
    from rerank_lib.recipes import hopweaver as recipe

    assert recipe.config("default").ablation_lambdas == (0.87, 0.03, 0.1)
    assert recipe.config("paper").reranker == "BAAI/bge-reranker-v2-m3"
    with pytest.raises(ValueError, match="judge"):
        recipe.config("default", judge="gpt")
    with pytest.raises(ValueError, match="MMR weights"):
        recipe.config("default", generation_lambdas=(0, 0, 0))
    default, smoke, paper = recipe.config("default").train, recipe.config("smoke").train, recipe.config("paper").train
    assert (default.learning_rate, default.per_device_batch_size, default.max_steps, default.num_epochs,
            default.eval_every_steps, default.warmup_ratio, default.save_every_steps) == (2e-4, 8, 150, 10, 25, 0.1, None)
    assert (smoke.per_device_batch_size, smoke.max_steps, smoke.eval_every_steps) == (2, 3, None)
    assert (paper.learning_rate, paper.max_steps, paper.num_epochs) == (5e-6, None, 2)  # a profile's None counts
    assert (paper.per_device_batch_size, paper.gradient_accumulation_steps, recipe.config("paper").top_k) == (16, 4, 5)
    assert recipe.config("paper", **{"train.learning_rate": 1e-5}).train.learning_rate == 1e-5
    assert recipe.config("default", seed=5).train.seed == 5
    with pytest.raises(ValueError, match="train.output_dir is set by the recipe"):
        recipe.config("default", train={"output_dir": "x"})
    assert recipe.config("default", seed=5, train={"seed": 1}).train.seed == 1  # a stage's own seed wins


# ------------------------------------------------------------------ the proposer's decoding held to its answer format

# A toy vocabulary: 0 is the EOS (special: no text), 1 a newline; " |" opens the second literal.
TOY = ["<eos>", "\n", "Entity", ":", " |", " Query", " cat", " dog", "|", " a|b", " fish"]
TOY_FORMAT = ([2, 3], Slot(1, 2), [4, 5, 3], Slot(2, 3))  # 'Entity:' <1-2 tokens> ' | Query:' <2-3 tokens>
SLOT_TOKENS = [2, 3, 5, 6, 7, 10]  # no '|' or newline (8, 9, 4, 1 out), not the EOS, not a closer (4)


def toy_format():
    return AnswerFormat([None, *TOY[1:]], TOY_FORMAT, end_ids=[0, 1])


def test_answer_format_allows_by_hand_on_a_toy_vocabulary():
    fmt = toy_format()
    steps = [([], [2]), ([2], [3]),  # the first literal, forced
             ([2, 3], SLOT_TOKENS),  # the entity's first token: min_tokens 1 not reached, so no closing yet
             ([2, 3, 6], SLOT_TOKENS + [4]),  # one token: it may close (" |") or go on
             ([2, 3, 6, 7], [4]),  # max_tokens 2: it must close
             ([2, 3, 6, 4], [5]), ([2, 3, 6, 4, 5], [3]),  # the rest of ' | Query:', forced
             ([2, 3, 6, 4, 5, 3], SLOT_TOKENS), ([2, 3, 6, 4, 5, 3, 10], SLOT_TOKENS),  # the query: 2 tokens at least
             ([2, 3, 6, 4, 5, 3, 10, 6], SLOT_TOKENS + [0, 1]),  # the end may come
             ([2, 3, 6, 4, 5, 3, 10, 6, 7], [0, 1]),  # max_tokens 3: it must end
             ([2, 3, 6, 4, 5, 3, 10, 6, 1], [0, 1])]  # complete: only the end tokens
    for generated, allowed in steps:
        assert fmt.allowed(generated) == allowed, generated
    assert fmt.state([2, 3, 6, 4, 5, 3, 10, 6, 1]) == (4, 1) and fmt.max_new_tokens == 2 + 2 + 3 + 3 + 1
    with pytest.raises(ValueError, match="token 6 at step 1 is outside the format"):
        fmt.allowed([2, 6])
    with pytest.raises(ValueError, match="token 8 at step 2"):
        fmt.allowed([2, 3, 8])  # '|' inside the entity
    fn = fmt.prefix_allowed_tokens_fn(prompt_length=2)  # generate() passes prompt + generated ids
    assert fn(0, torch.tensor([9, 9, 2, 3, 6])) == SLOT_TOKENS + [4]
    with pytest.raises(ValueError, match="two slots in a row"):
        AnswerFormat(TOY, [[2], Slot(), Slot()], [0])
    with pytest.raises(ValueError, match="min_tokens"):
        AnswerFormat(TOY, [[2], Slot(3, 2)], [0])


def greedy(fmt, preference, limit=20):
    """Greedy decoding of a toy 'model' that always prefers the tokens in `preference` order, held to `fmt`."""
    out = []
    while len(out) < limit and (not out or out[-1] not in (0, 1)):
        allowed = fmt.allowed(out)
        out.append(next(t for t in preference if t in allowed))
    return out


def test_a_model_that_would_break_the_format_still_answers_in_it():
    # this 'model' wants '|', then a newline, then ' a|b', then ' dog': free, its first token already breaks the line
    preference = [8, 1, 9, 7, 6, 4, 0, 2, 3, 5, 10]
    out = greedy(toy_format(), preference)
    # Entity : dog dog(max 2) | Query : dog dog (min 2 reached: the newline, its 2nd choice, is now allowed)
    assert out == [2, 3, 7, 7, 4, 5, 3, 7, 7, 1]
    text = "".join(TOY[t] for t in out)
    assert text == "Entity: dog dog | Query: dog dog\n" and in_bridge_format(text)


class ToyTokenizer:
    """The toy vocabulary as a Hugging Face tokenizer: encode by longest match, EOS special."""

    eos_token_id, all_special_ids = 0, [0]

    def __len__(self):
        return len(TOY)

    def batch_decode(self, batch):
        return ["".join(TOY[i] for i in ids) for ids in batch]

    def encode(self, text, add_special_tokens=False):
        ids = []
        while text:
            best = max((i for i in range(1, len(TOY)) if text.startswith(TOY[i])), key=lambda i: len(TOY[i]))
            ids.append(best)
            text = text[len(TOY[best]):]
        return ids


def test_answer_format_from_a_tokenizer_and_smollm2s_vocabulary():
    fmt = AnswerFormat.for_tokenizer(ToyTokenizer(), ["Entity:", Slot(1, 2), " | Query:", Slot(2, 3)])
    assert fmt.parts == list(toy_format().parts) and fmt.end_ids == [0, 1]
    assert fmt.allowed([2, 3]) == SLOT_TOKENS
    from rerank_lib.models import load_tokenizer

    tok = load_tokenizer("smollm2-135m-instruct")
    real = AnswerFormat.for_tokenizer(tok, BRIDGE_ANSWER_FORMAT)
    assert tok.decode(real.parts[0]) == "Entity:" and tok.decode(real.parts[2]) == " | Query:"
    assert set(real.end_ids) == {tok.eos_token_id, tok.encode("\n", add_special_tokens=False)[0]}
    entity = real.allowed(real.parts[0])
    assert not any("|" in tok.decode([t]) or "\n" in tok.decode([t]) for t in entity)
    assert not set(entity) & set(tok.all_special_ids) and len(entity) > 40000
    assert real.max_new_tokens == 2 + 12 + 3 + 40 + 1


def test_the_few_shot_demonstrations_are_hopweavers_published_queries(shared_data):
    """HOPWEAVER_QUERY_FEWSHOT's demonstrations: lines 1 and 5 of HopWeaver's train_data_sample.jsonl, each query as
    published after the first 60 words of its positive passage (the passage's title line joined), in the format."""
    from rerank_lib.synthetic_queries import HOPWEAVER_QUERY_EXAMPLES, HOPWEAVER_QUERY_FEWSHOT

    lines = (shared_data / "hopweaver" / "train_data_sample.jsonl").read_text(encoding="utf-8").splitlines()
    for (document, entity, query), line in zip(HOPWEAVER_QUERY_EXAMPLES, (lines[0], lines[4])):
        row = json.loads(line)
        assert query == row["query"] and query.startswith(entity)
        assert document == " ".join(row["pos"][0].split("\n", 1)[-1].split()[:60])
        assert f"Document: {document}\nEntity: {entity} | Query: {query}\n\n" in HOPWEAVER_QUERY_FEWSHOT
        assert in_bridge_format(f"Entity: {entity} | Query: {query}")
    assert HOPWEAVER_QUERY_FEWSHOT.format(document="D").endswith("Document: D\n")


@pytest.mark.parametrize("answer, ok", [
    ("Entity: Cdk5 | Query: Which kinase phosphorylates ATM after DNA damage?", True),
    ("Entity: p62 | Query: how does p62 act beyond the liver\n", True),
    ("p62/SQSTM1 by Binding to Vitamin D Receptor Inhibits Hepatic Stellate Cell Activity", False),
    ("Neutrophil extracellular traps (NETs) | Protein", False),
    ("Entity:  | Query: x", False),
    ("Entity: a | Query: b\nEntity: c | Query: d", False),
])
def test_in_bridge_format(answer, ok):
    assert in_bridge_format(answer) is ok


def test_generator_yield_on_smollm2_outputs_and_the_start_row_name():
    from types import SimpleNamespace

    from rerank_lib.recipes import hopweaver as recipe

    # SmolLM2-135M's answers to the bridge-query prompt: the source's title restated and an 'entity | topic' line (as in
    # the default run: each parses to a query, the line is produced), a bare entity (too short: no query), the asked
    # format
    outputs = ["p62/SQSTM1 by Binding to Vitamin D Receptor Inhibits Hepatic Stellate Cell Activity",
               "Neutrophil extracellular traps (NETs) | Protein",
               "NETs",
               "Entity: Cdk5 | Query: Which kinase phosphorylates ATM after DNA damage in neurons?"]
    queries = [parse_query(o) for o in outputs]
    assert queries[1] == "Neutrophil extracellular traps (NETs) | Protein" and queries[2] is None
    queries = [queries[0], queries[2], queries[3]]
    examples = [GeneratedExample("1", queries[0], "s1", ["a", "b"], [False, False]),  # the judge said no to all
                GeneratedExample("2", queries[1], "s2"),
                GeneratedExample("3", queries[2], "s3", ["a", "b", "c"], [False, True, False])]
    assert queries[2] == "Which kinase phosphorylates ATM after DNA damage in neurons?"
    assert recipe.generator_yield(examples) == {"asked": 3, "produced": 2, "usable": 1}
    assert recipe.generator_yield([]) == {"asked": 0, "produced": 0, "usable": 0}
    # the demonstration's yield adds the decoding, the answers in the asked format and the judge's verdicts
    demo = recipe.LLMDemo(examples, None, None, 0.0, [outputs[0], outputs[2], outputs[3]], "free")
    assert demo.yield_ == {"decoding": "free", "asked": 3, "in format": 1, "produced": 2, "usable": 1,
                           "judged": 5, "positive": 1}

    def fake(architectures):
        return SimpleNamespace(model=SimpleNamespace(config=SimpleNamespace(architectures=architectures)))

    assert recipe.start_row_name(fake(["BertModel"])) == "diverse_untrained"  # all-MiniLM-L6-v2: a fresh head
    assert recipe.start_row_name(fake(None)) == "diverse_untrained"
    assert recipe.start_row_name(fake(["XLMRobertaForSequenceClassification"])) == "diverse_zs"  # bge-reranker-v2-m3


# ------------------------------------------------------------------------------ HopWeaver's own data and measures

def _write_lines(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_positive_rank_and_candidate_measures_by_hand():
    from rerank_lib.evaluation import candidate_measures, candidate_measures_per_query, positive_rank

    qrels = {"q1": {"p": 1, "n1": 0, "n2": 0}, "q2": {"p": 1, "n1": 0},
             "q3": {"p1": 1, "p2": 1, "n1": 0, "n2": 0, "n3": 0}, "q4": {"p": 1, "n": 0}, "q5": {"p": 1, "n1": 0, "n2": 0}}
    run = {"q1": {"p": 0.9, "n1": 0.5, "n2": 0.95},  # one negative above: rank 2
           "q2": {"p": 0.3, "n1": 0.3},  # a tie with the negative counts against the positive: rank 2
           "q3": {"p1": 0.1, "p2": 0.8, "n1": 0.9, "n2": 0.2, "n3": 0.85},  # best positive p2; n1, n3 above: rank 3
           "q4": {"p": 2.0, "n": 1.0}}  # rank 1; q5 missing from the run: every candidate -inf, all tied: rank 3
    assert [positive_rank(run.get(q, {}), qrels[q]) for q in qrels] == [2, 2, 3, 1, 3]
    frame = candidate_measures_per_query(run, qrels)
    assert list(frame.columns) == ["qid", "measure", "value"]
    acc = frame[frame.measure == "accuracy"].set_index("qid")["value"].to_dict()
    mrr = frame[frame.measure == "MRR"].set_index("qid")["value"].to_dict()
    assert acc == {"q1": 0.0, "q2": 0.0, "q3": 0.0, "q4": 1.0, "q5": 0.0}
    assert mrr == pytest.approx({"q1": 0.5, "q2": 0.5, "q3": 1 / 3, "q4": 1.0, "q5": 1 / 3})
    # accuracy 1/5; MRR (0.5 + 0.5 + 1/3 + 1 + 1/3) / 5 = 2.6667 / 5 = 0.53333
    assert candidate_measures(run, qrels) == pytest.approx({"accuracy": 0.2, "MRR": 0.5333333})
    with pytest.raises(ValueError, match="no positive"):
        positive_rank({"n": 1.0}, {"n": 0})
    with pytest.raises(ValueError, match="empty"):
        candidate_measures(run, {})


def test_paired_test_reads_mrr_as_given_not_as_ir_measures_rr():
    import pandas as pd
    from scipy import stats

    from rerank_lib.evaluation import paired_test

    # ir-measures parses "MRR" as its RR; a per-query frame that lists "MRR" must be read as it is
    a = pd.DataFrame({"qid": ["1", "2", "3"], "measure": "MRR", "value": [0.5, 1.0, 1 / 3]})
    b = pd.DataFrame({"qid": ["1", "2", "3"], "measure": "MRR", "value": [1.0, 1.0, 1.0]})
    test = paired_test(a, b, "MRR")
    assert test.measure == "MRR" and test.n_queries == 3
    assert test.delta == pytest.approx((0.5 + 0.0 + 2 / 3) / 3)  # 0.38889
    assert test.p_value == pytest.approx(stats.ttest_rel([1.0, 1.0, 1.0], [0.5, 1.0, 1 / 3]).pvalue)


def test_read_candidates_ids_qrels_and_shared_passages(tmp_path):
    from rerank_lib.data.hopweaver import CANDIDATES, candidate_groups, read_candidates

    path = _write_lines(tmp_path / "t.jsonl", [
        {"query": "who founded A", "pos": ["A was founded by B."], "neg": ["C is a river.", "D is a town."]},
        "",
        {"query": "where is D", "pos": ["D is a town.", "D lies on C."], "neg": ["A was founded by B."]},
    ])
    ds = read_candidates(path, "test")
    assert ds.key == "hopweaver/test"
    assert ds.queries == {"test-1": "who founded A", "test-3": "where is D"}  # ids carry the line number
    # passages are documents in order of first appearance; one repeated across lines is one document
    assert {d: doc.text for d, doc in ds.corpus.items()} == {
        "test-d0": "A was founded by B.", "test-d1": "C is a river.", "test-d2": "D is a town.", "test-d3": "D lies on C."}
    assert ds.qrels == {"test-1": {"test-d0": 1, "test-d1": 0, "test-d2": 0},
                        "test-3": {"test-d2": 1, "test-d3": 1, "test-d0": 0}}
    assert ds.runs[CANDIDATES] == {"test-1": {"test-d0": 0.0, "test-d1": 0.0, "test-d2": 0.0},
                                   "test-3": {"test-d2": 0.0, "test-d3": 0.0, "test-d0": 0.0}}
    groups = candidate_groups(ds)
    assert [(g.query_id, g.n_pos, g.labels, g.doc_ids) for g in groups] == [
        ("test-1", 1, [1.0, 0.0, 0.0], ["test-d0", "test-d1", "test-d2"]),
        ("test-3", 2, [1.0, 1.0, 0.0], ["test-d2", "test-d3", "test-d0"])]
    assert groups[1].docs == ["D is a town.", "D lies on C.", "A was founded by B."]


@pytest.mark.parametrize("line, field, problem", [
    ({"pos": ["a"], "neg": ["b"]}, "query", "missing"),
    ({"query": " ", "pos": ["a"], "neg": ["b"]}, "query", "empty"),
    ({"query": "q", "neg": ["b"]}, "pos", "missing"),
    ({"query": "q", "pos": ["a"], "neg": []}, "neg", "empty list"),
    ({"query": "q", "pos": "a", "neg": ["b"]}, "pos", "expected list"),
    ({"query": "q", "pos": ["a", 3], "neg": ["b"]}, "pos[1]", "non-empty passage"),
    ({"query": "q", "pos": ["a"], "neg": ["b", ""]}, "neg[1]", "non-empty passage"),
    ({"query": "q", "pos": ["a"], "neg": ["b", "a"]}, "neg[1]", "twice"),
    ({"query": "first", "pos": ["a"], "neg": ["b"]}, "query", "repeats the query of line 1"),
    ("[1, 2]", None, "expected a JSON object"),
    ("{not json", None, "not valid JSON"),
])
def test_read_candidates_names_file_line_and_field(tmp_path, line, field, problem):
    from rerank_lib.data.errors import DataFormatError
    from rerank_lib.data.hopweaver import read_candidates

    path = _write_lines(tmp_path / "bad.jsonl", [{"query": "first", "pos": ["x"], "neg": ["y"]}, line])
    with pytest.raises(DataFormatError) as err:
        read_candidates(path, "train")
    assert (err.value.path, err.value.line, err.value.field) == (str(path), 2, field)
    assert problem in str(err.value) and str(path) in str(err.value) and "line 2" in str(err.value)
    with pytest.raises(DataFormatError, match="no data"):
        read_candidates(_write_lines(tmp_path / "empty.jsonl", [""]), "train")


def _own_root(tmp_path, n_train=8, n_test=4):
    """A data root with HopWeaver's two files: topic words make the positive the lexical match of its query."""
    topics = ["volcano", "glacier", "harbor", "castle", "desert", "forest", "island", "canyon", "meadow", "bridge",
              "temple", "market"]

    def line(i, split):
        t, u, v = topics[i % 12], topics[(i + 5) % 12], topics[(i + 7) % 12]
        return {"query": f"{split} question {i} about the {t}", "pos": [f"The {t} is described here in line {i}."],
                "neg": [f"The {u} is elsewhere {i}.", f"A {v} far away {i}."][: 1 + i % 2]}

    root = tmp_path / "data"
    _write_lines(root / "hopweaver" / "train_data_sample.jsonl", [line(i, "train") for i in range(n_train)])
    _write_lines(root / "hopweaver" / "test_data.jsonl", [line(i, "test") for i in range(n_test)])
    return root


def test_registry_finds_hopweaver_under_the_data_root(tmp_path):
    from rerank_lib.data import load_dataset, locate
    from rerank_lib.evaluation import measures_for

    root = _own_root(tmp_path)
    test = load_dataset("hopweaver", "test", root=root)
    assert (test.key, len(test.queries), sorted(test.runs)) == ("hopweaver/test", 4, ["candidates"])
    assert len(load_dataset("hopweaver", "train", root=root).queries) == 8
    assert measures_for("hopweaver") == ("accuracy", "MRR")
    with pytest.raises(KeyError, match="splits"):
        load_dataset("hopweaver", "dev", root=root)
    (root / "hopweaver" / "test_data.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="hopweaver"):
        locate("hopweaver", root=root, download=False)


def test_hopweaver_published_files_load(shared_data):
    from rerank_lib.data import load_dataset

    train, test = load_dataset("hopweaver", "train", root=shared_data), load_dataset("hopweaver", "test", root=shared_data)
    assert (len(train.queries), len(test.queries)) == (100, 203)  # MANIFEST.md
    assert (len(test.corpus), sum(len(j) for j in test.qrels.values())) == (544, 544)
    assert not {t.lower() for t in train.queries.values()} & {t.lower() for t in test.queries.values()}
    assert all(any(g > 0 for g in j.values()) and any(g == 0 for g in j.values()) for j in test.qrels.values())


def test_bm25_of_the_candidates_by_hand():
    from rerank_lib.data.types import Dataset
    from rerank_lib.recipes.hopweaver import bm25_candidates

    corpus = {"d0": Document("d0", "apple"), "d1": Document("d1", "banana")}
    ds = Dataset("hopweaver", "test", corpus, {"q": "apple"}, {"q": {"d0": 1, "d1": 0}},
                 runs={"candidates": {"q": {"d0": 0.0, "d1": 0.0}}})
    # N=2, df=1: idf = ln(1 + (2 - 1 + 0.5) / (1 + 0.5)) = ln 2; tf 1, dl = avgdl = 1: 1 / (1 + 0.9) -> 0.364811;
    # d1 shares no term with the query: 0
    run = bm25_candidates(ds)
    assert run == {"q": {"d0": pytest.approx(math.log(2) / 1.9), "d1": 0.0}}


def test_own_data_settings_per_profile_and_the_candidate_depth():
    from rerank_lib.data.types import Dataset
    from rerank_lib.recipes import hopweaver as recipe

    default, smoke, paper = recipe.config("default"), recipe.config("smoke"), recipe.config("paper")
    assert (default.own_train_examples, default.own_test_examples, default.own_dev_fraction, default.own_max_steps) == (
        None, None, 0.2, 80)
    assert (smoke.own_train_examples, smoke.own_test_examples, smoke.own_max_steps) == (12, 10, 3)
    assert paper.own_max_steps is None and "README_EN.md line 68" in recipe.RECIPE.file.sources["own_max_steps"]
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError, match="own_dev_fraction"):
            recipe.config("default", own_dev_fraction=bad)
    ds = Dataset("hopweaver", "test", {}, {}, {}, runs={"candidates": {"a": {"x": 0.0, "y": 0.0}, "b": {"x": 0.0}}})
    assert recipe.candidate_depth(ds) == 2


def test_own_data_row_trains_on_train_lines_and_records_accuracy_and_mrr(tmp_path, private_cache):
    from rerank_lib.recipes import hopweaver as recipe
    from rerank_lib.results import load_records

    root = _own_root(tmp_path)
    cfg = recipe.config("smoke", data_root=str(root), own_train_examples=None, own_test_examples=3, max_length=32,
                        own_dev_fraction=0.25, own_max_steps=2, **{"train.per_device_batch_size": 2})
    own = recipe.load_own_data(cfg)
    assert (len(own.split.train.queries), len(own.split.dev.queries), len(own.test.queries)) == (6, 2, 3)
    assert own.describe() == "6 train + 2 dev lines of hopweaver/train; 3 test lines (test-3q)"
    assert own.test.split == "test-3q" and not set(own.split.dev.queries) & set(own.split.train.queries)
    assert {g.query_id for g in own.groups} == set(own.split.train.queries)  # dev lines never train
    reranked = recipe.train_on_own_data(cfg, own)
    sel = reranked.selected
    assert sel.metric == "MRR" and sel.result.global_step == 2 and sel.curve[0]["step"] == 0  # the start is a candidate
    assert set(sel.curve[0]) >= {"accuracy", "MRR"}
    out = tmp_path / "results"
    own_rows = recipe.own_data_rows(cfg, own, reranked, out)
    records, runs = own_rows.records, own_rows.runs
    assert [r.method for r in records] == ["bm25", "hopweaver-own-untrained", "hopweaver-own-ft"]
    for r, run in zip(records, runs.values()):
        assert (r.dataset, r.split, r.first_stage) == ("hopweaver", "test-3q", "hopweaver pos+neg")
        assert set(r.metrics) == {"accuracy", "MRR"}
        from rerank_lib.evaluation import candidate_measures
        assert r.metrics == pytest.approx(candidate_measures(run, own.test.qrels))
    # the toy positives are the queries' lexical matches: BM25 puts each first
    assert records[0].metrics == {"accuracy": 1.0, "MRR": 1.0}
    assert set(records[2].significance) == {"bm25", "start"} and set(records[1].significance) == {"bm25"}
    assert records[2].significance["start"]["MRR"]["n_queries"] == 3
    assert records[2].n_training_queries == 8 and records[2].params["best_step"] == sel.step
    # cost: the rerankers' latency per test line, the fine-tuned row's training seconds; BM25 reranks nothing
    assert records[0].latency_s_per_query is None and None not in [r.latency_s_per_query for r in records[1:]]
    assert records[2].train_s == sel.train_s and records[1].train_s is None
    assert {r.method for r in load_records(out, "smoke")} == {r.method for r in records}


def test_tables_reading_and_readme_numbers_take_a_test_set_without_ndcg(tmp_path):
    from rerank_lib.results import build_tables, make_record, write_record
    from rerank_lib.results.readme_numbers import render
    from rerank_lib.results.reading import summarize

    sig = {"bm25": {"accuracy": {"delta": 0.2, "p_value": 0.01, "n_queries": 5},
                    "MRR": {"delta": 0.1, "p_value": 0.2, "n_queries": 5}}}
    hop = [make_record("cross_encoder", "bm25", "hopweaver", "test", {"accuracy": 0.6, "MRR": 0.8},
                       first_stage="hopweaver pos+neg"),
           make_record("cross_encoder", "hopweaver-own-ft", "hopweaver", "test", {"accuracy": 0.8, "MRR": 0.9},
                       first_stage="hopweaver pos+neg", significance=sig)]
    sci = [make_record("cross_encoder", "ce", "scifact", "test", {"nDCG@10": 0.7}, first_stage="bm25", depth=10,
                       significance={"bm25": {"nDCG@10": {"delta": 0.05, "p_value": 0.001, "n_queries": 300}}})]
    for r in hop + sci:
        write_record(r, tmp_path)
    md = build_tables(tmp_path)["md"].read_text()
    assert "## hopweaver / test" in md and "| accuracy | MRR |" in md and "**0.800**▲" in md  # MRR p=0.2: no mark
    assert "| **0.900** |" in md
    block = render(tmp_path)
    best_rows = block[block.index("Headline nDCG@10 per test set"):]  # after the claims' verdicts
    assert "scifact test" in best_rows and "hopweaver" not in best_rows  # the best rows are on nDCG@10 only
    text = summarize(hop + sci)
    # each test set's tests are read on its own measure: nDCG@10 for SciFact, accuracy for HopWeaver's set
    assert "against `bm25` (accuracy, paired test, alpha 0.05): significantly better: `hopweaver-own-ft` (+0.2000, p=0.010)" in text
    assert "against `bm25` (nDCG@10, paired test, alpha 0.05): significantly better: `ce`" in text
