"""What the windows of a listwise reranker show: rank_llm's output-quality counts, agreement with a teacher's order,
latency per decoding mode, and whether a model fits the windows it trained on (Kendall tau of its FIRST scores)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd
import torch

from ..data.types import Run
from .objectives import first_position_mask
from .parsing import CATEGORIES


def window_rows(results: Sequence, dataset: str, model: str) -> list[dict]:
    """The rows every table and figure here reads: each WindowResult.to_dict() with its `dataset` and `model`."""
    return [dict(x.to_dict(), dataset=dataset, model=model) for x in results]

def quality_table(windows: Sequence[dict]) -> pd.DataFrame:
    """rank_llm's output-quality counts per model, decoding mode and dataset (FIRST always yields a complete
    permutation; so does constrained generation, whose mode reads 'generate (constrained)'). `windows`:
    WindowResult.to_dict() rows with `model` and `dataset` added."""
    df = pd.DataFrame(windows)
    if df.empty:
        return df
    if "constrained" in df:
        df["mode"] = [f"{m} (constrained)" if c else m for m, c in zip(df["mode"], df["constrained"].fillna(False))]
    counts = df.groupby(["model", "mode", "dataset", "category"]).size().unstack("category", fill_value=0)
    counts = counts.reindex(columns=list(CATEGORIES), fill_value=0)
    counts["windows"] = counts.sum(axis=1)
    return counts


def teacher_agreement(windows: Sequence[dict], teachers: Mapping[str, Run]) -> pd.DataFrame:
    """How each model's window orders agree with the teacher's order of the same passages (`teachers`: dataset ->
    run): mean Kendall tau and how often both put the same passage first; the same two measures for the window's
    input order (BM25 order for the first window) show what merely keeping the input order scores."""
    from scipy.stats import kendalltau

    rows = []
    for w in (w for w in windows if len(w.get("doc_ids") or []) >= 2):
        t = [teachers[w["dataset"]].get(w["qid"], {}).get(d, float("-inf")) for d in w["doc_ids"]]
        position = {i: p for p, i in enumerate(w["order"])}
        best = max(range(len(t)), key=lambda i: t[i])
        rows.append({"model": w["model"], "mode": w["mode"], "dataset": w["dataset"],
                     "tau": kendalltau([-position[i] for i in range(len(t))], t).statistic,
                     "top1": float(w["order"][0] == best), "input_tau": kendalltau([-i for i in range(len(t))], t).statistic,
                     "input_top1": float(best == 0)})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    out = df.groupby(["model", "mode", "dataset"]).agg(
        windows=("tau", "size"), kendall_tau=("tau", "mean"), top1_agreement=("top1", "mean"),
        input_order_tau=("input_tau", "mean"), input_order_top1=("input_top1", "mean"))
    return out.round(3)


def latency_figure(windows: Sequence[dict], path: str | os.PathLike) -> Path:
    """Per-window latency (seconds) by decoding mode: FIRST (one forward) against generation."""
    from matplotlib.figure import Figure

    from ..results import save_figure

    df = pd.DataFrame(windows)
    fig = Figure(figsize=(6.0, 3.6))
    ax = fig.add_subplot()
    groups = [(mode, df[df["mode"] == mode]["seconds"].tolist()) for mode in ("first", "generate")
              if (df["mode"] == mode).any()]
    ax.boxplot([g for _, g in groups], tick_labels=[f"{m}\n(n={len(g)}, median {pd.Series(g).median():.2f} s)"
                                               for m, g in groups])
    ax.set_ylabel("seconds per window")
    ax.set_title("listwise reranking latency per window (same model family, same windows)")
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)


def input_order_tau(examples: Sequence[dict]) -> float:
    """Mean Kendall tau between each encoded training window's input order and its teacher ranks."""
    from scipy.stats import kendalltau

    return sum(kendalltau(list(range(e["n_passages"])), e["ranks"][: e["n_passages"]]).statistic
               for e in examples) / len(examples)


def window_tau(lm, objective, examples: Sequence[dict]) -> float:
    """Mean Kendall tau between the model's own FIRST scores of each encoded window (the ranking loss's scores) and
    the teacher ranks it trained on: does the model fit its training windows?"""
    from scipy.stats import kendalltau

    lm.eval()
    taus = []
    with torch.no_grad():
        for e in examples:
            ids = torch.tensor([e["input_ids"]], device=next(lm.parameters()).device)
            select = first_position_mask(torch.tensor([e["first_pos"]], device=ids.device), ids.shape)
            scores = objective.scores(lm(ids, select=select), [e["n_passages"]])[0]
            taus.append(kendalltau((-scores.float()).cpu().numpy(), e["ranks"][: e["n_passages"]]).statistic)
    return float(sum(taus) / len(taus))
