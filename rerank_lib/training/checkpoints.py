"""Checkpoint folders under output_dir, and the saved weights (best/, final/): which are complete and undamaged,
which to resume from, which to delete.

A checkpoint is `output_dir/checkpoint-{step}`: accelerate's save_state files, then `checksums.json` (sha256 and
length of each of those files), then `trainer_state.json`, then an empty `COMPLETE` marker written last. A run
killed while saving leaves a folder without the marker, which resume skips and the next prune deletes; a complete
checkpoint whose bytes changed afterwards (a bad disk, a copy cut short) fails its checksums and is skipped for the
previous good one, with a line naming it.

Saved weights (best/, final/) are written into a staging folder `.best.tmp` whose last file, `saved.json`, names the
training step the weights are from and the checksum of each file; the staging folder is then renamed into place. A
reader trusts a folder only when `saved.json` is there and every file it lists matches, so a crash while saving is
never read as the weights of some step. best/ keeps its previous version (`.best.prev`) until a checkpoint covers
the new one, so a run resumed from the checkpoint before finds the best weights its log names.
"""
from __future__ import annotations

import contextlib
import errno
import json
import re
import shutil
from pathlib import Path
from typing import Iterator

from rerank_lib.atomic import digests_problem, folder_digests, write_json, write_text

COMPLETE_MARKER = "COMPLETE"
STATE_FILE = "trainer_state.json"
CHECKSUM_FILE = "checksums.json"
SAVED_FILE = "saved.json"  # in best/ and final/: {"step": N, "files": {name: {"sha256", "bytes"}}}, written last
_NAME = re.compile(r"checkpoint-(\d+)")
_OWN_FILES = {COMPLETE_MARKER, STATE_FILE, CHECKSUM_FILE, SAVED_FILE}


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
    """The newest complete checkpoint, or None (its files are not read: see `latest_good_checkpoint`)."""
    complete = [p for p in list_checkpoints(output_dir) if is_complete(p)]
    return complete[-1] if complete else None


def checkpoint_is_good(checkpoint: Path) -> bool:
    """Complete, and every file matches the checksum written with it."""
    return is_complete(checkpoint) and checksum_problem(checkpoint, _read_json(checkpoint / CHECKSUM_FILE)) is None


def latest_good_checkpoint(output_dir: str | Path, report=print) -> Path | None:
    """The newest complete checkpoint whose files match their checksums; each damaged one is reported in one line
    and skipped for the one before it."""
    for checkpoint in reversed([p for p in list_checkpoints(output_dir) if is_complete(p)]):
        problem = checksum_problem(checkpoint, _read_json(checkpoint / CHECKSUM_FILE))
        if problem is None:
            return checkpoint
        report(f"training: skipping checkpoint {checkpoint}: {problem}")
    return None


def file_checksums(folder: str | Path) -> dict[str, dict]:
    """{relative path: {sha256, bytes}} of every file under `folder` but this module's own bookkeeping files."""
    return {name: {"sha256": sha, "bytes": length}
            for name, (sha, length) in folder_digests(folder, skip=_OWN_FILES).items()}


def checksum_problem(folder: str | Path, files: dict | None) -> str | None:
    """What is wrong with `folder`'s files against `files` (file_checksums' form), or None when each matches: the
    one check of atomic.digests_problem, which the cache files and folders also go through."""
    if files is None:
        return f"no {CHECKSUM_FILE} (written by an older version, or cut short)"
    return digests_problem(folder, {n: (e["sha256"], e["bytes"]) for n, e in files.items()}, CHECKSUM_FILE)


def mark_complete(checkpoint: Path, state: dict) -> None:
    """The checksums, the loop's position, then the marker; call only once every process has finished
    save_state."""
    write_json(Path(checkpoint) / CHECKSUM_FILE, file_checksums(checkpoint))
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


# --- saved weights: best/ and final/ ---------------------------------------------------------------------------

def staging_dir(folder: str | Path) -> Path:
    """Where `folder` is written before it is renamed into place (`.best.tmp` for best/)."""
    return Path(folder).with_name(f".{Path(folder).name}.tmp")


def previous_dir(folder: str | Path) -> Path:
    """best/'s previous version, kept until a checkpoint covers the new one (`.best.prev`)."""
    return Path(folder).with_name(f".{Path(folder).name}.prev")


def mark_saved(folder: str | Path, step: int) -> None:
    """The last file of a saved-weights folder: the step its weights are from and every file's checksum."""
    write_json(Path(folder) / SAVED_FILE, {"step": step, "files": file_checksums(folder)})


def saved_step(folder: str | Path) -> int | None:
    """The training step whose weights `folder` holds, or None when it is missing, was cut short or is damaged."""
    saved = _read_json(Path(folder) / SAVED_FILE)
    if not isinstance(saved, dict) or not isinstance(saved.get("step"), int):
        return None
    return saved["step"] if checksum_problem(folder, saved.get("files")) is None else None


def place_saved(staging: Path, folder: Path, keep_previous: bool = False) -> None:
    """Rename a fully written `staging` folder to `folder`; with keep_previous, the folder it replaces becomes
    `previous_dir(folder)` unless one is kept already (that one is what the last checkpoint covers)."""
    previous = previous_dir(folder)
    if folder.exists():
        if keep_previous and not previous.exists():
            folder.rename(previous)
        else:
            shutil.rmtree(folder)
    staging.rename(folder)


def recover_saved(folder: str | Path, step: int) -> bool:
    """Make `folder` hold the weights of `step` if `folder`, its previous version or its staging folder does
    (a crash can leave the right weights in any of them); the others are deleted. Whether `folder` now holds
    them."""
    folder = Path(folder)
    candidates = [folder, previous_dir(folder), staging_dir(folder)]
    found = next((c for c in candidates if c.is_dir() and saved_step(c) == step), None)
    if found is not None and found != folder:
        shutil.rmtree(folder, ignore_errors=True)
        found.rename(folder)
    for other in candidates[1:]:
        if other.exists():
            shutil.rmtree(other, ignore_errors=True)
    if found is None and folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    return found is not None


def drop_previous(folder: str | Path) -> None:
    """A checkpoint now covers `folder`: its previous version is no longer needed by a resume."""
    shutil.rmtree(previous_dir(folder), ignore_errors=True)


@contextlib.contextmanager
def saving(folder: str | Path, what: str = "") -> Iterator[None]:
    """Delete `folder` when writing it fails, and say 'no space left on device' (naming it and the free space)
    when that is why: torch reports a full disk as 'unexpected pos' or 'file write failed'."""
    folder = Path(folder)
    try:
        yield
    except BaseException as err:
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(err, (OSError, RuntimeError)) and is_no_space(err, folder):
            free = _free_bytes(folder)
            raise OSError(errno.ENOSPC, f"no space left on device while saving {what or 'weights'} to {folder}"
                          + (f" ({free / 2**20:.0f} MiB free)" if free is not None else "")) from err
        raise


def is_no_space(err: BaseException, folder: Path) -> bool:
    """Whether a failed write ran out of disk: ENOSPC, or torch's own wording of it, or (for torch's other
    write errors) almost no free space left where it wrote."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(err)
    if "unexpected pos" in text or "No space left" in text:
        return True
    free = _free_bytes(folder)
    return "write" in text.lower() and free is not None and free < 2**20


def _free_bytes(folder: Path) -> int | None:
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
