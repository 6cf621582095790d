"""Where things live: the project root, the data root, the cache and the results folder.

The data root is resolved in one place so that a notebook parameter, `$RERANK_DATA_DIR` and the team's
`../shared/data` all mean the same thing to every loader.
"""
from __future__ import annotations

import os
import re
import sysconfig
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Folders a printed path is shown relative to, so that executed notebooks and logs carry no machine's absolute
# paths; the results and data roots are added as notebooks resolve them (results_dir(), data_root()).
_DISPLAY_ROOTS: dict[str, Path] = {}


def data_root(explicit: str | os.PathLike | None = None) -> Path | None:
    """Parameter, then $RERANK_DATA_DIR, then ../shared/data beside the project; None when none is given and the
    default does not exist. A folder that is named (parameter or variable) but missing raises FileNotFoundError
    naming it: silently reading ../shared/data instead would evaluate on data the caller did not ask for."""
    if explicit:
        if not Path(explicit).is_dir():
            raise FileNotFoundError(f"data root {explicit} does not exist (data_root parameter)")
        return _display_root("<data>", Path(explicit))
    from_env = os.environ.get("RERANK_DATA_DIR")
    if from_env:
        if not Path(from_env).is_dir():
            raise FileNotFoundError(f"data root {from_env} does not exist ($RERANK_DATA_DIR)")
        return _display_root("<data>", Path(from_env))
    default = PROJECT_ROOT.parent / "shared" / "data"
    return _display_root("<data>", default) if default.is_dir() else None


def cache_dir(*parts: str) -> Path:
    """$RERANK_CACHE_DIR (default: <project>/.cache), for downloads, embeddings and teacher scores."""
    root = _display_root("<cache>", Path(os.environ.get("RERANK_CACHE_DIR") or PROJECT_ROOT / ".cache"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Where records, tables and figures go: parameter, then $RERANK_RESULTS_DIR, then <project>/results."""
    path = Path(explicit or os.environ.get("RERANK_RESULTS_DIR") or PROJECT_ROOT / "results")
    path.mkdir(parents=True, exist_ok=True)
    return _display_root("<results>", path)


def _display_root(label: str, path: Path) -> Path:
    _DISPLAY_ROOTS[label] = path.resolve()
    return path


def _roots() -> list[tuple[str, Path]]:
    """Display roots, the most specific (longest) first: a path is shown from the nearest one."""
    fixed = {"<site-packages>": Path(sysconfig.get_paths()["purelib"]).resolve(), "": PROJECT_ROOT,
             "~": Path.home().resolve(), "<tmp>": Path(tempfile.gettempdir()).resolve(),
             "<data>": (PROJECT_ROOT.parent / "shared" / "data").resolve()}  # the default data root
    roots = {**fixed, **_DISPLAY_ROOTS}
    return sorted(roots.items(), key=lambda item: -len(item[1].parts))


def shown(path: str | os.PathLike) -> str:
    """A path as printed in outputs: relative to the project, or under the results / data / cache / site-packages /
    home / temp root it lies in (`<results>/records/...`), never this machine's absolute path."""
    target = Path(path).absolute()
    try:
        target = target.resolve()
    except OSError:
        pass
    for label, root in _roots():
        if target == root or root in target.parents:
            rel = target.relative_to(root).as_posix()
            if label == "":
                return rel if rel != "." else "."
            return label if rel == "." else f"{label}/{rel}"
    return str(path) if not Path(path).is_absolute() else f"<abs>/{target.name}"


def shown_in(text: str) -> str:
    """`text` with every absolute path under a display root rewritten as `shown` writes it (for log lines that
    other libraries format, e.g. transformers' load report)."""
    for label, root in _roots():
        prefix = str(root)
        if len(root.parts) > 1 and prefix in text:
            text = re.sub(re.escape(prefix) + r"(?=[/\s'\"]|$)", lambda m, l=label: l or ".", text)
    return text
