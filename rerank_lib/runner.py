"""Run the ordered notebooks headlessly with papermill: the one place that knows about papermill.

`python -m rerank_lib.runner --profile default` (what run_all.sh calls) executes notebooks/NN_*.ipynb in order into
<results>/notebooks/<profile>/ and stops at the first failure, reported in one way whatever failed (a cell's
exception, a dead kernel, a timeout): the cell and its error, the partly executed copy kept as <name>.failed.ipynb.
Each `-p` is checked before anything runs (check_parameters). Kernels it starts get KERNEL_ENV: compact text progress.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import datetime
import difflib
import importlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .atomic import write_json
from .paths import PROJECT_ROOT, results_dir as default_results_dir, shown, shown_in
from .progress import ENV as PROGRESS_ENV
from .settings import PROFILES, paths

NOTEBOOKS = PROJECT_ROOT / "notebooks"


@dataclass
class NotebookRun:
    name: str
    ok: bool
    wall_s: float
    output: Path
    error: str = ""


def list_notebooks(only: list[str] | None = None, folder: Path = NOTEBOOKS) -> list[Path]:
    """Notebooks in name order; `only` keeps those whose name starts with one of the given prefixes (e.g. '01', '99_results')."""
    books = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        books = [b for b in books if any(b.name.startswith(o) or b.stem == o for o in only)]
        if not books:
            raise SystemExit(f"no notebook in {folder} matches {only}")
    return books


def portable_metadata(notebook: Path, source: Path, destination: Path) -> None:
    """papermill stores the input and output paths in the executed notebook's metadata; keep them as `shown` spells
    them (`notebooks/00_data.ipynb`, `<results>/notebooks/...`), and path parameters likewise, so the metadata carries
    none of this machine's paths (the output path names the file the run leaves, not the temporary one it wrote)."""
    import nbformat

    try:
        nb = nbformat.read(str(notebook), as_version=4)
    except Exception:  # a notebook papermill could not finish writing: leave it as it is for the reader
        return
    meta = nb.metadata.get("papermill")
    if meta is None:
        return
    meta["input_path"], meta["output_path"] = shown(source), shown(destination)
    meta["parameters"] = {k: shown_in(v) if isinstance(v, str) else v for k, v in meta.get("parameters", {}).items()}
    nbformat.write(nb, str(notebook))


def run_notebook(path: Path, profile: str, out_dir: Path, parameters: dict | None = None, kernel: str | None = None,
                 timeout_s: int | None = None) -> NotebookRun:
    """Execute one notebook; the executed copy is moved into place only when it succeeds (else kept as *.failed.ipynb).

    papermill saves the copy as each cell starts and ends, so that a kernel that dies (or a timeout) still leaves
    the cells run so far, and the cell it died in, in the .failed.ipynb."""
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    final, failed, tmp = out_dir / path.name, out_dir / f"{path.stem}.failed.ipynb", out_dir / f".{path.stem}.running.ipynb"
    params = {"profile": profile, **(parameters or {})}
    start = time.time()
    try:
        with text_progress():
            pm.execute_notebook(
                str(path), str(tmp), parameters=params, kernel_name=kernel, cwd=str(path.parent),
                progress_bar=False, request_save_on_cell_execute=True, execution_timeout=timeout_s,
            )
    except BaseException as err:  # a cell's exception, a dead kernel, a timeout, a kernel that never started, Ctrl-C
        cell = failing_cell(tmp)
        if tmp.exists():  # what ran, kept for the reader
            portable_metadata(tmp, path, failed)
            os.replace(tmp, failed)
        if not isinstance(err, Exception):
            raise
        if isinstance(err, pm.PapermillExecutionError):
            ename, evalue = err.ename, err.evalue
        else:
            ename, evalue = type(err).__name__, str(err).strip().splitlines()[0] if str(err).strip() else ""
        where = f"cell {cell}" if cell else "before any cell ran"
        return NotebookRun(path.name, False, time.time() - start, failed if failed.exists() else path,
                           f"{path.name}: {where}: {ename}: {evalue}")
    portable_metadata(tmp, path, final)
    os.replace(tmp, final)
    failed.unlink(missing_ok=True)
    return NotebookRun(path.name, True, time.time() - start, final)


def failing_cell(executed: Path) -> str:
    """`N (In[n]) `first line`` of the cell papermill marked failed, or left running (a dead kernel), in a partly
    executed copy: N is its 1-based position in the notebook as written (papermill's injected-parameters and
    error-marker cells not counted); '' when no cell is marked."""
    import nbformat

    try:
        nb = nbformat.read(str(executed), as_version=4)
    except Exception:  # nothing written yet, or cut: the caller says 'before any cell ran'
        return ""
    papermill_tags = {"injected-parameters", "papermill-error-cell-tag"}
    own = [c for c in nb.cells if not papermill_tags & set(c.metadata.get("tags", []))]
    marks = [c.get("metadata", {}).get("papermill", {}) for c in own]
    failed = [i for i, m in enumerate(marks) if m.get("status") in ("failed", "running")]
    started = [i for i, m in enumerate(marks) if m.get("start_time")]  # a dead kernel's cell is the last started
    if not (failed or started):
        return ""
    index = (failed or started)[0 if failed else -1]
    cell = own[index]
    first = next((line for line in cell.source.splitlines() if line.strip()), "")
    count = f" (In[{cell.execution_count}])" if cell.get("execution_count") else ""
    return f"{index + 1}{count} `{first.strip()}`"


# What kernels started by the runner inherit (unless the caller set the variable): compact text progress from
# rerank_lib, no progress bars from the Hugging Face libraries (transformers' "Loading weights" / "Writing model
# shards" bars, one per model load or save), and no tqdm warning that a headless kernel has no widgets.
KERNEL_ENV = {
    PROGRESS_ENV: "text",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "PYTHONWARNINGS": "ignore:IProgress not found",
}


@contextlib.contextmanager
def text_progress():
    """KERNEL_ENV while kernels start (they inherit it); a variable the caller set already is left as it is."""
    added = [name for name in KERNEL_ENV if name not in os.environ]
    for name in added:
        os.environ[name] = KERNEL_ENV[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def run_all(profile: str = "default", only: list[str] | None = None, results_dir: str | os.PathLike | None = None,
            data_root: str | None = None, kernel: str | None = None, extra: dict | None = None,
            folder: Path = NOTEBOOKS) -> list[NotebookRun]:
    """Run the notebooks in order, stopping at the first failure; returns what ran. `extra` (the `-p` parameters)
    is checked first (check_parameters): each notebook gets those of its parameters cell."""
    if profile not in PROFILES:
        raise SystemExit(f"profile must be one of {PROFILES}, not {profile!r}")
    results = Path(results_dir) if results_dir else default_results_dir()
    params = dict(extra or {})
    if results_dir:
        params["results_dir"] = str(Path(results_dir).resolve())
    if data_root:
        params["data_root"] = str(Path(data_root).resolve())
    out_dir = results / "notebooks" / profile
    books = list_notebooks(only, folder)
    given = check_parameters(books, profile, params, set(extra or {}))
    runs: list[NotebookRun] = []
    for book in books:
        print(f"[run_all] {book.name} (profile={profile}) ...", flush=True)
        run = run_notebook(book, profile, out_dir, given[book.name], kernel)
        runs.append(run)
        print(f"[run_all] {book.name}: {'ok' if run.ok else 'FAILED'} in {run.wall_s:.0f} s -> {shown(run.output)}",
              flush=True)
        if not run.ok:
            print(f"[run_all] FAILED {run.error}", file=sys.stderr, flush=True)
            break
    timings = out_dir / "runtimes.json"
    previous = json.loads(timings.read_text()) if timings.exists() else {}
    finished = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")  # the README's run date
    previous.update({r.name: {"ok": r.ok, "wall_s": round(r.wall_s, 1), "finished": finished} for r in runs})
    write_json(timings, dict(sorted(previous.items())))
    return runs


# ----------------------------------------------------------------------------------------------- -p parameters

#: what the runner itself hands every notebook (from --profile, --results-dir, --data-root), not checked per notebook
RUNNER_PARAMETERS = ("profile", "results_dir", "data_root")
_NO_DEFAULT = object()


class ParameterError(SystemExit):
    """A `-p` that no notebook of the run takes, of the wrong type, or that its recipe refuses (one line, exit 1)."""


def notebook_parameters(path: Path) -> dict:
    """{name: default} of the notebook's `parameters`-tagged cell, read with ast (a default that is not a literal
    is `_NO_DEFAULT`: its type is not checked); {} when the notebook has no such cell."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    found: dict = {}
    for cell in cells:
        for node in ast.parse(cell.source).body:
            target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else getattr(
                node, "target", None) if isinstance(node, ast.AnnAssign) else None
            if isinstance(target, ast.Name):
                try:
                    found[target.id] = ast.literal_eval(node.value) if node.value is not None else _NO_DEFAULT
                except ValueError:
                    found[target.id] = _NO_DEFAULT
    return found


#: a default's type -> the types a value for it may have, as an error names them (bool before int: a bool is an int)
_VALUE_TYPES = ((bool, bool, "true or false"), (int, int, "an integer"), (float, (int, float), "a number"),
                (str, str, "a string"), ((list, tuple), (list, tuple), "a JSON list"), (dict, dict, "a JSON object"))


def type_problem(value, default) -> str:
    """Why `value` cannot stand for a parameter whose default is `default`: '' when it can, or when the default
    says nothing (None, or not a literal). An int is a float; a bool is not an int."""
    for kind, accepted, wanted in _VALUE_TYPES:
        if isinstance(default, kind):
            ok = isinstance(value, accepted) and (kind is bool or not isinstance(value, bool))
            return "" if ok else f"expects {wanted} (default {default!r}), got {value!r}"
    return ""


def recipe_call(path: Path, parameters: dict):
    """(module, function name, call) of the notebook's recipe config call, `recipe.config(profile, seed=seed,
    **overrides)`: a call on a module imported from rerank_lib.recipes whose first argument is `profile` and whose
    every argument is a parameter or a literal; None when the notebook builds no recipe config."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    modules: dict[str, str] = {}
    for cell in nb.cells:
        if cell.cell_type != "code" or "parameters" in cell.metadata.get("tags", []):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # IPython syntax (magics): not where a config is built
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "rerank_lib.recipes":
                modules.update({a.asname or a.name: f"rerank_lib.recipes.{a.name}" for a in node.names})
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in modules):
                continue
            values = [*node.args, *(k.value for k in node.keywords)]
            if (node.args and isinstance(node.args[0], ast.Name) and node.args[0].id == "profile"
                    and all(isinstance(v, ast.Constant) or (isinstance(v, ast.Name) and v.id in parameters)
                            for v in values)):
                return modules[node.func.value.id], node.func.attr, node
    return None


def check_with_recipe(path: Path, call, values: dict, keys: list[str]) -> None:
    """Build the notebook's recipe config from the parameters as the notebook will (`recipe_call`): what the recipe
    refuses (an unknown dotted setting in `overrides`, an unknown variant, a setting the recipe derives) ends the
    run now."""
    module, name, node = call

    def value(arg):
        return arg.value if isinstance(arg, ast.Constant) else values[arg.id]

    names = {a.id for a in ast.walk(node) if isinstance(a, ast.Name)} - {node.func.value.id}
    if names - set(values):  # a parameter whose default is no literal: the notebook alone knows its value
        return
    args = [value(a) for a in node.args]
    kwargs: dict = {}
    for keyword in node.keywords:  # `**overrides` (arg None) or `name=value`
        kwargs.update(value(keyword.value) if keyword.arg is None else {keyword.arg: value(keyword.value)})
    try:
        getattr(importlib.import_module(module), name)(*args, **kwargs)
    except Exception as err:
        message = " ".join(str(err).split()) or type(err).__name__
        raise ParameterError(f"-p {', '.join(keys)}: {path.name} builds its settings with {module}.{name}, which "
                             f"refuses them: {type(err).__name__}: {message}") from None


def settings_named(path: Path, parameters: dict, profile: str, key: str) -> list[str]:
    """The dotted settings of the notebook's recipe config called `key` or ending in `.key` (`train.learning_rate`
    for `learning_rate`): what a `-p key` was probably meant to set through `overrides`."""
    call = recipe_call(path, parameters)
    if call is None:
        return []
    module, name, _ = call
    try:
        cfg = getattr(importlib.import_module(module), name)(profile)
    except Exception:  # the hint is a courtesy: a recipe that needs more to build gives none
        return []
    return [p for p in paths(cfg) if p == key or p.endswith(f".{key}")]


def check_parameters(books: list[Path], profile: str, runner_params: dict, user_keys: set[str]) -> dict[str, dict]:
    """The parameters each notebook gets: the runner's own ones, and each `-p` the notebook's parameters cell
    declares. A `-p` that none of `books` declares, or of a type its default rules out, or that the notebook's recipe
    refuses, raises ParameterError naming the key, the notebook(s) and the accepted parameters."""
    declared = {book.name: notebook_parameters(book) for book in books}
    for key in sorted(user_keys):
        if not any(key in names for names in declared.values()):
            accepted = sorted({n for names in declared.values() for n in names} - set(RUNNER_PARAMETERS))
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            if any("overrides" in names for names in declared.values()):
                settings = sorted({s for book in books if "overrides" in declared[book.name]
                                   for s in settings_named(book, declared[book.name], profile, key)})
                example = json.dumps({settings[0] if settings else "<dotted.setting>": runner_params[key]})
                hint += (f"; a recipe setting goes in -p overrides '{example}'"
                         + (f" (settings named {key!r}: {', '.join(settings)})" if len(settings) > 1 else ""))
            raise ParameterError(f"-p {key}: not a parameter of {', '.join(declared)}; accepted: "
                                 f"{', '.join(accepted) or 'none'}{hint}")
    given: dict[str, dict] = {}
    for book in books:
        names = declared[book.name]
        mine = sorted(k for k in user_keys if k in names)
        for key in mine:
            problem = type_problem(runner_params[key], names[key])
            if problem:
                raise ParameterError(f"-p {key}: {book.name} {problem}")
        given[book.name] = {k: v for k, v in runner_params.items() if k not in user_keys or k in names}
        if mine:
            call = recipe_call(book, names)
            used = {a.id for a in ast.walk(call[2]) if isinstance(a, ast.Name)} if call else set()
            if call and used & set(mine):
                values = {**{k: v for k, v in names.items() if v is not _NO_DEFAULT}, **given[book.name],
                          "profile": profile}
                check_with_recipe(book, call, values, sorted(used & set(mine)))
    return given


def parameter_value(text: str):
    """A `-p key value` value as papermill's own CLI reads it: int, float, True/False/None, a JSON list or object,
    else the string itself."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    words = {"true": True, "false": False, "none": None, "null": None}
    if text.lower() in words:
        return words[text.lower()]
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    return text


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The runner's options, shared by `python -m rerank_lib.runner` and `python -m rerank_lib run`."""
    parser.add_argument("--profile", default="default", choices=PROFILES)
    parser.add_argument("--only", nargs="+", metavar="PREFIX",
                        help="notebook name prefixes to run, e.g. 00 01 99 (at least one)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                        help="a parameter of the notebooks' parameters cell, handed to each notebook that declares "
                             "it and checked before anything runs (name, type, the recipe's settings), e.g. -p seed 7 "
                             "or -p overrides '{\"train.max_steps\": 50}' (repeatable)")
    parser.add_argument("--results-dir", help="where records, tables and executed notebooks go (default: results/)")
    parser.add_argument("--data-root", help="data root (default: $RERANK_DATA_DIR, then ../shared/data)")
    parser.add_argument("--kernel", help="Jupyter kernel name (default: the notebook's own)")
    parser.add_argument("--list", action="store_true", help="list the notebooks and exit")
    return parser


def run_from_args(args: argparse.Namespace) -> int:
    """Run (or list) the notebooks the parsed options select; 0 when every notebook passed."""
    if args.list:
        print("\n".join(b.name for b in list_notebooks(args.only)))
        return 0
    extra = {key: parameter_value(value) for key, value in args.parameter}
    reserved = sorted(set(extra) & set(RUNNER_PARAMETERS))
    if reserved:
        raise SystemExit(f"-p {reserved[0]}: use --{reserved[0].replace('_', '-')} instead")
    start = time.time()
    runs = run_all(args.profile, args.only, args.results_dir, args.data_root, args.kernel, extra=extra)
    ok = all(r.ok for r in runs)
    print(f"[run_all] {sum(r.ok for r in runs)}/{len(runs)} notebooks ok, {time.time() - start:.0f} s in all", flush=True)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = add_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
