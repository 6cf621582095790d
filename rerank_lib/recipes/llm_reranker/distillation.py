"""LLM -> BERT distillation: candidate teachers measured on dev, labels in RAG-Retrieval's format, the student."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ...data.pairs import per_group, read_pairs, with_labels, write_pairs_jsonl
from ...data.trec import run_from_pairs, run_pairs
from ...evaluation import evaluate
from ...experiment import jsonable, pipeline_cache, record_run
from ...rerankers import CrossEncoder
from ...rerankers.llm_reranker import DecoderReranker
from ...settings import snapshot
from ...teacher import platt_probability, scores_with_extra
from .data import LLMData, load_llm, pairs_of
from .rows import Row, RowTraining, record_row, rerank_test, test_set, train_ranker
from .settings import LLM_SOURCES, RECIPE, LLMRerankerConfig, slug


@dataclass
class Sources:
    dev_table: pd.DataFrame
    train_scores: dict[str, list[list[float]]]  # source -> per group, per doc: a label in [0, 1]
    chosen: str
    teachers: dict[str, tuple[str, str]] = field(default_factory=dict)  # source -> (name in method names, what it is)

    @property
    def teacher_name(self) -> str:
        """The chosen teacher as named in the student's method (e.g. 'smollm2-head-group-ce')."""
        return self.teachers.get(self.chosen, (self.chosen, ""))[0]

    @property
    def teacher_model(self) -> str:
        """What the chosen teacher is, for the student's model column."""
        return self.teachers.get(self.chosen, ("", self.chosen))[1]


def choose_source(cfg: LLMRerankerConfig, dev_ndcg: dict[str, float]) -> str:
    """`distill_source`, or with 'auto' the LLM source (LLM_SOURCES) with the best dev nDCG@10: the row is "LLM ->
    BERT", as RAG-Retrieval's distill_llm_to_bert, so a non-LLM source is a measured reference, never picked."""
    if cfg.distill_source != "auto":
        return cfg.distill_source
    llm = {s: v for s, v in dev_ndcg.items() if s in LLM_SOURCES}
    if not llm:
        raise ValueError(f"distill_source 'auto' picks among the LLM sources {LLM_SOURCES}; none was measured "
                         f"(distill_sources {cfg.distill_sources}, a head row is needed for 'llm-head')")
    return max(llm, key=lambda s: (llm[s], -LLM_SOURCES.index(s)))


def distillation_sources(cfg: LLMRerankerConfig, llm: DecoderReranker, data: LLMData, head_row: Row | None,
                         teacher_llm: DecoderReranker | None = None) -> Sources:
    """Each candidate teacher on the dev slice (nDCG@10, RR@10 of its ranking of the dev BM25 top-dev_depth) and its
    labels for the training pairs, in [0, 1]: LLM P(Yes) at the first step (RAG-Retrieval's teacher), the trained
    head's and the offline teacher's scores Platt-scaled on the training pairs' qrels."""
    if teacher_llm is None:  # RAG-Retrieval's chat-template teacher is another prompt: one more forward pass
        teacher_llm = llm if cfg.teacher_prompt == llm.prompt.kind else load_llm(cfg, prompt=cfg.teacher_prompt)
    flat_q = [g.query for g in data.groups for _ in g.docs]
    flat_d = [d for g in data.groups for d in g.docs]
    dev_q, dev_d = pairs_of(data.dev_bm25, data.dev)
    dev_keys = run_pairs(data.dev_bm25)

    truth = np.array([lab > 0 for g in data.groups for lab in g.labels])
    rows, labels, dev_runs, teachers = [], {}, {}, {}
    measures = ["nDCG@10", "RR@10"]
    rows.append({"source": "bm25 (first stage)", **evaluate(data.dev_bm25, data.dev.qrels, measures)})
    for source in cfg.distill_sources:
        if source == "llm-zero-shot":
            dev_vals = teacher_llm.yes_probability(dev_q, dev_d, normalize=cfg.teacher_normalize,
                                                   batch_size=cfg.feature_batch_size)
            train_vals = teacher_llm.yes_probability(flat_q, flat_d, normalize=cfg.teacher_normalize,
                                                     batch_size=cfg.feature_batch_size)
            teachers[source] = (f"{slug(cfg.llm)}-zero-shot", f"{cfg.llm} zero-shot P(Yes) ({cfg.teacher_prompt} "
                                f"prompt, {cfg.teacher_normalize} softmax)")
        elif source == "llm-head":
            if head_row is None:
                continue
            # RAG-Retrieval maps its head's logit with a sigmoid, calibrated because it trains with point_ce; a
            # head started at the Yes row (logits ~ +10) or trained with a shift-invariant loss is not, so its
            # logit is Platt-scaled on the training pairs' qrels (a monotone map: the ranking is unchanged).
            raw = head_row.ranker.score(flat_q, flat_d)
            calib = platt_probability(raw, truth)
            dev_vals, train_vals = calib(head_row.ranker.score(dev_q, dev_d)), calib(raw)
            teachers[source] = (head_row.method, f"{head_row.method} (score head on the frozen {cfg.llm}, "
                                                 "Platt-scaled)")
        else:
            tr = scores_with_extra("bm25+minilm-l6", data.train_bm25, {g.query_id: g.doc_ids for g in data.groups},
                                   data.split.train.corpus, {**data.split.train.queries, **data.split.dev.queries})
            raw = np.array([tr[g.query_id][d] for g in data.groups for d in g.doc_ids])
            calib = platt_probability(raw, truth)
            train_vals, dev_vals = calib(raw), calib(np.array([tr[q][d] for q, d in dev_keys]))
            teachers[source] = (source, f"{source} (the offline teacher, not an LLM; Platt-scaled)")
        dev_runs[source] = run_from_pairs(data.dev_bm25, dev_keys, dev_vals)
        labels[source] = per_group(data.groups, train_vals)
        vals = np.asarray(train_vals, dtype=float)
        rows.append({"source": source, **evaluate(dev_runs[source], data.dev.qrels, measures),
                     "train mean p(pos)": float(vals[truth].mean()), "train mean p(neg)": float(vals[~truth].mean())})
    table = pd.DataFrame(rows).set_index("source").round(4)
    chosen = choose_source(cfg, table.drop(index="bm25 (first stage)")["nDCG@10"].to_dict())
    table["teacher"] = ["chosen" if s == chosen else "" for s in table.index]
    return Sources(table, labels, chosen, teachers)


def distillation_file(cfg: LLMRerankerConfig, data: LLMData, sources: Sources, results_dir) -> Path:
    """The chosen teacher's labels in RAG-Retrieval's distillation format {query, pos: every doc, pos_scores}."""
    groups = with_labels(data.groups, sources.train_scores[sources.chosen])
    path = pipeline_cache(results_dir, cfg.profile, "llm_reranker") / f"scifact_train.distill.{sources.chosen}.jsonl"
    return write_pairs_jsonl(path, groups, "rag-retrieval", distillation=True)


def distill(cfg: LLMRerankerConfig, data: LLMData, path: Path, sources: Sources, results_dir) -> tuple[Row, Row]:
    """MiniLM trained on the distillation file (read back with RAG-Retrieval's reader): point_ce on the soft labels
    of `sources.chosen`; the student's method and model name that teacher. Returns (the untrained start, the
    distilled student)."""
    source, teacher = sources.chosen, sources.teacher_name
    groups = read_pairs(path, "rag-retrieval", [g.query_id for g in data.groups])
    student = CrossEncoder(cfg.student, max_length=cfg.student_max_length, init_seed=cfg.seed)
    start_test, seconds = rerank_test(cfg, data, student, batch_size=cfg.score_batch_size)
    start_method = f"ce-{slug(cfg.student)}-start"
    start_rec = record_run(start_test, test_set(cfg, data),
                           record_row(cfg, start_method, f"{cfg.student} (untrained head)", jsonable(snapshot(cfg)),
                                      rerank_s=seconds, reference=RECIPE.references.get(cfg.student)),
                           results_dir, baselines={"bm25": data.test_bm25})
    start = Row(start_method, start_test, records=[start_rec])
    trained = train_ranker(cfg, data, results_dir, student, groups, RowTraining(
        loss=cfg.student_loss, train=cfg.student_train, name=f"distill-{source}",
        method=f"ce-{slug(cfg.student)}-distill-{teacher}", batch_size=cfg.score_batch_size,
        model=f"{cfg.student} distilled from {sources.teacher_model} ({cfg.student_loss}, soft labels)",
        params={"distill_source": source, "distill_teacher": teacher, "loss": cfg.student_loss},
        key={"student": cfg.student, "max_length": cfg.student_max_length, "seed": cfg.seed, "source": source,
             "dev_depth": cfg.dev_depth}, publish_as="cross_encoder"), start)
    return start, trained
