"""`run`: the notebooks in order with papermill (rerank_lib.runner), as run_all.sh does, with -p parameters."""
from __future__ import annotations

from .. import runner
from .common import add_command

EXAMPLE = "rerank-repro run --profile smoke --only 00 01 -p seed 7"


def add_parser(commands) -> None:
    sub = add_command(commands, "run", "Execute the notebooks in order (papermill), stopping at the first failure.",
                      EXAMPLE, runner.run_from_args)
    runner.add_arguments(sub)
