"""The release check on a temporary git repository holding a small synthetic release (two records with per-query
files, the executed notebook, the tables build_tables writes, release.json with its code and results manifests):
the release passes; each way of tampering with it is found and fails the check; code changed since the release is
listed (stale), passes the plain check and fails `--strict`."""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from rerank_lib.atomic import write_json
from rerank_lib.results import build_tables, make_record, write_record
from rerank_lib.results.readme_numbers import BEGIN, END
from rerank_lib.results.release_check import (OLD_FORMAT, code_manifest, in_profile, main, release_check,
                                              results_manifest)

FIXED = {"versions": {}, "hardware": {}, "created": "2025-01-01T00:00:00+00:00"}
BM25 = "results/records/default/first_stage__bm25__scifact_test.json"
EDITED = ": edited since the release (its sha256 differs from release.json's)"
TABLES = "differ from what build_tables makes of the records (the tables 99_results writes)"
ALL_TABLES = f"results/RESULTS.md, results/results.csv, results/results.tex {TABLES}"
#: a change of which rows exist (a record deleted or added) also changes the reproduction ledger's verdicts
ROWS_CHANGED = f"results/RESULTS.md, results/results.csv, results/results.tex, results/REPRODUCTION.md {TABLES}"
COMMITTED = " (a release's results are committed as it wrote them)"


def _git(root, *args) -> str:
    out = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=root,
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def _record(results, commit, method="bm25", value=0.6, pipeline="first_stage", profile="default"):
    per_query = pd.DataFrame({"qid": ["1", "2"], "measure": ["nDCG@10"] * 2, "value": [value - 0.1, value + 0.1]})
    write_record(make_record(pipeline, method, "scifact", "test", {"nDCG@10": value}, git_commit=commit,
                             profile=profile, **FIXED), results, per_query=per_query)


def _release_json(root, commit, results_files=True, code_files=None):
    """What the release run writes last: the commit and the code and results manifests."""
    results = root / "results"
    summary = {"profile": "default", "commit": commit, "code_files": code_files or code_manifest(root)}
    if results_files:
        summary["results_files"] = results_manifest(results, "default")
    write_json(results / "notebooks" / "default" / "release.json", summary)


@pytest.fixture
def repo(tmp_path):
    """Code committed as the release commit, then a second commit holding the release's results (as a release is
    committed): two records with per-query files, the executed notebook, the tables, release.json."""
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    (root / "notebooks" / "01_first_stage.ipynb").write_text("{}")
    (root / "rerank_lib").mkdir()
    (root / "rerank_lib" / "loss.py").write_text("def loss(x):\n    return x\n")
    (root / "code.py").write_text("x = 1\n")
    (root / "README.md").write_text(f"# Project\n{BEGIN}\nnumbers\n{END}\nprose\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "code")
    commit = _git(root, "rev-parse", "HEAD")
    results = root / "results"
    _record(results, commit)
    _record(results, commit, method="dense", value=0.7)
    (results / "notebooks" / "default").mkdir(parents=True)
    (results / "notebooks" / "default" / "01_first_stage.ipynb").write_text("{}")
    (results / "data_summary.md").write_text("| dataset |\n")
    build_tables(results, "default")
    (root / "README.md").write_text(f"# Project\n{BEGIN}\nnumbers of the release\n{END}\nprose\n")
    _release_json(root, commit)
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "release results")
    return root, commit


def _check(root, **kw):
    return release_check(root / "results", "default", root, **kw)


def _edit_record(root, relpath=BM25, value=0.9):
    path = root / relpath
    data = json.loads(path.read_text())
    data["metrics"]["nDCG@10"] = value
    path.write_text(json.dumps(data, indent=2) + "\n")


def _cli(root, *args) -> int:
    return main(["--results", str(root / "results"), "--repo", str(root), *args])


def test_a_clean_release_passes_also_strictly(repo, capsys):
    root, commit = repo
    report = _check(root)
    assert (report.failures, report.stale, report.changed, report.commit) == ([], [], [], commit)
    assert report.headline() == f"results from the release of {commit[:12]}; 0 file(s) changed since"
    assert _cli(root) == 0 and _cli(root, "--strict") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "release check: passed"


# ---------------------------------------------------------------------------------------------- the tamperings


def test_edited_committed_record(repo):
    root, _ = repo
    _edit_record(root)
    _git(root, "commit", "-qam", "a better number")
    assert _check(root).failures == [BM25 + EDITED, ALL_TABLES]


def test_edited_uncommitted_record(repo):
    root, _ = repo
    _edit_record(root)
    assert _check(root).failures == [BM25 + EDITED, BM25 + ": uncommitted" + COMMITTED, ALL_TABLES]


def test_edited_results_md(repo):
    root, _ = repo
    md = root / "results" / "RESULTS.md"
    md.write_text(md.read_text().replace("| 0.600 |", "| 0.650 |"))
    _git(root, "commit", "-qam", "table typo")
    assert _check(root).failures == ["results/RESULTS.md" + EDITED, f"results/RESULTS.md {TABLES}"]


def test_edited_per_query_csv(repo):
    root, _ = repo
    csv = root / BM25.replace(".json", ".per_query.csv")
    csv.write_text(csv.read_text().replace("0.5", "0.55"))
    _git(root, "commit", "-qam", "per-query edit")
    assert _check(root).failures == [BM25.replace(".json", ".per_query.csv") + EDITED]


def test_deleted_record(repo):
    root, _ = repo
    _git(root, "rm", "-q", BM25)
    _git(root, "commit", "-qm", "drop a row")
    assert _check(root).failures == [BM25 + ": deleted since the release (release.json lists it)", ROWS_CHANGED]


def test_uncommitted_code_file_is_listed_and_fails_strictly(repo, capsys):
    root, commit = repo
    (root / "code.py").write_text("x = 2\n")
    report = _check(root)
    assert report.failures == [] and report.changed == ["code.py"]
    assert report.stale == [f"1 file(s) outside results/ changed since the release commit {commit[:12]}: code.py (uncommitted)"]
    assert report.headline() == f"results from the release of {commit[:12]}; 1 file(s) changed since"
    assert _cli(root) == 0 and "release check: passed with 1 stale item(s)" in capsys.readouterr().out
    assert _cli(root, "--strict") == 1 and "release check: failed (--strict)" in capsys.readouterr().out


def test_untracked_code_file_is_listed_and_fails_strictly(repo):
    root, commit = repo
    (root / "new_module.py").write_text("y = 1\n")
    report = _check(root)
    assert report.failures == [] and not report.ok(strict=True)
    assert report.stale == [f"1 file(s) outside results/ changed since the release commit {commit[:12]}: "
                            "new_module.py (untracked)"]


def test_fabricated_untracked_record(repo):
    root, commit = repo
    _record(root / "results", commit, method="magic", value=0.99)
    magic = "results/records/default/first_stage__magic__scifact_test"
    assert _check(root).failures == [
        f"{magic}.json: not part of the release (added after it; release.json does not list it)",
        f"{magic}.per_query.csv: not part of the release (added after it; release.json does not list it)",
        f"{magic}.json: untracked{COMMITTED}", f"{magic}.per_query.csv: untracked{COMMITTED}", ALL_TABLES]


def test_records_mixing_commits(repo):
    root, commit = repo
    (root / "code.py").write_text("x = 3\n")
    _git(root, "commit", "-qam", "later code")
    later = _git(root, "rev-parse", "HEAD")
    _record(root / "results", later)  # one record regenerated by later code, committed with it
    _git(root, "commit", "-qam", "one record rerun")
    failures = _check(root).failures
    made_by = ", ".join(f"{c[:12]} (1 records)" for c in sorted([commit, later]))
    assert failures[:3] == [f"records made by 2 commits: {made_by}",
                            f"records made by {later[:12]}, not by the release commit {commit[:12]} that release.json names",
                            BM25 + EDITED]


def test_record_from_a_dirty_tree(repo):
    root, commit = repo
    _record(root / "results", commit + "-dirty")
    _git(root, "commit", "-qam", "rerun from a dirty tree")
    assert _check(root).failures == [f"first_stage__bm25__scifact_test: made from a dirty tree ({commit[:12]}-dirty)",
                                     BM25 + EDITED, f"results/RESULTS.md, results/results.csv {TABLES}"]  # they name the commits


# ---------------------------------------------------------------------------------------------- staleness and scope


def test_code_committed_since_is_stale_and_the_library_makes_a_table_difference_stale(repo):
    """A library change may change how tables are written from the same records: without a file edited by hand
    (the sha256 still match) that is listed, not failed."""
    root, commit = repo
    released_code = code_manifest(root)
    (root / "rerank_lib" / "loss.py").write_text("def loss(x):\n    return 2 * x\n")
    md = root / "results" / "RESULTS.md"
    md.write_text(md.read_text() + "\n")  # as if the release's table code had written one more line
    _release_json(root, commit, code_files=released_code)
    _git(root, "commit", "-qam", "library changed")
    report = _check(root)
    assert report.failures == []
    assert report.stale == [
        f"1 file(s) outside results/ changed since the release commit {commit[:12]}: rerank_lib/loss.py (committed since)",
        f"results/RESULTS.md {TABLES}; the library changed since the release (rerank_lib/loss.py), so a new release "
        "may write them so"]


def test_readme_may_differ_only_inside_its_generated_numbers(repo):
    root, commit = repo
    (root / "README.md").write_text(f"# Project\n{BEGIN}\nother numbers\n{END}\nprose\n")
    assert _check(root).stale == []
    (root / "README.md").write_text(f"# Project, edited\n{BEGIN}\nother numbers\n{END}\nprose\n")
    assert _check(root).changed == ["README.md"]


def test_older_release_json_is_listed_and_committed_or_uncommitted_edits_still_fail(repo):
    root, _ = repo
    _release_json(root, _git(root, "rev-parse", "HEAD~1"), results_files=False)
    _git(root, "commit", "-qam", "release.json of the older format")
    report = _check(root)
    assert (report.failures, report.stale) == ([], [OLD_FORMAT])
    assert _cli(root) == 0 and _cli(root, "--strict") == 1
    _edit_record(root)
    assert _check(root).failures == [BM25 + ": uncommitted" + COMMITTED, ALL_TABLES]
    _git(root, "commit", "-qam", "edited after the release")
    after = _git(root, "rev-parse", "HEAD~1")
    assert _check(root).failures == [BM25 + f": changed by a commit after the release's results ({after[:12]})", ALL_TABLES]


def test_another_profiles_run_beside_the_release_is_no_part_of_it(repo):
    root, _ = repo
    results = root / "results"
    _record(results, "smoke-commit", profile="smoke")  # a smoke run's files in the same results folder, untracked
    (results / "RESULTS.smoke.md").write_text("smoke\n")
    (results / "figures").mkdir()
    (results / "figures" / "curve_smoke.png").write_text("png")
    assert [in_profile(n, "default") for n in ("records/smoke/r.json", "RESULTS.smoke.md", "figures/curve_smoke.png",
                                               "figures/curve_default.png", "figures/summary.png", "data_summary.md",
                                               "results.csv")] == [False, False, False, True, True, True, True]
    assert in_profile("figures/a_paper-tiny.png", "paper") is False and in_profile("figures/a_paper-tiny.png", "paper-tiny")
    assert _check(root).failures == []


def test_the_release_run_checks_its_output_before_it_is_committed(repo):
    root, commit = repo
    _git(root, "rm", "-rq", "--cached", "results")  # as just written by the release: untracked
    assert _check(root, results_committed=True).failures  # committed state asked: untracked results fail
    assert _check(root, results_committed=False).ok(strict=True)
    _edit_record(root)
    assert BM25 + EDITED in _check(root, results_committed=False).failures


def test_release_commit_unknown_without_a_code_manifest(repo):
    root, _ = repo
    ghost = "e" * 40
    for path in (root / "results" / "records" / "default").glob("*.json"):
        data = json.loads(path.read_text())
        data["git_commit"] = ghost
        path.write_text(json.dumps(data))
    results = root / "results"
    build_tables(results, "default")
    write_json(results / "notebooks" / "default" / "release.json",
               {"commit": ghost, "results_files": results_manifest(results, "default")})
    _git(root, "commit", "-qam", "records of a commit this clone lacks")
    assert _check(root).failures == [f"commit {ghost[:12]} is not in the repository at repo/ and release.json has no "
                                     "code manifest: the code that made the results cannot be compared with this checkout"]
    write_json(results / "notebooks" / "default" / "release.json",  # a shallow clone: the manifest stands in
               {"commit": ghost, "code_files": code_manifest(root), "results_files": results_manifest(results, "default")})
    _git(root, "commit", "-qam", "with its code manifest")
    assert _check(root).ok(strict=True)


def test_missing_executed_notebook_and_pipeline_without_notebook(repo):
    root, commit = repo
    _record(root / "results", commit, pipeline="mystery")
    (root / "results" / "notebooks" / "default" / "01_first_stage.ipynb").unlink()
    (root / "results" / "notebooks" / "default" / "01_first_stage.failed.ipynb").write_text("{}")
    build_tables(root / "results", "default")
    _release_json(root, commit)
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "a broken release")
    assert _check(root).failures == [
        "pipeline first_stage: no executed 01_first_stage.ipynb under notebooks/default/ of the results",
        "pipeline first_stage: 01_first_stage.ipynb has a failed executed copy beside it",
        "pipeline mystery: no notebook in notebooks/ is named for it, so none shows how its records were made",
    ]


def test_no_records_or_release_json_and_the_module_runs_from_a_shell(repo):
    root, _ = repo
    report = release_check(root / "results", "smoke", root)
    assert report.failures == [
        "no records for profile 'smoke' under results/records/smoke",
        "no release.json under notebooks/smoke/ of the results: these records are not a release run's output "
        "(bash run_all.sh --release)"]
    out = subprocess.run([sys.executable, "-m", "rerank_lib.results.release_check", "--results", str(root / "results"),
                          "--repo", str(root), "--profile", "smoke"], capture_output=True, text=True)
    assert out.returncode == 1 and "release check: 2 failure(s), 0 stale item(s)" in out.stdout and not out.stderr
