"""Training a pair scorer from TrainGroups (rerank_lib.training.groups): the examples and options it builds, tiny
fits that learn, evaluate on a dev run and restore the best weights, the recipe path (experiment.scorer.train_scorer
through train_with_dev_selection), head learning rates."""
import pytest
import torch

from rerank_lib.data.pairs import TrainGroup
from rerank_lib.data.types import Document
from rerank_lib.experiment import DevEvaluator, EvalSet
from rerank_lib.experiment.scorer import train_scorer
from rerank_lib.rerankers import CrossEncoder
from rerank_lib.losses import group_ce
from rerank_lib.training import TrainConfig
from rerank_lib.training.groups import GroupObjective, batch_unit, fit, group_training, head_param_groups

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
    result = fit(model, groups, GroupObjective(loss, group_size=4, kd_weight=kd), config)
    after = _group_loss(model, groups)
    assert after < before - 0.1, (before, after)
    assert result.global_step == 4 and len(result.history) == 4
    assert result.run_info["loss"] == loss and result.run_info["pairs_per_step"] == 8
    if loss == "group_ce":
        assert result.history[-1]["epoch"] == pytest.approx(4.0)  # reported in passes over the groups


def test_fit_evaluates_on_dev_and_restores_the_best_weights(tmp_path):
    model = CrossEncoder("minilm-l6", max_length=48, device="cpu", dtype=torch.float32, init_seed=2)
    dev = DevEvaluator.reranking(EvalSet("toy", "dev", QUERIES, QRELS, depth=3, run=RUN, corpus=CORPUS,
                                         measures=["nDCG@10", "RR@10"]))
    config = TrainConfig(output_dir=str(tmp_path / "run"), seed=0, learning_rate=3e-4, num_epochs=4,
                         per_device_batch_size=2, eval_every_steps=2, save_every_steps=None, mixed_precision="no")
    result = fit(model, _groups(), GroupObjective("ranknet", group_size=3), config, eval_fn=dev)
    assert [row["step"] for row in result.eval_history] == [0, 2, 4] and len(dev.runs) == 3  # step 0: the start
    assert result.metric_for_best == "nDCG@10" and result.best_dir is not None
    best = dev.run_at(result.eval_history, result.best_step)
    again = model.rerank(RUN, CORPUS, QUERIES, depth=3)  # the restored weights reproduce the best evaluation
    assert all(again[q][d] == pytest.approx(best[q][d], abs=1e-4) for q in best for d in best[q])


def test_fit_refuses_bad_requests(tmp_path, ce):
    config = TrainConfig(output_dir=str(tmp_path), save_every_steps=None)
    with pytest.raises(ValueError, match="loss must be"):
        fit(ce, _groups(), GroupObjective("hinge"), config)
    with pytest.raises(ValueError, match="group losses"):
        fit(ce, _groups(), GroupObjective("point_ce", kd_weight=1.0), config)
    no_teacher = [TrainGroup("q", ["a", "b"], [1.0, 0.0])]
    with pytest.raises(ValueError, match="teacher_scores"):
        fit(ce, no_teacher, GroupObjective("group_ce", kd_weight=1.0), config)


def test_group_training_pieces(tmp_path):
    model = CrossEncoder("minilm-l6", max_length=48, device="cpu", dtype=torch.float32, init_seed=2)
    config = TrainConfig(output_dir=str(tmp_path / "run"), seed=0, num_epochs=3, per_device_batch_size=2)
    plan = group_training(model, _groups(), GroupObjective("group_ce", 3, kd_weight=0.5, head_lr=1e-3), config)
    assert plan.config.num_epochs == 1 and len(plan.dataset) == 6 and plan.passes == 3  # 3 passes x 2 groups
    assert plan.run_info["pairs_per_step"] == 6 and len(plan.train_options["lengths"]) == 6
    assert {g["lr"] for g in plan.train_options["optimizer_params"]} == {config.learning_rate, 1e-3}
    item = plan.dataset[0]
    assert len(item["input_ids"]) == 3 and item["target"] == [1.0, 0.0, 0.0] and item["teacher"][0] == 3.0
    pointwise = group_training(model, _groups(), GroupObjective("point_mse"), config, length_grouping=False)
    assert len(pointwise.dataset) == 8 and pointwise.config.num_epochs == 3 and pointwise.train_options["lengths"] is None
    assert [ex["target"] for ex in pointwise.dataset[:4]] == [1.0, 0.0, 0.0, 0.0]


def test_a_teacher_loss_trains_on_the_teachers_scores(tmp_path, ce):
    """The losses of losses.TEACHER_TARGETS get each pair's teacher score as its target, pointwise and in groups,
    and refuse groups without teacher scores."""
    config = TrainConfig(output_dir=str(tmp_path / "run"), seed=0, per_device_batch_size=2)
    for loss in ("logit_mse", "soft_point_ce"):
        pointwise = group_training(ce, _groups(), GroupObjective(loss), config)
        assert [ex["target"] for ex in pointwise.dataset] == [3.0, -1.0, 0.0, -2.0, 2.0, 0.5, -1.0, -1.0]
    for loss in ("teacher_ranknet", "teacher_weighted_ranknet", "teacher_listnet"):
        plan = group_training(ce, _groups(), GroupObjective(loss, group_size=3), config)
        for k, (gi, idx) in enumerate(plan.dataset.plan):
            assert plan.dataset[k]["target"] == [_groups()[gi].teacher_scores[j] for j in idx]
            assert "teacher" not in plan.dataset[k]  # no KD term: the teacher is the target itself
    labels = group_training(ce, _groups(), GroupObjective("ranknet", group_size=3), config)
    assert labels.dataset[0]["target"] == [1.0, 0.0, 0.0]  # the other losses keep the labels
    no_teacher = [TrainGroup("q", ["a", "b"], [1.0, 0.0])]
    for loss in ("logit_mse", "teacher_listnet"):
        with pytest.raises(ValueError, match=f"loss '{loss}' trains on the teacher's scores"):
            group_training(ce, no_teacher, GroupObjective(loss, group_size=2), config)


@pytest.mark.parametrize("loss", ["logit_mse", "teacher_weighted_ranknet"])
def test_a_tiny_teacher_fit_lowers_the_loss(tmp_path, loss):
    model = CrossEncoder("minilm-l6", max_length=48, device="cpu", dtype=torch.float32, init_seed=1)
    groups = _groups()
    before = _group_loss(model, groups)
    config = TrainConfig(output_dir=str(tmp_path / loss), seed=3, learning_rate=5e-4, num_epochs=4,
                         per_device_batch_size=2 if loss.startswith("teacher") else 8, save_every_steps=None,
                         log_every_steps=1, mixed_precision="no")
    fit(model, groups, GroupObjective(loss, group_size=4), config)
    assert _group_loss(model, groups) < before - 0.1  # the teachers put each group's positive first


def test_train_scorer_selects_on_dev_and_leaves_the_selected_weights(tmp_path):
    """The recipe path: training.groups' pieces through experiment.train_with_dev_selection, the untrained start a
    candidate; the ranker ends holding the selected weights, which reproduce the selected dev run."""
    model = CrossEncoder("minilm-l6", max_length=48, device="cpu", dtype=torch.float32, init_seed=2)
    config = TrainConfig(output_dir=str(tmp_path / "run"), seed=0, learning_rate=3e-4, num_epochs=3,
                         per_device_batch_size=2, save_every_steps=None, mixed_precision="no")
    dev = DevEvaluator.reranking(EvalSet("toy", "dev", QUERIES, QRELS, depth=3, run=RUN, corpus=CORPUS),
                                 as_ranker=lambda _: model)
    selected = train_scorer(model, _groups(), dev, GroupObjective("group_ce", group_size=3), config)
    assert [row["step"] for row in selected.curve] == [0, 3] and selected.start_value == selected.curve[0]["nDCG@10"]
    assert selected.value == max(row["nDCG@10"] for row in selected.curve)
    assert selected.result.history[-1]["epoch"] == pytest.approx(3.0) and selected.result.run_info["passes"] == 3
    assert selected.curve[-1]["epoch"] == pytest.approx(3.0)  # the dev curve in passes too, like the history
    again = model.rerank(RUN, CORPUS, QUERIES, depth=3)
    assert all(again[q][d] == pytest.approx(selected.dev_run[q][d], abs=1e-4) for q in again for d in again[q])
    assert not model.model.training


def test_head_param_groups_give_the_fresh_head_its_own_rate():
    model = CrossEncoder("minilm-l6", max_length=48, device="cpu", dtype=torch.float32).model
    groups = head_param_groups(model, TrainConfig(learning_rate=1e-4, weight_decay=0.01), head_lr=1e-3)
    by_key = {(g["lr"], g["weight_decay"]): g["params"] for g in groups}
    assert set(by_key) == {(1e-4, 0.01), (1e-4, 0.0), (1e-3, 0.01), (1e-3, 0.0)}
    head = {id(p) for name, p in model.named_parameters() if name.split(".")[0] in ("classifier",) or ".pooler." in name
            or name.startswith("pooler")}
    assert {id(p) for p in by_key[(1e-3, 0.01)] + by_key[(1e-3, 0.0)]} == head
    assert sum(len(ps) for ps in by_key.values()) == sum(1 for p in model.parameters() if p.requires_grad)


def test_batch_unit_counts_pairs_for_pointwise_losses_and_groups_for_group_losses():
    assert batch_unit("point_mse", 1, 4) == "pair"
    assert batch_unit("point_ce", 3, 4) == "pairs"
    assert batch_unit("ranknet", 1, 4) == "group of 4"
    assert batch_unit("group_ce", 2, 8) == "groups of 8"
