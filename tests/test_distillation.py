"""Notebook 14's comparison (rerank_lib.recipes.distillation): six distillation losses as the cross-encoder's
distill_* variants, one step budget, records of the cross_encoder pipeline with their training cost and a paired
test against group CE + KD. Its losses by hand: test_losses.py; its settings: test_settings_validation.py."""
from types import SimpleNamespace

import pytest

from rerank_lib.recipes import cross_encoder, distillation


def test_the_six_losses_are_cross_encoder_variants_on_the_teacher_file():
    assert distillation.LOSSES == ("distill_logit_mse", "distill_group_ce_kd", "distill_soft_point_ce",
                                   "distill_ranknet", "distill_listnet", "distill_weighted_ranknet")
    assert {cross_encoder.VARIANTS[v][1] for v in distillation.LOSSES} == {"flag"}  # one file: the teacher margins
    assert all(cross_encoder.uses_teacher(v) for v in distillation.LOSSES)
    assert [v for v in distillation.LOSSES if cross_encoder.VARIANTS[v][2]] == ["distill_group_ce_kd"]  # KD term
    ce = distillation.cross_encoder_config(distillation.config("default"))
    # every loss over every seed (the cross_encoder profile's seeded_variants name notebook 11's rows only)
    assert ce.seeds == (13, 14) and all(len(cross_encoder.variant_seeds(ce, v)) == 2 for v in distillation.LOSSES)
    assert [cross_encoder.method_name(ce, v) for v in distillation.LOSSES[:2]] == [
        "ce-minilm-distill-logit-mse", "ce-minilm-distill-group-ce-kd"]
    # every loss the same pairs per optimizer step: 32 pairs, or 4 groups of 8
    sizes = {v: (cross_encoder.train_config(ce, v).per_device_batch_size, v) for v in distillation.LOSSES}
    assert {v: size for v, (size, _) in sizes.items()} == {
        "distill_logit_mse": 32, "distill_soft_point_ce": 32, "distill_group_ce_kd": 4, "distill_ranknet": 4,
        "distill_listnet": 4, "distill_weighted_ranknet": 4}


def _runs(steps: dict[str, list[int]]):
    """Stand-ins of train_variant's runs: only each seed's variant and step count."""
    return [[SimpleNamespace(variant=v, selected=SimpleNamespace(result=SimpleNamespace(global_step=s)))
             for s in seeds] for v, seeds in steps.items()]


def test_an_unequal_step_budget_is_refused_before_anything_is_recorded(tmp_path):
    cfg = distillation.config("smoke", losses=["distill_group_ce_kd", "distill_listnet"], steps=3)
    runs = _runs({"distill_group_ce_kd": [3, 3], "distill_listnet": [3, 2]})
    with pytest.raises(ValueError, match=r"the step budget is not equal \(3 steps each\).*distill_listnet': \[2, 3\]"):
        distillation.evaluate_losses(cfg, runs, None, [], tmp_path)
    assert not (tmp_path / "records").exists()


@pytest.mark.slow
def test_the_comparison_trains_six_losses_and_records_them_with_their_cost(tmp_path, shared_data, monkeypatch):
    """The shell's run of notebook 14 in the smoke profile (its inputs built on the way): six seeded records of the
    cross_encoder pipeline, each naming its training queries, its steps and seconds per step, with a paired test
    against group CE + KD (but the reference itself) and the comparison table read back from them."""
    from rerank_lib import train
    from rerank_lib.results import load_records

    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))
    assert train.main(["distillation", "--profile", "smoke", "--results-dir", str(tmp_path / "results"),
                       "--data-root", str(shared_data), "--evaluate"]) == 0
    out = tmp_path / "results" / "shell"
    records = {r.method: r for r in load_records(out, profile="smoke") if "distill" in r.method}
    rows = [f"ce-minilm-{v.replace('_', '-')}" for v in distillation.LOSSES]
    assert sorted(records) == sorted(rows + [f"{m}+interp" for m in rows])
    reference = "ce-minilm-distill-group-ce-kd"
    for method in rows:
        r = records[method]
        assert r.pipeline == "cross_encoder" and r.seeds == [13, 14] and len(r.per_seed["nDCG@10"]) == 2
        assert r.n_training_queries and "train" in r.training_queries
        assert r.params["steps"] == [2, 2] and all(s > 0 for s in r.params["step_s"])
        assert r.params["train"]["max_steps"] == 2 and r.params["variants"] == list(distillation.LOSSES)
        assert set(r.significance) == {"bm25", "start"}  # the test against the reference: loss_table's
    table = distillation.loss_table(distillation.config("smoke"), list(records.values()), out)
    assert list(table.index) == [m + (" (reference)" if m == reference else "") for m in rows]
    assert table.loc[reference + " (reference)", "Δ vs reference [95% CI]"] == ""
    assert table.loc["ce-minilm-distill-listnet", "Δ vs reference [95% CI]"].count("[") == 1
    assert set(table["steps"]) == {2} and (table["train s (steps x s/step)"] > 0).all()
