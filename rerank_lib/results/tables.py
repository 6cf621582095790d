"""Tables from records: RESULTS.md for readers, results.csv for code, results.tex for the paper.

All three are rebuilt from the record files alone, with a fixed order (dataset and split, then pipeline and
method) and no timestamps, so rebuilding unchanged records gives byte-identical files and a clean git diff.

Each dataset gets one leaderboard (rows on its full split at one first stage and depth) and labelled sub-tables
for query subsets and other first stages, so no table compares numbers measured on different candidates. A value
carries a mark only where a comparison means something: a significant paired test, against a compared method the
table names, on a measure the row's method can change. A row trained over several seeds reads `0.653 ± 0.012`
(mean ± sample sd over seeds) and names its number of seeds; its marks test per-query means over seeds.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import write_text
from .ledger import write_ledger
from .record import Record, kept_start, load_records

UP, DOWN = "▲", "▼"
SUPERSCRIPT = dict(zip("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))
CORRECTIONS = (None, "holm", "bonferroni")
CSV_COLUMNS = [
    "profile", "dataset", "split", "pipeline", "method", "model", "first_stage", "depth", "training_queries",
    "n_training_queries", "measure", "value", "reference_value", "reference_source", "significance", "seed",
    "wall_s", "git_commit", "created", "per_query",
]
#: results.csv's columns when some record was trained over several seeds: its seeds and the sd of `value` over them.
SEED_COLUMNS = ["seeds", "sd"]
#: results.csv's columns when some record carries a measured cost (Record: latency per query, training seconds).
COST_COLUMNS = ["latency_s_per_query", "train_s"]
#: The measure the cost table and figure set beside the cost.
COST_MEASURE = "nDCG@10"
#: First-stage labels of rows that retrieve from the whole corpus themselves (no candidate list to rerank).
RETRIEVAL = ("corpus", "")
#: Words for compared methods whose name alone does not say what they are.
COMPARED_NAMES = {"start": "start (the model's own untrained or zero-shot starting point)"}
#: Set measures: the set of the top K (or of the whole run without a cutoff), blind to the order inside it.
SET_MEASURE = re.compile(r"^(R|recall|P|Success|SetP|SetR|SetF|NumRet|NumRelRet|Judged)(\(.*\))?(@(\d+))?$")
SUBSET_SPLIT = re.compile(r"-(\d+)q$")


def results_frame(records: list[Record]):
    """Long format, one row per record x measure (the rows of results.csv) as a pandas DataFrame."""
    import pandas as pd

    return pd.DataFrame(_long_rows(records), columns=csv_columns(records))


def csv_columns(records: list[Record]) -> list[str]:
    """CSV_COLUMNS, SEED_COLUMNS when a record has seeds and COST_COLUMNS when one has a measured cost (tables without
    such rows stay as they were)."""
    return (CSV_COLUMNS + (SEED_COLUMNS if any(r.seeds for r in records) else [])
            + (COST_COLUMNS if any(_costed(r) for r in records) else []))


def build_tables(results_dir: str | os.PathLike, profile: str = "default", alpha: float = 0.05,
                 correction: str | None = None) -> dict[str, Path]:
    """Write RESULTS.md, results.csv, results.tex and the reproduction ledger REPRODUCTION.md (results.ledger: each
    paper claim's verdict) under results_dir from the profile's records.

    Returns {'md': path, 'csv': path, 'tex': path, 'ledger': path}. The default profile's tables are RESULTS.md, results.csv and
    results.tex; another profile's carry its name (RESULTS.smoke.md ...) so a smoke run never replaces them.
    Marks come from each record's `significance` (the paired tests of the notebook that had both runs): ▲/▼ when
    p < alpha. `correction` ('holm' or 'bonferroni') adjusts the p-values over each table's marked comparisons;
    the default None keeps each notebook's own pre-planned test (a few named baselines per row) and the legend
    says so. results.csv always holds the raw p-values.
    """
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, not {correction!r}")
    results_dir = Path(results_dir)
    records = load_records(results_dir, profile)
    tables = leaderboards(records)
    tag = "" if profile == "default" else f".{profile}"
    return {
        "md": write_text(results_dir / f"RESULTS{tag}.md", _markdown(tables, profile, alpha, correction, records)),
        "csv": write_text(results_dir / f"results{tag}.csv", _csv(records)),
        "tex": write_text(results_dir / f"results{tag}.tex", _latex(tables, profile, alpha, correction, records)),
        "ledger": write_ledger(results_dir, profile, records),
    }


def cost_figure_name(profile: str) -> str:
    """The file name under figures/ of the profile's quality-against-latency figure (figures.plot_cost_quality, drawn
    by 99_results beside the summary figure; figures reads these tables, so build_tables cannot call it)."""
    return f"latency_{COST_MEASURE.replace('@', '').lower()}_{profile}.png"


# ---------------------------------------------------------------------------------------------- grouping


@dataclass
class Row:
    """A record in a table, with the first stage and depth it reranks (an interpolation row's are its model's)."""

    record: Record
    first_stage: str
    depth: int | None

    @property
    def reranks(self) -> bool:
        return self.first_stage not in RETRIEVAL

    @property
    def weight(self) -> float | None:
        """The interpolation weight of a `+interp` row (weight * model + (1 - weight) * first stage), else None."""
        w = (self.record.params or {}).get("interpolation_weight")
        return float(w) if isinstance(w, (int, float)) and not isinstance(w, bool) else None

    @property
    def identity(self) -> str | None:
        """What a weight-0 or weight-1 interpolation row is: the first stage or the model itself; else None."""
        if self.weight == 0.0:
            return stage_label(self.first_stage, self.depth) if self.reranks else "the first stage"
        if self.weight == 1.0:
            return _interp_base(self.record.method)
        return None

    @property
    def interpolated(self) -> bool:
        return self.weight is not None or self.record.method.endswith("+interp")

    @property
    def credits_start(self) -> bool:
        """Whether a test against `start` says what training did: not for a row whose dev selection kept the start
        (it is the start), nor for an interpolation row (its gain over the raw start is mostly the first stage's)."""
        return not self.interpolated and not kept_start(self.record)

    @property
    def label(self) -> str:
        """The method as the tables name it; an interpolation row shows its weight; a row whose dev selection kept
        its untrained start says so (= start)."""
        method = self.record.method
        if kept_start(self.record):
            method += " = start (dev kept step 0)" if not self.interpolated else " (its model = start)"
        seeds = f" ({len(self.record.seeds)} seeds)" if self.record.seeds else ""
        if self.weight is None:
            return method + seeds
        if self.identity is not None:
            return f"{method} = {self.identity} (w={self.weight:g}){seeds}"
        return f"{method} (w={self.weight:.2f}){seeds}"

    def can_change(self, measure: str) -> bool:
        return can_change(measure, self.first_stage, self.depth)


@dataclass
class Table:
    """One dataset's leaderboard (`main`) or one of its sub-tables: rows on one split at one first stage."""

    dataset: str
    split: str
    first_stage: str | None  # the reranked first stage, None when every row retrieves from the corpus
    depth: int | None
    main: bool
    rows: list[Row] = field(default_factory=list)

    @property
    def records(self) -> list[Record]:
        return [row.record for row in self.rows]

    @property
    def compared(self) -> list[str]:
        """The methods this table's marks compare with, bm25 first: the order of the marks' numbers."""
        names = {vs for row in self.rows for vs in row.record.significance}
        return sorted(names, key=lambda name: (name != "bm25", name))

    @property
    def measures(self) -> list[str]:
        return list(dict.fromkeys(m for r in self.records for m in r.metrics))

    @property
    def title(self) -> str:
        """'scifact / test' for a leaderboard; a sub-table says what sets it apart."""
        parts = []
        subset = SUBSET_SPLIT.search(self.split)
        if subset:
            parts.append(f"{subset.group(1)}-query subset")
        if self.first_stage is not None and (not self.main or parts):
            parts.append(f"{stage_label(self.first_stage, self.depth)} first stage")
        return f"{self.dataset} / {self.split}" + (f": {', '.join(parts)}" if parts else "")


def stage_label(first_stage: str, depth: int | None) -> str:
    if not first_stage:
        return "–"
    return first_stage + (f" top-{depth}" if depth else "")


def can_change(measure: str, first_stage: str, depth: int | None) -> bool:
    """False for a set measure (R@K, recall@K, P@K, Success@K ...) with K >= k on a reranker of a top-k list:
    reordering k candidates leaves the set of the top K (K >= k) as the first stage made it."""
    if first_stage in RETRIEVAL or depth is None:
        return True
    match = SET_MEASURE.match(measure)
    if match is None:
        return True
    cutoff = match.group(4)
    return cutoff is not None and int(cutoff) < depth


def _interp_base(method: str) -> str:
    return method[: -len("+interp")] if method.endswith("+interp") else method


def record_stage(record: Record, records: list[Record]) -> tuple[str, int | None]:
    """The first stage and depth a record reranks; a `+interp` row without its own takes its model's row's."""
    if record.first_stage or not record.method.endswith("+interp"):
        return record.first_stage, record.depth
    base = _interp_base(record.method)
    for other in records:
        if (other.pipeline, other.method, other.dataset, other.split) == (
                record.pipeline, base, record.dataset, record.split) and other.first_stage:
            return other.first_stage, other.depth if other.depth is not None else record.depth
    return "", record.depth


def _stage_order(counts: Counter):
    """Most rows first; ties: BM25, then the smaller depth, then the name."""
    return lambda st: (-counts[st], st[0] != "bm25", st[1] is None, st[1] or 0, st[0])


def leaderboards(records: list[Record]) -> list[Table]:
    """Per dataset: the leaderboard, then its sub-tables.

    The leaderboard holds the rows on the dataset's full split (the split without a `-<N>q` subset suffix; the
    one with most rows if several) that retrieve from the corpus or rerank that split's most common first stage
    and depth (ties: BM25, then the smaller depth). Every other (split, first stage, depth) gets a sub-table; the
    corpus retrievers of a subset split sit in that split's most common stage's table.
    """
    tables: list[Table] = []
    rows = [Row(r, *record_stage(r, records)) for r in sorted(records, key=_row_order)]
    for dataset in sorted({r.dataset for r in records}):
        in_dataset = [row for row in rows if row.record.dataset == dataset]
        splits = Counter(row.record.split for row in in_dataset)
        full = [s for s in splits if not SUBSET_SPLIT.search(s)] or list(splits)
        main_split = min(full, key=lambda s: (-splits[s], s))
        for split in [main_split, *sorted(s for s in splits if s != main_split)]:
            in_split = [row for row in in_dataset if row.record.split == split]
            counts = Counter((row.first_stage, row.depth) for row in in_split if row.reranks)
            stages = sorted(counts, key=_stage_order(counts)) or [None]
            for i, stage in enumerate(stages):
                members = [row for row in in_split if (row.first_stage, row.depth) == stage or (i == 0 and not row.reranks)]
                first_stage, depth = stage if stage is not None else (None, None)
                tables.append(Table(dataset, split, first_stage, depth, split == main_split and i == 0, members))
    return tables


def _costed(record: Record) -> bool:
    return record.latency_s_per_query is not None or record.train_s is not None


def cost_tables(records: list[Record], with_latency: bool = False) -> list[Table]:
    """The leaderboards' tables (rows on the same candidates) cut to their rows with a measured cost (a latency per
    query or training seconds; `with_latency`: a latency and a COST_MEASURE value, what the figure plots), the
    tables left with none dropped: what the cost table and figure show."""
    def shown(row: Row) -> bool:
        r = row.record
        if with_latency:
            return r.latency_s_per_query is not None and r.metrics.get(COST_MEASURE) is not None and row.identity is None
        return _costed(r)

    out = []
    for table in leaderboards(records):
        rows = [row for row in table.rows if shown(row)]
        if rows:
            out.append(Table(table.dataset, table.split, table.first_stage, table.depth, table.main, rows))
    return out


def _row_order(record: Record) -> tuple:
    return (record.dataset, record.split, record.pipeline, record.method, record.model)


def _marks(table: Table, alpha: float, correction: str | None) -> tuple[dict[tuple[int, str], list[tuple[int, str]]], int]:
    """{(row index, measure): [(compared index, ▲/▼)]} and the number of tests in the table's family.

    The family: every (row, measure, compared method) that could carry a mark (a value, a measure the row can
    change, not a weight-0/1 interpolation row, a recorded test); `correction` adjusts over exactly these."""
    from ..evaluation import adjust_p_values

    family = []
    for i, row in enumerate(table.rows):
        if row.identity is not None:
            continue
        for measure in table.measures:
            if row.record.metrics.get(measure) is None or not row.can_change(measure):
                continue
            for j, vs in enumerate(table.compared):
                if vs == "start" and not row.credits_start:
                    continue
                test = row.record.significance.get(vs, {}).get(measure) or {}
                if test.get("p_value") is not None and test.get("delta") is not None:
                    family.append((i, measure, j, test["delta"], test["p_value"]))
    adjusted = adjust_p_values([f[4] for f in family], correction)
    marks: dict[tuple[int, str], list[tuple[int, str]]] = {}
    for (i, measure, j, delta, _), p in zip(family, adjusted):
        if p < alpha and delta != 0:
            marks.setdefault((i, measure), []).append((j, UP if delta > 0 else DOWN))
    return marks, len(family)


def _unchangeable(table: Table) -> list[str]:
    """'R@100 (rerankers of bm25 top-20)': the measures some row here cannot change, for the table's note."""
    found: dict[str, list[str]] = {}
    for row in table.rows:
        for measure in row.record.metrics:
            if not row.can_change(measure):
                found.setdefault(measure, [])
                stage = stage_label(row.first_stage, row.depth)
                if stage not in found[measure]:
                    found[measure].append(stage)
    return [f"{m} (rerankers of {', '.join(stages)})" for m, stages in found.items()]


def _correction_words(correction: str | None, n_tests: int) -> str:
    if correction is None:
        return "uncorrected p-values"
    return f"p-values {correction.capitalize()}-adjusted over the {n_tests} tests of this table"


# ---------------------------------------------------------------------------------------------- shared


def _with_reference(records: list[Record], measures: list[str]) -> set[str]:
    return {m for m in measures if any(m in r.reference for r in records)}


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def _fmt_ref(value) -> str:
    """References keep up to 4 decimals when published that way (0.7376), at least 3 (0.74 -> 0.740)."""
    text = repr(float(value))
    decimals = len(text.split(".")[1]) if "." in text and "e" not in text else 3
    return f"{value:.{min(4, max(3, decimals))}f}"


def _compared_words(name: str) -> str:
    return COMPARED_NAMES.get(name, name)


#: The two leak-free TREC DL folds are reported side by side and averaged (train on one year, test on the other).
DL_FOLDS = ("trec-dl-2019", "trec-dl-2020")


def fold_means(records: list[Record], measure: str = "nDCG@10") -> list[dict]:
    """Methods measured on both TREC DL years: each year's value and their mean (the two folds' summary)."""
    by_key: dict[tuple[str, str], dict[str, Record]] = {}
    for r in records:
        if r.dataset in DL_FOLDS and measure in r.metrics:
            by_key.setdefault((r.pipeline, r.method), {})[r.dataset] = r
    rows = []
    for (pipeline, method), found in sorted(by_key.items()):
        if set(found) != set(DL_FOLDS):
            continue
        values = [found[d].metrics[measure] for d in DL_FOLDS]
        if any(v is None for v in values):
            continue
        stages = list(dict.fromkeys(stage_label(*record_stage(found[d], records)) for d in DL_FOLDS))
        rows.append({"pipeline": pipeline, "method": method, "first stage": " / ".join(stages),
                     "training": " / ".join(_training(found[d]) for d in DL_FOLDS),
                     **{f"{d} {measure}": v for d, v in zip(DL_FOLDS, values)},
                     f"mean {measure}": sum(values) / len(values)})
    return rows


def anchor_table(records: list[Record]):
    """Our nDCG@10 (and R@100) beside the published anchor, with the gap a reader should look at (> 0.02)."""
    import pandas as pd

    rows = []
    for r in records:
        ref = r.reference.get("nDCG@10", {}).get("value")
        sig = r.significance.get("bm25", {}).get("nDCG@10", {})
        recall = next((v for k, v in r.metrics.items() if k.startswith("R") and "@100" in k), None)
        rows.append({
            "dataset": f"{r.dataset}/{r.split}", "method": r.method, "nDCG@10": round(r.metrics["nDCG@10"], 4),
            "published": ref, "gap": None if ref is None else round(r.metrics["nDCG@10"] - ref, 4),
            "R@100": None if recall is None else round(recall, 4),
            "p vs bm25": None if not sig else round(sig["p_value"], 4), "wall_s": None if r.wall_s is None else round(r.wall_s, 1),
        })
    return pd.DataFrame(rows)


def _best(records: list[Record], measure: str):
    values = [r.metrics.get(measure) for r in records if r.metrics.get(measure) is not None]
    return max(values) if len(values) > 1 else None


def _value_cells(table: Table, i: int, marks: dict, refs: set[str], value_text, mark_text) -> list[str]:
    """Row `i`'s cell for each measure of `table`: its value (`value_text(text, is the column's best)`) and marks
    (`mark_text`), then the published value where the table shows that measure's."""
    record, cells = table.rows[i].record, []
    for m in table.measures:
        value = record.metrics.get(m)
        best = value is not None and value == _best(table.records, m)
        sd = record.sd(m)
        text = _fmt(value) + ("" if sd is None else f" ± {sd:.3f}")
        cells.append(value_text(text, best) + mark_text(marks.get((i, m), [])))
        if m in refs:
            ref = record.reference.get(m)
            cells.append(_fmt_ref(ref["value"]) if ref else "")
    return cells


def _training(record: Record) -> str:
    text = record.training_queries or "–"
    if record.n_training_queries is not None and str(record.n_training_queries) not in text:
        text += f" ({record.n_training_queries} q)"
    return text


def _wall(seconds) -> str:
    if seconds is None:
        return "–"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _commits(records: list[Record]) -> list[str]:
    return sorted({r.git_commit[:12] + ("-dirty" if r.git_commit.endswith("-dirty") else "") for r in records})


# ---------------------------------------------------------------------------------------------- markdown


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_mark(j: int, arrow: str, numbered: bool) -> str:
    return arrow + ("".join(SUPERSCRIPT[c] for c in str(j + 1)) if numbered else "")


def _md_compared(table: Table) -> str:
    names = table.compared
    if len(names) == 1:
        return f"vs {_compared_words(names[0])}"
    return ", ".join(f"{_md_mark(j, '', True)} vs {_compared_words(n)}" for j, n in enumerate(names))


def _legend(alpha: float, correction: str | None, seeded: bool = False) -> list[str]:
    corrected = ("uncorrected: each is the notebook's own paired t-test against a few pre-planned baselines; "
                 "`build_tables(correction='holm' or 'bonferroni')` adjusts them over each table's tests"
                 if correction is None else
                 f"{correction.capitalize()}-adjusted over each table's tests (every value, compared method and "
                 "measure that could carry a mark); results.csv keeps the raw p-values")
    return [
        "How to read these tables:", "",
        "- Values are means over the judged queries; bold: best in the column of that table; – : not measured.",
        *(["- `(N seeds)`: the row was trained once per training seed; its values read mean ± sample sd over the N "
           "seeds' test values, and its marks test each query's mean over seeds."] if seeded else []),
        f"- {UP}/{DOWN} after a value: significantly better/worse (p < {alpha}) than a compared method. Each table "
        "names its compared methods under *Marks*, numbered; the mark's superscript number says which (no number "
        "when a table compares with one method). P-values are " + corrected + ".",
        "- No mark: not significant, not tested (the *tested vs* column lists each row's tests), a missing value, "
        "a set measure the row's method cannot change (R@K, recall@K, P@K, Success@K with K >= k for a reranker "
        "of the first stage's top k: reordering k candidates leaves the set of the top K as the first stage made "
        "it), or an interpolation row with weight 0 or 1. Not significant is no mark here and in results.tex.",
        "- `+interp (w=…)`: w × model + (1 − w) × first stage on per-query min-max normalised scores, w chosen on the "
        "dev slice; at w=0 the row is the first stage and at w=1 the model itself, shown as `= …` and unmarked.",
        "- Per dataset, the first table is the leaderboard: rows on the full split (no `-<N>q` subset suffix) "
        "that retrieve from the corpus or rerank the split's most common first stage and depth (ties: BM25, then "
        "the smaller depth). Query subsets and other first stages or depths follow as labelled sub-tables.",
        "- A trained row's value is the test value of the checkpoint its dev slice selected (the step 0 start "
        "can win), as its record holds it; *start* is that model's untrained or zero-shot starting point.",
        "- A row whose dev selection kept step 0 is shown `= start` and carries no mark against *start* (it is the "
        "start); a `+interp` row carries none either (its gain over the raw start is mostly the first stage's): it "
        "is marked against the first stage only. Whether a paper's claim holds: REPRODUCTION.md.",
        "",
    ]


def _markdown(tables: list[Table], profile: str, alpha: float, correction: str | None, records: list[Record]) -> str:
    out = [f"# Results (profile: {profile})", "",
           "Generated by `rerank_lib.results.build_tables` from the records under "
           f"`records/{profile}/`; edit the records, not this file.", ""]
    if not tables:
        out += [f"No records for profile '{profile}' yet.", ""]
        return "\n".join(out)
    out += [f"{len(records)} records; commits: {', '.join(_commits(records))}.", "", *_legend(alpha, correction, any(r.seeds for r in records))]
    for table in tables:
        out += _md_table(table, alpha, correction)
    folds = fold_means(records)
    if folds:
        measure = [k for k in folds[0] if k.startswith("mean ")][0][5:]
        out += ["## TREC DL: the two folds and their mean", "",
                f"Trained models learn on one year and are tested on the other; the mean of the two years' {measure} is "
                "the leak-free summary. Training queries: DL19 row / DL20 row.", "",
                f"| pipeline | method | first stage | training queries | {DL_FOLDS[0]} | {DL_FOLDS[1]} | mean |",
                "| --- | --- | --- | --- | ---: | ---: | ---: |"]
        best = max(row[f"mean {measure}"] for row in folds)
        for row in folds:
            mean = _fmt(row[f"mean {measure}"])
            out.append("| " + " | ".join(_md_cell(c) for c in [
                row["pipeline"], row["method"], row["first stage"], row["training"], _fmt(row[f"{DL_FOLDS[0]} {measure}"]),
                _fmt(row[f"{DL_FOLDS[1]} {measure}"]), f"**{mean}**" if row[f"mean {measure}"] == best else mean]) + " |")
        out.append("")
    out += _md_cost(records, profile)
    return "\n".join(out)


def _seconds(value: float | None) -> str:
    """A latency: three significant digits (0.0123 s, 1.45 s), ms below a tenth of a second."""
    if value is None:
        return "–"
    return f"{value * 1000:.3g} ms" if value < 0.1 else f"{value:.3g} s"


def _md_cost(records: list[Record], profile: str) -> list[str]:
    """The cost table: per leaderboard table, each row with a measured cost, its latency per query, training time
    and COST_MEASURE."""
    tables = cost_tables(records)
    if not tables:
        return []
    out = ["## Cost beside quality", "",
           "Wall time on the machine each record names (`hardware`). *Latency / query*: the test reranking of the row's "
           "depth of candidates (the *depth* column) divided by the queries, every score computed (nothing read from a "
           "cache), timed around the reranking call only. *Training*: one training run, dev evaluations included. A "
           "row over several seeds gives the mean over its seeds; a `+interp` row carries its model's (interpolating "
           "two runs takes milliseconds). Rows on different candidates sit in different tables." +
           (f" Figure (99_results): `figures/{cost_figure_name(profile)}`." if cost_tables(records, with_latency=True)
            else ""), ""]
    for table in tables:
        out += [f"### {table.title}", "",
                f"| pipeline | method | depth | latency / query | training | {COST_MEASURE} |",
                "| --- | --- | ---: | ---: | ---: | ---: |"]
        for row in table.rows:
            r = row.record
            value, sd = r.metrics.get(COST_MEASURE), r.sd(COST_MEASURE)
            out.append("| " + " | ".join(_md_cell(c) for c in [
                r.pipeline, row.label, "–" if row.depth is None else row.depth, _seconds(r.latency_s_per_query),
                _wall(r.train_s), _fmt(value) + ("" if sd is None else f" ± {sd:.3f}")]) + " |")
        out.append("")
    return out


def _md_table(table: Table, alpha: float, correction: str | None) -> list[str]:
    measures = table.measures
    refs = _with_reference(table.records, measures)
    marks, n_tests = _marks(table, alpha, correction)
    numbered = len(table.compared) > 1
    header = ["pipeline", "method", "model", "first stage", "training queries"]
    for m in measures:
        header += [m] + ([f"{m} (published)"] if m in refs else [])
    header += ["wall time", "tested vs"]
    align = ["---"] * 5 + ["---:"] * (len(header) - 7) + ["---:", "---"]
    out = [("## " if table.main else "### ") + table.title, ""]
    notes = []
    if table.main and table.first_stage is not None:
        notes.append(f"Leaderboard: corpus retrievers and rerankers of {stage_label(table.first_stage, table.depth)}.")
    if table.compared:
        notes.append(f"Marks: {_md_compared(table)}; {_correction_words(correction, n_tests)}.")
    unchangeable = _unchangeable(table)
    if unchangeable:
        notes.append(f"Never marked (a reranker cannot change them): {'; '.join(unchangeable)}.")
    if notes:
        out += [" ".join(notes), ""]
    out += ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    published = []
    for i, row in enumerate(table.rows):
        r = row.record
        cells = [r.pipeline, row.label, r.model or "–", stage_label(row.first_stage, row.depth), _training(r),
                 *_value_cells(table, i, marks, refs, lambda text, best: f"**{text}**" if best else text,
                               lambda found: "".join(_md_mark(j, arrow, numbered) for j, arrow in found)),
                 _wall(r.wall_s), ", ".join(sorted(r.significance, key=lambda name: (name != "bm25", name)))]
        published += [f"- {r.pipeline}/{r.method}, {m}: {_fmt_ref(r.reference[m]['value'])} from {r.reference[m]['source']}"
                      for m in measures if m in refs and (r.reference.get(m) or {}).get("source")]
        out.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    out.append("")
    if published:
        out += ["Published numbers:", *published, ""]
    return out


# ---------------------------------------------------------------------------------------------- csv


def _long_rows(records: list[Record]) -> list[list]:
    seeded, costed = any(r.seeds for r in records), any(_costed(r) for r in records)
    rows = []
    for r in sorted(records, key=_row_order):
        for m, value in r.metrics.items():
            ref = r.reference.get(m, {})
            sig = {vs: tests[m] for vs, tests in sorted(r.significance.items()) if m in tests}
            rows.append([
                r.profile, r.dataset, r.split, r.pipeline, r.method, r.model, r.first_stage, r.depth,
                r.training_queries, r.n_training_queries, m, value, ref.get("value"), ref.get("source"),
                json.dumps(sig, sort_keys=True) if sig else None, r.seed, r.wall_s, r.git_commit, r.created,
                r.per_query,
            ] + ([" ".join(map(str, r.seeds)) or None, r.sd(m)] if seeded else [])
              + ([r.latency_s_per_query, r.train_s] if costed else []))
    return rows


def _csv(records: list[Record]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(csv_columns(records))
    for row in _long_rows(records):
        writer.writerow(["" if v is None else (repr(v) if isinstance(v, float) else v) for v in row])
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------- latex

_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                "→": r"$\rightarrow$", "–": "--", "·": r"$\cdot$", "≥": r"$\geq$", "×": r"$\times$",
                "±": r"$\pm$"}


def _tex(text) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(text))


def _tex_marks(found: list[tuple[int, str]], numbered: bool) -> str:
    if not found:
        return ""
    arrows = r"\,".join((r"\uparrow" if arrow == UP else r"\downarrow") + (str(j + 1) if numbered else "")
                         for j, arrow in found)
    return f"$^{{{arrows}}}$"


def _tex_label(*parts) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in "-".join(str(p) for p in parts if p not in (None, "")))


def _fit(tabular: list[str]) -> list[str]:
    """Scale a table down to the text width when it is wider (never up): graphicx's resizebox with its \\width."""
    return [r"\resizebox{\ifdim\width>\textwidth\textwidth\else\width\fi}{!}{%", *tabular, "}"]


def _tex_caption(table: Table, alpha: float, correction: str | None, n_tests: int) -> str:
    measures = ", ".join(_tex(m) for m in table.measures)
    text = f"{_tex(table.title)}. Measures: {measures}."
    if table.main and table.first_stage is not None:
        text += (f" Leaderboard: corpus retrievers and rerankers of {_tex(stage_label(table.first_stage, table.depth))}"
                 " (the split's most common first stage and depth).")
    compared = table.compared
    if compared:
        numbered = len(compared) > 1
        names = "; ".join((f"{j + 1} = " if numbered else "") + _tex(_compared_words(n)) for j, n in enumerate(compared))
        arrows = r"$^{\uparrow k}$/$^{\downarrow k}$" if numbered else r"$^\uparrow$/$^\downarrow$"
        text += (f" {arrows}: significantly better/worse (paired t-test, $p < {alpha}$, "
                 f"{_tex(_correction_words(correction, n_tests))}) than compared method"
                 f"{' k' if numbered else ''}: {names}. No mark: not significant, not tested or missing")
        unchangeable = _unchangeable(table)
        text += (f"; never marked: {_tex('; '.join(unchangeable))}, which a reranker of its top k cannot change"
                 if unchangeable else "") + "."
    if any(row.weight is not None for row in table.rows):
        text += (" (w=…): interpolation weight of the model with the first stage, chosen on dev; "
                 "w=0 is the first stage and w=1 the model itself (unmarked); never marked against the start "
                 "(fusion would get training's credit).").replace("…", r"\ldots{}")
    if any(kept_start(row.record) for row in table.rows):
        text += " = start: dev selection kept the untrained start (no mark against it)."
    if any(row.record.seeds for row in table.rows):
        text += r" (N seeds): mean $\pm$ sample sd over N training seeds; marks test per-query means over seeds."
    return text + " Bold: best per column; Publ.: published."


def _latex(tables: list[Table], profile: str, alpha: float, correction: str | None, records: list[Record]) -> str:
    out = [f"% Generated by rerank_lib.results.build_tables (profile: {profile}); "
           "needs \\usepackage{booktabs} and \\usepackage{graphicx}.", ""]
    if not tables:
        return "\n".join(out + [f"% No records for profile '{profile}' yet.", ""])
    for table in tables:
        measures = table.measures
        refs = _with_reference(table.records, measures)
        marks, n_tests = _marks(table, alpha, correction)
        numbered = len(table.compared) > 1
        header = ["Pipeline", "Method", "First stage"]
        for m in measures:
            header += [_tex(m)] + (["Publ."] if m in refs else [])
        tabular = [r"\begin{tabular}{lll" + "r" * (len(header) - 3) + "}", r"\toprule", " & ".join(header) + r" \\",
                   r"\midrule"]
        for i, row in enumerate(table.rows):
            r = row.record
            cells = [_tex(r.pipeline), _tex(row.label), _tex(stage_label(row.first_stage, row.depth)),
                     *_value_cells(table, i, marks, refs, lambda text, best: rf"\textbf{{{_tex(text)}}}" if best else _tex(text),
                                   lambda found: _tex_marks(found, numbered))]
            tabular.append(" & ".join(cells) + r" \\")
        tabular += [r"\bottomrule", r"\end{tabular}"]
        out += [f"% {table.title}", r"\begin{table*}[t]", r"\centering",
                rf"\caption{{{_tex_caption(table, alpha, correction, n_tests)}}}",
                rf"\label{{tab:{_tex_label(table.dataset, table.split, table.first_stage, table.depth)}}}",
                *_fit(tabular), r"\end{table*}", ""]
    folds = fold_means(records)
    if folds:
        measure = [k for k in folds[0] if k.startswith("mean ")][0][5:]
        best = max(row[f"mean {measure}"] for row in folds)
        tabular = [r"\begin{tabular}{lllrrr}", r"\toprule",
                   rf"Pipeline & Method & First stage & {_tex(DL_FOLDS[0])} & {_tex(DL_FOLDS[1])} & Mean \\",
                   r"\midrule"]
        for row in folds:
            mean = _fmt(row[f"mean {measure}"])
            tabular.append(" & ".join([_tex(row["pipeline"]), _tex(row["method"]), _tex(row["first stage"]), _fmt(row[f"{DL_FOLDS[0]} {measure}"]),
                                       _fmt(row[f"{DL_FOLDS[1]} {measure}"]),
                                       rf"\textbf{{{mean}}}" if row[f"mean {measure}"] == best else mean]) + r" \\")
        tabular += [r"\bottomrule", r"\end{tabular}"]
        out += ["% TREC DL folds", r"\begin{table}[t]", r"\centering",
                rf"\caption{{TREC DL 2019 and 2020: {_tex(measure)} per year and the mean of the two years, the "
                r"leak-free summary (trained models learn on one year and are tested on the other). Bold: best mean.}",
                r"\label{tab:trec-dl-folds}", *_fit(tabular), r"\end{table}", ""]
    return "\n".join(out)
