"""`translate`: a peer's run file in our settings (rerank_lib.peer_runs), printed without training."""
from __future__ import annotations

from .common import add_command

EXAMPLE = ("rerank-repro translate train_rank_zephyr.sh  # then: rerank-repro train --from train_rank_zephyr.sh")


def add_parser(commands) -> None:
    sub = add_command(commands, "translate", "Show how a peer's run file (training script, training / accelerate "
                      "YAML, DeepSpeed JSON, a doc with its commands) maps onto our pipelines' settings: each of its "
                      "settings mapped, refused (why) or ignored (why).", EXAMPLE, run)
    sub.add_argument("file", metavar="FILE", help="the run file, as its users pass it")


def run(args) -> int:
    from ..peer_runs import translate

    found = translate(args.file)
    print("\n".join(found.lines()))
    return 0
