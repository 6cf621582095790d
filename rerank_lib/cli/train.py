"""`train`: a pipeline's training runs from a shell (rerank_lib.train), under `accelerate launch` or not."""
from __future__ import annotations

import argparse
import sys

from .common import UsageError, add_command

EXAMPLE = ("accelerate launch --config_file configs/accelerate/ddp.yaml -m rerank_lib.train retriever "
           "--config configs/localrqa_ctl_faire.yaml  # or: rerank-repro train retriever --profile smoke")


def add_parser(commands) -> None:
    from .. import train

    sub = add_command(commands, "train", "Train a pipeline's models as its notebook does (up to the training; "
                      "--evaluate adds the records).", EXAMPLE, run)
    sub.formatter_class = argparse.RawDescriptionHelpFormatter
    train.add_pipelines(sub)


def run(args) -> int:
    from .. import train
    from ..training.run_lock import RunFolderInUse

    try:
        return train.run(args)
    except train.UsageError as err:
        raise UsageError(str(err)) from None
    except RunFolderInUse as err:  # another process trains in the run folder: one line, exit status 1
        print(f"{args.subparser.prog}: error: {err}", file=sys.stderr)
        return 1
