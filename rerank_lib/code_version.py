"""The version of the code that made a cached thing: a hash of the source of the modules that produce it.

Every cache key (training runs, teacher scores, embeddings, LLM features, reader scores, generated queries,
de-quantised models) adds `code_version(<producing modules>)`, so a committed (or uncommitted) change to that code
gets a new key and a recomputation instead of an entry made by the old code. The version is the sha256 of the
source text of the named modules and of every module of this package they import, directly or not (read with
`ast`, whether the import sits at the top or inside a function), each under its path relative to the package: the
same files give the same version in any checkout, sdist or process. It reads no git, and only this package's
`.py` files (never notebooks, results or tests). Over-inclusive on purpose: an imported module whose change does not
alter the output still changes the version, which costs a recomputation, never a stale entry.
"""
from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path
from types import ModuleType

PACKAGE = __name__.rsplit(".", 1)[0]
PACKAGE_ROOT = Path(__file__).resolve().parent


def read_source(path: Path) -> bytes:
    """A module's source as hashed (one function, so a test can stand in an edited file)."""
    return path.read_bytes()


def module_file(module: str, root: Path = PACKAGE_ROOT) -> Path | None:
    """The .py file of a module of this package (`rerank_lib.a.b` -> a/b.py or a/b/__init__.py); None otherwise."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")) if len(parts) > 1 else (root / "__init__.py",):
        if candidate.is_file():
            return candidate
    return None


def imports_in(path: Path, module: str) -> list[tuple[str, list[str]]]:
    """(imported module, imported names) for each import of this package in the file `path` of module `module`,
    at the top or inside a function, relative imports resolved. Also the layer test's reader."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(read_source(path), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == PACKAGE:
                found.append((target, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names if alias.name.split(".")[0] == PACKAGE]
    return found


def imported_modules(module: str, root: Path = PACKAGE_ROOT) -> set[str]:
    """The modules of this package that `module`'s source imports (`from x import y` counts `x` and, where it is a
    submodule, `x.y`)."""
    path = module_file(module, root)
    if path is None:
        return set()
    found = {m for target, names in imports_in(path, module) for m in (target, *(f"{target}.{n}" for n in names))}
    return {m for m in found if module_file(m, root) is not None}


def closure(modules, root: Path = PACKAGE_ROOT) -> list[str]:
    """`modules` and everything of this package they import, transitively; sorted."""
    todo, seen = [m.__name__ if isinstance(m, ModuleType) else str(m) for m in modules], set()
    for name in todo:
        if module_file(name, root) is None:
            raise ValueError(f"code_version: {name!r} is not a module of {PACKAGE}")
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(imported_modules(name, root) - seen)
    return sorted(seen)


@functools.lru_cache(maxsize=None)
def _version(modules: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    paths = {module_file(m) for m in closure(modules)}
    for rel, path in sorted((p.relative_to(PACKAGE_ROOT).as_posix(), p) for p in paths):
        digest.update(rel.encode("utf-8") + b"\x00" + hashlib.sha256(read_source(path)).hexdigest().encode() + b"\n")
    return digest.hexdigest()[:16]


def code_version(*modules: str | ModuleType) -> str:
    """16 hex digits naming the source of `modules` (dotted names of this package, or module objects) and of all
    they import from it; computed once per process per set of modules."""
    if not modules:
        raise ValueError("code_version needs at least one module")
    names = tuple(sorted({m.__name__ if isinstance(m, ModuleType) else str(m) for m in modules}))
    return _version(names)


def clear_cache() -> None:
    """Forget the versions computed in this process (after the source changed under a running process)."""
    _version.cache_clear()
