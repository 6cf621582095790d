"""Rows trained over several training seeds: one record with the mean over seeds, each seed's value, per-query
means over seeds (which the paired tests use), the +interp weight chosen per seed; tables read mean ± sd."""
import csv
import json
import math

import pytest

from rerank_lib.data.errors import DataFormatError
from rerank_lib.evaluation import evaluate, interpolate
from rerank_lib.experiment import EvalSet, Row, interpolation_curves, record_reranker, record_run, results_table
from rerank_lib.results import build_tables, load_per_query, load_records, write_record
from rerank_lib.results.tables import CSV_COLUMNS

QRELS = {"q1": {"a": 1}, "q2": {"a": 1}, "q3": {"a": 1}}
BM25 = {q: {"a": 1.0, "b": 3.0, "c": 2.0} for q in QRELS}  # the relevant doc third everywhere: RR 1/3
SEED13 = {"q1": {"a": 3.0, "b": 2.0, "c": 1.0}, "q2": {"a": 2.0, "b": 3.0, "c": 1.0}, "q3": {"a": 1.0, "b": 3.0, "c": 2.0}}
SEED14 = {"q1": {"a": 2.0, "b": 3.0, "c": 1.0}, "q2": {"a": 3.0, "b": 2.0, "c": 1.0}, "q3": {"a": 3.0, "b": 2.0, "c": 1.0}}
# RR per query: seed 13 (1, 1/2, 1/3), seed 14 (1/2, 1, 1); nDCG@10 with one relevant doc: 1/log2(rank + 1)
RR13, RR14 = (1 + 1 / 2 + 1 / 3) / 3, (1 / 2 + 1 + 1) / 3
N2, N3 = 1 / math.log2(3), 1 / math.log2(4)


def toy_set(**more) -> EvalSet:
    return EvalSet("toy", "test", {q: "" for q in QRELS}, QRELS, measures=["nDCG@10", "RR@10"], run=BM25, **more)


def test_two_seeds_make_one_record_of_means(tmp_path):
    row = Row("p", "ce", "smoke", seed=13, seeds=(13, 14))
    rec = record_run([SEED13, SEED14], toy_set(), row, tmp_path, baselines={"bm25": BM25})
    assert rec.seeds == [13, 14] and rec.seed == 13
    assert rec.per_seed["RR@10"] == pytest.approx([RR13, RR14])
    assert rec.per_seed["nDCG@10"] == pytest.approx([(1 + N2 + N3) / 3, (N2 + 1 + 1) / 3])
    assert rec.metrics["RR@10"] == pytest.approx((RR13 + RR14) / 2) == pytest.approx(0.722222, abs=1e-6)
    assert rec.sd("RR@10") == pytest.approx(abs(RR13 - RR14) / math.sqrt(2)) == pytest.approx(0.157135, abs=1e-6)
    [loaded] = load_records(tmp_path, "smoke")
    pq = load_per_query(loaded, tmp_path)
    assert list(pq.columns) == ["qid", "measure", "value"]  # the single-run columns: every reader works on them
    rr = pq[pq.measure == "RR@10"].set_index("qid")["value"]
    assert rr.to_dict() == pytest.approx({"q1": 0.75, "q2": 0.75, "q3": (1 / 3 + 1) / 2})
    # the paired test on the per-query means: differences 5/12, 5/12, 1/3 against BM25's 1/3; mean 7/18, sd
    # sqrt(3)/36, t = (7/18) / (1/36) = 14 with 2 degrees of freedom: two-sided p = 1 - t / sqrt(t^2 + 2)
    test = rec.significance["bm25"]["RR@10"]
    assert test["delta"] == pytest.approx(7 / 18) and test["p_value"] == pytest.approx(1 - 14 / math.sqrt(198))


def test_a_baseline_given_per_seed_is_averaged_per_query(tmp_path):
    rec = record_run([SEED13, SEED14], toy_set(), Row("p", "ce", "smoke", seed=13, seeds=(13, 14)), tmp_path,
                     baselines={"start": [SEED13, SEED14], "bm25": BM25})
    assert rec.significance["start"]["RR@10"]["delta"] == 0 and rec.significance["start"]["RR@10"]["p_value"] == 1.0


def test_the_interpolation_weight_is_chosen_per_seed_on_its_own_dev_run(tmp_path):
    dev = EvalSet("toy", "dev", {"d1": ""}, {"d1": {"a": 1}}, measures=["nDCG@10", "RR@10"], run={"d1": {"a": 1.0, "b": 0.0}})
    # seed 13's dev run agrees with the first stage: every weight ties at 1.0, the larger wins (1.0); seed 14's
    # reverses it: mixed a = 1 - w, b = w, so `a` stays first up to w = 0.4 (0.5 ties, then doc id order puts b first)
    dev_runs = [{"d1": {"a": 1.0, "b": 0.0}}, {"d1": {"a": 0.0, "b": 1.0}}]
    plain, interp = record_reranker([SEED13, SEED14], toy_set(), Row("p", "ce", "smoke", params={"lr": 1}, seed=13, seeds=(13, 14)),
                                    tmp_path, dev=dev, dev_run=dev_runs)
    assert plain.params == {"lr": 1} and interp.method == "ce+interp" and interp.params["lr"] == 1
    assert interp.params["interpolation_weights"] == [1.0, 0.4] and interp.params["interpolation_weight"] == pytest.approx(0.7)
    assert [len(curve["weight"]) for curve in interp.params["dev_curves"]] == [11, 11]
    # seed 13 at w=1 is its own run (RR13); seed 14 at w=0.4 on min-max scores: q1 a=.2 b=1 c=.3 (a third),
    # q2 and q3 a=.4 b=.8 c=.3 (a second): RR (1/3 + 1/2 + 1/2) / 3
    assert interp.per_seed["RR@10"] == pytest.approx([RR13, (1 / 3 + 1 / 2 + 1 / 2) / 3])
    assert interp.per_seed["nDCG@10"][1] == pytest.approx(
        evaluate(interpolate(SEED14, BM25, 0.4), QRELS, ["nDCG@10"])["nDCG@10"])
    curves = interpolation_curves(interp)  # the notebook's view: a row per measure and seed, a column per weight
    assert list(curves.index) == ["nDCG@10 seed 13", "nDCG@10 seed 14"] and list(curves.columns)[:2] == [0.0, 0.1]
    assert curves.loc["nDCG@10 seed 13"].tolist() == [1.0] * 11
    assert curves.loc["nDCG@10 seed 14"].tolist() == pytest.approx([1.0] * 5 + [N2] * 6)  # b first from w = 0.5
    single = record_reranker(SEED13, toy_set(), Row("p", "one", "smoke", seed=13), tmp_path, dev=dev,
                             dev_run=dev_runs[1])[1]
    assert single.params["interpolation_weight"] == 0.4 and list(interpolation_curves(single).index) == ["nDCG@10"]


def test_runs_and_seeds_must_match(tmp_path):
    with pytest.raises(ValueError, match="one training seed each"):
        record_run([SEED13, SEED14], toy_set(), Row("p", "ce", "smoke", seed=13), tmp_path)
    with pytest.raises(ValueError, match="2 test runs but 1 dev runs"):
        record_reranker([SEED13, SEED14], toy_set(), Row("p", "ce", "smoke", seed=13, seeds=(13, 14)), tmp_path,
                        dev=toy_set(), dev_run=[SEED13])


def _seeded_file(tmp_path):
    record_run([SEED13, SEED14], toy_set(), Row("p", "ce", "smoke", seed=13, seeds=(13, 14)), tmp_path,
               baselines={"bm25": BM25})
    path = tmp_path / "records" / "smoke" / "p__ce__toy_test.json"
    return path, json.loads(path.read_text())


@pytest.mark.parametrize("field, value, problem", [
    ("seeds", [13], "two or more distinct seeds"),
    ("seeds", [13, 13], "two or more distinct seeds"),
    ("seeds", ["13", 14], "integer training seeds"),
    ("seed", 14, "its first seed 13"),
    ("per_seed", {"RR@10": [0.5]}, "expected 2 numbers"),
    ("per_seed", {"RR@10": [0.5, 0.5]}, "is not metrics.RR@10"),
    ("per_seed", {"P@5": [0.5, 0.5]}, "not in `metrics`"),
])
def test_bad_seed_fields_name_file_and_field(tmp_path, field, value, problem):
    path, data = _seeded_file(tmp_path)
    data[field] = value
    path.write_text(json.dumps(data))
    with pytest.raises(DataFormatError, match=problem) as err:
        load_records(tmp_path, "smoke")
    assert str(path) in str(err.value) and f"'{field if field != 'per_seed' else 'per_seed.' + next(iter(value))}'" in str(err.value)


def test_single_runs_keep_their_files_and_values_without_seed_fields(tmp_path):
    path, data = _seeded_file(tmp_path)
    data.pop("seeds")
    path.write_text(json.dumps(data))
    with pytest.raises(DataFormatError, match="without `seeds`"):
        load_records(tmp_path, "smoke")
    path.unlink()
    single = record_run(SEED13, toy_set(), Row("p", "one", "smoke", seed=13), tmp_path)
    saved = json.loads((tmp_path / "records" / "smoke" / "p__one__toy_test.json").read_text())
    assert "seeds" not in saved and "per_seed" not in saved and single.seeds == [] and single.sd("RR@10") is None
    assert single.metrics["RR@10"] == pytest.approx(RR13)


def test_tables_show_mean_and_sd_over_seeds(tmp_path):
    record_run(BM25, toy_set(), Row("p", "bm25", "default", seed=13), tmp_path)
    paths = build_tables(tmp_path)
    with open(paths["csv"], newline="") as handle:
        assert next(csv.reader(handle)) == CSV_COLUMNS  # no seeded record: the tables as they were
    assert "seeds" not in paths["md"].read_text()
    rec = record_run([SEED13, SEED14], toy_set(), Row("p", "ce", "default", seed=13, seeds=(13, 14)), tmp_path,
                     baselines={"bm25": BM25})
    paths = build_tables(tmp_path)
    md = paths["md"].read_text()
    row = [line for line in md.splitlines() if line.startswith("| p | ce (2 seeds) |")][0]
    assert "0.722 ± 0.157" in row and "(N seeds)" in md
    with open(paths["csv"], newline="") as handle:
        table = list(csv.DictReader(handle))
    ce = [r for r in table if r["method"] == "ce" and r["measure"] == "RR@10"][0]
    bm25 = [r for r in table if r["method"] == "bm25" and r["measure"] == "RR@10"][0]
    assert ce["seeds"] == "13 14" and float(ce["sd"]) == pytest.approx(0.157135, abs=1e-6)
    assert bm25["seeds"] == "" and bm25["sd"] == ""
    tex = paths["tex"].read_text()
    assert r"ce (2 seeds)" in tex and r"0.722 $\pm$ 0.157" in tex
    shown = results_table([rec], measures=("RR@10",))
    assert shown.loc["ce", "RR@10"] == 0.7222 and shown.loc["ce", "RR@10 sd"] == 0.1571 and shown.loc["ce", "seeds"] == 2
    write_record(rec, tmp_path)  # a seeded record reads back as written
    assert [r.per_seed for r in load_records(tmp_path) if r.method == "ce"] == [rec.per_seed]


# ---- the setting: one config per training seed, refused where a pipeline does not train per seed ----------------


def test_seeded_configs_set_every_stage_seed_and_keep_the_split_seed():
    from rerank_lib.recipes import cross_encoder

    cfg = cross_encoder.config("default", seed=7, seeds=[13, 14, 15])
    assert cfg.seeds == (13, 14, 15) and cfg.train.seed == 7  # `seed`: the data split (and a single run)
    seeded = cross_encoder.RECIPE.seeded(cfg)
    assert [c.train.seed for c in seeded] == [13, 14, 15] and {c.seed for c in seeded} == {7}
    one = cross_encoder.config("default", seed=7, seeds=[])
    assert cross_encoder.RECIPE.seeded(one) == [one]
    assert cross_encoder.config("smoke").seeds == (13, 14)  # the test path trains two seeds
    with pytest.raises(ValueError, match="two or more distinct"):
        cross_encoder.config("default", seeds=[13])
    with pytest.raises(ValueError, match="two or more distinct"):
        cross_encoder.config("default", seeds=[13, 13])


def test_a_pipeline_without_seeded_training_refuses_seeds():
    from rerank_lib.recipes import first_stage

    with pytest.raises(ValueError, match="seeds: the first_stage pipeline trains one seed per run"):
        first_stage.RECIPE.config("default", seeds=[13, 14])


def test_the_train_command_takes_seeds_where_the_pipeline_trains_them():
    from rerank_lib import recipes, train

    def resolve(argv):
        return train.resolve(train.build_parser().parse_args(argv))[1]

    assert resolve(["cross_encoder", "--profile", "smoke", "--seeds", "13", "14", "15"]).seeds == (13, 14, 15)
    assert resolve(["cross_encoder", "--profile", "smoke", "--set", "seeds=[]"]).seeds == ()
    assert "seeds" in train.flag_settings(recipes.get("cross_encoder"))
    assert "seeds" in train.flag_settings(recipes.get("inranker"))
    assert resolve(["inranker", "--profile", "smoke", "--seeds", "13", "14"]).seeds == (13, 14)
    assert "seeds" not in train.flag_settings(recipes.get("hopweaver"))
    inranker = recipes.get("inranker")  # one seed everywhere (the default's seeds go to the smaller margins)
    assert [inranker.config(p).seeds for p in ("default", "smoke", "paper", "paper-tiny")] == [(), (), (), ()]
