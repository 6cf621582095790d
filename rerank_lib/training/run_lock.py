"""One run folder, one training at a time: an exclusive lock on <run folder>/run.lock while train() runs.

Two identical commands (or a notebook and a shell command with the same settings) map to the same run folder
(experiment.run_dir); without a lock both would train in it and interleave its log.jsonl and checkpoints. The
second one is refused with the first one's process id instead.

The lock is `fcntl.flock` on an open file: the kernel drops it when its process ends, however it ends, so a
killed run never leaves a lock that blocks the next one (the file itself stays, naming the last holder).
Under `accelerate launch` the N processes of one run are one world: only its main process (RANK 0) takes the
lock, the others train beside it.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import inspect
import os
import socket
from pathlib import Path
from typing import Callable, Iterator

LOCK_FILE = "run.lock"


class RunFolderInUse(RuntimeError):
    """Another process trains in this run folder now."""


def world_main() -> bool:
    """Whether this process is its world's main one ($RANK as torchrun and accelerate set it; alone: yes)."""
    return int(os.environ.get("RANK", "0") or 0) == 0


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return text or "another process"


@contextlib.contextmanager
def run_folder_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold the exclusive lock of `folder` for the block (the world's main process only); refuse at once with
    RunFolderInUse when another process holds it."""
    if not world_main():
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    handle = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderInUse(f"run folder {folder} is in use by {_holder(path)}; wait for it to finish, or stop "
                                 "it (a killed process frees the folder at once)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # closing the descriptor releases the lock


def holds_run_folder(train_fn: Callable) -> Callable:
    """Decorate a train(..., config, ...) function: it runs holding the lock of config.output_dir."""
    signature = inspect.signature(train_fn)

    @functools.wraps(train_fn)
    def locked(*args, **kwargs):
        config = signature.bind(*args, **kwargs).arguments["config"]
        if not config.output_dir:
            return train_fn(*args, **kwargs)  # train() itself refuses an empty output_dir
        with run_folder_lock(config.output_dir):
            return train_fn(*args, **kwargs)

    return locked
