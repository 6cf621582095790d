"""LocalRQA's formats on the real faire example, their errors, and LocalRQA's all-gold document recall@k."""
from __future__ import annotations

import json

import pytest

from rerank_lib.data import DataFormatError, LeakError, assert_no_leak
from rerank_lib.data.localrqa import (
    check_same_questions,
    doc_id_of,
    document_recall,
    format_document,
    load_localrqa,
    read_documents,
    read_questions,
)


@pytest.fixture(scope="module")
def faire(shared_data):
    return load_localrqa("faire", root=shared_data)


def test_real_faire_splits_load(faire, shared_data):
    assert {s: len(v) for s, v in faire.splits.items()} == {"train": 574, "eval": 73, "test": 75}
    assert len(faire.chunks) == 778
    # one empty question in train (line 495 of train_w_qa.jsonl): skipped and reported, its id not reused
    assert [(line, qid, why) for _, line, qid, why in faire.skipped] == [(495, "train-494", "empty question")]
    assert "train-494" not in faire.queries("train") and "train-495" in faire.queries("train")
    ex = faire.examples("test")[0]
    assert ex.qid == "test-0" and ex.question == "How can I confirm the connection between Faire and Prestashop?"
    assert len(ex.gold_doc_ids) == 1 and len(ex.hard_neg_doc_ids) == 2 and ex.gold_answer.startswith("The document")
    assert faire.qrels("test")["test-0"] == {ex.gold_doc_ids[0]: 1}
    assert set(faire.answers("eval")) == set(faire.queries("eval"))
    folder = shared_data / "localrqa" / "faire" / "processed"
    for split in ("train", "eval", "test"):  # the _w_q and _w_qa files flatten to the same questions and ids
        assert check_same_questions(folder / f"{split}_w_q.jsonl", folder / f"{split}_w_qa.jsonl", split) == len(
            faire.examples(split))


def test_fmt_content_is_localrqa_formatter_and_identity_is_source_plus_content(faire, shared_data):
    path = shared_data / "localrqa" / "faire" / "processed" / "test_w_qa.jsonl"
    line = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    gold = line["gold_docs"][0]
    meta = gold["metadata"]
    assert format_document(gold["page_content"], meta["source"], meta["title"]) == gold["fmt_content"]
    chunk = faire.chunks[doc_id_of(meta["source"], gold["page_content"])]
    assert chunk.fmt_content == gold["fmt_content"] and chunk.seq_num == meta["seq_num"]
    assert chunk.to_document().text_for_model == gold["fmt_content"]  # what the retriever embeds
    for c in faire.chunks.values():  # every file's fmt_content follows the formatter
        assert c.fmt_content == format_document(c.page_content, c.source, c.title)


def test_raw_documents_load(shared_data):
    skipped = []
    docs = read_documents(shared_data / "localrqa" / "faire" / "raw" / "docs.jsonl", skipped=skipped)
    assert len(docs) == 963 and [(line, why) for _, line, why in skipped] == [(918, "empty document")]
    first = next(iter(docs.values()))
    assert first.title == "What is Showroom?" and first.fmt_content.startswith("Source: https://www.faire.com/")


def test_train_repeats_eval_and_test_questions_and_the_guard_sees_it(faire):
    train_all = {ex.qid: ex.question for ex in faire.examples("train")}
    with pytest.raises(LeakError):
        assert_no_leak([faire.provenance("train")], "localrqa-faire/test", faire.queries("test"))
    clean = faire.without_overlap("train", "eval", "test")
    dropped = sorted(set(train_all) - {ex.qid for ex in clean})
    assert len(clean) == 572 and [train_all[q] for q in dropped] == [
        "How can I limit who can purchase my preorders?", "How can I apply for an EORI number?"]
    from rerank_lib.data import TrainingQueries

    tq = TrainingQueries.of("localrqa-faire/train", {ex.qid: ex.question for ex in clean})
    assert_no_leak([tq], "localrqa-faire/test", faire.queries("test"))  # no error


def _write(tmp_path, name, rows):
    path = tmp_path / name
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


GOLD = {"page_content": "Returns are free.", "metadata": {"source": "https://x/1", "title": "Returns"}}
GOOD = {"questions": ["Are returns free?"], "gold_docs": [GOLD], "hard_neg_docs": [], "chat_history": []}


@pytest.mark.parametrize("bad, field", [
    ({**GOOD, "gold_docs": "nope"}, "gold_docs"),
    ({k: v for k, v in GOOD.items() if k != "gold_docs"}, "gold_docs"),
    ({**GOOD, "gold_docs": []}, "gold_docs"),
    ({**GOOD, "gold_docs": [{"metadata": {}}]}, "gold_docs[0]"),
    ({**GOOD, "gold_docs": [{"page_content": "x", "metadata": []}]}, "gold_docs[0].metadata"),
    ({**GOOD, "hard_neg_docs": [{"page_content": 3}]}, "hard_neg_docs[0].page_content"),
    ({**GOOD, "questions": "one"}, "questions"),
    ({**GOOD, "questions": [1]}, "questions[0]"),
    ({k: v for k, v in GOOD.items() if k != "questions"}, "questions"),
    ({**GOOD, "chat_history": "x"}, "chat_history"),
    ({"question": "q?", "gold_docs": [GOLD], "gold_answer": 7}, "gold_answer"),
])
def test_bad_lines_name_file_line_and_field(tmp_path, bad, field):
    path = _write(tmp_path, "train_w_q.jsonl", [GOOD, bad])
    with pytest.raises(DataFormatError) as err:
        read_questions(path, "train")
    assert (err.value.path, err.value.line, err.value.field) == (str(path), 2, field)
    assert f"line 2, field '{field}'" in str(err.value)


def test_invalid_json_and_missing_gold_in_documents_file(tmp_path):
    path = _write(tmp_path, "train_w_q.jsonl", [GOOD, "{not json"])
    with pytest.raises(DataFormatError, match="line 2"):
        read_questions(path, "train")
    root = tmp_path / "data"
    folder = root / "localrqa" / "toy" / "processed"
    folder.mkdir(parents=True)
    for split in ("train", "eval", "test"):
        _write(folder, f"{split}_w_q.jsonl", [GOOD])
    data = load_localrqa("toy", root=root)  # corpus from the splits
    assert list(data.chunks) == [doc_id_of("https://x/1", "Returns are free.")]
    docs = _write(tmp_path, "docs.jsonl", [{"text": "Something else.", "title": "t", "source": "https://x/2"}])
    with pytest.raises(DataFormatError) as err:
        load_localrqa("toy", root=root, documents=docs)
    assert err.value.field == "gold_docs" and err.value.line == 1 and err.value.path.endswith("train_w_q.jsonl")


def test_document_recall_all_gold_rule_by_hand():
    qrels = {"q1": {"a": 1}, "q2": {"a": 1, "b": 1}, "q3": {"c": 1, "x": 0}, "q4": {"a": 1}}
    run = {"q1": {"a": 0.9, "b": 0.5}, "q2": {"a": 0.9, "z": 0.8, "b": 0.1}, "q3": {"c": 0.2, "d": 0.2}}
    assert document_recall(run, qrels, 1) == {"q1": 1.0, "q2": 0.0, "q3": 1.0, "q4": 0.0}  # c beats d on the tie (id)
    # q2 needs BOTH a and b in the top k; q4 is missing from the run
    assert document_recall(run, qrels, 2) == {"q1": 1.0, "q2": 0.0, "q3": 1.0, "q4": 0.0}
    assert document_recall(run, qrels, 3) == {"q1": 1.0, "q2": 1.0, "q3": 1.0, "q4": 0.0}
