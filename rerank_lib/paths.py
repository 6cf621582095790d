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
# Each root is kept both as spelled and as resolved: behind a symlink (a CI checkout, a mounted data folder) a
# config or a library prints the spelled form while Path.resolve() gives the other.
_DISPLAY_ROOTS: dict[str, list[Path]] = {}


def data_root(explicit: str | os.PathLike | None = None) -> Path | None:
    """Parameter, then $RERANK_DATA_DIR, then ../shared/data beside the project; None when none is given and the
    default does not exist. A folder that is named (parameter or variable) but missing raises FileNotFoundError
    naming it: silently reading ../shared/data instead would evaluate on data the caller did not ask for."""
    for named, source in ((explicit, "data_root parameter"), (os.environ.get("RERANK_DATA_DIR"), "$RERANK_DATA_DIR")):
        if named:
            if not Path(named).is_dir():
                raise FileNotFoundError(f"data root {named} does not exist ({source})")
            return _display_root("<data>", Path(named))
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
    _DISPLAY_ROOTS[label] = _spellings(path)
    return path


def _spellings(path: Path) -> list[Path]:
    """The absolute path as given (symlinks kept) and its resolved form, without duplicates."""
    forms = [Path(os.path.abspath(path)), path.resolve()]
    return [f for i, f in enumerate(forms) if f not in forms[:i]]


def _project_spellings() -> list[Path]:
    forms = _spellings(Path(os.path.abspath(__file__)).parents[1])
    pwd = os.environ.get("PWD")  # the shell's spelling of the working directory, when it is the project
    if pwd and Path(pwd).is_dir() and Path(pwd).resolve() == PROJECT_ROOT:
        forms += [p for p in _spellings(Path(pwd)) if p not in forms]
    return forms


def _roots() -> list[tuple[str, Path]]:
    """Display roots, the most specific (longest) first: a path is shown from the nearest one."""
    fixed = {"<site-packages>": _spellings(Path(sysconfig.get_paths()["purelib"])), "": _project_spellings(),
             "~": _spellings(Path.home()), "<tmp>": _spellings(Path(tempfile.gettempdir())),
             "<data>": _spellings(PROJECT_ROOT.parent / "shared" / "data")}  # the default data root
    roots = {**fixed, **_DISPLAY_ROOTS}
    pairs = [(label, root) for label, forms in roots.items() for root in forms]
    return sorted(pairs, key=lambda item: -len(item[1].parts))


def shown(path: str | os.PathLike) -> str:
    """A path as printed in outputs: relative to the project, or under the results / data / cache / site-packages /
    home / temp root it lies in (`<results>/records/...`), never this machine's absolute path."""
    spelled = Path(os.path.abspath(path))
    try:
        targets = [spelled, spelled.resolve()]
    except OSError:
        targets = [spelled]
    for label, root in _roots():
        for target in targets:
            if target == root or root in target.parents:
                rel = target.relative_to(root).as_posix()
                return rel if label == "" else (label if rel == "." else f"{label}/{rel}")
    return str(path) if not Path(path).is_absolute() else f"<abs>/{spelled.name}"


def shown_in(text: str) -> str:
    """`text` with every absolute path under a display root rewritten as `shown` writes it (for log lines that
    other libraries format, e.g. transformers' load report)."""
    for label, root in _roots():
        prefix = str(root)
        if len(root.parts) > 1 and prefix in text:
            text = re.sub(re.escape(prefix) + r"(?=[/\s'\"]|$)", lambda m, l=label: l or ".", text)
    return text
