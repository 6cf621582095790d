"""The published numbers beside the paper rows (InRanker, LocalRQA, HopWeaver): each entry has the record's shape and
a source that names where it was read, its key names a row the recipe writes, and that row's record carries it."""
import pytest

from rerank_lib.data import Dataset
from rerank_lib.data.types import Document
from rerank_lib.recipes import hopweaver
from rerank_lib.recipes import inranker
from rerank_lib.recipes import retriever_training as localrqa
from rerank_lib.recipes.inranker.evaluation import DATASETS as INRANKER_DATASETS
from rerank_lib.recipes.inranker.training import short_name
from rerank_lib.results import make_record

HOPWEAVER_ROWS = {f"hopweaver-{name}" for name in ("standard", "diverse", "diverse-zs", "diverse-untrained",
                                                    "diverse-ft")}


def tables():
    """(recipe, key -> (dataset, method), measures its records carry, table) for every recipe in scope."""
    return [
        ("inranker", lambda key: key, ("nDCG@10",), inranker.RECIPE.references),
        ("localrqa", lambda key: key, localrqa.FAIRE_MEASURES, localrqa.RECIPE.references),
        ("hopweaver", lambda key: ("scifact", key), hopweaver.MEASURES, hopweaver.RECIPE.references),
    ]


def test_inranker_teacher_rows_carry_rank_llm_2cr_monot5_3b():
    paper = inranker.config("paper")
    method = f"teacher-{short_name(paper.teacher_model)}"  # the row evaluate_all writes for the monoT5 teacher
    assert method == "teacher-monot5-3b-msmarco-10k"
    refs = inranker.RECIPE.references
    assert refs[("trec-dl-2019", method)]["nDCG@10"]["value"] == 0.7173
    assert refs[("trec-dl-2020", method)]["nDCG@10"]["value"] == 0.6887
    for year in ("trec-dl-2019", "trec-dl-2020"):
        source = refs[(year, method)]["nDCG@10"]["source"]
        assert "src/rank_llm/2cr/msmarco-v1-passage.yaml lines 46-59" in source and "@1b3cabb" in source
        assert "BM25 top-100" in source
    assert paper.dl_depth == 100  # the source's depth is the paper profile's


@pytest.mark.parametrize("recipe,split_key,measures,table", tables(), ids=[t[0] for t in tables()])
def test_every_reference_has_the_record_shape_and_names_a_real_row(recipe, split_key, measures, table):
    for key, reference in table.items():
        dataset, method = split_key(key)
        if recipe == "inranker":
            assert dataset in INRANKER_DATASETS
        elif recipe == "localrqa":
            assert dataset == localrqa.FAIRE and not method.endswith("+interp")
        else:
            assert method in HOPWEAVER_ROWS
        assert set(reference) <= set(measures), f"{recipe} {key}: measures its records do not carry"
        for measure, ref in reference.items():
            assert 0 < ref["value"] <= 1, f"{recipe} {key} {measure}: published values are on the 0-1 scale"
            assert "line" in ref["source"] or "Table" in ref["source"], f"{recipe} {key}: name where it was read"
        record = make_record("p", method, dataset, "test", {m: 0.5 for m in measures}, reference=reference,
                             git_commit="test")  # the record reader validates the reference's shape
        assert record.reference == reference


def test_faire_record_carries_the_reference_of_its_row_only(tmp_path, monkeypatch):
    ref = {"recall@4": {"value": 0.61, "source": "LocalRQA (arXiv 2403.00982) Table N (test entry)"}}
    monkeypatch.setitem(localrqa.RECIPE.references, (localrqa.FAIRE, "ctl-toy"), ref)
    corpus = {d: Document(d, d) for d in "ab"}
    ds = Dataset(localrqa.FAIRE, "test", corpus, {"q1": "one?", "q2": "two?"}, {"q1": {"a": 1}, "q2": {"b": 1}})
    run = {"q1": {"a": 2, "b": 1}, "q2": {"a": 2, "b": 1}}
    cfg = localrqa.config("smoke")
    rec = localrqa.record_faire(run, ds, localrqa.faire_row(cfg, "ctl-toy", "toy"), cfg=cfg, results_dir=tmp_path,
                                baselines={})
    assert rec.reference == ref and rec.metrics["recall@1"] == pytest.approx(0.5)
    interp = localrqa.record_faire(run, ds, localrqa.faire_row(cfg, "ctl-toy+interp", "toy"), cfg=cfg,
                                   results_dir=tmp_path, baselines={})
    assert interp.reference == {}  # a +interp row is another method: no published number of its own
