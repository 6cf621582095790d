"""Every loss of rerank_lib.losses against numbers computed by hand with plain Python math (never by calling the
loss again), their gradients' direction, and the rule that a loss module imports only torch (and math)."""
import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import rerank_lib.losses
from rerank_lib.losses import (
    center,
    ctl_loss,
    distillation_loss,
    generation_loss,
    group_ce,
    kd_term,
    kl_divergence,
    lambdarank_loss,
    listnet_loss,
    listwise_ce,
    logit_mse,
    point_ce,
    point_mse,
    ranking_loss,
    ranknet,
    ranknet_loss,
    self_sorted_targets,
    soft_point_ce,
    teacher_listnet,
    teacher_ranknet,
    teacher_ranks,
    teacher_weighted_ranknet,
)

T = torch.tensor


def softplus(x):
    return math.log1p(math.exp(x))


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


# ---------------------------------------------------------------------------------------- pointwise


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


def test_pointwise_losses_flatten_a_2x3_batch_by_hand():
    logits, labels = [[0.0, 2.0, -1.0], [1.0, 0.0, 3.0]], [[1.0, 0.25, 0.0], [0.0, 1.0, 0.5]]
    pairs = [(s, y) for row_s, row_y in zip(logits, labels) for s, y in zip(row_s, row_y)]
    # BCE with logits: y * softplus(-s) + (1 - y) * softplus(s); MSE on the sigmoid
    bce = sum(y * softplus(-s) + (1 - y) * softplus(s) for s, y in pairs) / 6
    mse = sum((sigmoid(s) - y) ** 2 for s, y in pairs) / 6
    assert bce == pytest.approx(1.031389, abs=1e-6) and mse == pytest.approx(0.284917, abs=1e-6)
    assert point_ce(T(logits), T(labels)).item() == pytest.approx(bce, abs=1e-6)
    assert point_mse(T(logits), T(labels)).item() == pytest.approx(mse, abs=1e-6)


# ---------------------------------------- cross-encoder groups: group CE + KD, RankNet, listwise CE


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


def test_ranknet_groups_by_hand():
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


def test_ranknet_groups_2x3_normalises_by_the_batch_weight():
    # group 0: labels [1, .5, 0], scores [1, 0, 2] -> weights .5, 1, .5 on softplus(-1), softplus(1), softplus(2)
    # group 1: labels [0, 1, 0], scores [0, 1, 0] -> doc 1 over docs 0 and 2, weight 1 each, diff 1 each
    weighted = 0.5 * softplus(-1) + 1.0 * softplus(1) + 0.5 * softplus(2) + 2 * softplus(-1)
    expected = weighted / (2.0 + 2.0)  # one normaliser for the whole batch, not a mean of group means
    assert expected == pytest.approx(0.789970, abs=1e-6)
    got = ranknet(T([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]]), T([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0]]))
    assert got.item() == pytest.approx(expected, abs=1e-6)


# ------------------------------------------ FIRST / rank_llm: one window's scores and teacher ranks


SCORES = torch.tensor([2.0, 0.5, 1.0])
RANKS = torch.tensor([1, 0, 2])  # the teacher puts passage 1 first, then 0, then 2


def test_first_ranknet_by_hand():
    # pairs (better, worse): (1, 0): 0.5 - 2.0; (1, 2): 0.5 - 1.0; (0, 2): 2.0 - 1.0; loss = softplus(-(s_i - s_j))
    l10, l12, l02 = softplus(1.5), softplus(0.5), softplus(-1.0)
    assert ranknet_loss(SCORES, RANKS).item() == pytest.approx((l10 + l12 + l02) / 3, rel=1e-6)
    # weighted: 1 / (r_i + r_j) with 1-based ranks 2, 1, 3 -> 1/3, 1/4, 1/5; still the mean over the 3 pairs
    expected = (l10 / 3 + l12 / 4 + l02 / 5) / 3
    assert ranknet_loss(SCORES, RANKS, weighted=True).item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.291103, abs=1e-6)


def test_self_sorted_targets_are_detached_and_follow_the_teacher():
    scores = SCORES.clone().requires_grad_(True)
    targets = self_sorted_targets(scores, RANKS)
    assert targets.tolist() == [1.0, 2.0, 0.5]  # rank 1 gets the 2nd largest score, rank 0 the largest...
    assert not targets.requires_grad


def test_listnet_by_hand():
    scores, targets = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([3.0, 1.0, 2.0])
    z_t = math.exp(3) + math.exp(1) + math.exp(2)
    p_true = [math.exp(3) / z_t, math.exp(1) / z_t, math.exp(2) / z_t]
    log_z = math.log(math.exp(1) + math.exp(2) + math.exp(3))
    expected = -sum(p * (s - log_z) for p, s in zip(p_true, [1.0, 2.0, 3.0]))
    assert listnet_loss(scores, targets).item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(1.828117, abs=1e-5)
    # through ranking_loss the targets are the model's own sorted scores, by teacher rank: [3, 1, 2] here
    assert ranking_loss(scores, torch.tensor([0, 2, 1]), "listnet").item() == pytest.approx(expected, rel=1e-6)


def test_lambdarank_by_hand():
    # two passages, the model prefers the wrong one: scores [0, 1], targets [1, 0]
    # sorted by prediction: targets [0, 1]; the only pair is (pos 2 over pos 1); gains (2^t - 1) / maxDCG = [0, 1]
    # NDCG-Loss2 weight: |1/log2(2) - 1/log2(3)| * |0 - 1|; loss = -weight * log2(sigmoid(0 - 1))
    w = abs(1 / math.log2(2) - 1 / math.log2(3))
    wrong = -w * math.log2(1 / (1 + math.exp(1)))
    assert lambdarank_loss(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0])).item() == pytest.approx(wrong, rel=1e-5)
    right = -w * math.log2(1 / (1 + math.exp(-1)))  # correctly ordered: the same pair, a positive margin
    assert lambdarank_loss(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0])).item() == pytest.approx(right, rel=1e-5)
    assert wrong == pytest.approx(0.699253, abs=1e-5) and right < wrong


def test_lambdarank_three_passages_weights_by_distance():
    # scores already sorted; targets [0, 2, 1]: pairs with a larger target at the first index: (1,0), (1,2), (2,0)
    t = [0.0, 2.0, 1.0]
    d = [math.log2(2), math.log2(3), math.log2(4)]
    max_dcg = (2 ** 2 - 1) / d[0] + (2 ** 1 - 1) / d[1]
    g = [(2 ** x - 1) / max_dcg for x in t]
    s = [3.0, 2.0, 1.0]

    def delta(i, j):
        k = abs(i - j)
        return abs(1 / math.log2(1 + k) - 1 / math.log2(2 + k))

    terms = [-delta(i, j) * abs(g[i] - g[j]) * math.log2(1 / (1 + math.exp(-(s[i] - s[j]))))
             for i, j in ((1, 0), (1, 2), (2, 0))]
    assert lambdarank_loss(torch.tensor(s), torch.tensor(t)).item() == pytest.approx(sum(terms) / 3, rel=1e-5)


def test_generation_loss_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(4.0), 0.0]])
    # targets 1 and 0: -(log 3/4 + log 4/5) / 2
    expected = -(math.log(3 / 4) + math.log(4 / 5)) / 2
    assert generation_loss(logits, torch.tensor([1, 0])).item() == pytest.approx(expected, rel=1e-6)


def test_ranking_loss_picks_the_loss_by_name():
    # default: weighted RankNet, the hand value of test_first_ranknet_by_hand
    expected = (softplus(1.5) / 3 + softplus(0.5) / 4 + softplus(-1.0) / 5) / 3
    assert ranking_loss(SCORES, RANKS).item() == pytest.approx(expected, rel=1e-6)
    assert ranking_loss(SCORES, RANKS, weighted=False).item() == pytest.approx(
        (softplus(1.5) + softplus(0.5) + softplus(-1.0)) / 3, rel=1e-6)
    with pytest.raises(ValueError, match="ranking loss must be one of"):
        ranking_loss(SCORES, RANKS, "listmle")


def test_generation_loss_ignores_masked_targets():
    logits = torch.tensor([[0.0, math.log(3.0)], [5.0, -5.0], [math.log(4.0), 0.0]])
    # the middle target is -100 (a prompt token): only targets 1 and 0 count
    expected = -(math.log(3 / 4) + math.log(4 / 5)) / 2
    assert generation_loss(logits, torch.tensor([1, -100, 0])).item() == pytest.approx(expected, rel=1e-6)


# ---------------------------------------------------- retrievers: CTL (contrastive), KL (DCA / RPG)


def test_ctl_loss_by_hand():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])  # keys: gold 1, gold 2, one hard negative
    tau = 0.5
    # row 0 logits: [2, 0, 1.2], label 0; row 1 logits: [0, 2, 1.6], label 1
    l0 = -(2 - math.log(math.exp(2) + math.exp(0) + math.exp(1.2)))
    l1 = -(2 - math.log(math.exp(0) + math.exp(2) + math.exp(1.6)))
    got = ctl_loss(q, k, torch.tensor([0, 1]), tau)
    assert got.item() == pytest.approx((l0 + l1) / 2, rel=1e-6)
    mask = torch.tensor([[False, True, False], [False, False, False]])  # key 1 excluded for row 0
    l0_masked = -(2 - math.log(math.exp(2) + math.exp(1.2)))
    assert ctl_loss(q, k, torch.tensor([0, 1]), tau, mask).item() == pytest.approx((l0_masked + l1) / 2, rel=1e-6)


def test_kl_by_hand():
    target, student = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 0.0]])
    p = [math.exp(x / 0.5) for x in (1.0, 0.0, 0.0)]
    p = [x / sum(p) for x in p]
    q = [math.exp(x / 2.0) for x in (0.0, 1.0, 0.0)]
    q = [x / sum(q) for x in q]
    want = sum(a * math.log(a / b) for a, b in zip(p, q))
    assert kl_divergence(target, student, 0.5, 2.0).item() == pytest.approx(want, rel=1e-6)
    two = torch.cat([target, target]), torch.cat([student, torch.zeros(1, 3)])
    q0 = [1 / 3] * 3
    want2 = (want + sum(a * math.log(a / b) for a, b in zip(p, q0))) / 2  # 'batchmean': mean over questions
    assert kl_divergence(*two, 0.5, 2.0).item() == pytest.approx(want2, rel=1e-6)
    t = torch.tensor([[0.3, 0.1]], requires_grad=True)
    kl_divergence(t, torch.zeros(1, 2, requires_grad=True)).backward()
    assert t.grad is None or torch.all(t.grad == 0)  # the target gets no gradient


# ----------------------------------------------------------------------------------------- InRanker


def test_distillation_loss_by_hand():
    student = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    teacher = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    # (1-0)^2 + (2-0)^2 + (0-1)^2 + (-1-1)^2 = 1 + 4 + 1 + 4 = 10, mean over 4 numbers
    assert distillation_loss(student, teacher).item() == pytest.approx(2.5)


def test_centring_by_hand():
    labels = np.array([[1.0, 3.0], [-2.0, 0.0], [5.0, 5.0]])
    np.testing.assert_allclose(center(labels), [[-1, 1], [-1, 1], [0, 0]])
    np.testing.assert_allclose(center(torch.tensor(labels)).numpy(), [[-1, 1], [-1, 1], [0, 0]])


def test_logit_mse_is_inranker_loss_on_the_centred_pairs_by_hand():
    # (s - m)^2 / 4 per pair: (1 - 3)^2 / 4 = 1, (-2 - 0)^2 / 4 = 1, (0.5 - 0.5)^2 / 4 = 0 -> mean 2/3
    assert logit_mse(T([1.0, -2.0, 0.5]), T([3.0, 0.0, 0.5])).item() == pytest.approx(2 / 3, abs=1e-6)
    # InRanker's own form: a teacher's raw [false, true] = [-1, 2] centres to [-1.5, 1.5] (margin 3); a student
    # logit 1 is the pair [-0.5, 0.5]; MSE over the two logits = (1^2 + 1^2) / 2 = 1 = (1 - 3)^2 / 4
    teacher_pair = center(T([[-1.0, 2.0]]))
    assert teacher_pair.tolist() == [[-1.5, 1.5]]
    assert distillation_loss(T([[-0.5, 0.5]]), teacher_pair).item() == pytest.approx(1.0)
    assert logit_mse(T([1.0]), T([3.0])).item() == pytest.approx(1.0)
    assert logit_mse(T([[1.0], [-2.0]]), T([3.0, 0.0])).item() == pytest.approx(1.0)  # any shape, flattened


def test_soft_point_ce_takes_the_teachers_probabilities_by_hand():
    # margins 0 and -log 3 are probabilities 0.5 and 0.25: BCE(0, 0.5) = log 2; BCE(2, 0.25) as in test_point_ce
    expected = (math.log(2) + 0.25 * softplus(-2) + 0.75 * softplus(2)) / 2
    assert expected == pytest.approx(1.160038, abs=1e-6)
    assert soft_point_ce(T([0.0, 2.0]), T([0.0, -math.log(3)])).item() == pytest.approx(expected, abs=1e-6)


def test_teacher_ranks_by_hand():
    # descending teacher scores, equal scores in list order: 3.0 (doc 1), 3.0 (doc 3), 0.2 (doc 0), -1.0 (doc 2)
    assert teacher_ranks(T([[0.2, 3.0, -1.0, 3.0]])).tolist() == [[2, 0, 3, 1]]
    assert teacher_ranks(T([1.0, 4.0, -2.0])).tolist() == [1, 0, 2]


# the teacher's scores of two groups: group 0 orders docs 1, 0, 2 (RANKS above), group 1 orders docs 1, 2, 0
GROUP_LOGITS = T([[2.0, 0.5, 1.0], [0.0, 1.0, 0.0]])
GROUP_TEACHER = T([[1.0, 4.0, -2.0], [0.0, 5.0, 1.0]])


def test_teacher_ranknet_by_hand():
    # group 0: as test_first_ranknet_by_hand; group 1: pairs (1 over 2) diff 1, (1 over 0) diff 1, (2 over 0) diff 0
    group0 = (softplus(1.5) + softplus(0.5) + softplus(-1.0)) / 3
    group1 = (2 * softplus(-1.0) + math.log(2)) / 3
    assert (group0 + group1) / 2 == pytest.approx(0.718070, abs=1e-6)  # the mean over groups
    assert teacher_ranknet(GROUP_LOGITS, GROUP_TEACHER).item() == pytest.approx((group0 + group1) / 2, rel=1e-6)


def test_teacher_weighted_ranknet_by_hand():
    # rank_llm's weights 1 / (r_i + r_j), 1-based ranks. group 0: 1/3, 1/4, 1/5 (as test_first_ranknet_by_hand);
    # group 1 (ranks doc0 3, doc1 1, doc2 2): (1, 2) 1/3, (1, 0) 1/4, (2, 0) 1/5
    group0 = (softplus(1.5) / 3 + softplus(0.5) / 4 + softplus(-1.0) / 5) / 3
    group1 = (softplus(-1.0) / 3 + softplus(-1.0) / 4 + math.log(2) / 5) / 3
    assert (group0, (group0 + group1) / 2) == pytest.approx((0.291103, 0.199112), abs=1e-6)
    assert teacher_weighted_ranknet(GROUP_LOGITS, GROUP_TEACHER).item() == pytest.approx((group0 + group1) / 2,
                                                                                         rel=1e-6)


def test_teacher_listnet_by_hand():
    # group 0: scores [1, 2, 3], teacher [3, 1, 2] (test_listnet_by_hand: 1.828118); group 1: a uniform teacher
    # over scores [0, 1, 0]: -(1/3) sum log_softmax = (c + (c - 1) + c) / 3 with c = log(2 + e)
    z_t = math.exp(3) + math.exp(1) + math.exp(2)
    log_z = math.log(math.exp(1) + math.exp(2) + math.exp(3))
    group0 = -sum(math.exp(t) / z_t * (s - log_z) for s, t in zip([1.0, 2.0, 3.0], [3.0, 1.0, 2.0]))
    c = math.log(2 + math.e)
    group1 = (3 * c - 1) / 3
    assert (group0 + group1) / 2 == pytest.approx(1.523115, abs=1e-6)
    logits, teacher = T([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]]), T([[3.0, 1.0, 2.0], [0.0, 0.0, 0.0]])
    assert teacher_listnet(logits, teacher).item() == pytest.approx((group0 + group1) / 2, rel=1e-6)
    assert teacher_listnet(logits, teacher).item() == pytest.approx(kd_term(logits, teacher).item(), rel=1e-6)


def test_teacher_losses_pull_towards_the_teachers_order():
    logits = T([[0.0, 0.0, 0.0]], requires_grad=True)
    teacher = T([[-1.0, 2.0, 0.0]])  # doc 1 first, then doc 2, then doc 0
    for loss in (teacher_ranknet, teacher_weighted_ranknet, teacher_listnet, logit_mse, soft_point_ce):
        (grad,) = torch.autograd.grad(loss(logits, teacher), logits)
        assert grad[0, 1] < 0 < grad[0, 0], loss.__name__  # descent raises the teacher's first, lowers its last


# -------------------------------------------------------------------------------------- the package


def test_loss_modules_import_only_torch_and_math():
    package = Path(rerank_lib.losses.__file__).parent
    modules = sorted(package.glob("*.py"))
    assert {p.stem for p in modules} >= {"pointwise", "pairwise", "listwise", "distillation", "contrastive"}
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = set() if node.level else {node.module.split(".")[0]}  # relative: a sibling loss module
            else:
                continue
            assert roots <= {"torch", "math", "__future__"}, f"{path.name} imports {roots}"
