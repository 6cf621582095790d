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
