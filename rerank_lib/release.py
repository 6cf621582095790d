"""The release run: one command that regenerates a profile's records, executed notebooks, tables and figures from a
clean commit, with every training run made afresh.

`bash run_all.sh --release` (= `python -m rerank_lib.release --profile default`), as README's release section says:
a clean checkout only; the profile's previous records, executed notebooks and figures removed; every notebook run
with a fresh cache folder in which only the input caches (INPUT_CACHES) are linked; then the tables, README's numbers
block and, last, `release.json`; it ends with the strict release check (rerank_lib.results.release_check).

`--resume` continues a release that stopped (a crash, a killed session, a machine that sleeps) at the same commit:
the notebooks it finished (listed in `release.progress.json`, written after each one) are kept, the others run with
the same release cache, so a training run it had finished or checkpointed is found, never one of other code. On a
2-core CPU without native bf16 the default release takes hours; nothing of it is lost to an interruption.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .atomic import CHECKSUM_SUFFIX, write_json
from .paths import PROJECT_ROOT, results_dir as default_results_dir

#: Cache folders that hold inputs a release may reuse: they depend on data and fixed models only, never on a
#: training run (downloads, corpus embeddings, teacher scores, de-quantised GGUF models, frozen-LLM features,
#: reader LM scores, LLM-generated queries). Everything else under the cache is made afresh.
INPUT_CACHES = ("data", "embeddings", "teacher", "models", "llm_features", "reader_scores", "synthetic_queries")


class ReleaseError(RuntimeError):
    pass


#: The file a release updates after each finished notebook, so that `--resume` knows what is done; removed when the
#: release ends (its summary is release.json).
PROGRESS_FILE = "release.progress.json"


def head_commit(root: Path = PROJECT_ROOT, allow: tuple[str, ...] = ()) -> str:
    """HEAD's full hash; a ReleaseError when the checkout has changes (tracked or untracked, ignored files aside)
    outside the path prefixes in `allow` (a resumed release's own outputs under results/)."""
    def git(*args):
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        if done.returncode != 0:
            raise ReleaseError(f"git {' '.join(args)} failed in the project checkout: {done.stderr.strip()}")
        return done.stdout.strip()

    changes = "\n".join(line for line in git("status", "--porcelain", "--untracked-files=all").splitlines()
                        if not (allow and line[3:].strip('"').startswith(allow)))
    if changes:
        shown = "\n  ".join(changes.splitlines()[:10])
        raise ReleaseError("a release runs from a clean commit; commit or stash these changes first:\n  " + shown)
    return git("rev-parse", "HEAD")


def release_cache(cache_root: Path, commit: str, resume: bool = False) -> Path:
    """`<cache_root>/release/<commit[:12]>` holding links to the input caches only; a folder left by an earlier
    attempt at the same commit is emptied first, so no training output of that attempt is reused, unless `resume`
    (the same commit's code made it: its finished runs are what this code makes, its checkpoints resume). Earlier
    releases' folders are removed too: each holds that release's checkpoints (about 22 GB for the default profile),
    which no later release may reuse, and keeping them filled the disk. Removing a folder unlinks its links, never
    the inputs."""
    folder = cache_root / "release" / commit[:12]
    for stale in sorted(folder.parent.glob("*")) if folder.parent.is_dir() else ():
        if stale.is_dir() and not stale.is_symlink() and not (resume and stale == folder):
            shutil.rmtree(stale)
    folder.mkdir(parents=True, exist_ok=resume)
    for name in INPUT_CACHES:
        source = cache_root / name
        source.mkdir(parents=True, exist_ok=True)
        if not (folder / name).is_symlink():
            (folder / name).symlink_to(source.resolve(), target_is_directory=True)
    return folder


def input_listing(cache_root: Path) -> dict[str, list[str]]:
    """The entries of each input cache (first level), to tell what a run found from what it made; an entry's
    checksum file (FILE.sha256, see atomic.py) is part of the entry, not one more."""
    return {name: sorted(p.name for p in (cache_root / name).iterdir() if not p.name.endswith(CHECKSUM_SUFFIX))
            if (cache_root / name).is_dir() else [] for name in INPUT_CACHES}


def clear_outputs(results: Path, profile: str) -> list[str]:
    """Remove the profile's records, executed notebooks, figures and derived training files; returns what went."""
    removed = []
    for path in (results / "records" / profile, results / "notebooks" / profile, results / "cache" / profile):
        if path.exists():
            shutil.rmtree(path)
            removed.append(str(path.relative_to(results)))
    for figure in sorted((results / "figures").glob(f"*_{profile}.png")):
        figure.unlink()
        removed.append(str(figure.relative_to(results)))
    return removed


def read_progress(results: Path, profile: str, commit: str) -> dict:
    """The stopped release's progress to resume; a ReleaseError when there is none or another commit made it."""
    path = results / "notebooks" / profile / PROGRESS_FILE
    if not path.is_file():
        raise ReleaseError(f"nothing to resume: {path.name} is not in results/notebooks/{profile}/ (a release writes it "
                           "after its first notebook); run the release without --resume")
    progress = json.loads(path.read_text())
    if progress.get("commit") != commit:
        raise ReleaseError(f"{path.name} is from commit {str(progress.get('commit'))[:12]}, HEAD is {commit[:12]}: "
                           "a release resumes at its own commit only; run it afresh without --resume")
    return progress


def release(profile: str = "default", root: Path = PROJECT_ROOT, notebooks: Path | None = None,
            resume: bool = False) -> dict:
    """Run the release, or with `resume` finish a stopped one at the same commit; returns the summary written to
    release.json. Raises ReleaseError on a dirty checkout or a failed notebook (the failing notebook's executed copy
    is kept as *.failed.ipynb; what finished before it is kept for --resume)."""
    from .results import build_tables, readme_numbers
    from .runner import NOTEBOOKS, list_notebooks, run_all

    from .results.release_check import code_manifest, release_check, results_manifest

    results = default_results_dir()
    own_outputs = ()
    if resume:  # the stopped release's own outputs are the only changes allowed
        inside = results.resolve().relative_to(root.resolve()).as_posix() if results.resolve().is_relative_to(
            root.resolve()) else None
        own_outputs = (f"{inside}/",) if inside else ()
    commit = head_commit(root, allow=own_outputs)
    code_files = code_manifest(root)
    cache_root = Path(os.environ.get("RERANK_CACHE_DIR") or root / ".cache")
    progress_path = results / "notebooks" / profile / PROGRESS_FILE
    if resume:
        progress = read_progress(results, profile, commit)
    else:
        progress = {"commit": commit, "profile": profile, "inputs_before": input_listing(cache_root),
                    "removed_before_run": clear_outputs(results, profile), "attempts": [], "done": {}}
    attempt = {"started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "wall_s": 0.0}
    progress["attempts"].append(attempt)
    os.environ["RERANK_CACHE_DIR"] = str(release_cache(cache_root, commit, resume=resume))
    start = time.time()
    try:
        for book in list_notebooks(None, notebooks or NOTEBOOKS):
            if book.name in progress["done"]:
                print(f"[release] {book.name}: finished by an earlier attempt of this release, kept", flush=True)
                continue
            (run,) = run_all(profile, only=[book.stem], folder=notebooks or NOTEBOOKS)
            attempt["wall_s"] = round(time.time() - start, 1)
            if not run.ok:
                write_json(progress_path, progress)
                raise ReleaseError(f"the release stopped: {run.error} (fix it, commit, and release afresh; or, "
                                   "if nothing needs changing, `--resume`)")
            progress["done"][book.name] = round(run.wall_s, 1)
            write_json(progress_path, progress)
    finally:
        os.environ["RERANK_CACHE_DIR"] = str(cache_root)
    build_tables(results, profile)
    if profile == "default" and (root / "README.md").exists():  # README's timings and headline numbers
        readme_numbers.update_readme(root / "README.md", results, profile, release_commit=commit)
    before, after = progress["inputs_before"], input_listing(cache_root)
    progress_path.unlink()  # the summary below replaces it
    attempts = progress["attempts"]
    summary = {
        "profile": profile, "commit": commit, "started": attempts[0]["started"],
        "wall_s": round(sum(a["wall_s"] for a in attempts), 1),  # notebook time over every attempt
        "attempts": attempts,
        "notebooks": progress["done"],
        "removed_before_run": progress["removed_before_run"],
        "inputs_found": {k: v for k, v in before.items() if v},
        "inputs_made": {k: sorted(set(after[k]) - set(before.get(k, []))) for k in INPUT_CACHES
                        if set(after[k]) - set(before.get(k, []))},
        "code_files": code_files,  # what ran, for a release check in a clone without this commit (shallow)
        "results_files": results_manifest(results, profile),  # what it wrote: every later edit is found
    }
    write_json(results / "notebooks" / profile / "release.json", summary)  # last: it lists every file before it
    report = release_check(results, profile, root, results_committed=False)
    if not report.ok(strict=True):
        raise ReleaseError("the release's own check (strict) failed:\n  " + "\n  ".join(report.failures + report.stale))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default", choices=("smoke", "default", "paper"))
    parser.add_argument("--resume", action="store_true",
                        help="finish a stopped release at the same commit: keep the notebooks it finished and its "
                             "training cache (release.progress.json says which)")
    args = parser.parse_args(argv)
    try:
        summary = release(args.profile, resume=args.resume)
    except ReleaseError as err:
        print(f"[release] {err}", file=sys.stderr)
        return 1
    resumed = f" over {len(summary['attempts'])} attempts" if len(summary["attempts"]) > 1 else ""
    print(f"[release] {len(summary['notebooks'])} notebooks from {summary['commit'][:12]} in {summary['wall_s']:.0f} s"
          f"{resumed}; "
          f"see results/notebooks/{args.profile}/release.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
