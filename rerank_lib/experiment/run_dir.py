"""One cache key for every training run: its folder is named by a hash of its data, its settings and the version of
the code that trains it, so a re-run finds (resumes) its run and a change of any of them never reuses a stale one."""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..code_version import PACKAGE, code_version
from ..paths import cache_dir

#: The code of a run whose caller is no module of the package (a notebook cell, a test): the shared training path,
#: down to the losses (a notebook's own code cannot be hashed; name its modules with `code=`).
TRAINING_CODE = ("rerank_lib.experiment", "rerank_lib.training", "rerank_lib.losses")


def jsonable(value: Any) -> Any:
    """`value` as plain JSON types (tuples and sets become lists, anything else its str): what record params and
    cache keys hold, so a config with tuples hashes and prints the same after a round trip."""
    return json.loads(json.dumps(value, default=lambda o: list(o) if isinstance(o, (tuple, set)) else str(o)))


def fingerprint(value: Any, length: int = 16) -> str:
    """A short sha256 of `value`'s JSON form (sorted keys): the identity of a data set or a settings dict."""
    blob = json.dumps(jsonable(value), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:length]


def calling_module(depth: int = 1) -> str | None:
    """The dotted name of the module `depth` frames above the caller of this function, when it belongs to the
    package (a recipe), else None."""
    name = sys._getframe(depth + 1).f_globals.get("__name__", "")
    return name if name.split(".")[0] == PACKAGE else None


@dataclass(frozen=True)
class RunName:
    """What names a training run's folder besides its data and code (`run_dir`'s first arguments and settings)."""

    pipeline: str
    profile: str
    name: str
    settings: dict


def run_dir(pipeline: str, profile: str, name: str, *, data: Any, settings: Any,
            code: str | Sequence[str] | None = None) -> Path:
    """<cache>/runs/<pipeline>/<profile>/<name>-<hash of data, settings and code version>: where one training run
    keeps its checkpoints, log and selected weights. `code` names the modules that build and train the run (their
    package imports count too); by default the calling module (a recipe, which imports its losses and the
    training loop), always with the shared training path (TRAINING_CODE)."""
    code = code if code is not None else calling_module()
    modules = (code,) if isinstance(code, str) else tuple(code or TRAINING_CODE)
    key = fingerprint({"data": data, "settings": settings, "code": code_version(*modules, *TRAINING_CODE)}, length=12)
    return cache_dir("runs", pipeline, profile) / f"{name}-{key}"


def pipeline_cache(results_dir, profile: str, pipeline: str) -> Path:
    """A recipe's working folder for derived files (training data): <results>/cache/<profile>/<pipeline>, ignored
    by git and rebuilt on demand."""
    path = Path(results_dir) / "cache" / profile / pipeline
    path.mkdir(parents=True, exist_ok=True)
    return path
