"""Release check: are the files under results/ one clean commit's release output, unchanged since?

The release (`bash run_all.sh --release`) writes `<results>/notebooks/<profile>/release.json` last: the commit, the
sha256 of every code file (README.md without its generated numbers block) and of every file of the release under
results/ (`results_manifest`). `release_check` reports failures (a results file edited, deleted or added since, tables
that are not what `build_tables` makes of the records, records not all made by the release commit from a clean tree,
uncommitted results, a missing or failed executed notebook) and stale items (code changed since the release, tables
the changed library would write differently, an older release.json without a results manifest); README's release
section says which the test command and `--strict` fail on:

    python -m rerank_lib.results.release_check [--results DIR] [--profile default] [--repo ROOT] [--strict]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import file_digest
from ..data.errors import DataFormatError
from ..paths import PROJECT_ROOT, results_dir as default_results_dir
from ..settings import PROFILES
from .readme_numbers import replace_block
from .record import load_records
from .tables import build_tables

DIRTY = "-dirty"
RELEASE_FILE = "release.json"
SHOW_FILES = 10  # files named per finding; the rest are counted
#: Per-profile folders under results/: records/<profile>/, notebooks/<profile>/, cache/<profile>/.
PROFILE_FOLDERS = ("records", "notebooks", "cache")
TABLE_FILE = re.compile(r"^(RESULTS|results|REPRODUCTION)(\.(?P<profile>[^/]+))?\.(md|csv|tex)$")
LIBRARY = "rerank_lib/"  # a change here may change how tables are written from the same records
OLD_FORMAT = "release.json has no results manifest (older format): results content not verified"


@dataclass
class ReleaseReport:
    """What the check found. `failures` are always errors; `stale` items are errors only for a strict check."""

    commit: str | None = None  # the release's commit (release.json's, else the records' one commit)
    changed: list[str] = field(default_factory=list)  # code files changed since the release commit
    failures: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)

    def ok(self, strict: bool = False) -> bool:
        return not self.failures and not (strict and self.stale)

    def headline(self) -> str:
        """The sentence README points to: which release the results are, and how far the code moved since."""
        if self.commit is None:
            return "results from no identifiable release"
        return f"results from the release of {self.commit[:12]}; {len(self.changed)} file(s) changed since"

    def lines(self) -> list[str]:
        out = [self.headline()]
        if self.failures:
            out += ["failures:"] + [f"- {f}" for f in self.failures]
        if self.stale:
            out += ["stale (listed; --strict fails on them):"] + [f"- {s}" for s in self.stale]
        return out


def release_check(results_dir: str | os.PathLike, profile: str = "default",
                  repo_root: str | os.PathLike = PROJECT_ROOT, results_committed: bool = True) -> ReleaseReport:
    """Check the profile's results against their release.json and the checkout. `results_committed=False` is for
    the release run itself, which checks its output before anyone could commit it: the files' git state is then
    not asked, their content still is."""
    results_dir, repo_root = Path(results_dir), Path(repo_root)
    report = ReleaseReport()
    try:
        records = load_records(results_dir, profile)
        if not records:
            report.failures.append(f"no records for profile {profile!r} under {_shown(results_dir, 'records/' + profile)}")
    except DataFormatError as err:  # an edited record that no longer parses is a finding, not a crash
        report.failures.append(f"a record cannot be read: {err}")
        records = []
    release = _read_release(results_dir / "notebooks" / profile / RELEASE_FILE, report)
    report.commit = _commits(records, release, report)
    if report.commit is not None:
        report.changed = _code_changes(report.commit, release, repo_root, report)
    if release is not None:
        manifest = release.get("results_files")
        if isinstance(manifest, dict):
            report.failures += _content_changes(manifest, results_manifest(results_dir, profile), results_dir)
        else:
            report.stale.append(OLD_FORMAT)
            if results_committed:
                report.failures += _committed_after_release(results_dir, profile)
    if results_committed:
        report.failures += _uncommitted_results(results_dir, profile, report)
    if records:
        _compare_tables(results_dir, profile, report)
    report.failures += _missing_notebooks({r.pipeline for r in records}, results_dir / "notebooks" / profile,
                                          repo_root / "notebooks")
    return report


# ---------------------------------------------------------------------------------------------- manifests


def results_files(results_dir: str | os.PathLike, profile: str) -> list[str]:
    """The release's files under `results_dir` (posix paths relative to it): what git does not ignore there (every
    file when the folder is not in a git checkout), less other profiles' files and release.json itself."""
    results_dir = Path(results_dir)
    listed = _git_lines(results_dir, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", ".")
    if listed is None:
        listed = [p.relative_to(results_dir).as_posix() for p in results_dir.rglob("*")]
    own_release = f"notebooks/{profile}/{RELEASE_FILE}"
    return sorted({name for name in listed
                   if name != own_release and in_profile(name, profile) and (results_dir / name).is_file()})


def in_profile(name: str, profile: str) -> bool:
    """Whether a results file (path relative to results/) belongs to `profile`'s release: its own folders, figures
    and tables, and files no profile owns (data_summary.md); a smoke run beside the release is no part of it."""
    parts = name.split("/")
    if parts[0] in PROFILE_FOLDERS and len(parts) > 1:
        return parts[1] == profile
    if len(parts) == 1 and (table := TABLE_FILE.match(name)):
        return (table["profile"] or "default") == profile
    if parts[0] == "figures":
        stem = Path(name).stem
        return stem.endswith(f"_{profile}") or not any(stem.endswith(f"_{other}") for other in PROFILES)
    return True


def results_manifest(results_dir: str | os.PathLike, profile: str) -> dict[str, str]:
    """{path relative to results/: sha256} of the release's files (see `results_files`), for release.json."""
    return {name: file_digest(Path(results_dir) / name)[0] for name in results_files(results_dir, profile)}


def code_manifest(repo_root: str | os.PathLike = PROJECT_ROOT) -> dict[str, str] | None:
    """{path: sha256} of every file outside results/ that git does not ignore, tracked or not (README.md without its
    generated numbers block), so that a checkout without the release commit in its history, or with uncommitted
    changes, can still be compared with the code that ran. None outside a git checkout."""
    listed = _git_lines(Path(repo_root), "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", ".",
                        ":(exclude)results")
    if listed is None:
        return None
    return {name: _code_hash(Path(repo_root) / name) for name in sorted(set(listed)) if (Path(repo_root) / name).is_file()}


def _code_hash(path: Path) -> str:
    data = path.read_bytes()
    if path.name == "README.md" and path.parent.name != "results":
        data = _without_numbers(data)
    return hashlib.sha256(data).hexdigest()


def _without_numbers(data: bytes) -> bytes:
    """README.md without the block the release rewrites (the whole file when it has none)."""
    try:
        return replace_block(data.decode("utf-8"), "").encode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return data


# ---------------------------------------------------------------------------------------------- the checks


def _read_release(path: Path, report: ReleaseReport) -> dict | None:
    if not path.is_file():
        report.failures.append(f"no {path.name} under notebooks/{path.parent.name}/ of the results: these records are "
                               "not a release run's output (bash run_all.sh --release)")
        return None
    try:
        release = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        report.failures.append(f"{path.name} cannot be read: {err}")
        return None
    if not isinstance(release, dict) or not isinstance(release.get("commit"), str):
        report.failures.append(f"{path.name} names no commit")
        return None
    return release


def _commits(records, release: dict | None, report: ReleaseReport) -> str | None:
    """The release commit; the failures of records that are not all made by it from a clean tree."""
    commits = Counter(r.git_commit.removesuffix(DIRTY) for r in records)
    if len(commits) > 1:
        made_by = ", ".join(f"{c[:12]} ({n} records)" for c, n in sorted(commits.items()))
        report.failures.append(f"records made by {len(commits)} commits: {made_by}")
    for r in records:
        if r.git_commit.endswith(DIRTY):
            report.failures.append(f"{r.stem}: made from a dirty tree ({r.git_commit[:12]}{DIRTY})")
    if commits.get("unknown"):
        report.failures.append(f"{commits['unknown']} record(s) name no git commit ('unknown')")
    if release is not None:
        named = [c for c in commits if c != release["commit"]]
        if named:
            report.failures.append(f"records made by {', '.join(c[:12] for c in sorted(named))}, not by the release "
                                   f"commit {release['commit'][:12]} that release.json names")
        return release["commit"]
    known = [c for c in commits if c != "unknown"]
    return known[0] if len(known) == 1 else None


def _code_changes(commit: str, release: dict | None, repo_root: Path, report: ReleaseReport) -> list[str]:
    """Files outside results/ that differ between the release commit and the checkout (working tree), listed as
    stale with how each differs: committed since, uncommitted, untracked."""
    manifest = (release or {}).get("code_files")
    if isinstance(manifest, dict):
        now = code_manifest(repo_root)
        changed = None if now is None else sorted(n for n in set(manifest) | set(now) if manifest.get(n) != now.get(n))
    else:
        changed = _changed_since_commit(commit, repo_root)
    if changed is None:
        report.failures.append(f"commit {commit[:12]} is not in the repository at {repo_root.name}/ and release.json has "
                               "no code manifest: the code that made the results cannot be compared with this checkout")
        return []
    if changed:
        states = _git_states(repo_root, ".", ":(exclude)results") or {}
        shown = [f"{name} ({states.get(name, 'committed since')})" for name in changed]
        report.stale.append(f"{len(changed)} file(s) outside results/ changed since the release commit {commit[:12]}: "
                            + _some(shown))
    return changed


def _changed_since_commit(commit: str, repo_root: Path) -> list[str] | None:
    """Without a manifest: `git diff` of the commit against the working tree, plus untracked files."""
    diff = _git_lines(repo_root, "diff", "-z", "--name-only", commit, "--", ".", ":(exclude)results")
    untracked = _git_lines(repo_root, "ls-files", "-z", "--others", "--exclude-standard", "--", ".", ":(exclude)results")
    if diff is None or untracked is None:
        return None
    changed = set(diff) | set(untracked)
    if "README.md" in changed and (repo_root / "README.md").is_file():
        old = subprocess.run(["git", "show", f"{commit}:README.md"], cwd=repo_root, capture_output=True, timeout=60)
        if old.returncode == 0 and _without_numbers(old.stdout) == _without_numbers((repo_root / "README.md").read_bytes()):
            changed.discard("README.md")  # the release writes README's generated numbers after its records
    return sorted(changed)


def _content_changes(manifest: dict, now: dict, results_dir: Path) -> list[str]:
    out = []
    for name in sorted(set(manifest) | set(now)):
        if name not in now:
            out.append(f"{_shown(results_dir, name)}: deleted since the release (release.json lists it)")
        elif name not in manifest:
            out.append(f"{_shown(results_dir, name)}: not part of the release (added after it; release.json does not list it)")
        elif manifest[name] != now[name]:
            out.append(f"{_shown(results_dir, name)}: edited since the release (its sha256 differs from release.json's)")
    return out


def _committed_after_release(results_dir: Path, profile: str) -> list[str]:
    """Older release.json: the release's files changed by commits after the one that last wrote release.json."""
    release = f"notebooks/{profile}/{RELEASE_FILE}"
    last = _git_lines(results_dir, "log", "-z", "-1", "--format=%H", "--", release)
    if not last:
        return []
    changed = _git_lines(results_dir, "diff", "-z", "--name-only", "--relative", last[0].strip(), "HEAD", "--", ".") or []
    return [f"{_shown(results_dir, name)}: changed by a commit after the release's results ({last[0].strip()[:12]})"
            for name in sorted(changed) if in_profile(name, profile)]


def _uncommitted_results(results_dir: Path, profile: str, report: ReleaseReport) -> list[str]:
    states = _git_states(results_dir, ".")
    if states is None:
        report.stale.append(f"{results_dir.name}/ is not in a git checkout: whether its files are committed is not checked")
        return []
    top = _git_lines(results_dir, "rev-parse", "--show-prefix")
    prefix = top[0].strip() if top else ""
    out = []
    for name, state in sorted(states.items()):
        inside = name[len(prefix):] if name.startswith(prefix) else None
        if inside is not None and in_profile(inside, profile):
            out.append(f"{_shown(results_dir, inside)}: {state} (a release's results are committed as it wrote them)")
    return out


def _compare_tables(results_dir: Path, profile: str, report: ReleaseReport) -> None:
    """Rebuild the tables from the records with build_tables (as 99_results does) and compare them with the files.
    A difference is stale, not a failure, when the library changed since the release (it may write other tables
    from the same records); results files edited by hand are caught by their sha256 then."""
    with tempfile.TemporaryDirectory(prefix="release-check-") as tmp:
        (Path(tmp) / "records").symlink_to((results_dir / "records").resolve(), target_is_directory=True)
        built = build_tables(tmp, profile)
        differ = [path.name for path in built.values()
                  if not (results_dir / path.name).is_file() or (results_dir / path.name).read_bytes() != path.read_bytes()]
    if not differ:
        return
    library = [name for name in report.changed if name.startswith(LIBRARY)]
    what = (f"{', '.join(_shown(results_dir, name) for name in differ)} differ from what build_tables makes of the "
            f"records (the tables 99_results writes)")
    if library:
        report.stale.append(f"{what}; the library changed since the release ({_some(library)}), so a new release "
                            "may write them so")
    else:
        report.failures.append(what)


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


# ---------------------------------------------------------------------------------------------- git


def _git_lines(cwd: Path, *args: str) -> list[str] | None:
    """A git command's NUL- (with -z) or newline-separated output; None when git is missing or the command fails
    (not a checkout, an unknown commit)."""
    git = shutil.which("git")
    if git is None or not cwd.is_dir():
        return None
    try:
        out = subprocess.run([git, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return [item for item in out.stdout.split("\0" if "-z" in args else "\n") if item.strip()]


def _git_states(cwd: Path, *pathspec: str) -> dict[str, str] | None:
    """{path relative to the repository root: 'uncommitted' | 'untracked' | 'deleted, not committed'} for the files
    `git status` reports under the pathspec; None outside a checkout."""
    items = _git_lines(cwd, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *pathspec)
    if items is None:
        return None
    states, skip = {}, False
    for item in items:
        if skip:  # the source path of a rename or copy
            skip = False
            continue
        code, name = item[:2], item[3:]
        skip = code[0] in "RC"
        states[name] = ("untracked" if code == "??" else
                        "deleted, not committed" if "D" in code else "uncommitted")
    return states


def _shown(results_dir: Path, name: str) -> str:
    return f"{results_dir.name}/{name}"


def _some(names: list[str]) -> str:
    return ", ".join(names[:SHOW_FILES]) + (f" and {len(names) - SHOW_FILES} more" if len(names) > SHOW_FILES else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rerank_lib.results.release_check", description=__doc__.split("\n")[0])
    parser.add_argument("--results", default=None, help="results folder (default: $RERANK_RESULTS_DIR or results/)")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--repo", default=str(PROJECT_ROOT), help="the git checkout the records' commit belongs to")
    parser.add_argument("--strict", action="store_true",
                        help="fail on stale items too (code changed since the release, an older release.json)")
    args = parser.parse_args(argv)
    report = release_check(default_results_dir(args.results), args.profile, args.repo)
    for line in report.lines():
        print(line)
    if report.failures:
        print(f"release check: {len(report.failures)} failure(s), {len(report.stale)} stale item(s)")
    elif report.stale:
        print(f"release check: {'failed (--strict)' if args.strict else 'passed'} with {len(report.stale)} "
              f"stale item(s)")
    else:
        print("release check: passed")
    return 0 if report.ok(args.strict) else 1


if __name__ == "__main__":
    sys.exit(main())
