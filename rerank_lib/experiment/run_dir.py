"""One cache key for every training run: the run's folder is named by a hash of its data and settings.

A re-run with the same data and settings finds its folder (resumes, or finds the run complete) instead of
training again; a change of either gets a new folder, so a stale checkpoint is never reused.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..paths import cache_dir


def jsonable(value: Any) -> Any:
    """`value` as plain JSON types (tuples and sets become lists, anything else its str): what record params and
    cache keys hold, so a config with tuples hashes and prints the same after a round trip."""
    return json.loads(json.dumps(value, default=lambda o: list(o) if isinstance(o, (tuple, set)) else str(o)))


def fingerprint(value: Any, length: int = 16) -> str:
    """A short sha256 of `value`'s JSON form (sorted keys): the identity of a data set or a settings dict."""
    blob = json.dumps(jsonable(value), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:length]


def run_dir(pipeline: str, profile: str, name: str, *, data: Any, settings: Any) -> Path:
    """<cache>/runs/<pipeline>/<profile>/<name>-<hash of data and settings>: where one training run keeps its
    checkpoints, log and selected weights."""
    key = fingerprint({"data": data, "settings": settings}, length=12)
    return cache_dir("runs", pipeline, profile) / f"{name}-{key}"


def pipeline_cache(results_dir, profile: str, pipeline: str) -> Path:
    """A recipe's working folder for derived files (training data): <results>/cache/<profile>/<pipeline>, ignored
    by git and rebuilt on demand."""
    path = Path(results_dir) / "cache" / profile / pipeline
    path.mkdir(parents=True, exist_ok=True)
    return path
