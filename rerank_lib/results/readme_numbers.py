"""README's timing table and headline numbers, rendered from results/ so the README cannot drift from them.

`python -m rerank_lib.results.readme_numbers` rewrites the block between the two marker comments of README.md
from `<results>/notebooks/<profile>/`'s release.json (the release commit) and runtimes.json (each notebook's last
wall time, written by the runner) and the profile's records: first each paper claim's verdict (results.ledger, the
table of REPRODUCTION.md), then per test set BM25, the best row and its paired tests. A test against the untrained
start is shown only where it says what training did: not for a `+interp` row (fusion with BM25 would get the credit)
nor for a row whose dev selection kept the start. `--check` exits 1 when the README block differs from what would be written; tests/test_reading.py runs the
same comparison. The block names the release commit but not how many files changed since: that count changes with
every commit, so the release check prints it instead of README carrying a number that is soon wrong.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from pathlib import Path

from ..atomic import write_text
from ..paths import PROJECT_ROOT
from .ledger import ledger, summary_lines
from .reading import ALPHA, INTERP, best_rows, significance_word
from .record import Record, kept_start, load_records

BEGIN = "<!-- readme-numbers:begin (python -m rerank_lib.results.readme_numbers; do not edit by hand) -->"
END = "<!-- readme-numbers:end -->"
MEASURE = "nDCG@10"


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _when(runtimes: dict, records: list[Record]) -> str:
    """The day of the newest run: the runner's `finished` stamps when present, else the newest record's `created`."""
    stamps = [v["finished"] for v in runtimes.values() if v.get("finished")] or [r.created for r in records if r.created]
    return max(stamps)[:10] if stamps else "an unrecorded date"


def _test(record: Record, base: str) -> str:
    test = record.significance.get(base, {}).get(MEASURE)
    if not test:
        return "-"
    word = significance_word(test.get("delta"), test.get("p_value"), ALPHA)
    p = test.get("p_value")
    return f"{test['delta']:+.3f}, {word} (p={p:.3f})" if p is not None and p >= 0.001 else \
        f"{test['delta']:+.3f}, {word} (p<0.001)"


def start_test(record: Record) -> str:
    """The test against the untrained start, where it credits training: '= start' for a row that kept it, none for
    a `+interp` row (compared with BM25 only)."""
    if kept_start(record):
        return "= start (dev kept step 0)"
    if record.method.endswith(INTERP):
        return "- (fused with BM25: vs BM25 only)"
    return _test(record, "start")


def machine(records) -> str:
    """The machine(s) the records name, and what the default precision 'auto' ran there (bf16 autocast or fp32)."""
    precisions: dict[str, set] = {}
    for r in records:
        hw = r.hardware or {}
        if hw.get("cpu"):
            where = hw.get("gpu") or f"{hw['cpu']}, {hw.get('cpu_usable') or hw.get('cpu_cores')} cores"
            precisions.setdefault(where, set()).update({hw["native_bf16"]} - {None} if "native_bf16" in hw else set())
    words = {True: "bf16 autocast", False: "fp32"}
    parts = [where + (f" (precision 'auto' ran {' and '.join(words[v] for v in sorted(seen, reverse=True))})"
                      if seen else "") for where, seen in precisions.items()]
    return "on " + "; ".join(parts) if parts else "hardware in each record"


def release_sentence(results_dir: str | os.PathLike, profile: str = "default", commit: str | None = None) -> str:
    """Which release the numbers are: `commit`, else the one release.json names. The count of files changed since
    is not written here (every commit would have to rewrite README): the release check prints it."""
    release = Path(results_dir) / "notebooks" / profile / "release.json"
    manifest = commit is not None  # the release run writes its results manifest after this block
    if commit is None and release.is_file():
        try:
            saved = json.loads(release.read_text(encoding="utf-8"))
        except ValueError:
            saved = {}
        commit, manifest = saved.get("commit"), isinstance(saved.get("results_files"), dict)
    if not isinstance(commit, str):
        return (f"These results are not from a release run (no readable `results/notebooks/{profile}/release.json`; "
                "`bash run_all.sh --release` makes one).")
    verified = ("fails when a file of the release was edited, deleted or added" if manifest else
                "fails when the tables are not what the records give or a results file changed after the release "
                "(this release.json predates the sha256 of every results file)")
    return (f"Results from the release of commit `{commit[:12]}` (`results/notebooks/{profile}/release.json`); "
            f"`python -m rerank_lib.results.release_check` prints how many files changed since, and {verified}.")


def render(results_dir: str | os.PathLike, profile: str = "default", release_commit: str | None = None) -> str:
    """The README block (without the markers): the release it shows, the timing table, then one headline row per
    test set. `release_commit` is for the release run, which writes README before its release.json."""
    results = Path(results_dir)
    timings_path = results / "notebooks" / profile / "runtimes.json"
    runtimes = json.loads(timings_path.read_text(encoding="utf-8")) if timings_path.exists() else {}
    records = load_records(results, profile=profile)
    total = sum(v["wall_s"] for v in runtimes.values())
    ok = sum(bool(v["ok"]) for v in runtimes.values())
    lines = [release_sentence(results, profile, release_commit), "",
             f"The `{profile}` profile's last run of each notebook ({ok} of {len(runtimes)} ok, newest on "
             f"{_when(runtimes, records)}; {machine(records)}) took {_minutes(total)} of notebook time in all "
             f"(`results/notebooks/{profile}/runtimes.json`):", "",
             "| notebook | wall time | ok |", "|---|---:|---|"]
    lines += [f"| `{name.removesuffix('.ipynb')}` | {_minutes(v['wall_s'])} | {'yes' if v['ok'] else 'no'} |"
              for name, v in sorted(runtimes.items())]
    lines += ["", "Does each paper's claim hold? One paired test per claim on this release's records (the full table, with "
                  "sources, published effects and the minimum detectable effect: "
                  f"[`results/REPRODUCTION.md`](results/REPRODUCTION.md)):", "", *summary_lines(ledger(records, results))]
    groups: dict[tuple, list[Record]] = defaultdict(list)
    for r in records:
        if r.metrics.get(MEASURE) is not None:
            groups[(r.dataset, r.split)].append(r)
    lines += ["", f"Headline {MEASURE} per test set (the best row of every pipeline's records; paired t-tests as "
                  f"in the records, significant at p < {ALPHA}):", "",
              f"| test set | queries | best row | {MEASURE} | vs BM25 | vs its start |", "|---|---:|---|---:|---|---|"]
    for (dataset, split), group in sorted(groups.items()):
        best = best_rows(group, MEASURE)[0]
        n = next((t.get("n_queries") for tests in best.significance.values() for t in tests.values()
                  if t.get("n_queries")), None)
        lines.append(f"| {dataset} {split} | {n or '-'} | `{best.pipeline}` `{best.method}` | "
                     f"{best.metrics[MEASURE]:.3f} | {_test(best, 'bm25')} | {start_test(best)} |")
    lines += ["", "Trained rows per pipeline and test set (rows with training queries, `+interp` rows included): the best "
                  "one, and how many of the rows without `+interp` are significantly above their own untrained start (a "
                  "row whose dev selection kept the start is the start and never counts):", "",
              f"| pipeline | test set | best trained row | {MEASURE} | vs BM25 | vs its start | above their start |",
              "|---|---|---|---:|---|---|---:|"]
    trained: dict[tuple, list[Record]] = defaultdict(list)
    for (dataset, split), group in groups.items():
        for r in group:
            if r.n_training_queries:
                trained[(r.pipeline, dataset, split)].append(r)
    for (pipeline, dataset, split), group in sorted(trained.items()):
        best = best_rows(group, MEASURE)[0]
        raw = [r for r in group if not r.method.endswith(INTERP)]
        above = sum(above_start(r) for r in raw)
        lines.append(f"| `{pipeline}` | {dataset} {split} | `{best.method}` | {best.metrics[MEASURE]:.3f} | "
                     f"{_test(best, 'bm25')} | {start_test(best)} | {above} of {len(raw)} |")
    return "\n".join(lines) + "\n"


def above_start(record: Record) -> bool:
    if kept_start(record) or record.method.endswith(INTERP):
        return False
    test = record.significance.get("start", {}).get(MEASURE)
    return bool(test) and significance_word(test.get("delta"), test.get("p_value"), ALPHA) == "significantly better"


def replace_block(text: str, block: str, source: str = "README.md") -> str:
    """`text` with the content between BEGIN and END replaced by `block`; a missing marker is an error."""
    if BEGIN not in text or END not in text or text.index(BEGIN) > text.index(END):
        raise ValueError(f"{source}: the marker lines {BEGIN!r} and {END!r} are missing or out of order")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    return f"{head}{BEGIN}\n{block}{END}{tail}"


def update_readme(readme: str | os.PathLike, results_dir: str | os.PathLike, profile: str = "default",
                  release_commit: str | None = None) -> bool:
    """Rewrite README's block from results/; True when it changed."""
    readme = Path(readme)
    text = readme.read_text(encoding="utf-8")
    new = replace_block(text, render(results_dir, profile, release_commit), readme.name)
    if new != text:
        write_text(readme, new)
    return new != text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", default=str(PROJECT_ROOT / "README.md"))
    parser.add_argument("--results-dir", default=str(PROJECT_ROOT / "results"))
    parser.add_argument("--profile", default="default")
    parser.add_argument("--check", action="store_true", help="exit 1 when README's block is not up to date")
    args = parser.parse_args(argv)
    readme = Path(args.readme)
    text = readme.read_text(encoding="utf-8")
    new = replace_block(text, render(args.results_dir, args.profile), readme.name)
    if args.check:
        if new != text:
            print(f"{readme.name}: the numbers block is out of date; run python -m rerank_lib.results.readme_numbers",
                  file=sys.stderr)
            return 1
        return 0
    changed = update_readme(readme, args.results_dir, args.profile)
    print(f"{readme.name}: numbers block {'rewritten' if changed else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
