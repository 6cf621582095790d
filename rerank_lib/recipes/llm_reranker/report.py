"""The LLM-reranker recipe's report: the results table and the training and dev curves."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ...results import save_figure
from ...experiment import comparison_cells
from .data import LLMData
from .rows import Row


def results_table(rows_or_records, data: LLMData, alpha: float = 0.05) -> pd.DataFrame:
    """nDCG@10 / RR@10 per record on the evaluated test queries, with paired tests vs BM25 and vs the start."""
    records = [r for x in rows_or_records for r in (x.records if isinstance(x, Row) else [x])]
    out = []
    for r in records:
        out.append({"method": r.method, "nDCG@10": round(r.metrics["nDCG@10"], 4), "RR@10": round(r.metrics["RR@10"], 4),
                    **comparison_cells(r, alpha=alpha, label="Δ nDCG@10 vs {base}"), "training": r.training_queries})
    return pd.DataFrame(out).set_index("method")


def curves_figure(rows: list[Row], path) -> Path:
    """Dev nDCG@10 against training step for every trained model, step 0 = its starting point."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.8))
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for row in rows:
        if row.result is None:
            continue
        hist = row.result.history
        ax1.plot([h["step"] for h in hist], [h["loss"] for h in hist], label=row.method)
        ev = row.result.eval_history
        steps = ([0] if row.start_dev else []) + [e["step"] for e in ev]
        values = ([row.start_dev["nDCG@10"]] if row.start_dev else []) + [e["nDCG@10"] for e in ev]
        ax2.plot(steps, values, marker="o", label=row.method)
    ax1.set(xlabel="step", ylabel="training loss", title="training loss (each model its own loss)")
    ax2.set(xlabel="step", ylabel="dev nDCG@10", title="dev slice: learning curve (step 0 = start)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    return save_figure(fig, path)


def learning_curves(rows: list[Row]) -> pd.DataFrame:
    data = []
    for row in rows:
        if row.result is None:
            continue
        if row.start_dev:
            data.append({"model": row.method, "step": 0, "dev nDCG@10": round(row.start_dev["nDCG@10"], 4)})
        data += [{"model": row.method, "step": e["step"], "dev nDCG@10": round(e["nDCG@10"], 4)}
                 for e in row.result.eval_history]
    return pd.DataFrame(data).pivot_table(index="step", columns="model", values="dev nDCG@10")
