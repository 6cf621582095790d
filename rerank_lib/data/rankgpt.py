"""RankGPT-format candidate files: a JSON list of {query, hits: [{qid, docid, rank, score, content}]}.

This is how rank_llm ships BM25 top-100 lists with passage text (TREC DL) and its training candidates.
"""
from __future__ import annotations

import os

from .errors import DataFormatError
from .lines import read_json
from .types import Document, Run


def read_rankgpt(path: str | os.PathLike) -> tuple[dict[str, str], Run, dict[str, Document]]:
    """Return (queries, run, passages) from a RankGPT candidate file; entries are numbered from 1."""
    entries = read_json(path)
    if not isinstance(entries, list):
        raise DataFormatError(path, None, None, "expected a JSON list of {query, hits} entries")
    queries: dict[str, str] = {}
    run: Run = {}
    passages: dict[str, Document] = {}
    for i, entry in enumerate(entries, start=1):
        where = f"entry {i}"
        if not isinstance(entry, dict) or "query" not in entry or "hits" not in entry:
            raise DataFormatError(path, None, where, "expected an object with 'query' and 'hits'")
        hits = entry["hits"]
        if not isinstance(hits, list) or not hits:
            raise DataFormatError(path, None, f"{where}.hits", "expected a non-empty list")
        for j, hit in enumerate(hits, start=1):
            for key in ("qid", "docid", "content"):
                if key not in hit:
                    raise DataFormatError(path, None, f"{where}.hits[{j}].{key}", "missing")
            qid, docid = str(hit["qid"]), str(hit["docid"])
            score = hit.get("score", -float(hit.get("rank", j)))
            try:
                run.setdefault(qid, {})[docid] = float(score)
            except (TypeError, ValueError):
                raise DataFormatError(path, None, f"{where}.hits[{j}].score", f"not a number: {score!r}") from None
            queries[qid] = entry["query"]
            passages.setdefault(docid, Document(doc_id=docid, text=hit["content"]))
    return queries, run, passages
