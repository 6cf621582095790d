"""One learning-curve figure, one dev-curve table and one results table for every pipeline."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..data.types import Run
from ..evaluation import evaluate
from ..results import Record, save_figure
from .records import comparison_cells
from .selection import Selected


def curve_table(selected: Mapping[str, Selected], metric: str | None = None,
                reference: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Dev `metric` per evaluated step (rows; step 0 is the untrained start) and run (columns); `reference` adds
    constant columns (e.g. the first stage on the same dev slice)."""
    rows = []
    for label, sel in selected.items():
        name = metric or sel.metric
        rows += [{"run": label, "step": row["step"], name: row.get(name)} for row in sel.curve]
    if not rows:
        return pd.DataFrame()
    name = metric or next(iter(selected.values())).metric
    table = pd.DataFrame(rows).pivot_table(index="step", columns="run", values=name).round(4)
    for label, value in (reference or {}).items():
        table[f"({label})"] = round(value, 4)
    return table


def selection_row(selected: Selected, metrics: Mapping[str, str] | None = None, last: bool = False) -> dict:
    """A run's training summary as table cells: steps, the selected step, each dev metric ({label: curve key}, default
    the selection metric) at step 0, at the selected step (and last, with `last`), the final loss, the seconds."""
    at = {row["step"]: row for row in selected.curve}
    row = {"steps": selected.result.global_step, "selected step": selected.step}
    for label, key in (metrics or {selected.metric: selected.metric}).items():
        row[f"dev {label} step 0"] = at.get(0, {}).get(key)
        row[f"dev {label} selected"] = at.get(selected.step, {}).get(key)
        if last:
            row[f"dev {label} last"] = selected.curve[-1].get(key) if selected.curve else None
    history = selected.result.history
    return {**row, "final train loss": history[-1]["loss"] if history else None, "wall s": round(selected.wall_s, 1)}


def learning_curves(selected: Mapping[str, Selected], path: str | os.PathLike, metric: str | None = None,
                    title: str = "", smooth: int = 5, reference: Mapping[str, float] | None = None) -> Path:
    """Left: each run's training loss over its first logged value (running mean of `smooth` steps); right: the dev
    metric per evaluated step from the start (step 0), the selected step circled, `reference` values dashed."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.8))
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for label, sel in selected.items():
        steps = [r["step"] for r in sel.result.history]
        losses = [r["loss"] for r in sel.result.history]
        if smooth > 1 and len(losses) >= smooth:
            losses = np.convolve(losses, np.ones(smooth) / smooth, mode="valid").tolist()
            steps = steps[smooth - 1:]
        if losses:
            ax1.plot(steps, np.asarray(losses) / (losses[0] or 1.0), label=label)
        name = metric or sel.metric
        if name and sel.curve:
            line, = ax2.plot([r["step"] for r in sel.curve], [r.get(name) for r in sel.curve], marker="o", label=label)
            if sel.step is not None and metric in (None, sel.metric):
                ax2.scatter([sel.step], [sel.value], s=160, facecolors="none", edgecolors=line.get_color(), zorder=3)
    for label, value in (reference or {}).items():
        ax2.axhline(value, linestyle="--", color="grey", linewidth=1)
        ax2.annotate(label, (0, value), fontsize="small", color="grey", va="bottom")
    name = metric or next((s.metric for s in selected.values() if s.metric), "dev metric")
    ax1.set(xlabel="step", ylabel=f"loss / first logged loss (running mean of {smooth})", title="training loss")
    ax2.set(xlabel="step", ylabel=f"dev {name}", title="dev slice (checkpoint selection; circle: selected)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def results_table(records: Sequence[Record], measures: Sequence[str] = ("nDCG@10", "RR@10"),
                  bases: Sequence[str] = ("bm25", "start"), first_stage: tuple[str, Run, object] | None = None,
                  alpha: float = 0.05, columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per record: its measures, the paired-test cells against each named baseline (▲/▼ when p < alpha)
    and a `+interp` row's dev-chosen weight. `first_stage=(label, run, qrels)` adds the first stage's own row on
    top; `columns={'column': 'params key'}` adds record params as columns. With rows trained over several seeds,
    a `seeds` column and `<measure> sd` columns (sample sd over seeds) follow the values (means over seeds)."""
    rows = []
    if first_stage is not None:
        label, run, qrels = first_stage
        rows.append({"method": label, **{m: round(v, 4) for m, v in evaluate(run, qrels, list(measures)).items()}})
    for r in records:
        row = {"method": r.method, **{m: round(r.metrics[m], 4) for m in measures if m in r.metrics}}
        if any(other.seeds for other in records):  # rows over several training seeds: their number and sd
            row.update({"seeds": len(r.seeds) or 1, **{f"{m} sd": round(r.sd(m), 4) for m in measures if r.sd(m) is not None}})
        for column, key in (columns or {}).items():
            row[column] = (r.params or {}).get(key, "")
        for m in measures[:1]:
            row.update(comparison_cells(r, bases=bases, measure=m, alpha=alpha))
        rows.append(row)
    return pd.DataFrame(rows).set_index("method").fillna("")
