"""The release run: one command that regenerates a profile's records, executed notebooks, tables and figures from a
clean commit, with every training run made afresh.

`bash run_all.sh --release` (= `python -m rerank_lib.release --profile default`), as README's release section says:
a clean checkout only; the profile's previous records, executed notebooks and figures removed; every notebook run
with a fresh cache folder in which only the input caches (INPUT_CACHES) are linked; then the tables, README's numbers
block and, last, `release.json`; it ends with the strict release check (rerank_lib.results.release_check).
"""
from __future__ import annotations

import argparse
import datetime as dt
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


def head_commit(root: Path = PROJECT_ROOT) -> str:
    """HEAD's full hash; a ReleaseError when the checkout has changes (tracked or untracked, ignored files aside)."""
    def git(*args):
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        if done.returncode != 0:
            raise ReleaseError(f"git {' '.join(args)} failed in the project checkout: {done.stderr.strip()}")
        return done.stdout.strip()

    changes = git("status", "--porcelain")
    if changes:
        shown = "\n  ".join(changes.splitlines()[:10])
        raise ReleaseError("a release runs from a clean commit; commit or stash these changes first:\n  " + shown)
    return git("rev-parse", "HEAD")


def release_cache(cache_root: Path, commit: str) -> Path:
    """`<cache_root>/release/<commit[:12]>` holding links to the input caches only; a folder left by an earlier
    attempt at the same commit is emptied first, so no training output of that attempt is reused. Earlier releases'
    folders are removed too: each holds that release's checkpoints (about 22 GB for the default profile), which no
    later release may reuse, and keeping them filled the disk. Removing a folder unlinks its links, never the inputs."""
    folder = cache_root / "release" / commit[:12]
    for stale in sorted(folder.parent.glob("*")) if folder.parent.is_dir() else ():
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale)
    folder.mkdir(parents=True)
    for name in INPUT_CACHES:
        source = cache_root / name
        source.mkdir(parents=True, exist_ok=True)
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


def release(profile: str = "default", root: Path = PROJECT_ROOT, notebooks: Path | None = None) -> dict:
    """Run the release; returns the summary written to release.json. Raises ReleaseError on a dirty checkout or a
    failed notebook (the failing notebook's executed copy is kept as *.failed.ipynb)."""
    from .results import build_tables, readme_numbers
    from .runner import NOTEBOOKS, run_all

    from .results.release_check import code_manifest, release_check, results_manifest

    commit = head_commit(root)
    code_files = code_manifest(root)
    results = default_results_dir()
    cache_root = Path(os.environ.get("RERANK_CACHE_DIR") or root / ".cache")
    before = input_listing(cache_root)
    removed = clear_outputs(results, profile)
    os.environ["RERANK_CACHE_DIR"] = str(release_cache(cache_root, commit))
    started, start = dt.datetime.now(dt.timezone.utc), time.time()
    try:
        runs = run_all(profile, folder=notebooks or NOTEBOOKS)
    finally:
        os.environ["RERANK_CACHE_DIR"] = str(cache_root)
    failed = [r for r in runs if not r.ok]
    if failed:
        raise ReleaseError(f"the release stopped: {failed[0].error}")
    build_tables(results, profile)
    if profile == "default" and (root / "README.md").exists():  # README's timings and headline numbers
        readme_numbers.update_readme(root / "README.md", results, profile, release_commit=commit)
    after = input_listing(cache_root)
    summary = {
        "profile": profile, "commit": commit, "started": started.isoformat(timespec="seconds"),
        "wall_s": round(time.time() - start, 1),
        "notebooks": {r.name: round(r.wall_s, 1) for r in runs},
        "removed_before_run": removed,
        "inputs_found": {k: v for k, v in before.items() if v},
        "inputs_made": {k: sorted(set(after[k]) - set(before[k])) for k in INPUT_CACHES if set(after[k]) - set(before[k])},
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
    args = parser.parse_args(argv)
    try:
        summary = release(args.profile)
    except ReleaseError as err:
        print(f"[release] {err}", file=sys.stderr)
        return 1
    print(f"[release] {len(summary['notebooks'])} notebooks from {summary['commit'][:12]} in {summary['wall_s']:.0f} s; "
          f"see results/notebooks/{args.profile}/release.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
