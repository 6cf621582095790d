"""Any dataset of the `ir_datasets` package (e.g. `beir/nfcorpus/test`, `msmarco-passage/trec-dl-2019/judged`) as
the project's Dataset.

ir_datasets fetches each dataset's files into $IR_DATASETS_HOME (default ~/.ir_datasets) on first use and reads
them from there afterwards, so a dataset works offline once its files are there. The conversion keeps what the
built-ins keep: the judged queries only, in query-id order (2 before 10), graded qrels as integers, documents as
title + text. The whole corpus is read into memory (fine for BEIR-sized collections; MS MARCO's 8.8M passages
need several GB).
"""
from __future__ import annotations

import os
from pathlib import Path

from .trec import qid_order
from .types import Dataset, Document, Qrels


class IrDatasetsUnavailable(RuntimeError):
    """An ir_datasets id whose files are neither under $IR_DATASETS_HOME nor downloadable from here."""


def is_ir_datasets_id(name: str) -> bool:
    """Whether `name` is a dataset id registered by the ir_datasets package."""
    import ir_datasets

    return name in ir_datasets.registry


def _text(item, fields: tuple[str, ...]) -> str:
    """The first text field the namedtuple has (docs: text/body/abstract...; queries: text/title...), else
    ir_datasets' own default_text()."""
    for name in fields:
        value = getattr(item, name, None)
        if isinstance(value, str):
            return value
    if hasattr(item, "default_text"):
        return item.default_text()
    raise ValueError(f"{type(item).__name__} has none of the fields {fields} and no default_text()")


def dataset_from_ir_datasets(source, dataset_id: str) -> Dataset:
    """Convert an object with ir_datasets' interface (docs_iter, queries_iter, qrels_iter) into a Dataset named by
    `dataset_id` (name = all but the last path part, split = the last part: the key is the id itself)."""
    for needed in ("docs", "queries", "qrels"):
        if not getattr(source, f"has_{needed}")():
            raise ValueError(f"ir_datasets '{dataset_id}' has no {needed}: pick an id with docs, queries and qrels "
                             f"(e.g. 'beir/nfcorpus/test')")
    qrels: Qrels = {}
    for row in source.qrels_iter():
        qrels.setdefault(str(row.query_id), {})[str(row.doc_id)] = int(row.relevance)
    texts = {str(q.query_id): _text(q, ("text", "title", "query")) for q in source.queries_iter()}
    missing = [q for q in qrels if q not in texts]
    if missing:
        raise ValueError(f"ir_datasets '{dataset_id}': {len(missing)} judged queries have no text, e.g. {missing[:3]}")
    order = sorted(qrels, key=qid_order)
    corpus = {}
    for doc in source.docs_iter():
        title = getattr(doc, "title", "") or ""
        corpus[str(doc.doc_id)] = Document(str(doc.doc_id), _text(doc, ("text", "body", "abstract", "passage")),
                                           title if isinstance(title, str) else "")
    name, _, split = dataset_id.rpartition("/")
    return Dataset(name=name or dataset_id, split=split if name else "all", corpus=corpus,
                   queries={q: texts[q] for q in order}, qrels={q: qrels[q] for q in order})


def load_ir_dataset(dataset_id: str) -> Dataset:
    """Load an ir_datasets id (downloading into $IR_DATASETS_HOME when its files are not there yet)."""
    import ir_datasets

    source = ir_datasets.load(dataset_id)
    try:
        return dataset_from_ir_datasets(source, dataset_id)
    except OSError as err:  # requests' ConnectionError, timeouts, missing manual files
        home = os.environ.get("IR_DATASETS_HOME") or str(Path.home() / ".ir_datasets")
        raise IrDatasetsUnavailable(
            f"ir_datasets '{dataset_id}': its files are not under {home} ($IR_DATASETS_HOME) and could not be "
            f"downloaded ({type(err).__name__}: {str(err)[:200]}); run once with network access, or copy "
            f"the files there") from None
