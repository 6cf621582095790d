"""Checkpoint folders under output_dir: which are complete, which to resume from, which to delete.

A checkpoint is `output_dir/checkpoint-{step}`: accelerate's save_state files, then `trainer_state.json`, then an
empty `COMPLETE` marker written last. A run killed while saving leaves a folder without the marker, which
resume skips and the next prune deletes.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from rerank_lib.atomic import write_json, write_text

COMPLETE_MARKER = "COMPLETE"
STATE_FILE = "trainer_state.json"
_NAME = re.compile(r"checkpoint-(\d+)")


def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / f"checkpoint-{step}"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Every checkpoint folder, complete or not, oldest step first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _NAME.fullmatch(p.name))]
    return [path for _, path in sorted(found)]


def is_complete(checkpoint: Path) -> bool:
    return (Path(checkpoint) / COMPLETE_MARKER).is_file()


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    complete = [p for p in list_checkpoints(output_dir) if is_complete(p)]
    return complete[-1] if complete else None


def mark_complete(checkpoint: Path, state: dict) -> None:
    """Write the loop's position, then the marker; call only once every process has finished save_state."""
    write_json(Path(checkpoint) / STATE_FILE, state)
    write_text(Path(checkpoint) / COMPLETE_MARKER, "")


def read_state(checkpoint: Path) -> dict:
    return json.loads((Path(checkpoint) / STATE_FILE).read_text())


def prune_checkpoints(output_dir: str | Path, keep_last: int | None) -> list[Path]:
    """Delete incomplete checkpoints and all but the newest `keep_last` (>= 1) complete ones; None keeps all."""
    checkpoints = list_checkpoints(output_dir)
    complete = [p for p in checkpoints if is_complete(p)]
    keep = set(complete if keep_last is None else complete[-keep_last:])
    removed = [p for p in checkpoints if p not in keep]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed
