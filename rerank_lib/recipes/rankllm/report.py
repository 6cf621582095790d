"""The RankLLM recipe's report: the results tables (experiment.results_table per evaluation set) and the windows'
agreement with the saved teachers (output quality and latency: rerank_lib.listwise.analysis)."""
from __future__ import annotations

import pandas as pd

from ... import experiment
from ...experiment import load_run
from ...listwise import analysis
from .evalsets import teacher_name
from .settings import MEASURE, RankLLMConfig


def sliding(record) -> str:
    """'30/10/5' for a listwise row (its depth, window and stride), '' for the others (BM25, the teacher)."""
    p = record.params or {}
    return f"{p['depth']}/{p['window']}/{p['stride']}" if "llm_calls_per_query" in p else ""


def results_table(records: list) -> pd.DataFrame:
    """experiment.results_table per evaluation set (rows: methods; Δ vs BM25 and vs the zero-shot start, paired
    tests), the sliding window each listwise row ran (depth/window/stride, LLM calls per query) and the published
    number of the full-size model beside the row it compares with."""
    tables = {}
    for key in dict.fromkeys(f"{r.dataset}/{r.split}" for r in records):
        rows = [r for r in records if f"{r.dataset}/{r.split}" == key]
        table = experiment.results_table(rows, measures=(MEASURE,), bases=("bm25", "start"))
        table["depth/window/stride"] = [sliding(r) for r in rows]
        table["LLM calls/query"] = [(r.params or {}).get("llm_calls_per_query", "") for r in rows]
        table["published"] = [((r.reference or {}).get(MEASURE) or {}).get("value", "") for r in rows]
        tables[key] = table
    return pd.concat(tables, names=["dataset"])


def teacher_agreement(cfg: RankLLMConfig, windows: list, results_dir) -> pd.DataFrame:
    """listwise.analysis.teacher_agreement against the saved teacher run of each dataset (02_teacher)."""
    names = sorted({w["dataset"] for w in windows if len(w.get("doc_ids") or []) >= 2})
    return analysis.teacher_agreement(windows, {name: load_run(results_dir, cfg.profile, name, "test", teacher_name(
        cfg, name)) for name in names})
