"""Evaluation against hand-computed values, against pytrec_eval directly, and against scipy."""
from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

import pandas as pd
import pytest
import pytrec_eval
from scipy import stats

from rerank_lib.evaluation import (
    DEFAULT_MEASURES,
    Significance,
    adjust_p_values,
    compare_runs,
    evaluate,
    interpolate,
    measures_for,
    paired_test,
    per_query,
    reciprocal_rank_fusion,
)

# One query, graded qrels (0-3). d5 is relevant but never retrieved; d6 is retrieved but unjudged.
QRELS = {"q1": {"d1": 3, "d2": 0, "d3": 1, "d4": 2, "d5": 1}}
# Ranking: 1 d3 (grade 1), 2 d2 (0), 3 d1 (3), 4 d6 (unjudged = 0), 5 d4 (2)
RUN = {"q1": {"d3": 0.9, "d2": 0.8, "d1": 0.7, "d6": 0.6, "d4": 0.5}}
L2 = math.log2


def test_hand_computed_single_query():
    got = evaluate(RUN, QRELS, ["nDCG@3", "nDCG@10", "RR", "RR(rel=2)", "AP", "AP(rel=2)", "R@3", "R@5",
                                "R(rel=2)@3", "P@1", "P(rel=2)@1"])
    # nDCG (trec_eval: gain = grade, discount 1/log2(rank + 1)); ideal grades 3, 2, 1, 1, 0
    dcg3 = 1 / L2(2) + 0 / L2(3) + 3 / L2(4)  # = 2.5
    idcg3 = 3 / L2(2) + 2 / L2(3) + 1 / L2(4)  # = 4.7619
    assert got["nDCG@3"] == pytest.approx(dcg3 / idcg3)  # 0.52501
    dcg10 = dcg3 + 0 / L2(5) + 2 / L2(6)
    idcg10 = idcg3 + 1 / L2(5)
    assert got["nDCG@10"] == pytest.approx(dcg10 / idcg10)  # 0.63047
    # RR: first grade>=1 doc is d3 at rank 1; first grade>=2 doc is d1 at rank 3
    assert got["RR"] == pytest.approx(1.0)
    assert got["RR(rel=2)"] == pytest.approx(1 / 3)
    # AP, grade>=1: relevant d1 d3 d4 d5 (R = 4), hits at ranks 1, 3, 5 -> (1/1 + 2/3 + 3/5) / 4
    assert got["AP"] == pytest.approx((1 + 2 / 3 + 3 / 5) / 4)  # 0.56667
    # AP, grade>=2: relevant d1 d4 (R = 2), hits at ranks 3, 5 -> (1/3 + 2/5) / 2
    assert got["AP(rel=2)"] == pytest.approx((1 / 3 + 2 / 5) / 2)  # 0.36667
    assert got["R@3"] == pytest.approx(2 / 4)  # d3, d1 of 4
    assert got["R@5"] == pytest.approx(3 / 4)  # + d4
    assert got["R(rel=2)@3"] == pytest.approx(1 / 2)  # d1 of {d1, d4}
    assert got["P@1"] == pytest.approx(1.0)
    assert got["P(rel=2)@1"] == pytest.approx(0.0)  # d3 is grade 1 only


def test_missing_judged_query_counts_as_zero_and_unjudged_run_query_is_ignored():
    qrels = {**QRELS, "q2": {"x": 1}}
    run = {**RUN, "q9": {"x": 1.0}}  # q9 has no judgments: ignored
    alone = evaluate(RUN, QRELS, ["AP", "RR"])
    both = evaluate(run, qrels, ["AP", "RR"])
    assert both["AP"] == pytest.approx(alone["AP"] / 2)
    assert both["RR"] == pytest.approx(0.5)
    long = per_query(run, qrels, ["AP", "RR"])
    assert list(long.columns) == ["qid", "measure", "value"]
    assert set(long["qid"]) == {"q1", "q2"}
    assert long[(long.qid == "q2")]["value"].tolist() == [0.0, 0.0]
    wide = per_query(run, qrels, ["AP", "RR"], wide=True)
    assert list(wide.columns) == ["AP", "RR"] and list(wide.index) == ["q1", "q2"]
    assert evaluate({}, qrels, ["nDCG@10"]) == {"nDCG@10": 0.0}


def test_rr_at_10_cutoff_and_canonical_names():
    qrels = {"q": {"rel": 1}}
    run = {"q": {f"d{i:02d}": 100.0 - i for i in range(11)} | {"rel": 0.5}}  # rel at rank 12
    got = evaluate(run, qrels, ["RR@10", "RR", " nDCG@10"])
    assert list(got) == ["RR@10", "RR", "nDCG@10"]
    assert got["RR@10"] == 0.0 and got["RR"] == pytest.approx(1 / 12)
    with pytest.raises(ValueError, match="unknown measure"):
        evaluate(run, qrels, ["ndcg_cut_10"])


def test_rel2_convention_on_graded_qrels():
    qrels = {"q": {"a": 1, "b": 2, "c": 3}}
    run = {"q": {"a": 3.0, "b": 2.0, "c": 1.0}}
    got = evaluate(run, qrels, ["RR@10", "RR(rel=2)@10", "R(rel=2)@1", "R@1", "AP(rel=2)@100"])
    assert got["RR@10"] == 1.0  # a (grade 1) counts at rel>=1
    assert got["RR(rel=2)@10"] == pytest.approx(0.5)  # first grade>=2 is b at rank 2
    assert got["R@1"] == pytest.approx(1 / 3)
    assert got["R(rel=2)@1"] == 0.0
    assert got["AP(rel=2)@100"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert DEFAULT_MEASURES["trec-dl"] == ("nDCG@10", "RR(rel=2)@10", "R(rel=2)@100", "AP(rel=2)@100")
    assert measures_for("trec-dl-2019") == DEFAULT_MEASURES["trec-dl"]
    assert measures_for("scifact") == ("nDCG@10", "RR@10", "R@100", "AP")
    assert measures_for("some-beir-set") == DEFAULT_MEASURES["beir"]


def _random_run_and_qrels(seed=7, n_queries=25, n_docs=60):
    rng = random.Random(seed)
    run, qrels = {}, {}
    for q in range(n_queries):
        qid = str(100 + q)
        docs = [f"D{q}_{i}" for i in range(n_docs)]
        run[qid] = {d: rng.random() for d in docs}
        judged = rng.sample(docs, 20) + [f"D{q}_unretrieved"]
        qrels[qid] = {d: rng.choice([0, 0, 1, 2, 3]) for d in judged}
        qrels[qid][judged[0]] = 2  # at least one relevant document at both thresholds
    return run, qrels


def test_agrees_with_pytrec_eval_per_query():
    run, qrels = _random_run_and_qrels()
    ours = per_query(run, qrels, ["nDCG@10", "RR", "AP", "R@100", "P@5", "AP(rel=2)", "RR(rel=2)"], wide=True)
    ref = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recip_rank", "map", "recall.100", "P.5"}).evaluate(run)
    ref2 = pytrec_eval.RelevanceEvaluator(qrels, {"map", "recip_rank"}, relevance_level=2).evaluate(run)
    pairs = {"nDCG@10": "ndcg_cut_10", "RR": "recip_rank", "AP": "map", "R@100": "recall_100", "P@5": "P_5"}
    for qid in qrels:
        for ours_name, ref_name in pairs.items():
            assert ours.loc[qid, ours_name] == pytest.approx(ref[qid][ref_name], abs=1e-9), (qid, ours_name)
        assert ours.loc[qid, "AP(rel=2)"] == pytest.approx(ref2[qid]["map"], abs=1e-9)
        assert ours.loc[qid, "RR(rel=2)"] == pytest.approx(ref2[qid]["recip_rank"], abs=1e-9)
    agg = evaluate(run, qrels, ["nDCG@10"])
    assert agg["nDCG@10"] == pytest.approx(sum(r["ndcg_cut_10"] for r in ref.values()) / len(ref))


_DL19 = Path(__file__).resolve().parents[2] / "shared" / "data" / "msmarco-passage" / "trec-dl-2019"


@pytest.mark.skipif(not (_DL19 / "bm25_top100.trec").exists(), reason="shared TREC DL 2019 data not present")
def test_dl19_bm25_matches_published_anserini_number():
    from rerank_lib.data.trec import read_qrels, read_run

    got = evaluate(read_run(_DL19 / "bm25_top100.trec"), read_qrels(_DL19 / "qrels.txt"), measures_for("trec-dl-2019"))
    assert got["nDCG@10"] == pytest.approx(0.5058, abs=5e-5)  # Anserini BM25 (k1=0.9, b=0.4) on DL19


# ---------------------------------------------------------------------------------------------- significance

A = {"1": 0.2, "2": 0.4, "3": 0.1, "4": 0.9, "5": 0.5, "6": 0.3}
B = {"1": 0.3, "2": 0.6, "3": 0.1, "4": 0.8, "5": 0.9, "6": 0.5}


def test_paired_t_matches_scipy_and_accepts_all_input_shapes():
    res = paired_test(A, B, "AP")
    keys = sorted(A)
    assert res.p_value == pytest.approx(stats.ttest_rel([B[k] for k in keys], [A[k] for k in keys]).pvalue)
    assert res.n_queries == 6 and res.method == "t"
    assert res.mean_a == pytest.approx(sum(A.values()) / 6)
    assert res.delta == pytest.approx(res.mean_b - res.mean_a) and res.delta > 0
    long = pd.DataFrame({"qid": list(A), "measure": "AP", "value": list(A.values())})
    wide = pd.DataFrame({"AP": list(B.values())}, index=list(B))
    assert paired_test(long, wide, "AP").p_value == pytest.approx(res.p_value)


def test_paired_tests_on_hand_checked_case():
    a = {"1": 0.0, "2": 0.0, "3": 0.0, "4": 1.0}
    b = {"1": 1.0, "2": 1.0, "3": 1.0, "4": 0.0}  # differences +1 +1 +1 -1
    # t: mean 0.5, sd 1 (sum of squares 3 * 0.25 + 2.25 = 3, over n-1 = 3), t = 0.5 / (1 / 2) = 1, df 3
    t = paired_test(a, b, "P@1")
    assert t.p_value == pytest.approx(2 * stats.t.sf(1.0, 3)) and t.p_value == pytest.approx(0.3910022)
    # exact randomization over 16 sign patterns: |sum| >= 2 in 1 + 4 + 4 + 1 = 10 of them
    r = paired_test(a, b, "P@1", method="randomization")
    assert r.p_value == pytest.approx(10 / 16)


def test_identical_runs_give_p_one_and_alignment_uses_shared_queries():
    for method in ("t", "randomization"):
        res = paired_test(A, dict(A), "AP", method=method)
        assert res.delta == 0.0 and res.p_value == 1.0
    shifted = {"3": 0.1, "4": 0.9, "7": 1.0}
    assert paired_test(A, shifted, "AP").n_queries == 2
    assert math.isnan(paired_test({"1": 0.1}, {"1": 0.2}, "AP").p_value)


def test_randomization_monte_carlo_is_seeded_and_close_to_t():
    rng = random.Random(3)
    a = {str(i): rng.random() for i in range(60)}
    b = {q: min(1.0, v + rng.gauss(0.05, 0.2)) for q, v in a.items()}
    r1 = paired_test(a, b, "AP", method="randomization", n_resamples=4000, seed=1)
    r2 = paired_test(a, b, "AP", method="randomization", n_resamples=4000, seed=1)
    assert r1.p_value == r2.p_value
    assert abs(r1.p_value - paired_test(a, b, "AP").p_value) < 0.03


def _exact_sign_flip_p(diffs):
    """Two-sided p of the sign-flip test by enumerating every sign pattern in plain Python."""
    observed = abs(sum(diffs))
    sums = [abs(sum(s * d for s, d in zip(signs, diffs))) for signs in itertools.product((1, -1), repeat=len(diffs))]
    return sum(x >= observed - 1e-12 for x in sums) / len(sums)


def test_randomization_is_the_exact_permutation_test_on_four_queries():
    # values exact in binary; differences b - a = +1/8 +3/8 -2/8 +4/8 (sum 6/8)
    a = {"1": 0.5, "2": 0.25, "3": 0.75, "4": 0.0}
    b = {"1": 0.625, "2": 0.625, "3": 0.5, "4": 0.5}
    # flipping the subset S of the differences (in eighths 1, 3, -2, 4) gives the sum 6 - 2 sum(S), |.| >= 6 when
    # sum(S) <= 0 ({}, {-2}, {1, -2}) or sum(S) >= 6 ({3, 4}, {1, 3, 4}, all four): 6 of the 16 sign patterns
    exact = _exact_sign_flip_p([1 / 8, 3 / 8, -2 / 8, 4 / 8])
    assert exact == 6 / 16
    r = paired_test(a, b, "AP", method="randomization")  # 2^4 = 16 <= n_resamples: scipy enumerates them all
    assert r.p_value == pytest.approx(exact, abs=1e-12) and r.method == "randomization"
    assert r.delta == pytest.approx(6 / 8 / 4)


def test_randomization_monte_carlo_matches_the_enumeration():
    rng = random.Random(7)
    diffs = [round(rng.uniform(-0.5, 0.7), 3) for _ in range(12)]
    a = {str(i): 0.5 for i in range(12)}
    b = {str(i): 0.5 + d for i, d in enumerate(diffs)}
    exact = _exact_sign_flip_p([b[q] - a[q] for q in a])  # 4096 patterns
    r = paired_test(a, b, "AP", method="randomization", n_resamples=2000, seed=3)  # 2000 < 4096: Monte Carlo
    assert abs(r.p_value - exact) < 0.04  # about 3.5 standard errors of a 2000-draw estimate
    assert r.p_value == paired_test(a, b, "AP", method="randomization", n_resamples=2000, seed=3).p_value
    assert paired_test(a, b, "AP", method="randomization", n_resamples=4096).p_value == pytest.approx(exact)


def test_paired_test_takes_a_measure_only_long_frames_name():
    # LocalRQA's recall@4 is no ir-measures measure; long per-query frames that list it are enough
    pq_a = pd.DataFrame({"qid": ["1", "2", "3"], "measure": "recall@4", "value": [0.0, 1.0, 0.0]})
    pq_b = pd.DataFrame({"qid": ["1", "2", "3"], "measure": "recall@4", "value": [1.0, 1.0, 1.0]})
    res = paired_test(pq_a, pq_b, "recall@4")
    # differences 1, 0, 1: mean 2/3, sd sqrt(1/3), t = (2/3) / (sqrt(1/3) / sqrt(3)) = 2, df 2;
    # two-sided p of Student's t with 2 df: 1 - t / sqrt(t^2 + 2) = 1 - 2 / sqrt(6)
    assert res.p_value == pytest.approx(1 - 2 / math.sqrt(6)) and res.measure == "recall@4"
    assert (res.mean_a, res.mean_b, res.n_queries, res.method) == (pytest.approx(1 / 3), 1.0, 3, "t")
    with pytest.raises(ValueError, match="unknown measure"):  # a mapping cannot vouch for the name
        paired_test({"1": 0.0, "2": 1.0}, {"1": 1.0, "2": 1.0}, "recall@4")


def test_p_value_corrections():
    assert adjust_p_values([0.01, 0.04, 0.03], "bonferroni") == pytest.approx([0.03, 0.12, 0.09])
    # Holm: sorted 0.01 0.03 0.04 -> 3*0.01, 2*0.03, max(0.06, 1*0.04)
    assert adjust_p_values([0.01, 0.04, 0.03], "holm") == pytest.approx([0.03, 0.06, 0.06])
    assert adjust_p_values([0.5, 0.9], "bonferroni") == pytest.approx([1.0, 1.0])
    out = adjust_p_values([0.02, float("nan")], "holm")
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1])


def test_compare_runs_table():
    run, qrels = _random_run_and_qrels(n_queries=30)
    oracle = {q: {d: float(g) + 0.01 * s for d, s in docs.items() for g in [qrels[q].get(d, 0)]}
              for q, docs in run.items()}
    reversed_ = {q: {d: -s for d, s in docs.items()} for q, docs in run.items()}
    runs = {"bm25": run, "oracle": oracle, "reversed": reversed_}
    table = compare_runs(runs, qrels, ["nDCG@10", "AP"], baseline="bm25")
    assert list(table.index) == ["bm25", "oracle", "reversed"]
    assert {"nDCG@10", "nDCG@10 delta", "nDCG@10 p", "nDCG@10 sig", "AP"} <= set(table.columns)
    assert table.loc["bm25", "nDCG@10 sig"] == "base"
    assert table.loc["oracle", "nDCG@10 sig"] == "▲"
    assert table.loc["oracle", "nDCG@10"] == pytest.approx(evaluate(oracle, qrels, ["nDCG@10"])["nDCG@10"])
    pq = {n: per_query(r, qrels, ["AP"]) for n, r in runs.items()}
    assert table.loc["reversed", "AP p"] == pytest.approx(paired_test(pq["bm25"], pq["reversed"], "AP").p_value)
    bonf = compare_runs(runs, qrels, ["AP"], baseline="bm25", significance=Significance(correction="bonferroni"))
    assert bonf.loc["reversed", "AP p"] == pytest.approx(min(1.0, 2 * table.loc["reversed", "AP p"]))
    assert list(compare_runs(runs, qrels, ["AP"]).columns) == ["AP"]
    with pytest.raises(KeyError):
        compare_runs(runs, qrels, ["AP"], baseline="nope")


# ---------------------------------------------------------------------------------------------- fusion


def test_interpolate_minmax_by_hand():
    reranker = {"q": {"d1": 10.0, "d2": 0.0, "d3": 5.0}}  # minmax -> 1, 0, 0.5
    first = {"q": {"d1": 1.0, "d2": 3.0, "d4": 2.0}}  # minmax -> 0, 1, 0.5
    # missing docs take the run's minimum normalised score (0): d4 from the reranker, d3 from the first stage
    assert interpolate(reranker, first, 0.5)["q"] == pytest.approx({"d1": 0.5, "d2": 0.5, "d3": 0.25, "d4": 0.25})
    assert interpolate(reranker, first, 0.75)["q"] == pytest.approx({"d1": 0.75, "d2": 0.25, "d3": 0.375, "d4": 0.125})
    assert interpolate(reranker, first, 1.0)["q"] == pytest.approx({"d1": 1.0, "d2": 0.0, "d3": 0.5, "d4": 0.0})
    with pytest.raises(ValueError):
        interpolate(reranker, first, 1.5)


def test_interpolate_zscore_by_hand():
    a = {"q": {"x": 10.0, "y": 0.0, "z": 5.0}}  # mean 5, population sd sqrt(50/3)
    sd = math.sqrt(50 / 3)
    got = interpolate(a, {"q": {"x": 7.0}}, 1.0, normalise="zscore")["q"]
    assert got == pytest.approx({"x": 5 / sd, "y": -5 / sd, "z": 0.0})
    # constant scores normalise to 0; a query present in one run only is still fused
    got = interpolate({"q": {"x": 3.0, "y": 3.0}}, {"r": {"w": 1.0}}, 0.5, normalise="zscore")
    assert got == {"q": {"x": 0.0, "y": 0.0}, "r": {"w": 0.0}}


def test_reciprocal_rank_fusion_by_hand():
    r1 = {"q": {"d1": 3.0, "d2": 2.0, "d3": 1.0}}
    r2 = {"q": {"d3": 9.0, "d1": 8.0}}
    got = reciprocal_rank_fusion({"a": r1, "b": r2}, k=60)["q"]
    assert got == pytest.approx({"d1": 1 / 61 + 1 / 62, "d2": 1 / 62, "d3": 1 / 63 + 1 / 61})
    assert sorted(got, key=got.get, reverse=True) == ["d1", "d3", "d2"]
    assert reciprocal_rank_fusion([r1], k=0)["q"] == pytest.approx({"d1": 1.0, "d2": 0.5, "d3": 1 / 3})


def test_success_and_attempts_by_hand():
    from rerank_lib.evaluation import success_and_attempts

    run = {"q1": {"a": 3.0, "b": 2.0, "c": 1.0}, "q2": {"a": 1.0, "b": 2.0}}
    qrels = {"q1": {"b": 1}, "q2": {"c": 1}, "q3": {"a": 1}}  # q1: first relevant at rank 2; q2, q3: none
    assert success_and_attempts(run, qrels) == {"success_rate": 1 / 3, "avg_attempts": 2.0}
