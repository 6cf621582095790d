"""`python -m rerank_lib.train PIPELINE` (also `rerank-repro train PIPELINE`): a pipeline's training from a shell.

It calls the recipe functions of the pipeline's notebook, in the notebook's order, up to and including training
(`--evaluate` adds the notebook's records and table), with the settings of a profile, a YAML file (configs/*.yaml)
and flags, later ones winning: profile < --config < the seeds' flags (--learning_rate ...) < --set a.b.c=value.
What it writes goes to <results>/shell/ (records, runs, models, and the earlier notebooks' inputs it builds), never
over a notebook's files; `--output_dir` gets each selected model complete for its loader (transformers' contract:
a non-empty folder that is not an earlier export of this command is refused unless --overwrite_output_dir, and
only the export's own files are ever replaced). Training runs share the run-folder cache with the notebooks.
It is correct under `accelerate launch` with N processes: data is prepared (and missing inputs of earlier
notebooks built) on the main process first, every process trains, the main process alone evaluates and writes
records. Every run ends with a checkpoint, so a notebook (or a later call) finds it finished and loads it.

  accelerate launch --config_file configs/accelerate/ddp.yaml -m rerank_lib.train retriever \\
      --config configs/localrqa_ctl_faire.yaml
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import yaml

from . import paper_profiles, peer_runs, recipes
from .paths import results_dir, shown
from .settings import PROFILES

EXAMPLE = ("python -m rerank_lib.train retriever --profile smoke --set 'methods=[ctl]' --learning_rate 5e-5 "
           "--output_dir ctl-model")
# The seeds' training flags -> the TrainConfig field each sets, in every training section of the pipeline.
TRAIN_FLAGS = {"learning_rate": "learning_rate", "per_device_train_batch_size": "per_device_batch_size",
               "gradient_accumulation_steps": "gradient_accumulation_steps", "num_train_epochs": "num_epochs",
               "max_steps": "max_steps", "warmup_ratio": "warmup_ratio", "weight_decay": "weight_decay",
               "lr_scheduler_type": "lr_scheduler"}
SHELL_RESULTS = "shell"  # the command's own results subfolder (shell_results_dir)
SWITCHES = {"bf16": ("mixed_precision", "bf16"), "gradient_checkpointing": ("gradient_checkpointing", True)}
#: --precision -> each training section's mixed_precision (the notebooks keep their profiles' 'auto')
#: 'auto' keeps what the profile / --config say ('auto' where the hardware decides, 'no' where a recipe chose it).
PRECISION_SETTING = {"fp32": "no", "bf16": "bf16", "auto": None}


class UsageError(ValueError):
    """A wrong setting or flag (exit status 2)."""


def flag_settings(recipe) -> dict[str, list[str]]:
    """Each flag of the recipe's sub-command -> the settings it sets (a training flag: that field of every stage)."""
    fields = {**TRAIN_FLAGS, **{name: field for name, (field, _) in SWITCHES.items()}}
    out = {name: [f"{s}.{f}" for s in recipe.stages] for name, f in fields.items()} if recipe.stages else {}
    seeds = {"seeds": ["seeds"]} if recipe.multi_seed else {}
    return {**out, "seed": ["seed"], **seeds, **{name: [path] for name, path in recipe.flags.items()}}


def join_cpu_world() -> None:
    """Under `accelerate launch` (or torchrun) with several processes and no GPU, make the processes one CPU world.

    accelerate forms a CPU process group only when $ACCELERATE_USE_CPU says so, which a GPU config
    (configs/accelerate/ddp.yaml: use_cpu false) does not set: each process then trains alone, N trainings in one
    run folder. With no accelerator there is nothing else to run on, so the launched processes join over gloo."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1 or os.environ.get("ACCELERATE_USE_CPU", "").lower() in (
            "1", "true", "yes"):
        return
    import torch

    if not torch.accelerator.is_available():
        os.environ["ACCELERATE_USE_CPU"] = "true"


class PipelineParser(argparse.ArgumentParser):
    """A pipeline's sub-command: its recipe's flags are added when it parses or shows help (a recipe imports torch,
    so `--help` of the command, or of the rerank-repro CLI, imports none)."""

    pipeline: str | None = None

    def fill(self) -> None:
        if self.pipeline is None:
            return
        name, self.pipeline = self.pipeline, None
        recipe = recipes.get(name)
        self.description = f"Train the runs of notebook {recipe.notebook}."
        for flag, settings in flag_settings(recipe).items():
            kwargs = ({"action": "store_true"} if flag in SWITCHES else
                      {"nargs": "+", "type": int, "metavar": "SEED"} if flag == "seeds" else {"metavar": "VALUE"})
            self.add_argument(f"--{flag}", help=f"sets {', '.join(settings)}", **kwargs)
        peer_options(self, pipeline=name)

    def parse_known_args(self, args=None, namespace=None):
        self.fill()
        return super().parse_known_args(args, namespace)

    def format_help(self):
        self.fill()
        return super().format_help()


def add_pipelines(parser: argparse.ArgumentParser) -> None:
    """One sub-command per registered recipe, its --help listing each flag with the settings it sets."""
    peer_options(parser, top=True)
    pipelines = parser.add_subparsers(dest="pipeline", metavar="PIPELINE", parser_class=PipelineParser)
    parser.set_defaults(pipeline_parsers={})
    for name in recipes.REGISTRY:
        sub = pipelines.add_parser(name, help=f"the training of the {name} recipe (its notebook's steps)")
        sub.pipeline = name
        sub.set_defaults(subparser=sub)
        sub.add_argument("--profile", choices=PROFILES, help="the recipe's profile (default: the --config file's, "
                         "else default)")
        sub.add_argument("--config", metavar="YAML", help="pipeline:, profile:, settings: {dotted.path: value}")
        sub.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                         help="any setting by its dotted path (repeatable; values are YAML: 1e-5, [ctl], null)")
        sub.add_argument("--results-dir", help="the results folder (default: results/); the command writes its "
                         f"records, runs, models and the inputs it builds into its {SHELL_RESULTS}/ subfolder, so "
                         "the notebooks' files are never replaced")
        sub.add_argument("--data-root", help="data root (sets data_root)")
        sub.add_argument("--output_dir", help="write each selected model into this folder at the end, complete for "
                         "its loader (a subfolder per run when the pipeline trains several); a folder that is not "
                         "empty is refused before training unless it holds an earlier export of this command")
        sub.add_argument("--overwrite_output_dir", action="store_true",
                         help="write the model files into a non-empty --output_dir (replacing files of the same "
                         "names; its other files are kept)")
        sub.add_argument("--evaluate", action="store_true", help="also write the notebook's records and table")
        sub.add_argument("--precision", choices=tuple(PRECISION_SETTING), help="training mixed precision and "
                         "evaluation precision: fp32 (default: a profile's machine-dependent 'auto' becomes fp32, "
                         "the same numbers on every machine), bf16, or auto (the profile's own settings, as the "
                         "notebooks run them: bf16 where the hardware computes it natively)")
        parser.get_default("pipeline_parsers")[name] = sub


def peer_options(parser: argparse.ArgumentParser, top: bool = False, pipeline: str | None = None) -> None:
    """--from FILE (a peer's run file), --skip-refused, and the peers' own flags of `pipeline` (peer_runs' tables:
    `rerank-repro translate FILE` shows what each sets)."""
    suffix = "_top" if top else ""  # a subcommand's default would overwrite the value given before it
    parser.add_argument("--from", dest=f"from_file{suffix}", metavar="FILE[:N]",
                        help="a peer's run file (training script, YAML or DeepSpeed/accelerate config, doc with the "
                        "command): its settings are translated, printed, then trained (N: which run of several)")
    parser.add_argument("--skip-refused", dest=f"skip_refused{suffix}", action="store_true",
                        help="train although some settings of --from / the peers' flags are refused (they are listed)")
    if pipeline is None:
        return
    own = {a for action in parser._actions for a in action.option_strings}
    parser.usage = "%(prog)s [--profile P] [--config YAML] [--from FILE[:N]] [--set PATH=VALUE] [options] [their flags]"
    group = parser.add_argument_group("the peers' flags", "their names, translated as `rerank-repro translate` shows")
    for flag, program in peer_runs.peer_flags(pipeline).items():
        if f"--{flag}" not in own:
            group.add_argument(f"--{flag}", dest=f"peer:{flag}", nargs="*", metavar="VALUE",
                               help=f"{program.peer}'s {flag}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rerank_lib.train", description=__doc__.split("\n\n")[0],
                                     epilog=f"example:\n  {EXAMPLE}",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pipelines(parser)
    return parser


def parse_value(text):
    """A YAML value; a number YAML reads as text (1e-5) becomes the number."""
    value = yaml.safe_load(text) if isinstance(text, str) and text.strip() else text
    for cast in (int, float):
        if isinstance(value, str):
            try:
                return cast(value)
            except ValueError:
                pass
    return value


def read_config_file(path: str, pipeline: str, known: set) -> tuple[str | None, dict]:
    """(profile, {dotted setting: value}) of a YAML file (the paper profiles' format: plain values or {value,
    source}, nested or dotted); an error names the file, the line and the key. A recipe's own file
    (recipes/paper_profiles/) gives its paper profile (`settings:`); its other profiles and published numbers are
    checked as it is read, and chosen with --profile, never taken from the file."""
    try:
        doc = paper_profiles.read(path, known, paper_profiles.RECIPE_TOP_LEVEL)
    except (OSError, paper_profiles.SettingsFileError) as err:
        listing = f"; settings: {', '.join(sorted(known))}" if "unknown setting" in str(err) else ""
        raise UsageError(f"{err} (pipeline {pipeline}){listing}") from None
    if doc.pipeline not in (None, pipeline):
        raise UsageError(f"{path}: pipeline: {doc.pipeline} is not the command's pipeline {pipeline}")
    return doc.profile, {k: parse_value(v) for k, v in doc.values.items()}


def resolve(args) -> tuple[object, object]:
    """The pipeline and its config: profile < --config < flags < --set (< --data-root)."""
    from .recipes.launch import flat_settings

    pipe = recipes.get(args.pipeline)
    base = flat_settings(pipe.config(args.profile or "default"))  # every profile has the same settings
    peers = peer_translations(args, pipe)
    peer = {k: v for t in peers for k, v in t.settings(pipe.stages).items()}
    profile, from_file = read_config_file(args.config, args.pipeline, set(base)) if args.config else (None, {})
    profile = profile or (peers[0].profile if any(t.path.is_file() for t in peers) else None)
    flags = {}
    for flag, settings in flag_settings(pipe).items():
        given = getattr(args, flag, None)
        if given not in (None, False):
            value = SWITCHES[flag][1] if flag in SWITCHES else parse_value(given)
            flags.update({p: [value] if isinstance(base[p], list) and not isinstance(value, list) else value
                          for p in settings})
    precision = getattr(args, "precision", None)
    if precision is not None and getattr(args, "bf16", False) and precision != "bf16":
        raise UsageError(f"--bf16 and --precision {precision} disagree")
    if PRECISION_SETTING.get(precision) is not None:  # --bf16 is --precision bf16
        flags.update({f"{section}.mixed_precision": PRECISION_SETTING[precision] for section in pipe.stages})
    sets = {}
    for item in args.set:
        path, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--set {item}: expected PATH=VALUE")
        sets[path.strip()] = parse_value(value)
    profile, known = args.profile or profile or "default", set(base)
    for source, values in (("the peer's run", peer), ("the flags", flags), ("--set", sets)):  # --config's: read
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(f"unknown setting {unknown[0]!r} in {source} (pipeline {args.pipeline}); "
                             f"settings: {', '.join(sorted(known))}")
    command_line_default = {}  # without a precision flag, a profile's machine-dependent 'auto' becomes fp32
    if precision is None and not getattr(args, "bf16", False):
        chosen = flat_settings(pipe.config(profile))
        command_line_default = {f"{s}.mixed_precision": "no" for s in pipe.stages
                                if chosen.get(f"{s}.mixed_precision") == "auto"}
    merged = {**command_line_default, **peer, **from_file, **flags, **sets,
              **({"data_root": args.data_root} if args.data_root else {})}
    try:
        return pipe, pipe.config(profile, **merged)
    except (TypeError, ValueError) as err:
        raise UsageError(f"{args.config or 'the command line'}: {err}") from None


def peer_translations(args, pipe) -> list:
    """The peer run of --from (or a peer's YAML given to --config) and the peers' flags, translated and printed; a
    refused setting stops here unless --skip-refused."""
    found = []
    spec = getattr(args, "from_file", None)
    if args.config and peer_runs.is_peer_config(args.config):  # RAG-Retrieval's config/training_bert.yaml
        spec, args.config = spec or args.config, None
    try:
        if spec:
            found.append(peer_runs.pick(spec).for_pipeline(args.pipeline, pipe.stages))
        given = {k.split(":", 1)[1]: (None if not v else v[0] if len(v) == 1 else v)
                 for k, v in vars(args).items() if k.startswith("peer:") and v is not None}
        if given:
            found.append(peer_runs.translate_flags(args.pipeline, pipe.stages, given))
    except (OSError, ValueError) as err:
        raise UsageError(str(err)) from None
    for run in found:
        print("\n".join(run.lines()), flush=True)
        if run.output_dir and not args.output_dir:
            args.output_dir = run.output_dir
    refused = [r for run in found for r in run.refused]
    if refused and not args.skip_refused:
        raise UsageError(f"{len(refused)} setting(s) refused (listed above: {', '.join(r.peer for r in refused)}); "
                         "fix them, or pass --skip-refused to train without them")
    return found



def export(trained: dict, target: Path, pipeline: str) -> list[str]:
    """Each selected model written into `target` (a subfolder per run when there are several), replacing only
    what an export writes; the manifest lists the files and the runs they come from."""
    from .experiment.output_dir import write_export

    names = {label: re.sub(r"[^\w.]+", "-", label) for label in trained}  # 'a->b combined': a-b-combined
    writers = {names[label]: t.write for label, t in trained.items()}
    runs = {names[label]: {"label": label, "kind": t.kind, "run": shown(t.selected.result.final_dir.parent),
                           "selected_step": t.selected.step} for label, t in trained.items()}
    files = write_export(target, writers, {"command": f"python -m rerank_lib.train {pipeline}", "runs": runs})
    for label in trained:
        where = target if len(trained) == 1 else target / names[label]
        print(f"{label}: selected model written to {where} ({trained[label].kind})")
    return files


def shell_results_dir(results: Path) -> Path:
    """Where this command writes: <results>/shell, its own records, runs, models, figures and the inputs it builds
    there, so a shell run never replaces a notebook's record or published model of the same name. The command a
    notebook launches (recipes.launch, $RERANK_LAUNCHED) trains for that notebook, in its results folder."""
    from .recipes.launch import LAUNCHED_ENV

    return results if os.environ.get(LAUNCHED_ENV) else results / SHELL_RESULTS


def run(args) -> int:
    from .experiment.output_dir import OutputDirError, check_output_dir
    from .models import precision_scope
    from .recipes.recipe import is_main

    os.environ.setdefault("RERANK_CHECKPOINT_AT_END", "1")  # a later call (the notebook) finds each run finished
    if args.pipeline is None:
        choose_pipeline(args)
    join_cpu_world()
    pipe, cfg = resolve(args)
    if args.output_dir:
        try:
            check_output_dir(args.output_dir, args.overwrite_output_dir)  # before any training
        except OutputDirError as err:
            raise UsageError(str(err)) from None
    out = shell_results_dir(results_dir(args.results_dir))
    with precision_scope(getattr(args, "precision", None) or ("bf16" if getattr(args, "bf16", False) else "fp32")):
        trained = pipe.training(cfg, out, args.evaluate)
    if is_main():
        if args.evaluate:
            print(f"records, runs and models of this command: {shown(out)}")
        for label, t in trained.items():
            sel = t.selected
            print(f"{label}: {sel.describe()} | run {shown(sel.result.final_dir.parent)} | selected {shown(sel.model_dir)}")
        if args.output_dir:
            try:
                export(trained, Path(args.output_dir), args.pipeline)
            except OutputDirError as err:
                raise UsageError(str(err)) from None
    return 0


def choose_pipeline(args) -> None:
    """`train --from FILE` without a pipeline: the pipeline of the file's run, its options at their defaults."""
    if not args.from_file_top:
        raise UsageError("name a PIPELINE, or give --from FILE (a peer's run file)")
    try:
        pipeline = peer_runs.pick(args.from_file_top).pipeline
    except (OSError, ValueError) as err:
        raise UsageError(str(err)) from None
    if pipeline is None:
        raise UsageError(f"{args.from_file_top} is a launch config or a run no pipeline here trains: name the "
                         "pipeline (rerank-repro train PIPELINE --from FILE)")
    extra = ["--from", args.from_file_top] + (["--skip-refused"] if args.skip_refused_top else [])
    sub = args.pipeline_parsers[pipeline]
    vars(args).update(vars(sub.parse_args(extra)), pipeline=pipeline)


def main(argv: list[str] | None = None) -> int:
    from .data.errors import DataFormatError
    from .training.run_lock import RunFolderInUse

    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except UsageError as err:
        getattr(args, "subparser", build_parser()).error(str(err))  # exits with status 2
    except (RunFolderInUse, DataFormatError) as err:  # a bad line of a training file: its file, line and field
        print(f"{args.subparser.prog}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
