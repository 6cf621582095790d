"""Any ir_datasets id through load_dataset: the conversion, the offline message, and the leak guard's id spaces."""
from collections import namedtuple

import pytest

from rerank_lib.data import LeakError, TrainingQueries, assert_no_leak, load_dataset
from rerank_lib.data.irds import IrDatasetsUnavailable, dataset_from_ir_datasets, is_ir_datasets_id
from rerank_lib.data.types import Document

Doc = namedtuple("Doc", "doc_id text title")
BodyDoc = namedtuple("BodyDoc", "doc_id body")
Query = namedtuple("Query", "query_id text")
TopicQuery = namedtuple("TopicQuery", "query_id title description")
Qrel = namedtuple("Qrel", "query_id doc_id relevance iteration")


class FakeIrDataset:
    """The part of ir_datasets' Dataset interface that the conversion uses."""

    def __init__(self, docs, queries, qrels):
        self.docs, self.queries, self.qrels = docs, queries, qrels

    def has_docs(self):
        return self.docs is not None

    def has_queries(self):
        return self.queries is not None

    def has_qrels(self):
        return self.qrels is not None

    def docs_iter(self):
        return iter(self.docs)

    def queries_iter(self):
        return iter(self.queries)

    def qrels_iter(self):
        return iter(self.qrels)


def test_conversion_keeps_judged_queries_in_qid_order():
    fake = FakeIrDataset(
        docs=[Doc("d1", "body one", "Title"), Doc("d2", "body two", "")],
        queries=[Query("10", "tenth"), Query("2", "second"), Query("3", "never judged")],
        qrels=[Qrel("10", "d1", 2, "0"), Qrel("2", "d2", 1, "0"), Qrel("10", "d2", 0, "0")],
    )
    ds = dataset_from_ir_datasets(fake, "beir/toy/test")
    assert (ds.name, ds.split, ds.key) == ("beir/toy", "test", "beir/toy/test")
    assert list(ds.queries.items()) == [("2", "second"), ("10", "tenth")]
    assert ds.qrels == {"2": {"d2": 1}, "10": {"d1": 2, "d2": 0}} and list(ds.qrels) == ["2", "10"]
    assert ds.corpus == {"d1": Document("d1", "body one", "Title"), "d2": Document("d2", "body two", "")}
    assert ds.corpus["d1"].text_for_model == "Title body one"


def test_conversion_reads_other_field_names_and_refuses_gaps():
    fake = FakeIrDataset(docs=[BodyDoc("d1", "html body")], queries=[TopicQuery("1", "short", "long")],
                         qrels=[Qrel("1", "d1", 1, "0")])
    ds = dataset_from_ir_datasets(fake, "robust04")
    assert (ds.name, ds.split) == ("robust04", "all")
    assert ds.corpus["d1"].text == "html body" and ds.queries == {"1": "short"}
    with pytest.raises(ValueError, match="1 judged queries have no text"):
        dataset_from_ir_datasets(FakeIrDataset([], [], [Qrel("9", "d1", 1, "0")]), "x/y")
    with pytest.raises(ValueError, match="has no qrels"):
        dataset_from_ir_datasets(FakeIrDataset([], [], None), "x/y")


def test_offline_ir_datasets_name_fails_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("IR_DATASETS_HOME", str(tmp_path / "irds"))
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens there: every download fails at once
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("IR_DATASETS_DL_TRIES", "1")
    assert is_ir_datasets_id("beir/nfcorpus/test")
    with pytest.raises(IrDatasetsUnavailable) as err:
        load_dataset("beir/nfcorpus", "test")
    message = str(err.value)
    assert "ir_datasets 'beir/nfcorpus/test'" in message and str(tmp_path / "irds") in message
    assert "could not be downloaded" in message


def test_unknown_names_and_download_false():
    with pytest.raises(KeyError, match="neither a built-in .* nor an ir_datasets id"):
        load_dataset("no-such-collection/test")
    with pytest.raises(ValueError, match="download=False cannot be honoured"):
        load_dataset("beir/nfcorpus/test", download=False)


def test_builtins_unchanged(shared_data):
    ds = load_dataset("scifact", download=False)  # split defaults to test, as before
    assert ds.key == "scifact/test" and len(ds.queries) == 300


def test_leak_guard_knows_ir_datasets_id_spaces():
    # The same SciFact query id under the built-in name and the ir_datasets name is one query.
    train = TrainingQueries.of("scifact/train", {"871": "a claim"})
    with pytest.raises(LeakError):
        assert_no_leak([train], "beir/scifact/test", {"871": "another text"})
    # MS MARCO query ids: DL19 built-in vs ir_datasets' msmarco-passage ids.
    dl19 = TrainingQueries.of("trec-dl-2019/test", {"19335": "anthropological definition of environment"})
    with pytest.raises(LeakError):
        assert_no_leak([dl19], "msmarco-passage/trec-dl-2019/judged", {"19335": "different text"})
    # Different BEIR collections reuse small numeric ids: not a leak.
    nf = TrainingQueries.of("beir/nfcorpus/train", {"1": "nf query"})
    assert_no_leak([nf], "beir/scifact/test", {"1": "scifact claim"})
