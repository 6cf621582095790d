"""The peers' own run files, translated: every setting of a peer's training command or config -> one of ours.

`translate(path)` reads a shell script (its `accelerate launch` / `torchrun` / `python` training command with the
script's variables), a training YAML (RAG-Retrieval), an accelerate YAML or a DeepSpeed JSON (the launch), or a
document with commands (LocalRQA's and HopWeaver's docs, InRanker's `InRankerTrainer(...)`). Each training command
becomes a `Translation`: its pipeline, the profile it starts from (`paper`: the published recipe, whose settings
cite these same files) and one `Row` per setting: mapped (our dotted setting = value), refused (why) or ignored
(why: it changes nothing that matters). Files the command names (`--config_file`, `--deepspeed`, `--config`) are
read where its users' working directory would have them, and their rows follow the command's.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ..data.errors import DataFormatError
from ..paths import PROJECT_ROOT
from . import reading, rules, tables
from .rules import IGNORED, MAPPED, OUTPUT_DIR, REFUSED, TRAIN, Outcome
from .tables import Program

DEEPSPEED_FLAGS = ("deepspeed", "ds_config", "deepspeed_config")
PROFILE = "paper"  # the published recipes: unset settings keep the values the paper profiles cite
PEERS = PROJECT_ROOT.parent / "shared" / "peers"  # the peers' run files, verbatim, beside the project
DOCUMENT = PROJECT_ROOT / "docs" / "peer_settings.md"  # markdown_tables(PEERS), linked from README


@dataclass(frozen=True)
class Row:
    """One peer setting and what became of it."""

    source: str  # file and line, as shown
    peer: str  # their setting: --flag, a YAML key, a dotted JSON path, an environment variable
    value: object
    status: str  # mapped | refused | ignored
    settings: dict  # ours, TRAIN.<field> for each training section
    reason: str = ""

    @classmethod
    def of(cls, where: str, peer: str, value, outcome: Outcome) -> "Row":
        return cls(where, peer, value, outcome.status, outcome.settings, outcome.reason)


@dataclass
class Translation:
    """One training run of a peer file (or a launch config, pipeline None) in our settings."""

    path: Path
    line: int
    peer: str
    program: str
    pipeline: str | None
    sections: tuple[str, ...]
    command: str
    rows: list[Row] = field(default_factory=list)
    why: str = ""
    profile: str = PROFILE

    def expand(self, setting: str, sections: tuple[str, ...] | None = None) -> list[str]:
        if not setting.startswith(TRAIN):
            return [setting]
        return [f"{s}.{setting[len(TRAIN):]}" for s in (sections or self.sections or ("<training>",))]

    def settings(self, sections: tuple[str, ...] | None = None) -> dict:
        """Our dotted settings, later rows winning (a command's own flag over its launch config's)."""
        out = {}
        for row in self.rows:
            if row.status == MAPPED:
                for key, value in row.settings.items():
                    if key != OUTPUT_DIR:
                        out.update({path: value for path in self.expand(key, sections)})
        return out

    @property
    def output_dir(self) -> str | None:
        found = [r.settings[OUTPUT_DIR] for r in self.rows if r.status == MAPPED and OUTPUT_DIR in r.settings]
        return found[-1] if found else None

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.rows)

    @property
    def refused(self) -> list[Row]:
        return [r for r in self.rows if r.status == REFUSED]

    def for_pipeline(self, pipeline: str, sections: tuple[str, ...]) -> "Translation":
        """This translation applied to `pipeline` (a launch config's rows, or a run named by its pipeline)."""
        if self.pipeline not in (None, pipeline):
            raise ValueError(f"{self.path}: its run trains pipeline {self.pipeline}, not {pipeline}")
        return replace(self, pipeline=pipeline, sections=self.sections or sections)

    def lines(self) -> list[str]:
        """The mapping as printed: a header, one line per setting, the counts."""
        target = (f"pipeline {self.pipeline}" + (f", profile {self.profile}" if self.profile else "") if self.pipeline
                  else "no pipeline here" if self.why else "a launch: name the pipeline")
        head = f"{self.peer} {shown(self.path)} line {self.line}" if self.line else "the peers' flags given"
        out = [f"{head}: {self.command}",
               f"  -> {target}" + (f" ({self.why})" if self.why else "")]
        for row in self.rows:
            out.append(f"  {row.source:<28} {describe_setting(row.peer, row.value):<46} {self.describe(row)}")
        out.append(f"  {self.count(MAPPED)} mapped, {self.count(REFUSED)} refused, {self.count(IGNORED)} ignored")
        return out

    def describe(self, row: Row) -> str:
        if row.status != MAPPED:
            return f"{row.status}: {row.reason}"
        parts = [f"{'--output_dir' if k == OUTPUT_DIR else ', '.join(self.expand(k))} = {fmt(v)}"
                 for k, v in row.settings.items()]
        text = "; ".join(parts) if parts else "(read)"
        return f"{text}" + (f"  ({row.reason})" if row.reason else "")


@dataclass
class FileTranslation:
    """Every training run of a file, and the file's other commands (data preparation, evaluation: not runs)."""

    path: Path
    runs: list[Translation]
    others: list[Row] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = []
        for index, run in enumerate(self.runs, 1):
            if len(self.runs) > 1:
                out.append(f"[run {index} of {len(self.runs)}: --from {shown(self.path)}:{index}]")
            out += run.lines()
        for row in self.others:
            out.append(f"  {row.source:<28} {str(row.value)[:60]:<60} ignored: {row.reason}")
        if not self.runs:
            out.insert(0, f"{shown(self.path)}: no training command (its commands are listed below)")
        return out


def fmt(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(str, value)) + "]"
    return repr(value) if isinstance(value, str) and (not value or value != value.strip()) else str(value)


def describe_setting(name: str, value) -> str:
    text = name if value is None else f"{name} {fmt(value) if not isinstance(value, dict) else value}"
    return text if len(text) <= 46 else text[:43] + "..."


def repository_root(path: Path) -> Path | None:
    for folder in path.resolve().parents:
        if (folder / "LICENSE").exists():
            return folder
    return None


def shown(path: Path) -> str:
    """A peer file by its path inside its repository; another file as given."""
    root = repository_root(path)
    return str(path.resolve().relative_to(root)) if root else str(path)


def peer_name(path: Path) -> str:
    root = repository_root(path)
    return "/".join(root.parts[-2:]) if root else "your file"


def source(path: Path, line: int) -> str:
    return f"{Path(shown(path)).name}:{line}"


# ---------------------------------------------------------------------------------------------------------------
# launch configs


def deepspeed_rows(path: Path) -> tuple[list[Row], str]:
    """A DeepSpeed JSON's rows and our launch for it."""
    settings = reading.json_settings(path)
    values = {s.name: s.value for s in settings}
    offload = any(k.startswith("zero_optimization.offload") and v not in ("none", None)
                  for k, v in values.items() if k.endswith(".device"))
    launch = rules.zero_launch(int(values.get("zero_optimization.stage", 0)), offload)
    rows = []
    for s in settings:
        if s.name == "zero_optimization.stage":
            outcome = Outcome(MAPPED, {"launch": launch}, f"ZeRO stage {s.value}: configs/accelerate/{launch}.yaml")
        else:
            outcome = rules.deepspeed_rule(s.name, s.value)
        rows.append(Row.of(source(path, s.line), s.name, s.value, outcome))
    return rows, launch


def accelerate_rows(path: Path) -> list[Row]:
    """An accelerate config's rows (and those of the DeepSpeed JSON it names)."""
    settings = reading.yaml_settings(path)
    values = {s.name: s.value for s in settings}
    json_ref = values.get("deepspeed_config.deepspeed_config_file")
    json_path = reading.find_beside(path.parent, json_ref) if json_ref else None
    extra, json_launch = deepspeed_rows(json_path) if json_path else ([], None)
    rows = []
    for s in settings:
        outcome = launch_outcome(s.name, s.value, values, json_launch) or rules.ACCELERATE.get(s.name, lambda v, g: None)(
            s.value, values) or Outcome(REFUSED, {}, "an accelerate setting we do not know")
        if s.name == "deepspeed_config.deepspeed_config_file" and not json_path:
            outcome = Outcome(REFUSED, {}, f"{s.value} is not beside {shown(path)}: its DeepSpeed settings are unknown")
        rows.append(Row.of(source(path, s.line), s.name, s.value, outcome))
    return rows + extra


def launch_outcome(name: str, value, values: dict, json_launch: str | None) -> Outcome | None:
    """distributed_type (and what decides it: the ZeRO stage, FSDP's sharding) -> our `launch`."""
    if name == "distributed_type":
        if value == "DEEPSPEED":
            stage = values.get("deepspeed_config.zero_stage")
            offload = values.get("deepspeed_config.offload_optimizer_device", "none") not in ("none", None)
            launch = json_launch if stage is None and json_launch else rules.zero_launch(int(stage or 0), offload)
        elif value == "FSDP":
            strategy = str(values.get("fsdp_config.fsdp_sharding_strategy", "1"))
            launch = {"1": "fsdp", "FULL_SHARD": "fsdp", "3": "ddp", "NO_SHARD": "ddp"}.get(strategy)
            if launch is None:
                return Outcome(REFUSED, {}, f"FSDP sharding {strategy}: ours are FULL_SHARD (fsdp) and NO_SHARD (ddp)")
        elif value == "MULTI_GPU":
            launch = "ddp"
        elif value == "NO":
            return Outcome(MAPPED, {"launch": None}, "one process: no launch")
        else:
            return Outcome(REFUSED, {}, f"{value}: our launches are ddp, fsdp and DeepSpeed ZeRO 0-3")
        return Outcome(MAPPED, {"launch": launch}, f"configs/accelerate/{launch}.yaml")
    if name in ("deepspeed_config.zero_stage", "fsdp_config.fsdp_sharding_strategy"):
        return Outcome(IGNORED, {}, "decides the launch (distributed_type's row)")
    return None


# ---------------------------------------------------------------------------------------------------------------
# commands


def program_of(command: reading.Command, config: list[reading.Setting]) -> Program | None:
    name = Path(command.program).name if command.program.endswith(".py") else command.program
    if name == "train_reranker.py":
        model_type = next((s.value for s in config if s.name == "model_type"), None)
        if any(s.name == "config" for s in command.settings):
            return tables.RAG_RERANKERS.get(model_type, tables.RAG_RERANKERS["bert_encoder"])
        return tables.HOPWEAVER
    return tables.PROGRAMS.get(name)


def command_translation(command: reading.Command) -> Translation | None:
    """A launched command's translation; None for a command that trains nothing (listed as another command)."""
    folder = command.path.parent
    config_ref = next((s for s in command.settings if s.name == "config" and isinstance(s.value, str)), None)
    config_path = reading.find_beside(folder, config_ref.value) if config_ref else None
    config = reading.yaml_settings(config_path) if config_path else []
    program = program_of(command, config)
    if program is None:
        return None
    run = Translation(command.path, command.line, program.peer, program.name, program.pipeline, program.sections,
                      command.text, why=program.why)
    rows = run.rows
    if program.pipeline is None:
        rows += [Row(source(command.path, s.line), f"--{s.name}", s.value, REFUSED, {}, program.why)
                 for s in command.settings]
        return run
    rows += [Row(source(command.path, command.line), Path(command.program).name, None, MAPPED, {key: value},
                 "what this program trains") for key, value in program.implied.items()]
    machine = rules.ignore("an environment variable of their machine")
    rows += [Row.of(source(command.path, s.line), s.name, s.value, rules.ENVIRONMENT.get(s.name, machine)(s.value, {}))
             for s in command.env]
    rows += launcher_rows(command)
    given = {s.name: s.value for s in command.settings}
    rag_config = program in tables.RAG_RERANKERS.values() and config_ref is not None
    for s in command.settings:
        where, flag = source(command.path, s.line), f"--{s.name}"
        unknown = f"{s.value} is not beside {shown(command.path)}"
        if s.name in DEEPSPEED_FLAGS and isinstance(s.value, str):
            rows += file_rows(where, flag, s.value, reading.find_beside(folder, s.value),
                              lambda p: deepspeed_rows(p)[0], f"{unknown}: its DeepSpeed settings are unknown")
        elif s.name == "config" and (rag_config or config_path is not None and program is tables.RAG_EMBEDDING):
            rows += file_rows(where, flag, s.value, config_path, lambda p: config_rows(p, program, config),
                              f"{unknown}: its settings are unknown")
        else:
            rows.append(Row.of(where, flag, s.value, tables.outcome(program, s.name, s.value, given)))
    return run


def file_rows(where: str, flag: str, value, found: Path | None, rows_of, missing: str) -> list[Row]:
    """A setting naming a file: its row and then the file's rows, or refused (`missing`) where it is not there."""
    if found is None:
        return [Row(where, flag, value, REFUSED, {}, missing)]
    return [Row(where, flag, value, MAPPED, {}, f"{shown(found)}: its rows follow"), *rows_of(found)]


def launcher_rows(command: reading.Command) -> list[Row]:
    rows = []
    has_deepspeed = any(s.name in DEEPSPEED_FLAGS for s in command.settings)
    for s in command.launcher_settings:
        where = source(command.path, s.line)
        if s.name == "config_file":
            rows += file_rows(where, "--config_file", s.value, reading.find_beside(command.path.parent, str(s.value)),
                              accelerate_rows, f"{s.value} is not beside {shown(command.path)}: its launch is unknown "
                              "(name ours: --set launch=ddp|fsdp|deepspeed_zero0..3)")
        elif s.name in ("nproc_per_node", "num_processes", "num_gpus"):
            if command.launcher == "torchrun" and not has_deepspeed and int(plain_int(s.value)) > 1:
                rows.append(Row(where, f"--{s.name}", s.value, MAPPED, {"launch": "ddp"},
                                "torchrun's processes: data parallel (configs/accelerate/ddp.yaml); "
                                + rules.NUM_PROCESSES.format(v=s.value)))
            else:
                rows.append(Row(where, f"--{s.name}", s.value, IGNORED, {}, rules.NUM_PROCESSES.format(v=s.value)))
        else:
            rows.append(Row(where, f"--{s.name}", s.value, REFUSED, {}, f"a {command.launcher} option we do not know"))
    return rows


def plain_int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def config_rows(path: Path, program: Program, settings: list[reading.Setting]) -> list[Row]:
    given = {s.name: s.value for s in settings}
    return [Row.of(source(path, s.line), s.name, s.value, tables.outcome(program, s.name, s.value, given))
            for s in settings]


def inranker_translation(path: Path, commands: list[reading.Command]) -> Translation:
    """InRanker's doc: its first InRankerTrainer call is stage 1, the next stage 2 (one run of our pipeline)."""
    stages = (tables.INRANKER_STAGE1, tables.INRANKER_STAGE2)
    run = Translation(path, commands[0].line, stages[0].peer, "InRankerTrainer", "inranker",
                      ("stage1.train", "stage2.train"), "; ".join(c.text for c in commands),
                      why="InRanker's two distillation steps: notebook 20's stage 1 and stage 2")
    for command, program in zip(commands, stages):
        given = {s.name: s.value for s in command.settings}
        for s in command.settings:
            outcome = tables.outcome(program, s.name, s.value, given)
            settings = {run.expand(k, program.sections)[0]: v for k, v in outcome.settings.items()}
            run.rows.append(Row(source(path, s.line), s.name, s.value, outcome.status, settings, outcome.reason))
    for command in commands[2:]:
        run.rows.append(Row(source(path, command.line), "InRankerTrainer", None, REFUSED, {},
                            "a third training step: InRanker trains two"))
    return run


def other_row(path: Path, line: int, text: str) -> Row:
    words = text.replace("&&", " ").split()
    script = next((Path(w).name for w in words if w.endswith(".py")), None)
    if script in tables.NOT_TRAINING:
        reason = f"not training: {tables.NOT_TRAINING[script]}"
    elif words and words[0] == "bash" and len(words) > 1 and words[1].endswith(".sh"):
        reason = f"runs {words[1]}: translate that file (--from {words[1]})"
    elif text.startswith("python: "):
        reason = "Python code that trains nothing (inference or data)"
    else:
        reason = "not training: environment setup (install, clone, activate, cd)"
    return Row(source(path, line), "command", text, IGNORED, {}, reason)


def translate(path: str | Path) -> FileTranslation:
    """Every training run of a peer file; a file of no kind we read is a DataFormatError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    suffix = path.suffix.lower()
    if suffix == ".json":
        rows, launch = deepspeed_rows(path)
        return FileTranslation(path, [Translation(path, 1, peer_name(path), "DeepSpeed config", None, (),
                                                  f"DeepSpeed config ({launch})", rows)])
    if suffix in (".yaml", ".yml"):
        return FileTranslation(path, [yaml_translation(path)])
    text = path.read_text(encoding="utf-8")
    if suffix == ".sh":
        commands, others = reading.shell_commands(path, text), []
    elif suffix in (".md", ".rst", ".txt"):
        commands, others = reading.doc_commands(path, text)
    else:
        raise DataFormatError(path, None, None, "not a run file we read (.sh, .yaml, .json, .md, .rst)")
    runs, other_rows = [], [other_row(path, line, t) for line, t in others]
    trainers = [c for c in commands if c.program == "InRankerTrainer"]
    if trainers:
        runs.append(inranker_translation(path, trainers))
    for command in (c for c in commands if c.program != "InRankerTrainer"):
        run = command_translation(command)
        if run is None:
            other_rows.append(other_row(path, command.line, command.text))
        else:
            runs.append(run)
    other_rows.sort(key=lambda r: int(r.source.rsplit(":", 1)[1]))
    return FileTranslation(path, runs, other_rows)


def yaml_translation(path: Path) -> Translation:
    settings = reading.yaml_settings(path)
    given = {s.name: s.value for s in settings}
    if given.keys() & {"distributed_type", "compute_environment"}:
        return Translation(path, 1, peer_name(path), "accelerate config", None, (), "accelerate config",
                           accelerate_rows(path))
    if "model_type" in given:
        program = tables.RAG_RERANKERS.get(given["model_type"])
        if program is None:
            raise DataFormatError(path, next(s.line for s in settings if s.name == "model_type"), "model_type",
                                  f"{given['model_type']!r}: RAG-Retrieval's are bert_encoder and llm_decoder")
    elif "train_type" in given:
        program = tables.RAG_EMBEDDING
    else:
        raise DataFormatError(path, settings[0].line if settings else 1, None,
                              "not a RAG-Retrieval training config (model_type / train_type) nor an accelerate config")
    run = Translation(path, 1, program.peer, program.name, program.pipeline, program.sections,
                      f"{program.name.split(' ')[0]} --config {path.name}", why=program.why)
    run.rows += [Row(source(path, 1), path.name, None, MAPPED, {k: v}, "what this program trains")
                 for k, v in program.implied.items()]
    run.rows += config_rows(path, program, settings)
    return run


def is_peer_config(path: str | Path) -> bool:
    """A YAML file in a peer's format (RAG-Retrieval's training config, an accelerate config), not ours."""
    try:
        doc = reading.yaml_settings(Path(path))
    except (OSError, DataFormatError):
        return False
    names = {s.name.split(".")[0] for s in doc}
    return not names & {"pipeline", "settings", "profile"} and bool(
        names & {"model_type", "train_type", "model_name_or_path", "distributed_type", "compute_environment"})


def peer_flags(pipeline: str) -> dict[str, Program]:
    """The peers' flags that name a setting of `pipeline` (the first program of the pipeline with a rule for it)."""
    out = {}
    for program in tables.ALL:
        if program.pipeline == pipeline:
            for name in program.rules:
                if not name.endswith("()"):
                    out.setdefault(name, program)
    return out


def translate_flags(pipeline: str, sections: tuple[str, ...], given: dict) -> Translation:
    """Peer flags given after the pipeline name (`train rankllm --num_warmup_steps 50`), by the same tables; a
    DeepSpeed config flag brings that file's rows."""
    known = peer_flags(pipeline)
    run = Translation(Path("the command line"), 0, "your flags", "flags", pipeline, sections,
                      " ".join(f"--{k}" for k in given), profile="")
    for name, value in given.items():
        program = known[name]
        where = f"({Path(program.peer).name})"
        if name in DEEPSPEED_FLAGS and isinstance(value, str):
            if not Path(value).is_file():
                run.rows.append(Row(where, f"--{name}", value, REFUSED, {}, f"{value}: no such file"))
                continue
            run.rows.append(Row(where, f"--{name}", value, MAPPED, {}, "its rows follow"))
            run.rows += deepspeed_rows(Path(value))[0]
            continue
        run.rows.append(Row.of(where, f"--{name}", value, tables.outcome(program, name, value, given)))
    return run


def pick(spec: str) -> Translation:
    """The run `--from FILE` (or `FILE:N`, the N-th run of a file with several) trains; a ValueError says why a
    file gives none (no training command, several, or one no pipeline here trains)."""
    path, index = spec, None
    head, sep, tail = spec.rpartition(":")
    if sep and tail.isdigit() and not Path(spec).exists():
        path, index = head, int(tail)
    found = translate(path)
    if index is not None:
        if not 1 <= index <= len(found.runs):
            raise ValueError(f"{spec}: the file has {len(found.runs)} training run(s)")
        return found.runs[index - 1]
    if not found.runs:
        raise ValueError(f"{path}: no training command in it (`rerank-repro translate {path}` lists its commands)")
    if len(found.runs) > 1:
        listing = "; ".join(f"{path}:{i} {r.program} (line {r.line})" for i, r in enumerate(found.runs, 1))
        raise ValueError(f"{path} holds {len(found.runs)} training runs; pick one: {listing}")
    return found.runs[0]


__all__ = ["Row", "Translation", "FileTranslation", "translate", "is_peer_config", "peer_flags", "translate_flags",
           "pick", "peer_files", "markdown_tables", "settings_document", "summary_table", "PEERS", "DOCUMENT", "MAPPED", "REFUSED", "IGNORED", "PROFILE",
           "DEEPSPEED_FLAGS"]


# ---------------------------------------------------------------------------------------------------------------
# the README's tables


def peer_files(folder: Path) -> list[Path]:
    """Every run file of a peers folder (a repository per owner/name folder; its LICENSE and the folder's README
    are not run files)."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name != "LICENSE"
                  and p.parent != Path(folder))


def markdown_tables(folder: Path) -> str:
    """A table per peer: each of its settings (as its files write it) -> ours, refused or ignored, with the files
    it comes from. Built from the translations of every file in `folder`, so it says what the code does."""
    by_peer: dict[str, dict[tuple[str, str], list[str]]] = {}
    counts: dict[str, dict[str, int]] = {}
    for path in peer_files(folder):
        found = translate(path)
        peer = peer_name(path)
        for run in found.runs:
            for row in run.rows:
                if row.peer == "command":
                    continue
                ours = (", ".join(f"`{p}`" for k in row.settings for p in run.expand(k)).replace(
                    f"`{OUTPUT_DIR}`", "the train command's `--output_dir`") or "(read: its rows follow)"
                        if row.status == MAPPED else f"{row.status}: {row.reason}")
                key = (row.peer.replace("|", "\\|"), ours.replace("|", "\\|"))
                files = by_peer.setdefault(peer, {}).setdefault(key, [])
                if shown(path) not in files:
                    files.append(shown(path))
                counts.setdefault(peer, {MAPPED: 0, REFUSED: 0, IGNORED: 0})[row.status] += 1
    out = []
    for peer in sorted(by_peer):
        c = counts[peer]
        out += [f"## {peer}", "",
                f"{c[MAPPED]} settings mapped, {c[REFUSED]} refused, {c[IGNORED]} ignored (over all its files).", "",
                "| their setting | ours | in |", "|---|---|---|"]
        out += [f"| `{name}` | {ours} | {', '.join(files)} |" for (name, ours), files in by_peer[peer].items()]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def settings_document(folder: Path = PEERS) -> str:
    """docs/peer_settings.md: the tables, under a header saying where they come from."""
    return ("# The peers' settings in ours\n\n"
            "Generated by `python -m rerank_lib.peer_runs` from the translation of every run file in `shared/peers/` "
            "(`rerank-repro translate FILE` prints one file's mapping, line by line; `rerank-repro train --from FILE` "
            "trains it). `TRAIN` settings go to each training section the command trains; `<training>` stands for "
            "them in a launch config read alone.\n\n" + markdown_tables(folder))


def summary_table(folder: Path = PEERS) -> str:
    """README's table: per peer, its run files and how many of their settings are mapped, refused, ignored."""
    rows: dict[str, list] = {}
    for path in peer_files(folder):
        runs = translate(path).runs
        counts = [1, sum(r.pipeline is not None for r in runs), sum(r.pipeline is None and not r.why for r in runs),
                  *(sum(r.count(status) for r in runs) for status in (MAPPED, REFUSED, IGNORED))]
        rows[peer_name(path)] = [a + b for a, b in zip(rows.get(peer_name(path), [0] * 6), counts)]
    out = ["| peer | files | training runs | launch configs | settings mapped | refused | ignored |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    out += [f"| {peer} | {' | '.join(map(str, counts))} |" for peer, counts in sorted(rows.items())]
    return "\n".join(out) + "\n"
