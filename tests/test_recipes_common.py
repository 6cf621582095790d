from dataclasses import dataclass

import pytest

from rerank_lib.recipes.common import load_run, record_run, resolve_profile, save_run
from rerank_lib.results import load_per_query, load_records


@dataclass(frozen=True)
class Cfg:
    profile: str = "default"
    lr: float = 1e-5
    epochs: int = 1


PROFILES = {"smoke": {"epochs": 0}, "paper": {"lr": 7e-5}}


def test_profile_then_overrides():
    assert resolve_profile(Cfg(), PROFILES, "smoke", {}) == Cfg(profile="smoke", epochs=0)
    assert resolve_profile(Cfg(), PROFILES, "paper", {"epochs": 3}) == Cfg(profile="paper", lr=7e-5, epochs=3)
    assert resolve_profile(Cfg(), PROFILES, "default", {"lr": None}).lr == 1e-5  # None = keep the profile's value


def test_profile_errors_are_loud():
    with pytest.raises(TypeError, match="unknown parameter.*'epoch'"):
        resolve_profile(Cfg(), PROFILES, "default", {"epoch": 2})
    with pytest.raises(ValueError, match="profile"):
        resolve_profile(Cfg(), PROFILES, "large", {})


def test_record_run_writes_metrics_significance_and_per_query(tmp_path):
    qrels = {"1": {"a": 1}, "2": {"b": 1}}
    good = {"1": {"a": 2.0, "x": 1.0}, "2": {"b": 2.0, "y": 1.0}}
    bad = {"1": {"a": 1.0, "x": 2.0}, "2": {"b": 1.0, "y": 2.0}}
    save_run(good, tmp_path, "smoke", "toy", "test", "good")
    assert load_run(tmp_path, "smoke", "toy", "test", "good") == good
    with pytest.raises(FileNotFoundError, match="01_first_stage"):
        load_run(tmp_path, "smoke", "toy", "test", "missing")
    rec = record_run(good, qrels, pipeline="p", method="good", dataset="toy", split="test", profile="smoke",
                     results_dir=tmp_path, baselines={"bad": bad}, measures=["nDCG@10", "RR@10"])
    assert rec.metrics == {"nDCG@10": 1.0, "RR@10": 1.0}
    # bad ranks the relevant doc 2nd in both queries: RR 0.5 each, so delta = +0.5 on every query
    assert rec.significance["bad"]["RR@10"]["delta"] == pytest.approx(0.5)
    [loaded] = load_records(tmp_path, profile="smoke")
    assert loaded.metrics == rec.metrics
    pq = load_per_query(loaded, tmp_path)
    assert len(pq) == 4  # 2 queries x 2 measures


def test_first_stage_and_teacher_profiles():
    from rerank_lib.recipes import first_stage, teacher

    assert first_stage.config("smoke").max_queries == 10 and first_stage.config("default").max_queries is None
    paper = first_stage.config("paper")
    assert paper.dense_model == "intfloat/e5-base-v2" and paper.query_prefix == "query: "
    assert first_stage.config("default", dense_max_length=128).dense_max_length == 128
    assert teacher.config("paper").teachers[0] == "bge-reranker-v2-m3"
    assert teacher.config("default", teachers=["minilm-l6"]).teachers == ("minilm-l6",)
    with pytest.raises(KeyError, match="unknown teacher"):
        teacher.config("default", teachers=["gpt-9"])


# ---- training splits, the leak guard inside record_run, interpolation rows ----------------------------------

from rerank_lib.data import LeakError
from rerank_lib.recipes.common import (
    choose_interpolation_weight, dl_training_split, record_interpolation, scifact_training_split,
)


def test_scifact_training_split_is_clean_and_seeded(shared_data):
    split = scifact_training_split(shared_data, seed=13)
    assert not set(split.train.queries) & set(split.dev.queries)
    assert len(split.dev.queries) == 81 and len(split.train.queries) + len(split.dev.queries) == 807 - 0  # judged, minus 2 repeats
    assert {"871", "1291"}.isdisjoint(split.provenance.query_ids)  # the two test claims repeated in train
    again = scifact_training_split(shared_data, seed=13)
    assert sorted(again.dev.queries) == sorted(split.dev.queries)
    assert "scifact/train" in split.describe()
    used = split.used(sorted(split.train.queries)[:24], sorted(split.dev.queries)[:12])
    assert len(used.query_ids) == 36 and used.describe() == "scifact/train sample (36 q)"
    assert used.query_ids <= split.provenance.query_ids
    with pytest.raises(ValueError, match="not in this split"):
        split.used(["not-a-query"], [])


def test_record_run_refuses_a_leaky_evaluation_on_real_data(shared_data, tmp_path):
    from rerank_lib.data import load_dataset
    dl20 = dl_training_split("trec-dl-2020", shared_data)
    dl19 = load_dataset("trec-dl-2019", "test", root=shared_data)
    leaky = load_dataset("trec-dl-2020", "test", root=shared_data).judged_queries()
    run = {q: {d: 1.0 for d in list(dl19.qrels[q])[:3]} for q in list(dl19.qrels)[:5]}
    qrels = {q: dl19.qrels[q] for q in run}
    rec = record_run(run, qrels, pipeline="p", method="m", dataset="trec-dl-2019", split="test", profile="smoke",
                     results_dir=tmp_path, training=dl20.provenance, eval_queries={q: dl19.queries[q] for q in run})
    assert rec.training_queries.startswith("trec-dl-2020/test") and rec.n_training_queries == len(dl20.provenance.query_ids)
    with pytest.raises(LeakError, match="trec-dl-2020"):
        record_run(run, qrels, pipeline="p", method="m", dataset="trec-dl-2020", split="test", profile="smoke",
                   results_dir=tmp_path, training=dl20.provenance, eval_queries=leaky)
    with pytest.raises(TypeError, match="eval_queries"):
        record_run(run, qrels, pipeline="p", method="m", dataset="trec-dl-2019", split="test", profile="smoke",
                   results_dir=tmp_path, training=dl20.provenance)


def test_interpolation_weight_is_chosen_on_dev_by_hand(tmp_path):
    # q1: reranker puts the relevant doc first, first stage last; q2 the reverse but with a small margin.
    reranker = {"q1": {"a": 1.0, "b": 0.0, "c": 0.5}, "q2": {"a": 0.4, "b": 0.5, "c": 0.0}}
    first = {"q1": {"a": 0.0, "b": 1.0, "c": 0.5}, "q2": {"a": 1.0, "b": 0.0, "c": 0.5}}
    qrels = {"q1": {"a": 1}, "q2": {"a": 1}}
    w, curve = choose_interpolation_weight(reranker, first, qrels, grid=[0.0, 0.5, 1.0])
    # w=0: q1 rank 3, q2 rank 1; w=0.5: q1 a=.5,b=.5,c=.5 (tie -> doc id desc: c,b,a -> rank 3), q2 a=.9 rank 1;
    # w=1: q1 rank 1, q2 b first -> rank 2.  nDCG@10: w=0 (0.5+1)/2, w=.5 same, w=1 (1+0.6309)/2 = 0.8155 best.
    assert w == 1.0 and curve.loc[curve.weight == 1.0, "nDCG@10"].item() == pytest.approx((1 + 1 / 1.5849625) / 2, abs=1e-4)
    rec = record_interpolation(reranker, first, 0.5, qrels, method="ce", pipeline="p", dataset="scifact", split="test",
                               profile="smoke", results_dir=tmp_path)
    assert rec.method == "ce+interp" and rec.params["interpolation_weight"] == 0.5


def test_sample_ids_is_seeded_sorted_and_order_free():
    from rerank_lib.recipes.common import sample_ids

    ids = [f"q{i}" for i in range(50)]
    a, b = sample_ids(ids, 10, seed=13), sample_ids(list(reversed(ids)), 10, seed=13)
    assert a == b == sorted(a) and len(set(a)) == 10 and set(a) <= set(ids)
    assert sample_ids(ids, 10, seed=14) != a
    assert sample_ids(ids, None, seed=0) == sorted(ids) == sample_ids(ids, 60, seed=0)


def test_jsonable_and_pipeline_cache(tmp_path):
    from rerank_lib.recipes.common import jsonable, pipeline_cache

    assert jsonable({"r": (0, 30), "s": {"x"}, "p": tmp_path / "f"}) == {"r": [0, 30], "s": ["x"], "p": str(tmp_path / "f")}
    path = pipeline_cache(tmp_path, "smoke", "cross_encoder")
    assert path == tmp_path / "cache" / "smoke" / "cross_encoder" and path.is_dir()


def test_comparison_cells_mark_significance_and_interpolation():
    from types import SimpleNamespace

    from rerank_lib.recipes.common import comparison_cells

    record = SimpleNamespace(
        significance={"bm25": {"nDCG@10": {"delta": 0.0314, "p_value": 0.004}},
                      "start": {"nDCG@10": {"delta": -0.02, "p_value": 0.3}}},
        params={"interpolation_weight": 0.7})
    assert comparison_cells(record) == {"Δ vs bm25": "+0.031▲ (p=0.004)", "Δ vs start": "-0.020 (p=0.300)",
                                        "interp w (dev)": 0.7}
    # a baseline without a test is left out; a stricter alpha drops the mark; the label is the caller's
    assert comparison_cells(record, ("bm25", "teacher"), alpha=0.001, label="Δ nDCG@10 vs {base}") == {
        "Δ nDCG@10 vs bm25": "+0.031 (p=0.004)", "interp w (dev)": 0.7}
    assert comparison_cells(SimpleNamespace(significance=None, params=None)) == {}
