"""Reading text files line by line, the same way in every reader: `.gz` gunzipped, UTF-8 checked per line.

Why one helper: a stray Latin-1 byte in a large training file used to surface as a bare UnicodeDecodeError with
a byte offset; here it is a DataFormatError naming the file and the line, like every other input mistake.
"""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import IO, Iterator

from .errors import DataFormatError


def open_binary(path: str | os.PathLike) -> IO[bytes]:
    """Open a file for reading bytes, transparently gunzipping `.gz`."""
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def decode_line(raw: bytes, path: str | os.PathLike, lineno: int) -> str:
    """UTF-8 text of one line (a leading byte-order mark on line 1 is dropped); a bad byte names file and line."""
    try:
        text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError as err:
        raise DataFormatError(path, lineno, None, f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at column "
                                                  f"{err.start + 1}); re-save the file as UTF-8") from None
    return text


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text without its line ending) for every line, blank ones included."""
    with open_binary(path) as handle:
        for lineno, raw in enumerate(handle, start=1):
            yield lineno, decode_line(raw, path, lineno).rstrip("\r\n")


def read_text(path: str | os.PathLike) -> str:
    """The whole file as text (for formats that are one JSON document); a bad byte names file and line."""
    with open_binary(path) as handle:
        data = handle.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        lineno = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise DataFormatError(path, lineno, None, f"not valid UTF-8 (byte 0x{data[err.start]:02x} at column "
                                                  f"{column}); re-save the file as UTF-8") from None


def read_json(path: str | os.PathLike):
    """The file as one JSON document (a list of records, as rank_llm ships them); bad JSON names file and line."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise DataFormatError(path, err.lineno, None, f"not valid JSON ({err.msg})") from None
