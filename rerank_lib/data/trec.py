"""TREC topics, qrels and run files (read with validation, written atomically)."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Sequence

from ..atomic import atomic_open
from .errors import DataFormatError, check_id
from .lines import iter_lines
from .types import Qrels, Run


def read_topics(path: str | os.PathLike) -> dict[str, str]:
    """Tab-separated `qid<TAB>query` lines (anserini's topics.*.tsv, BEIR's queries.*.tsv): the id without
    whitespace, the text not empty."""
    topics: dict[str, str] = {}
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise DataFormatError(path, lineno, "query", "expected 'qid<TAB>query'")
        qid, text = check_id(path, lineno, "qid", parts[0].strip()), "\t".join(parts[1:]).strip()
        if not text:
            raise DataFormatError(path, lineno, "query", "empty")
        topics[qid] = text
    return topics


#: the tags of a classic TREC topic, each at the start of a line, with the label some collections put after it
#: (ir_datasets' TrecQueries reads the same); a closing tag (`</title>`) may end the text
TOPIC_TAGS = {"num": re.compile(r"\s*<num>\s*(Number:)?"), "title": re.compile(r"\s*<title>\s*(Topic:)?"),
              "description": re.compile(r"\s*<desc>\s*(Description:)?"),
              "narrative": re.compile(r"\s*<narr>\s*(Narrative:)?")}
_CLOSING = re.compile(r"</(num|title|desc|narr)>")


def read_trec_topics(path: str | os.PathLike, field: str = "title") -> dict[str, str]:
    """A classic TREC topics file (`<top> <num> <title> [<desc>] [<narr>] </top>`); `field` picks the query text:
    'title' (the short query), 'description' or 'narrative'. A topic needs only its number and the field asked for
    (title-only topics files are common); a text over several lines is joined with spaces. A missing or empty
    field, an id with whitespace, a repeated id or a `<top>` never closed names the file, the topic's line and the
    field."""
    if field not in ("title", "description", "narrative"):
        raise ValueError(f"field must be 'title', 'description' or 'narrative', not {field!r}")
    topics: dict[str, str] = {}
    first_line: dict[str, int] = {}
    start: int | None = None
    fields: dict[str, list[str]] = {}
    reading: str | None = None
    for lineno, line in iter_lines(path):
        if line.strip().startswith("<top>"):
            if start is not None:
                raise DataFormatError(path, start, None, "<top> not closed by </top> before the next <top>")
            start, fields, reading = lineno, {}, None
            continue
        if line.strip().startswith("</top>"):
            if start is None:
                raise DataFormatError(path, lineno, None, "</top> without a <top>")
            qid = check_id(path, start, "num", " ".join(fields.get("num", [])).strip())
            text = " ".join(" ".join(fields.get(field, [])).split())
            if not text:
                tag = {"description": "desc", "narrative": "narr"}.get(field, field)
                raise DataFormatError(path, start, field, f"topic {qid!r} has no <{tag}> text"
                                                          + ("" if field in fields else " (no such element)"))
            if qid in topics:
                raise DataFormatError(path, start, "num", f"duplicate topic {qid!r} (first on line {first_line[qid]})")
            topics[qid], first_line[qid], start = text, start, None
            continue
        if start is None:
            continue
        for name, tag in TOPIC_TAGS.items():
            found = tag.match(line)
            if found:
                fields[name], reading = [_CLOSING.sub("", line[found.end():]).strip()], name
                break
        else:
            if reading and not line.lstrip().startswith("<"):
                fields[reading].append(_CLOSING.sub("", line).strip())
    if start is not None:
        raise DataFormatError(path, start, None, "<top> not closed by </top>")
    if not topics:
        raise DataFormatError(path, None, None, "not a TREC topics file (no <top> element); a qid<TAB>query "
                                                "file must be named .tsv")
    return topics


def read_qrels(path: str | os.PathLike) -> Qrels:
    """TREC qrels (`qid iter docid grade`) or BEIR qrels tsv (`query-id corpus-id score`, with a header). A
    tab-separated line whose id holds a space is an error, not a line read with other columns."""
    qrels: Qrels = {}
    for lineno, line in iter_lines(path):
        parts = line.split()
        if not parts:
            continue
        if lineno == 1 and parts[0] == "query-id":
            continue
        tabs = [p.strip() for p in line.strip().split("\t")]
        if len(tabs) in (3, 4) and len(tabs) != len(parts):  # tab-separated with a space inside a field: an id
            names = ("query-id", "corpus-id", "score") if len(tabs) == 3 else ("qid", "iter", "docid", "grade")
            for name, value in zip(names, tabs):
                check_id(path, lineno, name, value)
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
    """TREC run (`qid Q0 docid rank score tag`). A document named twice for one query is an error (trec_eval
    refuses such runs, and a dict would silently keep the second score)."""
    run: Run = {}
    first_line: dict[tuple[str, str], int] = {}
    for lineno, line in iter_lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 6:
            hint = (" (an id holding a space reads as two columns: ids must not contain whitespace)"
                    if len(parts) > 6 else "")
            raise DataFormatError(path, lineno, None, f"expected 6 columns 'qid Q0 docid rank score tag', got "
                                                      f"{len(parts)}{hint}")
        qid, _, docid, rank, score, _tag = parts
        try:
            int(rank)
        except ValueError:
            raise DataFormatError(path, lineno, "rank", f"not an integer: {rank!r}") from None
        if (qid, docid) in first_line:
            raise DataFormatError(path, lineno, "docid", f"document {docid!r} appears twice for query {qid!r} "
                                                         f"(first on line {first_line[qid, docid]})")
        first_line[qid, docid] = lineno
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


def run_pairs(run: Run) -> list[tuple[str, str]]:
    """Every (query id, doc id) of `run`, query by query in rank order: the order pair scores are computed in."""
    return [(q, d) for q, docs in run.items() for d, _ in ranked(docs)]


def run_from_pairs(query_ids: Iterable[str], pairs: Sequence[tuple[str, str]], scores: Iterable[float]) -> Run:
    """run_pairs undone: one score per pair back into a Run that holds every query of `query_ids` (even one with
    no pair), each score a float."""
    out: Run = {q: {} for q in query_ids}
    for (q, d), s in zip(pairs, scores):
        out[q][d] = float(s)
    return out

def pooled_corpus(corpus: dict, runs: list[Run], depth: int, qrels: list[dict]) -> dict:
    """The documents of `corpus` in any run's top `depth` or judged in any of `qrels`, in id order: a small
    corpus (smoke, paper-tiny) on which every evaluated query still finds its judged documents."""
    pool = {d for run in runs for docs in top_k(run, depth).values() for d in docs}
    pool |= {d for judged in qrels for docs in judged.values() for d in docs}
    return {d: corpus[d] for d in sorted(pool) if d in corpus}


def write_run(run: Run, path: str | os.PathLike, tag: str = "rerank_repro", exact: bool = False) -> Path:
    """Write a TREC run file atomically, ranks 1..n in score order. Scores have 6 decimals, as trec_eval's users
    expect; `exact=True` writes each score's shortest round-trip form instead, so that a cache read back gives the
    very floats that were written (6 decimals would make a cached input differ from a freshly computed one)."""
    with atomic_open(path, "w") as handle:
        for qid in sorted(run, key=qid_order):
            for rank, (docid, score) in enumerate(ranked(run[qid]), start=1):
                shown = repr(float(score)) if exact else f"{score:.6f}"
                handle.write(f"{qid} Q0 {docid} {rank} {shown} {tag}\n")
    return Path(path)


def qid_order(qid: str):
    """Sort key for query ids: numeric ids by value (2 before 10), then the others by text."""
    return (0, int(qid), "") if qid.isdigit() else (1, 0, qid)
