"""A training file of your own, in a peer's format, trained on from the shell (`--set train_file=...`, or the peer's
own flag): each reader's label variants, the dev slice held out of the file by query, bad lines named with file and
line, and a smoke-sized training per pipeline."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from rerank_lib import train
from rerank_lib.data import own_training
from rerank_lib.data.errors import DataFormatError
from rerank_lib.data.pairs import read_pairs
from rerank_lib.recipes import cross_encoder

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="no shared/data beside the project")


def write(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def binary_rows(n: int):
    return [{"query": f"what causes disease {i}", "pos": [f"disease {i} is caused by gene {i}"],
             "neg": [f"an unrelated passage number {j}" for j in range(3)]} for i in range(n)]


# ---------------------------------------------------------------------------------------------------- readers


def test_rag_retrieval_label_variants_become_training_labels(tmp_path):
    """binary {query, pos, neg}; multi-level {query, pos, pos_scores} with max_label 2 (scaled (s - 0) / 2);
    per-pair distillation {query, content, score} (one query's lines grouped)."""
    binary = read_pairs(write(tmp_path / "b.jsonl", binary_rows(1)), "rag-retrieval")
    assert binary[0].labels == [1.0, 0.0, 0.0, 0.0] and binary[0].n_pos == 1
    multi = read_pairs(write(tmp_path / "m.jsonl", [{"query": "q", "pos": ["a", "b", "c"], "pos_scores": [2, 1, 0]}]),
                       "rag-retrieval", max_label=2, min_label=0)
    assert multi[0].labels == [1.0, 0.5, 0.0]
    per_pair = read_pairs(write(tmp_path / "d.jsonl", [{"query": "q", "content": "a", "score": 0.9},
                                                       {"query": "r", "content": "x", "score": 0.1},
                                                       {"query": "q", "content": "b", "score": 0.2}]), "rag-retrieval")
    assert [(g.query, g.docs, g.labels) for g in per_pair] == [("q", ["a", "b"], [0.9, 0.2]), ("r", ["x"], [0.1])]


def test_flagembedding_fields_are_read(tmp_path):
    path = write(tmp_path / "f.jsonl", [{"query": "q", "pos": ["a"], "neg": ["b", "c"], "pos_scores": [3.5],
                                         "neg_scores": [-1.0, 0.5], "prompt": "Is B relevant to A?"}])
    (group,) = read_pairs(path, "flagembedding", knowledge_distillation=True)
    assert (group.labels, group.teacher_scores, group.prompt) == ([1.0, 0.0, 0.0], [3.5, -1.0, 0.5],
                                                                  "Is B relevant to A?")


@pytest.mark.parametrize("fmt, rows, message", [
    ("rag-retrieval", [binary_rows(1)[0], '{"query": "q", "pos": "one passage"}'],
     r"b\.jsonl, line 2, field 'pos': expected list"),
    ("rag-retrieval", [binary_rows(1)[0], {"query": "q", "pos": ["a"], "pos_scores": [3]}],
     r"b\.jsonl, line 2, field 'pos_scores\[0\]': label 3"),
    ("rag-retrieval", ["{not json"], r"b\.jsonl, line 1: not valid JSON"),
    ("flagembedding", [{"query": "q", "pos": ["a"], "neg": ["b"]}], r"b\.jsonl, line 1, field 'pos_scores': missing"),
])
def test_a_bad_line_is_named_with_file_and_line(tmp_path, fmt, rows, message):
    path = write(tmp_path / "b.jsonl", rows)
    with pytest.raises(DataFormatError, match=message):
        read_pairs(path, fmt, **({"knowledge_distillation": True} if fmt == "flagembedding" else {}))


# ---------------------------------------------------------------------------------------------------- dev slice


def test_the_dev_slice_is_held_out_by_query_and_seeded(tmp_path):
    """Every line of a dev query goes to dev (the query repeated on two lines stays on one side); the same seed gives
    the same slice; 30 queries: dev = max(min(20, 30 // 2), 10% of 30) = 15."""
    rows = binary_rows(30) + [binary_rows(30)[4]]  # query 4 on two lines
    groups = own_training.name_queries(read_pairs(write(tmp_path / "t.jsonl", rows), "rag-retrieval"), "t.jsonl")
    assert len({g.query_id for g in groups}) == 30 and groups[4].query_id == groups[30].query_id == "t.jsonl:4"
    train_groups, dev = own_training.split_by_query(groups, seed=13)
    train_q, dev_q = {g.query for g in train_groups}, {g.query for g in dev}
    assert not train_q & dev_q and len(dev_q) == 15 and len(train_q) == 15
    assert len(train_groups) + len(dev) == 31
    again = own_training.split_by_query(groups, seed=13)[1]
    assert [g.query_id for g in again] == [g.query_id for g in dev]
    assert {g.query_id for g in own_training.split_by_query(groups, seed=14)[1]} != {g.query_id for g in dev}


def test_the_dev_set_reranks_each_querys_own_docs_with_graded_labels(tmp_path):
    path = write(tmp_path / "m.jsonl", [{"query": "q", "pos": ["a", "b", "c"], "pos_scores": [1, 0.5, 0]},
                                        {"query": "r", "pos": ["x"], "pos_scores": [0]}])
    groups = own_training.name_queries(read_pairs(path, "rag-retrieval"), path)
    ds, candidates = own_training.reranking_dataset(groups, "m.jsonl", seed=13)
    assert list(ds.queries) == ["m.jsonl:0"]  # r has no relevant doc: nothing to rank it on
    grades = {ds.corpus[d].text: g for d, g in ds.qrels["m.jsonl:0"].items()}
    assert grades == {"a": 10, "b": 5, "c": 0}
    assert set(candidates["m.jsonl:0"]) == set(ds.qrels["m.jsonl:0"])
    assert sorted(candidates["m.jsonl:0"].values()) == [1.0, 2.0, 3.0]  # a seeded order, not the file's (pos first)
    again = own_training.reranking_dataset(groups, "m.jsonl", seed=13)[1]
    assert again == candidates


def test_settings_that_cannot_work_are_refused():
    with pytest.raises(ValueError, match="train_format must be one of"):
        cross_encoder.config("smoke", train_file="x.jsonl", train_format="sharegpt")
    with pytest.raises(ValueError, match="eval_file is the dev set of a train_file"):
        cross_encoder.config("smoke", eval_file="x.jsonl")
    cfg = cross_encoder.config("smoke")
    assert (cfg.train_file, cfg.eval_file) == (None, None)  # unset: the notebook's data, as before


# ---------------------------------------------------------------------------------------------------- shell runs


@pytest.fixture(scope="module")
def world(module_scratch):
    """One results folder and cache: the first run builds 01_first_stage's BM25 runs (SciFact test stays the test
    set), the others find them."""
    return module_scratch("own_files")


def shell(world, monkeypatch, *argv):
    monkeypatch.setenv("RERANK_CACHE_DIR", str(world / "cache"))
    rc = train.main([*argv, "--profile", "smoke", "--results-dir", str(world / "results")])
    # the trained runs' checkpoints (GBs for the LLM pipelines) are read by no later call: the records are in results
    shutil.rmtree(world / "cache" / "runs", ignore_errors=True)
    return rc


@pytest.mark.slow
def test_cross_encoder_trains_on_a_rag_retrieval_file_and_the_record_names_it(world, monkeypatch, tmp_path, capsys):
    path = write(tmp_path / "mine.jsonl", binary_rows(8))
    assert shell(world, monkeypatch, "cross_encoder", "--set", f"train_file={path}", "--set", "variants=[point_ce]",
                 "--set", "train.max_steps=1", "--set", "seeds=[]", "--evaluate") == 0  # one run, not smoke's two seeds
    out = capsys.readouterr().out
    assert "point_ce: 1 steps in" in out and "ce-minilm-point-ce" in out
    (record,) = (world / "results" / "shell" / "records" / "smoke").glob("cross_encoder__ce-minilm-point-ce__*.json")
    record = json.loads(record.read_text())
    assert record["training_queries"] == "file:mine.jsonl (8 q)"  # train 4 + dev 4 (min(20, 8 // 2))
    assert record["params"]["train_file"] == str(path)
    dev = write(tmp_path / "dev.jsonl", [{"query": f"which gene causes disease {i}", "pos": [f"gene {i}"],
                                          "neg": ["nothing at all"]} for i in range(3)])
    assert shell(world, monkeypatch, "cross_encoder", "--set", f"train_file={path}", "--set", f"eval_file={dev}",
                 "--set", "variants=[point_ce]", "--set", "train.max_steps=1", "--set", "seeds=[]", "--evaluate") == 0
    record = json.loads(next((world / "results" / "shell" / "records" / "smoke").glob(
        "cross_encoder__ce-minilm-point-ce__*.json")).read_text())
    assert record["training_queries"] == "file:mine.jsonl (11 q)"  # all 8 train + the eval file's 3


@pytest.mark.slow
@needs_data
def test_cross_encoder_trains_on_flagembeddings_example_with_its_own_flags(world, monkeypatch, capsys):
    """FlagEmbedding's examples/finetune/reranker example data (pos_scores / neg_scores) through its own flags:
    --train_data with --knowledge_distillation trains the group_ce_kd variant on the teacher scores."""
    path = DATA / "flagembedding" / "reranker" / "normal" / "examples.jsonl"
    assert shell(world, monkeypatch, "cross_encoder", "--train_data", str(path), "--knowledge_distillation", "True",
                 "--train_group_size", "4", "--set", "train.max_steps=1", "--set", "seeds=[]") == 0
    assert "group_ce_kd: 1 steps in" in capsys.readouterr().out


@pytest.mark.slow
def test_cross_encoder_refuses_a_bad_line_before_training(world, monkeypatch, tmp_path, capsys):
    path = write(tmp_path / "bad.jsonl", [*binary_rows(3), '{"query": "q", "pos": ["a"], "neg": [1]}'])
    assert shell(world, monkeypatch, "cross_encoder", "--set", f"train_file={path}", "--set", "variants=[point_ce]",
                 "--set", "train.max_steps=1") == 1
    err = capsys.readouterr().err
    assert f"error: {path}, line 4, field 'neg[0]': expected str, got int" in err
    assert shell(world, monkeypatch, "cross_encoder", "--set", f"train_file={tmp_path / 'none.jsonl'}",
                 "--set", "train.max_steps=1") == 1
    assert "none.jsonl: no such file" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------- inranker


def inranker_rows(n: int):
    rows = []
    for i in range(n):
        rows.append({"query": f"what causes disease {i}", "contents": f"disease {i} is caused by gene {i}",
                     "true_logit": 2.0, "false_logit": -1.0})
        rows += [{"query": f"what causes disease {i}", "contents": f"an unrelated passage {j}", "true_logit": -2.0,
                  "false_logit": 1.5} for j in range(2)]
    return rows


def test_inranker_file_gives_stage2_its_data_and_a_held_out_dev_slice(tmp_path, monkeypatch):
    from rerank_lib.recipes import inranker

    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))
    path = write(tmp_path / "inr.jsonl", inranker_rows(6))
    synth = inranker.synthetic_data(inranker.config("smoke", stage2_file=str(path)), tmp_path / "results")
    trained = {json.loads(line)["query"] for line in synth.labels_file.read_text().splitlines()}
    dev = set(synth.dev.data.queries.values())
    assert len(trained) == len(dev) == 3 and not trained & dev  # 6 queries: dev min(20, 6 // 2) = 3, held out
    assert synth.provenance.describe() == "file:inr.jsonl (6 q)"
    for qid, docs in synth.dev.teacher.items():  # the teacher's margin: 2 - -1 = 3 (positive), -2 - 1.5 = -3.5
        assert sorted(docs.values()) == [-3.5, -3.5, 3.0]
        # graded by P(true): round(10 / (1 + e^-3)) = 10, round(10 / (1 + e^3.5)) = 0
        assert sorted(synth.dev.data.qrels[qid].values()) == [0, 0, 10]


def test_inranker_bad_line_and_settings(tmp_path):
    from rerank_lib.data.inranker import read_custom_jsonl
    from rerank_lib.recipes import inranker

    path = write(tmp_path / "bad.jsonl", [*inranker_rows(1), {"query": "q", "contents": "d", "true_logit": "high",
                                                              "false_logit": 0.0}])
    with pytest.raises(DataFormatError, match=r"bad\.jsonl, line 4, field 'true_logit': expected int or float"):
        read_custom_jsonl(path)
    with pytest.raises(ValueError, match="stage2_eval_file is the dev set of a stage2_file"):
        inranker.config("smoke", stage2_eval_file="x.jsonl")


def test_inrankers_own_load_custom_dataset_call_maps_to_stage2_file(tmp_path):
    from rerank_lib.peer_runs import translate

    source = ROOT.parent / "shared" / "peers" / "unicamp-dl" / "InRanker" / "docs" / "training.md"
    if not source.is_file():
        pytest.skip("no shared/peers beside the project")
    doc = tmp_path / "training.md"
    doc.write_text(source.read_text().replace("distill_file=None", 'distill_file="mine.jsonl"'))
    (run,) = translate(doc).runs
    assert run.settings()["stage2_file"] == "mine.jsonl"
    assert "load_custom_dataset()" not in {r.peer for r in run.refused}


@pytest.mark.slow
def test_inranker_trains_stage2_on_a_custom_jsonl_and_refuses_a_bad_line_first(world, monkeypatch, tmp_path, capsys):
    bad = write(tmp_path / "bad.jsonl", [*inranker_rows(2), '{"query": "q", "contents": "d"}'])
    assert shell(world, monkeypatch, "inranker", "--set", f"stage2_file={bad}") == 1
    assert f"error: {bad}, line 7, field 'true_logit': missing" in capsys.readouterr().err
    path = write(tmp_path / "inr.jsonl", inranker_rows(6))
    assert shell(world, monkeypatch, "inranker", "--set", f"stage2_file={path}", "--set", "stage1.train.max_steps=1",
                 "--set", "stage2.train.max_steps=1", "--set", "ablation.train.max_steps=1") == 0
    assert "stage2: 1 steps in" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------- retriever


def localrqa_rows(n: int):
    return [{"questions": [f"how do I return item {i}?"],
             "gold_docs": [{"page_content": f"Returns of item {i}: within 30 days.", "fmt_content": f"Returns {i}",
                            "metadata": {"source": f"faq/{i}"}}]} for i in range(n)]


def test_localrqa_files_train_with_a_held_out_dev_slice_and_never_a_test_question(tmp_path):
    from rerank_lib.data.localrqa import RetrieverSplits, file_splits
    from rerank_lib.data.splits import TrainingQueries
    from rerank_lib.data.types import Dataset

    rows = localrqa_rows(10)
    rows[3]["questions"] = ["What is in the test set?"]  # a test question word for word: dropped
    path = write(tmp_path / "mine_w_q.jsonl", rows)
    test_ds = Dataset("faire", "test", {}, {"t1": "what is in the test set?"}, {})
    faire = RetrieverSplits(None, [], test_ds, test_ds, TrainingQueries.of("x", {}), {}, [])
    data = file_splits(path, None, faire, seed=13)
    train_q, dev_q = {ex.question for ex in data.train}, set(data.eval.queries.values())
    assert len(train_q) + len(dev_q) == 9 and not train_q & dev_q and len(dev_q) == 4  # 9 left: dev min(20, 9 // 2)
    assert data.dropped_overlap == ["train-3"] and data.test is test_ds
    assert {d for q in data.eval.qrels.values() for d in q} <= set(data.eval.corpus)
    assert data.provenance.describe() == "file:mine_w_q.jsonl (9 q)"
    bad = write(tmp_path / "bad_w_q.jsonl", [*localrqa_rows(2), {"questions": ["q"], "gold_docs": []}])
    with pytest.raises(DataFormatError, match=r"bad_w_q\.jsonl, line 3, field 'gold_docs': empty"):
        file_splits(bad, None, faire, seed=13)


def test_localrqas_flags_map_to_the_files_and_its_fid_json_is_refused():
    args = train.build_parser().parse_args(["retriever", "--train_file", "t_w_q.jsonl", "--eval_file", "e_w_q.jsonl",
                                            "--profile", "smoke", "--set", "methods=[ctl]"])
    cfg = train.resolve(args)[1]
    assert (cfg.train_file, cfg.eval_file) == ("t_w_q.jsonl", "e_w_q.jsonl")
    args = train.build_parser().parse_args(["retriever", "--train_file", "train_w_q_fid.json", "--profile", "smoke"])
    with pytest.raises(train.UsageError, match=r"1 setting\(s\) refused .*--train_file"):
        train.resolve(args)


@pytest.mark.slow
@needs_data
def test_retriever_trains_ctl_on_localrqas_own_train_file(world, monkeypatch, capsys):
    path = DATA / "localrqa" / "faire" / "processed" / "train_w_q.jsonl"
    assert shell(world, monkeypatch, "retriever", "--train_file", str(path), "--set", "methods=[ctl]",
                 "--set", "ctl_train.max_steps=1", "--evaluate") == 0
    assert "ctl: 1 steps in" in capsys.readouterr().out
    (record,) = (world / "results" / "shell" / "records" / "smoke").glob("retriever__ctl-minilm__*.json")
    assert json.loads(record.read_text())["training_queries"].startswith("file:train_w_q.jsonl (")


# ---------------------------------------------------------------------------------------------------- rankllm


def sharegpt_rows(n: int, order=(2, 0, 3, 1)):
    from rerank_lib.listwise.prompts import RANK_ZEPHYR, build_messages, format_ranking

    rows = []
    for i in range(n):
        passages = [f"passage {j} about topic {i}" for j in range(len(order))]
        system, user = build_messages(f"what is topic {i}", [("", p) for p in passages], RANK_ZEPHYR, 300)
        rows.append({"id": f"q{i}", "conversations": [
            {"from": "system", "value": system["content"]}, {"from": "human", "value": user["content"]},
            {"from": "gpt", "value": format_ranking(list(order), alpha=False)}]})
    return rows


@pytest.mark.slow
def test_rankllm_trains_on_sharegpt_rankzephyr_data_with_rank_llms_flag(world, monkeypatch, tmp_path, capsys):
    """rank_llm's --train_dataset_path with a ShareGPT file of your own: read, trained on, named by the records'
    provenance line; a bad line (an answer naming a passage twice) stops the command with its file and line."""
    bad = sharegpt_rows(2)
    bad[1]["conversations"][2]["value"] = "[1] > [1] > [2] > [3]"
    bad_path = write(tmp_path / "bad.jsonl", bad)
    assert shell(world, monkeypatch, "rankllm", "--train_dataset_path", str(bad_path), "--set",
                 "objectives=[ranking]") == 1
    assert f"error: {bad_path}, line 2, field 'conversations[2].value'" in capsys.readouterr().err
    path = write(tmp_path / "rz.jsonl", sharegpt_rows(4))
    assert shell(world, monkeypatch, "rankllm", "--train_dataset_path", str(path), "--set", "objectives=[ranking]",
                 "--set", "train.max_steps=1") == 0
    out = capsys.readouterr().out
    # the provenance: the DL year's and SciFact's dev slices (checkpoint selection) + the file's queries
    assert re.search(r"\+ file:rz\.jsonl \(\d+ q\): 4 conversations from 4 queries", out)
    assert "ranking: 1 steps in" in out


# ---------------------------------------------------------------------------------------------------- hopweaver


def hopweaver_rows(n: int):
    return [{"query": f"which gene links disease {i} and trait {i}",
             "pos": [f"gene {i} links disease {i} to trait {i}"],
             "neg": [f"an unrelated passage {i}.{j}" for j in range(3)]} for i in range(n)]


def test_hopweaver_file_is_split_into_train_and_a_seeded_dev_slice_or_its_eval_file(tmp_path):
    from rerank_lib.recipes import hopweaver

    path = write(tmp_path / "hw.jsonl", hopweaver_rows(10))
    split = hopweaver.own_split(hopweaver.config("smoke", train_file=str(path)))
    # own_dev_fraction 0.2 of 10 lines = 2 dev lines, the other 8 train; ids are '<split>-<line>'
    assert (len(split.train.queries), len(split.dev.queries)) == (8, 2)
    assert set(split.train.queries) | set(split.dev.queries) == {f"train-{i}" for i in range(1, 11)}
    assert split.provenance.describe() == "file:hw.jsonl (10 q)"
    assert hopweaver.own_split(hopweaver.config("smoke", train_file=str(path))).dev.queries == split.dev.queries
    dev = write(tmp_path / "dev.jsonl", hopweaver_rows(13)[10:])
    split = hopweaver.own_split(hopweaver.config("smoke", train_file=str(path), eval_file=str(dev)))
    assert (len(split.train.queries), sorted(split.dev.queries)) == (10, ["dev-1", "dev-2", "dev-3"])
    with pytest.raises(ValueError, match="eval_file is the dev set of a train_file"):
        hopweaver.config("smoke", eval_file=str(dev))
    bad = write(tmp_path / "bad.jsonl", [*hopweaver_rows(2), {"query": "q", "pos": ["a"], "neg": []}])
    with pytest.raises(DataFormatError, match=re.escape(f"{bad}, line 3, field 'neg'")):
        hopweaver.own_split(hopweaver.config("smoke", train_file=str(bad)))
    cfg = hopweaver.config("smoke")
    assert "train_file" not in hopweaver.settings_of(cfg) and "eval_file" not in hopweaver.settings_of(cfg)


@pytest.mark.slow
def test_hopweaver_trains_on_a_jsonl_given_by_its_own_flag_and_refuses_a_bad_line(world, monkeypatch, tmp_path, capsys):
    """HopWeaver's --train_data with a {query, pos, neg} file of your own: one smoke step, the dev lines held out
    of the file; a bad line stops the command before training, naming file and line."""
    bad = write(tmp_path / "bad.jsonl", [*hopweaver_rows(3), '{"query": "q", "pos": ["a"], "neg": [7]}'])
    assert shell(world, monkeypatch, "hopweaver", "--train_data", str(bad), "--set", "train.max_steps=1") == 1
    assert f"error: {bad}, line 4, field 'neg[0]'" in capsys.readouterr().err
    path = write(tmp_path / "hw.jsonl", hopweaver_rows(5))
    assert shell(world, monkeypatch, "hopweaver", "--train_data", str(path), "--set", "train.max_steps=1") == 0
    out = capsys.readouterr().out
    assert "4 train + 1 dev lines of file:hw.jsonl" in out  # round(0.2 * 5) = 1 dev line
    assert "hopweaver-own-ft: 1 steps in" in out
