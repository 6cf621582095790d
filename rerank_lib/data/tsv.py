"""Tab-separated corpus and query files, as MS MARCO and many users keep them: `id<TAB>text` per line.

A corpus line may also be `id<TAB>title<TAB>text` (three fields). A first line that names its columns
(`id`/`docid`/`qid`... then `text`/`title`/`query`) is a header and is skipped.
"""
from __future__ import annotations

import os

from .errors import DataFormatError, check_id
from .lines import iter_lines
from .types import Document

_HEADER_IDS = {"id", "_id", "docid", "doc_id", "pid", "qid", "query_id", "query-id", "corpus-id"}


def _rows(path: str | os.PathLike, what: str):
    """(line number, fields) of each non-blank line, the header skipped; an empty file is an error."""
    found = False
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        if lineno == 1 and fields[0].strip().lower() in _HEADER_IDS and len(fields) > 1:
            continue
        found = True
        yield lineno, fields
    if not found:
        raise DataFormatError(path, None, None, f"no {what}: the file is empty or holds only blank lines")


class CorpusBuilder:
    """Documents read line by line from a user's file: ids non-empty, unique and without whitespace, some text;
    an error names the file, the line and the field (shared by the TSV and JSONL corpus readers)."""

    def __init__(self, path: str | os.PathLike):
        self.path, self.corpus, self.first_line = path, {}, {}

    def add(self, lineno: int, doc_id: str, title: str, text: str, id_field: str = "id",
            text_field: str = "text") -> None:
        check_id(self.path, lineno, id_field, doc_id)
        if not (text.strip() or title.strip()):
            raise DataFormatError(self.path, lineno, text_field, "empty")
        if doc_id in self.corpus:
            raise DataFormatError(self.path, lineno, id_field, f"duplicate document id {doc_id!r} (first on line "
                                                               f"{self.first_line[doc_id]})")
        self.first_line[doc_id] = lineno
        self.corpus[doc_id] = Document(doc_id=doc_id, text=text, title=title)


def read_tsv_corpus(path: str | os.PathLike) -> dict[str, Document]:
    """`id<TAB>text` or `id<TAB>title<TAB>text` lines; ids unique, text non-empty."""
    docs = CorpusBuilder(path)
    for lineno, fields in _rows(path, "documents"):
        if len(fields) == 2:
            doc_id, title, text = fields[0].strip(), "", fields[1].strip()
        elif len(fields) == 3:
            doc_id, title, text = fields[0].strip(), fields[1].strip(), fields[2].strip()
        else:
            raise DataFormatError(path, lineno, None, f"expected 'id<TAB>text' or 'id<TAB>title<TAB>text', got "
                                                      f"{len(fields)} tab-separated fields")
        docs.add(lineno, doc_id, title, text)
    return docs.corpus


def read_tsv_queries(path: str | os.PathLike) -> dict[str, str]:
    """`qid<TAB>query` lines (anserini topics, BEIR queries.*.tsv); ids unique, text non-empty."""
    queries: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for lineno, fields in _rows(path, "queries"):
        if len(fields) < 2:
            raise DataFormatError(path, lineno, "query", "expected 'qid<TAB>query'")
        qid, text = fields[0].strip(), "\t".join(fields[1:]).strip()
        check_id(path, lineno, "qid", qid)
        if not text:
            raise DataFormatError(path, lineno, "query", "empty")
        if qid in queries:
            raise DataFormatError(path, lineno, "qid", f"duplicate query id {qid!r} (first on line {first_line[qid]})")
        first_line[qid] = lineno
        queries[qid] = text
    return queries
