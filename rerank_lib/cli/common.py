"""What every command shares: the usage error, help with an example, reading a run, checking inputs and outputs."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..data.errors import DataFormatError
from ..data.lines import iter_lines
from ..data.trec import read_run
from ..data.types import Run


class UsageError(ValueError):
    """The command line asks for something impossible (exit status 2, like argparse's own errors)."""


def add_command(commands, name: str, summary: str, example: str, handler) -> argparse.ArgumentParser:
    """A subcommand whose --help ends with an example; `handler(args)` runs it."""
    sub = commands.add_parser(name, help=summary, description=summary, epilog=f"example:\n  {example}",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub.set_defaults(handler=handler, subparser=sub)
    return sub


PRECISIONS = ("fp32", "bf16", "auto")  # = models.PRECISIONS (not imported here: torch is slow to import)


def add_precision(sub: argparse.ArgumentParser) -> None:
    """--precision: fp32 by default on the command line, so that the same command writes the same run on every
    machine (bf16 autocast where a CPU has it changes scores and even orders); 'auto' is the notebooks' choice."""
    sub.add_argument("--precision", choices=PRECISIONS, default="fp32",
                     help="compute precision: fp32 (default: the same numbers on every machine), bf16 (autocast, "
                          "emulated where the hardware lacks it) or auto (bf16 only where the hardware computes it "
                          "natively, as the notebooks do)")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def load_run(path: str | os.PathLike) -> Run:
    run = read_run(path)
    if not run:
        raise DataFormatError(path, None, None, "no data: the run is empty")
    return run


def check_candidates(run_path, candidates: Run, corpus: dict, corpus_path, queries: dict, queries_path) -> None:
    """Every query of `candidates` has text and every candidate document is in the corpus; the first gap is
    reported with the run file's line that names it."""
    wanted = {(q, d) for q, docs in candidates.items() for d in docs}
    for lineno, line in iter_lines(run_path):
        parts = line.split()
        if len(parts) < 3 or (parts[0], parts[2]) not in wanted:
            continue
        if parts[0] not in queries:
            raise DataFormatError(run_path, lineno, "qid", f"query {parts[0]!r} is not in {queries_path}")
        if parts[2] not in corpus:
            raise DataFormatError(run_path, lineno, "docid", f"document {parts[2]!r} is not in {corpus_path}")


def check_output(path: str | os.PathLike, *inputs: str | os.PathLike) -> Path:
    """The output must not overwrite an input file."""
    out = Path(path)
    for given in inputs:
        if given is not None and Path(given).exists() and out.exists() and out.resolve() == Path(given).resolve():
            raise UsageError(f"--output {path} is also an input file; write the run somewhere else")
    return out
