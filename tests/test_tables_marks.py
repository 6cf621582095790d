"""A multi-baseline results table, md and tex: every mark, the compared methods each table names, no mark on a
not-significant comparison, a missing value, a measure a reranker cannot change or a weight-0/1 interpolation row,
the interpolation weights, the leaderboard and its sub-tables, and the Holm/Bonferroni option."""
from __future__ import annotations

import pytest

from rerank_lib.results import build_tables, can_change, leaderboards, make_record, plot_metric_bars, write_record

FIXED = {"git_commit": "0123456789abcdef0123456789abcdef01234567", "versions": {}, "hardware": {},
         "created": "2025-01-01T00:00:00+00:00"}


def _test(delta, p):
    return {"delta": delta, "p_value": p}


def _records():
    top20 = {"first_stage": "bm25", "depth": 20}
    interp20 = {"first_stage": "", "depth": 20}  # interpolation rows name no first stage: their model's row does
    return [
        make_record("first_stage", "bm25", "scifact", "test", {"nDCG@10": 0.600, "RR@10": 0.55, "R@100": 0.900},
                    first_stage="corpus", depth=1000, **FIXED),
        # trained reranker: better than bm25 (p=.001), n.s. vs its start; R@100 cannot change; RR@10 not measured
        make_record("cross_encoder", "ce", "scifact", "test", {"nDCG@10": 0.700, "RR@10": None, "R@100": 0.850},
                    significance={"bm25": {"nDCG@10": _test(0.10, 0.001), "R@100": _test(-0.05, 0.0001),
                                           "RR@10": _test(0.1, 0.001)},
                                  "start": {"nDCG@10": _test(0.30, 0.20)}},
                    params={"best_step": 300, "dev_best": 0.812, "steps": 500}, **top20, **FIXED),
        make_record("cross_encoder", "ce+interp", "scifact", "test", {"nDCG@10": 0.720, "R@100": 0.850},
                    significance={"bm25": {"nDCG@10": _test(0.12, 0.02)}, "start": {"nDCG@10": _test(0.32, 0.04)}},
                    params={"interpolation_weight": 0.4}, **interp20, **FIXED),
        make_record("cross_encoder", "ce-start", "scifact", "test", {"nDCG@10": 0.400, "R@100": 0.850},
                    significance={"bm25": {"nDCG@10": _test(-0.20, 0.03)}}, **top20, **FIXED),
        make_record("cross_encoder", "ce-b", "scifact", "test", {"nDCG@10": 0.650, "R@100": 0.850},
                    significance={"bm25": {"nDCG@10": _test(0.05, 0.5)}}, **top20, **FIXED),
        make_record("cross_encoder", "ce-b+interp", "scifact", "test", {"nDCG@10": 0.650, "R@100": 0.850},
                    significance={"bm25": {"nDCG@10": _test(0.05, 0.001)}},
                    params={"interpolation_weight": 1.0}, **interp20, **FIXED),
        make_record("inranker", "mono", "scifact", "test", {"nDCG@10": 0.650, "R@100": 0.850},
                    significance={"bm25": {"nDCG@10": _test(0.05, 0.01)}}, **top20, **FIXED),
        make_record("inranker", "mono+interp", "scifact", "test", {"nDCG@10": 0.600, "R@100": 0.850},
                    significance={"bm25": {"nDCG@10": _test(-0.001, 0.001)}},
                    params={"interpolation_weight": 0.0}, **interp20, **FIXED),
        # another first stage: a sub-table; R@10 of a top-10 reranker cannot change, R@5 can
        make_record("cross_encoder", "hop", "scifact", "test", {"nDCG@10": 0.610, "R@5": 0.500, "R@10": 0.790},
                    first_stage="dense", depth=10,
                    significance={"bm25": {"R@5": _test(0.05, 0.001), "R@10": _test(0.05, 0.001)}}, **FIXED),
        # a query subset: a sub-table
        make_record("cross_encoder", "ce", "scifact", "test-100q", {"nDCG@10": 0.690},
                    significance={"bm25": {"nDCG@10": _test(0.09, 0.01)}}, **top20, **FIXED),
    ]


def _section(text: str, title: str) -> str:
    return text.split(title + "\n")[1].split("\n## ")[0].split("\n### ")[0]


def _row(section: str, method_cell: str) -> list[str]:
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| ")]
    return next(cells for cells in rows if cells[1] == method_cell)


@pytest.fixture
def tables(tmp_path):
    for record in _records():
        write_record(record, tmp_path)
    return tmp_path


def test_markdown_marks_names_and_placement(tables):
    md = build_tables(tables)["md"].read_text()
    assert "·" not in md  # not significant is no mark
    main = _section(md, "## scifact / test")
    assert ("Leaderboard: corpus retrievers and rerankers of bm25 top-20. Marks: ¹ vs bm25, ² vs start (the "
            "model's own untrained or zero-shot starting point); uncorrected p-values. Never marked (a reranker "
            "cannot change them): R@100 (rerankers of bm25 top-20).") in main
    # columns: pipeline, method, model, first stage, training, nDCG@10, RR@10, R@100, wall, tested vs
    ce = _row(main, "ce")
    assert ce[5:8] == ["0.700▲¹", "–", "0.850"]  # n.s. vs start, missing RR@10, unchangeable R@100: no marks
    assert ce[3] == "bm25 top-20" and ce[-1] == "bm25, start"
    interp = _row(main, "ce+interp (w=0.40)")
    # an interpolation row is marked against the first stage only: its gain over the raw start is mostly fusion's
    assert interp[3] == "bm25 top-20" and interp[5] == "**0.720**▲¹"
    assert _row(main, "ce-start")[5] == "0.400▼¹"
    assert _row(main, "ce-b")[5] == "0.650"  # p = 0.5
    assert _row(main, "ce-b+interp = ce-b (w=1)")[5] == "0.650"  # it is ce-b: no marks of its own
    assert _row(main, "mono")[5] == "0.650▲¹"
    assert _row(main, "mono+interp = bm25 top-20 (w=0)")[5] == "0.600"  # it is bm25 top-20
    assert _row(main, "bm25")[3] == "corpus top-1000"
    assert "| hop |" not in main and "0.690" not in main  # other first stage and the subset are not on the board
    assert "0.812" not in md  # the selected checkpoint's test value, never its dev value

    dense = _section(md, "### scifact / test: dense top-10 first stage")
    assert "Marks: vs bm25; uncorrected p-values. Never marked (a reranker cannot change them): R@10 (rerankers " \
           "of dense top-10)." in dense
    assert _row(dense, "hop")[5:8] == ["0.610", "0.500▲", "0.790"]  # one compared method: no number
    subset = _section(md, "### scifact / test-100q: 100-query subset, bm25 top-20 first stage")
    assert _row(subset, "ce")[5] == "0.690▲"
    assert md.index("## scifact / test\n") < md.index("### scifact / test: dense") < md.index("### scifact / test-100q")
    assert "R@K, recall@K, P@K, Success@K with K >= k" in md  # said once, in the legend


def test_latex_marks_captions_and_fit(tables):
    tex = build_tables(tables)["tex"].read_text()
    assert tex.count(r"\begin{table*}") == 3 and tex.count(r"\resizebox{\ifdim\width>\textwidth\textwidth\else\width\fi}{!}{%") == 3
    assert "·" not in tex and r"\cdot" not in tex
    main = tex.split("% scifact / test\n")[1].split(r"\end{table*}")[0]
    caption = main.split(r"\caption{")[1].split(r"\label")[0]
    for words in ("scifact / test. Measures: nDCG@10, RR@10, R@100.", "rerankers of bm25 top-20",
                  "1 = bm25; 2 = start", "uncorrected p-values", r"never marked: R@100 (rerankers of bm25 top-20)",
                  "w=0 is the first stage and w=1 the model itself"):
        assert words in caption, words
    rows = {line.split(" & ")[1]: line.split(" & ") for line in main.splitlines() if line.count(" & ") >= 5}
    assert rows["ce"][0] == r"cross\_encoder" and rows["ce"][3:6] == [r"0.700$^{\uparrow1}$", "--", r"0.850 \\"]
    assert rows["ce+interp (w=0.40)"][3] == r"\textbf{0.720}$^{\uparrow1}$"
    assert rows["ce-start"][3] == r"0.400$^{\downarrow1}$"
    assert rows["ce-b"][3] == "0.650" and rows["ce-b+interp = ce-b (w=1)"][3] == "0.650"
    assert rows["mono+interp = bm25 top-20 (w=0)"][3] == "0.600"
    dense = tex.split("% scifact / test: dense top-10 first stage\n")[1].split(r"\end{table*}")[0]
    assert r"0.500$^{\uparrow}$ & 0.790 \\" in dense and "than compared method: bm25" in dense


def test_holm_and_bonferroni_adjust_over_the_tables_tests(tables):
    # the main table's family: 6 tests (ce: .001 bm25, .20 start; ce+interp: .02 bm25 (its test vs start is no
    # part: an interpolation row is not marked against the start); ce-start .03; ce-b .5; mono .01); Holm:
    # .001*6=.006, .01*5=.05, .02*4=.08, .03*3=.09, ... -> only ce vs bm25 stays < .05
    md = build_tables(tables, correction="holm")["md"].read_text()
    main = _section(md, "## scifact / test")
    assert "p-values Holm-adjusted over the 6 tests of this table" in main
    assert _row(main, "ce")[5] == "0.700▲¹"
    assert [_row(main, m)[5] for m in ("ce+interp (w=0.40)", "ce-start", "mono")] == ["**0.720**", "0.400", "0.650"]
    assert "Holm-adjusted over each table's tests" in md
    tex = build_tables(tables, correction="bonferroni")["tex"].read_text()
    assert "p-values Bonferroni-adjusted over the 6 tests of this table" in tex  # .001*6 = .006 < .05; .01*6 = .06
    assert r"0.700$^{\uparrow1}$" in tex and r"0.650$^{\uparrow1}$" not in tex
    with pytest.raises(ValueError, match="correction"):
        build_tables(tables, correction="fdr")


def test_leaderboard_rule_and_unchangeable_measures():
    boards = leaderboards(_records())
    assert [(t.split, t.first_stage, t.depth, t.main) for t in boards] == [
        ("test", "bm25", 20, True), ("test", "dense", 10, False), ("test-100q", "bm25", 20, False)]
    assert boards[0].compared == ["bm25", "start"] and boards[1].compared == ["bm25"]
    assert can_change("R@100", "corpus", 1000) and can_change("nDCG@10", "bm25", 20) and can_change("R@10", "bm25", 20)
    assert not can_change("R@20", "bm25", 20) and not can_change("R(rel=2)@100", "bm25", 30)
    assert not can_change("recall@4", "bm25", 4) and not can_change("P@30", "bm25", 20)
    assert can_change("AP(rel=2)@100", "bm25", 20)  # order-sensitive


def test_summary_figure_is_small_multiples_of_the_leaderboards(tmp_path, monkeypatch):
    from PIL import Image

    from rerank_lib.results import figures

    records = _records() + [make_record("first_stage", "bm25", "trec-dl-2019", "test", {"nDCG@10": 0.5},
                                        first_stage="corpus", depth=100, **FIXED)]
    path = plot_metric_bars(records, "nDCG@10", tmp_path / "summary.png")
    assert Image.open(path).size[0] <= 2400  # readable at page width
    drawn = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, path, dpi=150: drawn.append(fig) or path)
    plot_metric_bars(records, "nDCG@10", tmp_path / "again.png")
    axes = drawn[0].axes
    assert [ax.get_title(loc="left") for ax in axes] == ["scifact / test; rerankers of bm25 top-20", "trec-dl-2019 / test"]
    labels = [t.get_text() for t in axes[0].get_yticklabels()]  # the leaderboard's rows, best on top, w=0/1 left out
    assert labels == ["cross_encoder/ce-start", "first_stage/bm25", "cross_encoder/ce-b", "inranker/mono",
                      "cross_encoder/ce", "cross_encoder/ce+interp (w=0.40)"]
    assert all(ax.get_legend() is None for ax in axes)  # no giant legend
    with pytest.raises(ValueError):
        plot_metric_bars(records, "AP", tmp_path / "none.png")
