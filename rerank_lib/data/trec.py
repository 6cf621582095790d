"""TREC topics, qrels and run files (read with validation, written atomically)."""
from __future__ import annotations

import os
from pathlib import Path

from ..atomic import atomic_open
from .errors import DataFormatError
from .jsonl import open_text
from .types import Qrels, Run


def read_topics(path: str | os.PathLike) -> dict[str, str]:
    """Tab-separated `qid<TAB>query` lines (anserini's topics.*.tsv, BEIR's queries.*.tsv)."""
    topics: dict[str, str] = {}
    with open_text(path) as handle:
        for lineno, line in enumerate(handle, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < 2:
                raise DataFormatError(path, lineno, "query", "expected 'qid<TAB>query'")
            qid, text = parts[0].strip(), "\t".join(parts[1:]).strip()
            if not qid:
                raise DataFormatError(path, lineno, "qid", "empty")
            topics[qid] = text
    return topics


def read_qrels(path: str | os.PathLike) -> Qrels:
    """TREC qrels (`qid iter docid grade`) or BEIR qrels tsv (`query-id corpus-id score`, with a header)."""
    qrels: Qrels = {}
    with open_text(path) as handle:
        for lineno, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts:
                continue
            if lineno == 1 and parts[0] == "query-id":
                continue
            if len(parts) == 4:
                qid, _, docid, grade = parts
            elif len(parts) == 3:
                qid, docid, grade = parts
            else:
                raise DataFormatError(path, lineno, None, f"expected 3 (BEIR) or 4 (TREC) columns, got {len(parts)}")
            try:
                value = int(grade)
            except ValueError:
                raise DataFormatError(path, lineno, "grade", f"not an integer: {grade!r}") from None
            qrels.setdefault(qid, {})[docid] = value
    return qrels


def read_run(path: str | os.PathLike) -> Run:
    """TREC run (`qid Q0 docid rank score tag`)."""
    run: Run = {}
    with open_text(path) as handle:
        for lineno, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise DataFormatError(path, lineno, None, f"expected 6 columns 'qid Q0 docid rank score tag', got {len(parts)}")
            qid, _, docid, rank, score, _tag = parts
            try:
                int(rank)
            except ValueError:
                raise DataFormatError(path, lineno, "rank", f"not an integer: {rank!r}") from None
            try:
                run.setdefault(qid, {})[docid] = float(score)
            except ValueError:
                raise DataFormatError(path, lineno, "score", f"not a number: {score!r}") from None
    return run


def ranked(scores: dict[str, float]) -> list[tuple[str, float]]:
    """Docs of one query by descending score, ties by descending doc id: the order trec_eval (and ir-measures) evaluate."""
    return sorted(scores.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)


def top_k(run: Run, k: int) -> Run:
    """Keep the k best documents of every query."""
    return {q: dict(ranked(docs)[:k]) for q, docs in run.items()}


def write_run(run: Run, path: str | os.PathLike, tag: str = "rerank_repro") -> Path:
    """Write a TREC run file atomically, ranks 1..n in score order."""
    with atomic_open(path, "w") as handle:
        for qid in sorted(run, key=qid_order):
            for rank, (docid, score) in enumerate(ranked(run[qid]), start=1):
                handle.write(f"{qid} Q0 {docid} {rank} {score:.6f} {tag}\n")
    return Path(path)


def qid_order(qid: str):
    """Sort key for query ids: numeric ids by value (2 before 10), then the others by text."""
    return (0, int(qid), "") if qid.isdigit() else (1, 0, qid)
