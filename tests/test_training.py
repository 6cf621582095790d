"""Tests of the shared training loop (rerank_lib.training), on a toy regression small enough for 2 CPU cores.

The loop's promises are about reproducibility, so most tests train twice and compare final weights.
Tolerances: runs that differ only in how a batch is split (accumulation, processes) compute the same mean
gradient with floats summed in a different order; fp32 rounding of ~1e-7 relative then drifts over 12 AdamW
steps to ~3e-8 here, hence atol=1e-6. A resumed run recomputes exactly the same operations, hence exact equality.
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from _train_worker import final_params, mse_loss, toy_config, toy_dataset, toy_model
from rerank_lib.paths import PROJECT_ROOT
from rerank_lib.training import (
    EpochSampler,
    epoch_order,
    latest_checkpoint,
    list_checkpoints,
    pad_collate,
    prune_checkpoints,
    resolve_mixed_precision,
    train,
)
from rerank_lib.training import precision

SPLIT_ATOL = 1e-6  # see the module docstring
CONFIG_DIR = PROJECT_ROOT / "configs" / "accelerate"


def assert_same_params(a: dict, b: dict, atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for name in a:
        if atol == 0.0:
            assert torch.equal(a[name], b[name]), name
        else:
            torch.testing.assert_close(a[name], b[name], rtol=0.0, atol=atol, msg=name)


def read_log(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "log.jsonl").read_text().splitlines()]


# --- the loop's reproducibility promises ----------------------------------------------------------------------


def test_two_processes_equal_one_process_at_same_global_batch(tmp_path):
    one = tmp_path / "one_process"
    train(toy_model(), toy_dataset(), default_collate, mse_loss, toy_config(one, per_device_batch_size=8))

    # Two gloo processes with 4 examples each: the same 8 examples per step, gradients averaged by DDP.
    two = tmp_path / "two_processes"
    env = {**os.environ, "PYTHONPATH": f"{PROJECT_ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}  # ACCELERATE_USE_CPU: what `accelerate launch --cpu` sets
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(Path(__file__).with_name("_train_worker.py")), str(two), "4"]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]

    config = json.loads((two / "train_config.json").read_text())
    assert (config["num_processes"], config["global_batch"], config["total_steps"]) == (2, 8, 12)
    assert_same_params(final_params(one), final_params(two), atol=SPLIT_ATOL)
    # Checkpoints were written by both processes (one RNG state each) and marked complete after both.
    assert [p.name for p in list_checkpoints(two)] == ["checkpoint-6", "checkpoint-12"]
    written = {f.name for f in latest_checkpoint(two).iterdir()}
    assert {"COMPLETE", "random_states_0.pkl", "random_states_1.pkl"} <= written
    # Only the main process logs, once per step, and the LR schedule advanced once per step as with one process.
    one_log, two_log = read_log(one), read_log(two)
    assert [r["step"] for r in two_log] == list(range(1, 13))
    assert [r["lr"] for r in two_log] == pytest.approx([r["lr"] for r in one_log])


def test_gradient_accumulation_equals_the_large_batch(tmp_path):
    big = train(toy_model(), toy_dataset(), default_collate, mse_loss,
                toy_config(tmp_path / "big", per_device_batch_size=8))
    accumulated = train(toy_model(), toy_dataset(), default_collate, mse_loss,
                        toy_config(tmp_path / "acc", per_device_batch_size=4, gradient_accumulation_steps=2))
    assert big.global_step == accumulated.global_step == 12  # 48 examples / 8 per step x 2 epochs
    assert_same_params(final_params(tmp_path / "big"), final_params(tmp_path / "acc"), atol=SPLIT_ATOL)
    assert [r["lr"] for r in big.history] == pytest.approx([r["lr"] for r in accumulated.history])


def test_resumed_run_reaches_the_uninterrupted_weights(tmp_path):
    # 48 examples, 4 x 2 accumulation = 8 per step: 6 steps per epoch, 12 in all; dropout makes the RNG matter.
    settings = dict(per_device_batch_size=4, gradient_accumulation_steps=2, save_every_steps=4, keep_last_checkpoints=2)
    train(toy_model(dropout=0.1), toy_dataset(), default_collate, mse_loss, toy_config(tmp_path / "a", **settings))

    calls = {"n": 0}

    def crashing_loss(model, batch):
        calls["n"] += 1
        if calls["n"] == 2 * 9 + 2:  # the second micro-batch of step 10, in the middle of epoch 2
            raise RuntimeError("simulated crash")
        return mse_loss(model, batch)

    b = tmp_path / "b"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(toy_model(dropout=0.1), toy_dataset(), default_collate, crashing_loss, toy_config(b, **settings))
    assert [p.name for p in list_checkpoints(b)] == ["checkpoint-4", "checkpoint-8"]
    # A run killed while saving step 9 leaves a folder without the COMPLETE marker: resume must not load it.
    half_written = b / "checkpoint-9"
    half_written.mkdir()
    (half_written / "model.safetensors").write_bytes(b"truncated")
    assert latest_checkpoint(b) == b / "checkpoint-8"

    calls["n"] = 0
    resumed = train(toy_model(dropout=0.1), toy_dataset(), default_collate, crashing_loss,
                    toy_config(b, **settings))
    assert calls["n"] == (12 - 8) * 2  # restarted at step 8, not from scratch nor from the broken step 9
    assert resumed.global_step == 12
    assert_same_params(final_params(tmp_path / "a"), final_params(b))  # exact: the very same operations
    # The log holds every step once: the crashed run's step 9 row was replaced by the resumed run's.
    assert [r["step"] for r in read_log(b)] == list(range(1, 13))
    assert [p.name for p in list_checkpoints(b)] == ["checkpoint-8", "checkpoint-12"]  # half-written one pruned


def test_loss_decreases_and_log_eval_checkpoints_are_written(tmp_path):
    data = toy_dataset(n=96)
    train_set, held_out = data[:64], default_collate(data[64:])

    def eval_fn(model):
        assert not model.training and not torch.is_grad_enabled()
        return {"mse": mse_loss(model, held_out).item()}

    out = tmp_path / "run"
    config = toy_config(out, num_epochs=4, learning_rate=3e-2, log_every_steps=4, eval_every_steps=8,
                        save_every_steps=5, keep_last_checkpoints=2, metric_for_best="mse", greater_is_better=False)
    result = train(toy_model(), train_set, default_collate, mse_loss, config, eval_fn=eval_fn)

    assert result.global_step == 32  # 64 / 8 per step x 4 epochs
    assert result.history[-1]["loss"] < 0.3 * result.history[0]["loss"]
    assert result.eval_history[-1]["mse"] < result.eval_history[0]["mse"]
    rows = read_log(out)
    assert [r["step"] for r in rows if r["kind"] == "train"] == [4, 8, 12, 16, 20, 24, 28, 32]
    assert [r["step"] for r in rows if r["kind"] == "eval"] == [0, 8, 16, 24, 32]  # step 0: the untrained start
    assert {"step", "epoch", "loss", "lr", "elapsed_s"} <= next(r for r in rows if r["kind"] == "train").keys()
    assert result.best_metric == min(r["mse"] for r in result.eval_history)
    # Saved at 5, 10, ..., 30 and at the last step; only the newest two remain, both complete.
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-30", "checkpoint-32"]
    assert all((p / "COMPLETE").is_file() for p in list_checkpoints(out))
    assert set(final_params(out)) == set(toy_model().state_dict())

    # Running the finished cell again resumes at the end: no step is trained twice.
    def must_not_train(model, batch):
        raise AssertionError("a finished run trained again")

    trained = final_params(out)
    again = train(toy_model(), train_set, default_collate, must_not_train, config, eval_fn=eval_fn)
    assert again.global_step == 32 and again.best_metric == result.best_metric
    assert_same_params(final_params(out), trained)  # final/ rewritten from the last checkpoint's weights


def test_best_evaluation_weights_are_kept(tmp_path):
    """Checkpoint selection: best/ holds the weights of the best evaluation, not of the last step."""
    snapshots, scores = [], iter([0.1, 0.2, 0.9, 0.5, 0.9])  # step 0, then best at step 6; a later tie does not replace it

    def eval_fn(model):
        snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return {"dev_ndcg": next(scores)}

    out = tmp_path / "run"
    result = train(toy_model(), toy_dataset(), default_collate, mse_loss,
                   toy_config(out, max_steps=12, eval_every_steps=3), eval_fn=eval_fn)
    assert result.best_step == 6 and result.best_metric == 0.9 and result.best_dir == out / "best"
    assert [row["step"] for row in result.eval_history] == [0, 3, 6, 9, 12]
    assert_same_params(torch.load(out / "best" / "model.pt"), snapshots[2])
    assert not torch.equal(torch.load(out / "best" / "model.pt")["0.weight"], final_params(out)["0.weight"])


def test_the_untrained_start_is_a_checkpoint_candidate(tmp_path):
    """When no step beats step 0 on dev, best/ holds the start's weights; eval_at_start=False skips step 0."""
    scores = iter([0.8, 0.5, 0.7])
    start = toy_model()
    start_weights = {k: v.detach().clone() for k, v in start.state_dict().items()}
    out = tmp_path / "run"
    result = train(start, toy_dataset(), default_collate, mse_loss, toy_config(out, max_steps=6, eval_every_steps=3),
                   eval_fn=lambda model: {"dev": next(scores)})
    assert result.best_step == 0 and result.best_metric == 0.8
    assert_same_params(torch.load(out / "best" / "model.pt"), start_weights)
    off = train(toy_model(), toy_dataset(), default_collate, mse_loss,
                toy_config(tmp_path / "off", max_steps=6, eval_every_steps=3, eval_at_start=False),
                eval_fn=lambda model: {"dev": 0.5})
    assert [row["step"] for row in off.eval_history] == [3, 6]


def test_prune_keeps_the_newest_complete_checkpoints(tmp_path):
    for step in (2, 4, 6, 8):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if step != 8:  # checkpoint-8 was cut short
            (tmp_path / f"checkpoint-{step}" / "COMPLETE").touch()
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-6"
    prune_checkpoints(tmp_path, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-4", "checkpoint-6"]


def test_tiny_bert_cross_encoder_with_padding_and_gradient_checkpointing(tmp_path):
    """The real use: a HF model, tokenized pairs of varying length, save_pretrained output."""
    from transformers import BertConfig, BertForSequenceClassification

    bert_config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=32, max_position_embeddings=32, num_labels=1)
    torch.manual_seed(0)
    model = BertForSequenceClassification(bert_config)
    initial = {name: value.clone() for name, value in model.state_dict().items()}
    rng = np.random.default_rng(0)
    examples = [{"input_ids": rng.integers(1, 50, size=rng.integers(3, 20)).tolist(), "label": float(i % 2)}
                for i in range(16)]

    def bce_loss(model, batch):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.squeeze(-1)
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, batch["label"])

    config = toy_config(tmp_path, num_epochs=1, per_device_batch_size=4, gradient_checkpointing=True,
                        learning_rate=1e-3)
    result = train(model, examples, pad_collate(0), bce_loss, config,
                   lengths=[len(ex["input_ids"]) for ex in examples])
    assert model.is_activation_checkpointing and result.global_step == 4
    reloaded = BertForSequenceClassification.from_pretrained(result.final_dir)
    assert_same_params(model.state_dict(), reloaded.state_dict())
    assert not torch.equal(model.classifier.weight, initial["classifier.weight"])


# --- collator and sampler -------------------------------------------------------------------------------------


def test_pad_collate_pads_to_the_longest_in_the_batch():
    examples = [{"input_ids": [5, 6, 7], "label": 1.0, "qid": "q1", "docids": ["d1", "d2"]},
                {"input_ids": [8], "label": 0.0, "qid": "q2", "docids": ["d3"]}]
    batch = pad_collate(0)(examples)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]  # 3 = the longest here, not a max_length
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["label"].tolist() == [1.0, 0.0]
    assert batch["qid"] == ["q1", "q2"] and batch["docids"] == [["d1", "d2"], ["d3"]]  # strings pass through

    class Tokenizer:  # what pad_collate reads from a HF tokenizer
        pad_token_id, padding_side = 3, "left"

    left = pad_collate(Tokenizer(), pad_to_multiple_of=4)(
        [{"input_ids": torch.tensor([5, 6, 7]), "attention_mask": [1, 1, 1], "labels": [1, 2, 3]},
         {"input_ids": torch.tensor([8]), "attention_mask": [1], "labels": [4]}])
    assert left["input_ids"].tolist() == [[3, 5, 6, 7], [3, 3, 3, 8]]
    assert left["attention_mask"].tolist() == [[0, 1, 1, 1], [0, 0, 0, 1]]
    assert left["labels"].tolist() == [[-100, 1, 2, 3], [-100, -100, -100, 4]]  # ignored by cross-entropy

    # Groups (one positive and its negatives per query) pad to [batch, group, longest].
    grouped = pad_collate(0)([{"input_ids": [[1, 2], [3]]}, {"input_ids": [[4], [5, 6, 7]]}])
    assert grouped["input_ids"].shape == (2, 2, 3)
    assert grouped["attention_mask"][1].tolist() == [[1, 0, 0], [1, 1, 1]]
    # DataLoader workers started with 'spawn' (macOS, Windows) receive the collate_fn pickled.
    assert pickle.loads(pickle.dumps(pad_collate(0)))(examples)["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]


def test_length_grouped_order_is_a_seeded_permutation_with_less_padding():
    lengths = np.random.default_rng(0).integers(1, 200, size=100)
    order = epoch_order(100, seed=1, epoch=0, lengths=lengths, batch_size=4, group_batches=5)
    assert sorted(order.tolist()) == list(range(100))
    assert np.array_equal(order, epoch_order(100, seed=1, epoch=0, lengths=lengths, batch_size=4, group_batches=5))
    assert not np.array_equal(order, epoch_order(100, seed=1, epoch=1, lengths=lengths, batch_size=4, group_batches=5))
    assert not np.array_equal(order, epoch_order(100, seed=2, epoch=0, lengths=lengths, batch_size=4, group_batches=5))

    def padding(order):  # pad tokens when each batch of 4 pads to its longest
        batches = lengths[order].reshape(-1, 4)
        return int((batches.max(axis=1, keepdims=True) - batches).sum())

    assert padding(order) < 0.5 * padding(epoch_order(100, seed=1, epoch=0))

    # Whole steps only: 50 examples at 8 per step leave 48, all distinct.
    sampler = EpochSampler(50, seed=1, step_size=8)
    sampler.set_epoch(3)
    seen = list(sampler)
    assert len(seen) == len(sampler) == 48 and len(set(seen)) == 48


# --- configuration -----------------------------------------------------------------------------------------------


def test_tensorboard_tracker_logs_the_same_rows_offline_and_is_off_by_default(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = toy_dataset(n=48)
    held_out = default_collate(data[24:])

    def eval_fn(model):
        return {"mse": mse_loss(model, held_out).item()}

    logged = tmp_path / "logged"
    config = toy_config(logged, max_steps=3, report_to=("tensorboard",))
    assert config.report_to == ("tensorboard",)
    train(toy_model(), data[:24], default_collate, mse_loss, config, eval_fn=eval_fn)
    events = list(logged.rglob("events.out.tfevents.*"))
    assert events, "no tensorboard events file under output_dir"
    scalars = {}
    for path in events:
        acc = EventAccumulator(str(path))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars[tag] = [(e.step, e.value) for e in acc.Scalars(tag)]
    rows = read_log(logged)  # log.jsonl is written as before, and the trackers get the same numbers
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert [r["step"] for r in train_rows] == [1, 2, 3]
    assert [s for s, _ in scalars["train/loss"]] == [1, 2, 3]
    np.testing.assert_allclose([v for _, v in scalars["train/loss"]], [r["loss"] for r in train_rows], rtol=1e-6)
    eval_rows = [r for r in rows if r["kind"] == "eval"]
    assert [s for s, _ in scalars["eval/mse"]] == [0, 3]  # step 0: the untrained start, then the last step
    np.testing.assert_allclose([v for _, v in scalars["eval/mse"]], [r["mse"] for r in eval_rows], rtol=1e-6)

    plain = tmp_path / "plain"
    default = toy_config(plain, max_steps=3)
    assert default.report_to == ()
    train(toy_model(), data[:24], default_collate, mse_loss, default)
    assert not list(plain.rglob("events.out.tfevents.*"))
    assert [r["step"] for r in read_log(plain)] == [1, 2, 3]
    assert toy_config(plain, report_to="tensorboard").report_to == ("tensorboard",)
    assert toy_config(plain, report_to=None).report_to == ()
    with pytest.raises(ValueError, match="tensorbord"):
        toy_config(plain, report_to=("tensorbord",))



def test_mixed_precision_auto_follows_the_hardware(monkeypatch):
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert isinstance(precision.cpu_supports_bf16(), bool)
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: True)
    assert resolve_mixed_precision("auto") == "bf16"
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: False)
    assert resolve_mixed_precision("auto") == "no"  # emulated bf16 would be slower than fp32
    assert resolve_mixed_precision("fp16") == "fp16"  # explicit choices pass through
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # set by `accelerate launch` from the yaml
    assert resolve_mixed_precision("auto") == "bf16"
    with pytest.raises(ValueError):
        resolve_mixed_precision("fp8")


@pytest.mark.parametrize("name", ["ddp", "fsdp", "deepspeed_zero1", "deepspeed_zero2", "deepspeed_zero3"])
def test_accelerate_config_is_accepted_by_accelerate_launch(name):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import DeepSpeedPlugin, DistributedType

    path = str(CONFIG_DIR / f"{name}.yaml")
    config = load_config_from_file(path)  # raises on unknown keys
    assert config.mixed_precision == "bf16"
    # The launcher's own parsing and validation, short of starting processes.
    args, _, _ = _validate_launch_command(launch_command_parser().parse_args(["--config_file", path, "train.py"]))
    if name == "ddp":
        assert config.distributed_type == DistributedType.MULTI_GPU and args.multi_gpu
    elif name == "fsdp":
        assert config.distributed_type == DistributedType.FSDP and args.use_fsdp
        assert config.fsdp_config["fsdp_reshard_after_forward"] is True  # FSDP2's FULL_SHARD
        assert config.fsdp_config["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    else:
        assert config.distributed_type == DistributedType.DEEPSPEED and args.use_deepspeed
        plugin = DeepSpeedPlugin(**config.deepspeed_config)  # builds the DeepSpeed config dict; no deepspeed needed
        zero = plugin.deepspeed_config["zero_optimization"]
        assert zero["stage"] == int(name[-1])
        # Accumulation and clipping stay 'auto': train() fills them from TrainConfig.
        assert plugin.deepspeed_config["gradient_accumulation_steps"] == "auto"
        if name == "deepspeed_zero3":
            assert zero["stage3_gather_16bit_weights_on_model_save"] is True
            assert zero["offload_param"]["device"] == zero["offload_optimizer"]["device"] == "none"


def test_a_finished_run_is_found_finished_and_loaded_in_place(tmp_path, monkeypatch):
    """A run that ends with a checkpoint (RERANK_CHECKPOINT_AT_END, as the train command sets) is found finished:
    a second call trains nothing and loads its weights; a sharded (DeepSpeed / FSDP) checkpoint of another world
    is not loaded, the model is left as given and final/ holds the weights."""
    monkeypatch.setenv("RERANK_CHECKPOINT_AT_END", "1")
    out = tmp_path / "run"
    first = train(toy_model(), toy_dataset(), default_collate, mse_loss, toy_config(out))
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-12"]  # save_every_steps None: only the end
    log = (out / "log.jsonl").read_text()
    again_model = toy_model(seed=1)
    again = train(again_model, toy_dataset(), default_collate, mse_loss, toy_config(out, per_device_batch_size=2))
    assert again.global_step == first.global_step == 12 and (out / "log.jsonl").read_text() == log
    assert again.cached and not first.cached  # what selection reports in one line instead of a progress bar
    saved = json.loads((list_checkpoints(out)[-1] / "trainer_state.json").read_text())["elapsed_s"]
    assert again.train_s == saved <= first.train_s  # the finished run's own training clock, not this load's
    assert again.run_info["global_batch"] == 8  # the finished run's, though this call asked for another batch
    assert_same_params(again_model.state_dict(), final_params(out), atol=0.0)

    state_file = list_checkpoints(out)[-1] / "trainer_state.json"
    state = json.loads(state_file.read_text())
    assert state["distributed_type"] == "NO"
    state_file.write_text(json.dumps({**state, "distributed_type": "DEEPSPEED"}))
    untouched = toy_model(seed=1)
    start = {k: v.clone() for k, v in untouched.state_dict().items()}
    third = train(untouched, toy_dataset(), default_collate, mse_loss, toy_config(out))
    assert third.global_step == 12 and (out / "log.jsonl").read_text() == log
    assert_same_params(untouched.state_dict(), start, atol=0.0)
