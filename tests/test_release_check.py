"""The release check on a temporary git repository with synthetic records: a clean release passes, and each
kind of problem (several commits, a dirty tree, code changed since, an unknown commit, a missing executed
notebook, a pipeline without a notebook) is reported; the CLI exits 1 on problems and 0 without."""
from __future__ import annotations

import subprocess
import sys

import pytest

from rerank_lib.results import make_record, write_record
import json

from rerank_lib.results.release_check import code_manifest, main, release_check

FIXED = {"versions": {}, "hardware": {}, "created": "2025-01-01T00:00:00+00:00"}


def _git(root, *args) -> str:
    out = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=root,
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """Commit `old` (code.py v1), then `new` (code.py v2) = HEAD; results/ holds the executed 01 notebook."""
    _git(tmp_path, "init", "-q")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_first_stage.ipynb").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "old")
    old = _git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "code.py").write_text("x = 2\n")
    _git(tmp_path, "commit", "-qam", "new")
    new = _git(tmp_path, "rev-parse", "HEAD")
    executed = tmp_path / "results" / "notebooks" / "default"
    executed.mkdir(parents=True)
    (executed / "01_first_stage.ipynb").write_text("{}")
    return tmp_path, old, new


def _record(results, commit, pipeline="first_stage", method="bm25"):
    write_record(make_record(pipeline, method, "scifact", "test", {"nDCG@10": 0.6}, git_commit=commit, **FIXED),
                 results)


def test_clean_release_passes_even_when_results_changed_since(repo):
    root, _, new = repo
    _record(root / "results", new)
    (root / "results" / "RESULTS.md").write_text("regenerated\n")
    _git(root, "add", "results")
    _git(root, "commit", "-qm", "results only")  # a later commit touching results/ alone is no problem
    assert release_check(root / "results", "default", root) == []
    assert main(["--results", str(root / "results"), "--repo", str(root)]) == 0


def test_two_commits_and_code_changed_since(repo, capsys):
    root, old, new = repo
    _record(root / "results", new)
    _record(root / "results", old, method="bm25-old")
    problems = release_check(root / "results", "default", root)
    made_by = ", ".join(f"{c[:12]} (1 records)" for c in sorted([old, new]))
    assert problems == [f"records made by 2 commits: {made_by}",
                        f"1 file(s) outside results/ differ between the records' commit {old[:12]} and HEAD: code.py"]
    assert main(["--results", str(root / "results"), "--repo", str(root)]) == 1
    assert "release check: 2 problem(s)" in capsys.readouterr().out


def test_dirty_tree(repo):
    root, _, new = repo
    _record(root / "results", new + "-dirty")
    assert release_check(root / "results", "default", root) == [
        f"first_stage__bm25__scifact_test: made from a dirty tree ({new[:12]}-dirty)"]


def test_unknown_commits(repo):
    root, _, _ = repo
    _record(root / "results", "f" * 40)
    _record(root / "results", "unknown", method="bm25-unknown")
    problems = release_check(root / "results", "default", root)
    assert problems[0].startswith("records made by 2 commits")
    assert "fffffffffff" in problems[1] and "is not in the repository" in problems[1]
    assert problems[2] == "1 record(s) name no git commit ('unknown')"


def test_missing_executed_notebook_and_pipeline_without_notebook(repo):
    root, _, new = repo
    _record(root / "results", new)
    _record(root / "results", new, pipeline="mystery")
    (root / "results" / "notebooks" / "default" / "01_first_stage.ipynb").unlink()
    (root / "results" / "notebooks" / "default" / "01_first_stage.failed.ipynb").write_text("{}")
    assert release_check(root / "results", "default", root) == [
        "pipeline first_stage: no executed 01_first_stage.ipynb under notebooks/default/ of the results",
        "pipeline first_stage: 01_first_stage.ipynb has a failed executed copy beside it",
        "pipeline mystery: no notebook in notebooks/ is named for it, so none shows how its records were made",
    ]


def test_no_records_is_a_problem_and_the_module_runs_from_a_shell(repo):
    root, _, _ = repo
    assert release_check(root / "results", "smoke", root)[0].startswith("no records for profile 'smoke'")
    out = subprocess.run([sys.executable, "-m", "rerank_lib.results.release_check", "--results", str(root / "results"),
                          "--repo", str(root), "--profile", "smoke"], capture_output=True, text=True)
    assert out.returncode == 1 and "release check: 1 problem(s)" in out.stdout and not out.stderr


def test_readme_may_differ_only_inside_its_generated_numbers(repo):
    from rerank_lib.results.readme_numbers import BEGIN, END

    root, _, _ = repo
    (root / "README.md").write_text(f"# Project\n{BEGIN}\nold numbers\n{END}\nprose\n")
    _git(root, "add", "README.md")
    _git(root, "commit", "-qm", "readme")
    released = _git(root, "rev-parse", "HEAD")
    _record(root / "results", released)
    (root / "README.md").write_text(f"# Project\n{BEGIN}\nnumbers of the release\n{END}\nprose\n")
    _git(root, "commit", "-qam", "README numbers from the release")
    assert release_check(root / "results", "default", root) == []
    (root / "README.md").write_text(f"# Project, edited\n{BEGIN}\nnumbers of the release\n{END}\nprose\n")
    _git(root, "commit", "-qam", "README prose edited after the release")
    assert release_check(root / "results", "default", root) == [
        f"1 file(s) outside results/ differ between the records' commit {released[:12]} and HEAD: README.md"]


def test_a_commit_missing_from_the_clone_is_compared_through_the_release_manifest(repo):
    """A shallow clone lacks the records' commit: release.json's file manifest stands in for `git diff`."""
    root, _, _ = repo
    ghost = "e" * 40  # the release commit, absent from this history
    _record(root / "results", ghost)
    release_file = root / "results" / "notebooks" / "default" / "release.json"
    release_file.write_text(json.dumps({"commit": ghost, "code_files": code_manifest(root)}))
    assert release_check(root / "results", "default", root) == []
    (root / "code.py").write_text("x = 3\n")
    _git(root, "commit", "-qam", "code changed after the release")
    problems = release_check(root / "results", "default", root)
    assert problems == [f"1 file(s) outside results/ differ between the records' commit {ghost[:12]} and HEAD: code.py"]
    release_file.write_text(json.dumps({"commit": "d" * 40, "code_files": {}}))  # a manifest of another commit
    assert "is not in the repository" in release_check(root / "results", "default", root)[0]
