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
