"""The commands and configs inside a peer's run file, read as its users run them.

A shell script is read the way bash runs it, far enough for training scripts: comments dropped, line
continuations joined, `NAME=value` / `export NAME=value` remembered and `$NAME` / `${NAME}` expanded (a name the
script never sets stays as written), `eval $cmd` runs the command the variable holds, `nohup`, `VAR=x` prefixes,
redirections and `&` are taken off. A markdown or reStructuredText document gives its fenced / `code-block`
commands (shell) and its `InRankerTrainer(...)` calls (Python). A YAML file is a training config (its top-level
keys) or an accelerate config; a JSON file is a DeepSpeed config. Every setting keeps its file and line.
"""
from __future__ import annotations

import ast
import itertools
import json
import re
import shlex
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..data.errors import DataFormatError

LAUNCHERS = ("accelerate", "torchrun", "deepspeed", "python", "python3")
_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass(frozen=True)
class Setting:
    """One setting as the peer's file gives it: name (a flag without dashes, a YAML key or a dotted JSON path),
    value (a string, a list of strings for several words, None for a bare switch, or the YAML/JSON value)."""

    name: str
    value: object
    line: int


@dataclass
class Command:
    """A command line of the file (or a config file, or a Python call): the program and its settings."""

    path: Path
    line: int
    program: str  # script or module run (train_rankllm.py, FlagEmbedding.finetune...), a config's kind, a call
    text: str  # as shown in the mapping
    settings: list[Setting] = field(default_factory=list)
    env: list[Setting] = field(default_factory=list)  # VAR=x prefixes and the script's exports
    launcher: str | None = None  # accelerate / torchrun / deepspeed / python
    launcher_settings: list[Setting] = field(default_factory=list)  # --config_file, --nproc_per_node ...


def expand(text: str, variables: dict) -> str:
    return _VAR.sub(lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), text)


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, line) with backslash-newline continuations joined and whole-line comments dropped."""
    out, buffer, start = [], "", None
    for number, raw in enumerate(text.splitlines(), 1):
        if not buffer and raw.strip().startswith("#"):
            continue
        start = start or number
        if raw.rstrip().endswith("\\"):
            buffer += raw.rstrip()[:-1] + " "
            continue
        out.append((start, buffer + raw))
        buffer, start = "", None
    if buffer.strip():
        out.append((start, buffer))
    return out


def split_flags(tokens: list[str], line: int) -> list[Setting]:
    """`--a 1 --b --c x y --d=2` -> a=1, b=None (switch), c=[x, y], d=2 (one dash works too: `-mode all`)."""
    out, i = [], 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("-") or _is_number(token):
            raise ValueError(f"{token!r} is not a flag")
        name, eq, value = token.lstrip("-").partition("=")
        i += 1
        if eq:
            out.append(Setting(name, value, line))
            continue
        values = []
        while i < len(tokens) and not (tokens[i].startswith("-") and not _is_number(tokens[i])):
            values.append(tokens[i])
            i += 1
        out.append(Setting(name, None if not values else values[0] if len(values) == 1 else values, line))
    return out


def _is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def shell_commands(path: Path, text: str, first_line: int = 1, variables: dict | None = None) -> list[Command]:
    """The launcher commands (accelerate launch / torchrun / deepspeed / python ...) of a shell text, expanded."""
    variables = dict(variables or {})
    exports: list[Setting] = []
    commands = []
    for offset, line in logical_lines(text):
        number = first_line + offset - 1
        stripped = line.strip()
        if not stripped:
            continue
        inner = re.sub(r"^(if .*?;\s*then|then|else|fi)\b\s*", "", stripped)  # if [ -z "$X" ]; then export X=...
        try:
            tokens = shlex.split(expand(inner, variables), comments=True)
        except ValueError:
            continue  # not a command line we can read (a heredoc, a bracket test): it runs no training
        exported = tokens[:1] == ["export"]
        assignment = tokens[1:] if exported else tokens
        if len(assignment) == 1 and re.match(r"^[A-Za-z_]\w*=", assignment[0]):
            name, _, value = assignment[0].partition("=")
            variables[name] = value
            if exported:
                exports.append(Setting(name, value, number))
            continue
        if tokens[:1] == ["eval"]:  # bash: the expansion is split into words, joined, then parsed again
            tokens = shlex.split(" ".join(expand(inner[5:], variables).split()), comments=True)
        command = launched(path, number, tokens)
        if command is not None:
            command.env = [*exports, *command.env]
            command.settings = [Setting(s.name, s.value, flag_line(text, s.name, first_line, number))
                                for s in command.settings]
            commands.append(command)
    return commands


def flag_line(text: str, name: str, first_line: int, number: int) -> int:
    """The line where `--name` is written: inside the command's own lines, else (a flag the command takes from a
    variable) its first place in the text."""
    lines = text.splitlines()
    end = number - first_line
    while end < len(lines) - 1 and lines[end].rstrip().endswith("\\"):
        end += 1
    pattern = re.compile(rf"(^|\s)-{{1,2}}{re.escape(name)}(=|\s|$)")
    for index in (*range(number - first_line, end + 1), *range(len(lines))):
        if pattern.search(lines[index]):
            return first_line + index
    return number


def launched(path: Path, line: int, tokens: list[str]) -> Command | None:
    """The command that `tokens` launch, or None when they launch no Python program (mkdir, echo, pip ...)."""
    env = []
    while tokens and re.match(r"^[A-Za-z_]\w*=", tokens[0]):
        name, _, value = tokens.pop(0).partition("=")
        env.append(Setting(name, value, line))
    if tokens[:1] == ["nohup"]:
        tokens = tokens[1:]
    tokens = [t for t in tokens if t not in ("&", "&&") and not re.match(r"^\d?>", t)]
    if not tokens or tokens[0] not in LAUNCHERS:
        return None
    launcher, rest = tokens[0], tokens[1:]
    if launcher == "accelerate":
        if rest[:1] != ["launch"]:
            return None
        rest = rest[1:]
    launcher_tokens = []
    while rest and rest[0].startswith("-") and rest[0] != "-m":
        launcher_tokens.append(rest.pop(0))
        if rest and not rest[0].startswith("-") and "=" not in launcher_tokens[-1] and not rest[0].endswith(".py"):
            launcher_tokens.append(rest.pop(0))
    if not rest:
        return None
    if rest[0] == "-m":
        program, rest = rest[1], rest[2:]
    else:
        program, rest = rest[0], rest[1:]
    if launcher.startswith("python") and not program.endswith(".py") and "." not in program:
        return None
    text = " ".join(shlex.quote(t) for t in tokens)
    try:
        settings = split_flags(rest, line)
    except ValueError as err:
        raise DataFormatError(path, line, program, f"cannot read its arguments: {err}") from None
    return Command(path, line, program, text, settings, env, launcher if launcher != "python3" else "python",
                   split_flags(launcher_tokens, line))


def fenced_blocks(text: str) -> list[tuple[int, str, str]]:
    """(first line, language, body) of markdown ``` fences and reStructuredText `.. code-block::` blocks."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        fence = re.match(r"^\s*```(\w*)", lines[i])
        block = re.match(r"^\s*\.\. code-block::\s*(\w*)", lines[i])
        if fence:  # up to the closing fence
            body = list(itertools.takewhile(lambda line: not re.match(r"^\s*```", line), lines[i + 1:]))
            out.append((i + 2, fence.group(1).lower(), "\n".join(body)))
            i += len(body) + 1
        elif block:  # the lines indented deeper than the directive, and blank ones; leading blank lines dropped
            indent = len(lines[i]) - len(lines[i].lstrip())
            body = list(itertools.takewhile(lambda line: not line.strip() or len(line) - len(line.lstrip()) > indent,
                                            lines[i + 1:]))
            blank = len(list(itertools.takewhile(lambda line: not line.strip(), body)))
            out.append((i + 2 + blank, block.group(1).lower(), "\n".join(body[blank:])))
            i += len(body)
        i += 1
    return out


def doc_commands(path: Path, text: str) -> tuple[list[Command], list[tuple[int, str]]]:
    """The training commands of a document's code blocks, and (line, text) of every other command it shows."""
    commands, others = [], []
    for start, language, body in fenced_blocks(text):
        if language == "python" or "InRankerTrainer(" in body:
            try:
                tree = ast.parse(textwrap.dedent(body))
            except SyntaxError:  # an excerpt with lines left out: code to read, no training command
                continue
            commands += python_calls(path, textwrap.dedent(body), tree, start)
            others += [(start + n.lineno - 1, f"python: {ast.unparse(n.func)}(...)") for n in ast.walk(tree)
                       if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id != "InRankerTrainer"
                       and n.func.id[:1].isupper()]
            continue
        if language not in ("", "bash", "shell", "sh", "console") or (language == "" and not re.search(
                r"\b(accelerate|torchrun|deepspeed|python)\b", body)):
            continue
        body = re.sub(r"\\[ \t]+#[^\n]*\n", "\\\n", body)  # `--flag 1 \    # a note` (LocalRQA's docs)
        found = shell_commands(path, body, start)
        commands += found
        ran = {c.line for c in found}
        for offset, line in logical_lines(body):
            if line.strip() and start + offset - 1 not in ran and line.strip()[0] not in "{}[]\"":
                others.append((start + offset - 1, " ".join(line.split())))
    return commands, others


def python_calls(path: Path, body: str, tree: ast.AST, start: int) -> list[Command]:
    """Each `InRankerTrainer(...)` of a Python block, its keyword arguments as settings, then the trainer's data
    method calls (load_msmarco_dataset, load_custom_dataset) as settings of that command."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "InRankerTrainer":
            settings = [Setting(k.arg, ast.literal_eval(k.value), start + k.lineno - 1) for k in node.keywords]
            out.append(Command(path, start + node.lineno - 1, "InRankerTrainer", ast.get_source_segment(body, node)
                               .split("\n")[0] + " ...)", settings, launcher="python"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr.startswith("load_") \
                and out:
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
            owner = [c for c in out if c.line <= start + node.lineno - 1][-1]
            owner.settings.append(Setting(f"{node.func.attr}()", kwargs or None, start + node.lineno - 1))
    out.sort(key=lambda c: c.line)
    return out


def yaml_settings(path: Path) -> list[Setting]:
    """The top-level keys of a YAML file (a nested mapping flattened to dotted names), each with its line."""
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text)
        values = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise DataFormatError(path, mark.line + 1 if mark else None, None, f"not YAML: {err}") from None
    if not isinstance(values, dict):
        raise DataFormatError(path, 1, None, "expected a mapping of settings")
    return _flatten(node, values)


def _flatten(node, values, prefix: str = "") -> list[Setting]:
    out = []
    for key_node, value_node in node.value:
        name, value = prefix + key_node.value, values[key_node.value]
        if isinstance(value, dict) and value:
            out += _flatten(value_node, value, name + ".")
        else:
            out.append(Setting(name, value, key_node.start_mark.line + 1))
    return out


def json_settings(path: Path) -> list[Setting]:
    """The leaves of a JSON file by dotted path, each with its line (the line where its key stands)."""
    text = path.read_text(encoding="utf-8")
    try:
        values = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataFormatError(path, err.lineno, None, f"not JSON: {err.msg}") from None
    lines = text.splitlines()
    out, cursor = [], [0]

    def walk(value, prefix):
        for key, item in value.items():
            name = prefix + key
            while cursor[0] < len(lines) and f'"{key}"' not in lines[cursor[0]]:
                cursor[0] += 1
            line = cursor[0] + 1
            if isinstance(item, dict) and item:
                walk(item, name + ".")
            else:
                out.append(Setting(name, item, line))

    walk(values, "")
    return out


def find_beside(start: Path, reference: str) -> Path | None:
    """A file a run file names (`--config_file configs/x.yaml`, `--deepspeed ../../ds.json`), looked up as its
    users' working directory would have it: from the file's folder, then from each folder above it."""
    for folder in (start, *start.parents):
        candidate = (folder / reference).resolve()
        if candidate.is_file():
            return candidate
        if (folder / "LICENSE").exists():  # the peer repository's root: no further
            break
    return None
