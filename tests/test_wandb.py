"""TrainConfig(report_to=('wandb',)) in wandb's offline mode, the tracker four of the peers' run files name: a
short training writes an offline run whose history holds the loss and the dev metric that log.jsonl holds."""
from __future__ import annotations

import numpy as np
import pytest
from torch.utils.data import default_collate

from _train_worker import mse_loss, toy_config, toy_dataset, toy_model
from rerank_lib.training import train

wandb = pytest.importorskip("wandb")


def _records(run_file) -> list[bytes]:
    """The records of a run-*.wandb file. wandb 0.31 has no Python reader left (its Go core writes and reads the
    file), so this reads the format itself: a 7-byte header (':W&B', magic 0xBEE1, version 0), then LevelDB's log
    format: 32 KiB blocks of chunks, each crc32c (4 bytes), length (2, little endian), type (1: full, 2: first,
    3: middle, 4: last) and the data; a block's tail shorter than a chunk header is padding."""
    import struct

    raw = run_file.read_bytes()
    assert raw[:4] == b":W&B" and struct.unpack("<HB", raw[4:7]) == (0xBEE1, 0), "not a wandb run file"
    block, pos, records, partial = 32768, 7, [], b""
    while pos + 7 <= len(raw):
        left = block - pos % block
        if left < 7:  # padding at the end of a block
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos:pos + 7])
        data = raw[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:  # zero fill
            continue
        partial = data if kind in (1, 2) else partial + data
        if kind in (1, 4):
            records.append(partial)
            partial = b""
    return records


def _history(run_file) -> list[dict]:
    """The history rows (key -> JSON value) of an offline run file, parsed with wandb's own protobuf Record."""
    from wandb.proto import wandb_internal_pb2

    rows = []
    for data in _records(run_file):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): item.value_json for item in record.history.item})
    return rows


def test_wandb_offline_run_holds_the_logged_loss_and_metrics(tmp_path, monkeypatch):
    import json

    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    data = toy_dataset(n=24)
    held_out = default_collate(data[16:])

    def eval_fn(model):
        return {"mse": mse_loss(model, held_out).item()}

    out = tmp_path / "run"
    config = toy_config(out, max_steps=2, report_to=("wandb",))
    train(toy_model(), data[:16], default_collate, mse_loss, config, eval_fn=eval_fn)

    runs = list((tmp_path / "wandb-home").rglob("offline-run-*"))
    assert len(runs) == 1, f"expected one offline run under WANDB_DIR, found {runs}"
    run_files = list(runs[0].glob("run-*.wandb"))
    assert len(run_files) == 1
    history = _history(run_files[0])
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["kind"] == "train"]
    eval_rows = [r for r in rows if r["kind"] == "eval"]
    assert [r["step"] for r in train_rows] == [1, 2]
    logged_loss = [json.loads(h["train/loss"]) for h in history if "train/loss" in h]
    logged_mse = [json.loads(h["eval/mse"]) for h in history if "eval/mse" in h]
    np.testing.assert_allclose(logged_loss, [r["loss"] for r in train_rows], rtol=1e-6)
    np.testing.assert_allclose(logged_mse, [r["mse"] for r in eval_rows], rtol=1e-6)
    assert len(logged_mse) == 2  # step 0 (the untrained start) and the last step
