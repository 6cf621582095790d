"""What a crash, a full disk or damaged bytes leave behind, and what the next run makes of it.

Each test injects a fault into a small training run (the toy regression of tests/_train_worker.py, or the
one-weight regression of tests/test_experiment.py), runs again as a user would, and checks that the record's
checkpoint, the weights selected and the weights on disk agree, and that no temporary folder is left.
"""
from __future__ import annotations

import errno
import re
import shutil
from pathlib import Path

import pytest
import torch
from torch.utils.data import default_collate

from _train_worker import final_params, mse_loss, toy_config, toy_dataset, toy_model
from rerank_lib.experiment import DevEvaluator, train_with_dev_selection
from rerank_lib.training import TrainConfig, list_checkpoints, saved_step, train
from rerank_lib.training import loop

_real_save = torch.save


def failing_save(monkeypatch, where: str, error: BaseException, times: int = 1):
    """torch.save raises `error` for a file under a folder named `where`, after writing half of it (what a kill or
    a full disk leaves), `times` times; other saves go through."""
    left = [times]

    def save(obj, f, *args, **kwargs):
        if left[0] and isinstance(f, (str, Path)) and where in Path(f).parts:
            left[0] -= 1
            _real_save(obj, f, *args, **kwargs)
            data = Path(f).read_bytes()
            Path(f).write_bytes(data[: len(data) // 2])
            raise error
        return _real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def state_of(model: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


# --- the untrained start selected, its save interrupted ----------------------------------------------------------


def _start_wins(tmp_path):
    """y = 2x fitted exactly by the start; noisy labels pull training away, so dev selects step 0."""
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(2.0)
        model.bias.zero_()
    xs = [torch.tensor([float(i)]) for i in range(1, 9)]
    data = [(x, 2 * x + (0.5 if i % 2 else -0.5)) for i, x in enumerate(xs)]

    def loss(m, batch):
        return torch.nn.functional.mse_loss(m(batch[0]), batch[1])

    def collate(items):
        return torch.stack([a for a, _ in items]), torch.stack([b for _, b in items])

    dev = DevEvaluator(lambda m: {"q": {"good": 1.0 - float(((m(torch.tensor([[3.0]])) - 6.0) ** 2).item()),
                                        "bad": 0.5}},
                       {"q": {"good": 1}}, measures=["RR@10"], extra=lambda run: {"neg_err": run["q"]["good"] - 1.0})
    cfg = TrainConfig(output_dir=str(tmp_path / "run"), learning_rate=0.05, max_steps=4, per_device_batch_size=2,
                      eval_every_steps=2, metric_for_best="neg_err", save_every_steps=None, mixed_precision="no",
                      lr_scheduler="constant", weight_decay=0.0)
    return model, data, collate, loss, cfg, dev


@pytest.mark.parametrize("error", [KeyboardInterrupt(), OSError(errno.ENOSPC, "No space left on device")])
def test_a_crash_while_the_start_is_saved_as_best_is_repaired_by_the_rerun(tmp_path, monkeypatch, error):
    """A kill or a full disk while best/ gets the untrained start: the re-run selects the start and its selected
    folder holds the start's weights (not the final ones), and no .best.tmp is left."""
    model, data, collate, loss, cfg, dev = _start_wins(tmp_path)
    start = state_of(model)
    failing_save(monkeypatch, ".best.tmp", error)
    with pytest.raises(type(error)):
        train_with_dev_selection(model, data, collate, loss, cfg, dev)
    monkeypatch.setattr(torch, "save", _real_save)

    model, data, collate, loss, cfg, dev = _start_wins(tmp_path)  # the user runs the same cell again
    sel = train_with_dev_selection(model, data, collate, loss, cfg, dev)
    assert sel.step == 0 and sel.is_start
    assert_same(torch.load(sel.model_dir / "model.pt", weights_only=True), start)
    assert saved_step(sel.model_dir) == 0
    assert not torch.equal(torch.load(sel.result.final_dir / "model.pt", weights_only=True)["weight"],
                           start["weight"])  # the final weights are another model: the check above means something
    assert leftovers(tmp_path / "run") == []


# --- a new best saved, then a crash before the checkpoint that covers it ------------------------------------------


def test_a_best_newer_than_the_resumed_checkpoint_is_rolled_back_to_the_logs_best(tmp_path, monkeypatch):
    """best/ got step 6's weights, then the disk filled while checkpoint-6 was written. The re-run resumes from
    checkpoint-3, whose log names step 3 as best; its later evaluations do not beat it, so the selected folder must
    hold step 3's weights, not the step 6 weights the crash left in best/."""
    out = tmp_path / "run"
    cfg = toy_config(out, max_steps=12, eval_every_steps=3, save_every_steps=3, keep_last_checkpoints=None)
    snapshots = {}
    scores = iter([0.1, 0.5, 0.9])  # steps 0, 3, 6 of the first run

    def first_eval(model):
        score = next(scores)
        snapshots[len(snapshots) * 3] = state_of(model)
        return {"dev": score}

    failing_save(monkeypatch, "checkpoint-6", OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(OSError) as full:
        train(toy_model(), toy_dataset(), default_collate, mse_loss, cfg, eval_fn=first_eval)
    monkeypatch.setattr(torch, "save", _real_save)
    assert_same(torch.load(out / "best" / "model.pt", weights_only=True), snapshots[6])

    later = iter([0.2, 0.3, 0.4])  # steps 6, 9, 12 of the re-run: none beats step 3's 0.5
    result = train(toy_model(), toy_dataset(), default_collate, mse_loss, cfg,
                   eval_fn=lambda model: {"dev": next(later)})
    assert [r["step"] for r in result.eval_history] == [0, 3, 6, 9, 12]
    assert result.best_step == 3
    assert_same(torch.load(result.best_dir / "model.pt", weights_only=True), snapshots[3])
    assert saved_step(result.best_dir) == 3
    assert leftovers(out) == []
    assert "no space left on device" in str(full.value)


def test_a_finished_run_leaves_no_earlier_best_behind(tmp_path):
    """best/ keeps its earlier version only until a checkpoint or the end of the run covers the new one."""
    out = tmp_path / "run"
    result = train(toy_model(), toy_dataset(), default_collate, mse_loss, toy_config(out, eval_every_steps=3),
                   eval_fn=lambda model, s=iter([0.1, 0.2, 0.3, 0.4, 0.5]): {"dev": next(s)})
    assert result.best_step == 12 and saved_step(out / "best") == 12
    assert leftovers(out) == []


# --- a full disk while a checkpoint or final/ is written ---------------------------------------------------------


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0")])
def test_a_full_disk_during_a_checkpoint_says_so_and_the_rerun_resumes(tmp_path, monkeypatch, error):
    """torch words a full disk as 'unexpected pos': the error says 'no space left on device' and names the
    checkpoint folder; the half-written folder is removed, and a re-run ends with the uninterrupted weights."""
    whole = tmp_path / "whole"
    train(toy_model(), toy_dataset(), default_collate, mse_loss, toy_config(whole, save_every_steps=6))
    out = tmp_path / "run"
    failing_save(monkeypatch, "checkpoint-12", error)
    with pytest.raises(OSError) as raised:
        train(toy_model(), toy_dataset(), default_collate, mse_loss, toy_config(out, save_every_steps=6))
    message = str(raised.value)
    assert "no space left on device" in message and str(out / "checkpoint-12") in message
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-6"]  # the cut one is gone
    monkeypatch.setattr(torch, "save", _real_save)
    result = train(toy_model(), toy_dataset(), default_collate, mse_loss, toy_config(out, save_every_steps=6))
    assert result.global_step == 12
    assert_same(final_params(out), final_params(whole))


def test_a_crash_while_final_is_written_is_repaired_by_the_rerun(tmp_path, monkeypatch):
    """Killed while final/ is written (after the last checkpoint): the re-run finds the run finished and writes
    final/ from that checkpoint, the uninterrupted weights, and removes the staging folder."""
    whole = tmp_path / "whole"
    train(toy_model(), toy_dataset(), default_collate, mse_loss, toy_config(whole, save_every_steps=6))
    out = tmp_path / "run"
    failing_save(monkeypatch, ".final.tmp", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        train(toy_model(), toy_dataset(), default_collate, mse_loss, toy_config(out, save_every_steps=6))
    monkeypatch.setattr(torch, "save", _real_save)
    result = train(toy_model(), toy_dataset(), default_collate, mse_loss, toy_config(out, save_every_steps=6))
    assert result.cached and saved_step(out / "final") == 12
    assert_same(final_params(out), final_params(whole))
    assert leftovers(out) == []


def test_no_space_error_names_the_folder_of_final_weights(tmp_path, monkeypatch):
    failing_save(monkeypatch, ".final.tmp", RuntimeError("unexpected pos 1234 vs 0"))
    with pytest.raises(OSError, match=r"no space left on device while saving the weights of step 12 to .*\.final\.tmp"):
        train(toy_model(), toy_dataset(), default_collate, mse_loss, toy_config(tmp_path / "run"))
    assert leftovers(tmp_path / "run") == []


# --- damaged bytes ----------------------------------------------------------------------------------------------


def flip_a_byte(path: Path) -> None:
    """Same-size damage inside the tensor data: the high byte of the first float of the largest tensor."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        tensors = load_file(path)
    else:
        tensors = torch.load(path, weights_only=True)
    largest = max(tensors.values(), key=torch.Tensor.numel)
    data = bytearray(path.read_bytes())
    at = bytes(data).find(largest.contiguous().numpy().tobytes())
    assert at >= 0
    data[at + 3] ^= 0x7F  # float32, little-endian: sign and exponent
    path.write_bytes(bytes(data))


def test_a_damaged_resume_checkpoint_is_skipped_for_the_previous_good_one(tmp_path, capsys):
    """Same-size damage to the newest checkpoint's weights: resume says which checkpoint it skips, goes on from
    the one before, and ends with the uninterrupted weights (before: the damaged weights were loaded, exit 0)."""
    whole = tmp_path / "whole"
    train(toy_model(), toy_dataset(), default_collate, mse_loss, toy_config(whole, save_every_steps=6))
    out = tmp_path / "run"
    config = toy_config(out, save_every_steps=3, keep_last_checkpoints=None)
    train(toy_model(), toy_dataset(), default_collate, mse_loss, config)
    for gone in ("checkpoint-12", "final"):  # as if the run had been killed at step 11
        shutil.rmtree(out / gone)
    newest = list_checkpoints(out)[-1]
    assert newest.name == "checkpoint-9"
    weights = next(p for p in newest.iterdir() if p.name.startswith("model"))
    flip_a_byte(weights)
    capsys.readouterr()
    result = train(toy_model(), toy_dataset(), default_collate, mse_loss, config)
    said = capsys.readouterr().out
    assert result.global_step == 12
    assert_same(final_params(out), final_params(whole))
    assert re.search(r"skipping checkpoint .*checkpoint-9: model.*sha256 differs from checksums.json", said), said
    assert "resuming" in said and "checkpoint-6 at step 6" in said


def test_damaged_best_weights_are_made_again_or_named(tmp_path):
    """A flipped byte in best/ after training. When the selected step's weights are at hand (the untrained start
    given to the re-run) best/ is written again from them; when they are not (step 3 of a finished run whose
    checkpoints are 6 and 12) the re-run stops with a line naming best/ and the step, instead of recording step 3
    with other weights."""
    model, data, collate, loss, cfg, dev = _start_wins(tmp_path)
    start = state_of(model)
    train_with_dev_selection(model, data, collate, loss, cfg, dev)
    flip_a_byte(tmp_path / "run" / "best" / "model.pt")
    model, data, collate, loss, cfg, dev = _start_wins(tmp_path)
    sel = train_with_dev_selection(model, data, collate, loss, cfg, dev)
    assert sel.step == 0
    assert_same(torch.load(sel.model_dir / "model.pt", weights_only=True), start)
    assert saved_step(sel.model_dir) == 0

    out = tmp_path / "middle"
    config = toy_config(out, save_every_steps=6, eval_every_steps=3)
    scores = [0.1, 0.9, 0.2, 0.3, 0.4]  # steps 0, 3, 6, 9, 12: step 3 is best
    done = train(toy_model(), toy_dataset(), default_collate, mse_loss, config,
                 eval_fn=lambda model, s=iter(scores): {"dev": next(s)})
    assert done.best_step == 3
    flip_a_byte(out / "best" / "model.pt")
    with pytest.raises(RuntimeError, match=r"best does not hold the weights of step 3, the best evaluation in .*"
                                           r"log.jsonl, and no kept checkpoint has them"):
        train(toy_model(), toy_dataset(), default_collate, mse_loss, config, eval_fn=lambda model: {"dev": 0.0})


def test_non_finite_weights_are_not_published(tmp_path):
    from rerank_lib.experiment.publish import non_finite_weights, publish_model
    from rerank_lib.export import ModelCard

    model = toy_model()
    assert non_finite_weights(model) == []
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    assert non_finite_weights(model) == ["0.weight"]
    with pytest.raises(ValueError, match=r"toy: not published, 1 weight tensor\(s\) hold NaN or inf \(first: "
                                         r"0.weight\)"):
        publish_model("cross_encoder", model, tmp_path, "smoke", "toy", ModelCard("toy", 1, {}))
    assert not (tmp_path / "models").exists()


# --- torch.load --------------------------------------------------------------------------------------------------


def test_every_torch_load_in_the_library_loads_weights_only():
    """A pickle in a downloaded or copied model.pt must not run code: every torch.load passes weights_only=True."""
    root = Path(loop.__file__).parents[1]
    calls = []
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"torch\.load\(", text):
            depth, end = 1, match.end()
            while depth:
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                end += 1
            calls.append((path.relative_to(root).as_posix(), text[match.start():end]))
    assert calls  # the library does load state dicts
    assert [c for c in calls if "weights_only=True" not in c[1]] == []


# --- a run found in the cache counts the settings its training read ----------------------------------------------


def test_a_cached_run_counts_the_settings_its_training_read(tmp_path, monkeypatch):
    """The settings-read accounting of the smoke notebooks must not depend on what an earlier run left in the cache:
    a run found finished trains nothing (keep_last_checkpoints is read only when a checkpoint is pruned), yet the
    settings its training read are counted, from settings_read.json written beside the run."""
    from rerank_lib import settings

    config = toy_config(tmp_path / "run", save_every_steps=6)
    first: set = set()
    monkeypatch.setattr(settings, "_reads", first)
    train(toy_model(), toy_dataset(), default_collate, mse_loss, config)
    assert ("TrainConfig", "keep_last_checkpoints") in first

    again: set = set()
    monkeypatch.setattr(settings, "_reads", again)
    result = train(toy_model(), toy_dataset(), default_collate, mse_loss, config)
    assert result.cached
    assert {pair for pair in first if pair[0] == "TrainConfig"} <= again


def test_publishing_again_removes_what_a_killed_publish_left(tmp_path, monkeypatch):
    """A publish killed while its export was staged leaves `.<method>.<random>.tmp` beside the published folder;
    the next publish of that method removes it."""
    from rerank_lib.experiment import publish
    from rerank_lib.export import ModelCard

    def export(model, folder):
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "weights.bin").write_bytes(b"w")

    monkeypatch.setitem(publish.EXPORTS, "cross_encoder", export)
    models = publish.models_dir(tmp_path, "smoke")
    killed = models / ".toy.k3j2x9_q.tmp"
    killed.mkdir(parents=True)
    (killed / "model.safetensors").write_bytes(b"half")
    other = models / ".toy.v2.a1b2c3d4.tmp"  # method toy.v2's staging, maybe being written now: left alone
    other.mkdir()
    folder = publish.publish_model("cross_encoder", toy_model(), tmp_path, "smoke", "toy", ModelCard("toy", 1, {}))
    assert (folder / "weights.bin").read_bytes() == b"w" and (folder / "README.md").is_file()
    assert leftovers(models) == [".toy.v2.a1b2c3d4.tmp"]


def test_a_crash_mid_training_closes_its_progress_bar(tmp_path):
    """An exception inside a training step leaves no open bar: tqdm would draw every later bar of the process one
    line lower, with cursor-up escapes in a notebook's text output."""
    from tqdm import tqdm  # every bar of rerank_lib.progress is a tqdm (text or tqdm.auto's subclass)

    open_before = len(tqdm._instances)
    calls = []

    def crashing_loss(model, batch):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("injected crash in step 2")
        return mse_loss(model, batch)

    with pytest.raises(RuntimeError, match="injected crash") as crash:  # its traceback holds the run's frames
        train(toy_model(), toy_dataset(), default_collate, crashing_loss, toy_config(tmp_path / "run", max_steps=4))
    assert len(tqdm._instances) == open_before, crash.value
