"""The release run: a clean commit only, fresh training caches with the input caches linked, outputs replaced."""
import hashlib
import json
import subprocess

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from rerank_lib import release as rel
from rerank_lib.results.release_check import code_manifest, release_check

NOTEBOOK = '''
from pathlib import Path
from rerank_lib.paths import cache_dir, results_dir
from rerank_lib.results.record import git_commit, make_record, write_record
assert not (cache_dir("runs") / "old-run").exists(), "a training run of an earlier run leaked into the release"
assert (cache_dir("embeddings") / "corpus.npy").read_text() == "vectors", "the input cache is not linked"
(cache_dir("runs") / "new-run").mkdir()
(cache_dir("embeddings") / "queries.npy").write_text("made")
write_record(make_record("demo", "bm25", "scifact", "test", {"nDCG@10": 0.5}, profile=profile,
                         git_commit=git_commit(repo)), results_dir())
'''


def _git(root, *args):
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def _make_repo(tmp_path, monkeypatch, extra: str | None = None):
    """A one-notebook project committed in git, its cache (an old training run, an input cache) and old results;
    `extra` is more code for the notebook."""
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    nb = new_notebook()
    params = new_code_cell(f'profile = "default"\nrepo = {str(root)!r}')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, new_code_cell(NOTEBOOK + (extra or ""))]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "notebooks" / "00_demo.ipynb")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "demo")
    cache, results = tmp_path / "cache", tmp_path / "results"
    (cache / "runs" / "old-run").mkdir(parents=True)
    (cache / "embeddings").mkdir()
    (cache / "embeddings" / "corpus.npy").write_text("vectors")
    (results / "records" / "smoke").mkdir(parents=True)
    (results / "records" / "smoke" / "stale.json").write_text("{}")
    (results / "figures").mkdir()
    (results / "figures" / "curve_smoke.png").write_text("old")
    (results / "figures" / "curve_default.png").write_text("other profile")
    monkeypatch.setenv("RERANK_CACHE_DIR", str(cache))
    monkeypatch.setenv("RERANK_RESULTS_DIR", str(results))
    return root, cache, results


@pytest.fixture()
def repo(tmp_path, monkeypatch):
    return _make_repo(tmp_path, monkeypatch)


def test_release_refuses_a_dirty_checkout(repo):
    root, _, _ = repo
    (root / "notebooks" / "new.txt").write_text("uncommitted")
    with pytest.raises(rel.ReleaseError, match=r"(?s)clean commit.*notebooks/new.txt"):
        rel.release("smoke", root=root, notebooks=root / "notebooks")


def test_release_runs_with_fresh_training_caches_and_lists_inputs(repo):
    root, cache, results = repo
    summary = rel.release("smoke", root=root, notebooks=root / "notebooks")
    assert summary["commit"] == _git(root, "rev-parse", "HEAD")
    assert list(summary["notebooks"]) == ["00_demo.ipynb"]
    assert summary["inputs_found"] == {"embeddings": ["corpus.npy"]}
    assert summary["inputs_made"] == {"embeddings": ["queries.npy"]}
    assert sorted(summary["removed_before_run"]) == ["figures/curve_smoke.png", "records/smoke"]
    assert (cache / "runs" / "old-run").exists()  # the user's own cache is left alone ...
    assert (cache / "release" / summary["commit"][:12] / "runs" / "new-run").is_dir()  # ... the release trained here
    assert (results / "figures" / "curve_default.png").exists()  # another profile's figure stays
    records = sorted(p.name for p in (results / "records" / "smoke").glob("*.json"))
    assert records == ["demo__bm25__scifact_test.json"]
    saved = json.loads((results / "notebooks" / "smoke" / "release.json").read_text())
    assert saved["commit"] == summary["commit"] and (results / "RESULTS.smoke.md").exists()
    # release.json, written last, holds the sha256 of every file the release wrote or kept under results/ but itself
    # (another profile's figure is no part of it)
    on_disk = sorted(p.relative_to(results).as_posix() for p in results.rglob("*") if p.is_file())
    assert on_disk == sorted([*saved["results_files"], "figures/curve_default.png", "notebooks/smoke/release.json"])
    assert sorted(saved["results_files"]) == [
        "REPRODUCTION.smoke.md", "RESULTS.smoke.md", "notebooks/smoke/00_demo.ipynb", "notebooks/smoke/runtimes.json",
        "records/smoke/demo__bm25__scifact_test.json", "results.smoke.csv", "results.smoke.tex"]
    assert saved["results_files"]["records/smoke/demo__bm25__scifact_test.json"] == hashlib.sha256(
        (results / "records" / "smoke" / "demo__bm25__scifact_test.json").read_bytes()).hexdigest()
    assert saved["code_files"] == code_manifest(root)
    assert release_check(results, "smoke", root, results_committed=False).ok(strict=True)


def test_release_fails_its_own_strict_check_when_a_notebook_writes_into_the_code(tmp_path, monkeypatch):
    """A notebook that leaves a file in the checkout made the results with code the commit does not hold."""
    root, _, results = _make_repo(tmp_path, monkeypatch, extra="\nPath(repo, 'notebooks', 'made_by_the_run.py').write_text('x')\n")
    with pytest.raises(rel.ReleaseError, match=r"(?s)own check \(strict\) failed.*notebooks/made_by_the_run.py \(untracked\)"):
        rel.release("smoke", root=root, notebooks=root / "notebooks")
    assert (results / "notebooks" / "smoke" / "release.json").is_file()  # kept, to see what the check compared


def test_release_cache_links_inputs_only_and_forgets_an_earlier_attempt(tmp_path):
    (tmp_path / "teacher").mkdir()
    first = rel.release_cache(tmp_path, "0123456789abcdef")
    (first / "runs").mkdir()
    again = rel.release_cache(tmp_path, "0123456789abcdef")
    assert again == first and not (again / "runs").exists()
    assert sorted(p.name for p in again.iterdir()) == sorted(rel.INPUT_CACHES)
    assert all((again / name).is_symlink() for name in rel.INPUT_CACHES)


def test_release_cache_removes_earlier_releases_but_not_their_inputs(tmp_path):
    (tmp_path / "teacher").mkdir()
    (tmp_path / "teacher" / "scores.trec").write_text("q Q0 d 1 1.0 t\n")
    old = rel.release_cache(tmp_path, "aaaaaaaaaaaa0000")
    (old / "runs" / "ckpt").mkdir(parents=True)
    new = rel.release_cache(tmp_path, "bbbbbbbbbbbb1111")
    assert not old.exists() and new.is_dir()
    assert [p.name for p in (tmp_path / "release").iterdir()] == ["bbbbbbbbbbbb"]
    assert (tmp_path / "teacher" / "scores.trec").read_text() == "q Q0 d 1 1.0 t\n"  # the input survives


def test_input_listing_counts_a_cache_file_and_its_checksum_file_as_one_entry(tmp_path):
    from rerank_lib.atomic import atomic_cache_open

    teacher = tmp_path / "teacher"
    teacher.mkdir()
    with atomic_cache_open(teacher / "scifact-test.trec") as out:
        out.write("q1 Q0 d1 1 0.5 t\n")
    (tmp_path / "embeddings").mkdir()
    listing = rel.input_listing(tmp_path)
    assert (teacher / "scifact-test.trec.sha256").exists()
    assert listing["teacher"] == ["scifact-test.trec"]
    assert listing["embeddings"] == []


# ------------------------------------------------------------------------------------ a stopped release, resumed

SECOND = '''
from pathlib import Path
from rerank_lib.paths import cache_dir, results_dir
from rerank_lib.results.record import git_commit, make_record, write_record
runs = cache_dir("runs")
(runs / "second-attempts").mkdir(exist_ok=True)
(runs / "second-attempts" / str(len(list((runs / "second-attempts").iterdir())))).write_text("tried")
if Path(repo).parent.joinpath("stop-here").exists():
    raise RuntimeError("the machine went away")
write_record(make_record("demo2", "bm25", "scifact", "dev", {"nDCG@10": 0.4}, profile=profile,
                         git_commit=git_commit(repo)), results_dir())
'''


@pytest.fixture()
def two_notebooks(tmp_path, monkeypatch):
    """The demo project with a second notebook that stops while `stop-here` exists beside the checkout."""
    root, cache, results = _make_repo(tmp_path, monkeypatch)
    nb = nbformat.read(root / "notebooks" / "00_demo.ipynb", as_version=4)
    nb.cells[1] = new_code_cell(SECOND)
    nbformat.write(nb, root / "notebooks" / "01_demo2.ipynb")
    _git(root, "add", ".")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "second")
    return root, cache, results


def test_a_stopped_release_resumes_at_its_commit_and_keeps_what_it_finished(two_notebooks):
    root, cache, results = two_notebooks
    (root.parent / "stop-here").write_text("")
    with pytest.raises(rel.ReleaseError, match=r"the machine went away.*--resume"):
        rel.release("smoke", root=root, notebooks=root / "notebooks")
    progress = json.loads((results / "notebooks" / "smoke" / rel.PROGRESS_FILE).read_text())
    commit = _git(root, "rev-parse", "HEAD")
    assert progress["commit"] == commit and list(progress["done"]) == ["00_demo.ipynb"]
    first_output = (results / "notebooks" / "smoke" / "00_demo.ipynb").read_bytes()
    (root.parent / "stop-here").unlink()

    summary = rel.release("smoke", root=root, notebooks=root / "notebooks", resume=True)
    # the first notebook was not run again (it would have failed: its new-run folder exists), nor its output touched
    assert (results / "notebooks" / "smoke" / "00_demo.ipynb").read_bytes() == first_output
    # the second ran twice, in the same release cache: the stopped attempt's files are found
    attempts = cache / "release" / commit[:12] / "runs" / "second-attempts"
    assert sorted(p.name for p in attempts.iterdir()) == ["0", "1"]
    assert list(summary["notebooks"]) == ["00_demo.ipynb", "01_demo2.ipynb"]
    assert len(summary["attempts"]) == 2 and summary["wall_s"] == pytest.approx(
        sum(a["wall_s"] for a in summary["attempts"]), abs=0.2)
    assert sorted(summary["removed_before_run"]) == ["figures/curve_smoke.png", "records/smoke"]
    assert summary["inputs_made"] == {"embeddings": ["queries.npy"]}  # against the inputs before the first attempt
    assert not (results / "notebooks" / "smoke" / rel.PROGRESS_FILE).exists()
    assert sorted(p.name for p in (results / "records" / "smoke").glob("*.json")) == [
        "demo2__bm25__scifact_dev.json", "demo__bm25__scifact_test.json"]
    assert release_check(results, "smoke", root, results_committed=False).ok(strict=True)


def test_resume_refuses_nothing_to_resume_another_commit_and_changed_code(two_notebooks):
    root, _, results = two_notebooks
    with pytest.raises(rel.ReleaseError, match="nothing to resume"):
        rel.release("smoke", root=root, notebooks=root / "notebooks", resume=True)
    (root.parent / "stop-here").write_text("")
    with pytest.raises(rel.ReleaseError):
        rel.release("smoke", root=root, notebooks=root / "notebooks")
    (root / "notebooks" / "new.txt").write_text("uncommitted")
    with pytest.raises(rel.ReleaseError, match=r"(?s)clean commit.*notebooks/new.txt"):
        rel.release("smoke", root=root, notebooks=root / "notebooks", resume=True)
    _git(root, "add", ".")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "a change")
    with pytest.raises(rel.ReleaseError, match="a release resumes at its own commit only"):
        rel.release("smoke", root=root, notebooks=root / "notebooks", resume=True)


def test_a_resumed_release_cache_keeps_its_runs_and_still_forgets_other_commits(tmp_path):
    (tmp_path / "teacher").mkdir()
    old = rel.release_cache(tmp_path, "aaaaaaaaaaaa0000")
    first = rel.release_cache(tmp_path, "0123456789abcdef")
    (first / "runs" / "ckpt").mkdir(parents=True)
    again = rel.release_cache(tmp_path, "0123456789abcdef", resume=True)
    assert again == first and (again / "runs" / "ckpt").is_dir() and not old.exists()
    assert all((again / name).is_symlink() for name in rel.INPUT_CACHES)


def test_a_release_inside_the_checkout_resumes_with_its_own_outputs_as_the_only_changes(two_notebooks, monkeypatch):
    """In the project, results/ is part of the checkout: the stopped release's files there are the changes a resume
    accepts, and no others."""
    root, _, _ = two_notebooks
    results = root / "results"
    monkeypatch.setenv("RERANK_RESULTS_DIR", str(results))
    (root.parent / "stop-here").write_text("")
    with pytest.raises(rel.ReleaseError, match="the machine went away"):
        rel.release("smoke", root=root, notebooks=root / "notebooks")
    (root.parent / "stop-here").unlink()
    (root / "notebooks" / "scratch.py").write_text("x = 1")
    with pytest.raises(rel.ReleaseError, match=r"(?s)clean commit.*notebooks/scratch.py"):
        rel.release("smoke", root=root, notebooks=root / "notebooks", resume=True)
    (root / "notebooks" / "scratch.py").unlink()
    summary = rel.release("smoke", root=root, notebooks=root / "notebooks", resume=True)
    assert list(summary["notebooks"]) == ["00_demo.ipynb", "01_demo2.ipynb"] and len(summary["attempts"]) == 2
