"""The RankLLM recipe's report: the results table, teacher agreement and output quality of the windows, the
latency figure and the dev learning curves."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ...listwise.parsing import CATEGORIES
from ...results import plot_curve, save_figure
from ...experiment import load_run
from .evalsets import teacher_name
from .settings import MEASURE, RankLLMConfig
from .training import Trained


def results_table(records: list) -> pd.DataFrame:
    """nDCG@10 per method and dataset, with the paired-test deltas against BM25 and the start."""
    rows = []
    for r in records:
        sig = r.significance or {}
        row = {"dataset": f"{r.dataset}/{r.split}", "method": r.method, MEASURE: r.metrics.get(MEASURE),
               "training": r.training_queries}
        for vs in ("bm25", "start"):
            if vs in sig and MEASURE in sig[vs]:
                d, p = sig[vs][MEASURE]["delta"], sig[vs][MEASURE]["p_value"]
                row[f"vs {vs}"] = f"{d:+.3f} (p={p:.3f})"
        ref = (r.reference or {}).get(MEASURE)
        row["published"] = ref["value"] if ref else None
        rows.append(row)
    return pd.DataFrame(rows).set_index(["dataset", "method"]).sort_index()


def teacher_agreement(cfg: RankLLMConfig, windows: list, results_dir) -> pd.DataFrame:
    """How each model's window orders agree with the teacher's order of the same passages: mean Kendall tau and
    how often both put the same passage first; the same two measures for the window's input order (BM25 order for
    the first window) show what merely keeping the input order scores."""
    from scipy.stats import kendalltau

    teachers = {}
    rows = []
    for w in windows:
        if len(w.get("doc_ids") or []) < 2:
            continue
        name = w["dataset"]
        if name not in teachers:
            teachers[name] = load_run(results_dir, cfg.profile, name, "test", teacher_name(cfg, name))
        scores = teachers[name].get(w["qid"], {})
        t = [scores.get(d, float("-inf")) for d in w["doc_ids"]]
        model_rank = [0] * len(t)
        for position, i in enumerate(w["order"]):
            model_rank[i] = -position
        teacher_best = max(range(len(t)), key=lambda i: t[i])
        rows.append({"model": w["model"], "mode": w["mode"], "dataset": name,
                     "tau": kendalltau(model_rank, t).statistic, "top1": float(w["order"][0] == teacher_best),
                     "input_tau": kendalltau([-i for i in range(len(t))], t).statistic,
                     "input_top1": float(teacher_best == 0)})
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
    for c in CATEGORIES:
        if c not in counts:
            counts[c] = 0
    counts = counts[list(CATEGORIES)]
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


def learning_curves(trained: list[Trained], path) -> tuple[pd.DataFrame, Path]:
    """Dev nDCG@10 against optimizer steps for every trained model (step 0: the untrained model)."""
    rows = []
    for tr in trained:
        rows.append({"step": 0, "run": tr.name, **tr.start_dev})
        rows += [{"run": tr.name, **{k: v for k, v in row.items() if k not in ("kind", "epoch")}}
                 for row in tr.result.eval_history]
    df = pd.DataFrame(rows)
    wide = df.pivot_table(index="step", columns="run", values=f"dev_{MEASURE}").reset_index()
    return df, plot_curve(wide, "step", [c for c in wide.columns if c != "step"], path,
                          title=f"dev {MEASURE} (FIRST reranking of the dev slices)")
