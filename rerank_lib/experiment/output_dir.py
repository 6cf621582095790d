"""A user's `--output_dir`: trained models are written into it, and nothing else in it is ever deleted.

transformers' contract: a folder that is not empty is refused before training starts unless the user says
`--overwrite_output_dir`; here a folder holding our own earlier export (its MANIFEST lists what that export
wrote) is recognised and re-exported into without the flag. Either way only the files an export writes are
replaced (and files an earlier export of ours wrote and this one does not are removed); a user's other files
and folders stay as they were. Files are staged in a hidden folder inside the target and moved in one by one,
with the manifest written before (naming old and new files) and after (the new ones), so a crash in between
leaves a folder the next run still recognises as its own.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Mapping

from ..atomic import write_json

MANIFEST = "rerank-export.json"
STAGING_PREFIX = ".rerank-export-"


class OutputDirError(ValueError):
    """The output folder cannot be written as asked (one line naming it)."""


def exported_files(folder: str | os.PathLike) -> list[str] | None:
    """The files (relative paths) our earlier export wrote into `folder`, or None when it holds no export of ours."""
    path = Path(folder) / MANIFEST
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = doc.get("files") if isinstance(doc, dict) else None
    if doc.get("written_by") != "rerank_lib" or not isinstance(files, list):
        return None
    return [f for f in files if isinstance(f, str) and f and not Path(f).is_absolute() and ".." not in Path(f).parts]


def check_output_dir(folder: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse, before any training, an output folder the export could not write without harm: a file, or a
    non-empty folder that holds no export of ours unless `overwrite`. Returns the folder."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputDirError(f"--output_dir {folder} is a file, not a folder")
    if not folder.is_dir() or overwrite or exported_files(folder) is not None:
        return folder
    if any(p.name != MANIFEST for p in folder.iterdir()):
        raise OutputDirError(f"--output_dir {folder} is not empty and holds no earlier export of this command; use "
                             "an empty or new folder, or pass --overwrite_output_dir to write the model files into "
                             "it (its other files are kept)")
    return folder


def write_export(folder: str | os.PathLike, writers: Mapping[str, Callable[[Path], object]], info: Mapping) -> list[str]:
    """Write each writer's folder into `folder` (one writer: the folder itself; several: a subfolder per key)
    replacing only our own files; `info` goes into the manifest. Returns the files written (relative paths)."""
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    old = exported_files(folder) or []
    for stale in folder.glob(f"{STAGING_PREFIX}*"):  # a crashed export's staging (ours by its name)
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=folder))
    try:
        for name, write in writers.items():
            write(staging / "model" if len(writers) == 1 else staging / "model" / name)
        root = staging / "model"
        new = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        for rel in new:  # a user's folder (or file) where a file (or folder) of ours goes: refuse before moving
            target = folder / rel
            if target.is_dir() and not target.is_symlink():
                raise OutputDirError(f"--output_dir {folder}: {rel} is a folder, where the export writes a file")
            for parent in Path(rel).parents[:-1]:
                if (folder / parent).exists() and not (folder / parent).is_dir():
                    raise OutputDirError(f"--output_dir {folder}: {parent} is a file, where the export writes a folder")
        doc = {"written_by": "rerank_lib", **info}
        write_json(folder / MANIFEST, {**doc, "files": sorted(set(old) | set(new))})  # in progress: old and new
        for rel in sorted(set(old) - set(new)):
            (folder / rel).unlink(missing_ok=True)
        umask = os.umask(0o022)
        os.umask(umask)
        mode = 0o666 & ~umask  # what a plain write gives; safetensors' own files are private (0600)
        for rel in new:
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            os.chmod(root / rel, mode)
            os.replace(root / rel, folder / rel)
        _remove_empty_parents(folder, set(old) - set(new))
        write_json(folder / MANIFEST, {**doc, "files": new})
        return new
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remove_empty_parents(folder: Path, removed: set[str]) -> None:
    """Folders our removed files leave empty (ours too); a folder with anything left in it stays."""
    parents = {p for rel in removed for p in Path(rel).parents if p != Path(".")}
    for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        path = folder / parent
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
