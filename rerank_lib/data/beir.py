"""BEIR folders: corpus.jsonl[.gz], queries.jsonl (or queries.<split>.tsv), qrels/<split>.tsv."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import DataFormatError, check_id
from .jsonl import iter_jsonl, require
from .trec import read_qrels, read_topics
from .types import Dataset, Document


def read_corpus(path: str | os.PathLike) -> dict[str, Document]:
    corpus: dict[str, Document] = {}
    for lineno, obj in iter_jsonl(path):
        doc_id = check_id(path, lineno, "_id", str(require(obj, "_id", (str, int), path, lineno)))
        text = require(obj, "text", str, path, lineno)
        title = obj.get("title") or ""
        if not isinstance(title, str):
            raise DataFormatError(path, lineno, "title", f"expected str, got {type(title).__name__}")
        if doc_id in corpus:
            raise DataFormatError(path, lineno, "_id", f"duplicate document id {doc_id!r}")
        corpus[doc_id] = Document(doc_id=doc_id, text=text, title=title)
    return corpus


def read_queries(path: str | os.PathLike) -> dict[str, str]:
    """BEIR queries.jsonl: `_id` without whitespace (runs and qrels split on it), `text` not empty."""
    queries: dict[str, str] = {}
    for lineno, obj in iter_jsonl(path):
        qid = check_id(path, lineno, "_id", str(require(obj, "_id", (str, int), path, lineno)))
        text = require(obj, "text", str, path, lineno)
        if not text.strip():
            raise DataFormatError(path, lineno, "text", "empty")
        queries[qid] = text
    return queries


def _first_existing(folder: Path, names: list[str]) -> Path | None:
    return next((folder / n for n in names if (folder / n).exists()), None)


def load_beir(folder: str | os.PathLike, split: str = "test", name: str | None = None, require_corpus: bool = True) -> Dataset:
    """Load one split of a BEIR dataset; queries are restricted to those judged in that split's qrels."""
    folder = Path(folder)
    name = name or folder.name
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.exists():
        raise FileNotFoundError(f"{qrels_path}: no qrels for split '{split}' in {folder}")
    qrels = read_qrels(qrels_path)
    corpus_path = _first_existing(folder, ["corpus.jsonl", "corpus.jsonl.gz"])
    if corpus_path is None and require_corpus:
        raise FileNotFoundError(f"{folder}: no corpus.jsonl[.gz] (partial datasets carry qrels and queries only)")
    corpus = read_corpus(corpus_path) if corpus_path else {}
    queries_path = _first_existing(folder, ["queries.jsonl", "queries.jsonl.gz"])
    if queries_path is not None:
        queries = read_queries(queries_path)
    else:
        tsv = _first_existing(folder, [f"queries.{split}.tsv", "queries.tsv"])
        if tsv is None:
            raise FileNotFoundError(f"{folder}: no queries.jsonl or queries.{split}.tsv")
        queries = read_topics(tsv)
    missing = [q for q in qrels if q not in queries]
    if missing:
        raise DataFormatError(qrels_path, None, "query-id", f"{len(missing)} judged queries have no text, e.g. {missing[:3]}")
    split_queries = {q: queries[q] for q in qrels}
    return Dataset(name=name, split=split, corpus=corpus, queries=split_queries, qrels=qrels)
