import dataclasses
from dataclasses import dataclass

import pytest

from rerank_lib.experiment import EvalSet, Row, load_run, record_run, save_run
from rerank_lib.settings import resolve_profile
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
    with pytest.raises(TypeError, match="unknown setting.*'epoch'"):
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
    toy = EvalSet("toy", "test", {"1": "q one", "2": "q two"}, qrels, measures=["nDCG@10", "RR@10"])
    rec = record_run(good, toy, Row("p", "good", "smoke"), tmp_path, baselines={"bad": bad})
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
from rerank_lib.evaluation import evaluate, interpolate
from rerank_lib.experiment import (
    choose_interpolation_weight, dl_training_split, record_reranker, scifact_training_split,
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
    row = Row("p", "m", "smoke")
    rec = record_run(run, EvalSet("trec-dl-2019", "test", {q: dl19.queries[q] for q in run}, qrels), row, tmp_path,
                     training=dl20.provenance)
    assert rec.training_queries.startswith("trec-dl-2020/test") and rec.n_training_queries == len(dl20.provenance.query_ids)
    with pytest.raises(LeakError, match="trec-dl-2020"):
        record_run(run, EvalSet("trec-dl-2020", "test", leaky, qrels), row, tmp_path, training=dl20.provenance)


def test_interpolation_weight_is_chosen_on_dev_by_hand(tmp_path):
    # q1: reranker puts the relevant doc first, first stage last; q2 the reverse but with a small margin.
    reranker = {"q1": {"a": 1.0, "b": 0.0, "c": 0.5}, "q2": {"a": 0.4, "b": 0.5, "c": 0.0}}
    first = {"q1": {"a": 0.0, "b": 1.0, "c": 0.5}, "q2": {"a": 1.0, "b": 0.0, "c": 0.5}}
    qrels = {"q1": {"a": 1}, "q2": {"a": 1}}
    w, curve = choose_interpolation_weight(reranker, first, qrels, grid=[0.0, 0.5, 1.0])
    # w=0: q1 rank 3, q2 rank 1; w=0.5: q1 a=.5,b=.5,c=.5 (tie -> doc id desc: c,b,a -> rank 3), q2 a=.9 rank 1;
    # w=1: q1 rank 1, q2 b first -> rank 2.  nDCG@10: w=0 (0.5+1)/2, w=.5 same, w=1 (1+0.6309)/2 = 0.8155 best.
    assert w == 1.0 and curve.loc[curve.weight == 1.0, "nDCG@10"].item() == pytest.approx((1 + 1 / 1.5849625) / 2, abs=1e-4)
    # record_reranker: the row, then its +interp row (the reranker mixed with evalset.run, the first stage) with
    # the weight the dev slice (here the same two queries) chose on the default grid
    evalset = EvalSet("scifact", "test", {"q1": "", "q2": ""}, qrels, run=first)
    plain, interp = record_reranker(reranker, evalset, Row("p", "ce", "smoke", params={"lr": 1}), tmp_path,
                                    dev=evalset, dev_run=reranker)
    assert plain.method == "ce" and plain.params == {"lr": 1} and interp.method == "ce+interp"
    w = choose_interpolation_weight(reranker, first, qrels)[0]  # the default grid 0, 0.1, ..., 1
    assert interp.params["interpolation_weight"] == w and len(interp.params["dev_curve"]["weight"]) == 11
    assert interp.params["lr"] == 1
    assert interp.metrics["nDCG@10"] == pytest.approx(evaluate(interpolate(reranker, first, w), qrels, ["nDCG@10"])["nDCG@10"])
    assert len(record_reranker(reranker, evalset, Row("p", "ce", "smoke"), tmp_path)) == 1  # no dev run: one row


def test_evalset_candidates_carry_texts_and_first_stage_scores_in_trec_order():
    from rerank_lib.data import Document

    corpus = {d: Document(d, f"text {d}", title=f"T{d}") for d in "abc"}
    evalset = EvalSet("toy", "test", {"q1": "query one", "q2": "query two"}, {}, depth=2, corpus=corpus,
                      run={"q1": {"a": 0.5, "b": 2.0, "c": 0.5}})
    [cands] = list(evalset)  # q2 has no first-stage candidates
    # b first; a and c tie at 0.5: ties by descending doc id (trec_eval's order), so c before a; depth 2 drops a
    assert cands.query_id == "q1" and cands.query == "query one"
    assert [(c.doc_id, c.doc.text_for_model, c.score) for c in cands.candidates] == [("b", "Tb text b", 2.0),
                                                                                     ("c", "Tc text c", 0.5)]
    with pytest.raises(ValueError, match="toy/test: no first-stage run"):
        dataclasses.replace(evalset, run=None).candidates("q1")


def test_sample_ids_is_seeded_sorted_and_order_free():
    from rerank_lib.experiment import sample_ids

    ids = [f"q{i}" for i in range(50)]
    a, b = sample_ids(ids, 10, seed=13), sample_ids(list(reversed(ids)), 10, seed=13)
    assert a == b == sorted(a) and len(set(a)) == 10 and set(a) <= set(ids)
    assert sample_ids(ids, 10, seed=14) != a
    assert sample_ids(ids, None, seed=0) == sorted(ids) == sample_ids(ids, 60, seed=0)


def test_jsonable_and_pipeline_cache(tmp_path):
    from rerank_lib.experiment import jsonable, pipeline_cache

    assert jsonable({"r": (0, 30), "s": {"x"}, "p": tmp_path / "f"}) == {"r": [0, 30], "s": ["x"], "p": str(tmp_path / "f")}
    path = pipeline_cache(tmp_path, "smoke", "cross_encoder")
    assert path == tmp_path / "cache" / "smoke" / "cross_encoder" and path.is_dir()


def test_comparison_cells_mark_significance_and_interpolation():
    from types import SimpleNamespace

    from rerank_lib.experiment import comparison_cells

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
    # against the start: an interpolation row gets no mark (fusion's gain), a row that kept its start is the start
    fused = SimpleNamespace(significance={"start": {"nDCG@10": {"delta": 0.3, "p_value": 0.001}}},
                            params={"interpolation_weight": 0.4})
    assert comparison_cells(fused, ("start",)) == {"Δ vs start": "+0.300 (p=0.001)", "interp w (dev)": 0.4}
    kept = SimpleNamespace(significance={"start": {"nDCG@10": {"delta": 0.0, "p_value": 1.0}}},
                           params={"best_step": 0})
    assert comparison_cells(kept, ("start",)) == {"Δ vs start": "= start (dev kept step 0)"}
    trained = SimpleNamespace(significance=fused.significance, params={"best_step": 40})
    assert comparison_cells(trained, ("start",)) == {"Δ vs start": "+0.300▲ (p=0.001)"}


# ---- nested settings, dotted overrides, the settings-read record --------------------------------------------

from dataclasses import field

from rerank_lib import settings
from rerank_lib.training import TrainConfig


@dataclass(frozen=True)
class Stage(settings.Settings):
    train: TrainConfig = field(default_factory=lambda: TrainConfig(learning_rate=1e-4))
    data_size: int = 10


@dataclass(frozen=True)
class TwoStage(settings.Settings):
    profile: str = "default"
    stage1: Stage = field(default_factory=Stage)
    stage2: Stage = field(default_factory=Stage)


def test_dotted_overrides_reach_nested_train_settings():
    cfg = settings.resolve_profile(TwoStage(), {"smoke": {"stage1.train.max_steps": 3}}, "smoke",
                                   {"stage2.train.learning_rate": 2e-5, "stage1": {"data_size": 4}})
    assert cfg.stage1.train.max_steps == 3 and cfg.stage1.data_size == 4
    assert cfg.stage2.train.learning_rate == 2e-5 and cfg.stage1.train.learning_rate == 1e-4
    assert cfg.stage2.train.max_steps is None and cfg.profile == "smoke"
    assert "stage2.train.warmup_ratio" in settings.paths(cfg)
    with pytest.raises(TypeError, match="stage2.train.learning_rat"):
        settings.override(cfg, {"stage2.train.learning_rat": 1.0})


def test_settings_reads_are_recorded_but_snapshots_are_not(monkeypatch):
    reads: set = set()
    monkeypatch.setattr(settings, "_reads", reads)
    cfg = TwoStage()
    snap = settings.snapshot(cfg)
    assert snap["stage1"]["train"]["learning_rate"] == 1e-4 and not reads
    assert cfg.stage1.data_size == 10
    assert ("TwoStage", "stage1") in reads and ("Stage", "data_size") in reads
    assert ("Stage", "train") not in reads


# ---- train with dev selection: the untrained start is a candidate ---------------------------------------------

import torch

from rerank_lib.experiment import DevEvaluator, fingerprint, run_dir, train_with_dev_selection


def _regression(tmp_path, lr, steps=4):
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(2.0)  # the start already fits y = 2x exactly
        model.bias.zero_()
    xs = [torch.tensor([float(i)]) for i in range(1, 9)]
    data = [(x, 2 * x + (0.5 if i % 2 else -0.5)) for i, x in enumerate(xs)]  # noisy labels pull it away

    def loss(m, batch):
        x, y = batch
        return torch.nn.functional.mse_loss(m(x), y)

    def collate(items):
        return torch.stack([a for a, _ in items]), torch.stack([b for _, b in items])

    qrels = {"q": {"good": 1}}

    def produce(m):  # a one-query "run": the fitted model ranks the relevant doc first when its error is small
        err = float(((m(torch.tensor([[3.0]])) - 6.0) ** 2).item())
        return {"q": {"good": 1.0 - err, "bad": 0.5}}

    dev = DevEvaluator(produce, qrels, measures=["RR@10"], extra=lambda run: {"neg_err": run["q"]["good"] - 1.0})
    cfg = TrainConfig(output_dir=str(tmp_path / "run"), learning_rate=lr, max_steps=steps, per_device_batch_size=2,
                      eval_every_steps=2, metric_for_best="neg_err", save_every_steps=None, mixed_precision="no",
                      lr_scheduler="constant", weight_decay=0.0)
    return train_with_dev_selection(model, data, collate, loss, cfg, dev), dev


def test_the_start_wins_when_training_only_hurts_on_dev(tmp_path):
    sel, dev = _regression(tmp_path, lr=0.05)
    assert [row["step"] for row in sel.curve] == [0, 2, 4]
    assert sel.curve[0]["neg_err"] == pytest.approx(0.0, abs=1e-6) and sel.curve[0]["RR@10"] == 1.0
    assert sel.is_start and sel.step == 0 and sel.value == pytest.approx(0.0, abs=1e-6)
    assert sel.dev_run is dev.runs[0] and len(dev.runs) == 3
    state = torch.load(sel.model_dir / "model.pt")
    assert state["weight"].item() == pytest.approx(2.0) and state["bias"].item() == pytest.approx(0.0)
    assert "the untrained start" in sel.describe()


def test_run_dir_names_data_and_settings(private_cache):
    a = run_dir("p", "smoke", "m", data=[1, 2], settings={"lr": 1e-4})
    assert a == run_dir("p", "smoke", "m", data=[1, 2], settings={"lr": 1e-4})
    assert a != run_dir("p", "smoke", "m", data=[1, 3], settings={"lr": 1e-4})
    assert a.parent == private_cache / "runs" / "p" / "smoke" and a.name.startswith("m-")
    assert fingerprint({"b": 1, "a": (1, 2)}) == fingerprint({"a": [1, 2], "b": 1})


def test_profiles_may_set_none_and_printing_is_not_reading(monkeypatch):
    cfg = settings.resolve_profile(TwoStage(), {"paper": {"stage1.train.save_every_steps": None}}, "paper",
                                   {"stage1.train.learning_rate": None})
    assert cfg.stage1.train.save_every_steps is None and cfg.stage1.train.learning_rate == 1e-4
    reads: set = set()
    monkeypatch.setattr(settings, "_reads", reads)
    repr(cfg), cfg == TwoStage(), settings.override(cfg, {"stage2.data_size": 3})
    assert not reads


def test_test_sample_names_a_seeded_sample_and_keeps_the_judged_queries(shared_data):
    from rerank_lib.data import load_dataset
    from rerank_lib.experiment import sample_ids, test_sample

    full = load_dataset("scifact", "test", root=shared_data)
    judged = sorted(full.qrels)[:10]
    run = {q: {"d": 1.0} for q in judged + ["not-judged"]}
    ds, first_stage, split = test_sample("scifact", run, 4, seed=13, data_root=shared_data)
    assert split == "test-4q" and sorted(ds.queries) == sample_ids(judged, 4, 13) == sorted(first_stage)
    ds, first_stage, split = test_sample("scifact", run, None, seed=13, data_root=shared_data)
    assert split == "test" and sorted(ds.queries) == judged  # every judged query of the run: its own name


def test_sample_items_keeps_the_order_of_a_seeded_choice():
    from rerank_lib.experiment import sample_items

    items = list("abcdefgh")
    chosen = sample_items(items, 3, seed=13)
    assert len(chosen) == 3 and chosen == [x for x in items if x in chosen]  # input order kept
    assert chosen == sample_items(items, 3, seed=13) and sample_items(items, None, 13) == items


def test_seconds_per_step_are_the_median_of_the_training_logs_clock():
    """Selected.step_s: per logged interval (elapsed_s difference / steps between rows), the median, so the steps
    that also evaluated on dev (step 3 -> 4 here: 2 s) hardly move it; fewer than two rows: None."""
    from pathlib import Path

    from rerank_lib.experiment import Selected
    from rerank_lib.training import TrainResult

    def selected(history):
        return Selected(TrainResult(len(history), history, [], Path("final"), None), None, None, None, Path("final"))

    every_step = [{"step": s, "elapsed_s": t} for s, t in ((1, 1.0), (2, 1.5), (3, 2.0), (4, 4.0), (5, 4.5))]
    assert selected(every_step).step_s == pytest.approx(0.5)  # intervals 0.5, 0.5, 2.0, 0.5
    every_other = [{"step": s, "elapsed_s": t} for s, t in ((2, 1.0), (4, 2.0), (6, 3.4))]
    assert selected(every_other).step_s == pytest.approx(0.6)  # (0.5 + 0.7) / 2 per step
    assert selected(every_step[:1]).step_s is None
