"""Tables from records: RESULTS.md for readers, results.csv for code, results.tex for the paper.

All three are rebuilt from the record files alone, with a fixed order (dataset and split, then pipeline and
method) and no timestamps, so rebuilding unchanged records gives byte-identical files and a clean git diff.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from ..atomic import write_text
from .record import Record, load_records

UP, DOWN = "▲", "▼"
CSV_COLUMNS = [
    "profile", "dataset", "split", "pipeline", "method", "model", "first_stage", "depth", "training_queries",
    "n_training_queries", "measure", "value", "reference_value", "reference_source", "significance", "seed",
    "wall_s", "git_commit", "created", "per_query",
]


def results_frame(records: list[Record]):
    """Long format, one row per record x measure (the rows of results.csv) as a pandas DataFrame."""
    import pandas as pd

    return pd.DataFrame(_long_rows(records), columns=CSV_COLUMNS)


def build_tables(results_dir: str | os.PathLike, profile: str = "default", alpha: float = 0.05) -> dict[str, Path]:
    """Write RESULTS.md, results.csv and results.tex under results_dir from the profile's records.

    Returns {'md': path, 'csv': path, 'tex': path}. The default profile's tables are RESULTS.md, results.csv and
    results.tex; another profile's carry its name (RESULTS.smoke.md ...) so a smoke run never replaces them. Significance marks come from each record's `significance`
    (computed by the notebook that had both runs): ▲/▼ when p < alpha, better/worse than the named method.
    """
    results_dir = Path(results_dir)
    records = load_records(results_dir, profile)
    sections = _sections(records)
    tag = "" if profile == "default" else f".{profile}"
    return {
        "md": write_text(results_dir / f"RESULTS{tag}.md", _markdown(sections, profile, alpha, len(records))),
        "csv": write_text(results_dir / f"results{tag}.csv", _csv(records)),
        "tex": write_text(results_dir / f"results{tag}.tex", _latex(sections, profile, alpha)),
    }


# ---------------------------------------------------------------------------------------------- shared


def _sections(records: list[Record]) -> list[tuple[str, str, list[Record]]]:
    groups: dict[tuple[str, str], list[Record]] = {}
    for record in sorted(records, key=lambda r: (r.dataset, r.split, r.pipeline, r.method, r.model)):
        groups.setdefault((record.dataset, record.split), []).append(record)
    return [(d, s, rs) for (d, s), rs in groups.items()]


def _measures(records: list[Record]) -> list[str]:
    return list(dict.fromkeys(m for r in records for m in r.metrics))


def _with_reference(records: list[Record], measures: list[str]) -> set[str]:
    return {m for m in measures if any(m in r.reference for r in records)}


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def _fmt_ref(value) -> str:
    """References keep up to 4 decimals when published that way (0.7376), at least 3 (0.74 -> 0.740)."""
    text = repr(float(value))
    decimals = len(text.split(".")[1]) if "." in text and "e" not in text else 3
    return f"{value:.{min(4, max(3, decimals))}f}"


NOT_SIGNIFICANT = "·"


def _marks(record: Record, measure: str, alpha: float) -> list[str]:
    """One mark per compared method, in the order of the *vs* column: ▲/▼ significant, · not (only when >1 compared)."""
    marks = []
    for vs in sorted(record.significance):
        test = record.significance[vs].get(measure)
        if test and test.get("p_value") is not None and test.get("delta") and test["p_value"] < alpha:
            marks.append(UP if test["delta"] > 0 else DOWN)
        else:
            marks.append(NOT_SIGNIFICANT)
    if len(marks) == 1 and marks[0] == NOT_SIGNIFICANT:
        return []
    return marks


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
        rows.append({"pipeline": pipeline, "method": method,
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


def _stage(record: Record) -> str:
    if not record.first_stage:
        return "–"
    return record.first_stage + (f" top-{record.depth}" if record.depth else "")


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


# ---------------------------------------------------------------------------------------------- markdown


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _markdown(sections, profile: str, alpha: float, n_records: int) -> str:
    out = [f"# Results (profile: {profile})", "",
           "Generated by `rerank_lib.results.build_tables` from the records under "
           f"`records/{profile}/`; edit the records, not this file.", ""]
    if not sections:
        out += [f"No records for profile '{profile}' yet.", ""]
        return "\n".join(out)
    commits = sorted({r.git_commit[:12] + ("-dirty" if r.git_commit.endswith("-dirty") else "")
                      for _, _, rs in sections for r in rs})
    out += [f"{n_records} records; commits: {', '.join(commits)}.", "",
            f"Values are means over the judged queries. {UP}/{DOWN}: significantly better/worse (p < {alpha}, paired "
            f"test recorded by the notebook) than the method(s) named under *vs*, one mark per method in that order "
            f"({NOT_SIGNIFICANT}: not significant); *start* is the model's own untrained or zero-shot starting point. "
            "Bold: best in the column.", ""]
    for dataset, split, records in sections:
        measures = _measures(records)
        refs = _with_reference(records, measures)
        header = ["pipeline", "method", "model", "first stage", "training queries"]
        for m in measures:
            header += [m] + ([f"{m} (published)"] if m in refs else [])
        header += ["wall time", "vs"]
        align = ["---"] * 5 + ["---:"] * (len(header) - 7) + ["---:", "---"]
        out += [f"## {dataset} / {split}", "", "| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
        notes = []
        for r in records:
            row = [r.pipeline, r.method, r.model or "–", _stage(r), _training(r)]
            for m in measures:
                value = r.metrics.get(m)
                cell = _fmt(value)
                if value is not None and value == _best(records, m):
                    cell = f"**{cell}**"
                row.append(cell + "".join(_marks(r, m, alpha)))
                if m in refs:
                    ref = r.reference.get(m)
                    row.append(_fmt_ref(ref["value"]) if ref else "")
                    if ref and ref.get("source"):
                        notes.append(f"- {r.pipeline}/{r.method}, {m}: {_fmt_ref(ref['value'])} from {ref['source']}")
            row += [_wall(r.wall_s), ", ".join(sorted(r.significance)) or ""]
            out.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
        out.append("")
        if notes:
            out += ["Published numbers:", *notes, ""]
    folds = fold_means([r for _, _, rs in sections for r in rs])
    if folds:
        measure = [k for k in folds[0] if k.startswith("mean ")][0][5:]
        out += ["## TREC DL: the two folds and their mean", "",
                f"Trained models learn on one year and are tested on the other; the mean of the two years' {measure} is "
                "the leak-free summary. Training queries: DL19 row / DL20 row.", "",
                f"| pipeline | method | training queries | {DL_FOLDS[0]} | {DL_FOLDS[1]} | mean |",
                "| --- | --- | --- | ---: | ---: | ---: |"]
        best = max(row[f"mean {measure}"] for row in folds)
        for row in folds:
            mean = _fmt(row[f"mean {measure}"])
            out.append("| " + " | ".join(_md_cell(c) for c in [
                row["pipeline"], row["method"], row["training"], _fmt(row[f"{DL_FOLDS[0]} {measure}"]),
                _fmt(row[f"{DL_FOLDS[1]} {measure}"]), f"**{mean}**" if row[f"mean {measure}"] == best else mean]) + " |")
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------- csv


def _long_rows(records: list[Record]) -> list[list]:
    rows = []
    for _, _, section in _sections(records):
        for r in section:
            for m, value in r.metrics.items():
                ref = r.reference.get(m, {})
                sig = {vs: tests[m] for vs, tests in sorted(r.significance.items()) if m in tests}
                rows.append([
                    r.profile, r.dataset, r.split, r.pipeline, r.method, r.model, r.first_stage, r.depth,
                    r.training_queries, r.n_training_queries, m, value, ref.get("value"), ref.get("source"),
                    json.dumps(sig, sort_keys=True) if sig else None, r.seed, r.wall_s, r.git_commit, r.created,
                    r.per_query,
                ])
    return rows


def _csv(records: list[Record]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in _long_rows(records):
        writer.writerow(["" if v is None else (repr(v) if isinstance(v, float) else v) for v in row])
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------- latex

_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _tex(text) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(text)).replace("–", "--")


def _latex(sections, profile: str, alpha: float) -> str:
    out = [f"% Generated by rerank_lib.results.build_tables (profile: {profile}); needs \\usepackage{{booktabs}}.", ""]
    if not sections:
        return "\n".join(out + [f"% No records for profile '{profile}' yet.", ""])
    for dataset, split, records in sections:
        measures = _measures(records)
        refs = _with_reference(records, measures)
        header = ["Pipeline", "Method", "First stage"]
        for m in measures:
            header += [_tex(m)] + (["Publ."] if m in refs else [])
        label = "".join(ch if ch.isalnum() else "-" for ch in f"{dataset}-{split}")
        out += [
            f"% {dataset} / {split}",
            r"\begin{table}[t]", r"\centering",
            rf"\caption{{{_tex(dataset)} ({_tex(split)}). $^\uparrow$/$^\downarrow$: significantly better/worse "
            rf"(paired test, $p < {alpha}$) than the compared method; bold: best per column; Publ.: published.}}",
            rf"\label{{tab:{label}}}",
            r"\begin{tabular}{lll" + "r" * (len(header) - 3) + "}", r"\toprule",
            " & ".join(header) + r" \\", r"\midrule",
        ]
        for r in records:
            row = [_tex(r.pipeline), _tex(r.method), _tex(_stage(r))]
            for m in measures:
                value = r.metrics.get(m)
                cell = _tex(_fmt(value))
                if value is not None and value == _best(records, m):
                    cell = rf"\textbf{{{cell}}}"
                for mark in _marks(r, m, alpha):
                    cell += r"$^\uparrow$" if mark == UP else r"$^\downarrow$"
                row.append(cell)
                if m in refs:
                    ref = r.reference.get(m)
                    row.append(_fmt_ref(ref["value"]) if ref else "")
            out.append(" & ".join(row) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(out)
