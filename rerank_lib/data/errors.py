"""One error type for malformed input, so every reader says which file, line and field is wrong."""
from __future__ import annotations

import os


class DataFormatError(ValueError):
    """Raised by every reader on bad input; the message names the file, the line (1-based) and the field."""

    def __init__(self, path: str | os.PathLike, line: int | None, field: str | None, problem: str):
        self.path, self.line, self.field, self.problem = str(path), line, field, problem
        where = self.path + (f", line {line}" if line is not None else "")
        what = f", field '{field}'" if field else ""
        super().__init__(f"{where}{what}: {problem}")


def check_id(path: str | os.PathLike, line: int | None, field: str, value: str) -> str:
    """`value` as an id a TREC run or qrels file can hold: not empty and without whitespace. Those files split
    their lines on whitespace, so an id like 'doc 1' would be written into a run that `evaluate` (and trec_eval)
    cannot read back; it is refused where it is read, naming the file, the line and the field."""
    if not value:
        raise DataFormatError(path, line, field, "empty")
    if value.split() != [value]:
        raise DataFormatError(path, line, field, f"id {value!r} contains whitespace, which TREC run and qrels files "
                                                 f"cannot hold; use an id without spaces or tabs")
    return value
