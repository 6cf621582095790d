"""Release check: can the records under results/ be cited as the output of one clean commit of this code?

`release_check(results_dir, profile, repo_root)` returns the problems, one sentence each (empty when there are
none): records made by more than one commit, a record made from a dirty tree, a commit unknown to the repository,
a file outside results/ that differs between the records' commit and HEAD (the code that would be cited is not
the code that ran; where the commit is not in the repository, e.g. a shallow clone, the release's file manifest in
release.json is compared with the checkout instead), and a notebook named for a record's pipeline (`NN_<pipeline>*.ipynb`) without an executed
copy under `<results>/notebooks/<profile>/`. From a shell:

    python -m rerank_lib.results.release_check [--results DIR] [--profile default] [--repo ROOT]

prints them and exits 1 when there is any, 0 when there is none.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from ..paths import PROJECT_ROOT, results_dir as default_results_dir
from .readme_numbers import replace_block
from .record import load_records

DIRTY = "-dirty"
SHOW_FILES = 10  # changed files named per commit; the rest are counted


def release_check(results_dir: str | os.PathLike, profile: str = "default",
                  repo_root: str | os.PathLike = PROJECT_ROOT) -> list[str]:
    """The reasons the profile's records are not one clean commit's executed output; [] when they are."""
    results_dir, repo_root = Path(results_dir), Path(repo_root)
    records = load_records(results_dir, profile)
    if not records:
        return [f"no records for profile {profile!r} under {results_dir / 'records' / profile}"]
    problems = []
    commits = Counter(r.git_commit.removesuffix(DIRTY) for r in records)
    if len(commits) > 1:
        made_by = ", ".join(f"{c[:12]} ({n} records)" for c, n in sorted(commits.items()))
        problems.append(f"records made by {len(commits)} commits: {made_by}")
    for r in records:
        if r.git_commit.endswith(DIRTY):
            problems.append(f"{r.stem}: made from a dirty tree ({r.git_commit[:12]}{DIRTY})")
    for commit in sorted(commits):
        if commit == "unknown":
            problems.append(f"{commits[commit]} record(s) name no git commit ('unknown')")
            continue
        changed = _changed_since(commit, repo_root)
        if changed is None:
            changed = _changed_since_manifest(commit, results_dir / "notebooks" / profile / RELEASE_FILE, repo_root)
        if changed is None:
            problems.append(f"commit {commit[:12]} is not in the repository at {repo_root.name}/ (cannot compare it with HEAD)")
        if changed:
            shown = ", ".join(changed[:SHOW_FILES]) + (f" and {len(changed) - SHOW_FILES} more"
                                                       if len(changed) > SHOW_FILES else "")
            problems.append(f"{len(changed)} file(s) outside results/ differ between the records' commit "
                            f"{commit[:12]} and HEAD: {shown}")
    problems += _missing_notebooks({r.pipeline for r in records}, results_dir / "notebooks" / profile,
                                   repo_root / "notebooks")
    return problems


RELEASE_FILE = "release.json"


def code_manifest(repo_root: str | os.PathLike = PROJECT_ROOT) -> dict[str, str] | None:
    """{path: sha256} of every tracked file outside results/ (README.md without its generated numbers block), so
    that a checkout without the release commit in its history can still be compared with the code that ran."""
    git = shutil.which("git")
    if git is None:
        return None
    out = subprocess.run([git, "ls-files", "-z", "--", ".", ":(exclude)results"], cwd=repo_root,
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        return None
    manifest = {}
    for name in sorted(filter(None, out.stdout.split("\0"))):
        path = Path(repo_root) / name
        if path.is_file():
            manifest[name] = _file_hash(path)
    return manifest


def _file_hash(path: Path) -> str:
    data = path.read_bytes()
    if path.name == "README.md" and path.parent.name != "results":
        try:
            data = replace_block(data.decode("utf-8"), "", source=str(path.name)).encode("utf-8")
        except (ValueError, UnicodeDecodeError):
            pass  # no generated block: the whole file counts
    return hashlib.sha256(data).hexdigest()


def _changed_since_manifest(commit: str, release_file: Path, repo_root: Path) -> list[str] | None:
    """Files that differ between the release's manifest (written at `commit`) and the checkout; None without one."""
    try:
        release = json.loads(release_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    manifest, now = release.get("code_files"), code_manifest(repo_root)
    if release.get("commit") != commit or not isinstance(manifest, dict) or now is None:
        return None
    return sorted(name for name in set(manifest) | set(now) if manifest.get(name) != now.get(name))


def _changed_since(commit: str, repo_root: Path) -> list[str] | None:
    """Files outside results/ that differ between `commit` and HEAD; None when git cannot compare them."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        out = subprocess.run([git, "diff", "--name-only", commit, "HEAD", "--", ".", ":(exclude)results"],
                             cwd=repo_root, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    changed = [line for line in out.stdout.splitlines() if line.strip()]
    if "README.md" in changed and _readme_differs_only_in_numbers(git, commit, repo_root):
        changed.remove("README.md")  # the release writes README's generated numbers after its records
    return changed


def _readme_differs_only_in_numbers(git: str, commit: str, repo_root: Path) -> bool:
    """True when README.md at `commit` and at HEAD are equal outside the block readme_numbers generates."""
    def without_block(rev: str) -> str | None:
        shown = subprocess.run([git, "show", f"{rev}:README.md"], cwd=repo_root, capture_output=True, text=True,
                               timeout=60)
        if shown.returncode != 0:
            return None
        try:
            return replace_block(shown.stdout, "", source=f"README.md at {rev[:12]}")
        except ValueError:
            return None

    old, new = without_block(commit), without_block("HEAD")
    return old is not None and old == new


def _missing_notebooks(pipelines: set[str], executed: Path, sources: Path) -> list[str]:
    """Each pipeline's notebooks (`NN_*<pipeline>*.ipynb` in notebooks/) need an executed copy, not a failed one."""
    problems = []
    notebooks = sorted(sources.glob("[0-9][0-9]_*.ipynb"))
    for pipeline in sorted(pipelines):
        named = [nb for nb in notebooks if pipeline in nb.stem]
        if not named:
            problems.append(f"pipeline {pipeline}: no notebook in notebooks/ is named for it, so none shows how "
                            "its records were made")
        for nb in named:
            if not (executed / nb.name).is_file():
                problems.append(f"pipeline {pipeline}: no executed {nb.name} under notebooks/{executed.name}/ of the results")
            if (executed / nb.name.replace(".ipynb", ".failed.ipynb")).exists():
                problems.append(f"pipeline {pipeline}: {nb.name} has a failed executed copy beside it")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rerank_lib.results.release_check", description=__doc__.split("\n")[0])
    parser.add_argument("--results", default=None, help="results folder (default: $RERANK_RESULTS_DIR or results/)")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--repo", default=str(PROJECT_ROOT), help="the git checkout the records' commit belongs to")
    args = parser.parse_args(argv)
    problems = release_check(default_results_dir(args.results), args.profile, args.repo)
    for problem in problems:
        print(f"- {problem}")
    print(f"release check: {len(problems)} problem(s)" if problems else "release check: passed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
