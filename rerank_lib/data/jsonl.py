"""Validating JSONL reading and atomic JSONL writing, shared by every jsonl format of the papers."""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..atomic import atomic_open
from .errors import DataFormatError


def open_text(path: str | os.PathLike):
    """Open a text file, transparently gunzipping `.gz`."""
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, "r", encoding="utf-8")


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-empty line; a line that is not a JSON object raises DataFormatError."""
    with open_text(path) as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataFormatError(path, lineno, None, f"not valid JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(obj, dict):
                raise DataFormatError(path, lineno, None, f"expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


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
    with atomic_open(path, "wb") as raw:
        if path.suffix == ".gz":
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
                for row in rows:
                    gz.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        else:
            for row in rows:
                raw.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
    return path
