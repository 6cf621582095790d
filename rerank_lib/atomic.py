"""Atomic file writes: a reader (or a crashed run) never sees a half-written result; and checksummed cache files,
whose damage (a cut, a flipped byte) is found on read instead of being used."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import IO, Iterator

from .paths import shown


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside `path`; on success rename it over `path`, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be read by others
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_open(path, "w") as handle:
        handle.write(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj, indent: int = 2) -> Path:
    with atomic_open(path, "w") as handle:
        json.dump(obj, handle, indent=indent, ensure_ascii=False, sort_keys=False)
        handle.write("\n")
    return Path(path)


# ---------------------------------------------------------------------------------------------------------------
# Checksummed cache files: written with their sha256 and length, verified on read
# ---------------------------------------------------------------------------------------------------------------

CHECKSUM_SUFFIX = ".sha256"
FOLDER_CHECKSUMS = "checksums.sha256"


class CacheWarning(UserWarning):
    """A cache entry failed its check (truncated, damaged, or written without a checksum) and is recomputed."""


def checksum_path(path: str | os.PathLike) -> Path:
    """The sidecar `FILE.sha256` beside a cache file, holding `<sha256> <length>`."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def file_digest(path: str | os.PathLike) -> tuple[str, int]:
    """(sha256 hex, length in bytes) of a file, read in 1 MiB chunks."""
    digest, length = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
            length += len(chunk)
    return digest.hexdigest(), length


def write_checksum(path: str | os.PathLike) -> Path:
    """Write `path`'s sidecar (atomically, after the file itself is in place): from now on the file is trusted."""
    sha, length = file_digest(path)
    return write_text(checksum_path(path), f"{sha} {length}\n")


@contextlib.contextmanager
def atomic_cache_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """`atomic_open` for a cache file, followed by its checksum sidecar. The old sidecar goes first, so a crash at
    any point leaves either the old pair, or a file without a sidecar (untrusted, recomputed), never a wrong pair."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(checksum_path(path))
    with atomic_open(path, mode, encoding) as handle:
        yield handle
    write_checksum(path)


_VERIFIED: dict[tuple, bool] = {}


def _stamp(path: Path) -> tuple:
    stat, side = path.stat(), checksum_path(path).stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns, side.st_mtime_ns, side.st_size


def checksum_problem(path: str | os.PathLike) -> str | None:
    """None when `path` matches its sidecar; else what is wrong, in words. A file is checked once per process
    until it (or its sidecar) changes."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    side = checksum_path(path)
    if not side.is_file():
        return f"no checksum file {side.name} (written by an older version, or interrupted while saving)"
    key = _stamp(path)
    if _VERIFIED.get(key):
        return None
    fields = side.read_text(encoding="utf-8", errors="replace").split()
    if len(fields) != 2 or len(fields[0]) != 64 or not fields[1].isdigit():
        return f"unreadable checksum file {side.name}"
    sha, length = file_digest(path)
    if length != int(fields[1]):
        return f"{length} bytes where {side.name} says {fields[1]} (truncated or appended to)"
    if sha != fields[0]:
        return f"its sha256 differs from {side.name} (damaged)"
    _VERIFIED[key] = True
    return None


def trusted_cache_file(path: str | os.PathLike) -> bool:
    """Whether a cache file exists and matches its checksum. A file that does not (truncated, damaged, or written
    before checksums) is removed with its sidecar, with one CacheWarning line naming it, so its caller recomputes
    it; False when there is no file."""
    path = Path(path)
    if not path.exists():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(checksum_path(path))
        return False
    problem = checksum_problem(path)
    if problem is None:
        return True
    warnings.warn(f"cache file {shown(path)}: {problem}; not used, recomputing it", CacheWarning, stacklevel=2)
    discard(path)
    return False


def discard(path: str | os.PathLike) -> None:
    """Remove a cache file and its sidecar (sidecar first: a file without one is never trusted)."""
    for p in (checksum_path(path), Path(path)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)


def write_folder_checksums(folder: str | os.PathLike) -> Path:
    """`FOLDER/checksums.sha256`: `<sha256> <length> <relative path>` for every file below `folder` (written last,
    into a folder that is then renamed into place, e.g. a de-quantised model)."""
    folder = Path(folder)
    lines = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != FOLDER_CHECKSUMS):
        sha, length = file_digest(path)
        lines.append(f"{sha} {length} {path.relative_to(folder).as_posix()}\n")
    return write_text(folder / FOLDER_CHECKSUMS, "".join(lines))


def folder_problem(folder: str | os.PathLike) -> str | None:
    """None when every file `checksums.sha256` lists is present with its length and sha256; else what is wrong."""
    folder = Path(folder)
    listing = folder / FOLDER_CHECKSUMS
    if not listing.is_file():
        return f"no {FOLDER_CHECKSUMS} (written by an older version, or interrupted while saving)"
    for lineno, line in enumerate(listing.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        fields = line.split(" ", 2)
        if len(fields) != 3 or len(fields[0]) != 64 or not fields[1].isdigit():
            return f"{FOLDER_CHECKSUMS} line {lineno} is unreadable"
        path = folder / fields[2]
        if not path.is_file():
            return f"{fields[2]} is missing"
        key = ("folder", str(path.resolve()), path.stat().st_size, path.stat().st_mtime_ns, line)
        if _VERIFIED.get(key):
            continue
        sha, length = file_digest(path)
        if length != int(fields[1]):
            return f"{fields[2]} has {length} bytes where {FOLDER_CHECKSUMS} says {fields[1]} (truncated)"
        if sha != fields[0]:
            return f"{fields[2]}'s sha256 differs from {FOLDER_CHECKSUMS} (damaged)"
        _VERIFIED[key] = True
    return None
