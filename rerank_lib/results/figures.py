"""Figure helpers: a summary of every dataset's leaderboard as small multiples, and learning curves.

They draw on a bare Agg `Figure` (no pyplot), so they work headless, leave the notebook's backend alone and
leak no open figures; each file is written atomically (temp file, then rename).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..atomic import atomic_open
from ..evaluation import kendall_tau_agreement
from .record import Record
from .tables import COST_MEASURE, cost_figure_name, cost_tables, leaderboards


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Save atomically in the format of the suffix (png when there is none)."""
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".png")
    FigureCanvasAgg(fig)
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format=path.suffix[1:], dpi=dpi, bbox_inches="tight")
    return path


def plot_metric_bars(records: Sequence[Record], measure: str, path: str | os.PathLike,
                     title: str | None = None, dpi: int = 150) -> Path:
    """Small multiples: one panel per dataset, each a horizontal bar chart of its leaderboard's methods (the main
    table of `tables.leaderboards`, so every bar in a panel ranks the same candidates), best on top; published
    values as black ticks. Interpolation rows at weight 0 or 1 are left out (they are the first stage or the
    model). At most 8 inches wide (1,200 px at 150 dpi), so it reads at page width."""
    boards = [t for t in leaderboards([r for r in records if r.metrics.get(measure) is not None]) if t.main]
    panels = []
    for board in boards:
        rows = sorted((row for row in board.rows if row.identity is None), key=lambda row: row.record.metrics[measure])
        if rows:
            panels.append((board, rows))
    if not panels:
        raise ValueError(f"no record has a value for {measure!r}")
    heights = [1.0 + 0.24 * len(rows) for _, rows in panels]
    fig = Figure(figsize=(8.0, 0.5 + sum(heights)), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    top = max(row.record.metrics[measure] for _, rows in panels for row in rows)
    for ax, (board, rows) in zip(axes, panels):
        ys = range(len(rows))
        values = [row.record.metrics[measure] for row in rows]
        colors = ["#8c8c8c" if not row.reranks else "#3b6ea5" for row in rows]
        ax.barh(ys, values, color=colors, height=0.7)
        for y, value in zip(ys, values):
            ax.text(value, y, f" {value:.3f}", va="center", fontsize=7)
        refs = [(y, row.record.reference[measure]["value"]) for y, row in zip(ys, rows) if measure in row.record.reference]
        if refs:
            ax.scatter([v for _, v in refs], [y for y, _ in refs], marker="|", s=120, color="black", zorder=3,
                       label="published")
            ax.legend(fontsize=7, loc="lower right")
        ax.set_yticks(list(ys), [f"{row.record.pipeline}/{row.label}" for row in rows], fontsize=7)
        ax.set_xlim(0, min(1.0, top * 1.15) if top > 0 else 1.0)
        stage = f"; rerankers of {board.first_stage} top-{board.depth}" if board.first_stage else ""
        ax.set_title(f"{board.dataset} / {board.split}{stage}", fontsize=9, loc="left")
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel(f"{measure} (grey: corpus retrieval; blue: reranking)")
    fig.suptitle(title or measure, fontsize=10)
    return save_figure(fig, path, dpi=dpi)


def plot_cost_quality(records: Sequence[Record], results_dir: str | os.PathLike, profile: str,
                      dpi: int = 150) -> Path | None:
    """nDCG@10 against latency per query (log x axis) for every reranker with both, written to
    `<results_dir>/figures/<tables.cost_figure_name(profile)>` (the file RESULTS.md's cost table names); None, and
    no file, when no record has a latency. One panel per table of `tables.cost_tables` (a test set at one first
    stage and depth, so a panel compares rankers of the same candidates); filled dots for a model, hollow ones for
    its `+interp` row (same latency), dashed lines for the table's rows without a latency (the first stage, corpus
    retrievers). Up-and-left is better."""
    from matplotlib.ticker import LogLocator, NullFormatter

    panels = cost_tables(list(records), with_latency=True)
    if not panels:
        return None
    full = {(t.dataset, t.split, t.first_stage, t.depth): t for t in leaderboards(list(records))}
    cols = min(2, len(panels))
    rows_n = (len(panels) + cols - 1) // cols
    fig = Figure(figsize=(4.6 * cols, 3.8 * rows_n), layout="constrained")
    axes = fig.subplots(rows_n, cols, squeeze=False).ravel()
    for ax, table in zip(axes, panels):
        for row in table.rows:
            r = row.record
            x, y = r.latency_s_per_query, r.metrics[COST_MEASURE]
            ax.scatter([x], [y], s=28, color="#3b6ea5", facecolors="none" if row.interpolated else "#3b6ea5", zorder=3)
            ax.annotate(row.label, (x, y), fontsize=5.5, xytext=(3, 2), textcoords="offset points")
        for other in full[(table.dataset, table.split, table.first_stage, table.depth)].rows:
            value = other.record.metrics.get(COST_MEASURE)
            if other.record.latency_s_per_query is None and value is not None and not other.interpolated:
                ax.axhline(value, linestyle="--", linewidth=0.8, color="grey")
                ax.annotate(other.label, (0.01, value), xycoords=("axes fraction", "data"), fontsize=5.5, color="grey",
                            va="bottom")
        xs = [row.record.latency_s_per_query for row in table.rows]
        ax.set_xscale("log")
        ax.set_xlim(max(min(xs), 1e-6) / 3, max(max(xs), 1e-6) * 3)  # at least a decade, room for the labels
        ax.xaxis.set_major_locator(LogLocator(base=10))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(table.title, fontsize=8, loc="left")
        ax.set(xlabel="latency per query (s, log)", ylabel=COST_MEASURE)
        ax.grid(alpha=0.3, which="both")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f"{COST_MEASURE} against latency per query ({profile} profile; hollow: +interp)", fontsize=10)
    return save_figure(fig, Path(results_dir) / "figures" / cost_figure_name(profile), dpi=dpi)


def _columns(history: Any) -> dict[str, list]:
    """A list of dicts (a trainer log), a dict of lists or a DataFrame -> {column: values} (None where absent)."""
    if hasattr(history, "to_dict") and hasattr(history, "columns"):
        return {str(c): history[c].tolist() for c in history.columns}
    if isinstance(history, Mapping):
        return {str(k): list(v) for k, v in history.items()}
    rows = list(history)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return {k: [row.get(k) for row in rows] for k in keys}


def plot_curve(history: Any, x: str, y: str | Iterable[str], path: str | os.PathLike, title: str | None = None,
               logy: bool = False) -> Path:
    """Learning curves of one or more logged values against `x` (steps without a value are skipped)."""
    cols = _columns(history)
    names = [y] if isinstance(y, str) else list(y)
    for name in [x, *names]:
        if name not in cols:
            raise KeyError(f"{name!r} is not in the history (has {sorted(cols)})")
    fig = Figure(figsize=(6.0, 3.8))
    ax = fig.add_subplot()
    for name in names:
        pts = [(a, b) for a, b in zip(cols[x], cols[name]) if a is not None and b is not None and b == b]
        ax.plot([a for a, _ in pts], [b for _, b in pts], marker="o" if len(pts) < 30 else None, label=name)
    ax.set_xlabel(x)
    ax.set_ylabel(names[0] if len(names) == 1 else "value")
    if logy:
        ax.set_yscale("log")
    if len(names) > 1:
        ax.legend(fontsize="small")
    ax.set_title(title or ", ".join(names))
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_per_query_delta(deltas: Mapping[str, Mapping[str, float]], measure: str, path: str | os.PathLike,
                         title: str | None = None) -> Path:
    """One panel per comparison: the per-query difference (b - a) of `measure`, sorted, so a reader sees whether
    a mean gain comes from many queries or a few. `deltas` maps a panel label to {qid: delta}."""
    fig = Figure(figsize=(4.2 * max(1, len(deltas)), 3.2))
    for i, (label, values) in enumerate(deltas.items(), start=1):
        ax = fig.add_subplot(1, len(deltas), i)
        ys = sorted(values.values())
        colors = ["#2a7d2a" if y > 0 else "#b23b3b" if y < 0 else "#999999" for y in ys]
        ax.bar(range(len(ys)), ys, color=colors, width=1.0)
        ax.axhline(0, color="black", linewidth=0.6)
        wins, losses = sum(y > 0 for y in ys), sum(y < 0 for y in ys)
        ax.set_title(f"{label}\n{wins} better, {losses} worse, mean {sum(ys) / max(1, len(ys)):+.3f}", fontsize=9)
        ax.set_xlabel("queries (sorted)")
        ax.set_ylabel(f"Δ {measure}")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def scatter_panels(panels: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: str | os.PathLike,
                   xlabel: str, ylabel: str) -> Path:
    """One scatter panel per title -> (xs, ys), side by side (e.g. a student's scores against its teacher's)."""
    fig = Figure(figsize=(3.6 * max(1, len(panels)), 3.4))
    for i, (title, (xs, ys)) in enumerate(panels.items(), start=1):
        ax = fig.add_subplot(1, len(panels), i)
        ax.scatter(xs, ys, s=4, alpha=0.35)
        ax.set_title(title, fontsize=9)
        ax.set(xlabel=xlabel, ylabel=ylabel)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def teacher_agreement_figure(runs: Mapping[tuple[str, str], Mapping[str, Mapping[str, float]]],
                             teachers: Mapping[str, Mapping[str, Mapping[str, float]]],
                             pairs: Mapping[str, tuple[str, str]], path: str | os.PathLike,
                             ylabel: str = "student score") -> Path:
    """Scatter of each student's scores against its teacher's on the same candidates, pooled over queries: one
    panel per `label -> (method, dataset)` of `pairs` with a run in `runs` and a teacher run in `teachers`, its
    title carrying the mean per-query Kendall tau. Here, not in a recipe: any distillation pipeline draws it."""
    panels = {}
    for label, (method, dataset) in ((k, v) for k, v in pairs.items() if v in runs and teachers.get(v[1])):
        run, teacher = runs[(method, dataset)], teachers[dataset]
        both = [(teacher[q][d], run[q][d]) for q in run for d in run[q] if d in teacher.get(q, {})]
        title = f"{label} on {dataset}\nmean per-query τ = {kendall_tau_agreement(run, teacher):.3f}"
        panels[title] = ([x for x, _ in both], [y for _, y in both])
    return scatter_panels(panels, path, xlabel="teacher score", ylabel=ylabel)
