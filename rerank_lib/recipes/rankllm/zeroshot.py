"""The zero-shot rows: the untrained model with FIRST on every evaluation set (the start of every trained row)
and generation decoding on a DL19 sample for output quality and latency."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ...data.types import Run
from ...experiment import Timer, record_run, save_run
from .evalsets import EvalSet, _method, rerank_set
from .models import load_lm, reranker
from .settings import PIPELINE, RankLLMConfig


@dataclass
class ZeroShot:
    runs: dict[str, Run]  # dataset -> zero-shot FIRST run (the "start" baseline)
    records: list
    windows: list  # WindowResult of every window (FIRST and the generation sample)


def zero_shot(cfg: RankLLMConfig, sets: dict[str, EvalSet], results_dir) -> ZeroShot:
    """The untrained model with FIRST on every eval set (records), and generation decoding on the first
    `quality_queries` DL19 queries (output-quality counts and latency only)."""
    model, tokenizer = load_lm(cfg, cfg.model)
    rr = reranker(cfg, model, tokenizer, "first")
    runs, records, windows = {}, [], []
    for name, es in sets.items():
        with Timer() as t:
            run, w = rerank_set(rr, es, cfg)
        save_run(run, results_dir, cfg.profile, name, es.split, _method(cfg, "zs", "first"))
        runs[name] = run
        windows += [dict(x.to_dict(), dataset=name, model="zero-shot") for x in w]
        records.append(record_run(
            run, es.dataset.qrels, pipeline=PIPELINE, method=_method(cfg, "zs", "first"), dataset=name, split=es.split,
            profile=cfg.profile, results_dir=results_dir, baselines={"bm25": es.bm25}, model=f"{cfg.model} (zero-shot)",
            first_stage="bm25", depth=cfg.depth, params=_params(cfg, decoding="first"), seed=cfg.seed, wall_s=t.s))
    if cfg.quality_queries:
        es = sets["trec-dl-2019"]
        sample = sorted(es.top)[: cfg.quality_queries]
        _, w = rerank_set(reranker(cfg, model, tokenizer, "generate"), es, cfg, sample)
        windows += [dict(x.to_dict(), dataset="trec-dl-2019", model="zero-shot") for x in w]
    return ZeroShot(runs, records, windows)


def _params(cfg: RankLLMConfig, **extra) -> dict:
    params = {k: v for k, v in asdict(cfg).items() if k != "chat_template"}
    return {**params, **extra}
