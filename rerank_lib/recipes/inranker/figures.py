"""InRanker's figures and per-student tables: learning curves, agreement with the teacher, training summary."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pandas as pd

from ...evaluation import kendall_tau_agreement
from ...experiment import learning_curves
from ...results import save_figure
from .evaluation import Evaluation
from .settings import InRankerConfig
from .training import Student


def learning_curves_figure(cfg: InRankerConfig, students: Mapping[str, Student | None], results_dir) -> Path:
    """Training loss and dev nDCG@10 against steps (step 0: the start), the selected checkpoint circled."""
    shown = {key: s.selected for key, s in students.items() if s is not None and s.selected.curve}
    return learning_curves(shown, Path(results_dir) / "figures" / f"inranker_learning_curves_{cfg.profile}.png")


def agreement(ev: Evaluation, pairs: Mapping[str, tuple[str, str]]) -> pd.DataFrame:
    """Kendall tau (per query, averaged) between each model's scores and the teacher's on the same candidates."""
    rows = [{"model": label, "dataset": dataset,
             "Kendall tau with teacher": kendall_tau_agreement(ev.runs[(method, dataset)], ev.teacher[dataset])}
            for label, (method, dataset) in pairs.items() if (method, dataset) in ev.runs and ev.teacher.get(dataset)]
    return pd.DataFrame(rows).round(4)


def agreement_figure(cfg: InRankerConfig, ev: Evaluation, pairs: Mapping[str, tuple[str, str]], results_dir) -> Path:
    """Scatter of student score (true - false margin) against teacher score, pooled over queries, per panel."""
    from matplotlib.figure import Figure

    shown = {k: v for k, v in pairs.items() if v in ev.runs and ev.teacher.get(v[1])}
    fig = Figure(figsize=(3.6 * max(1, len(shown)), 3.4))
    for i, (label, (method, dataset)) in enumerate(shown.items(), start=1):
        run, teacher = ev.runs[(method, dataset)], ev.teacher[dataset]
        both = [(teacher[q][d], run[q][d]) for q in run for d in run[q] if d in teacher.get(q, {})]
        ax = fig.add_subplot(1, len(shown), i)
        ax.scatter([x for x, _ in both], [y for _, y in both], s=4, alpha=0.35)
        ax.set_title(f"{label} on {dataset}\nmean per-query τ = {kendall_tau_agreement(run, teacher):.3f}", fontsize=9)
        ax.set(xlabel="teacher score", ylabel="student margin (true − false)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, Path(results_dir) / "figures" / f"inranker_teacher_agreement_{cfg.profile}.png")


def training_table(students: Mapping[str, Student | None]) -> pd.DataFrame:
    """One row per trained student: its data, steps, the dev values at the start and at the selected checkpoint."""
    rows = []
    for key, s in ((k, s) for k, s in students.items() if s is not None):
        sel = s.selected
        at = {row["step"]: row for row in sel.curve}
        rows.append({"student": key, "method": s.method, "pairs": s.data.get("pairs"), "queries": s.data.get("queries"),
                     "label margin mean±sd": f"{s.data.get('margin_mean')}±{s.data.get('margin_std')}",
                     "steps": sel.result.global_step, "selected step": sel.step,
                     "dev nDCG@10 step 0": sel.start_value, "dev nDCG@10 selected": sel.value,
                     "dev τ step 0": at.get(0, {}).get("teacher_tau"),
                     "dev τ selected": at.get(sel.step, {}).get("teacher_tau"),
                     "final train loss": sel.result.history[-1]["loss"] if sel.result.history else None,
                     "wall s": round(sel.wall_s, 1)})
    return pd.DataFrame(rows).round(4)
