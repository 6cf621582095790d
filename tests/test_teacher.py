"""The offline teacher: scores equal their definition, the cache is used, a cross-encoder scores as the ranker."""
import pytest
import torch

from rerank_lib import teacher as teacher_mod
from rerank_lib.data.types import Document
from rerank_lib.evaluation import reciprocal_rank_fusion
from rerank_lib.first_stage import rerank_with_encoder
from rerank_lib.teacher import teacher_scores

pytestmark = pytest.mark.usefixtures("private_cache")

CORPUS = {
    "cat": Document("cat", "The cat sat on the warm mat all afternoon.", "Cats"),
    "dog": Document("dog", "Dogs love running in the park with their owners.", "Dogs"),
    "bake": Document("bake", "Bake the bread at 220 degrees until the crust is golden.", "Baking"),
    "qm": Document("qm", "Quantum mechanics describes physics at the scale of atoms.", "Physics"),
}
QUERIES = {"q1": "where did the cat sit", "q2": "how to bake bread"}
RUN = {"q1": {"bake": 3.0, "dog": 2.0, "cat": 1.0, "qm": 0.5}, "q2": {"qm": 2.0, "bake": 1.0, "cat": 0.2}}


def test_bi_encoder_teacher_is_cosine_over_the_top_depth():
    scores = teacher_scores("minilm-l6", RUN, CORPUS, QUERIES, depth=3)
    # the teacher's own encoder: its precision is the machine's (bf16 where the CPU computes it natively)
    expected = rerank_with_encoder(teacher_mod._bi_encoder("minilm-l6"), RUN, CORPUS, QUERIES, depth=3)
    assert set(scores["q1"]) == {"bake", "dog", "cat"}
    for q in expected:
        for d, s in expected[q].items():
            assert scores[q][d] == pytest.approx(s, abs=1e-5)
    assert max(scores["q1"], key=scores["q1"].get) == "cat" and max(scores["q2"], key=scores["q2"].get) == "bake"


def test_fusion_teacher_is_rrf_of_first_stage_and_dense():
    fused = teacher_scores("bm25+minilm-l6", RUN, CORPUS, QUERIES, depth=4)
    dense = rerank_with_encoder(teacher_mod._bi_encoder("minilm-l6"), RUN, CORPUS, QUERIES, depth=4)
    expected = reciprocal_rank_fusion({"a": RUN, "b": dense}, k=60)
    assert all(fused[q][d] == pytest.approx(expected[q][d], abs=1e-6) for q in expected for d in expected[q])
    # q1: 'cat' is 3rd by the first stage and 1st by dense: 1/63 + 1/61
    assert fused["q1"]["cat"] == pytest.approx(1 / 63 + 1 / 61, abs=1e-6)


def test_an_uncached_teacher_touches_no_cache_and_its_fusion_is_the_fusion_teachers(monkeypatch):
    """What 02_teacher times: cache=False reads and writes neither teacher scores nor document embeddings; the
    fusion of a bi-encoder teacher's scores is the fusion teacher's score, float for float."""
    from rerank_lib.retrievers import bi_encoder

    for module in (teacher_mod, bi_encoder):
        monkeypatch.setattr(module, "cache_dir", lambda *parts: pytest.fail(f"cache {parts} used"))
    dense = teacher_scores("minilm-l6", RUN, CORPUS, QUERIES, depth=4, cache=False)
    assert teacher_scores("bm25+minilm-l6", RUN, CORPUS, QUERIES, depth=4, cache=False) == teacher_mod.fuse(RUN, dense)


def test_scores_are_cached(monkeypatch):
    first = teacher_scores("minilm-l6", RUN, CORPUS, QUERIES, depth=2)
    monkeypatch.setattr(teacher_mod, "rerank_with_encoder", lambda *a, **k: pytest.fail("cache not used"))
    again = teacher_scores("minilm-l6", RUN, CORPUS, QUERIES, depth=2)
    assert again == first  # the very same floats: a cached input may stand in for a computed one in a release
    changed = dict(CORPUS, bake=Document("bake", "A different text.", "Baking"))  # a candidate of both queries
    with pytest.raises(pytest.fail.Exception):  # a changed text is a different cache entry
        teacher_scores("minilm-l6", RUN, changed, QUERIES, depth=2)


def test_errors_name_the_problem():
    with pytest.raises(KeyError, match="unknown teacher"):
        teacher_scores("gpt-9", RUN, CORPUS, QUERIES)
    with pytest.raises(KeyError, match="no text"):
        teacher_scores("minilm-l6", {"q9": {"cat": 1.0}}, CORPUS, QUERIES)


def test_a_cross_encoder_teacher_scores_as_the_ranker_it_names(tmp_path, monkeypatch):
    """A MiniLM folder loaded as a one-logit sequence classifier (seeded new head) stands in for a hub reranker. The
    teacher scores through rerankers.CrossEncoder: the same floats as that ranker's rerank, and, in fp32, a manual
    forward of the pair truncated 'longest_first'. A query longer than half of max_length tells the truncations
    apart ('only_second', the teacher's earlier own scorer, kept the whole query and cut the document shorter)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rerank_lib.models import resolve
    from rerank_lib.rerankers import CrossEncoder

    monkeypatch.setenv("RERANK_PRECISION", "fp32")
    source = resolve("minilm-l6").source
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1)
    model.save_pretrained(tmp_path / "ce")
    AutoTokenizer.from_pretrained(source).save_pretrained(tmp_path / "ce")
    monkeypatch.setitem(teacher_mod.TEACHERS, "tiny-ce",
                        teacher_mod.TeacherSpec("tiny-ce", "cross-encoder", str(tmp_path / "ce"), "a test model"))
    queries = dict(QUERIES, q2="how long and at which temperature do you bake a loaf of bread with a golden crust")
    scores = teacher_scores("tiny-ce", RUN, CORPUS, queries, depth=3, batch_size=2, max_length=24)
    ranker = CrossEncoder(tmp_path / "ce", max_length=24)
    assert scores == ranker.rerank(RUN, CORPUS, queries, depth=3, batch_size=2)
    tok = AutoTokenizer.from_pretrained(tmp_path / "ce")
    model.eval()
    with torch.no_grad():
        for truncation, agrees in (("longest_first", True), ("only_second", False)):
            enc = tok(queries["q2"], CORPUS["bake"].text_for_model, truncation=truncation, max_length=24,
                      return_tensors="pt")
            manual = model(**enc).logits[0, 0].item()
            assert (scores["q2"]["bake"] == pytest.approx(manual, abs=1e-4)) is agrees, truncation


def test_teacher_order_reorders_the_top_only():
    """The ceiling of imitation: the teacher's order of the reranked top, the rest of the first stage below."""
    from rerank_lib.teacher import teacher_order

    bm25 = {"q1": {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}}
    teacher = {"q1": {"a": 0.1, "b": 0.9, "c": 0.5, "d": 0.99}}
    ceiling = teacher_order({"q1": {"a": 4.0, "b": 3.0, "c": 2.0}}, bm25, teacher)["q1"]
    # the teacher reorders the top-3 only (b > c > a); d, which the teacher likes best, stays below
    assert sorted(ceiling, key=lambda d: -ceiling[d]) == ["b", "c", "a", "d"]
    assert ceiling == {"b": 4.0, "c": 3.0, "a": 2.0, "d": 1.0}


def test_scores_with_extra_puts_extra_documents_below_the_first_stage(monkeypatch):
    seen = {}
    monkeypatch.setattr(teacher_mod, "teacher_scores",
                        lambda name, run, corpus, queries, depth: seen.update(run=run, depth=depth) or run)
    teacher_mod.scores_with_extra("minilm-l6", {"q": {"a": 3.0, "b": 2.0, "c": 1.0}}, {"q": ["c", "x", "x", "b", "y"]},
                                  {}, {}, depth=2)
    # the top-2 keep their scores; c (cut by depth), x and y follow below the last candidate, once each
    assert seen == {"run": {"q": {"a": 3.0, "b": 2.0, "c": 1.0, "x": 0.0, "y": -1.0}}, "depth": 5}


def test_the_teacher_cache_key_covers_the_ranker_it_scores_through():
    """A cross-encoder teacher's scores come from rerankers.cross_encoder: a change there must make a new key."""
    from rerank_lib.code_version import closure

    assert {"rerank_lib.rerankers.cross_encoder", "rerank_lib.rerankers.protocol",
            "rerank_lib.collate"} <= set(closure(["rerank_lib.teacher"]))
