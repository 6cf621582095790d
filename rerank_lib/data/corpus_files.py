"""A user's own corpus and query files, whatever shape they come in, read by their suffix.

corpus:  a BEIR folder (corpus.jsonl[.gz]), `.tsv` (`id<TAB>text`, see tsv.py), or `.jsonl[.gz]` with one object
         per line: id in `_id`, `id` or `docid`; text in `text` or `contents` (Pyserini); `title` optional.
queries: a BEIR folder (queries.jsonl), `.jsonl[.gz]` (id in `_id`, `id` or `qid`; text in `text` or `query`),
         `.tsv` (`qid<TAB>query`), or a classic TREC topics file (`<top>...`, any other suffix).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import DataFormatError, check_id
from .jsonl import iter_jsonl
from .trec import read_trec_topics
from .tsv import CorpusBuilder, read_tsv_corpus, read_tsv_queries
from .types import Document

DOC_ID_FIELDS = ("_id", "id", "docid")
DOC_TEXT_FIELDS = ("text", "contents")
QUERY_ID_FIELDS = ("_id", "id", "qid")
QUERY_TEXT_FIELDS = ("text", "query")


def _one_of(obj: dict, names: tuple[str, ...], types, path, lineno: int) -> Any:
    """The value of the first of `names` present in obj, of one of `types`; missing or mistyped raises."""
    for name in names:
        if name in obj:
            value = obj[name]
            if isinstance(value, bool) or not isinstance(value, types):
                raise DataFormatError(path, lineno, name, f"expected {' or '.join(t.__name__ for t in types)}, "
                                                          f"got {type(value).__name__}")
            return name, value
    raise DataFormatError(path, lineno, "/".join(names), "missing (give one of these fields)")


def read_jsonl_corpus(path: str | os.PathLike) -> dict[str, Document]:
    """One document per line (BEIR or Pyserini fields); ids unique, text non-empty."""
    docs = CorpusBuilder(path)
    for lineno, obj in iter_jsonl(path, allow_empty=False):
        id_field, doc_id = _one_of(obj, DOC_ID_FIELDS, (str, int), path, lineno)
        text_field, text = _one_of(obj, DOC_TEXT_FIELDS, (str,), path, lineno)
        title = obj.get("title") or ""
        if not isinstance(title, str):
            raise DataFormatError(path, lineno, "title", f"expected str, got {type(title).__name__}")
        docs.add(lineno, str(doc_id).strip(), title, text, id_field, text_field)
    return docs.corpus


def read_jsonl_queries(path: str | os.PathLike) -> dict[str, str]:
    """One query per line (BEIR `{_id, text}` or `{qid, query}`); ids unique, text non-empty."""
    queries: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for lineno, obj in iter_jsonl(path, allow_empty=False):
        id_field, qid = _one_of(obj, QUERY_ID_FIELDS, (str, int), path, lineno)
        text_field, text = _one_of(obj, QUERY_TEXT_FIELDS, (str,), path, lineno)
        qid = check_id(path, lineno, id_field, str(qid).strip())
        if not text.strip():
            raise DataFormatError(path, lineno, text_field, "empty")
        if qid in queries:
            raise DataFormatError(path, lineno, id_field, f"duplicate query id {qid!r} (first on line "
                                                          f"{first_line[qid]})")
        first_line[qid] = lineno
        queries[qid] = text
    return queries


def _file_of(path: str | os.PathLike, name: str, what: str, tsv, jsonl, other):
    """`path` (a BEIR folder: its `name`.jsonl[.gz]) read by its kind: `tsv`, `jsonl`, else `other`."""
    path = Path(path)
    if path.is_dir():
        names = (f"{name}.jsonl", f"{name}.jsonl.gz")
        found = [path / n for n in names if (path / n).is_file()]
        if not found:
            raise FileNotFoundError(f"{path}: a folder must hold {' or '.join(names)} ({what})")
        path = found[0]
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.name.endswith((".tsv", ".tsv.gz")):
        return tsv(path)
    return jsonl(path) if path.name.endswith((".jsonl", ".jsonl.gz")) else other(path)


def _unknown_corpus(path: Path):
    raise DataFormatError(path, None, None, "unknown corpus format: name it .tsv (id<TAB>text) or .jsonl")


def read_corpus_file(path: str | os.PathLike) -> dict[str, Document]:
    """A corpus from a BEIR folder, a .tsv or a .jsonl[.gz] file (see the module docstring)."""
    return _file_of(path, "corpus", "a BEIR corpus", read_tsv_corpus, read_jsonl_corpus, _unknown_corpus)


def read_queries_file(path: str | os.PathLike) -> dict[str, str]:
    """Queries from a BEIR folder, a .jsonl[.gz], a .tsv or a TREC topics file (see the module docstring)."""
    return _file_of(path, "queries", "BEIR queries", read_tsv_queries, read_jsonl_queries, read_trec_topics)
