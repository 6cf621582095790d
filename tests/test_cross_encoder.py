"""The cross-encoder family: scoring and reranking (order, shape, batching), save/load, and tiny fits that learn,
evaluate on a dev run and restore the best weights (its losses by hand: test_losses.py)."""
import numpy as np
import pytest
import torch

from rerank_lib.data.pairs import TrainGroup
from rerank_lib.data.types import Document
from rerank_lib.losses import group_ce
from rerank_lib.rerankers import CrossEncoder, RerankEvaluator, fit
from rerank_lib.training import TrainConfig

T = torch.tensor


# ------------------------------------------------------------------------------------------ the model


CORPUS = {
    "cat": Document("cat", "The cat sat on the warm mat all afternoon, purring.", "Cats"),
    "dog": Document("dog", "Dogs love running in the park with their owners.", "Dogs"),
    "bake": Document("bake", "Bake the bread at 220 degrees until the crust is golden and it sounds hollow.", "Baking"),
    "qm": Document("qm", "Quantum mechanics describes physics at the scale of atoms.", "Physics"),
}
QUERIES = {"q1": "where did the cat sit", "q2": "how long to bake bread"}
RUN = {"q1": {"bake": 3.0, "dog": 2.0, "cat": 1.0, "qm": 0.5}, "q2": {"qm": 2.0, "bake": 1.0, "cat": 0.2}}
QRELS = {"q1": {"cat": 1}, "q2": {"bake": 1}}


@pytest.fixture(scope="module")
def ce():
    torch.manual_seed(0)
    return CrossEncoder("minilm-l6", max_length=48, device="cpu", dtype=torch.float32)


def test_score_is_in_input_order_and_batching_changes_nothing(ce):
    docs = [CORPUS[d].text_for_model for d in ("bake", "cat", "qm", "dog")]  # different lengths
    one = ce.score("where did the cat sit", docs, batch_size=1)
    many = ce.score(["where did the cat sit"] * 4, docs, batch_size=3)
    assert one.shape == (4,) and one.dtype == np.float32
    np.testing.assert_allclose(one, many, atol=1e-5)
    with torch.no_grad():  # a manual forward of each pair, unpadded
        for d, s in zip(docs, one):
            enc = ce.tokenizer("where did the cat sit", d, truncation="longest_first", max_length=48, return_tensors="pt")
            assert ce.model(**enc).logits[0, 0].item() == pytest.approx(float(s), abs=1e-4)
    assert ce.score([], []).shape == (0,)
    assert max(len(f["input_ids"]) for f in ce.encode_pairs(["q " * 100], ["d " * 100])) == 48  # truncated
    assert not ce.model.training


def test_rerank_shape_depth_and_missing_text(ce):
    reranked = ce.rerank(RUN, CORPUS, QUERIES, depth=3)
    assert set(reranked) == {"q1", "q2"} and set(reranked["q1"]) == {"bake", "dog", "cat"}  # top-3 only
    pairs = ce.score([QUERIES["q1"]] * 3, [CORPUS[d].text_for_model for d in ("bake", "dog", "cat")])
    assert [reranked["q1"][d] for d in ("bake", "dog", "cat")] == pytest.approx(pairs.tolist(), abs=1e-5)
    with pytest.raises(KeyError, match="no text"):
        ce.rerank({"q1": {"nope": 1.0}}, CORPUS, QUERIES)


def test_save_and_load_round_trip(ce, tmp_path):
    ce.save(tmp_path / "model")
    back = CrossEncoder.load(tmp_path / "model", device="cpu", dtype=torch.float32)
    assert back.max_length == 48
    docs = [CORPUS[d].text_for_model for d in CORPUS]
    np.testing.assert_allclose(back.score("cat on a mat", docs), ce.score("cat on a mat", docs), atol=1e-5)


def _groups():
    return [TrainGroup(QUERIES["q1"], [CORPUS[d].text_for_model for d in ("cat", "bake", "dog", "qm")],
                       [1.0, 0.0, 0.0, 0.0], teacher_scores=[3.0, -1.0, 0.0, -2.0]),
            TrainGroup(QUERIES["q2"], [CORPUS[d].text_for_model for d in ("bake", "qm", "cat", "dog")],
                       [1.0, 0.0, 0.0, 0.0], teacher_scores=[2.0, 0.5, -1.0, -1.0])]


def _group_loss(model: CrossEncoder, groups) -> float:
    logits = torch.stack([torch.from_numpy(model.score(g.query, g.docs)) for g in groups])
    return group_ce(logits).item()


@pytest.mark.parametrize("loss, kd", [("group_ce", 1.0), ("point_ce", 0.0)])
def test_tiny_fit_lowers_the_loss(tmp_path, loss, kd):
    model = CrossEncoder("minilm-l6", max_length=48, device="cpu", dtype=torch.float32, init_seed=1)
    groups = _groups()
    before = _group_loss(model, groups)
    config = TrainConfig(output_dir=str(tmp_path / loss), seed=3, learning_rate=5e-4, num_epochs=4,
                         per_device_batch_size=2 if loss == "group_ce" else 8, save_every_steps=None,
                         log_every_steps=1, mixed_precision="no")
    result = fit(model, groups, loss=loss, config=config, group_size=4, kd_weight=kd)
    after = _group_loss(model, groups)
    assert after < before - 0.1, (before, after)
    assert result.global_step == 4 and len(result.history) == 4
    assert result.run_info["loss"] == loss and result.run_info["pairs_per_step"] == 8
    if loss == "group_ce":
        assert result.history[-1]["epoch"] == pytest.approx(4.0)  # reported in passes over the groups


def test_fit_evaluates_on_dev_and_restores_the_best_weights(tmp_path):
    model = CrossEncoder("minilm-l6", max_length=48, device="cpu", dtype=torch.float32, init_seed=2)
    dev = RerankEvaluator(RUN, CORPUS, QUERIES, QRELS, depth=3, measures=["nDCG@10", "RR@10"])
    config = TrainConfig(output_dir=str(tmp_path / "run"), seed=0, learning_rate=3e-4, num_epochs=4,
                         per_device_batch_size=2, eval_every_steps=2, save_every_steps=None, mixed_precision="no")
    result = fit(model, _groups(), loss="ranknet", config=config, group_size=3, eval_fn=dev)
    assert [row["step"] for row in result.eval_history] == [2, 4] and len(dev.runs) == 2
    assert result.metric_for_best == "nDCG@10" and result.best_dir is not None
    best = dev.run_at(result)
    again = model.rerank(RUN, CORPUS, QUERIES, depth=3)  # the restored weights reproduce the best evaluation
    assert all(again[q][d] == pytest.approx(best[q][d], abs=1e-4) for q in best for d in best[q])


def test_fit_refuses_bad_requests(tmp_path, ce):
    config = TrainConfig(output_dir=str(tmp_path), save_every_steps=None)
    with pytest.raises(ValueError, match="loss must be"):
        fit(ce, _groups(), loss="hinge", config=config)
    with pytest.raises(ValueError, match="group losses"):
        fit(ce, _groups(), loss="point_ce", config=config, kd_weight=1.0)
    no_teacher = [TrainGroup("q", ["a", "b"], [1.0, 0.0])]
    with pytest.raises(ValueError, match="teacher_scores"):
        fit(ce, no_teacher, loss="group_ce", config=config, kd_weight=1.0)
