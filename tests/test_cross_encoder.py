"""The cross-encoder family: each loss against hand-computed values, scoring and reranking (order, shape, batching),
save/load, and tiny fits that learn, evaluate on a dev run and restore the best weights."""
import math

import numpy as np
import pytest
import torch

from rerank_lib.data.pairs import TrainGroup
from rerank_lib.data.types import Document
from rerank_lib.rerankers import CrossEncoder, RerankEvaluator, fit
from rerank_lib.rerankers.losses import group_ce, kd_term, listwise_ce, point_ce, point_mse, ranknet
from rerank_lib.training import TrainConfig

T = torch.tensor


# ------------------------------------------------------------------------------------------ losses by hand


def test_point_ce_by_hand():
    # BCE(0, 1) = log 2; BCE(2, 0.25) = 0.25*log(1+e^-2) + 0.75*log(1+e^2)
    expected = (math.log(2) + 0.25 * math.log1p(math.exp(-2)) + 0.75 * math.log1p(math.exp(2))) / 2
    assert expected == pytest.approx(1.160038, abs=1e-6)
    assert point_ce(T([0.0, 2.0]), T([1.0, 0.25])).item() == pytest.approx(expected, abs=1e-6)


def test_point_mse_by_hand():
    sig2 = 1 / (1 + math.exp(-2))  # 0.880797
    expected = ((0.5 - 1.0) ** 2 + (sig2 - 0.25) ** 2) / 2
    assert expected == pytest.approx(0.323952, abs=1e-6)
    assert point_mse(T([0.0, 2.0]), T([1.0, 0.25])).item() == pytest.approx(expected, abs=1e-6)


def test_group_ce_and_kd_by_hand():
    logits = T([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    ce_0 = math.log(1 + 2 * math.exp(-2))  # -log softmax([2,0,0])_0 = 0.239545
    ce_1 = math.log(2 + math.e)  # -log softmax([0,1,0])_0 = 1.551445
    assert group_ce(logits).item() == pytest.approx((ce_0 + ce_1) / 2, abs=1e-6)
    teacher = T([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    # group 1: softmax(teacher) = [e, 1, 1]/(e+2); log_softmax(student) = [-ce_0, -2-ce_0, -2-ce_0]
    kd_0 = (math.e * ce_0 + 2 * (2 + ce_0)) / (math.e + 2)
    # group 2: uniform teacher; log_softmax([0,1,0]) = [-ce_1, 1-ce_1, -ce_1]
    kd_1 = (ce_1 + (ce_1 - 1) + ce_1) / 3
    assert kd_0 == pytest.approx(1.087311, abs=1e-6)
    assert kd_term(logits, teacher).item() == pytest.approx((kd_0 + kd_1) / 2, abs=1e-6)
    total = group_ce(logits, teacher, kd_weight=0.5)
    assert total.item() == pytest.approx((ce_0 + ce_1) / 2 + 0.5 * (kd_0 + kd_1) / 2, abs=1e-6)
    # temperature divides the teacher scores: T=0.5 doubles them
    assert kd_term(logits, teacher, temperature=0.5).item() == pytest.approx(kd_term(logits, 2 * teacher).item())
    assert group_ce(logits, teacher, kd_weight=0.0).item() == pytest.approx(group_ce(logits).item())


def test_ranknet_by_hand():
    # labels [1, .5, 0], scores [1, 0, 2]: pairs (0,1) w .5, diff 1; (0,2) w 1, diff -1; (1,2) w .5, diff -2
    sp = lambda x: math.log1p(math.exp(x))  # softplus
    expected = (0.5 * sp(-1) + 1.0 * sp(1) + 0.5 * sp(2)) / 2.0
    assert expected == pytest.approx(1.266679, abs=1e-6)
    assert ranknet(T([[1.0, 0.0, 2.0]]), T([[1.0, 0.5, 0.0]])).item() == pytest.approx(expected, abs=1e-6)
    tied = ranknet(T([[1.0, 3.0]], requires_grad=True), T([[0.0, 0.0]]))  # no ordered pair: 0, still a graph
    assert tied.item() == 0.0 and tied.requires_grad


def test_listwise_ce_by_hand():
    lse = math.log(math.e + 1 + math.e ** 2)  # log-sum-exp of [1, 0, 2]
    expected = 0.5 * (lse - 1) + 0.5 * lse  # labels [1, 1, 0] -> p = [.5, .5, 0]
    assert expected == pytest.approx(1.907606, abs=1e-6)
    got = listwise_ce(T([[1.0, 0.0, 2.0], [5.0, 1.0, 0.0]]), T([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]))
    assert got.item() == pytest.approx(expected, abs=1e-6)  # the all-zero group is skipped
    # one positive of label 1, negatives 0: listwise CE is group CE
    logits = T([[0.3, -1.0, 2.0]])
    assert listwise_ce(logits, T([[1.0, 0.0, 0.0]])).item() == pytest.approx(group_ce(logits).item(), abs=1e-6)


def test_losses_have_gradients_in_the_right_direction():
    logits = T([[0.0, 0.0, 0.0]], requires_grad=True)
    for loss in (group_ce(logits), ranknet(logits, T([[1.0, 0.0, 0.0]])), listwise_ce(logits, T([[1.0, 0.0, 0.0]]))):
        (grad,) = torch.autograd.grad(loss, logits)
        assert grad[0, 0] < 0 and (grad[0, 1:] > 0).all()  # descent raises the positive, lowers the negatives


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
