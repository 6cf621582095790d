"""The generated 'Reading the numbers' text, on synthetic records whose sentences are checked by hand."""
from rerank_lib.results import make_record
from rerank_lib.results.reading import checkpoint_sentence, significance_word, summarize


def _test(delta, p):
    return {"nDCG@10": {"measure": "nDCG@10", "delta": delta, "p_value": p, "n_queries": 50, "method": "t"}}


def _records():
    common = dict(git_commit="abc", versions={}, hardware={}, created="2026-01-01T00:00:00+00:00")
    bm25 = make_record("p", "bm25", "d", "test", {"nDCG@10": 0.50, "RR@10": 0.60}, wall_s=0.2, **common)
    start = make_record("p", "start", "d", "test", {"nDCG@10": 0.30, "RR@10": 0.70},
                        significance={"bm25": _test(-0.20, 0.0001)}, wall_s=12.0, **common)
    trained = make_record("p", "trained", "d", "test", {"nDCG@10": 0.55, "RR@10": 0.65},
                          significance={"bm25": _test(0.05, 0.2), "start": _test(0.25, 0.01)},
                          params={"best_step": 40, "steps": 50}, wall_s=95.4, **common)
    flat = make_record("p", "flat", "d", "test", {"nDCG@10": 0.30, "RR@10": 0.70},
                       significance={"bm25": _test(-0.20, 0.03), "start": _test(0.0, 1.0)},
                       params={"best_step": 0, "steps": 50}, wall_s=30.0, **common)
    return [bm25, start, trained, flat]


def test_interpolated_rows_share_their_base_rows_checkpoint_and_time():
    rows = _records()
    common = dict(git_commit="abc", versions={}, hardware={}, created="2026-01-01T00:00:00+00:00")
    rows.append(make_record("p", "trained+interp", "d", "test", {"nDCG@10": 0.60},
                            significance={"bm25": _test(0.10, 0.002), "start": _test(0.35, 0.0001)},
                            params={"best_step": 40, "steps": 50},
                            wall_s=95.4, **common))
    text = summarize(rows)
    assert "- best nDCG@10 of 5 rows: `trained+interp` 0.6000" in text
    assert "significantly better: `trained+interp` (+0.1000, p=0.002)" in text
    assert "`trained+interp` (+0.3500" not in text  # fused with BM25: never credited against the raw start
    assert "`trained+interp`: step" not in text and "`trained+interp` on d" not in text


def test_significance_words():
    assert significance_word(0.05, 0.01) == "significantly better"
    assert significance_word(-0.05, 0.049) == "significantly worse"
    assert significance_word(0.05, 0.05) == "not significant"  # p must be below alpha
    assert significance_word(0.2, 0.2) == "not significant"
    assert significance_word(None, 0.01) == "not significant"
    assert significance_word(0.05, 0.08, alpha=0.1) == "significantly better"


def test_checkpoint_sentences():
    bm25, _, trained, flat = _records()
    assert checkpoint_sentence(bm25) is None
    assert checkpoint_sentence(trained) == "`trained`: step 40 of 50 selected on dev (the start was not kept)"
    assert checkpoint_sentence(flat) == ("`flat`: the untrained start was kept (step 0 of 50; no trained checkpoint "
                                         "beat it on dev)")
    common = dict(git_commit="abc", versions={}, hardware={}, created="2026-01-01T00:00:00+00:00")
    seeded = make_record("p", "seeded", "d", "test", {"nDCG@10": 0.4}, seed=13, seeds=[13, 14],
                         per_seed={"nDCG@10": [0.3, 0.5]}, params={"best_step": [0, 40], "steps": [50, 50]}, **common)
    assert checkpoint_sentence(seeded) == ("`seeded`: seed 13: step 0, seed 14: step 40 selected on dev (the untrained "
                                           "start was kept for 1 of 2 seeds)")


def test_summary_states_best_rows_tests_checkpoints_and_times():
    text = summarize(_records())
    lines = text.splitlines()
    assert lines[0] == "### Reading the numbers"
    assert "**p · d test** (50 queries)" in lines
    assert "- best nDCG@10 of 4 rows: `trained` 0.5500" in lines
    assert "- best RR@10 of 4 rows: `start`, `flat` 0.7000" in lines  # a tie names both rows
    assert ("- against `bm25` (nDCG@10, paired test, alpha 0.05): significantly worse: `start` (-0.2000, p<0.001), "
            "`flat` (-0.2000, p=0.030); not significant: `trained` (+0.0500, p=0.200)") in lines
    # a row whose dev selection kept the start is the start: named so, not tested against it
    assert ("- against `start` (nDCG@10, paired test, alpha 0.05): significantly better: `trained` (+0.2500, p=0.010); "
            "= start (dev kept step 0): `flat` (+0.0000, p=1.000)") in lines
    assert "- `flat`: the untrained start was kept (step 0 of 50; no trained checkpoint beat it on dev)" in lines
    assert ("- `trained` on d 95 s; `flat` on d 30 s; `start` on d 12 s; 1 more row(s) under 1 s") in lines


def test_summary_reads_the_chosen_measure_and_facts():
    text = summarize(_records(), measures=["RR@10"], test_measure="nDCG@10", facts={"training files": 3})
    assert "- training files: 3" in text
    assert "best RR@10" in text and "best nDCG@10" not in text
    assert summarize([], facts={"queries": 10}) == "### Reading the numbers\n\n- queries: 10\n"
    assert summarize([]).endswith("No result records were written by this run.\n")


def test_readme_numbers_block_matches_results():
    """README's timing table and headline numbers are what the generator renders from results/ (no drift)."""
    from rerank_lib.paths import PROJECT_ROOT
    from rerank_lib.results.readme_numbers import BEGIN, END, render

    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split(BEGIN, 1)[1].split(END, 1)[0]
    assert block == "\n" + render(PROJECT_ROOT / "results", "default")


def test_readme_numbers_render_and_replace(tmp_path):
    import json

    import pytest

    from rerank_lib.results import write_record
    from rerank_lib.results.readme_numbers import BEGIN, END, render, replace_block

    for r in _records():
        r.profile = "default"
        trained = r.method == "trained"
        r.n_training_queries = 10 if trained else None
        write_record(r, tmp_path)
    timings = tmp_path / "notebooks" / "default" / "runtimes.json"
    timings.parent.mkdir(parents=True)
    timings.write_text(json.dumps({"00_a.ipynb": {"ok": True, "wall_s": 30.0},
                                   "01_b.ipynb": {"ok": True, "wall_s": 150.0, "finished": "2026-02-03T10:00:00+00:00"}}))
    text = render(tmp_path, "default")
    assert "(2 of 2 ok, newest on 2026-02-03;" in text and "took 3.0 min of notebook time" in text
    assert "| `00_a` | 30 s | yes |" in text and "| `01_b` | 2.5 min | yes |" in text
    assert "| d test | 50 | `p` `trained` | 0.550 | +0.050, not significant (p=0.200) | +0.250, significantly better (p=0.010) |" in text
    assert "| `p` | d test | `trained` | 0.550 | +0.050, not significant (p=0.200) | " \
           "+0.250, significantly better (p=0.010) | 1 of 1 |" in text
    assert replace_block(f"a\n{BEGIN}\nold\n{END}\nb", "new\n") == f"a\n{BEGIN}\nnew\n{END}\nb"
    with pytest.raises(ValueError, match="README.md: the marker lines"):
        replace_block("no markers", "new\n")


def test_readme_names_the_machine_and_what_precision_auto_ran():
    """Records made on a CPU with native bf16 ran bf16 autocast under the default precision 'auto'; the README's
    timing sentence says so (numbers differ from an fp32 machine's)."""
    from rerank_lib.results.readme_numbers import machine

    def rec(**hw):
        r = _records()[0]
        r.hardware = hw
        return r

    amx = dict(cpu="Xeon", cpu_usable=2, gpu=None)
    assert machine([rec(**amx, native_bf16=True), rec(**amx, native_bf16=None), rec(**amx)]) == \
        "on Xeon, 2 cores (precision 'auto' ran bf16 autocast)"
    assert machine([rec(cpu="EPYC", cpu_cores=2, gpu=None, native_bf16=False), rec(cpu="X", gpu="H200", native_bf16=True)]) \
        == "on EPYC, 2 cores (precision 'auto' ran fp32); H200 (precision 'auto' ran bf16 autocast)"
    assert machine([rec()]) == "hardware in each record"


def test_hardware_info_says_what_auto_precision_runs():
    import torch  # noqa: F401  (hardware_info asks torch only when the pipeline imported it)

    from rerank_lib.models import cpu_supports_bf16
    from rerank_lib.results import hardware_info

    info = hardware_info()
    assert info["native_bf16"] is (bool(torch.cuda.is_bf16_supported()) if torch.cuda.is_available() else cpu_supports_bf16())
