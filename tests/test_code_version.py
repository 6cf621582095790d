"""Caches that know what made them: every cache key carries the version of the code that produces it, so a change
to that code (a committed loss change, say) is recomputed instead of served stale."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rerank_lib import code_version as cv
from rerank_lib.code_version import closure, code_version

ROOT = Path(__file__).resolve().parents[1]
LOSS_FILE = cv.PACKAGE_ROOT / "losses" / "pointwise.py"


@pytest.fixture()
def edited_loss(monkeypatch):
    """Stand in an edited pointwise loss file for the hashed source (the file on disk is left alone)."""
    original = cv.read_source

    def read(path):
        text = original(path)
        return text + b"\n# a changed loss\n" if Path(path) == LOSS_FILE else text

    def apply():
        monkeypatch.setattr(cv, "read_source", read)
        cv.clear_cache()

    yield apply
    cv.clear_cache()


def test_closure_follows_imports_inside_the_package_only():
    found = closure(["rerank_lib.recipes.cross_encoder"])
    assert {"rerank_lib.losses.pointwise", "rerank_lib.training.loop", "rerank_lib.teacher"} <= set(found)
    assert all(m.startswith("rerank_lib") for m in found)  # torch, transformers, notebooks: never
    assert closure(["rerank_lib.paths"]) == ["rerank_lib.paths"]
    with pytest.raises(ValueError, match="not a module"):
        code_version("rerank_lib.no_such_module")


def _version_in_process(package_parent: Path, module: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(package_parent), "PYTHONHASHSEED": "random"}
    done = subprocess.run([sys.executable, "-c", f"from rerank_lib.code_version import code_version as v; "
                                                 f"print(v({module!r}))"],
                          env=env, capture_output=True, text=True, check=True, cwd=package_parent)
    return done.stdout.strip()


def test_a_changed_loss_changes_the_version_in_any_copy_and_process(tmp_path):
    """Stable across processes (no hash randomisation) and checkouts (an sdist-like copy without git), and a
    changed loss gives a new version to the recipe that imports it, not to code that does not."""
    copy = tmp_path / "copy"
    shutil.copytree(cv.PACKAGE_ROOT, copy / "rerank_lib", ignore=shutil.ignore_patterns("__pycache__"))
    recipe = "rerank_lib.recipes.cross_encoder"
    here = code_version(recipe)
    assert _version_in_process(copy, recipe) == here == _version_in_process(copy, recipe)
    trec = _version_in_process(copy, "rerank_lib.data.trec")
    loss = copy / "rerank_lib" / "losses" / "pointwise.py"
    loss.write_text(loss.read_text() + "\nSCALE = 2.0\n")
    changed = _version_in_process(copy, recipe)
    assert changed != here and len(changed) == 16
    assert _version_in_process(copy, "rerank_lib.data.trec") == trec  # it does not import the losses


def test_run_dir_key_names_the_training_code(private_cache, edited_loss):
    from rerank_lib.experiment import run_dir

    recipe = "rerank_lib.recipes.cross_encoder"
    before = run_dir("p", "smoke", "m", data=[1], settings={"lr": 1e-4}, code=recipe)
    assert before == run_dir("p", "smoke", "m", data=[1], settings={"lr": 1e-4}, code=recipe)
    edited_loss()
    after = run_dir("p", "smoke", "m", data=[1], settings={"lr": 1e-4}, code=recipe)
    assert after != before and after.parent == before.parent


def test_a_changed_loss_retrains_instead_of_reusing_the_cached_run(private_cache, edited_loss, monkeypatch):
    """The finding: after a committed change to a loss, the notebook reused the cached model (its record named the
    new commit with the old code's number). Now the run folder changes with the code, so the run trains again."""
    from rerank_lib.experiment import DevEvaluator, run_dir, train_with_dev_selection
    from rerank_lib.training import TrainConfig

    monkeypatch.setenv("RERANK_CHECKPOINT_AT_END", "1")  # a finished run keeps its end checkpoint, as recipes' do

    def run_once():
        torch.manual_seed(0)
        model = torch.nn.Linear(1, 1)
        data = [(torch.tensor([float(i)]), torch.tensor([2.0 * i])) for i in range(1, 5)]
        dev = DevEvaluator(lambda m: {"q": {"a": float(m(torch.tensor([[1.0]])).item()), "b": 0.0}}, {"q": {"a": 1}},
                           measures=["RR@10"])
        folder = run_dir("toy", "smoke", "linear", data=[1, 2, 3, 4], settings={"lr": 0.01},
                         code="rerank_lib.recipes.cross_encoder")
        cfg = TrainConfig(output_dir=str(folder), learning_rate=0.01, max_steps=2, per_device_batch_size=2,
                          eval_every_steps=2, save_every_steps=None, mixed_precision="no", weight_decay=0.0)
        loss = lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1])  # noqa: E731
        collate = lambda items: (torch.stack([a for a, _ in items]), torch.stack([b for _, b in items]))  # noqa: E731
        return folder, train_with_dev_selection(model, data, collate, loss, cfg, dev)

    first_dir, first = run_once()
    again_dir, again = run_once()
    assert again_dir == first_dir and again.result.cached and not first.result.cached
    edited_loss()
    new_dir, new = run_once()
    assert new_dir != first_dir and not new.result.cached and new.result.global_step == 2


def test_run_dir_names_its_calling_recipe_by_default(private_cache):
    from rerank_lib.experiment import run_dir
    from rerank_lib.experiment.run_dir import TRAINING_CODE

    recipe = "rerank_lib.recipes.cross_encoder"
    namespace = {"__name__": recipe, "run_dir": run_dir}  # a function defined in the recipe module's namespace
    exec("def call():\n    return run_dir('p', 'smoke', 'm', data=[1], settings={})", namespace)
    assert namespace["call"]() == run_dir("p", "smoke", "m", data=[1], settings={}, code=recipe)
    # a caller outside the package (a notebook cell, this test): the shared training path
    assert run_dir("p", "smoke", "m", data=[1], settings={}) == run_dir("p", "smoke", "m", data=[1], settings={},
                                                                        code=TRAINING_CODE)
    assert run_dir("p", "smoke", "m", data=[1], settings={}) != namespace["call"]()
