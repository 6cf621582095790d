"""The command line as a user runs it: `python -m rerank_lib ...` on small files, exit codes, files, printed numbers."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rerank_lib import cli, runner
from rerank_lib.cli.common import UsageError
from rerank_lib.cli.rerank import detect_kind
from rerank_lib.data.corpus_files import read_corpus_file, read_queries_file
from rerank_lib.data.trec import read_qrels, read_run
from rerank_lib.evaluation import evaluate, paired_test, per_query
from rerank_lib.first_stage import bm25_search

PROJECT = Path(__file__).resolve().parents[1]

CORPUS = (
    "d1\tThe cat sat on the mat.\n"
    "d2\tDogs are loyal animals that love walks.\n"
    "d3\tPython is a programming language.\n"
    "d4\tCats and dogs can live together peacefully.\n"
    "d5\tThe stock market fell sharply today.\n"
)
QUERIES = "1\twhere did the cat sit\n2\tprogramming language python\n"
QRELS = "1 0 d1 2\n1 0 d4 1\n1 0 d5 0\n2 0 d3 1\n"
# q1: d4 (grade 1) above d1 (grade 2); q2: d3 (grade 1) second.
RUN = ("1 Q0 d4 1 5.0 hand\n1 Q0 d1 2 4.0 hand\n1 Q0 d2 3 3.0 hand\n1 Q0 d5 4 2.0 hand\n1 Q0 d3 5 1.0 hand\n"
       "2 Q0 d1 1 5.0 hand\n2 Q0 d3 2 4.0 hand\n2 Q0 d2 3 3.0 hand\n2 Q0 d4 4 2.0 hand\n2 Q0 d5 5 1.0 hand\n")
# A baseline that ranks every relevant document first.
BASELINE = ("1 Q0 d1 1 3.0 base\n1 Q0 d4 2 2.0 base\n1 Q0 d5 3 1.0 base\n"
            "2 Q0 d3 1 3.0 base\n2 Q0 d1 2 2.0 base\n")


@pytest.fixture()
def files(tmp_path):
    paths = {}
    for name, text in (("corpus.tsv", CORPUS), ("queries.tsv", QUERIES), ("qrels.txt", QRELS), ("run.trec", RUN),
                       ("base.trec", BASELINE)):
        paths[name.split(".")[0]] = tmp_path / name
        (tmp_path / name).write_text(text)
    return paths


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def in_process(capsys, *args):
    """cli.main in this process (no interpreter start-up: for the many error cases); same exit codes."""
    capsys.readouterr()
    try:
        status = cli.main([str(a) for a in args])
    except SystemExit as exit_:  # argparse's usage errors
        status = exit_.code
    out, err = capsys.readouterr()
    return Result(status, out, err)


def rerank_repro(*args, cache=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if cache is not None:
        env["RERANK_CACHE_DIR"] = str(cache)
    return subprocess.run([sys.executable, "-m", "rerank_lib", *map(str, args)], cwd=PROJECT, env=env,
                          capture_output=True, text=True, timeout=600)


# ------------------------------------------------------------------------------------------------- evaluate


def test_evaluate_prints_the_library_numbers_and_hand_computed_ones(files):
    result = rerank_repro("evaluate", files["run"], files["qrels"], "-m", "nDCG@10", "-m", "recip_rank",
                          "-m", "R@100", "--json")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)["measures"]
    expected = evaluate(read_run(files["run"]), read_qrels(files["qrels"]), ["nDCG@10", "RR", "R@100"])
    assert printed == pytest.approx(expected, abs=1e-12)
    # trec_eval gains are the grades: q1 DCG = 1 + 2/log2(3), ideal 2 + 1/log2(3); q2 = 1/log2(3).
    import math
    q1 = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    q2 = 1 / math.log2(3)
    assert printed["nDCG@10"] == pytest.approx((q1 + q2) / 2, abs=1e-9)
    assert printed["RR"] == pytest.approx((1.0 + 0.5) / 2)
    assert printed["R@100"] == pytest.approx(1.0)

    text = rerank_repro("evaluate", files["run"], files["qrels"], "-m", "ndcg_cut_10", "-m", "recip_rank")
    assert text.returncode == 0, text.stderr
    lines = {line.split()[0]: line.split()[1] for line in text.stdout.splitlines()[3:]}
    assert lines == {"nDCG@10": f"{expected['nDCG@10']:.4f}", "RR": f"{expected['RR']:.4f}"}


def test_evaluate_defaults_per_query_and_compare(files):
    result = rerank_repro("evaluate", files["run"], files["qrels"], "--per-query", "--compare", files["base"],
                          "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    names = ["nDCG@10", "RR@10", "R@100"]
    assert list(report["measures"]) == names
    run, base, qrels = read_run(files["run"]), read_run(files["base"]), read_qrels(files["qrels"])
    wide = per_query(run, qrels, names, wide=True)
    assert report["per_query"]["2"]["RR@10"] == pytest.approx(0.5) and report["per_query"]["1"]["RR@10"] == 1.0
    assert report["per_query"]["1"]["nDCG@10"] == pytest.approx(wide.loc["1", "nDCG@10"])
    tests = {t["measure"]: t for t in report["compare"]["tests"]}
    want = paired_test(per_query(base, qrels, names), per_query(run, qrels, names), "nDCG@10")
    assert tests["nDCG@10"]["delta"] == pytest.approx(want.delta) and want.delta < 0
    assert tests["nDCG@10"]["p_value"] == pytest.approx(want.p_value)
    assert tests["R@100"]["delta"] == 0.0 and tests["R@100"]["p_value"] == 1.0

    text = rerank_repro("evaluate", files["run"], files["qrels"], "--per-query", "--compare", files["base"])
    assert text.returncode == 0, text.stderr
    rows = {line.split()[0]: line.split()[1:] for line in text.stdout.splitlines() if line[:1].isalnum()}
    assert rows["2"] == [f"{wide.loc['2', m]:.4f}" for m in names]
    assert rows["RR@10"] == ["0.7500", "1.0000", "-0.2500", f"{tests['RR@10']['p_value']:.4f}"]


# ------------------------------------------------------------------------------------------------- search


def test_search_bm25_writes_the_library_run(files, tmp_path):
    out = tmp_path / "out" / "bm25.trec"
    result = rerank_repro("search", "--corpus", files["corpus"], "--queries", files["queries"], "--method", "bm25",
                          "--k", 3, "--output", out)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout
    expected = bm25_search(read_corpus_file(files["corpus"]), read_queries_file(files["queries"]), k=3)
    written = read_run(out)
    assert list(written) == ["1", "2"] and set(written["2"]) == set(expected["2"])
    for qid, docs in expected.items():
        assert written[qid] == pytest.approx(docs, abs=1e-6)
    assert out.read_text().splitlines()[0].endswith(" bm25")


def test_search_dense_ranks_every_document(files, tmp_path, encoder):
    out = tmp_path / "dense.trec"
    jsonl = tmp_path / "corpus.jsonl"
    jsonl.write_text("".join(json.dumps({"id": line.split("\t")[0], "contents": line.split("\t")[1]}) + "\n"
                             for line in CORPUS.splitlines()))
    result = rerank_repro("search", "--corpus", jsonl, "--queries", files["queries"], "--method", "dense",
                          "--model", "minilm-l6", "--k", 5, "--output", out, cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    written = read_run(out)
    assert {q: len(d) for q, d in written.items()} == {"1": 5, "2": 5}
    from rerank_lib.first_stage import dense_search
    expected = dense_search(encoder, read_corpus_file(files["corpus"]), read_queries_file(files["queries"]), k=5)
    for qid in expected:  # the CLI computes in fp32 by default, on every machine: the fp32 library numbers
        assert written[qid] == pytest.approx(expected[qid], abs=1e-5)
    assert max(written["2"], key=written["2"].get) == "d3"
    assert "precision fp32" in result.stdout


# A corpus big enough for a top 10 whose order means something, with documents longer than 32 tokens.
TOPICS = ["cats", "dogs", "python code", "stock markets", "baking bread", "rainforests", "jazz music", "volcanoes",
          "chess openings", "vaccines", "solar panels", "tea", "glaciers", "bicycles", "honey bees"]
BIG_CORPUS = {f"d{i}": f"Note {i} on {t}: " + " ".join(f"{t} fact {j} with some detail about {TOPICS[(i + j) % 15]}."
                                                      for j in range(1 + i % 4))
              for i, t in enumerate(TOPICS * 2)}
BIG_QUERIES = {f"q{i}": f"tell me about {t}" for i, t in enumerate(TOPICS[:6])}


def test_search_dense_with_a_folder_uses_its_own_settings(tmp_path):
    """A sentence-transformers folder (CLS pooling, max length 32, query/document prompts): the CLI's top 10 and
    scores equal SentenceTransformer(folder)'s (to 1e-5, fp32); it used the built-in's mean/256/no prompts."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from test_bi_encoder import st_folder

    folder = st_folder(tmp_path / "st-model")
    corpus, queries = tmp_path / "corpus.tsv", tmp_path / "queries.tsv"
    corpus.write_text("".join(f"{d}\t{t}\n" for d, t in BIG_CORPUS.items()))
    queries.write_text("".join(f"{q}\t{t}\n" for q, t in BIG_QUERIES.items()))
    out = tmp_path / "dense.trec"
    result = rerank_repro("search", "--corpus", corpus, "--queries", queries, "--method", "dense", "--model", folder,
                          "--k", 10, "--output", out, cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    peer = SentenceTransformer(str(folder), device="cpu")
    ids = list(BIG_CORPUS)
    scores = peer.encode_query(list(BIG_QUERIES.values())) @ peer.encode_document(list(BIG_CORPUS.values())).T
    written = read_run(out)
    for row, qid in zip(scores, BIG_QUERIES):
        top = np.argsort(-row, kind="stable")[:10]
        assert sorted(written[qid], key=written[qid].get, reverse=True) == [ids[i] for i in top]
        assert [written[qid][ids[i]] for i in top] == pytest.approx(row[top].tolist(), abs=1e-5)


# ------------------------------------------------------------------------------------------------- rerank


def test_rerank_with_the_builtin_cross_encoder(files, tmp_path):
    out = tmp_path / "ce.trec"
    result = rerank_repro("rerank", files["run"], "--corpus", files["corpus"], "--queries", files["queries"],
                          "--model", "minilm-l6", "--allow-untrained-head", "--depth", 5, "--output", out,
                          cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert "cross-encoder minilm-l6, depth 5, precision fp32, untrained head" in result.stdout
    assert "rerank: 100%" in result.stderr and "2/2" in result.stderr  # progress, per batch of queries, on stderr
    import torch

    from rerank_lib.rerankers import CrossEncoder
    expected = CrossEncoder("minilm-l6", dtype=torch.float32).rerank(read_run(files["run"]), read_corpus_file(files["corpus"]),
                                                read_queries_file(files["queries"]), depth=5)
    written = read_run(out)
    assert {q: len(d) for q, d in written.items()} == {"1": 5, "2": 5}
    for qid in expected:
        assert written[qid] == pytest.approx(expected[qid], abs=1e-5)

    shallow = rerank_repro("rerank", files["run"], "--corpus", files["corpus"], "--queries", files["queries"],
                           "--model", "minilm-l6", "--allow-untrained-head", "--depth", 2, "--output",
                           tmp_path / "top2.trec")
    assert shallow.returncode == 0, shallow.stderr
    assert {q: sorted(d) for q, d in read_run(tmp_path / "top2.trec").items()} == {"1": ["d1", "d4"],
                                                                                  "2": ["d1", "d3"]}


def test_rerank_refuses_an_untrained_head_unless_asked(files, tmp_path, capsys):
    """minilm-l6 (an encoder) and the built monoT5 student get fresh heads: their scores are random (nDCG@10 0.716
    -> 0.204 on SciFact, with no warning before); the loading report says so and rerank stops."""
    for model in ("minilm-l6", "minilm-monot5"):
        result = in_process(capsys, "rerank", files["run"], "--corpus", files["corpus"], "--queries",
                            files["queries"], "--model", model, "--output", tmp_path / "x.trec")
        assert result.returncode == 2, result.stderr
        assert f"{model} has no trained" in result.stderr and "--allow-untrained-head" in result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.trec").exists()


def test_rerank_refuses_an_incomplete_folder_in_one_line(files, tmp_path, capsys):
    """Weights and config without a tokenizer (what the shell's --output_dir held): one line, exit 1, no run."""
    from rerank_lib.rerankers import CrossEncoder

    folder = tmp_path / "ce-model"
    CrossEncoder("minilm-l6").model.save_pretrained(folder)
    result = in_process(capsys, "rerank", files["run"], "--corpus", files["corpus"], "--queries", files["queries"],
                        "--model", folder, "--output", tmp_path / "x.trec")
    _one_line_error(result, f"{folder}: incomplete cross-encoder folder, missing tokenizer")
    assert not (tmp_path / "x.trec").exists()


def test_rerank_with_a_sentence_transformers_cross_encoder_folder_scores_as_it_does(files, tmp_path):
    """CrossEncoder(folder)'s max length (24 here, documents longer) and trained head: same scores to 1e-5 (fp32)."""
    import torch
    from sentence_transformers import CrossEncoder as STCrossEncoder

    from rerank_lib.models import resolve

    torch.manual_seed(5)
    STCrossEncoder(resolve("minilm-l6").source, num_labels=1, max_length=8, device="cpu").save_pretrained(
        str(tmp_path / "st-ce"))
    out = tmp_path / "ce.trec"
    result = rerank_repro("rerank", files["run"], "--corpus", files["corpus"], "--queries", files["queries"],
                          "--model", tmp_path / "st-ce", "--depth", 5, "--output", out, cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    peer = STCrossEncoder(str(tmp_path / "st-ce"), device="cpu")
    corpus, queries = read_corpus_file(files["corpus"]), read_queries_file(files["queries"])
    written = read_run(out)
    for qid, docs in read_run(files["run"]).items():
        scores = peer.predict([(queries[qid], corpus[d].text_for_model) for d in docs],
                              activation_fn=torch.nn.Identity())
        assert written[qid] == pytest.approx(dict(zip(docs, scores.tolist())), abs=1e-5)


def test_rerank_monot5_orders_as_the_inranker_package(files, tmp_path):
    """A monoT5 folder reranked from the shell scores as inranker's T5Ranker does (margin true - false, to 1e-5):
    fp32 on every machine (under bf16 autocast the orders agreed with the package on 4 of 20 queries)."""
    import numpy as np
    from inranker import T5Ranker as PeerT5Ranker

    from rerank_lib.export import export_monot5
    from rerank_lib.rerankers.monot5 import T5Ranker, build_t5_from_config

    model, tok = build_t5_from_config(seed=3, d_model=16, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=2,
                                      d_kv=8)
    folder = export_monot5(T5Ranker.from_model(model.eval(), tok, device="cpu"), tmp_path / "monot5")
    out = tmp_path / "t5.trec"
    result = rerank_repro("rerank", files["run"], "--corpus", files["corpus"], "--queries", files["queries"],
                          "--model", folder, "--output", out, cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    peer = PeerT5Ranker(str(folder), device="cpu", batch_size=2)
    corpus, queries = read_corpus_file(files["corpus"]), read_queries_file(files["queries"])
    written = read_run(out)
    for qid, docs in read_run(files["run"]).items():
        _, logits = peer.get_scores(queries[qid], [corpus[d].text_for_model for d in docs], return_logits=True)
        margins = np.asarray(logits)[:, 1] - np.asarray(logits)[:, 0]
        assert written[qid] == pytest.approx(dict(zip(docs, margins.tolist())), abs=1e-5)
    assert "(monot5 " in result.stdout and "precision fp32" in result.stdout


def test_rerank_help_example_trains_the_model_it_reranks_with():
    """The example must rank: its --model is the folder a train command of the example writes, not a built-in
    with an untrained head; both commands parse."""
    import shlex

    from rerank_lib.cli import rerank

    commands = [shlex.split(line.split("#")[0]) for line in rerank.EXAMPLE.splitlines()]
    assert [c[:2] for c in commands] == [["rerank-repro", "train"], ["rerank-repro", "rerank"]]
    parser = cli.build_parser()
    trained, reranked = (parser.parse_args(c[1:]) for c in commands)
    assert reranked.model == trained.output_dir and not reranked.allow_untrained_head
    assert reranked.model not in ("minilm-l6", "minilm-monot5")


def test_precision_defaults_to_fp32_on_every_command_and_is_recorded(files, tmp_path, capsys, monkeypatch):
    """On a CPU with native bf16 the CLI ran bf16 autocast with no switch (monoT5 orders then disagreed with the
    inranker package); now --precision fp32|bf16|auto, fp32 by default, and records say what ran."""
    import torch

    from rerank_lib import models, train
    from rerank_lib.results import hardware_info

    parser = cli.build_parser()
    for argv in (["search", "--corpus", "c", "--queries", "q", "--method", "bm25", "--output", "o"],
                 ["rerank", "r", "--corpus", "c", "--queries", "q", "--model", "m", "--output", "o"]):
        assert parser.parse_args(argv).precision == "fp32"
        assert parser.parse_args(argv + ["--precision", "auto"]).precision == "auto"
    for argv, expected in ((["--profile", "smoke"], "no"), (["--profile", "smoke", "--precision", "auto"], "auto"),
                           (["--profile", "smoke", "--precision", "bf16"], "bf16"),
                           (["--profile", "smoke", "--bf16"], "bf16"),
                           (["--profile", "smoke", "--set", "train.mixed_precision=auto"], "auto")):
        _, cfg = train.resolve(parser.parse_args(["train", "cross_encoder", *argv]))
        assert cfg.train.mixed_precision == expected, argv
    with pytest.raises(train.UsageError, match="disagree"):
        train.resolve(parser.parse_args(["train", "cross_encoder", "--bf16", "--precision", "fp32"]))
    from rerank_lib.recipes import launch  # a notebook's launched training keeps the notebook's precision

    assert launch.launch_command("retriever", Path("a.yaml"), Path("s.yaml"), "r")[-2:] == ["--precision", "auto"]

    monkeypatch.setattr(models.device, "cpu_supports_bf16", lambda: True)  # a machine where 'auto' means bf16
    monkeypatch.delenv(models.PRECISION_ENV, raising=False)
    assert models.compute_dtype("cpu") == torch.bfloat16 and hardware_info()["precision"] == "bf16"
    with models.precision_scope("fp32"):
        assert models.compute_dtype("cpu") == torch.float32 and hardware_info()["precision"] == "fp32"
    assert models.precision_setting() == "auto"  # restored
    runs = {}
    for precision in ("fp32", "auto"):
        out = tmp_path / f"{precision}.trec"
        result = in_process(capsys, "rerank", files["run"], "--corpus", files["corpus"], "--queries",
                            files["queries"], "--model", "minilm-l6", "--allow-untrained-head", "--precision",
                            precision, "--output", out)
        assert result.returncode == 0, result.stderr
        assert f"precision {precision}" in result.stdout
        runs[precision] = read_run(out)
    from rerank_lib.rerankers import CrossEncoder

    fp32 = CrossEncoder("minilm-l6", dtype=torch.float32).rerank(
        read_run(files["run"]), read_corpus_file(files["corpus"]), read_queries_file(files["queries"]))
    for qid in fp32:
        assert runs["fp32"][qid] == pytest.approx(fp32[qid], abs=1e-5)
    assert any(runs["auto"][q][d] != pytest.approx(fp32[q][d], abs=1e-5) for q in fp32 for d in fp32[q])


def test_kind_is_read_from_the_model_folder(tmp_path):
    def folder(name, **files):
        path = tmp_path / name
        path.mkdir()
        for file, content in files.items():
            (path / file.replace("_json", ".json")).write_text(json.dumps(content))
        return str(path)

    assert detect_kind(folder("ce", cross_encoder_json={"max_length": 64}, config_json={})) == "cross-encoder"
    assert detect_kind(folder("llm", decoder_reranker_json={"head": "score"})) == "llm"
    assert detect_kind(folder("t5", config_json={"architectures": ["T5ForConditionalGeneration"],
                                                 "is_encoder_decoder": True})) == "monot5"
    assert detect_kind(folder("bert", config_json={"architectures": ["BertForSequenceClassification"]})) == \
        "cross-encoder"
    assert detect_kind("minilm-monot5") == "monot5"
    assert detect_kind("minilm-l6") == "cross-encoder"
    with pytest.raises(UsageError, match="--kind llm"):
        detect_kind(folder("lm", config_json={"architectures": ["LlamaForCausalLM"]}))
    with pytest.raises(UsageError, match="not a model folder"):
        detect_kind(folder("empty"))


# ------------------------------------------------------------------------------------------------- errors


def _one_line_error(result, *needles):
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_errors_name_file_and_line(files, tmp_path, capsys):
    dup = tmp_path / "dup.trec"
    dup.write_text("1 Q0 d1 1 2.0 t\n1 Q0 d4 2 1.0 t\n1 Q0 d1 3 0.5 t\n")
    _one_line_error(rerank_repro("evaluate", dup, files["qrels"]), "dup.trec, line 3", "'d1' appears twice")

    latin = tmp_path / "latin.tsv"
    latin.write_bytes(b"d1\tok\nd2\tcaf\xe9 au lait\n")
    _one_line_error(in_process(capsys, "search", "--corpus", latin, "--queries", files["queries"], "--method", "bm25",
                                 "--output", tmp_path / "x.trec"), "latin.tsv, line 2", "not valid UTF-8")

    bad_jsonl = tmp_path / "corpus.jsonl"
    bad_jsonl.write_text('{"_id": "d1", "text": "a"}\n{"_id": "d2", "body": "b"}\n')
    _one_line_error(in_process(capsys, "search", "--corpus", bad_jsonl, "--queries", files["queries"], "--method", "bm25",
                                 "--output", tmp_path / "x.trec"), "corpus.jsonl, line 2", "text/contents")

    unknown_doc = tmp_path / "unknown.trec"
    unknown_doc.write_text("1 Q0 d1 1 2.0 t\n2 Q0 d9 1 1.0 t\n")
    _one_line_error(in_process(capsys, "rerank", unknown_doc, "--corpus", files["corpus"], "--queries", files["queries"],
                                 "--model", "minilm-l6", "--output", tmp_path / "x.trec"),
                    "unknown.trec, line 2, field 'docid'", "'d9' is not in")

    _one_line_error(in_process(capsys, "evaluate", tmp_path / "missing.trec", files["qrels"]),
                    "missing.trec: No such file")
    assert not (tmp_path / "x.trec").exists()


def test_usage_errors_exit_2(files, tmp_path, capsys):
    bad_measure = rerank_repro("evaluate", files["run"], files["qrels"], "-m", "nDCG@ten")
    assert bad_measure.returncode == 2 and "unknown measure 'nDCG@ten'" in bad_measure.stderr
    model_with_bm25 = in_process(capsys, "search", "--corpus", files["corpus"], "--queries", files["queries"],
                                   "--method", "bm25", "--model", "minilm-l6", "--output", tmp_path / "x.trec")
    assert model_with_bm25.returncode == 2 and "--model applies to --method dense only" in model_with_bm25.stderr
    overwrite = in_process(capsys, "rerank", files["run"], "--corpus", files["corpus"], "--queries", files["queries"],
                             "--model", "minilm-l6", "--output", files["run"])
    assert overwrite.returncode == 2 and "also an input file" in overwrite.stderr
    assert in_process(capsys, "run", "--only").returncode == 2
    assert in_process(capsys, "rerank", files["run"]).returncode == 2  # --corpus etc. missing
    assert "Traceback" not in bad_measure.stderr + model_with_bm25.stderr + overwrite.stderr


def test_every_command_help_has_an_example(capsys):
    for command in ("evaluate", "search", "rerank", "run"):
        result = in_process(capsys, command, "--help")
        assert result.returncode == 0
        assert "example:" in result.stdout and f"rerank-repro {command} " in result.stdout


# ------------------------------------------------------------------------------------------------- run


def test_run_hands_parameters_to_papermill(monkeypatch, capsys):
    calls = []

    def fake_run_all(profile, only, results_dir, data_root, kernel, extra=None):
        calls.append((profile, only, extra))
        return []

    monkeypatch.setattr(runner, "run_all", fake_run_all)
    status = cli.main(["run", "--profile", "smoke", "--only", "00", "01", "-p", "seed", "7", "-p", "lr", "1e-5",
                       "-p", "use_gpu", "false", "-p", "name", "tiny", "-p", "layers", "[1, 2]"])
    assert status == 0
    assert calls == [("smoke", ["00", "01"], {"seed": 7, "lr": 1e-5, "use_gpu": False, "name": "tiny",
                                               "layers": [1, 2]})]
    assert cli.main(["run", "--list", "--only", "99"]) == 0
    assert capsys.readouterr().out.strip().endswith("99_results.ipynb")
