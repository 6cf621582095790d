"""Records, tables and figures: round trip, clear errors, expected table rows, atomic writes."""
from __future__ import annotations

import csv
import json
import os

import pandas as pd
import pytest

from rerank_lib.data.errors import DataFormatError
from rerank_lib.results import (
    Record,
    build_tables,
    load_per_query,
    load_records,
    make_record,
    plot_curve,
    plot_metric_bars,
    write_record,
)
from rerank_lib.results import figures as figures_module

FIXED = {"git_commit": "0123456789abcdef0123456789abcdef01234567", "versions": {"torch": "2.4.0"},
         "hardware": {"cpu": "test", "cpu_cores": 2, "gpu": None, "torch_threads": None},
         "created": "2025-01-01T00:00:00+00:00"}


def _three_records() -> list[Record]:
    bm25 = make_record("first_stage", "bm25", "scifact", "test", {"nDCG@10": 0.6647, "RR@10": 0.63},
                       first_stage="bm25", depth=100, wall_s=3.2, **FIXED,
                       reference={"nDCG@10": {"value": 0.665, "source": "BEIR paper, Table 2"}})
    monot5 = make_record("inranker", "monot5-base", "scifact", "test", {"nDCG@10": 0.7376, "RR@10": 0.70},
                         model="castorini/monot5-base-msmarco", first_stage="bm25", depth=100, wall_s=412.0,
                         training_queries="msmarco train (532761 q)", **FIXED,
                         reference={"nDCG@10": {"value": 0.7376, "source": "InRanker, Table 1"}},
                         significance={"first_stage/bm25": {"nDCG@10": {"delta": 0.073, "p_value": 0.001},
                                                            "RR@10": {"delta": 0.07, "p_value": 0.2}}})
    dl = make_record("rankllm", "rank_zephyr", "trec-dl-2019", "test", {"nDCG@10": 0.7412},
                     first_stage="bm25", depth=100, wall_s=7300.0, training_queries="none (zero-shot)", **FIXED)
    return [bm25, monot5, dl]


def test_make_record_fills_provenance():
    rec = make_record("p", "m", "scifact", "test", {"nDCG@10": 0.5})
    assert rec.git_commit == "unknown" or len(rec.git_commit.split("-")[0]) == 40
    assert {"torch", "transformers", "accelerate", "ir_measures", "bm25s", "sentence_transformers",
            "rerank_lib"} <= set(rec.versions)
    assert rec.hardware["cpu_cores"] >= 1 and "gpu" in rec.hardware
    assert rec.created.startswith("20")


def test_round_trip(tmp_path):
    rec = _three_records()[1]
    rec.params = {"lr": 3e-5, "layers": [1, 2]}
    rec.seed = 13
    path = write_record(rec, tmp_path)
    assert path == tmp_path / "records" / "default" / "inranker__monot5-base__scifact_test.json"
    (loaded,) = load_records(tmp_path)
    assert loaded == rec
    assert load_records(tmp_path, profile="smoke") == []


def test_names_are_sanitised_and_nan_written_as_null(tmp_path):
    rec = make_record("a/b", "x y:z", "beir/scifact", "test", {"AP": float("nan")}, profile="smoke", **FIXED)
    path = write_record(rec, tmp_path)
    assert path.name == "a-b__x-y-z__beir-scifact_test.json" and path.parent.name == "smoke"
    assert json.loads(path.read_text())["metrics"] == {"AP": None}


def test_per_query_file_is_linked(tmp_path):
    rec = _three_records()[0]
    frame = pd.DataFrame({"qid": ["1", "2"], "measure": ["nDCG@10"] * 2, "value": [0.5, 1.0]})
    write_record(rec, tmp_path, per_query=frame)
    (loaded,) = load_records(tmp_path)
    assert loaded.per_query == "records/default/first_stage__bm25__scifact_test.per_query.csv"
    pd.testing.assert_frame_equal(load_per_query(loaded, tmp_path), frame)


@pytest.mark.parametrize("field, value, expected", [
    ("metrics", {"nDCG@10": "high"}, "metrics.nDCG@10"),
    ("depth", "100", "depth"),
    ("reference", {"nDCG@10": {"source": "x"}}, "reference.nDCG@10"),
    ("surprise", 1, "surprise"),
])
def test_malformed_record_names_file_and_field(tmp_path, field, value, expected):
    write_record(_three_records()[0], tmp_path)
    path = tmp_path / "records" / "default" / "first_stage__bm25__scifact_test.json"
    data = json.loads(path.read_text())
    data[field] = value
    path.write_text(json.dumps(data))
    with pytest.raises(DataFormatError) as err:
        load_records(tmp_path)
    assert str(path) in str(err.value) and f"'{expected}'" in str(err.value)


def test_missing_field_and_bad_json_are_named(tmp_path):
    folder = tmp_path / "records" / "default"
    folder.mkdir(parents=True)
    (folder / "a.json").write_text(json.dumps({"pipeline": "p", "method": "m", "dataset": "d", "split": "s"}))
    with pytest.raises(DataFormatError, match=r"a\.json, field 'metrics': missing"):
        load_records(tmp_path)
    (folder / "a.json").write_text("{not json")
    with pytest.raises(DataFormatError, match=r"a\.json, line 1: not valid JSON"):
        load_records(tmp_path)


def test_build_tables(tmp_path):
    for rec in _three_records():
        write_record(rec, tmp_path)
    paths = build_tables(tmp_path)
    assert set(paths) == {"md", "csv", "tex", "ledger"} and all(p.exists() for p in paths.values())

    md = paths["md"].read_text()
    scifact = md.split("## scifact / test")[1].split("## ")[0]
    trec = md.split("## trec-dl-2019 / test")[1]
    assert md.index("## scifact / test") < md.index("## trec-dl-2019 / test")
    header = [line for line in scifact.splitlines() if line.startswith("| pipeline")][0]
    assert "nDCG@10 (published)" in header and "RR@10 (published)" not in header
    assert "training queries" in header and "first stage" in header and "wall time" in header
    rows = [line for line in scifact.splitlines() if line.startswith("| ") and not line.startswith(("| pipeline", "| ---"))]
    assert [r.split("|")[2].strip() for r in rows] == ["bm25", "monot5-base"]  # pipeline order
    assert "| 0.665 | 0.665 |" in rows[0] and "3.2 s" in rows[0]  # 0.6647 -> 0.665; reference 0.665
    assert "**0.738**▲ | 0.7376 |" in rows[1]  # best, significant, 4-decimal reference kept
    assert "| **0.700** |" in rows[1]  # RR@10: best, but p = 0.2 gives no mark
    assert "msmarco train (532761 q)" in rows[1] and "6.9 min" in rows[1] and "bm25 top-100" in rows[1]
    assert "InRanker, Table 1" in scifact
    assert "published" not in trec.split("\n| ")[1] and "2.0 h" in trec

    with open(paths["csv"], newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 2 + 2 + 1  # records x measures
    assert [(r["pipeline"], r["measure"]) for r in table][:2] == [("first_stage", "nDCG@10"), ("first_stage", "RR@10")]
    monot5 = [r for r in table if r["method"] == "monot5-base" and r["measure"] == "nDCG@10"][0]
    assert float(monot5["value"]) == 0.7376 and float(monot5["reference_value"]) == 0.7376
    assert json.loads(monot5["significance"])["first_stage/bm25"]["p_value"] == 0.001

    tex = paths["tex"].read_text()
    assert tex.count(r"\begin{tabular}") == 2 and tex.count(r"\begin{table*}") == 2 and r"\toprule" in tex and r"\bottomrule" in tex
    assert r"first\_stage & bm25" in tex and r"\textbf{0.738}$^{\uparrow}$ & 0.7376" in tex

    before = {k: p.read_bytes() for k, p in paths.items()}
    build_tables(tmp_path)
    assert {k: p.read_bytes() for k, p in paths.items()} == before  # deterministic


def test_build_tables_without_records(tmp_path):
    paths = build_tables(tmp_path, profile="smoke")
    # another profile's tables never replace the default's RESULTS.md
    assert [paths[k].name for k in ("md", "csv", "tex")] == ["RESULTS.smoke.md", "results.smoke.csv", "results.smoke.tex"]
    assert not (tmp_path / "RESULTS.md").exists()
    assert "No records" in paths["md"].read_text()
    assert paths["csv"].read_text().startswith("profile,dataset,split")


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    rec = _three_records()[0]
    good = write_record(rec, tmp_path)
    original = good.read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", explode)
    rec.metrics["nDCG@10"] = 0.1
    with pytest.raises(OSError, match="disk full"):
        write_record(rec, tmp_path)
    assert good.read_bytes() == original  # the old record is intact
    assert [p.name for p in good.parent.iterdir()] == [good.name]  # no temp file left behind


def test_failed_figure_leaves_no_file(tmp_path, monkeypatch):
    def explode(self, *args, **kwargs):
        raise RuntimeError("render failed")

    monkeypatch.setattr(figures_module.Figure, "savefig", explode)
    with pytest.raises(RuntimeError):
        plot_curve([{"step": 1, "loss": 1.0}], "step", "loss", tmp_path / "curve.png")
    assert list(tmp_path.iterdir()) == []


def test_figures_are_written(tmp_path):
    records = _three_records()
    bars = plot_metric_bars(records, "nDCG@10", tmp_path / "fig" / "ndcg.png")
    history = [{"step": s, "loss": 1 / s} for s in range(1, 20)] + [{"step": 20, "eval_nDCG@10": 0.7}]
    curve = plot_curve(history, "step", ["loss", "eval_nDCG@10"], tmp_path / "fig" / "curve.png", logy=True)
    for path in (bars, curve):
        data = path.read_bytes()
        assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_curve(pd.DataFrame({"epoch": [1, 2], "acc": [0.5, 0.6]}), "epoch", "acc", tmp_path / "c").suffix == ".png"
    with pytest.raises(ValueError):
        plot_metric_bars(records, "AP", tmp_path / "none.png")
    with pytest.raises(KeyError):
        plot_curve(history, "epoch", "loss", tmp_path / "bad.png")
    assert not (tmp_path / "none.png").exists() and not os.path.exists(tmp_path / "bad.png")


def test_git_commit_ignores_regenerated_results(tmp_path):
    import subprocess

    from rerank_lib.results import git_commit

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "RESULTS.md").write_text("old\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "init")
    head = git_commit(tmp_path)
    assert len(head) == 40
    (tmp_path / "results" / "RESULTS.md").write_text("regenerated\n")
    assert git_commit(tmp_path) == head  # results being rewritten is not a dirty tree
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == head + "-dirty"


def test_marks_per_compared_method_and_dl_fold_means(tmp_path):
    sig = {"bm25": {"nDCG@10": {"delta": 0.05, "p_value": 0.01}}, "start": {"nDCG@10": {"delta": 0.01, "p_value": 0.4}}}
    rows = [
        make_record("p", "m", "trec-dl-2019", "test", {"nDCG@10": 0.60}, training_queries="trec-dl-2020/test (54 q)",
                    significance=sig, **FIXED),
        make_record("p", "m", "trec-dl-2020", "test", {"nDCG@10": 0.50}, training_queries="trec-dl-2019/test (43 q)", **FIXED),
        make_record("first_stage", "bm25", "trec-dl-2019", "test", {"nDCG@10": 0.506}, **FIXED),  # one year only: no mean
    ]
    for rec in rows:
        write_record(rec, tmp_path)
    md = build_tables(tmp_path)["md"].read_text()
    dl19_row = [line for line in md.split("## trec-dl-2019 / test")[1].splitlines() if line.startswith("| p | m ")][0]
    assert "**0.600**▲¹ |" in dl19_row and dl19_row.rstrip().endswith("| bm25, start |")  # better than bm25, n.s. vs start
    folds = md.split("## TREC DL: the two folds and their mean")[1]
    assert "| p | m | – | trec-dl-2020/test (54 q) / trec-dl-2019/test (43 q) | 0.600 | 0.500 | **0.550** |" in folds
    assert "bm25" not in folds.split("| ---")[1]
    from rerank_lib.results import fold_means
    assert fold_means(rows) == [{"pipeline": "p", "method": "m", "first stage": "–", "training": "trec-dl-2020/test (54 q) / trec-dl-2019/test (43 q)",
                                 "trec-dl-2019 nDCG@10": 0.60, "trec-dl-2020 nDCG@10": 0.50, "mean nDCG@10": 0.55}]


def test_teacher_agreement_figure_draws_one_panel_per_pair_with_a_run_and_a_teacher(tmp_path, monkeypatch):
    drawn = {}
    monkeypatch.setattr(figures_module, "scatter_panels",
                        lambda panels, path, xlabel, ylabel: drawn.update(panels=panels, ylabel=ylabel) or path)
    teacher = {"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}}
    runs = {("student", "ds"): {"q1": {"d1": 0.1, "d2": 0.3, "d3": 0.2}}}  # tau: 1 concordant, 2 discordant -> -1/3
    pairs = {"S": ("student", "ds"), "no run": ("other", "ds"), "no teacher": ("student", "nope")}
    path = figures_module.teacher_agreement_figure(runs, {"ds": teacher}, pairs, tmp_path / "f.png", ylabel="margin")
    assert path == tmp_path / "f.png" and drawn["ylabel"] == "margin"
    assert list(drawn["panels"]) == ["S on ds\nmean per-query τ = -0.333"]
    assert drawn["panels"]["S on ds\nmean per-query τ = -0.333"] == ([3.0, 2.0, 1.0], [0.1, 0.3, 0.2])
