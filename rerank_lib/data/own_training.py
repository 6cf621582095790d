"""A user's own training file, in a peer's format, as a pipeline's training data: its queries named, a dev slice
held out of it by query (when no eval file is given), and a dev set built from its groups.

The peers' formats carry no query ids; a query is its text, so the lines of one query (RAG-Retrieval's per-pair
lines, or a query repeated over lines) stay on one side of the train / dev cut. The dev set reranks each dev
query's own candidates (the file's docs, in a seeded order: the file lists positives first) against their labels.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

from .errors import DataFormatError
from .pairs import TrainGroup
from .splits import TrainingQueries, dev_slice
from .types import Dataset, Document, Run

DEV_FRACTION, MIN_DEV = 0.1, 20  # as the SciFact dev slice: a tenth of the queries, at least 20 (half of a tiny file)


def without_unset(settings: dict, names) -> dict:
    """A record's settings without the own-file settings left unset: the notebooks' records stay as they were
    before those settings existed."""
    return {k: v for k, v in settings.items() if not (k in names and v is None)}


def existing(path: str | Path) -> Path:
    """The file, or a DataFormatError naming it (a relative path is read from where the command runs, as the peers
    read theirs)."""
    if not Path(path).is_file():
        raise DataFormatError(path, None, None, "no such file (a relative path is read from the directory you run in)")
    return Path(path)


def name_queries(groups: Sequence[TrainGroup], file: str | Path) -> list[TrainGroup]:
    """Give each group the id of its query text (`<file name>:<n>`, n by first appearance); ids already set stay."""
    ids: dict[str, str] = {}
    for g in groups:
        if g.query_id is None:
            g.query_id = ids.setdefault(g.query, f"{Path(file).name}:{len(ids)}")
    return list(groups)


def split_by_query(groups: Sequence, seed: int, fraction: float = DEV_FRACTION, min_size: int = MIN_DEV,
                   key=lambda g: g.query_id) -> tuple[list, list]:
    """(train, dev): a seeded slice of the queries (every line of a dev query) held out for checkpoint selection;
    `key(item)` names an item's query (TrainGroups: their query_id)."""
    qids = sorted({key(g) for g in groups})
    if len(qids) < 2:
        raise ValueError(f"{len(qids)} distinct quer{'y' if len(qids) == 1 else 'ies'} in the training file: a dev "
                         "slice needs 2 or more (or give an eval file)")
    _, dev = dev_slice(qids, fraction=fraction, min_size=min(min_size, len(qids) // 2), seed=seed)
    dev = set(dev)
    return [g for g in groups if key(g) not in dev], [g for g in groups if key(g) in dev]


def reranking_dataset(groups: Sequence[TrainGroup], name: str, seed: int) -> tuple[Dataset, Run]:
    """The groups as a reranking task: each query's docs as candidates in a seeded random order (a file has no first
    stage; scores descend in that order, so no label leaks into it),
    qrels from the labels (a label > 0 is relevant, graded by rank of its label: RAG-Retrieval's multi-level
    labels keep their order; nDCG needs integer grades, so grade = round(label * 10))."""
    corpus, queries, qrels, run = {}, {}, {}, {}
    for g in groups:
        queries[g.query_id] = g.query
        order = list(range(len(g.docs)))
        random.Random(f"{seed}:{g.query_id}").shuffle(order)
        for position, i in enumerate(order):
            doc_id = f"{g.query_id}:{len(corpus)}"
            corpus[doc_id] = Document(doc_id, g.docs[i])
            run.setdefault(g.query_id, {})[doc_id] = float(len(order) - position)
            grade = round(float(g.labels[i]) * 10)
            qrels.setdefault(g.query_id, {})[doc_id] = grade
    judged = [q for q, rels in qrels.items() if any(r > 0 for r in rels.values())]
    if not judged:
        raise ValueError(f"{name}: no query has a document labelled above 0: nothing to select checkpoints on")
    ds = Dataset(name, "dev", corpus, queries, qrels).subset(judged)
    return ds, {q: run[q] for q in judged}


def provenance(file: str | Path, groups: Sequence[TrainGroup]) -> TrainingQueries:
    """The training queries a record names: the file and its query texts (the leak guard compares texts)."""
    return TrainingQueries.of(f"file:{Path(file).name}", {g.query_id: g.query for g in groups})
