"""`rerank-repro` / `python -m rerank_lib`: the library's steps on your own files, from a shell.

evaluate  a TREC run against qrels (ir-measures names or trec_eval names), per query, with a paired test
search    BM25 or dense first-stage retrieval over a corpus file, written as a TREC run
rerank    a TREC run re-scored by a cross-encoder, monoT5, LLM or listwise reranker
run       the notebooks (papermill), as run_all.sh does
train     a pipeline's training runs as its notebook trains them (also under accelerate launch)
translate a peer's run file (script, YAML, DeepSpeed JSON, doc) in our settings: mapped, refused or ignored

Mistakes in the input end the command with one line naming the file (and line) and exit status 1; a wrong
command line exits with 2. `--traceback` shows the full Python traceback instead, for bug reports.

search, rerank and train compute in fp32 unless `--precision bf16|auto` says otherwise: the same command then
writes the same run on every machine (the notebooks keep 'auto': bf16 where the hardware computes it natively).
A model folder must be complete (models.check_folder), and rerank refuses a model whose score head loading
initialised afresh unless --allow-untrained-head.
"""
from __future__ import annotations

import argparse
import sys

from ..data.errors import DataFormatError
from ..data.irds import IrDatasetsUnavailable
from . import evaluate, notebooks, rerank, search, train, translate
from .common import UsageError

COMMANDS = (evaluate, search, rerank, notebooks, train, translate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rerank-repro", description=__doc__.split("\n\n")[0],
        epilog="Run 'rerank-repro COMMAND --help' for a command's options and an example.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traceback", action="store_true", help="on an error, show the Python traceback")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command; returns the exit status (0 ok, 1 failure, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UsageError as err:
        if args.traceback:
            raise
        args.subparser.print_usage(sys.stderr)
        print(f"{args.subparser.prog}: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        # Errors caused by the input: one line. Imported only now: models pulls in torch, which `evaluate` never needs.
        from ..models import ModelUnavailableError

        if args.traceback or not isinstance(err, (DataFormatError, OSError, ModelUnavailableError,
                                                  IrDatasetsUnavailable)):
            raise
        if isinstance(err, OSError) and err.filename and err.strerror:
            message = [f"{err.filename}: {err.strerror}"]
        else:
            message = str(err).strip().splitlines()
        print(f"{parser.prog} {args.command}: error: {message[0] if message else type(err).__name__}",
              file=sys.stderr)
        for extra in message[1:]:  # ModelUnavailableError lists the offline built-ins on further lines
            print(f"  {extra}", file=sys.stderr)
        return 1
