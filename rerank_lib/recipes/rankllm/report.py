"""The RankLLM recipe's report: the results tables (experiment.results_table per evaluation set), teacher
agreement and output quality of the windows, and the latency figure."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ... import experiment
from ...experiment import load_run
from ...listwise.parsing import CATEGORIES
from ...results import save_figure
from .evalsets import teacher_name
from .settings import MEASURE, RankLLMConfig


def results_table(records: list) -> pd.DataFrame:
    """experiment.results_table per evaluation set (rows: methods; Δ vs BM25 and vs the zero-shot start, paired
    tests), with the published number of the full-size model beside the row it compares with."""
    tables = {}
    for key in dict.fromkeys(f"{r.dataset}/{r.split}" for r in records):
        rows = [r for r in records if f"{r.dataset}/{r.split}" == key]
        table = experiment.results_table(rows, measures=(MEASURE,), bases=("bm25", "start"))
        table["published"] = [((r.reference or {}).get(MEASURE) or {}).get("value", "") for r in rows]
        tables[key] = table
    return pd.concat(tables, names=["dataset"])


def teacher_agreement(cfg: RankLLMConfig, windows: list, results_dir) -> pd.DataFrame:
    """How each model's window orders agree with the teacher's order of the same passages: mean Kendall tau and
    how often both put the same passage first; the same two measures for the window's input order (BM25 order for
    the first window) show what merely keeping the input order scores."""
    from scipy.stats import kendalltau

    teachers, rows = {}, []
    for w in (w for w in windows if len(w.get("doc_ids") or []) >= 2):
        name = w["dataset"]
        if name not in teachers:
            teachers[name] = load_run(results_dir, cfg.profile, name, "test", teacher_name(cfg, name))
        t = [teachers[name].get(w["qid"], {}).get(d, float("-inf")) for d in w["doc_ids"]]
        position = {i: p for p, i in enumerate(w["order"])}
        best = max(range(len(t)), key=lambda i: t[i])
        rows.append({"model": w["model"], "mode": w["mode"], "dataset": name,
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


def quality_table(windows: list) -> pd.DataFrame:
    """rank_llm's output-quality counts per model and decoding (FIRST always yields a complete permutation)."""
    df = pd.DataFrame(windows)
    if df.empty:
        return df
    counts = df.groupby(["model", "mode", "dataset", "category"]).size().unstack("category", fill_value=0)
    counts = counts.reindex(columns=list(CATEGORIES), fill_value=0)
    counts["windows"] = counts.sum(axis=1)
    return counts


def latency_figure(windows: list, path) -> Path:
    """Per-window latency (seconds) by decoding mode: FIRST (one forward) against generation."""
    from matplotlib.figure import Figure

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
