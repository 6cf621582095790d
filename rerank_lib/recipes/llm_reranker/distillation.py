"""LLM -> BERT distillation: candidate teachers measured on dev, labels in RAG-Retrieval's format, the student."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ...data.pairs import TrainGroup, read_rag_retrieval, write_pairs_jsonl
from ...data.trec import ranked
from ...data.types import Run
from ...evaluation import evaluate
from ...experiment import Timer, jsonable, pipeline_cache, record_run
from ...rerankers import CrossEncoder
from ...rerankers.llm_reranker import DecoderReranker
from ...settings import snapshot
from ...teacher import teacher_scores
from .data import LLMData
from .llm import load_llm, pairs_of
from .rows import Row, common_kwargs, train_ranker
from .settings import REFERENCES, LLMRerankerConfig, slug


def _platt(scores: np.ndarray, labels: np.ndarray):
    """p = sigmoid(a s + b) fitted on the training pairs' qrels labels (for teachers whose scores are not
    probabilities, e.g. reciprocal-rank fusion)."""
    from sklearn.linear_model import LogisticRegression

    mu, sd = float(scores.mean()), float(scores.std() or 1.0)
    model = LogisticRegression(C=1e4, max_iter=1000).fit(((scores - mu) / sd)[:, None], labels.astype(int))
    a, b = float(model.coef_[0, 0] / sd), float(model.intercept_[0] - model.coef_[0, 0] * mu / sd)
    return lambda s: 1.0 / (1.0 + np.exp(-(a * np.asarray(s, dtype=float) + b)))


def _offline_teacher(data: LLMData) -> Run:
    """bm25+minilm-l6 over every train and dev query's BM25 top-100, plus the training groups' documents that BM25
    missed (below its last candidate). Scoring all of them at once makes the teacher reuse the cached encoding of
    the whole corpus (what 02_teacher computed) instead of encoding a subset."""
    extra = {g.query_id: g.doc_ids for g in data.groups}
    candidates = {}
    for q, run in data.train_bm25.items():
        docs = dict(ranked(run)[:100])
        floor = min(docs.values(), default=0.0)
        for i, d in enumerate([x for x in extra.get(q, []) if x not in docs], start=1):
            docs[d] = floor - i
        candidates[q] = docs
    queries = {**data.split.train.queries, **data.split.dev.queries}
    return teacher_scores("bm25+minilm-l6", candidates, data.split.train.corpus, queries,
                          depth=max(len(v) for v in candidates.values()))


@dataclass
class Sources:
    dev_table: pd.DataFrame
    train_scores: dict[str, list[list[float]]]  # source -> per group, per doc: a label in [0, 1]
    chosen: str


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
    dev_keys = [(q, d) for q, docs in data.dev_bm25.items() for d, _ in ranked(docs)]

    def to_run(values) -> Run:
        out: Run = {q: {} for q in data.dev_bm25}
        for (q, d), v in zip(dev_keys, values):
            out[q][d] = float(v)
        return out

    def per_group(values) -> list[list[float]]:
        out, pos = [], 0
        for g in data.groups:
            out.append([float(v) for v in values[pos:pos + len(g.docs)]])
            pos += len(g.docs)
        return out

    rows, labels, dev_runs = [], {}, {}
    measures = ["nDCG@10", "RR@10"]
    rows.append({"source": "bm25 (first stage)", **evaluate(data.dev_bm25, data.dev.qrels, measures)})
    for source in cfg.distill_sources:
        if source == "llm-zero-shot":
            dev_vals = teacher_llm.yes_probability(dev_q, dev_d, normalize=cfg.teacher_normalize,
                                                   batch_size=cfg.feature_batch_size)
            train_vals = teacher_llm.yes_probability(flat_q, flat_d, normalize=cfg.teacher_normalize,
                                                     batch_size=cfg.feature_batch_size)
        elif source == "llm-head":
            if head_row is None:
                continue
            # RAG-Retrieval maps its head's logit with a sigmoid, calibrated because it trains with point_ce; a
            # head started at the Yes row (logits ~ +10) or trained with a shift-invariant loss is not, so its
            # logit is Platt-scaled on the training pairs' qrels (a monotone map: the ranking is unchanged).
            raw = head_row.ranker.score(flat_q, flat_d)
            calib = _platt(raw, np.array([lab > 0 for g in data.groups for lab in g.labels]))
            dev_vals, train_vals = calib(head_row.ranker.score(dev_q, dev_d)), calib(raw)
        else:
            tr = _offline_teacher(data)
            raw = np.array([tr[g.query_id][d] for g in data.groups for d in g.doc_ids])
            truth = np.array([lab > 0 for g in data.groups for lab in g.labels])
            calib = _platt(raw, truth)
            train_vals = calib(raw)
            dev_vals = calib(np.array([tr[q][d] for q, d in dev_keys]))
        dev_runs[source] = to_run(dev_vals)
        labels[source] = per_group(train_vals)
        truth = np.array([lab > 0 for g in data.groups for lab in g.labels])
        vals = np.asarray(train_vals, dtype=float)
        rows.append({"source": source, **evaluate(dev_runs[source], data.dev.qrels, measures),
                     "train mean p(pos)": float(vals[truth].mean()), "train mean p(neg)": float(vals[~truth].mean())})
    table = pd.DataFrame(rows).set_index("source").round(4)
    candidates = table.drop(index="bm25 (first stage)")
    chosen = cfg.distill_source if cfg.distill_source != "auto" else str(candidates["nDCG@10"].idxmax())
    return Sources(table, labels, chosen)


def distillation_file(cfg: LLMRerankerConfig, data: LLMData, sources: Sources, results_dir) -> Path:
    """The chosen teacher's labels in RAG-Retrieval's distillation format {query, pos: every doc, pos_scores}."""
    groups = [TrainGroup(g.query, g.docs, [min(1.0, max(0.0, s)) for s in scores], n_pos=len(g.docs),
                         query_id=g.query_id, doc_ids=g.doc_ids)
              for g, scores in zip(data.groups, sources.train_scores[sources.chosen])]
    path = pipeline_cache(results_dir, cfg.profile, "llm_reranker") / f"scifact_train.distill.{sources.chosen}.jsonl"
    return write_pairs_jsonl(path, groups, "rag-retrieval", distillation=True)


def distill(cfg: LLMRerankerConfig, data: LLMData, path: Path, source: str, results_dir) -> tuple[Row, Row]:
    """MiniLM trained on the distillation file (read back with RAG-Retrieval's reader): point_ce on the soft labels.
    Returns (the untrained start, the distilled student)."""
    groups = read_rag_retrieval(path)
    for g, orig in zip(groups, data.groups):
        g.query_id = orig.query_id
    student = CrossEncoder(cfg.student, max_length=cfg.student_max_length, init_seed=cfg.seed)
    with Timer() as t:
        start_test = student.rerank(data.test_bm25, data.test.corpus, data.test.queries, depth=cfg.depth,
                                    batch_size=cfg.score_batch_size)
    start_method = f"ce-{slug(cfg.student)}-start"
    start_rec = record_run(start_test, data.test.qrels, method=start_method,
                           model=f"{cfg.student} (untrained head)", baselines={"bm25": data.test_bm25},
                           params=jsonable(snapshot(cfg)), wall_s=t.s, reference=REFERENCES.get(cfg.student),
                           **common_kwargs(cfg, data, results_dir, False))
    start = Row(start_method, start_test, records=[start_rec])
    trained = train_ranker(
        cfg, data, results_dir, student, groups, loss=cfg.student_loss, train=cfg.student_train,
        name=f"distill-{source}", method=f"ce-{slug(cfg.student)}-distill-{source}", start=start,
        batch_size=cfg.score_batch_size, model=f"{cfg.student} distilled from {source} ({cfg.student_loss}, soft labels)",
        params={"distill_source": source, "loss": cfg.student_loss},
        key={"student": cfg.student, "max_length": cfg.student_max_length, "seed": cfg.seed, "source": source,
             "dev_depth": cfg.dev_depth})
    return start, trained
