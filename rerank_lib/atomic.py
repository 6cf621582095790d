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


def folder_digests(folder: str | os.PathLike, skip=()) -> dict[str, tuple[str, int]]:
    """{relative path: (sha256, length)} of every file below `folder` but the relative paths in `skip`."""
    folder = Path(folder)
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return {name: file_digest(folder / name) for name in names if name not in skip}


def digests_problem(folder: str | os.PathLike, digests: dict[str, tuple[str, int]], listing: str) -> str | None:
    """None when every file `digests` names (folder_digests' form, read from the file `listing`) is below `folder`
    with its length and sha256; else what is wrong. A file is hashed once per process until it changes."""
    for name, (sha, length) in digests.items():
        path = Path(folder) / name
        if not path.is_file():
            return f"{name} is missing"
        stat = path.stat()
        if stat.st_size != length:
            return f"{name} has {stat.st_size} bytes where {listing} says {length} (truncated or appended to)"
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, sha)
        if not _VERIFIED.get(key):
            if file_digest(path)[0] != sha:
                return f"{name}'s sha256 differs from {listing} (damaged)"
            _VERIFIED[key] = True
    return None


def _digest_fields(fields: list[str]) -> bool:
    return len(fields[0]) == 64 and fields[1].isdigit()


def checksum_problem(path: str | os.PathLike) -> str | None:
    """None when `path` matches its sidecar; else what is wrong, in words."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    side = checksum_path(path)
    if not side.is_file():
        return f"no checksum file {side.name} (written by an older version, or interrupted while saving)"
    fields = side.read_text(encoding="utf-8", errors="replace").split()
    if len(fields) != 2 or not _digest_fields(fields):
        return f"unreadable checksum file {side.name}"
    return digests_problem(path.parent, {path.name: (fields[0], int(fields[1]))}, side.name)


def trusted_cache_file(path: str | os.PathLike) -> bool:
    """Whether a cache file exists and matches its checksum. A file that does not (truncated, damaged, or written
    before checksums) is removed with its sidecar, with one CacheWarning line naming it, so its caller recomputes
    it; False when there is no file."""
    path = Path(path)
    if not path.exists():
        discard(path)  # a sidecar left without its file
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
    digests = folder_digests(folder, skip={FOLDER_CHECKSUMS})
    return write_text(Path(folder) / FOLDER_CHECKSUMS, "".join(f"{sha} {n} {name}\n" for name, (sha, n) in digests.items()))


def folder_problem(folder: str | os.PathLike) -> str | None:
    """None when every file `checksums.sha256` lists is present with its length and sha256; else what is wrong."""
    listing = Path(folder) / FOLDER_CHECKSUMS
    if not listing.is_file():
        return f"no {FOLDER_CHECKSUMS} (written by an older version, or interrupted while saving)"
    digests = {}
    for lineno, line in enumerate(listing.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        fields = line.split(" ", 2)
        if len(fields) != 3 or not _digest_fields(fields):
            return f"{FOLDER_CHECKSUMS} line {lineno} is unreadable"
        digests[fields[2]] = (fields[0], int(fields[1]))
    return digests_problem(folder, digests, FOLDER_CHECKSUMS)
