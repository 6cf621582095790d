"""Readers for a user's own files (TSV / JSONL corpus and queries, TREC topics) and the shared line reader:
every mistake names the file, the line and the field."""
import gzip
import json

import pytest

from rerank_lib.data import DataFormatError
from rerank_lib.data.beir import read_corpus as read_beir_corpus, read_queries as read_beir_queries
from rerank_lib.data.corpus_files import read_corpus_file, read_jsonl_corpus, read_jsonl_queries, read_queries_file
from rerank_lib.data.jsonl import iter_jsonl
from rerank_lib.data.lines import iter_lines, read_text
from rerank_lib.data.rankgpt import read_rankgpt
from rerank_lib.data.trec import read_qrels, read_run, read_topics, read_trec_topics
from rerank_lib.data.tsv import read_tsv_corpus, read_tsv_queries
from rerank_lib.data.types import Document


def _raises(call, path, line, field=None, match=None):
    with pytest.raises(DataFormatError) as err:
        call(path)
    assert (err.value.path, err.value.line, err.value.field) == (str(path), line, field), str(err.value)
    if match:
        assert match in str(err.value)
    return err.value


def test_tsv_corpus_two_or_three_columns_and_header(tmp_path):
    path = tmp_path / "corpus.tsv"
    path.write_text("docid\ttitle\ttext\nd1\tA title\tbody one\n\nd2\t\tbody two\n")
    assert read_tsv_corpus(path) == {"d1": Document("d1", "body one", "A title"), "d2": Document("d2", "body two")}
    path.write_text("7\tplain text, no header\n8\tsecond\n")
    assert read_tsv_corpus(path) == {"7": Document("7", "plain text, no header"), "8": Document("8", "second")}


def test_tsv_corpus_errors(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_text("d1\tok\nd2\n")
    _raises(read_tsv_corpus, path, 2, None, "got 1 tab-separated fields")
    path.write_text("d1\tok\nd1\tagain\n")
    _raises(read_tsv_corpus, path, 2, "id", "duplicate document id 'd1' (first on line 1)")
    path.write_text("d1\tok\nd2\t  \n")
    _raises(read_tsv_corpus, path, 2, "text", "empty")
    path.write_text("\n\n  \n")
    _raises(read_tsv_corpus, path, None, None, "empty or holds only blank lines")


def test_tsv_queries(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_text("qid\tquery\n1\tfirst query\n2\tsecond\twith a tab\n")
    assert read_tsv_queries(path) == {"1": "first query", "2": "second\twith a tab"}
    path.write_text("1\tx\n1\ty\n")
    _raises(read_tsv_queries, path, 2, "qid", "duplicate query id '1'")
    path.write_text("1\tx\n2\t\n")
    _raises(read_tsv_queries, path, 2, "query", "empty")


def test_jsonl_corpus_accepts_beir_and_pyserini_fields(tmp_path):
    path = tmp_path / "corpus.jsonl"
    rows = [{"_id": "a", "title": "T", "text": "x"}, {"id": 2, "contents": "y"}, {"docid": "c", "text": "z"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert read_jsonl_corpus(path) == {"a": Document("a", "x", "T"), "2": Document("2", "y"), "c": Document("c", "z")}
    path.write_text('{"_id": "a", "text": "x"}\n{"id": "b", "body": "y"}\n')
    _raises(read_jsonl_corpus, path, 2, "text/contents", "missing")
    path.write_text('{"_id": "a", "text": "x"}\n{"text": "y"}\n')
    _raises(read_jsonl_corpus, path, 2, "_id/id/docid", "missing")
    path.write_text('{"_id": "a", "text": ["x"]}\n')
    _raises(read_jsonl_corpus, path, 1, "text", "expected str, got list")
    path.write_text('{"_id": "a", "text": "x"}\n{"docid": "a", "contents": "y"}\n')
    _raises(read_jsonl_corpus, path, 2, "docid", "duplicate document id 'a' (first on line 1)")
    path.write_text("\n   \n")
    _raises(read_jsonl_corpus, path, None, None, "no data")


def test_jsonl_queries(tmp_path):
    path = tmp_path / "queries.jsonl"
    path.write_text('{"_id": "1", "text": "beir style"}\n{"qid": 2, "query": "pyserini style"}\n')
    assert read_jsonl_queries(path) == {"1": "beir style", "2": "pyserini style"}
    path.write_text('{"_id": "1", "text": ""}\n')
    _raises(read_jsonl_queries, path, 1, "text", "empty")


def test_trec_topics_file(tmp_path):
    path = tmp_path / "topics.301-302.txt"
    path.write_text("<top>\n<num> Number: 301\n<title> International Organized Crime\n<desc> Description:\n"
                    "Identify organizations.\n<narr> Narrative:\nA relevant document.\n</top>\n\n"
                    "<top>\n<num> Number: 302\n<title> Poliomyelitis\n<desc> Description:\nPolio.\n"
                    "<narr> Narrative:\nAny.\n</top>\n")
    assert read_trec_topics(path) == {"301": "International Organized Crime", "302": "Poliomyelitis"}
    assert read_trec_topics(path, field="description")["301"] == "Identify organizations."
    assert read_queries_file(path) == {"301": "International Organized Crime", "302": "Poliomyelitis"}
    path.write_text("301 not a topics file\n")
    _raises(read_trec_topics, path, None, None, "no <top> element")


def test_format_is_read_from_the_name(tmp_path):
    folder = tmp_path / "beir"
    folder.mkdir()
    with gzip.open(folder / "corpus.jsonl.gz", "wt") as handle:
        handle.write('{"_id": "d1", "text": "x"}\n')
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "y"}\n')
    assert read_corpus_file(folder) == {"d1": Document("d1", "x")}
    assert read_queries_file(folder) == {"q1": "y"}
    (tmp_path / "c.tsv").write_text("d1\tx\n")
    assert read_corpus_file(tmp_path / "c.tsv") == {"d1": Document("d1", "x")}
    (tmp_path / "c.csv").write_text("d1,x\n")
    _raises(read_corpus_file, tmp_path / "c.csv", None, None, "unknown corpus format")
    with pytest.raises(FileNotFoundError, match="corpus.jsonl"):
        (tmp_path / "no_corpus").mkdir()
        read_corpus_file(tmp_path / "no_corpus")


# -------------------------------------------------------------------------------- one line reader for every format


@pytest.mark.parametrize("reader, name, content", [
    (lambda p: list(iter_jsonl(p)), "train.jsonl", b'{"query": "a"}\n{"query": "caf\xe9"}\n'),
    (read_tsv_corpus, "corpus.tsv", b"d1\tok\nd2\tcaf\xe9\n"),
    (read_topics, "topics.tsv", b"1\tok\n2\tcaf\xe9\n"),
    (read_qrels, "qrels.txt", b"1 0 d1 1\n1 0 d\xe92 0\n"),
    (read_run, "run.trec", b"1 Q0 d1 1 2.0 t\n1 Q0 d\xe92 2 1.0 t\n"),
    (read_rankgpt, "cands.json", b'[{"query": "a",\n "hits": ["caf\xe9"]}]\n'),
])
def test_a_non_utf8_byte_names_file_and_line(tmp_path, reader, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    error = _raises(reader, path, 2, None, "not valid UTF-8 (byte 0xe9")
    assert name in str(error)


def test_gzip_and_byte_order_mark(tmp_path):
    path = tmp_path / "q.tsv.gz"
    with gzip.open(path, "wb") as handle:
        handle.write("\ufeff1\tfirst\r\n2\tsecond\n".encode("utf-8"))
    assert list(iter_lines(path)) == [(1, "1\tfirst"), (2, "2\tsecond")]
    assert read_tsv_queries(path) == {"1": "first", "2": "second"}
    (tmp_path / "bad.txt").write_bytes(b"ok\nline two\nab\xffcd\n")
    with pytest.raises(DataFormatError, match=r"bad.txt, line 3: not valid UTF-8 \(byte 0xff at column 3\)"):
        read_text(tmp_path / "bad.txt")


def test_run_naming_a_document_twice_is_an_error(tmp_path):
    path = tmp_path / "run.trec"
    path.write_text("1 Q0 d1 1 3.0 t\n2 Q0 d1 1 3.0 t\n1 Q0 d2 2 2.0 t\n1 Q0 d1 3 1.0 t\n")
    _raises(read_run, path, 4, "docid", "document 'd1' appears twice for query '1' (first on line 1)")


# -------------------------------------------------------- ids a run can hold, title-only topics, empty query text


@pytest.mark.parametrize("reader, name, content, line, field", [
    (read_tsv_corpus, "corpus.tsv", "d1\tok\nd 2\ttext\n", 2, "id"),
    (read_tsv_queries, "queries.tsv", "q1\tok\nq 2\ttext\n", 2, "qid"),
    (read_topics, "topics.tsv", "1\tok\n2 b\ttext\n", 2, "qid"),
    (read_jsonl_corpus, "corpus.jsonl", '{"_id": "a", "text": "x"}\n{"docid": "b\\tc", "contents": "y"}\n', 2,
     "docid"),
    (read_jsonl_queries, "queries.jsonl", '{"_id": "1", "text": "x"}\n{"qid": "2\\u00a03", "query": "y"}\n', 2, "qid"),
    (read_beir_corpus, "corpus.jsonl", '{"_id": "a b", "text": "x"}\n', 1, "_id"),
    (read_beir_queries, "queries.jsonl", '{"_id": "1", "text": "x"}\n{"_id": "2 3", "text": "y"}\n', 2, "_id"),
    (read_trec_topics, "topics.txt", "<top>\n<num> Number: 30 1\n<title> cat\n</top>\n", 1, "num"),
])
def test_an_id_with_whitespace_is_refused_where_it_is_read(tmp_path, reader, name, content, line, field):
    """A run file splits on whitespace: such an id used to be written into a run that `evaluate` rejects."""
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    _raises(reader, path, line, field, "contains whitespace, which TREC run and qrels files cannot hold")


def test_title_only_trec_topics_are_read(tmp_path):
    """A topics file with <num> and <title> only used to end in ir_datasets' AssertionError (a traceback)."""
    path = tmp_path / "topics.txt"
    path.write_text("<top>\n<num> Number: 1\n<title> cat\n</top>\n\n<top>\n<num> 2 </num>\n<title> Topic: dogs and\n"
                    "  their owners </title>\n</top>\n")
    assert read_trec_topics(path) == {"1": "cat", "2": "dogs and their owners"}
    assert read_queries_file(path) == {"1": "cat", "2": "dogs and their owners"}
    _raises(lambda p: read_trec_topics(p, field="description"), path, 1, "description",
            "topic '1' has no <desc> text (no such element)")
    path.write_text("<top>\n<num> Number: 1\n<title> cat\n</top>\n<top>\n<num> Number: 2\n<title>\n<desc> about dogs\n"
                    "</top>\n")
    _raises(read_trec_topics, path, 5, "title", "topic '2' has no <title> text")
    _raises(lambda p: read_trec_topics(p, field="description"), path, 1, "description", "no such element")
    path.write_text("<top>\n<num> Number: 1\n<title> cat\n</top>\n<top>\n<num> Number: 1\n<title> dog\n</top>\n")
    _raises(read_trec_topics, path, 5, "num", "duplicate topic '1' (first on line 1)")
    path.write_text("<top>\n<num> Number: 1\n<title> cat\n")
    _raises(read_trec_topics, path, 1, None, "<top> not closed by </top>")


@pytest.mark.parametrize("reader, name, content, line, field", [
    (read_topics, "topics.tsv", "1\tok\n2\t   \n", 2, "query"),
    (read_beir_queries, "queries.jsonl", '{"_id": "1", "text": "x"}\n{"_id": "2", "text": " "}\n', 2, "text"),
    (read_trec_topics, "topics.txt", "<top>\n<num> Number: 7\n<title>   </title>\n</top>\n", 1, "title"),
])
def test_a_query_with_empty_text_is_refused(tmp_path, reader, name, content, line, field):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    _raises(reader, path, line, field)


def test_search_refuses_such_inputs_in_one_line_and_writes_nothing(tmp_path, capsys):
    """Through the command: exit status 1, one line naming file, line and field, no run written."""
    from rerank_lib import cli

    corpus, queries, out = tmp_path / "corpus.tsv", tmp_path / "queries.tsv", tmp_path / "run.trec"
    corpus.write_text("d1\tthe cat sat\nd 2\tthe dog ran\n")
    queries.write_text("q1\tcat\n")
    assert cli.main(["search", "--corpus", str(corpus), "--queries", str(queries), "--method", "bm25",
                     "--output", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"rerank-repro search: error: {corpus}, line 2, field 'id': id 'd 2' contains whitespace, which "
                   "TREC run and qrels files cannot hold; use an id without spaces or tabs"]
    assert not out.exists()
    corpus.write_text("d1\tthe cat sat\nd2\tthe dog ran\n")
    topics = tmp_path / "topics.txt"
    topics.write_text("<top>\n<num> Number: 1\n<title> cat\n</top>\n<top>\n<num> Number: 2\n<title> dog\n</top>\n")
    assert cli.main(["search", "--corpus", str(corpus), "--queries", str(topics), "--method", "bm25", "--k", "1",
                     "--output", str(out)]) == 0
    assert [line.split()[:3] for line in out.read_text().splitlines()] == [["1", "Q0", "d1"], ["2", "Q0", "d2"]]


def test_a_tab_separated_qrels_line_with_a_space_in_an_id_is_refused(tmp_path):
    """'q 2<TAB>d2<TAB>1' was read as the TREC layout (query 'q', document 'd2'): a silently wrong judgment."""
    path = tmp_path / "qrels.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq 2\td2\t1\n")
    _raises(read_qrels, path, 3, "query-id", "id 'q 2' contains whitespace")
    path.write_text("q1\t0\td 1\t1\n")
    _raises(read_qrels, path, 1, "docid", "id 'd 1' contains whitespace")
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2 \t d2\t0\n301 0 FBIS3-1\t2\n")
    assert read_qrels(path) == {"q1": {"d1": 1}, "q2": {"d2": 0}, "301": {"FBIS3-1": 2}}
