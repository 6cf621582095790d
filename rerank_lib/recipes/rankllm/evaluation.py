"""Records: the untrained model with FIRST on every evaluation set (the `start` of every trained row), the trained
models on their fold's evaluation year and SciFact test (each with its '+interp' row), generation decoding where
asked or on a DL19 sample (output quality, latency), and the rendered prompt the model reads; the report: the results
tables (experiment.results_table per evaluation set) and the windows' agreement with the saved teachers (output
quality and latency: rerank_lib.listwise.analysis)."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ... import experiment
from ...data.trec import ranked
from ...data.types import Run
from ...experiment import Row, Timer, load_run, publish_selected, record_reranker, record_run, save_run
from ...listwise import analysis
from ...listwise.prompts import describe_prompt
from ...models import load_chat_lm, load_chat_tokenizer, weights_params
from ...results import Record
from ...export import ModelCard
from ...settings import snapshot
from .evalsets import EvalSet, measured, method_name, rerank_set, reranker, teacher_name, use_letters, window_params
from .settings import MEASURE, PIPELINE, RECIPE, RankLLMConfig
from .training import Trained


@dataclass
class ListwiseRows:
    """What the evaluating steps return: their records, the windows behind them (output quality, latency, teacher
    agreement) and, for the zero-shot rows, the runs every trained row is tested against."""

    records: list[Record]
    windows: list  # WindowResult of every window (FIRST and the generation sample)
    runs: dict[str, Run] = field(default_factory=dict)  # dataset -> zero-shot FIRST run (the "start" baseline)


def params(cfg: RankLLMConfig, **extra) -> dict:
    """A record's params: the settings and which weights the start model is (e.g. SmolLM2 as a Q4_1 GGUF)."""
    return {**{k: v for k, v in snapshot(cfg).items() if k != "chat_template"}, **weights_params(cfg.model), **extra}


def _quality_sample(cfg: RankLLMConfig, model, tokenizer, sets: dict[str, EvalSet], who: str) -> list[dict]:
    """Generation decoding of the first `quality_queries` DL19 queries: output-quality counts and latency only."""
    es = sets["trec-dl-2019"]
    _, w = rerank_set(reranker(cfg, model, tokenizer, "generate"), es, cfg, sorted(es.top)[: cfg.quality_queries])
    return analysis.window_rows(w, "trec-dl-2019", who)


def zero_shot(cfg: RankLLMConfig, sets: dict[str, EvalSet], results_dir) -> ListwiseRows:
    """The untrained model with FIRST on every eval set (records), and generation decoding on the first
    `quality_queries` DL19 queries (output-quality counts and latency only)."""
    model, tokenizer = load_chat_lm(cfg.model, cfg.chat_template)
    rr = reranker(cfg, model, tokenizer, "first")
    zs, method = ListwiseRows([], []), method_name(cfg, "zs", "first")
    for name, es in sets.items():
        with Timer() as t:
            zs.runs[name], w = rerank_set(rr, es, cfg)
        save_run(zs.runs[name], results_dir, cfg.profile, name, es.split, method)
        zs.windows += analysis.window_rows(w, name, "zero-shot")
        zs.records.append(record_run(
            zs.runs[name], measured(name, es, "bm25", cfg.depth),
            Row(PIPELINE, method, cfg.profile, f"{cfg.model} (zero-shot)",
                params(cfg, decoding="first", **window_params(cfg, w, len(es.top))), cfg.seed, rerank_s=t.s),
            results_dir, baselines={"bm25": es.bm25}))
    zs.windows += _quality_sample(cfg, model, tokenizer, sets, "zero-shot") if cfg.quality_queries else []
    return zs


def evaluate_trained(cfg: RankLLMConfig, tr: Trained, sets: dict[str, EvalSet], zs: ListwiseRows, results_dir,
                     with_scifact: bool) -> ListwiseRows:
    """The selected checkpoint with FIRST on the fold's evaluation year (and SciFact test for the first fold),
    generation decoding where asked, each FIRST row with its '+interp' row (weight chosen on the matching dev
    slice)."""
    model, tokenizer = load_chat_lm(str(tr.selected.model_dir), cfg.chat_template, tokenizer_from=tr.base)
    who, sel = f"{tr.objective} ({tr.fold.train_on})", tr.selected
    label = f"{tr.base} fine-tuned ({tr.objective}, {cfg.ranking_loss if tr.objective != 'generation' else 'CE'})"
    records, windows = [], []
    quality_only = tr.objective == "generation" and "trec-dl-2019" not in cfg.generation_eval  # no metric row
    if quality_only and tr.fold.evaluate_on == "trec-dl-2019" and cfg.quality_queries:
        windows += _quality_sample(cfg, model, tokenizer, sets, who)
    for name, dev_key in [(tr.fold.evaluate_on, "dl")] + ([("scifact", "scifact")] if with_scifact else []):
        es, dev = sets[name], tr.fold.dev[dev_key]
        decode = tr.objective == "generation" and name in cfg.generation_eval
        for decoding in ["first"] + (["generate"] if decode else []):
            rr = reranker(cfg, model, tokenizer, decoding)
            with Timer() as t:
                run, w = rerank_set(rr, es, cfg)
            method = method_name(cfg, tr.objective, "first" if decoding == "first" else "gen")
            save_run(run, results_dir, cfg.profile, name, es.split, method)
            windows += analysis.window_rows(w, name, who)
            dev_run = None  # the dev run of the FIRST row picks its interpolation weight (SciFact: scored here)
            if decoding == "first":
                dev_run = sel.dev_run if dev_key == "dl" else rerank_set(rr, dev, cfg, progress=False)[0]
            row = Row(PIPELINE, method, cfg.profile, label,
                      params(cfg, objective=tr.objective, decoding=decoding, train_on=tr.fold.train_on,
                             selected_step=sel.step, **window_params(cfg, w, len(es.top))),
                      cfg.seed, RECIPE.references.get((name, tr.objective)), rerank_s=t.s, train_s=sel.train_s)
            records += record_reranker(
                run, measured(name, es, "bm25", cfg.depth), row, results_dir,
                baselines={"bm25": es.bm25, "start": zs.runs[name]}, training=tr.fold.provenance,
                dev=measured(dev_key, dev, "bm25"), dev_run=dev_run)
    first = next(r for r in records if r.dataset == tr.fold.evaluate_on and "+interp" not in r.method)
    # the selected model as a causal-LM folder with its chat template (what rank_llm's listwise rerankers load)
    publish_selected("listwise", model, first, sel, results_dir, ModelCard(tr.base),
                     name=f"{first.method}-{tr.fold.train_on}", tokenizer=tokenizer, chat_template=cfg.chat_template)
    return ListwiseRows(records, windows)


def evaluate_all(cfg: RankLLMConfig, trained: list[Trained], sets: dict[str, EvalSet], zs: ListwiseRows,
                 results_dir) -> ListwiseRows:
    """Each trained model on its fold's evaluation year; the first fold's models on SciFact test too."""
    rows = [evaluate_trained(cfg, tr, sets, zs, results_dir, with_scifact=tr.fold.train_on == cfg.folds[0][0])
            for tr in trained]
    return ListwiseRows(experiment.records_of(rows), [w for r in rows for w in r.windows])


def example_prompt(cfg: RankLLMConfig, sets: dict[str, EvalSet], dataset: str = "trec-dl-2019") -> str:
    """The rendered prompt of the first window of the first query (what the model reads), with its token count."""
    tokenizer = load_chat_tokenizer(cfg.model, cfg.chat_template)
    es = sets[dataset]
    qid = sorted(es.top)[0]
    docs = [es.dataset.corpus[d] for d, _ in ranked(es.top[qid])][-cfg.window:]
    return describe_prompt(tokenizer, es.dataset.queries[qid], [(d.title, d.text) for d in docs],
                           use_letters(cfg, tokenizer), cfg.max_words, cfg.context_size, cfg.chat_template)


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
