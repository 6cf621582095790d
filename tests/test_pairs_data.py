"""Reranker training data: the RAG-Retrieval / FlagEmbedding / HopWeaver formats, their real example files,
malformed lines (file, line and field named), the writer's round trip, group sampling and negative mining."""
import json

import numpy as np
import pytest

from rerank_lib.data import DataFormatError
from rerank_lib.data.pairs import (
    TrainGroup, read_flagembedding, read_hopweaver, read_pairs, read_rag_retrieval, sample_group, write_pairs_jsonl,
)
from rerank_lib.negatives import bm25_negatives, parse_range, sample_negatives
from rerank_lib.data.types import Document


def _write(tmp_path, rows, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ real example files


def test_rag_retrieval_example_files_load(shared_data):
    folder = shared_data / "rag-retrieval" / "example_data"
    binary = read_rag_retrieval(folder / "t2rank_100.jsonl")
    assert len(binary) == 100
    first = json.loads((folder / "t2rank_100.jsonl").open(encoding="utf-8").readline())
    g = binary[0]
    assert g.query == first["query"] and g.docs == first["pos"] + first["neg"]
    assert g.labels == [1.0] * len(first["pos"]) + [0.0] * len(first["neg"]) and g.n_pos == len(first["pos"])
    assert len(read_rag_retrieval(folder / "t2rank_100.small.jsonl")) == 11

    distill = read_rag_retrieval(folder / "t2rank_100.distill.standard.jsonl")
    row = json.loads((folder / "t2rank_100.distill.standard.jsonl").open(encoding="utf-8").readline())
    assert len(distill) == 100 and distill[0].labels == pytest.approx(row["pos_scores"])
    assert all(0.0 <= lab <= 1.0 for g in distill for lab in g.labels)

    per_pair = read_rag_retrieval(folder / "t2rank_100.distill.jsonl")  # {query, content, score}, grouped by query
    assert sum(len(g.docs) for g in per_pair) == 2005
    assert per_pair[0].query == "鹦鹉吃自己的小鱼吗" and per_pair[0].labels[0] == pytest.approx(0.777219295501709)
    assert len({g.query for g in per_pair}) == len(per_pair)


def test_rag_retrieval_lm_sft_file_is_refused_with_a_reason(shared_data):
    """lmsft.jsonl is RAG-Retrieval's embedding (LM-SFT) format: its 'scores' would be silently ignored by a
    reranker reader, so we name the field instead."""
    with pytest.raises(DataFormatError) as err:
        read_rag_retrieval(shared_data / "rag-retrieval" / "example_data" / "lmsft.jsonl")
    assert err.value.line == 1 and err.value.field == "scores" and "lmsft.jsonl" in str(err.value)


def test_flagembedding_example_files_load(shared_data):
    folder = shared_data / "flagembedding" / "reranker"
    normal = read_flagembedding(folder / "normal" / "examples.jsonl", knowledge_distillation=True)
    row = json.loads((folder / "normal" / "examples.jsonl").open(encoding="utf-8").readline())
    assert len(normal) == 10 and normal[0].teacher_scores == pytest.approx(row["pos_scores"] + row["neg_scores"])
    assert normal[0].labels[0] == 1.0 and normal[0].labels[-1] == 0.0 and normal[0].prompt is None
    prompted = read_flagembedding(folder / "prompt_based" / "examples.jsonl")
    assert all(g.prompt for g in prompted)
    assert len(read_flagembedding(folder / "prompt_based" / "eval_examples.jsonl")) == 5
    toy = read_flagembedding(folder / "old_toy" / "toy_finetune_data.jsonl")
    assert len(toy) == 10 and toy[0].teacher_scores is None
    with pytest.raises(DataFormatError, match="pos_scores.*knowledge_distillation"):
        read_flagembedding(folder / "old_toy" / "toy_finetune_data.jsonl", knowledge_distillation=True)
    # HopWeaver's {query, pos, neg} is the same shape as the toy data
    assert [g.docs for g in read_hopweaver(folder / "old_toy" / "toy_finetune_data.jsonl")] == [g.docs for g in toy]


# ------------------------------------------------------------------------------------------ labels and errors


def test_multi_level_labels_are_scaled_and_out_of_range_is_an_error(tmp_path):
    path = _write(tmp_path, [{"query": "q", "pos": ["a", "b", "c"], "pos_scores": [0, 1, 2]}])
    (g,) = read_rag_retrieval(path, max_label=2, min_label=0)
    assert g.labels == [0.0, 0.5, 1.0]
    path = _write(tmp_path, [{"query": "q", "pos": ["a"], "neg": ["b"], "neg_scores": [1]},
                             {"query": "q2", "pos": ["a", "b"], "pos_scores": [1, 3]}])
    with pytest.raises(DataFormatError) as err:
        read_rag_retrieval(path, max_label=2, min_label=1)
    # line 1 is valid (neg_scores 1 -> 0.0, the unscored pos -> 1.0); line 2's score 3 is out of range
    assert err.value.line == 2 and err.value.field == "pos_scores[1]" and "outside" in str(err.value)
    first_line_only = _write(tmp_path, [{"query": "q", "pos": ["a"], "neg": ["b"], "neg_scores": [1]}], "one.jsonl")
    assert read_rag_retrieval(first_line_only, max_label=2, min_label=1)[0].labels == [1.0, 0.0]


@pytest.mark.parametrize("row, line, field, problem", [
    ('{"query": "q", "pos": ["a"]', 2, None, "not valid JSON"),
    ({"pos": ["a"]}, 2, "query", "missing"),
    ({"query": "q", "pos": "a"}, 2, "pos", "expected list"),
    ({"query": "q", "pos": ["a", 3]}, 2, "pos[1]", "expected str"),
    ({"query": "q", "pos": []}, 2, "pos", "empty"),
    ({"query": "q", "pos": ["a"], "pos_scores": [0.5, 0.2]}, 2, "pos_scores", "2 scores for 1"),
    ({"query": "q", "pos": ["a"], "pos_scores": ["high"]}, 2, "pos_scores[0]", "finite number"),
    ({"query": "q", "pos": ["a"], "pos_scores": [1.5]}, 2, "pos_scores[0]", "outside"),
    ({"query": "q", "pos": ["a"], "neg_scores": [0.1]}, 2, "neg_scores", "0 entries"),
    ({"query": "", "pos": ["a"]}, 2, "query", "empty"),
])
def test_malformed_rag_retrieval_lines_name_file_line_field(tmp_path, row, line, field, problem):
    path = _write(tmp_path, [{"query": "ok", "pos": ["a"], "neg": ["b"]}, row])
    with pytest.raises(DataFormatError) as err:
        read_rag_retrieval(path)
    assert err.value.path == str(path) and err.value.line == line and err.value.field == field
    assert problem in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("reader, row, field", [
    (read_flagembedding, {"query": "q", "pos": ["a"]}, "neg"),
    (read_flagembedding, {"query": "q", "pos": ["a"], "neg": ["b"], "prompt": 3}, "prompt"),
    (read_flagembedding, {"query": "q", "pos": ["a"], "neg": ["b", "c"], "neg_scores": [1.0]}, "neg_scores"),
    (read_hopweaver, {"query": "q", "pos": ["a"], "neg": []}, "neg"),
    (read_hopweaver, {"query": 7, "pos": ["a"], "neg": ["b"]}, "query"),
])
def test_malformed_flagembedding_and_hopweaver_lines(tmp_path, reader, row, field):
    path = _write(tmp_path, ["", row])  # a blank first line still counts as line 1
    with pytest.raises(DataFormatError) as err:
        reader(path)
    assert err.value.line == 2 and err.value.field == field and str(path) in str(err.value)


def test_writer_round_trips_every_format(tmp_path):
    binary = [TrainGroup("q1", ["p", "n1", "n2"], [1.0, 0.0, 0.0], teacher_scores=[2.5, -1.0, 0.25]),
              TrainGroup("q2", ["p2", "n3"], [1.0, 0.0], teacher_scores=[1.0, 0.0])]
    out = write_pairs_jsonl(tmp_path / "rr.jsonl", binary, "rag-retrieval")
    assert json.loads(out.read_text().splitlines()[0]) == {"query": "q1", "pos": ["p"], "neg": ["n1", "n2"]}
    assert [(g.docs, g.labels) for g in read_pairs(out, "rag-retrieval")] == [(g.docs, g.labels) for g in binary]

    soft = [TrainGroup("q1", ["p", "n1"], [0.9, 0.2])]
    out = write_pairs_jsonl(tmp_path / "distill.jsonl", soft, "rag-retrieval")
    assert json.loads(out.read_text()) == {"query": "q1", "pos": ["p", "n1"], "pos_scores": [0.9, 0.2]}
    assert read_rag_retrieval(out)[0].labels == pytest.approx([0.9, 0.2])

    out = write_pairs_jsonl(tmp_path / "fe.jsonl", binary, "flagembedding")
    back = read_flagembedding(out, knowledge_distillation=True)
    assert [(g.docs, g.labels, g.teacher_scores, g.n_pos) for g in back] == \
           [(g.docs, g.labels, g.teacher_scores, g.n_pos) for g in binary]
    out = write_pairs_jsonl(tmp_path / "hw.jsonl", binary, "hopweaver")
    assert [g.docs for g in read_hopweaver(out)] == [g.docs for g in binary]
    assert not list(tmp_path.glob("*.tmp*"))  # atomic: no leftovers
    with pytest.raises(ValueError, match="outside"):
        write_pairs_jsonl(tmp_path / "bad.jsonl", [TrainGroup("q", ["a", "b"], [1.5, 0.0])], "rag-retrieval")


# ------------------------------------------------------------------------------------------ group sampling


def test_sample_group_is_flagembedding_rule_and_seeded():
    g = TrainGroup("q", ["p1", "p2", "n1", "n2", "n3", "n4", "n5"], [1, 1, 0, 0, 0, 0, 0])
    draws = [sample_group(g, 4, seed=1, epoch=e, index=0) for e in range(20)]
    for idx in draws:
        assert idx[0] in (0, 1) and len(idx) == 4
        assert all(i >= 2 for i in idx[1:]) and len(set(idx[1:])) == 3  # negatives without replacement
    assert len({tuple(d) for d in draws}) > 5  # fresh negatives per pass
    assert sample_group(g, 4, seed=1, epoch=3, index=0) == draws[3]  # a pure function of (seed, epoch, index)
    few = TrainGroup("q", ["p", "n1", "n2"], [1, 0, 0])
    idx = sample_group(few, 8, seed=0)
    assert idx[0] == 0 and len(idx) == 8 and sorted(set(idx[1:])) == [1, 2]  # repeated negatives
    assert abs(idx[1:].count(1) - idx[1:].count(2)) <= 1  # ceil(7/2) = 4 copies of each, 7 drawn
    soft = TrainGroup("q", ["a", "b", "c"], [0.2, 0.9, 0.5])  # distillation data: the best label goes first
    assert sample_group(soft, 3, seed=0)[0] == 1
    with pytest.raises(ValueError, match="single document"):
        sample_group(TrainGroup("q", ["a"], [1.0]), 2, seed=0)


# ------------------------------------------------------------------------------------------ negatives


RUN = {"q1": {f"d{i}": 100.0 - i for i in range(30)}, "q2": {f"d{i}": float(i) for i in range(5)}}


def test_sample_negatives_window_excludes_positives_and_is_seeded():
    negs = sample_negatives(RUN, {"q1": {"d12", "d15"}}, rank_range="10-20", negative_number=5, seed=3)
    chosen = negs["q1"]
    assert len(chosen) == 5 and len(set(chosen)) == 5
    ranks = [int(d[1:]) for d in chosen]
    assert all(10 <= r < 20 for r in ranks) and 12 not in ranks and 15 not in ranks  # 0-based slice [10:20]
    assert ranks == sorted(ranks)  # kept in rank order
    assert sample_negatives(RUN, {"q1": {"d12"}}, (10, 20), 5, seed=3)["q1"] != \
           sample_negatives(RUN, {"q1": {"d12"}}, (10, 20), 5, seed=4)["q1"]
    assert negs == sample_negatives(RUN, {"q1": {"d12", "d15"}}, (10, 20), 5, seed=3)
    # too few in the window: topped up from the fill pool, never with a positive
    pool = [f"d{i}" for i in range(30)] + ["x1", "x2"]
    short = sample_negatives(RUN, {"q2": {"d4"}}, (0, 5), 6, seed=0, fill_from=pool)["q2"]
    assert len(short) == 6 and "d4" not in short and len(set(short)) == 6
    assert len(sample_negatives(RUN, {"q2": {"d4"}}, (0, 5), 6, seed=0)["q2"]) == 4  # no pool: fewer
    assert parse_range("10-210") == (10, 210)
    with pytest.raises(ValueError):
        parse_range((5, 5))


def test_bm25_negatives_come_from_the_bm25_ranking():
    corpus = {f"d{i}": Document(f"d{i}", text) for i, text in enumerate(
        ["cats sit on mats", "cats and dogs", "a cat sat", "bread baking", "quantum physics", "sour dough bread"])}
    negs = bm25_negatives(corpus, {"q": "cat mat"}, {"q": {"d0"}}, rank_range=(0, 10), negative_number=2, seed=0,
                          fill_random=False)
    assert set(negs["q"]) <= {"d1", "d2"} and len(negs["q"]) == 2  # only docs BM25 retrieved, never the positive


def test_dense_negatives_follow_the_dense_ranking(encoder, private_cache):
    corpus = {d: Document(d, text) for d, text in {
        "cat1": "The cat sat on the mat.", "cat2": "A kitten sleeps on a rug.", "cat3": "Cats purr when content.",
        "dog": "Dogs bark at the mailman.", "bread": "Bake the bread until golden.", "atom": "Atoms have nuclei.",
    }.items()}
    from rerank_lib.first_stage import dense_search
    from rerank_lib.negatives import mine_dense_negatives

    ranking = [d for d, _ in sorted(dense_search(encoder, corpus, {"q": "a cat on a mat"}, k=6)["q"].items(),
                                    key=lambda kv: -kv[1])]
    negs = mine_dense_negatives(encoder, corpus, {"q": "a cat on a mat"}, {"q": {"cat1"}}, rank_range=(1, 4),
                                negative_number=2, seed=0, fill_random=False)["q"]
    assert len(negs) == 2 and "cat1" not in negs and set(negs) <= set(ranking[1:4])  # window 1-4 of the dense order


def test_teacher_calibration_is_fitted_on_labels_and_monotone():
    """Platt scaling of teacher scores on qrels (10_): p rises with the score and matches the label rates."""
    from rerank_lib.teacher import fit_calibration

    rng = np.random.default_rng(0)
    scores, qrels = {}, {}
    for q in range(200):  # relevant docs score higher on average; 1 relevant in 5 candidates
        scores[f"q{q}"] = {f"d{i}": float(rng.normal(1.5 if i == 0 else 0.0, 1.0)) for i in range(5)}
        qrels[f"q{q}"] = {"d0": 1}
    cal = fit_calibration(scores, qrels, teacher="toy", l2=1e-4)
    assert cal.scale > 0 and cal.n_pairs == 1000 and cal.n_positive == 200
    p = cal.probability([-2.0, 0.0, 2.0, 4.0])
    assert np.all(np.diff(p) > 0) and np.all((p > 0) & (p < 1))
    all_p = cal.probability([s for q in scores for s in scores[q].values()])
    assert abs(all_p.mean() - 0.2) < 0.02  # calibrated: mean probability = share of relevant candidates
    assert cal.margin([1.0]) == pytest.approx(np.log(cal.probability([1.0]) / (1 - cal.probability([1.0]))))
    with pytest.raises(ValueError, match="relevant and non-relevant"):
        fit_calibration({"q": {"a": 1.0}}, {"q": {"a": 1}}, teacher="toy")


@pytest.mark.parametrize("fmt", ["rag-retrieval", "flagembedding", "hopweaver"])
@pytest.mark.parametrize("content", ["", "\n  \n\t\n"])
def test_empty_training_file_is_an_error_naming_it(tmp_path, fmt, content):
    path = tmp_path / f"{fmt}.jsonl"
    path.write_text(content)
    with pytest.raises(DataFormatError, match=f"{fmt}.jsonl: no data: the file is empty or holds only blank lines"):
        read_pairs(path, fmt)


def test_training_file_with_a_non_utf8_byte_names_the_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"query": "a", "pos": ["p"], "neg": ["n"]}\n{"query": "caf\xe9", "pos": ["p"], "neg": ["n"]}\n')
    with pytest.raises(DataFormatError, match=r"train.jsonl, line 2: not valid UTF-8 \(byte 0xe9 at column 15\)"):
        read_pairs(path, "hopweaver")


def test_empty_listwise_conversations_file_is_an_error(tmp_path):
    from rerank_lib.listwise import read_conversations

    path = tmp_path / "sharegpt.jsonl"
    path.write_text("\n")
    with pytest.raises(DataFormatError, match="sharegpt.jsonl: no data"):
        read_conversations(path)


def test_read_pairs_gives_back_the_query_ids(tmp_path):
    groups = [TrainGroup("q one", ["a", "b"], [1.0, 0.0]), TrainGroup("q two", ["c", "d"], [1.0, 0.0])]
    path = write_pairs_jsonl(tmp_path / "x.jsonl", groups, "rag-retrieval")
    assert [g.query_id for g in read_pairs(path, "rag-retrieval", ["q1", "q2"])] == ["q1", "q2"]
    with pytest.raises(ValueError, match="2 lines but 3 query ids"):
        read_pairs(path, "rag-retrieval", ["q1", "q2", "q3"])


def test_per_group_with_labels_and_the_negatives_overlap():
    from rerank_lib.data.pairs import per_group, with_labels
    from rerank_lib.negatives import negatives_overlap

    groups = [TrainGroup("q", ["a", "b", "c"], [1.0, 0.0, 0.0], query_id="q1", doc_ids=["a", "b", "c"], n_pos=1,
                         teacher_scores=[0.0, 0.0, 0.0]),
              TrainGroup("r", ["d", "e"], [1.0, 0.0], query_id="q2", doc_ids=["d", "e"], n_pos=1,
                         teacher_scores=[0.0, 0.0])]
    assert per_group(groups, [0.9, 0.2, 0.1, 0.8, 0.3]) == [[0.9, 0.2, 0.1], [0.8, 0.3]]
    soft = with_labels(groups, [[1.2, 0.2, -0.1], [0.8, 0.3]])
    assert [g.labels for g in soft] == [[1.0, 0.2, 0.0], [0.8, 0.3]] and all(g.n_pos == len(g.docs) for g in soft)
    dense = [TrainGroup("q", ["a", "c", "x"], [1.0, 0.0, 0.0], query_id="q1", doc_ids=["a", "c", "x"], n_pos=1,
                        teacher_scores=[0.0, 0.0, 0.0]),
             TrainGroup("r", ["d", "y"], [1.0, 0.0], query_id="q2", doc_ids=["d", "y"], n_pos=1, teacher_scores=[0.0, 0.0])]
    stats = negatives_overlap(groups, dense)  # q1 shares c of {b, c}, q2 shares nothing of {e}; every p = sigmoid(0)
    assert stats == {"shared negatives (share)": 0.25, "teacher p(relevant), positives": 0.5,
                     "teacher p(relevant), main negatives": 0.5, "teacher p(relevant), dense negatives": 0.5}
