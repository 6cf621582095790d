"""Nothing the train command touches is lost: a user's --output_dir (transformers' contract), the notebooks'
records and published models, a run folder another process trains in; and the export it writes is complete
(sentence-transformers' CrossEncoder loads it with its real tokenizer and scores as our reranker does)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from rerank_lib import train
from rerank_lib.experiment.output_dir import MANIFEST, OutputDirError, check_output_dir, write_export
from rerank_lib.training.run_lock import LOCK_FILE, RunFolderInUse, run_folder_lock

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CE_SMOKE = ["cross_encoder", "--profile", "smoke", "--set", "variants=[point_ce]", "--set", "seeds=[]"]  # one run
STEM = "cross_encoder__ce-minilm-point-ce__scifact_test"  # the record the smoke point_ce run evaluates into
QUERY = "glucose metabolism in insulin resistant patients"
DOCS = ["Insulin resistance impairs glucose uptake in skeletal muscle.", "The bridge was painted red in 1937.",
        "Metabolic syndrome raises the risk of type 2 diabetes."]


def _user_files(folder: Path) -> dict[str, bytes]:
    (folder / "sub").mkdir(parents=True)
    (folder / "thesis.tex").write_text("\\documentclass{article} my thesis\n")
    (folder / "sub" / "notes.txt").write_text("chapter 2 notes\n")
    return {rel: (folder / rel).read_bytes() for rel in ("thesis.tex", "sub/notes.txt")}


# ------------------------------------------------------------------------------------- output folder, no training

def test_a_non_empty_folder_is_refused_unless_it_is_our_export_or_overwrite_is_given(tmp_path):
    folder = tmp_path / "mine"
    check_output_dir(folder, overwrite=False)  # missing: made at export
    folder.mkdir()
    check_output_dir(folder, overwrite=False)  # empty
    _user_files(folder)
    with pytest.raises(OutputDirError, match=rf"--output_dir {folder} is not empty .*--overwrite_output_dir"):
        check_output_dir(folder, overwrite=False)
    check_output_dir(folder, overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputDirError, match="is a file"):
        check_output_dir(tmp_path / "file", overwrite=True)


def _writer(files: dict[str, str]):
    def write(folder: Path):
        for rel, text in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text)
    return write


def test_an_export_replaces_only_its_own_files(tmp_path):
    folder = tmp_path / "out"
    user = _user_files(folder)
    (folder / "config.json").write_text("the user's")  # a name the export writes: replaced (that is the flag)
    written = write_export(folder, {"m": _writer({"config.json": "ours 1", "old.bin": "1", "sub2/tok.json": "t"})},
                           {"command": "test"})
    assert written == ["config.json", "old.bin", "sub2/tok.json"]
    assert {rel: (folder / rel).read_bytes() for rel in user} == user
    assert json.loads((folder / MANIFEST).read_text())["files"] == written
    check_output_dir(folder, overwrite=False)  # our own earlier export: a re-run may write into it
    # the next export writes other files: ours that it no longer writes go, the user's stay
    write_export(folder, {"m": _writer({"config.json": "ours 2"})}, {"command": "test"})
    assert (folder / "config.json").read_text() == "ours 2"
    assert not (folder / "old.bin").exists() and not (folder / "sub2").exists()
    assert {rel: (folder / rel).read_bytes() for rel in user} == user
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", MANIFEST, "sub", "thesis.tex"]
    # a user's folder where the export writes a file: refused, nothing moved
    (folder / "model.bin").mkdir()
    with pytest.raises(OutputDirError, match="model.bin is a folder"):
        write_export(folder, {"m": _writer({"config.json": "ours 3", "model.bin": "w"})}, {"command": "test"})
    assert (folder / "config.json").read_text() == "ours 2"


# ------------------------------------------------------------------------------------------------ run folder lock

HOLDER = ("import sys, time\nfrom rerank_lib.training.run_lock import run_folder_lock\n"
          "with run_folder_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n")


def _hold(folder: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{PROJECT_ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("RANK", None)
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_training_in_a_busy_run_folder_is_refused_and_a_killed_holder_blocks_nothing(tmp_path, monkeypatch):
    sys.path.insert(0, str(Path(__file__).parent))
    from _train_worker import mse_loss, toy_config, toy_dataset, toy_model
    from torch.utils.data import default_collate

    from rerank_lib.training import train as train_loop

    monkeypatch.delenv("RANK", raising=False)
    folder = tmp_path / "run"
    holder = _hold(folder)
    try:
        with pytest.raises(RunFolderInUse, match=rf"run folder {folder} is in use by process {holder.pid} on "):
            train_loop(toy_model(), toy_dataset(), default_collate, mse_loss, toy_config(folder, num_epochs=1))
        assert not (folder / "log.jsonl").exists()  # refused before it wrote anything
        monkeypatch.setenv("RANK", "1")  # another rank of the holder's world trains beside it
        with run_folder_lock(folder):
            pass
        monkeypatch.delenv("RANK")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert "process" in (folder / LOCK_FILE).read_text()  # the dead holder's file is still there ...
    result = train_loop(toy_model(), toy_dataset(), default_collate, mse_loss, toy_config(folder, num_epochs=1))
    assert result.global_step == 6  # ... and blocks nothing: 48 examples / 8 per step
    assert (folder / LOCK_FILE).read_text().startswith(f"process {os.getpid()} ")


def test_the_command_refuses_a_busy_run_folder_in_one_line(tmp_path, monkeypatch, capsys):
    """The command's refusal (exit 1, no traceback) when its run folder is held: found by the same key."""
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RANK", raising=False)
    argv = ["retriever", "--profile", "smoke", "--set", "methods=[ctl]", "--results-dir", str(tmp_path / "results")]
    assert train.main(argv) == 0
    (folder,) = (tmp_path / "cache" / "runs" / "retriever_training" / "smoke").iterdir()
    holder = _hold(folder)
    try:
        capsys.readouterr()
        assert train.main(argv) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err  # one line after the loading bars: the error, naming the folder and holder
        assert f"error: run folder {folder} is in use by process {holder.pid} on " in err.strip().splitlines()[-1]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert train.main(argv) == 0


# ----------------------------------------------------------------------------- a smoke shell training, exported

@pytest.fixture(scope="module")
def shell_world(module_scratch):
    """One smoke cross_encoder training with --evaluate and --output_dir, into a results folder that already holds
    a notebook's record and published model of the same names."""
    root = module_scratch("shell_world")
    results = root / "results"
    notebook_files = {f"records/smoke/{STEM}.json": b'{"made by": "notebook 11"}\n',
                      f"records/smoke/{STEM}.per_query.csv": b"qid,measure,value\n1,nDCG@10,0.5\n",
                      "models/smoke/ce-minilm-point-ce/README.md": b"# notebook 11's published model\n"}
    for rel, blob in notebook_files.items():
        (results / rel).parent.mkdir(parents=True, exist_ok=True)
        (results / rel).write_bytes(blob)
    env = {"RERANK_CACHE_DIR": str(root / "cache"), "OMP_NUM_THREADS": "1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        assert train.main([*CE_SMOKE, "--evaluate", "--results-dir", str(results), "--output_dir",
                           str(root / "ce")]) == 0
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
    return root, notebook_files


@pytest.mark.slow
def test_the_cross_encoder_export_loads_in_sentence_transformers_with_its_tokenizer(shell_world):
    from sentence_transformers import CrossEncoder as STCrossEncoder

    from rerank_lib.rerankers import CrossEncoder

    root, _ = shell_world
    folder = root / "ce"
    peer = STCrossEncoder(str(folder), device="cpu")
    ids = peer.tokenizer(QUERY)["input_ids"]
    assert peer.tokenizer.unk_token_id not in ids and len(set(ids)) > 5, ids  # real word pieces, not [UNK]
    assert len(peer.tokenizer) > 30000  # MiniLM's WordPiece vocabulary, not a 5-token stand-in
    # our reranker with the selected weights, read from the run folder (not from the export)
    manifest = json.loads((folder / MANIFEST).read_text())
    (run,) = manifest["runs"].values()
    (selected,) = (root / "cache" / "runs" / "cross_encoder" / "smoke").glob(f"{Path(run['run']).name}/best")
    from rerank_lib.recipes import cross_encoder

    max_length = cross_encoder.config("smoke").max_length
    assert peer.max_seq_length == max_length  # the trained max length travels with the folder
    ours = CrossEncoder("minilm-l6", max_length=max_length, device="cpu", dtype=torch.float32)
    ours.load_weights(selected)
    expected = ours.score(QUERY, DOCS)
    got = peer.predict([(QUERY, d) for d in DOCS], activation_fn=torch.nn.Identity())
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.ptp(expected) > 1e-3  # the scores tell the documents apart
    assert sorted(manifest["files"]) == sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                                               if p.is_file() and p.name != MANIFEST)


@pytest.mark.slow
def test_a_shell_run_never_replaces_a_notebook_record_or_model(shell_world):
    root, notebook_files = shell_world
    results = root / "results"
    for rel, blob in notebook_files.items():
        assert (results / rel).read_bytes() == blob, rel
    shell = results / "shell"
    record = json.loads((shell / "records" / "smoke" / f"{STEM}.json").read_text())  # the same name, its own place
    assert record["method"] == "ce-minilm-point-ce" and record["profile"] == "smoke"
    assert (shell / "models" / "smoke" / "ce-minilm-point-ce" / "model.safetensors").exists()


@pytest.mark.slow
def test_a_user_folder_is_refused_before_training_and_kept_with_overwrite(shell_world, tmp_path, monkeypatch, capsys):
    root, _ = shell_world
    folder = tmp_path / "thesis"
    user = _user_files(folder)
    results = ["--results-dir", str(root / "results")]
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "empty-cache"))
    with pytest.raises(SystemExit) as exit_:
        train.main([*CE_SMOKE, *results, "--output_dir", str(folder)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"--output_dir {folder} is not empty" in err and "--overwrite_output_dir" in err
    assert not (tmp_path / "empty-cache" / "runs").exists()  # refused before any training
    monkeypatch.setenv("RERANK_CACHE_DIR", str(root / "cache"))  # the trained run: found finished
    assert train.main([*CE_SMOKE, *results, "--output_dir", str(folder), "--overwrite_output_dir"]) == 0
    assert {rel: (folder / rel).read_bytes() for rel in user} == user
    assert (folder / "tokenizer.json").exists() and (folder / "model.safetensors").exists()
    before = (folder / "model.safetensors").stat().st_mtime_ns
    time.sleep(0.01)
    assert train.main([*CE_SMOKE, *results, "--output_dir", str(folder)]) == 0  # our own export: no flag needed
    assert (folder / "model.safetensors").stat().st_mtime_ns != before
    assert {rel: (folder / rel).read_bytes() for rel in user} == user


@pytest.mark.slow
def test_output_dir_dot_and_an_empty_folder_work(shell_world, tmp_path, monkeypatch):
    root, _ = shell_world
    monkeypatch.setenv("RERANK_CACHE_DIR", str(root / "cache"))
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert train.main([*CE_SMOKE, "--results-dir", str(root / "results"), "--output_dir", "."]) == 0
    assert (here / "model.safetensors").exists() and (here / "tokenizer.json").exists()
    assert (here / "model.safetensors").stat().st_mode & 0o044 == 0o044  # readable by others, as the user's files
    assert not list(here.glob(".rerank-export-*"))  # no staging left behind
