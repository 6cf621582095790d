"""Validating JSONL reading and atomic JSONL writing, shared by every jsonl format of the papers."""
from __future__ import annotations

import contextlib
import gzip
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..atomic import atomic_open
from .errors import DataFormatError
from .lines import iter_lines


def iter_jsonl(path: str | os.PathLike, allow_empty: bool = True) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-empty line; a line that is not a JSON object (or not UTF-8) raises
    DataFormatError. allow_empty=False: a file without any object (empty, or blank lines only) raises too."""
    found = False
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataFormatError(path, lineno, None, f"not valid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(obj, dict):
            raise DataFormatError(path, lineno, None, f"expected a JSON object, got {type(obj).__name__}")
        found = True
        yield lineno, obj
    if not found and not allow_empty:
        raise DataFormatError(path, None, None, "no data: the file is empty or holds only blank lines")


def require(obj: dict, field: str, types: type | tuple[type, ...], path, lineno: int) -> Any:
    """Return obj[field], raising DataFormatError naming file/line/field when it is missing or of the wrong type."""
    if field not in obj:
        raise DataFormatError(path, lineno, field, "missing")
    value = obj[field]
    if not isinstance(value, types):
        names = types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
        raise DataFormatError(path, lineno, field, f"expected {names}, got {type(value).__name__}")
    return value


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    """Write rows as JSONL atomically (gzip when the name ends in .gz)."""
    path = Path(path)
    with atomic_open(path, "wb") as raw, (gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if path.suffix == ".gz"
                                          else contextlib.nullcontext(raw)) as out:
        for row in rows:
            out.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
    return path
