"""The release run: a clean commit only, fresh training caches with the input caches linked, outputs replaced."""
import json
import subprocess

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from rerank_lib import release as rel

NOTEBOOK = '''
from pathlib import Path
from rerank_lib.paths import cache_dir, results_dir
from rerank_lib.results.record import make_record, write_record
assert not (cache_dir("runs") / "old-run").exists(), "a training run of an earlier run leaked into the release"
assert (cache_dir("embeddings") / "corpus.npy").read_text() == "vectors", "the input cache is not linked"
(cache_dir("runs") / "new-run").mkdir()
(cache_dir("embeddings") / "queries.npy").write_text("made")
write_record(make_record("demo", "bm25", "scifact", "test", {"nDCG@10": 0.5}, profile=profile, git_commit="abc"),
             results_dir())
'''


def _git(root, *args):
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture()
def repo(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    nb = new_notebook()
    params = new_code_cell('profile = "default"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, new_code_cell(NOTEBOOK)]
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
