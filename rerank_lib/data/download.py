"""Fetch a dataset from its official public location into the cache, verifying every file's sha256.

Used only when a dataset is not under the data root. A file is moved into place only after its hash
matches, so a broken or tampered download never becomes input.
"""
from __future__ import annotations

import hashlib
import io
import os
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


def _fetch(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "rerank-repro"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()
    except OSError as err:  # URLError, timeouts, connection refused
        raise DownloadError(f"could not download {url}: {err}") from err


def download_files(files: list[RemoteFile], dest_root: str | os.PathLike, timeout: float = 60.0) -> list[Path]:
    """Download (once per URL) and verify each file, writing it under dest_root atomically; returns the paths."""
    dest_root = Path(dest_root)
    payloads: dict[str, bytes] = {}
    written = []
    for spec in files:
        target = dest_root / spec.path
        if target.exists() and sha256_of(target) == spec.sha256:
            written.append(target)
            continue
        if spec.url not in payloads:
            payloads[spec.url] = _fetch(spec.url, timeout)
        data = payloads[spec.url]
        if spec.member is not None:
            try:
                with zipfile.ZipFile(io.BytesIO(data)) as archive:
                    data = archive.read(spec.member)
            except (zipfile.BadZipFile, KeyError) as err:
                raise DownloadError(f"{spec.url}: cannot read member {spec.member!r} ({err})") from err
        digest = hashlib.sha256(data).hexdigest()
        if digest != spec.sha256:
            raise DownloadError(f"{spec.url}{'::' + spec.member if spec.member else ''}: sha256 {digest} != expected {spec.sha256}; not saved")
        with atomic_open(target, "wb") as handle:
            handle.write(data)
        written.append(target)
    return written
