import gzip
import hashlib
import http.server
import io
import json
import threading
import zipfile
from pathlib import Path

import pytest

from rerank_lib.data import (
    DataFormatError, Dataset, LeakError, TrainingQueries, assert_no_leak, check_dl_folds, dev_slice, folds_dl,
    leak_free_training, load_dataset, without_overlap,
)
from rerank_lib.data.beir import load_beir, read_corpus
from rerank_lib.data.download import DownloadError, RemoteFile, download_files
from rerank_lib.data.jsonl import iter_jsonl, write_jsonl
from rerank_lib.data.rankgpt import read_rankgpt
from rerank_lib.data.trec import pooled_corpus, read_qrels, read_run, read_topics, top_k, write_run


# ---------------------------------------------------------------- real data
def test_scifact_loads_with_official_counts(shared_data):
    test = load_dataset("scifact", "test", root=shared_data)
    train = load_dataset("scifact", "train", root=shared_data)
    assert len(test.corpus) == 5183
    assert len(test.queries) == 300 and sum(len(v) for v in test.qrels.values()) == 339
    assert len(train.queries) == 809 and sum(len(v) for v in train.qrels.values()) == 919
    assert not set(test.queries) & set(train.queries)
    doc = test.corpus["4983"]
    assert doc.title.startswith("Microstructural development") and doc.text_for_model.startswith(doc.title)


def test_trec_dl_loads_with_bm25_candidates(shared_data):
    dl19 = load_dataset("trec-dl-2019", root=shared_data)
    dl20 = load_dataset("trec-dl-2020", root=shared_data)
    assert (len(dl19.queries), len(dl20.queries)) == (43, 54)
    assert sum(len(v) for v in dl19.qrels.values()) == 9260
    assert all(len(dl19.runs["bm25"][q]) == 100 for q in dl19.queries)
    assert set(dl20.runs["bm25"]) == set(dl20.qrels)
    hit = max(dl19.runs["bm25"]["264014"].items(), key=lambda kv: kv[1])
    assert hit[0] == "5611210" and abs(hit[1] - 15.7806) < 1e-3  # first line of the official .trec run
    assert all(d in dl19.corpus for q in dl19.runs["bm25"] for d in dl19.runs["bm25"][q])


def test_leak_guard_on_real_splits(shared_data):
    sci_train = load_dataset("scifact", "train", root=shared_data)
    sci_test = load_dataset("scifact", "test", root=shared_data)
    train_ids, dev_ids = dev_slice(sci_train.queries)
    assert not set(train_ids) & set(dev_ids) and len(train_ids) + len(dev_ids) == 809
    # SciFact's official train split repeats two test claims under other ids: the guard finds them ...
    with pytest.raises(LeakError, match=r"shares 2 queries.*'1292', '870'"):
        assert_no_leak([TrainingQueries.of("scifact/train", sci_train.queries)], "scifact/test", sci_test.queries)
    # ... and the cleaned training split passes
    clean = without_overlap(sci_train.queries, sci_test.queries)
    assert len(clean) == 807 and "871" not in clean and "1291" not in clean
    assert_no_leak([TrainingQueries.of("scifact/train", clean)], "scifact/test", sci_test.queries)
    with pytest.raises(LeakError, match="scifact/test"):
        assert_no_leak([TrainingQueries.of("scifact/test", sci_test.subset(list(sci_test.queries)[:5]).queries)],
                       "scifact/test", sci_test.queries)
    for train_name, eval_name in folds_dl():
        tr, ev = load_dataset(train_name, root=shared_data), load_dataset(eval_name, root=shared_data)
        assert_no_leak([TrainingQueries.of(f"{train_name}/test", tr.queries)], f"{eval_name}/test", ev.queries)
        with pytest.raises(LeakError):
            assert_no_leak([TrainingQueries.of(f"{eval_name}/test", ev.queries)], f"{eval_name}/test", ev.queries)
    # the same text under another id is caught too
    q = next(iter(sci_test.queries.items()))
    with pytest.raises(LeakError):
        assert_no_leak([TrainingQueries.of("synthetic/gen", {"x1": q[1].upper()})], "scifact/test", dict([q]))


def test_query_statistics_by_hand():
    d = Dataset("toy", "test", {}, {"q1": "a b", "q2": "a b c d e", "q3": "x"},
                {"q1": {"d1": 2, "d2": 0}, "q2": {"d1": 2, "d3": 3}})
    assert d.query_statistics() == {"dataset": "toy/test", "query_words_mean": 2.7, "query_words_max": 5,
                                    "grade_0": 1, "grade_2": 2, "grade_3": 1}


def test_leak_free_training_and_the_dl_folds():
    train = Dataset("toy", "train", {}, {"t1": "Same Claim", "t2": "other", **{f"x{i}": f"q {i}" for i in range(30)}}, {})
    test = Dataset("toy", "test", {}, {"e1": "same  claim"}, {})
    dropped, train_ids, dev_ids = leak_free_training(train, test, seed=3)
    assert dropped == ["t1"] and (train_ids, dev_ids) == dev_slice([q for q in train.queries if q != "t1"], seed=3)
    assert len(dev_ids) == 20 and len(train_ids) == 11
    dl = {f"trec-dl-{y}/test": Dataset(f"trec-dl-{y}", "test", {}, {f"{y}-{i}": f"{y} {i}" for i in range(n)}, {})
          for y, n in ((2019, 2), (2020, 3))}
    assert check_dl_folds(dl) == [
        "fold: train on trec-dl-2020 (3 q), evaluate on trec-dl-2019: no shared query",
        "fold: train on trec-dl-2019 (2 q), evaluate on trec-dl-2020: no shared query"]
    dl["trec-dl-2020/test"].queries["2020-0"] = "2019 1"  # a 2019 query's text in the 2020 training year
    with pytest.raises(LeakError, match="trec-dl-2019/test shares 1 queries with training data from trec-dl-2020"):
        check_dl_folds(dl)


def test_dev_slice_is_deterministic():
    ids = [str(i) for i in range(100)]
    assert dev_slice(ids, seed=1) == dev_slice(ids, seed=1)
    assert dev_slice(ids, seed=1) != dev_slice(ids, seed=2)
    assert len(dev_slice(ids, fraction=0.1, min_size=5)[1]) == 10


# ---------------------------------------------------------------- formats, good and malformed
def test_trec_round_trip(tmp_path):
    run = {"2": {"a": 1.0, "b": 3.0}, "10": {"c": 0.5}}
    path = write_run(run, tmp_path / "r.trec", tag="x")
    lines = path.read_text().splitlines()
    assert lines[0] == "2 Q0 b 1 3.000000 x" and lines[-1].startswith("10 Q0 c 1")
    assert read_run(path) == run
    assert top_k({"q": {"a": 1, "b": 3, "c": 2}}, 2) == {"q": {"b": 3, "c": 2}}


def test_qrels_both_layouts(tmp_path):
    (tmp_path / "beir.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\t1\n1\td2\t0\n")
    (tmp_path / "trec.txt").write_text("1 0 d1 2\n2 0 d3 0\n")
    assert read_qrels(tmp_path / "beir.tsv") == {"1": {"d1": 1, "d2": 0}}
    assert read_qrels(tmp_path / "trec.txt") == {"1": {"d1": 2}, "2": {"d3": 0}}


@pytest.mark.parametrize("content, line, field", [
    ("1 Q0 d1 1 0.5 tag\n1 Q0 d2 x 0.4 tag\n", 2, "rank"),
    ("1 Q0 d1 1 high tag\n", 1, "score"),
    ("1 Q0 d1 1 0.5\n", 1, None),
])
def test_malformed_run_names_file_line_field(tmp_path, content, line, field):
    path = tmp_path / "bad.trec"
    path.write_text(content)
    with pytest.raises(DataFormatError) as err:
        read_run(path)
    assert err.value.line == line and err.value.field == field and "bad.trec" in str(err.value)


def test_a_run_line_with_a_spaced_id_says_so(tmp_path):
    """The run an older `search` wrote from a corpus id 'd 2': the error says why the columns are too many."""
    path = tmp_path / "bad.trec"
    path.write_text("q1 Q0 d1 1 0.5 bm25\nq1 Q0 d 2 2 0.4 bm25\n")
    with pytest.raises(DataFormatError) as err:
        read_run(path)
    assert str(err.value) == (f"{path}, line 2: expected 6 columns 'qid Q0 docid rank score tag', got 7 (an id "
                              "holding a space reads as two columns: ids must not contain whitespace)")


def test_malformed_qrels_and_topics(tmp_path):
    (tmp_path / "q.txt").write_text("1 0 d1 2\n1 0 d2 relevant\n")
    with pytest.raises(DataFormatError, match=r"q.txt, line 2, field 'grade'"):
        read_qrels(tmp_path / "q.txt")
    (tmp_path / "t.tsv").write_text("1\tok\nno tab here\n")
    with pytest.raises(DataFormatError, match=r"line 2"):
        read_topics(tmp_path / "t.tsv")


def test_malformed_corpus_names_line_and_field(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "1", "text": "a"}\n{"_id": "2"}\n')
    with pytest.raises(DataFormatError, match=r"line 2, field 'text': missing"):
        read_corpus(path)
    path.write_text('{"_id": "1", "text": "a"}\n{"_id": "1", "text": "b"}\n')
    with pytest.raises(DataFormatError, match=r"duplicate"):
        read_corpus(path)
    path.write_text('{"_id": "1", "text": "a"}\n{not json\n')
    with pytest.raises(DataFormatError, match=r"line 2.*not valid JSON"):
        list(iter_jsonl(path))


def test_beir_folder_gz_and_missing_query(tmp_path):
    folder = tmp_path / "toy"
    (folder / "qrels").mkdir(parents=True)
    with gzip.open(folder / "corpus.jsonl.gz", "wt") as handle:
        handle.write('{"_id": "d1", "title": "T", "text": "x"}\n')
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "query"}\n')
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    ds = load_beir(folder, "test")
    assert ds.corpus["d1"].text_for_model == "T x" and ds.queries == {"q1": "query"}
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq2\td1\t1\n")
    with pytest.raises(DataFormatError, match="no text"):
        load_beir(folder, "test")


def test_rankgpt_reader_and_errors(tmp_path, shared_data):
    queries, run, passages = read_rankgpt(shared_data / "rank_llm/train_candidates_sample/retrieve_results_train_random_n2.json")
    assert len(queries) == 2 and all(len(v) == 20 for v in run.values()) and len(passages) >= 20
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"query": "q", "hits": [{"qid": 1, "docid": "d"}]}]))
    with pytest.raises(DataFormatError, match=r"entry 1.hits\[1\].content"):
        read_rankgpt(bad)


def test_write_jsonl_is_atomic(tmp_path):
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [{"a": 1}])

    def rows():
        yield {"a": 2}
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        write_jsonl(path, rows())
    assert [o for _, o in iter_jsonl(path)] == [{"a": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


# ---------------------------------------------------------------- download path, against a local server
@pytest.fixture()
def http_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(root), **k)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_verifies_sha256(http_server, tmp_path):
    root, url = http_server
    corpus = b'{"_id": "d1", "text": "x"}\n'
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("toy/corpus.jsonl", corpus)
    (root / "toy.zip").write_bytes(buf.getvalue())
    (root / "topics.tsv").write_bytes(b"1\tq\n")
    good = [
        RemoteFile("toy/corpus.jsonl", f"{url}/toy.zip", hashlib.sha256(corpus).hexdigest(), "toy/corpus.jsonl"),
        RemoteFile("toy/topics.tsv", f"{url}/topics.tsv", hashlib.sha256(b"1\tq\n").hexdigest()),
    ]
    dest = tmp_path / "cache"
    paths = download_files(good, dest)
    assert [p.read_bytes() for p in paths] == [corpus, b"1\tq\n"]
    bad = [RemoteFile("toy/other.tsv", f"{url}/topics.tsv", "0" * 64)]
    with pytest.raises(DownloadError, match="sha256"):
        download_files(bad, dest)
    assert not (dest / "toy/other.tsv").exists()
    with pytest.raises(DownloadError, match="could not download"):
        download_files([RemoteFile("toy/x", f"{url}/missing.tsv", "0" * 64)], dest)


def test_registry_downloads_when_missing(http_server, tmp_path, monkeypatch, shared_data):
    """A dataset absent from the data root is fetched into the cache from its (here: local) official location."""
    import dataclasses

    from rerank_lib.data import registry

    root, url = http_server
    src = shared_data / "msmarco-passage/trec-dl-2019"
    for name in ("topics.tsv", "qrels.txt", "bm25_top100_with_text.json", "bm25_top100.trec"):
        (root / name).write_bytes((src / name).read_bytes())
    spec = registry.DATASETS["trec-dl-2019"]
    local = tuple(dataclasses.replace(f, url=f"{url}/{Path(f.path).name}") for f in spec.remote)
    monkeypatch.setitem(registry.DATASETS, "trec-dl-2019", dataclasses.replace(spec, remote=local))
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(registry, "data_root", lambda root=None: None)
    ds = registry.load_dataset("trec-dl-2019")
    assert len(ds.queries) == 43 and (tmp_path / "cache/data/msmarco-passage/trec-dl-2019/qrels.txt").exists()
    with pytest.raises(FileNotFoundError, match="not found"):
        registry.locate("scifact", download=False)


def test_atomic_files_get_normal_permissions(tmp_path):
    import os

    from rerank_lib.atomic import write_text

    mask = os.umask(0o022)
    os.umask(mask)
    path = write_text(tmp_path / "table.md", "x")
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's private 0600


def test_download_cut_connection_and_mirror_leave_nothing_half_written(tmp_path, monkeypatch):
    """A server that announces more bytes than it sends (a cut connection) gives a clear error and leaves no file
    behind; $RERANK_DOWNLOAD_MIRROR redirects the official URL's host to a mirror, path kept."""
    payload = b"1\tq\n" * 1000

    class Cutting(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = payload if self.path.endswith("/whole.tsv") else payload[:100]
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Cutting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("RERANK_DOWNLOAD_MIRROR", f"http://127.0.0.1:{server.server_address[1]}")
        dest = tmp_path / "cache"
        sha = hashlib.sha256(payload).hexdigest()
        with pytest.raises(DownloadError, match=r"ended after 100 of 4000 bytes"):
            download_files([RemoteFile("dl/cut.tsv", "https://example.org/data/cut.tsv", sha)], dest)
        assert not (dest / "dl").exists() and not [p for p in dest.rglob("*") if p.is_file()]
        paths = download_files([RemoteFile("dl/whole.tsv", "https://example.org/data/whole.tsv", sha)], dest)
        assert paths[0].read_bytes() == payload
        assert [p.name for p in dest.rglob("*") if p.is_file()] == ["whole.tsv"]
    finally:
        server.shutdown()


def test_pooled_corpus_keeps_each_runs_top_documents_and_every_judged_one():
    corpus = {d: f"text {d}" for d in ["a", "b", "c", "d", "e", "f"]}
    runs = [{"q1": {"a": 3.0, "b": 2.0, "c": 1.0}}, {"q2": {"d": 0.5, "e": 0.9}}]
    qrels = [{"q1": {"f": 1}}, {"q3": {"zz": 1}}]  # a judged id missing from the corpus is skipped
    assert pooled_corpus(corpus, runs, 1, qrels) == {"a": "text a", "e": "text e", "f": "text f"}
    assert list(pooled_corpus(corpus, runs, 2, [])) == ["a", "b", "d", "e"]


def test_run_pairs_in_rank_order_and_back():
    from rerank_lib.data.trec import run_from_pairs, run_pairs

    run = {"q1": {"a": 0.1, "b": 0.9}, "q2": {"c": 1.0}, "q3": {}}
    pairs = run_pairs(run)
    assert pairs == [("q1", "b"), ("q1", "a"), ("q2", "c")]
    back = run_from_pairs(run, pairs, [3, 2, 1])
    assert back == {"q1": {"b": 3.0, "a": 2.0}, "q2": {"c": 1.0}, "q3": {}}
    assert all(isinstance(s, float) for docs in back.values() for s in docs.values())
