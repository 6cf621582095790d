"""'Reading the numbers': the closing text of every notebook, written from the records it just made.

Why generated: a sentence typed beside a table goes stale the moment the notebook runs again (another profile,
another seed, another commit). Every number and every significance word here is read from the records' own
metrics, paired tests (`Record.significance`), selected checkpoints (`record.selected_step`) and wall times, so
the prose cannot disagree with the table above it.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Mapping, Sequence

from .record import Record, kept_start, selected_steps

ALPHA = 0.05  # a paired test below this p is called significant
INTERP = "+interp"  # the suffix of a row that interpolates a ranker with BM25


def _as_record(record: Record | Mapping) -> Record:
    return record if isinstance(record, Record) else Record.from_dict(dict(record))


def _num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _p(p_value: float | None) -> str:
    if p_value is None:
        return "p n/a"
    return "p<0.001" if p_value < 0.001 else f"p={p_value:.3f}"


def significance_word(delta: float | None, p_value: float | None, alpha: float = ALPHA) -> str:
    """'significantly better' / 'significantly worse' / 'not significant' for one paired test (delta = row - base)."""
    if delta is None or p_value is None or p_value >= alpha or delta == 0:
        return "not significant"
    return "significantly better" if delta > 0 else "significantly worse"


def best_rows(records: Sequence[Record], measure: str) -> list[Record]:
    """The rows with the highest value of `measure` (ties all returned; rows without it ignored)."""
    valued = [r for r in records if r.metrics.get(measure) is not None]
    if not valued:
        return []
    top = max(r.metrics[measure] for r in valued)
    return [r for r in valued if r.metrics[measure] == top]


def checkpoint_sentence(record: Record) -> str | None:
    """Which checkpoint the dev slice selected for a trained row, or None when the row was not trained."""
    steps = selected_steps(record)
    if steps is None:
        return None
    total = record.params.get("steps")
    step = steps if len(steps) > 1 else steps[0]
    if isinstance(step, list):  # a row trained over several seeds: each seed's selection
        kept = sum(int(s) == 0 for s in step)
        each = ", ".join(f"seed {seed}: step {s}" for seed, s in zip(record.seeds, step))
        start = ("the untrained start was kept for every seed" if kept == len(step) else
                 f"the untrained start was kept for {kept} of {len(step)} seeds" if kept else "the start was not kept")
        return f"`{record.method}`: {each} selected on dev ({start})"
    of = f" of {total}" if total is not None else ""
    if int(step) == 0:
        return f"`{record.method}`: the untrained start was kept (step 0{of}; no trained checkpoint beat it on dev)"
    return f"`{record.method}`: step {step}{of} selected on dev (the start was not kept)"


def _headline(records: Sequence[Record], measures: Sequence[str] | None) -> list[str]:
    if measures:
        return list(measures)
    seen: list[str] = []
    for r in records:
        seen += [m for m in r.metrics if m not in seen]
    return seen


def _group_lines(group: Sequence[Record], measures: Sequence[str], test_measure: str, alpha: float) -> list[str]:
    lines = []
    for measure in measures:
        best = best_rows(group, measure)
        if best:
            names = ", ".join(f"`{r.method}`" for r in best)
            lines.append(f"- best {measure} of {len(group)} rows: {names} {_num(best[0].metrics[measure])}")
    by_base: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in group:
        for base, tests in r.significance.items():
            test = tests.get(test_measure)
            if not test or (base == "start" and r.method.endswith(INTERP)):
                continue  # a `+interp` row's gain over the raw start is mostly the first stage's: not training's
            delta, p_value = test.get("delta"), test.get("p_value")
            word = "= start (dev kept step 0)" if base == "start" and kept_start(r) else \
                significance_word(delta, p_value, alpha)
            sign = "n/a" if delta is None else f"{delta:+.4f}"
            by_base[base][word].append(f"`{r.method}` ({sign}, {_p(p_value)})")
    for base, words in by_base.items():
        parts = [f"{word}: {', '.join(rows)}" for word in ("significantly better", "significantly worse",
                                                             "not significant", "= start (dev kept step 0)")
                 if (rows := words.get(word))]
        lines.append(f"- against `{base}` ({test_measure}, paired test, alpha {alpha}): " + "; ".join(parts))
    return lines


def summarize(records: Iterable[Record | Mapping], measures: Sequence[str] | None = None, *,
              test_measure: str | None = None, alpha: float = ALPHA, facts: Mapping[str, Any] | None = None) -> str:
    """Markdown that reads `records`: per (pipeline, dataset, split) the best row per measure and which rows are
    significantly better / worse than each baseline of their paired tests (a `+interp` row is not read against the
    start: fusion with BM25 would get training's credit; a row whose dev selection kept the start is named `= start`);
    then the selected checkpoints of the trained rows (and whether the start was kept) and the wall times. `measures`: those to name a best row for
    (default: every measure the records carry); `test_measure`: the one whose paired tests are read (default, per
    test set: nDCG@10 when its rows have it, else its first measure, so a set measured otherwise, e.g. HopWeaver's
    accuracy / MRR, still has its tests read). `facts`: computed values a notebook without records states
    (name -> value), listed first. A `+interp` row's checkpoint and wall time are its base row's, so they are
    listed once, under the base row."""
    rows = [_as_record(r) for r in records]
    lines = ["### Reading the numbers", ""]
    if facts:
        lines += [f"- {name}: {value}" for name, value in facts.items()] + [""]
    if not rows:
        if not facts:
            lines.append("No result records were written by this run.")
        return "\n".join(lines).rstrip() + "\n"
    shown = _headline(rows, measures)
    groups: dict[tuple, list[Record]] = defaultdict(list)
    for r in rows:
        groups[(r.pipeline, r.dataset, r.split)].append(r)
    for (pipeline, dataset, split), group in groups.items():
        n = next((t.get("n_queries") for r in group for tests in r.significance.values() for t in tests.values()
                  if t.get("n_queries")), None)
        lines.append(f"**{pipeline} · {dataset} {split}**" + (f" ({n} queries)" if n else ""))
        group_shown = [m for m in shown if any(m in r.metrics for r in group)]
        group_measures = group_shown or list(dict.fromkeys(m for r in group for m in r.metrics))
        tested = test_measure or ("nDCG@10" if any("nDCG@10" in r.metrics for r in group) else group_measures[0])
        lines += _group_lines(group, group_shown, tested, alpha)
        lines.append("")
    # An interpolated row ("<method>+interp") shares its base row's checkpoint and training time: named once.
    own = [r for r in rows if not (r.method.endswith(INTERP) and any(
        b.method == r.method.removesuffix(INTERP) and b.dataset == r.dataset and b.split == r.split for b in rows))]
    checkpoints = list(dict.fromkeys(s for r in own if (s := checkpoint_sentence(r))))
    if checkpoints:
        lines += ["**Selected checkpoints**"] + [f"- {s}" for s in checkpoints] + [""]
    timed = sorted((r for r in own if r.wall_s is not None), key=lambda r: -r.wall_s)
    if timed:
        slow = [f"`{r.method}` on {r.dataset} {_num(r.wall_s, 0)} s" for r in timed if r.wall_s >= 1]
        quick = len(timed) - len(slow)
        text = "; ".join(slow) if slow else "every row under 1 s"
        if slow and quick:
            text += f"; {quick} more row(s) under 1 s"
        lines += ["**Wall time per row** (the records' `wall_s`: training and scoring of that row; a `+interp` row "
                  "shares its base row's)", f"- {text}", ""]
    return "\n".join(lines).rstrip() + "\n"
