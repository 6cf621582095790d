"""Training data of the bge-reranker family: the jsonl formats of RAG-Retrieval, FlagEmbedding and HopWeaver.

All three are one JSON object per query; every reader returns the same in-memory type, `TrainGroup`, so a loss
never knows which project's file its data came from.

| format | fields | labels |
|---|---|---|
| RAG-Retrieval (NLPJCL/RAG-Retrieval, rag_retrieval/train/reranker/data.py) | `query`, `pos`, `neg`?, `pos_scores`?, `neg_scores`? | pos 1, neg 0; a given score s is mapped to (s - min_label) / (max_label - min_label) and must lie in [min_label, max_label] (multi-level labels, and distillation data where `pos` holds every document and `pos_scores` are teacher scores in [0, 1]) |
| RAG-Retrieval per-pair distillation output (examples/distill_llm_to_bert_reranker) | `query`, `content`, `score` | one line per pair, grouped by query, label = score |
| FlagEmbedding (examples/finetune/reranker) | `query`, `pos`, `neg`, `pos_scores`?, `neg_scores`?, `prompt`? | pos 1, neg 0; the scores are *teacher scores* (raw reranker logits) for the knowledge-distillation term |
| HopWeaver (hopweaver/train_reranker) | `query`, `pos`, `neg` | pos 1, neg 0 |

FlagEmbedding trains group-wise: each step takes 1 positive and `train_group_size - 1` negatives of a line
(negatives repeated when the line has too few); `sample_group` does that, seeded, for a given (seed, epoch, index).
"""
from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from .errors import DataFormatError
from .jsonl import iter_jsonl, require, write_jsonl

FORMATS = ("rag-retrieval", "flagembedding", "hopweaver")


@dataclass
class TrainGroup:
    """One query with its candidate documents and their target labels in [0, 1].

    docs[:n_pos] are the positives (`pos` of the file), the rest the negatives; group-wise losses put a positive
    first. `teacher_scores` (optional, one per doc) are a teacher's raw scores for knowledge distillation
    (FlagEmbedding's pos_scores/neg_scores); `labels` are the training targets (RAG-Retrieval's scaled scores).
    """

    query: str
    docs: list[str]
    labels: list[float]
    n_pos: int | None = None  # None: the leading run of docs that carry the highest label
    teacher_scores: list[float] | None = None
    prompt: str | None = None
    query_id: str | None = None
    doc_ids: list[str] | None = None

    def __post_init__(self):
        if len(self.docs) != len(self.labels):
            raise ValueError(f"TrainGroup: {len(self.docs)} docs but {len(self.labels)} labels")
        if self.teacher_scores is not None and len(self.teacher_scores) != len(self.docs):
            raise ValueError(f"TrainGroup: {len(self.docs)} docs but {len(self.teacher_scores)} teacher scores")
        if self.doc_ids is not None and len(self.doc_ids) != len(self.docs):
            raise ValueError(f"TrainGroup: {len(self.docs)} docs but {len(self.doc_ids)} doc ids")
        if self.n_pos is None:
            # Positives first, as the readers build them: the leading run of the highest label.
            top = max(self.labels) if self.labels else 0.0
            n = 0
            while n < len(self.labels) and self.labels[n] == top:
                n += 1
            self.n_pos = n
        if not 0 <= self.n_pos <= len(self.docs):
            raise ValueError(f"TrainGroup: n_pos={self.n_pos} for {len(self.docs)} docs")

    @property
    def positives(self) -> list[str]:
        return self.docs[: self.n_pos]

    @property
    def negatives(self) -> list[str]:
        return self.docs[self.n_pos:]


# ---------------------------------------------------------------------------------------------------- readers


def _str_list(obj: dict, name: str, path, lineno: int, required: bool = True, nonempty: bool = False) -> list[str]:
    if name not in obj and not required:
        return []
    value = require(obj, name, list, path, lineno)
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise DataFormatError(path, lineno, f"{name}[{i}]", f"expected str, got {type(item).__name__}")
    if nonempty and not value:
        raise DataFormatError(path, lineno, name, "empty list")
    return value


def _score_list(obj: dict, name: str, docs_field: str, n: int, path, lineno: int) -> list[float] | None:
    if name not in obj:
        return None
    value = require(obj, name, list, path, lineno)
    if len(value) != n:
        raise DataFormatError(path, lineno, name, f"{len(value)} scores for {n} entries of '{docs_field}'")
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, numbers.Real) or not math.isfinite(item):
            raise DataFormatError(path, lineno, f"{name}[{i}]", f"expected a finite number, got {item!r}")
    return [float(v) for v in value]


def _query(obj: dict, path, lineno: int) -> str:
    query = require(obj, "query", str, path, lineno)
    if not query.strip():
        raise DataFormatError(path, lineno, "query", "empty")
    return query


def read_rag_retrieval(path: str | os.PathLike, max_label: float = 1, min_label: float = 0) -> list[TrainGroup]:
    """RAG-Retrieval reranker data: `{query, pos, neg?, pos_scores?, neg_scores?}` per line, or its per-pair
    distillation output `{query, content, score}` (grouped by query, in file order).

    Labels: pos 1 / neg 0 unless scores are given; a score s becomes (s - min_label) / (max_label - min_label),
    and a score outside [min_label, max_label] is a DataFormatError (RAG-Retrieval raises too).
    """
    if not max_label > min_label >= 0:
        raise ValueError(f"need max_label > min_label >= 0, got max_label={max_label}, min_label={min_label}")
    span = float(max_label - min_label)

    def scale(value: float, field_name: str, lineno: int) -> float:
        if not min_label <= value <= max_label:
            raise DataFormatError(path, lineno, field_name,
                                  f"label {value} outside [min_label={min_label}, max_label={max_label}]")
        return (value - min_label) / span

    groups: list[TrainGroup] = []
    by_query: dict[str, TrainGroup] = {}  # the per-pair format
    for lineno, obj in iter_jsonl(path, allow_empty=False):
        query = _query(obj, path, lineno)
        if "content" in obj and "pos" not in obj:
            content = require(obj, "content", str, path, lineno)
            score = _score_list({"score": [require(obj, "score", (int, float), path, lineno)]}, "score", "content",
                                1, path, lineno)[0]
            label = scale(score, "score", lineno)
            group = by_query.get(query)
            if group is None:
                group = by_query[query] = TrainGroup(query, [], [], n_pos=0)
                groups.append(group)
            group.docs.append(content)
            group.labels.append(label)
            group.n_pos += 1
            continue
        if "scores" in obj and "pos_scores" not in obj:
            raise DataFormatError(path, lineno, "scores", "not a reranker field (RAG-Retrieval's LM-SFT/embedding "
                                                          "format); reranker scores go in 'pos_scores'/'neg_scores'")
        pos = _str_list(obj, "pos", path, lineno, nonempty=True)
        neg = _str_list(obj, "neg", path, lineno, required=False)
        pos_scores = _score_list(obj, "pos_scores", "pos", len(pos), path, lineno)
        neg_scores = _score_list(obj, "neg_scores", "neg", len(neg), path, lineno)
        if neg_scores is not None and "neg" not in obj:
            raise DataFormatError(path, lineno, "neg", "missing, but 'neg_scores' is given")
        labels = [scale(s, f"pos_scores[{i}]", lineno) for i, s in enumerate(pos_scores)] if pos_scores else [1.0] * len(pos)
        labels += [scale(s, f"neg_scores[{i}]", lineno) for i, s in enumerate(neg_scores)] if neg_scores else [0.0] * len(neg)
        groups.append(TrainGroup(query, pos + neg, labels, n_pos=len(pos)))
    return groups


def read_flagembedding(path: str | os.PathLike, knowledge_distillation: bool = False) -> list[TrainGroup]:
    """FlagEmbedding reranker data: `{query, pos, neg, pos_scores?, neg_scores?, prompt?}` per line.

    Labels are pos 1 / neg 0; pos_scores + neg_scores become `teacher_scores` (both are required when
    knowledge_distillation is True, as in FlagEmbedding's AbsRerankerTrainDataset).
    """
    groups = []
    for lineno, obj in iter_jsonl(path, allow_empty=False):
        query = _query(obj, path, lineno)
        pos = _str_list(obj, "pos", path, lineno, nonempty=True)
        neg = _str_list(obj, "neg", path, lineno)
        pos_scores = _score_list(obj, "pos_scores", "pos", len(pos), path, lineno)
        neg_scores = _score_list(obj, "neg_scores", "neg", len(neg), path, lineno)
        if knowledge_distillation and (pos_scores is None or neg_scores is None):
            missing = "pos_scores" if pos_scores is None else "neg_scores"
            raise DataFormatError(path, lineno, missing, "missing, and knowledge_distillation is on")
        teacher = pos_scores + neg_scores if pos_scores is not None and neg_scores is not None else None
        prompt = require(obj, "prompt", str, path, lineno) if "prompt" in obj else None
        groups.append(TrainGroup(query, pos + neg, [1.0] * len(pos) + [0.0] * len(neg), n_pos=len(pos),
                                 teacher_scores=teacher, prompt=prompt))
    return groups


def read_hopweaver(path: str | os.PathLike) -> list[TrainGroup]:
    """HopWeaver's contrastive reranker data (hopweaver/train_reranker): `{query, pos, neg}`, both non-empty."""
    groups = []
    for lineno, obj in iter_jsonl(path, allow_empty=False):
        query = _query(obj, path, lineno)
        pos = _str_list(obj, "pos", path, lineno, nonempty=True)
        neg = _str_list(obj, "neg", path, lineno, nonempty=True)
        groups.append(TrainGroup(query, pos + neg, [1.0] * len(pos) + [0.0] * len(neg), n_pos=len(pos)))
    return groups


def read_pairs(path: str | os.PathLike, fmt: str, query_ids: Sequence[str] | None = None, **kwargs) -> list[TrainGroup]:
    """Read `path` in one of FORMATS (keyword arguments go to that format's reader). The formats carry no query id:
    `query_ids` (one per line, in file order, e.g. from the writer's manifest) are given back to the groups."""
    readers = {"rag-retrieval": read_rag_retrieval, "flagembedding": read_flagembedding, "hopweaver": read_hopweaver}
    if fmt not in readers:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    groups = readers[fmt](path, **kwargs)
    if query_ids is not None:
        if len(groups) != len(query_ids):
            raise ValueError(f"{path}: {len(groups)} lines but {len(query_ids)} query ids")
        for g, q in zip(groups, query_ids):
            g.query_id = q
    return groups


# ---------------------------------------------------------------------------------------------------- writer


def write_pairs_jsonl(path: str | os.PathLike, groups: Iterable[TrainGroup], fmt: str = "rag-retrieval",
                      distillation: bool | None = None) -> Path:
    """Write groups atomically in a project's format.

    rag-retrieval: binary groups (labels 0/1) as `{query, pos, neg}`; otherwise (or distillation=True) the
        distillation form `{query, pos: every doc, pos_scores: labels in [0, 1]}`.
    flagembedding: `{query, pos, neg}` plus `pos_scores`/`neg_scores` from teacher_scores and `prompt` when set.
    hopweaver: `{query, pos, neg}`.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")

    def rows():
        for g in groups:
            if fmt == "rag-retrieval":
                binary = all(lab in (0.0, 1.0) for lab in g.labels)
                if distillation or (distillation is None and not binary):
                    bad = [lab for lab in g.labels if not 0.0 <= lab <= 1.0]
                    if bad:
                        raise ValueError(f"query {g.query[:40]!r}: labels {bad[:3]} outside [0, 1]")
                    yield {"query": g.query, "pos": list(g.docs), "pos_scores": [float(x) for x in g.labels]}
                else:
                    yield {"query": g.query, "pos": [d for d, lab in zip(g.docs, g.labels) if lab == 1.0],
                           "neg": [d for d, lab in zip(g.docs, g.labels) if lab == 0.0]}
            else:
                row = {"query": g.query, "pos": g.positives, "neg": g.negatives}
                if fmt == "flagembedding" and g.teacher_scores is not None:
                    row["pos_scores"] = [float(x) for x in g.teacher_scores[: g.n_pos]]
                    row["neg_scores"] = [float(x) for x in g.teacher_scores[g.n_pos:]]
                if fmt == "flagembedding" and g.prompt is not None:
                    row["prompt"] = g.prompt
                yield row

    return write_jsonl(path, rows())


def per_group(groups: Sequence[TrainGroup], values) -> list[list[float]]:
    """Flat per-pair values (in the groups' order, doc by doc) cut back into one list per group."""
    bounds = np.cumsum([0] + [len(g.docs) for g in groups])
    return [[float(v) for v in values[a:b]] for a, b in zip(bounds[:-1], bounds[1:])]


def with_labels(groups: Sequence[TrainGroup], labels: Sequence[Sequence[float]]) -> list[TrainGroup]:
    """The groups as distillation data: every doc a positive, each with its soft label clipped to [0, 1]
    (RAG-Retrieval's `{query, pos: every doc, pos_scores}`)."""
    return [TrainGroup(g.query, g.docs, [min(1.0, max(0.0, s)) for s in scores], n_pos=len(g.docs),
                       query_id=g.query_id, doc_ids=g.doc_ids) for g, scores in zip(groups, labels)]


# ---------------------------------------------------------------------------------------------------- sampling


def sample_group(group: TrainGroup, group_size: int, seed: int, epoch: int = 0, index: int = 0) -> list[int]:
    """Indices into group.docs for one training step, positive first, drawn from (seed, epoch, index) alone.

    FlagEmbedding's rule: one random positive, then group_size - 1 negatives sampled without replacement; when the
    line has fewer negatives, the list of negatives is repeated ceil((group_size-1)/n) times and sampled from.
    A group without negatives (distillation data: every doc in `pos` with a soft label) is sampled the same way
    with its best-labelled doc as "the positive" and the rest as negatives.
    """
    if group_size < 1:
        raise ValueError("group_size must be >= 1")
    rng = np.random.default_rng([seed, epoch, index])
    n = len(group.docs)
    if n == 0:
        raise ValueError(f"query {group.query[:40]!r} has no documents")
    if 0 < group.n_pos < n:
        pos_idx, neg_idx = list(range(group.n_pos)), list(range(group.n_pos, n))
    else:  # all docs positive (soft labels) or none: the best label plays the positive
        best = max(group.labels)
        pos_idx = [i for i in range(n) if group.labels[i] == best]
        neg_idx = [i for i in range(n) if group.labels[i] != best] or [i for i in range(n) if i not in pos_idx[:1]]
    first = int(rng.choice(pos_idx))
    k = group_size - 1
    if k == 0:
        return [first]
    if not neg_idx:
        raise ValueError(f"query {group.query[:40]!r} has a single document: cannot fill a group of {group_size}")
    pool = neg_idx if len(neg_idx) >= k else neg_idx * math.ceil(k / len(neg_idx))
    chosen = rng.choice(len(pool), size=k, replace=False)
    return [first] + [pool[int(i)] for i in chosen]


def files_table(named_groups: Mapping[str, Sequence[TrainGroup]]):
    """One row per training file (name -> its groups): queries, pairs, positives, teacher scores, prompts, label
    histogram (0-0.2, ..., 0.8-1)."""
    import pandas as pd

    rows = []
    for name, groups in named_groups.items():
        labels = np.array([lab for g in groups for lab in g.labels], dtype=float)
        hist, _ = np.histogram(labels, bins=[0, 0.2, 0.4, 0.6, 0.8, 1.0 + 1e-9]) if len(labels) else (np.zeros(5), None)
        rows.append({"file": name, "queries": len(groups), "pairs": int(len(labels)),
                     "positives": int(sum(g.n_pos for g in groups)),
                     "with teacher scores": int(sum(g.teacher_scores is not None for g in groups)),
                     "with prompt": sum(g.prompt is not None for g in groups),
                     **{f"labels {lo:.1f}-{lo + 0.2:.1f}": int(c) for lo, c in zip(np.arange(0, 1, 0.2), hist)}})
    return pd.DataFrame(rows).set_index("file").fillna("")


def example_files(data_root=None):
    """The projects' own example files (RAG-Retrieval, FlagEmbedding) read by the readers above: they must load."""
    from ..paths import data_root as resolve_root

    root, rag, flag = resolve_root(data_root), "rag-retrieval/example_data/", "flagembedding/reranker/"
    return files_table({rel: reader(root / rel, **kwargs) for rel, reader, kwargs in (
        (rag + "t2rank_100.jsonl", read_rag_retrieval, {}),
        (rag + "t2rank_100.distill.standard.jsonl", read_rag_retrieval, {}),
        (rag + "t2rank_100.distill.jsonl", read_rag_retrieval, {}),
        (flag + "normal/examples.jsonl", read_flagembedding, {"knowledge_distillation": True}),
        (flag + "prompt_based/examples.jsonl", read_flagembedding, {}),
        (flag + "old_toy/toy_finetune_data.jsonl", read_flagembedding, {}))})
