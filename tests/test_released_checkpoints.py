"""The released checkpoints (notebook 03): the list as data (every field checked, errors naming the file, line and
field), the tolerance check by hand, the setup a profile runs and why a run is not comparable, a stand-in run through
the real rankers into records that carry the check, and the reproduction ledger's section on them."""
from __future__ import annotations

import pytest

from rerank_lib import paper_profiles
from rerank_lib.paper_profiles import RECIPE_TOP_LEVEL, SettingsFileError
from rerank_lib.recipes import released_checkpoints as released
from rerank_lib.results import make_record
from rerank_lib.results.ledger import released_checkpoints_section, render
from rerank_lib.settings import paths

ENTRY = """\
checkpoints:
  - model: org/listwise-7b
    pipeline: rankllm
    ranker: listwise-first
    dataset: trec-dl-2019
    split: test
    first_stage: bm25
    depth: 100
    measure: nDCG@10
    options: {window: 20, stride: 10, identifiers: alpha}
    published:
      value: 0.7294
      source: 2CR yaml line 125
    tolerance:
      value: 0.015
      why: bf16 near-ties
    params_billion: 7.2
    eval_tokens: 1.35e+6
    tokens_source: 43 queries x 9 windows x 3,500 tokens
"""


def _read(tmp_path, text):
    path = tmp_path / "demo.yaml"
    path.write_text(text)
    return paper_profiles.read(path, paths(released.ReleasedConfig()), RECIPE_TOP_LEVEL)


def test_a_checkpoint_entry_is_read_with_every_field(tmp_path):
    doc = _read(tmp_path, ENTRY)
    (entry,) = doc.checkpoints
    assert entry["model"] == "org/listwise-7b" and entry["ranker"] == "listwise-first" and entry["depth"] == 100
    assert entry["published"] == {"value": 0.7294, "source": "2CR yaml line 125"}
    assert entry["tolerance"] == {"value": 0.015, "why": "bf16 near-ties"}
    assert entry["options"] == {"window": 20, "stride": 10, "identifiers": "alpha"}
    assert entry["eval_tokens"] == 1.35e6 and entry["line"] == 2
    options = "    options: {window: 20, stride: 10, identifiers: alpha}\n"
    not_found = _read(tmp_path, ENTRY.replace("value: 0.7294", "value: null").replace(options, ""))
    assert not_found.checkpoints[0]["published"]["value"] is None and not_found.checkpoints[0]["options"] == {}


@pytest.mark.parametrize("old,new,message", [
    ("    depth: 100\n", "", r"demo.yaml, line 2: checkpoint 'org/listwise-7b': field 'depth' is missing"),
    ("    measure: nDCG@10\n", "    measure: nDCG@10\n    seed: 3\n",
     r"demo.yaml, line 10: checkpoint 'org/listwise-7b': unknown field 'seed'"),
    ("ranker: listwise-first", "ranker: pairwise",
     r"demo.yaml, line 4: checkpoint 'org/listwise-7b': ranker must be one of cross-encoder, monot5"),
    ("pipeline: rankllm", "pipeline: rankgpt",
     r"demo.yaml, line 3: checkpoint 'org/listwise-7b': pipeline must be one of .*rankllm"),
    ("dataset: trec-dl-2019", "dataset: msmarco",
     r"demo.yaml, line 5: checkpoint 'org/listwise-7b': msmarco test is not a known test set; known: scifact"),
    ("split: test", "split: dev", r"demo.yaml, line 6: checkpoint 'org/listwise-7b': trec-dl-2019 dev is not a known"),
    ("depth: 100", "depth: 0", r"demo.yaml, line 8: checkpoint 'org/listwise-7b': depth must be an integer >= 1"),
    ("{window: 20,", "{max_length: 512, window: 20,",
     r"demo.yaml, line 10: checkpoint 'org/listwise-7b': options: unknown field 'max_length'"),
    ("stride: 10,", "stride: ten,", r"demo.yaml, line 10: .*options: stride must be an integer >= 1, not 'ten'"),
    ("identifiers: alpha", "identifiers: roman", r"demo.yaml, line 10: .*identifiers must be one of auto, numeric"),
    ("value: 0.7294", "value: high", r"demo.yaml, line 12: checkpoint 'org/listwise-7b': published: value must be a "
                                     r"number >= 0"),
    ("      source: 2CR yaml line 125\n", "", r"demo.yaml, line 12: .*published: field 'source' is missing"),
    ("value: 0.015", "value: -0.01", r"demo.yaml, line 15: checkpoint 'org/listwise-7b': tolerance: value must be a "
                                     r"number >= 0"),
    ("      why: bf16 near-ties\n", "", r"demo.yaml, line 15: .*tolerance: field 'why' is missing"),
    ("    params_billion: 7.2\n", "    params_billion: big\n",
     r"demo.yaml, line 17: checkpoint 'org/listwise-7b': params_billion must be a number"),
])
def test_a_bad_checkpoint_names_the_file_line_and_field(tmp_path, old, new, message):
    assert old in ENTRY
    with pytest.raises(SettingsFileError, match=message):
        _read(tmp_path, ENTRY.replace(old, new))


def test_a_checkpoint_on_one_test_set_twice_and_a_list_that_is_not_one_are_refused(tmp_path):
    twice = ENTRY + ENTRY.split("\n", 1)[1]
    with pytest.raises(SettingsFileError, match=r"demo.yaml, line 20: checkpoint 'org/listwise-7b' on trec-dl-2019 "
                                                r"test is given twice"):
        _read(tmp_path, twice)
    with pytest.raises(SettingsFileError, match=r"demo.yaml, line 1: checkpoints must be a list"):
        _read(tmp_path, "checkpoints: {model: x}\n")


def test_the_packaged_list_covers_every_paper_checkpoint_with_a_source_and_a_reason():
    entries = released.checkpoints()
    models = [e["model"] for e in entries]
    assert released.config("paper").checkpoints == tuple(dict.fromkeys(models))
    assert {(e["model"], e["dataset"]) for e in entries} >= {
        ("castorini/rank_zephyr_7b_v1_full", "trec-dl-2019"), ("castorini/first_mistral", "trec-dl-2020"),
        ("unicamp-dl/InRanker-small", "scifact"), ("unicamp-dl/InRanker-base", "scifact"),
        ("BAAI/bge-reranker-v2-m3", "scifact")}
    for e in entries:
        assert len(e["published"]["source"]) > 40 and len(e["tolerance"]["why"]) > 20, e["model"]
        assert e["published"]["value"] is not None or e["published"]["source"].startswith("not found")
    # the published numbers the other recipe files show beside their rows are the same numbers
    from rerank_lib.recipes import get

    rankllm = {key: ref["nDCG@10"]["value"] for key, ref in get("rankllm").references.items()}
    by = {(e["model"], e["dataset"]): e["published"]["value"] for e in entries}
    assert by[("castorini/rank_zephyr_7b_v1_full", "trec-dl-2019")] == rankllm[("trec-dl-2019", "generation")]
    assert by[("castorini/first_mistral", "trec-dl-2020")] == rankllm[("trec-dl-2020", "combined")]
    bge = get("cross_encoder").references["BAAI/bge-reranker-v2-m3"]["nDCG@10"]["value"]
    assert by[("BAAI/bge-reranker-v2-m3", "scifact")] == bge


def test_profiles_run_nothing_by_default_and_stand_ins_elsewhere():
    from rerank_lib.models.standin import StandInName, standin_for

    assert released.config("default").checkpoints == ()
    tiny = released.config("paper-tiny").checkpoints
    assert tiny and all(isinstance(name, StandInName) for name in tiny)
    assert all(standin_for(name) is not None for name in released.config("smoke").checkpoints)
    assert standin_for("tiny:unicamp-dl/InRanker-small").family == "t5"
    with pytest.raises(ValueError, match=r"checkpoints: \['org/unknown'\] not in released_checkpoints.yaml"):
        released.config("default", checkpoints=["org/unknown"])


def test_the_tolerance_check_by_hand():
    check = released.tolerance_check
    # |0.7265 - 0.7365| = 0.0100: equal to the tolerance counts as within (the float subtraction gives 0.01000...02)
    assert check(0.7365, 0.7265, 0.01) == {"published": 0.7365, "ours": 0.7265, "abs_diff": 0.01, "tolerance": 0.01,
                                           "within": True, "comparable": True, "verdict": "within tolerance",
                                           "not_comparable": ""}
    # |0.7200 - 0.7365| = 0.0165 > 0.015
    outside = check(0.7365, 0.72, 0.015)
    assert outside["abs_diff"] == pytest.approx(0.0165) and not outside["within"]
    assert outside["verdict"] == "outside tolerance"
    assert check(0.7365, 0.75, 0.015)["within"]  # 0.0135 above: within either way
    # a stand-in is never within, whatever its difference; no published number is never within either
    standin = check(0.7308, 0.7308, 0.02, "stand-in weights")
    assert standin["abs_diff"] == 0.0 and not standin["within"] and not standin["comparable"]
    assert standin["verdict"] == "not comparable (stand-in weights)"
    missing = check(None, 0.61, 0.02)
    assert missing["abs_diff"] is None and not missing["within"]
    assert missing["verdict"] == "not comparable (no published number)"


def test_the_setup_a_profile_runs_and_why_it_is_not_comparable():
    entry = {"ranker": "listwise-first", "depth": 100, "options": {"window": 20, "stride": 10, "identifiers": "alpha"}}
    paper = released.run_setup(released.config("paper"), entry)
    assert paper == {"depth": 100, "window": 20, "stride": 10, "identifiers": "alpha"}
    assert released.differences(entry, paper, "hub", 43, 43) == ""
    tiny = released.run_setup(released.config("smoke"), entry)  # depth 6, window 4, stride 2, max_words 12, ...
    assert tiny == {"depth": 6, "window": 4, "stride": 2, "identifiers": "alpha", "max_words": 12, "context_size": 1024}
    why = released.differences(entry, tiny, "standin", 2, 10)
    assert why.startswith("stand-in weights") and "2 of 10 queries" in why
    assert "depth 6 (published 100), window 4 (published 20), stride 2 (published 10)" in why
    pointwise = {"ranker": "monot5", "depth": 100, "options": {"max_length": 512}}
    assert released.run_setup(released.config("smoke"), pointwise) == {"depth": 6, "max_length": 64}  # no window


def test_the_default_profile_shows_the_table_and_the_command_without_the_hub():
    cfg = released.config("default")
    table = released.checkpoint_table(cfg)
    assert len(table) == len(released.checkpoints()) and set(table["runs here"]) == {"no"}
    assert table.loc[("castorini/first_mistral", "trec-dl-2019 test"), "published"] == 0.7294
    assert "H100-hours" in table.loc[("castorini/first_mistral", "trec-dl-2019 test"), "GPU estimate"]
    text = released.gpu_command(cfg)
    assert released.COMMAND in text and "14.5 GB of bf16 weights" in text and "nothing (no hub)" in text
    assert released.evaluate_checkpoints(cfg, "unused").records == []


def _first_stage(tmp_path, profile, name, queries, data_root):
    """A small saved first-stage run of `name` test: the judged documents of `queries` among BM25-like candidates."""
    from rerank_lib.data import load_dataset
    from rerank_lib.experiment import save_run

    ds = load_dataset(name, "test", root=data_root)
    qids = sorted(ds.qrels)[:queries]
    if name == "scifact":
        others = sorted(ds.corpus)[:4]
        run = {q: {**{d: 1.0 + i for i, d in enumerate(others)}, **{d: 0.5 for d in ds.qrels[q]}} for q in qids}
    else:
        run = {q: dict(sorted(ds.runs["bm25"][q].items(), key=lambda kv: -kv[1])[:8]) for q in qids}
    save_run(run, tmp_path, profile, name, "test", "bm25")


def test_stand_ins_run_the_real_rankers_into_records_with_the_check(tmp_path, shared_data, private_cache):
    """InRanker-small's and FirstMistral's stand-ins (a T5 and a Mistral of the same class) through T5Ranker and the
    FIRST sliding window: records of their families, named by hub id, each with its tolerance check (not comparable)
    and the ledger's section listing them."""
    from rerank_lib.results import build_tables, load_records

    cfg = released.config("smoke", data_root=str(shared_data), max_queries=2)
    _first_stage(tmp_path, "smoke", "scifact", 3, shared_data)
    _first_stage(tmp_path, "smoke", "trec-dl-2019", 3, shared_data)
    records = []
    for name in ("tiny:unicamp-dl/InRanker-small", "tiny:castorini/first_mistral"):
        entry = released.entries_of(name)[0]
        ranker = released.build_ranker(name, entry, released.run_setup(cfg, entry), cfg)
        records += released.evaluate_entry(cfg, name, entry, ranker, tmp_path)
    assert [(r.pipeline, r.method, r.dataset, r.split) for r in records] == [
        ("inranker", "unicamp-dl/InRanker-small", "scifact", "test-2q"),
        ("rankllm", "castorini/first_mistral", "trec-dl-2019", "test-2q")]
    for r in records:
        check = r.params["tolerance_check"]
        assert check["ours"] == pytest.approx(r.metrics["nDCG@10"]) and not check["within"]
        assert check["verdict"].startswith("not comparable (") and "stand-in weights" in check["verdict"]
        assert "2 of 3 queries" in check["verdict"] and r.params["model_kind"] == "standin"
        assert r.significance["bm25"]["nDCG@10"]["n_queries"] == 2 and r.training_queries == "none (zero-shot)"
    assert records[0].params["tolerance_check"]["published"] is None  # InRanker: no published number found
    assert records[1].reference["nDCG@10"]["value"] == 0.7294 and records[1].params["llm_calls_per_query"] == 2.0
    assert list(released.check_table(records)["within"]) == [False, False]
    paths = build_tables(tmp_path, profile="smoke")
    text = paths["ledger"].read_text(encoding="utf-8")
    assert "## Released checkpoints in our harness" in text
    assert "| `castorini/first_mistral` | `rankllm` | trec-dl-2019 test-2q | 0.7294 |" in text
    assert len(load_records(tmp_path, "smoke")) == 2


def test_the_ledger_section_by_hand():
    fixed = {"git_commit": "0" * 40, "versions": {}, "hardware": {}, "created": "2025-01-01T00:00:00+00:00"}
    check = released.tolerance_check(0.7365, 0.7301, 0.015)
    row = make_record("rankllm", "castorini/rank_zephyr_7b_v1_full", "trec-dl-2019", "test", {"nDCG@10": 0.7301},
                      profile="paper", params={"tolerance_check": check}, **fixed)
    other = make_record("rankllm", "bm25", "trec-dl-2019", "test", {"nDCG@10": 0.5058}, profile="paper", **fixed)
    lines = released_checkpoints_section([other, row])
    assert lines[0] == "## Released checkpoints in our harness"
    assert ("| `castorini/rank_zephyr_7b_v1_full` | `rankllm` | trec-dl-2019 test | 0.7365 | 0.7301 | 0.0064 | "
            "0.0150 | yes |") in lines
    assert released_checkpoints_section([other]) == []
    assert render([], "paper", [other]) == render([], "paper")  # no released row: the ledger as it was
    assert render([], "paper", [row]).endswith("\n".join(lines))
