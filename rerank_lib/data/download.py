"""Fetch a dataset from its official public location into the cache, verifying every file's sha256.

Used only when a dataset is not under the data root. A file is moved into place only after its hash
matches, so a broken or tampered download never becomes input.

Two environment variables redirect it, for institutional mirrors and for the tests' local server:
- `$RERANK_DOWNLOAD_MIRROR` (a base URL) replaces every URL's scheme and host; the path stays the same;
- `$RERANK_DOWNLOAD_MANIFEST` names a JSON file {url: sha256} (a zip member's key is `url::member`) whose
  hashes are used INSTEAD of the published ones. It exists for mirrors that serve modified files (the tests
  serve a few dozen lines of each real file) and for pinning a file whose publisher gives no hash; a URL
  it does not list keeps its published hash.

A file without a sha256 pin (RankZephyr's data; md5-pinned files) is checked by its md5 where one is published,
else by its format (`format_problem`: not an HTML page; a gzip read to its end; JSON / JSONL parsed), and is never
saved when the check fails (an error page or a cut gzip was once saved and reused forever). Once saved it gets a
checksum sidecar (`FILE.sha256`, rerank_lib.atomic); a cached copy whose sidecar does not match is fetched again,
and one without a sidecar (saved by an earlier version) is checked again before it is used.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..atomic import (
    CacheWarning, atomic_open, checksum_path, checksum_problem, discard, file_digest, write_checksum,
)
from ..paths import shown


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: where it lands (relative to the data root), where it comes from, its sha256.

    `member` names the file inside a zip archive at `url`; `sha256` is of the file as stored (after unzip).
    `sha256=None` marks a file whose publisher gives no sha256 (say why where it is declared): it is accepted
    unchecked unless `md5` (a published md5) or the manifest pins it, and its reader must verify the format.
    """

    path: str
    url: str
    sha256: str | None
    member: str | None = None
    md5: str | None = None

    @property
    def key(self) -> str:
        """The file's name in a manifest: the URL, plus `::member` for a file inside a zip."""
        return self.url + ("::" + self.member if self.member else "")


class DownloadError(RuntimeError):
    pass


def manifest() -> dict[str, str]:
    """The {url: sha256} of `$RERANK_DOWNLOAD_MANIFEST` (empty when unset); a bad file is a DownloadError naming it."""
    path = os.environ.get("RERANK_DOWNLOAD_MANIFEST")
    if not path:
        return {}
    try:
        table = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DownloadError(f"$RERANK_DOWNLOAD_MANIFEST={path}: cannot read it as JSON ({err})") from err
    if not isinstance(table, dict) or not all(isinstance(k, str) and isinstance(v, str) and len(v) == 64
                                              for k, v in table.items()):
        raise DownloadError(f"$RERANK_DOWNLOAD_MANIFEST={path}: expected an object of url -> 64-hex sha256")
    return table


def expected_hashes(spec: RemoteFile, table: dict[str, str]) -> tuple[str | None, str | None]:
    """(sha256, md5) a download of `spec` must have: the sha256 of the manifest `table` alone when it lists the file
    (a modified copy cannot match the published md5), else the published ones."""
    if spec.key in table:
        return table[spec.key], None
    return spec.sha256, spec.md5


def mirrored(url: str) -> str:
    """`url` with its scheme and host replaced by `$RERANK_DOWNLOAD_MIRROR` when set (an institutional mirror, or a
    local server in the tests); the path, and so the pinned revision, stay the same."""
    mirror = os.environ.get("RERANK_DOWNLOAD_MIRROR")
    if not mirror:
        return url
    parts = urllib.parse.urlsplit(url)
    return mirror.rstrip("/") + "/" + parts.netloc + parts.path


def _copy_hashing(src, dst) -> tuple[str, str]:
    """Stream `src` into `dst` 1 MiB at a time (large archives never sit in memory); returns its (sha256, md5)."""
    sha256, md5 = hashlib.sha256(), hashlib.md5()
    for chunk in iter(lambda: src.read(1 << 20), b""):
        dst.write(chunk)
        sha256.update(chunk)
        md5.update(chunk)
    return sha256.hexdigest(), md5.hexdigest()


def _fetch_to(url: str, target: Path, timeout: float) -> tuple[str, str]:
    """Stream `url` into the file `target` (a temporary name) and return its (sha256, md5); a connection that
    ends before the announced length, a refused connection or an HTTP error is a DownloadError."""
    request = urllib.request.Request(mirrored(url), headers={"User-Agent": "rerank-repro"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(target, "wb") as handle:
            expected = response.headers.get("Content-Length")
            digests = _copy_hashing(response, handle)
        received = target.stat().st_size
        if expected is not None and received != int(expected):
            raise DownloadError(f"{url}: the connection ended after {received} of {expected} bytes; not saved")
    except http.client.IncompleteRead as err:
        raise DownloadError(f"{url}: the connection ended after {target.stat().st_size + len(err.partial)} bytes "
                            f"({err}); not saved") from err
    except OSError as err:  # URLError, HTTPError, timeouts, connection refused or reset
        raise DownloadError(f"could not download {url}: {err}") from err
    return digests


def _member(archive_path: Path, spec: RemoteFile, target: Path) -> tuple[str, str]:
    """Extract `spec.member` of a downloaded zip into `target`; returns its (sha256, md5)."""
    try:
        with zipfile.ZipFile(archive_path) as archive, archive.open(spec.member) as src, open(target, "wb") as dst:
            return _copy_hashing(src, dst)
    except (zipfile.BadZipFile, KeyError) as err:
        raise DownloadError(f"{spec.url}: cannot read member {spec.member!r} ({err})") from err


def download_files(files: list[RemoteFile], dest_root: str | os.PathLike, timeout: float = 60.0) -> list[Path]:
    """Download (once per URL) and verify each file, moving it under dest_root only once its sha256 matches;
    returns the paths. Files stream to disk (large archives never sit in memory); whatever fails leaves nothing
    at the target."""
    dest_root = Path(dest_root)
    table = manifest()
    written = []
    dest_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="download-", dir=dest_root) as scratch:
        fetched: dict[str, tuple[Path, tuple[str, str]]] = {}
        for spec in files:
            target = dest_root / spec.path
            sha256, md5 = expected_hashes(spec, table)
            if target.exists() and (file_digest(target)[0] == sha256 if sha256 is not None else
                                    cached_unpinned_ok(target, spec, md5)):
                written.append(target)
                continue
            if spec.url not in fetched:
                raw = Path(scratch) / f"{len(fetched)}.download"
                fetched[spec.url] = (raw, _fetch_to(spec.url, raw, timeout))
            raw, digests = fetched[spec.url]
            source = raw
            if spec.member is not None:
                source = Path(scratch) / f"{len(written)}.member"
                digests = _member(raw, spec, source)
            for name, want, got in (("sha256", sha256, digests[0]), ("md5", md5, digests[1])):
                if want is not None and got != want:
                    raise DownloadError(f"{spec.key}: {name} {got} != expected {want}; not saved")
            if sha256 is None and md5 is None:
                problem = format_problem(source, spec.path)
                if problem is not None:
                    raise DownloadError(f"{spec.key}: {problem}; not saved (the file has no published checksum, "
                                        f"so its format is checked)")
            if sha256 is None:
                discard(target)  # the sidecar of an earlier copy goes first: a file without one is checked again
            with atomic_open(target, "wb") as handle, open(source, "rb") as src:
                shutil.copyfileobj(src, handle, 1 << 20)
            if sha256 is None:
                write_checksum(target)
            written.append(target)
    return written


def format_problem(path: str | os.PathLike, name: str | None = None) -> str | None:
    """None when the file at `path` is well-formed for its name (`name`, default `path`'s: `.gz` is read to its end
    through its CRC check, then `.jsonl` is parsed line by line and `.json` as a whole); else what is wrong. Any
    file that starts like an HTML page (a server's error or login page served with status 200) is refused."""
    path, name = Path(path), str(name or Path(path).name)
    inner = name[:-3] if name.endswith(".gz") else name
    opener = gzip.open if name.endswith(".gz") else open
    try:
        with open(path, "rb") as raw:
            head = raw.read(512).lstrip().lower()
        if not head:
            return "an empty file"
        if head.startswith((b"<!doctype html", b"<html")):
            return "an HTML page (a server's error page?), not the data"
        with opener(path, "rb") as handle:
            if inner.endswith(".jsonl"):
                for lineno, line in enumerate(handle, start=1):
                    if line.strip():
                        try:
                            json.loads(line)
                        except ValueError as err:
                            return f"line {lineno} is not JSON ({err})"
            elif inner.endswith(".json"):
                json.loads(handle.read())
            else:
                while handle.read(1 << 20):
                    pass
    except EOFError:
        return "a cut gzip (the compressed stream ends early)"
    except (gzip.BadGzipFile, zlib.error, OSError) as err:
        return f"not a readable gzip ({err})"
    except ValueError as err:
        return f"not JSON ({err})"
    return None


def cached_unpinned_ok(target: Path, spec: RemoteFile, md5: str | None) -> bool:
    """Whether a cached file without a sha256 pin may be used: its checksum sidecar matches; or it has none (saved
    before sidecars) and passes its md5 or format check, and gets one now. A file that fails is removed (with a
    CacheWarning naming it), so it is downloaded again."""
    problem = checksum_problem(target)
    if problem is None:
        return True
    if not checksum_path(target).exists():
        if md5 is not None:
            with open(target, "rb") as handle:
                got = hashlib.file_digest(handle, "md5").hexdigest()
            problem = None if got == md5 else f"md5 {got} != expected {md5}"
        else:
            problem = format_problem(target, spec.path)
        if problem is None:
            write_checksum(target)
            return True
    warnings.warn(f"cached download {shown(target)}: {problem}; not used, downloading it again", CacheWarning,
                  stacklevel=3)
    discard(target)
    return False
