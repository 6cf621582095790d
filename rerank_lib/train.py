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
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from . import paper_profiles
from .paths import shown
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


@dataclass(frozen=True)
class Pipeline:
    notebook: str
    config: Callable  # (profile, **dotted overrides) -> the recipe's config
    steps: Callable  # (cfg, results_dir, evaluate) -> {label: experiment.Selected}
    sections: tuple[str, ...]  # its TrainConfigs by dotted path
    flags: dict = field(default_factory=dict)  # pipeline flags (--model_name_or_path, --objective ...) -> setting

    def flag_settings(self) -> dict[str, list[str]]:
        out = {name: [f"{s}.{f}" for s in self.sections] for name, f in TRAIN_FLAGS.items()}
        out.update({name: [f"{s}.{f}" for s in self.sections] for name, (f, _) in SWITCHES.items()})
        return {**out, "seed": ["seed"], **{name: [path] for name, path in self.flags.items()}}


@dataclass(frozen=True)
class Trained:
    """A run's dev-selected model and how to write it as a folder its loader reads (--output_dir)."""

    selected: object  # experiment.Selected
    kind: str  # what the folder is: cross_encoder, bi_encoder, monot5, listwise, llm_yes, llm_score (export.USAGE),
    # or run-folder
    write: Callable[[Path], object]  # write(folder): the complete folder (weights, tokenizer, settings)

    @classmethod
    def cross_encoder(cls, selected, ranker) -> "Trained":
        """sentence-transformers' CrossEncoder(folder): weights, tokenizer, max length (and our settings file)."""
        from .export import export_cross_encoder

        return cls(selected, "cross_encoder", lambda folder: export_cross_encoder(ranker, folder))

    @classmethod
    def bi_encoder(cls, selected, encoder) -> "Trained":
        """SentenceTransformer(folder): Transformer (tokenizer, max length), Pooling, Normalize, prompts."""
        from .export import export_bi_encoder

        return cls(selected, "bi_encoder", lambda folder: export_bi_encoder(encoder, folder))

    @classmethod
    def monot5(cls, selected, cfg) -> "Trained":
        """inranker's T5Ranker(folder) for a T5-vocabulary student; else the selected weights and tokenizer as
        saved, which rerank_lib's T5Ranker(folder) loads."""
        def write(folder):
            from .export import export_monot5, has_t5_vocabulary
            from .rerankers.monot5 import T5Ranker

            ranker = T5Ranker(str(selected.model_dir), max_length=cfg.max_length, device="cpu", bf16=False)
            if has_t5_vocabulary(ranker):
                return export_monot5(ranker, folder)
            return shutil.copytree(selected.model_dir, folder)
        return cls(selected, "monot5", write)

    @classmethod
    def listwise(cls, selected, base: str, chat_template: str | None) -> "Trained":
        """A causal-LM folder with its tokenizer and chat template (transformers, rank_llm)."""
        def write(folder):
            from .export import export_listwise
            from .models import load_chat_lm

            model, tokenizer = load_chat_lm(str(selected.model_dir), chat_template, device="cpu",
                                            tokenizer_from=base)
            return export_listwise(model, tokenizer, folder, chat_template=chat_template)
        return cls(selected, "listwise", write)

    @classmethod
    def llm_reranker(cls, selected, ranker) -> "Trained":
        """An LLM-decoder reranker (DecoderReranker, HeadOnlyRanker) holding the selected weights, as the folder its
        peer loads: 'llm_yes' (FlagEmbedding's FlagLLMReranker, rag-retrieval's LLMRanker) or 'llm_score'
        (RAG-Retrieval's LLMDecoder); export.export_llm_reranker."""
        from .export import export_llm_reranker, llm_export_kind

        return cls(selected, llm_export_kind(ranker), lambda folder: export_llm_reranker(ranker, folder))

    @classmethod
    def run_folder(cls, selected, base: str) -> "Trained":
        """A model with no peer format (a score head or LoRA weights on a frozen LLM): the selected checkpoint as
        saved, which rerank_lib loads onto `base` (named in the manifest)."""
        return cls(selected, f"run-folder (loads onto {base})", lambda folder: shutil.copytree(selected.model_dir, folder))


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


def is_main() -> bool:
    from .training import process_state  # torch: imported once a pipeline runs, not to parse a command line

    return process_state().is_main_process


def main_first():
    """Data preparation and file writing: the main process first, then the others (which find it done)."""
    from .training import process_state

    return process_state().main_process_first()


def ensure_first_stage(cfg, results_dir) -> None:
    """01_first_stage's BM25 runs, built with its recipe functions when missing."""
    from .experiment import run_path
    from .recipes import first_stage

    if all(run_path(results_dir, cfg.profile, name, split, "bm25").exists() for name, split in
           (("scifact", "test"), ("scifact", "train"), ("trec-dl-2019", "test"), ("trec-dl-2020", "test"))):
        return
    print("building 01_first_stage's runs (missing from the results folder)", flush=True)
    fs = first_stage.config(cfg.profile, data_root=cfg.data_root)
    data = first_stage.load(fs)
    first_stage.run_scifact(fs, data, results_dir)
    first_stage.run_trec_dl(fs, data, results_dir)


def ensure_teacher(cfg, results_dir, test_sets: bool = False) -> None:
    """02_teacher's runs, built with its recipe functions when missing: the SciFact train labels, and with
    `test_sets` its scores of the test sets' BM25 top-depth (score_test_sets)."""
    from .experiment import run_path
    from .recipes import teacher

    tc = teacher.config(cfg.profile, data_root=cfg.data_root)
    sets = (teacher.TEST_SETS if test_sets else ()) + (("scifact", "train"),)
    if all(run_path(results_dir, cfg.profile, n, s, f"teacher-{t}").exists() for n, s in sets for t in tc.teachers):
        return
    print("building 02_teacher's runs (missing from the results folder)", flush=True)
    if test_sets:
        teacher.score_test_sets(tc, results_dir)
    teacher.label_training_candidates(tc, results_dir)


def retriever_steps(cfg, out, evaluate):
    from .recipes import retriever_training as recipe

    with main_first():
        data = recipe.load_faire(cfg)
    outcomes = [recipe.train_faire(cfg, data, method, out) for method in cfg.methods]
    if evaluate and is_main():
        base = recipe.faire_baselines(cfg, data, recipe.encoder(cfg), out)
        print(recipe.faire_table(recipe.faire_records(cfg, data, base, outcomes, out)).to_string())
    return {o.method: Trained.bi_encoder(o.selected, o.encoder) for o in outcomes}


def retriever_scifact_steps(cfg, out, evaluate):
    from .recipes import retriever_training as recipe

    with main_first():
        ensure_first_stage(cfg, out)
        data = recipe.load_scifact(cfg, out)
    ctl = recipe.train_scifact(cfg, data, out)
    if evaluate and is_main():
        print(recipe.scifact_table(recipe.scifact_records(cfg, data, ctl, out), out, cfg.profile).to_string())
    return {"ctl": Trained.bi_encoder(ctl.selected, ctl.encoder)}


def inranker_steps(cfg, out, evaluate):
    from .recipes import inranker as recipe

    with main_first():
        ensure_first_stage(cfg, out)
        folds = recipe.dl_folds(cfg, out) if cfg.stage1_data == "dl-folds" else None
        synth = recipe.synthetic_data(cfg, out)  # before stage 1 trains: a bad line of a stage2_file stops it first
    stage1 = recipe.stage1(cfg, folds, results_dir=out)
    students = {f"stage1/{k}": v for k, v in stage1.items()}
    students["stage2"] = recipe.stage2(cfg, stage1, synth, results_dir=out)
    students["ablation"] = recipe.ablation(cfg, folds, results_dir=out)
    if evaluate and is_main():
        print(recipe.results_table(cfg, recipe.evaluate_all(cfg, students, out)).to_string())
    return {k: Trained.monot5(s.selected, cfg) for k, s in students.items() if s is not None}


def llm_reranker_steps(cfg, out, evaluate):
    """Notebook 12's order; its zero-shot start and trained rows write their records as they go (main process)."""
    from . import experiment
    from .recipes import llm_reranker as recipe

    with main_first():
        ensure_first_stage(cfg, out)
        data = recipe.build_data(cfg, out)
    llm = recipe.load_llm(cfg)
    recipe.llm_features(cfg, llm, data)
    zs = recipe.zero_shot(cfg, llm, data, out, init=cfg.head_init)
    heads = [recipe.train_head(cfg, llm, data, loss, zs, out) for loss in cfg.head_losses]
    decoders = [recipe.train_decoder(cfg, v, data, zs, out) for v in cfg.decoder_variants]
    sources = recipe.distillation_sources(cfg, llm, data, max(heads, key=lambda h: h.selected.value) if heads else None)
    with main_first():
        path = recipe.distillation_file(cfg, data, sources, out)
    start, student = recipe.distill(cfg, data, path, sources, out)
    rows = [zs, *heads, *decoders, start, student]
    if evaluate and is_main():
        rows.insert(0, recipe.record_bm25(cfg, data, out))
        table = experiment.results_table([r for x in rows for r in getattr(x, "records", [x])], bases=("bm25", "start"))
        print(table.to_string())
    rows = {row.method: Trained.llm_reranker(row.selected, row.ranker) for row in [*heads, *decoders]}
    return {**rows, student.method: Trained.cross_encoder(student.selected, student.ranker)}


def cross_encoder_steps(cfg, out, evaluate):
    """Notebook 11 (10_'s training files built first when missing)."""
    from . import experiment
    from .recipes import cross_encoder as recipe

    with main_first():
        ensure_first_stage(cfg, out)
        if cfg.train_file:  # the user's own file instead of 10_'s
            groups, sets = recipe.own_training_data(cfg, out)
        else:
            if not (recipe.data_dir(cfg, out) / "manifest.json").exists():
                print("building 10_cross_encoder_data's training files (missing from the results folder)", flush=True)
                recipe.build_training_data(cfg, out)
            groups, split, _ = recipe.load_training_data(cfg, out)
            sets = recipe.eval_sets(cfg, out, split)
    runs = [recipe.train_variant(cfg, variant, groups, sets, results_dir=out) for variant in cfg.variants]
    if evaluate and is_main():
        start_run, start_record = recipe.evaluate_start(cfg, sets, out)
        records = [start_record, *(r for vr in runs for r in recipe.evaluate_variant(cfg, vr, sets, start_run, out))]
        first_stage = ("bm25 (first stage)", sets.test_bm25, sets.test.qrels)
        print(experiment.results_table(records, first_stage=first_stage).to_string())
    return {vr.variant: Trained.cross_encoder(vr.selected, vr.model) for vr in runs}


def hopweaver_steps(cfg, out, evaluate):
    """Notebook 13 without its LLM-generator demonstration (llm_generator: its file trains nothing)."""
    from . import experiment
    from .recipes import hopweaver as recipe
    from .synthetic_queries import LLMJudge

    if cfg.train_file:  # a HopWeaver jsonl of your own: the own-data recipe, measured on HopWeaver's test file
        with main_first():
            own = recipe.OwnData(recipe.own_split(cfg), recipe.own_test(cfg) if evaluate else None)
        split = own.split
        print(f"{len(split.train.queries)} train + {len(split.dev.queries)} dev lines of {split.provenance.source}",
              flush=True)
        reranked = recipe.train_on_own_data(cfg, own)
        if evaluate and is_main():
            records, _ = recipe.own_data_rows(cfg, own, reranked, out)
            print(experiment.results_table(records, measures=recipe.OWN_MEASURES, bases=("bm25", "start")).to_string())
        return {"hopweaver-own-ft": Trained.cross_encoder(reranked.selected, reranked.model)}
    with main_first():
        ensure_first_stage(cfg, out)
        data = recipe.load_data(cfg, out)
    llm_judge = LLMJudge.for_model(cfg.llm, max_length=cfg.judge_max_length, threshold=cfg.judge_threshold)
    judge = recipe.choose_judge(cfg, recipe.judge_quality(cfg, data, llm_judge)[0])
    with main_first():
        generated = recipe.training_data(cfg, data, judge, out, llm_judge=llm_judge)
    reranked = recipe.train_reranker(cfg, data, generated, results_dir=out)
    if evaluate and is_main():
        records, _ = recipe.ablation(cfg, data, reranked, out)
        print(experiment.results_table(records, measures=recipe.MEASURES, bases=("standard", "start")).to_string())
    return {"diverse_ft": Trained.cross_encoder(reranked.selected, reranked.model)}


def rankllm_steps(cfg, out, evaluate):
    """Notebook 30's training (02_'s teacher runs built first when missing); --evaluate: its zero-shot and trained
    records (the recipe search and memorisation probe are the notebook's evidence, not run here)."""
    from .recipes import rankllm as recipe

    with main_first():
        ensure_first_stage(cfg, out)
        ensure_teacher(cfg, out, test_sets=True)
    trained = recipe.train_all(cfg, out)
    if evaluate and is_main():
        sets = recipe.eval_sets(cfg, out)
        reference, zs = recipe.reference_rows(cfg, sets, out), recipe.zero_shot(cfg, sets, out)
        records, _ = recipe.evaluate_all(cfg, trained, sets, zs, out)
        print(recipe.results_table(reference + zs.records + records).to_string())
    return {tr.name: Trained.listwise(tr.selected, tr.base, cfg.chat_template) for tr in trained}


def _config(module: str, name: str = "config"):
    def resolve(profile, **overrides):
        from importlib import import_module

        return getattr(import_module(f"rerank_lib.recipes.{module}"), name)(profile, **overrides)
    return resolve


PIPELINES = {
    "cross_encoder": Pipeline("11_cross_encoder_training", _config("cross_encoder"), cross_encoder_steps, ("train",),
                              {"model_name_or_path": "model", "per_device_train_batch_size": "batch_pairs"}),
    "hopweaver": Pipeline("13_hopweaver", _config("hopweaver"), hopweaver_steps, ("train",),
                          {"model_name_or_path": "reranker"}),
    "inranker": Pipeline("20_inranker", _config("inranker"), inranker_steps,
                         ("stage1.train", "stage2.train", "ablation.train"), {"model_name_or_path": "student"}),
    "llm_reranker": Pipeline("12_llm_reranker", _config("llm_reranker"), llm_reranker_steps,
                             ("head_train", "decoder_train", "student_train"), {"model_name_or_path": "llm"}),
    "retriever": Pipeline("40_retriever_training", _config("retriever_training"), retriever_steps,
                          ("ctl_train", "dca_train", "rpg_train"), {"model_name_or_path": "model"}),
    "retriever_scifact": Pipeline("41_retriever_scifact", _config("retriever_training", "scifact_config"),
                                  retriever_scifact_steps, ("train",), {"model_name_or_path": "model"}),
    "rankllm": Pipeline("30_rankllm", _config("rankllm"), rankllm_steps, ("train",),
                        {"model_name_or_path": "model", "objective": "objectives",
                         "noisy_embedding_alpha": "noise_alpha"}),
}


def add_pipelines(parser: argparse.ArgumentParser) -> None:
    """One sub-command per pipeline, its --help listing each flag with the settings it sets."""
    peer_options(parser, top=True)
    pipelines = parser.add_subparsers(dest="pipeline", metavar="PIPELINE")  # or --from FILE alone
    parser.set_defaults(pipeline_parsers={})
    for name, pipe in PIPELINES.items():
        sub = pipelines.add_parser(name, help=f"the training of notebook {pipe.notebook}",
                                   description=f"Train the runs of notebook {pipe.notebook}.")
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
        for flag, settings in pipe.flag_settings().items():
            kwargs = {"action": "store_true"} if flag in SWITCHES else {"metavar": "VALUE"}
            sub.add_argument(f"--{flag}", help=f"sets {', '.join(settings)}", **kwargs)
        peer_options(sub, pipeline=name)
        parser.get_default("pipeline_parsers")[name] = sub


def peer_options(parser: argparse.ArgumentParser, top: bool = False, pipeline: str | None = None) -> None:
    """--from FILE (a peer's run file), --skip-refused, and the peers' own flags of `pipeline` (peer_runs' tables:
    `rerank-repro translate FILE` shows what each sets)."""
    from . import peer_runs

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


def resolve(args) -> tuple[Pipeline, object]:
    """The pipeline and its config: profile < --config < flags < --set (< --data-root)."""
    from .experiment.launch import flat_settings

    pipe = PIPELINES[args.pipeline]
    base = flat_settings(pipe.config(args.profile or "default"))  # every profile has the same settings
    peers = peer_translations(args, pipe)
    peer = {k: v for t in peers for k, v in t.settings(pipe.sections).items()}
    profile, from_file = read_config_file(args.config, args.pipeline, set(base)) if args.config else (None, {})
    profile = profile or (peers[0].profile if any(t.path.is_file() for t in peers) else None)
    flags = {}
    for flag, settings in pipe.flag_settings().items():
        given = getattr(args, flag, None)
        if given not in (None, False):
            value = SWITCHES[flag][1] if flag in SWITCHES else parse_value(given)
            flags.update({p: [value] if isinstance(base[p], list) and not isinstance(value, list) else value
                          for p in settings})
    precision = getattr(args, "precision", None)
    if precision is not None and getattr(args, "bf16", False) and precision != "bf16":
        raise UsageError(f"--bf16 and --precision {precision} disagree")
    if PRECISION_SETTING.get(precision) is not None:  # --bf16 is --precision bf16
        flags.update({f"{section}.mixed_precision": PRECISION_SETTING[precision] for section in pipe.sections})
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
        command_line_default = {f"{s}.mixed_precision": "no" for s in pipe.sections
                                if chosen.get(f"{s}.mixed_precision") == "auto"}
    merged = {**command_line_default, **peer, **from_file, **flags, **sets,
              **({"data_root": args.data_root} if args.data_root else {})}
    try:
        return pipe, pipe.config(profile, **merged)
    except (TypeError, ValueError) as err:
        raise UsageError(f"{args.config or 'the command line'}: {err}") from None


def peer_translations(args, pipe: Pipeline) -> list:
    """The peer run of --from (or a peer's YAML given to --config) and the peers' flags, translated and printed; a
    refused setting stops here unless --skip-refused."""
    from . import peer_runs

    found = []
    spec = getattr(args, "from_file", None)
    if args.config and peer_runs.is_peer_config(args.config):  # RAG-Retrieval's config/training_bert.yaml
        spec, args.config = spec or args.config, None
    try:
        if spec:
            found.append(peer_runs.pick(spec).for_pipeline(args.pipeline, pipe.sections))
        given = {k.split(":", 1)[1]: (None if not v else v[0] if len(v) == 1 else v)
                 for k, v in vars(args).items() if k.startswith("peer:") and v is not None}
        if given:
            found.append(peer_runs.translate_flags(args.pipeline, pipe.sections, given))
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
    notebook launches (experiment.launch, $RERANK_LAUNCHED) trains for that notebook, in its results folder."""
    from .experiment.launch import LAUNCHED_ENV

    return results if os.environ.get(LAUNCHED_ENV) else results / SHELL_RESULTS


def run(args) -> int:
    from .experiment.output_dir import OutputDirError, check_output_dir
    from .models import precision_scope
    from .paths import results_dir

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
        trained = pipe.steps(cfg, out, args.evaluate)
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
    from . import peer_runs

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
