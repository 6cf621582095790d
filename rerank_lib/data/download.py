"""Fetch a dataset from its official public location into the cache, verifying every file's sha256.

Used only when a dataset is not under the data root. A file is moved into place only after its hash
matches, so a broken or tampered download never becomes input.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..atomic import atomic_open



@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: where it lands (relative to the data root), where it comes from, its sha256.

    `member` names the file inside a zip archive at `url`; `sha256` is of the file as stored (after unzip).
    """

    path: str
    url: str
    sha256: str
    member: str | None = None


class DownloadError(RuntimeError):
    pass


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def mirrored(url: str) -> str:
    """`url` with its scheme and host replaced by `$RERANK_DOWNLOAD_MIRROR` when set (an institutional mirror, or a
    local server in the tests); the path, and so the pinned revision, stay the same."""
    mirror = os.environ.get("RERANK_DOWNLOAD_MIRROR")
    if not mirror:
        return url
    parts = urllib.parse.urlsplit(url)
    return mirror.rstrip("/") + "/" + parts.netloc + parts.path


def _fetch_to(url: str, target: Path, timeout: float) -> str:
    """Stream `url` into the file `target` (a temporary name) and return its sha256; a connection that ends
    before the announced length, a refused connection or an HTTP error is a DownloadError."""
    request = urllib.request.Request(mirrored(url), headers={"User-Agent": "rerank-repro"})
    digest, received = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(target, "wb") as handle:
            expected = response.headers.get("Content-Length")
            for chunk in iter(lambda: response.read(1 << 20), b""):
                handle.write(chunk)
                digest.update(chunk)
                received += len(chunk)
        if expected is not None and received != int(expected):
            raise DownloadError(f"{url}: the connection ended after {received} of {expected} bytes; not saved")
    except http.client.IncompleteRead as err:
        raise DownloadError(f"{url}: the connection ended after {received + len(err.partial)} bytes "
                            f"({err}); not saved") from err
    except OSError as err:  # URLError, HTTPError, timeouts, connection refused or reset
        raise DownloadError(f"could not download {url}: {err}") from err
    return digest.hexdigest()


def _member(archive_path: Path, spec: RemoteFile, target: Path) -> str:
    """Extract `spec.member` of a downloaded zip into `target`; returns its sha256."""
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(archive_path) as archive, archive.open(spec.member) as src, open(target, "wb") as dst:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                dst.write(chunk)
                digest.update(chunk)
    except (zipfile.BadZipFile, KeyError) as err:
        raise DownloadError(f"{spec.url}: cannot read member {spec.member!r} ({err})") from err
    return digest.hexdigest()


def download_files(files: list[RemoteFile], dest_root: str | os.PathLike, timeout: float = 60.0) -> list[Path]:
    """Download (once per URL) and verify each file, moving it under dest_root only once its sha256 matches;
    returns the paths. Files stream to disk (large archives never sit in memory); whatever fails leaves nothing
    at the target."""
    dest_root = Path(dest_root)
    written = []
    with tempfile.TemporaryDirectory(prefix="download-", dir=_scratch(dest_root)) as scratch:
        fetched: dict[str, tuple[Path, str]] = {}
        for spec in files:
            target = dest_root / spec.path
            if target.exists() and sha256_of(target) == spec.sha256:
                written.append(target)
                continue
            if spec.url not in fetched:
                raw = Path(scratch) / f"{len(fetched)}.download"
                fetched[spec.url] = (raw, _fetch_to(spec.url, raw, timeout))
            raw, digest = fetched[spec.url]
            source = raw
            if spec.member is not None:
                source = Path(scratch) / f"{len(written)}.member"
                digest = _member(raw, spec, source)
            if digest != spec.sha256:
                where = spec.url + ("::" + spec.member if spec.member else "")
                raise DownloadError(f"{where}: sha256 {digest} != expected {spec.sha256}; not saved")
            with atomic_open(target, "wb") as handle, open(source, "rb") as src:
                shutil.copyfileobj(src, handle, 1 << 20)
            written.append(target)
    return written


def _scratch(dest_root: Path) -> Path:
    dest_root.mkdir(parents=True, exist_ok=True)
    return dest_root
