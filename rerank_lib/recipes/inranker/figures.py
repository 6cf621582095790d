"""InRanker's figures and per-student tables: learning curves, agreement with the teacher, training summary."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pandas as pd

from ...inranker import kendall_tau_agreement
from ...results import save_figure
from .evaluation import Evaluation
from .settings import InRankerConfig
from .student import Student


def learning_curves_figure(cfg: InRankerConfig, students: Mapping[str, Student | None], results_dir) -> Path:
    """Dev nDCG@10 (and Kendall tau with the teacher) against training steps, one panel per trained student."""
    from matplotlib.figure import Figure

    shown = {k: s for k, s in students.items() if s is not None and s.curve}
    fig = Figure(figsize=(4.0 * max(1, len(shown)), 3.4))
    for i, (key, s) in enumerate(shown.items(), start=1):
        ax = fig.add_subplot(1, len(shown), i)
        steps = [row["step"] for row in s.curve]
        ax.plot(steps, [row["nDCG@10"] for row in s.curve], marker="o", label="dev nDCG@10")
        if any("teacher_tau" in row for row in s.curve):
            ax.plot(steps, [row.get("teacher_tau") for row in s.curve], marker="s", label="Kendall τ with teacher")
        best = s.params.get("best_step")
        if best is not None:
            ax.axvline(best, color="grey", linestyle=":", linewidth=1)
        ax.set_title(f"{key}\n{s.method}", fontsize=9)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        if i == 1:
            ax.legend(fontsize="small")
    fig.tight_layout()
    return save_figure(fig, Path(results_dir) / "figures" / f"inranker_learning_curves_{cfg.profile}.png")


def agreement(evaluation: Evaluation, pairs: Mapping[str, tuple[str, str]]) -> pd.DataFrame:
    """Kendall tau (per query, averaged) between each model's scores and the teacher's on the same candidates."""
    rows = []
    for label, (method, dataset) in pairs.items():
        run = evaluation.runs.get((method, dataset))
        if run is None or not evaluation.teacher.get(dataset):
            continue
        rows.append({"model": label, "dataset": dataset,
                     "Kendall tau with teacher": kendall_tau_agreement(run, evaluation.teacher[dataset])})
    return pd.DataFrame(rows).round(4)


def agreement_figure(cfg: InRankerConfig, evaluation: Evaluation, pairs: Mapping[str, tuple[str, str]],
                     results_dir) -> Path:
    """Scatter of student score (true - false margin) against teacher score, pooled over queries, per panel."""
    from matplotlib.figure import Figure

    shown = {k: v for k, v in pairs.items() if v in evaluation.runs and evaluation.teacher.get(v[1])}
    fig = Figure(figsize=(3.6 * max(1, len(shown)), 3.4))
    for i, (label, (method, dataset)) in enumerate(shown.items(), start=1):
        run, teacher = evaluation.runs[(method, dataset)], evaluation.teacher[dataset]
        xs = [teacher[q][d] for q in run for d in run[q] if d in teacher.get(q, {})]
        ys = [run[q][d] for q in run for d in run[q] if d in teacher.get(q, {})]
        tau = kendall_tau_agreement(run, teacher)
        ax = fig.add_subplot(1, len(shown), i)
        ax.scatter(xs, ys, s=4, alpha=0.35)
        ax.set_title(f"{label} on {dataset}\nmean per-query τ = {tau:.3f}", fontsize=9)
        ax.set_xlabel("teacher score")
        ax.set_ylabel("student margin (true − false)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, Path(results_dir) / "figures" / f"inranker_teacher_agreement_{cfg.profile}.png")


def training_table(students: Mapping[str, Student | None]) -> pd.DataFrame:
    """One row per trained student: its data, steps, the dev metric at the start and at the selected step."""
    rows = []
    for key, s in students.items():
        if s is None:
            continue
        best = max(s.curve, key=lambda r: r["nDCG@10"]) if s.curve else {}
        rows.append({"student": key, "method": s.method, "pairs": s.data.get("pairs"), "queries": s.data.get("queries"),
                     "label margin mean±sd": f"{s.data.get('margin_mean')}±{s.data.get('margin_std')}",
                     "steps": s.params.get("steps"), "selected step": s.params.get("best_step"),
                     "dev nDCG@10 step 0": s.curve[0]["nDCG@10"] if s.curve else None,
                     "dev nDCG@10 selected": best.get("nDCG@10"),
                     "dev τ step 0": s.curve[0].get("teacher_tau") if s.curve else None,
                     "dev τ selected": best.get("teacher_tau"),
                     "final train loss": s.history[-1]["loss"] if s.history else None,
                     "wall s": round(s.wall_s, 1)})
    return pd.DataFrame(rows).round(4)
