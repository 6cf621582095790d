"""HopWeaver: MMR by hand and the diverse/standard retrievers (retrievers.diverse), the generator and its judges
(synthetic_queries), its output format (data.hopweaver), parsing, the recipe's settings and bad input."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rerank_lib.data.hopweaver import (
    GeneratedExample, generation_stats, read_generated, sample_sources, to_groups, write_hopweaver,
)
from rerank_lib.data.pairs import read_hopweaver
from rerank_lib.data.types import Document
from rerank_lib.retrievers.diverse import DiverseRetriever, MMRWeights, mmr_select
from rerank_lib.synthetic_queries import QrelsJudge, ScoreJudge, generate_contrastive_data
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
    with pytest.raises(ValueError, match="train.seed"):
        recipe.config("default", train={"seed": 1})


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

    def fake(architectures):
        return SimpleNamespace(model=SimpleNamespace(config=SimpleNamespace(architectures=architectures)))

    assert recipe.start_row_name(fake(["BertModel"])) == "diverse_untrained"  # all-MiniLM-L6-v2: a fresh head
    assert recipe.start_row_name(fake(None)) == "diverse_untrained"
    assert recipe.start_row_name(fake(["XLMRobertaForSequenceClassification"])) == "diverse_zs"  # bge-reranker-v2-m3
