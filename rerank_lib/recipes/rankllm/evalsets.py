"""The evaluation sets (TREC DL 2019 / 2020, a SciFact test sample), the listwise reranker of a model and reranking
one of them, and the reference rows every table is read against: BM25 on a sampled set and the teacher's order of the
same top-depth (the ceiling of imitation). Models and tokenizers: rerank_lib.models.load_chat_lm."""
from __future__ import annotations

from dataclasses import dataclass

from ...data import candidates
from ...data.trec import top_k
from ...data.types import Dataset, Run
from ...listwise import ListwiseReranker
from ...listwise.prompts import choose_identifiers
from ...experiment import Evaluated, Row, load_run, record_run, test_sample
from ...teacher import teacher_order
from .settings import PIPELINE, RankLLMConfig


@dataclass
class EvalSet:
    """One evaluation set: its queries (with qrels), the first-stage run, and its reranked top."""

    dataset: Dataset
    split: str  # the record's split name (a SciFact sample gets its own name)
    bm25: Run  # the whole saved first-stage run of these queries
    top: Run  # its top `depth`, what is reranked


def measured(name: str, es: EvalSet, first_stage: str, depth: int | None = None) -> candidates.EvalSet:
    """What a record of `es` names: the dataset, the set's split, the first stage and depth."""
    return candidates.EvalSet(name, es.split, es.dataset.queries, es.dataset.qrels, first_stage, depth, es.bm25,
                              es.dataset.corpus)


def eval_sets(cfg: RankLLMConfig, results_dir) -> dict[str, EvalSet]:
    """TREC DL 2019 and 2020 (judged queries of the saved BM25 runs) and SciFact test (all, or a seeded sample)."""
    sets = {}
    for name in ("trec-dl-2019", "trec-dl-2020", "scifact"):
        ds, bm25, split = test_sample(name, load_run(results_dir, cfg.profile, name, "test", "bm25"),
                                      cfg.scifact_test_queries if name == "scifact" else None, cfg.seed, cfg.data_root)
        sets[name] = EvalSet(ds, split, bm25, top_k(bm25, cfg.depth))
    return sets


def use_letters(cfg: RankLLMConfig, tokenizer) -> bool:
    """Letters or numbers, decided from the tokenizer for the largest window used in training or inference."""
    return choose_identifiers(tokenizer, max(cfg.window, cfg.train_window), cfg.identifiers, cfg.chat_template)


def reranker(cfg: RankLLMConfig, model, tokenizer, mode: str = "first") -> ListwiseReranker:
    return ListwiseReranker(model, tokenizer, mode=mode, window=cfg.window, stride=cfg.stride,
                            max_words=cfg.max_words, context_size=cfg.context_size,
                            identifiers="alpha" if use_letters(cfg, tokenizer) else "numeric",
                            chat_template=cfg.chat_template, autocast=cfg.inference_bf16,
                            constrained=cfg.constrained_generation)


def rerank_set(rr: ListwiseReranker, es: EvalSet, cfg: RankLLMConfig, queries=None,
               progress: bool = True) -> tuple[Run, list]:
    """Rerank the top `depth` of an eval set (the rest of the first-stage list below): (run, window results)."""
    run = {q: es.bm25[q] for q in (queries or es.top)}
    return rr.rerank_run(run, es.dataset.corpus, es.dataset.queries, cfg.depth, progress=progress)


def window_params(cfg: RankLLMConfig, windows: list, n_queries: int) -> dict:
    """What the sliding window did on a set, for its record: the depth, window and stride, the LLM calls (window
    passes) per query, counted from the windows that ran (rank_llm's spans: depth 30, window 10, stride 5 -> 5).
    The seconds per query are the record's own `latency_s_per_query` (the Row's rerank_s)."""
    n = max(n_queries, 1)
    return {"depth": cfg.depth, "window": cfg.window, "stride": cfg.stride,
            "llm_calls_per_query": round(len(windows) / n, 2)}


def teacher_name(cfg: RankLLMConfig, dataset: str) -> str:
    """The saved teacher run (02_teacher) that orders this dataset's training windows and measures agreement."""
    return cfg.scifact_teacher if dataset == "scifact" else cfg.dl_teacher


def reference_rows(cfg: RankLLMConfig, sets: dict[str, EvalSet], results_dir) -> Evaluated:
    """BM25 on a sampled set (so its table has its baseline on the same queries) and the teacher's order of the
    same top-depth on every set (the ceiling of imitation)."""
    out = []
    for name, es in sets.items():
        if es.split != "test":
            out.append(record_run(es.bm25, measured(name, es, "corpus"),
                                  Row(PIPELINE, "bm25", cfg.profile, "bm25s", {"queries": len(es.top)}, cfg.seed),
                                  results_dir))
        teacher = teacher_name(cfg, name)
        out.append(record_run(
            teacher_order(es.top, es.bm25, load_run(results_dir, cfg.profile, name, "test", teacher)),
            measured(name, es, "bm25", cfg.depth),
            Row(PIPELINE, f"{teacher}-top{cfg.depth}", cfg.profile,
                f"{teacher} (02_teacher) ordering the BM25 top-{cfg.depth} only", {"depth": cfg.depth}, cfg.seed),
            results_dir, baselines={"bm25": es.bm25}))
    return Evaluated(out)


def method_name(cfg: RankLLMConfig, training: str, decoding: str) -> str:  # e.g. smollm2-combined-first
    return f"{cfg.tag}-{training}-{decoding}"
