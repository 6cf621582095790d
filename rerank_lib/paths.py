"""Where things live: the project root, the data root, the cache and the results folder.

The data root is resolved in one place so that a notebook parameter, `$RERANK_DATA_DIR` and the team's
`../shared/data` all mean the same thing to every loader.
"""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def data_root(explicit: str | os.PathLike | None = None) -> Path | None:
    """Parameter, then $RERANK_DATA_DIR, then ../shared/data beside the project; None when none is given and the
    default does not exist. A folder that is named (parameter or variable) but missing raises FileNotFoundError
    naming it: silently reading ../shared/data instead would evaluate on data the caller did not ask for."""
    if explicit:
        if not Path(explicit).is_dir():
            raise FileNotFoundError(f"data root {explicit} does not exist (data_root parameter)")
        return Path(explicit)
    from_env = os.environ.get("RERANK_DATA_DIR")
    if from_env:
        if not Path(from_env).is_dir():
            raise FileNotFoundError(f"data root {from_env} does not exist ($RERANK_DATA_DIR)")
        return Path(from_env)
    default = PROJECT_ROOT.parent / "shared" / "data"
    return default if default.is_dir() else None


def cache_dir(*parts: str) -> Path:
    """$RERANK_CACHE_DIR (default: <project>/.cache), for downloads, embeddings and teacher scores."""
    root = Path(os.environ.get("RERANK_CACHE_DIR") or PROJECT_ROOT / ".cache")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Where records, tables and figures go: parameter, then $RERANK_RESULTS_DIR, then <project>/results."""
    path = Path(explicit or os.environ.get("RERANK_RESULTS_DIR") or PROJECT_ROOT / "results")
    path.mkdir(parents=True, exist_ok=True)
    return path
