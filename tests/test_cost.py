"""Cost beside quality: a reranker's latency per query and a trained row's training seconds, from the row's timed
seconds to the record (per query, per seed), its validation, the cost table and figure build_tables writes, and the
ledger's cost claims reading them. Every value here is synthetic and checked by hand; no timing is asserted."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from rerank_lib.data.candidates import EvalSet
from rerank_lib.data.errors import DataFormatError
from rerank_lib.experiment import Row, record_reranker, record_run
from rerank_lib.experiment.selection import Selected
from rerank_lib.paper_profiles import packaged_claims
from rerank_lib.results import build_tables, load_records, make_record, plot_cost_quality, write_record
from rerank_lib.results.ledger import REPRODUCED, judge, record_value
from rerank_lib.training import TrainResult

FIXED = {"git_commit": "0123456789abcdef0123456789abcdef01234567", "versions": {}, "hardware": {},
         "created": "2025-01-01T00:00:00+00:00"}
QRELS = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}}
FIRST = {q: {"d1": 3.0, "d2": 2.0, "d3": 1.0} for q in QRELS}


def _evalset(queries=("q1", "q2", "q3")) -> EvalSet:
    return EvalSet("scifact", "test", {q: q for q in queries}, QRELS, "bm25", 3, FIRST, measures=["nDCG@10"])


def _reranked(best: str) -> dict:
    return {q: {"d1": 0.1, "d2": 0.2, "d3": 0.3, best: 1.0} for q in QRELS}


def test_latency_is_the_rerank_seconds_per_query_and_seed_and_interp_rows_keep_it(tmp_path):
    runs = [_reranked("d1"), _reranked("d2")]  # two training seeds' models on the 3 test queries
    row = Row("p", "m", "default", seeds=(1, 2), rerank_s=6.0, train_s=10.0)
    dev = _evalset()
    records = record_reranker(runs, _evalset(), row, tmp_path, dev=dev, dev_run=[_reranked("d1"), _reranked("d2")])
    for record in records:  # 6 s over 3 queries x 2 seeds; 10 s of training over 2 seeds; wall: the sum of both
        assert record.latency_s_per_query == pytest.approx(1.0) and record.train_s == pytest.approx(5.0)
        assert record.wall_s == pytest.approx(16.0) and record.depth == 3
    assert [r.method for r in records] == ["m", "m+interp"]
    # one run: its own seconds; the queries counted are the test set's with first-stage candidates (q3 has none)
    one = record_run(_reranked("d1"), _evalset(), Row("p", "one", "default", rerank_s=0.5, wall_s=9.0), tmp_path)
    assert one.latency_s_per_query == pytest.approx(0.5 / 3) and one.train_s is None and one.wall_s == 9.0
    partial = EvalSet("scifact", "test", {q: q for q in QRELS}, QRELS, "bm25", 3, {"q1": FIRST["q1"], "q2": FIRST["q2"]})
    two = record_run({q: FIRST[q] for q in ("q1", "q2")}, partial, Row("p", "two", "default", rerank_s=0.5), tmp_path)
    assert two.latency_s_per_query == pytest.approx(0.25)


def test_a_row_without_cost_writes_no_cost_fields_and_a_costed_one_reads_back(tmp_path):
    plain = record_run(FIRST, _evalset(), Row("first_stage", "bm25", "default", wall_s=1.5), tmp_path)
    costed = record_run(_reranked("d2"), _evalset(), Row("p", "ce", "default", rerank_s=3.0, train_s=42.0), tmp_path)
    files = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "records" / "default").glob("*.json")}
    assert "latency_s_per_query" not in files["first_stage__bm25__scifact_test"]
    assert "train_s" not in files["first_stage__bm25__scifact_test"]
    assert files["p__ce__scifact_test"]["latency_s_per_query"] == 1.0 and files["p__ce__scifact_test"]["train_s"] == 42.0
    loaded = {r.method: r for r in load_records(tmp_path)}
    assert loaded["ce"] == costed and loaded["bm25"] == plain and loaded["bm25"].latency_s_per_query is None


@pytest.mark.parametrize("field, value", [("latency_s_per_query", -0.5), ("latency_s_per_query", "fast"),
                                          ("train_s", -1), ("train_s", True), ("latency_s_per_query", float("nan"))])
def test_a_bad_cost_is_refused_naming_the_file_and_the_field(tmp_path, field, value):
    path = write_record(make_record("p", "m", "scifact", "test", {"nDCG@10": 0.5}, latency_s_per_query=0.2,
                                    train_s=3.0, **FIXED), tmp_path)
    data = json.loads(path.read_text())
    data[field] = value
    path.write_text(json.dumps(data))
    with pytest.raises(DataFormatError, match="non-negative number of seconds") as err:
        load_records(tmp_path)
    assert str(path) in str(err.value) and f"'{field}'" in str(err.value)
    if value != value:  # NaN: make_record writes a non-finite number as null (strict JSON), as for metrics
        assert getattr(make_record("p", "m", "d", "test", {}, **{field: value}, **FIXED), field) is None
        return
    with pytest.raises(DataFormatError, match=f"'{field}'"):
        make_record("p", "m", "scifact", "test", {"nDCG@10": 0.5}, **{field: value}, **FIXED)


def _costed(method, dataset, ndcg, latency=None, train_s=None, depth=20, **fields):
    return make_record("p", method, dataset, "test", {"nDCG@10": ndcg}, first_stage="bm25", depth=depth,
                       latency_s_per_query=latency, train_s=train_s, **FIXED, **fields)


def test_build_tables_writes_the_cost_table_and_the_figure(tmp_path):
    records = [
        make_record("first_stage", "bm25", "scifact", "test", {"nDCG@10": 0.665}, **FIXED),
        _costed("ce", "scifact", 0.701, latency=0.0123, train_s=95.4),
        _costed("ce+interp", "scifact", 0.712, latency=0.0123, train_s=95.4, params={"interpolation_weight": 0.6}),
        _costed("llm", "scifact", 0.654, latency=2.5),
        _costed("student", "trec-dl-2019", 0.512, latency=0.4, train_s=7300.0, depth=30),
        make_record("r", "retriever", "scifact", "test", {"nDCG@10": 0.60}, first_stage="corpus", train_s=30.0,
                    **FIXED),
    ]
    for record in records:
        write_record(record, tmp_path)
    paths = build_tables(tmp_path)
    figure = plot_cost_quality(load_records(tmp_path), tmp_path, "default")  # 99_results draws it beside the tables
    assert figure == tmp_path / "figures" / "latency_ndcg10_default.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 1000
    cost = paths["md"].read_text().split("## Cost beside quality")[1]
    assert "figures/latency_ndcg10_default.png" in cost  # the figure the table names
    lines = [line for line in cost.splitlines() if line.startswith("| ") and not line.startswith(("| pipeline", "| ---"))]
    assert lines == [
        "| p | ce | 20 | 12.3 ms | 95.4 s | 0.701 |",
        "| p | ce+interp (w=0.60) | 20 | 12.3 ms | 95.4 s | 0.712 |",
        "| p | llm | 20 | 2.5 s | – | 0.654 |",
        "| r | retriever | – | – | 30.0 s | 0.600 |",
        "| p | student | 30 | 0.4 s | 2.0 h | 0.512 |",
    ]
    assert "bm25" not in cost  # no cost measured: not in the cost table
    with open(paths["csv"], newline="") as handle:
        rows = {r["method"]: r for r in csv.DictReader(handle)}
    assert float(rows["ce"]["latency_s_per_query"]) == 0.0123 and float(rows["ce"]["train_s"]) == 95.4
    assert rows["bm25"]["latency_s_per_query"] == "" and rows["llm"]["train_s"] == ""


def test_no_latency_no_figure(tmp_path):
    write_record(make_record("first_stage", "bm25", "scifact", "test", {"nDCG@10": 0.665}, **FIXED), tmp_path)
    assert "Cost beside quality" not in build_tables(tmp_path)["md"].read_text()
    assert plot_cost_quality(load_records(tmp_path), tmp_path, "default") is None
    assert not (tmp_path / "figures").exists()


def test_the_packaged_cost_claims_read_the_records_latency(tmp_path):
    claims = {c["id"]: c for items in packaged_claims().values() for c in items}
    for claim_id, (a, b) in {"inranker-student-cheaper": (0.05, 0.2), "first-latency": (1.5, 3.0)}.items():
        claim = claims[claim_id]
        assert claim["measure"] == "latency_s_per_query"
        rows = [make_record(claim[side]["pipeline"], claim[side]["method"], claim["dataset"], claim["split"],
                            {"nDCG@10": 0.5}, depth=depth, latency_s_per_query=value, **FIXED)
                for side, value, depth in (("a", a, 20), ("b", b, 100))]
        assert [record_value(r, "latency_s_per_query") for r in rows] == [a, b]
        verdict = judge("x", claim, rows, tmp_path)
        assert verdict.verdict == REPRODUCED and verdict.values == (a, b)
        assert f"a / b = {a / b:.2f} (a reranks 20 candidates per query, b 100)" in verdict.why


def test_selected_train_s_is_the_training_clock_of_a_run_found_on_disk():
    result = TrainResult(10, [], [], Path("final"), None, cached=True, train_s=812.5)
    assert Selected(result, None, None, None, Path("final"), wall_s=0.4).train_s == 812.5  # not the 0.4 s load
    fresh = TrainResult(10, [], [], Path("final"), None)
    assert Selected(fresh, None, None, None, Path("final"), wall_s=30.0).train_s == 30.0


def test_the_llm_rows_time_their_test_rerank_without_the_feature_cache():
    from rerank_lib.recipes.llm_reranker.rows import rerank_test

    seen = []

    class Head:
        cache_features = True

        def rerank(self, run, corpus, queries, depth, **options):
            seen.append((self.cache_features, depth, options))
            return {"q1": {"d1": 1.0}}

    data = SimpleNamespace(test_bm25={"q1": {"d1": 1.0}}, test=SimpleNamespace(corpus={}, queries={"q1": "q"}))
    head = Head()
    run, seconds = rerank_test(SimpleNamespace(depth=20), data, head, batch_size=8)
    assert run == {"q1": {"d1": 1.0}} and seconds >= 0.0
    assert seen == [(False, 20, {"batch_size": 8})] and head.cache_features is True  # computed, then restored


def test_an_uncached_encoder_rerank_encodes_only_the_candidates():
    import numpy as np

    from rerank_lib.data.types import Document
    from rerank_lib.first_stage import rerank_with_encoder

    class Encoder:
        def __init__(self):
            self.calls = []

        def encode_corpus(self, corpus, cache=True):
            self.calls.append((sorted(corpus), cache))
            return np.ones((len(corpus), 2))

        def encode_queries(self, texts):
            return np.ones((len(texts), 2))

    corpus = {d: Document(d, "", f"text {d}") for d in ("d1", "d2", "d3")}
    encoder = Encoder()
    rerank_with_encoder(encoder, {"q1": {"d1": 2.0, "d2": 1.0}}, corpus, {"q1": "query"}, cache=False)
    assert encoder.calls == [(["d1", "d2"], False)]  # most of the corpus, but no cache to share: the candidates only
