"""Run the ordered notebooks headlessly with papermill: the one place that knows about papermill.

`python -m rerank_lib.runner --profile default` (what run_all.sh calls) executes notebooks/NN_*.ipynb in order,
injecting `profile` (and `results_dir` / `data_root` when given), and saves each executed copy under
<results>/notebooks/<profile>/. It stops at the first failing notebook, prints the failing cell's error and exits
non-zero; executed copies of the notebooks that passed, and their records, stay as they are. Kernels it starts
get RERANK_PROGRESS=text (unless set otherwise), so executed copies hold compact text progress, not widget state,
and no Hugging Face progress bars (KERNEL_ENV).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .atomic import write_json
from .paths import PROJECT_ROOT, results_dir as default_results_dir, shown, shown_in
from .progress import ENV as PROGRESS_ENV
from .settings import PROFILES

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
    """Execute one notebook; the executed copy is moved into place only when it succeeds (else kept as *.failed.ipynb)."""
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    final, failed, tmp = out_dir / path.name, out_dir / f"{path.stem}.failed.ipynb", out_dir / f".{path.stem}.running.ipynb"
    params = {"profile": profile, **(parameters or {})}
    start = time.time()
    try:
        with text_progress():
            pm.execute_notebook(
                str(path), str(tmp), parameters=params, kernel_name=kernel, cwd=str(path.parent),
                progress_bar=False, request_save_on_cell_execute=False, execution_timeout=timeout_s,
            )
    except pm.PapermillExecutionError as err:
        portable_metadata(tmp, path, failed)
        os.replace(tmp, failed)
        message = f"{path.name}: cell In[{err.exec_count}] raised {err.ename}: {err.evalue}"
        return NotebookRun(path.name, False, time.time() - start, failed, message)
    except BaseException:
        if tmp.exists():
            portable_metadata(tmp, path, failed)
            os.replace(tmp, failed)
        raise
    portable_metadata(tmp, path, final)
    os.replace(tmp, final)
    if failed.exists():
        failed.unlink()
    return NotebookRun(path.name, True, time.time() - start, final)


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
    """Run the notebooks in order, stopping at the first failure; returns what ran."""
    if profile not in PROFILES:
        raise SystemExit(f"profile must be one of {PROFILES}, not {profile!r}")
    results = Path(results_dir) if results_dir else default_results_dir()
    params = dict(extra or {})
    if results_dir:
        params["results_dir"] = str(Path(results_dir).resolve())
    if data_root:
        params["data_root"] = str(Path(data_root).resolve())
    out_dir = results / "notebooks" / profile
    runs: list[NotebookRun] = []
    for book in list_notebooks(only, folder):
        print(f"[run_all] {book.name} (profile={profile}) ...", flush=True)
        run = run_notebook(book, profile, out_dir, params, kernel)
        runs.append(run)
        print(f"[run_all] {book.name}: {'ok' if run.ok else 'FAILED'} in {run.wall_s:.0f} s -> {shown(run.output)}",
              flush=True)
        if not run.ok:
            print(f"[run_all] {run.error}", file=sys.stderr, flush=True)
            break
    timings = out_dir / "runtimes.json"
    previous = json.loads(timings.read_text()) if timings.exists() else {}
    finished = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")  # the README's run date
    previous.update({r.name: {"ok": r.ok, "wall_s": round(r.wall_s, 1), "finished": finished} for r in runs})
    write_json(timings, dict(sorted(previous.items())))
    return runs


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
                        help="a notebook parameter handed to papermill, e.g. -p seed 7 (repeatable)")
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
    reserved = sorted(set(extra) & {"profile", "results_dir", "data_root"})
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
