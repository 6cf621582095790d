"""InRanker's figures and per-student tables: learning curves, agreement with the teacher, training summary."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pandas as pd

from ...evaluation import kendall_tau_agreement
from ...experiment import learning_curves, selection_row
from ...results.figures import scatter_panels
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
    panels = {}
    for label, (method, dataset) in ((k, v) for k, v in pairs.items() if v in ev.runs and ev.teacher.get(v[1])):
        run, teacher = ev.runs[(method, dataset)], ev.teacher[dataset]
        both = [(teacher[q][d], run[q][d]) for q in run for d in run[q] if d in teacher.get(q, {})]
        title = f"{label} on {dataset}\nmean per-query τ = {kendall_tau_agreement(run, teacher):.3f}"
        panels[title] = ([x for x, _ in both], [y for _, y in both])
    return scatter_panels(panels, Path(results_dir) / "figures" / f"inranker_teacher_agreement_{cfg.profile}.png",
                          xlabel="teacher score", ylabel="student margin (true − false)")


def training_table(students: Mapping[str, Student | None]) -> pd.DataFrame:
    """One row per trained student: its data, steps, the dev values at the start and at the selected checkpoint."""
    return pd.DataFrame([{"student": key, "method": s.method, "pairs": s.data.get("pairs"),
                          "queries": s.data.get("queries"),
                          "label margin mean±sd": f"{s.data.get('margin_mean')}±{s.data.get('margin_std')}",
                          **selection_row(s.selected, {"nDCG@10": "nDCG@10", "τ": "teacher_tau"})}
                         for key, s in students.items() if s is not None]).round(4)
