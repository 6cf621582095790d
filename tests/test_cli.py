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
    for qid in expected:  # the CLI may compute in bf16 where the CPU has it: same order, scores within 1e-2
        assert written[qid] == pytest.approx(expected[qid], abs=1e-2)
    assert max(written["2"], key=written["2"].get) == "d3"


# ------------------------------------------------------------------------------------------------- rerank


def test_rerank_with_the_builtin_cross_encoder(files, tmp_path):
    out = tmp_path / "ce.trec"
    result = rerank_repro("rerank", files["run"], "--corpus", files["corpus"], "--queries", files["queries"],
                          "--model", "minilm-l6", "--depth", 5, "--output", out, cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert "cross-encoder minilm-l6, depth 5" in result.stdout
    from rerank_lib.rerankers import CrossEncoder
    expected = CrossEncoder("minilm-l6").rerank(read_run(files["run"]), read_corpus_file(files["corpus"]),
                                                read_queries_file(files["queries"]), depth=5)
    written = read_run(out)
    assert {q: len(d) for q, d in written.items()} == {"1": 5, "2": 5}
    for qid in expected:
        assert written[qid] == pytest.approx(expected[qid], abs=1e-5)

    shallow = rerank_repro("rerank", files["run"], "--corpus", files["corpus"], "--queries", files["queries"],
                           "--model", "minilm-l6", "--depth", 2, "--output", tmp_path / "top2.trec")
    assert shallow.returncode == 0, shallow.stderr
    assert {q: sorted(d) for q, d in read_run(tmp_path / "top2.trec").items()} == {"1": ["d1", "d4"],
                                                                                  "2": ["d1", "d3"]}


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
