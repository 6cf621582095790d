"""HopWeaver's contrastive reranker data (Zh1yuShen/HopWeaver, hopweaver/train_reranker): each generator attempt
(a query, its candidates in retrieval order, the judge's verdicts) and the `{query, pos: [text], neg: [text]}` file
it writes, one line per attempt with at least one positive and one negative. `pairs.read_hopweaver` reads it.

HopWeaver's own published files (`train_data_sample.jsonl`, `test_data.jsonl`, under `hopweaver/` of the data root)
load as a Dataset (`read_candidates`, the registry's 'hopweaver' dataset): one query per line, its passages as
documents, qrels 1 for `pos` and 0 for `neg`, and the line's candidates as the run 'candidates', so a ranker
reranks exactly the passages the line gives and is measured by whether a positive comes first
(evaluation.candidate_measures)."""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .errors import DataFormatError
from .jsonl import iter_jsonl, require, write_jsonl
from .pairs import TrainGroup, read_hopweaver
from .types import Dataset, Document, Qrels, Run

#: HopWeaver's published files by split (hopweaver/train_reranker/data; the full train_data.jsonl is not published
#: in the snapshot, its 100-line sample is)
SPLIT_FILES = {"train": "train_data_sample.jsonl", "test": "test_data.jsonl"}
#: the name of a candidates Dataset's run of each line's passages
CANDIDATES = "candidates"


def _passages(obj: dict, name: str, path, lineno: int) -> list[str]:
    value = require(obj, name, list, path, lineno)
    if not value:
        raise DataFormatError(path, lineno, name, "empty list: a line needs at least one positive and one negative")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            got = repr(item) if isinstance(item, str) else type(item).__name__
            raise DataFormatError(path, lineno, f"{name}[{i}]", f"expected a non-empty passage text, got {got}")
    return value


def read_candidates(path: str | os.PathLike, split: str, name: str = "hopweaver") -> Dataset:
    """A `{query, pos, neg}` file as a Dataset of given candidates (see the module docstring). Query ids are
    '<split>-<line number>' (train and test ids never collide for the leak guard); documents are the split's
    distinct passage texts, '<split>-d<n>' in order of first appearance, so a passage repeated across lines is one
    document. Every problem names the file, line and field: a missing or empty query / pos / neg, a non-text
    passage, a passage given twice in one line, a query repeated on another line."""
    texts: dict[str, str] = {}  # passage text -> doc id
    queries: dict[str, str] = {}
    qrels: Qrels = {}
    seen_query: dict[str, int] = {}
    for lineno, obj in iter_jsonl(path, allow_empty=False):
        query = require(obj, "query", str, path, lineno)
        if not query.strip():
            raise DataFormatError(path, lineno, "query", "empty")
        if query in seen_query:
            raise DataFormatError(path, lineno, "query", f"repeats the query of line {seen_query[query]}")
        seen_query[query] = lineno
        judged: dict[str, int] = {}
        for field_name, grade in (("pos", 1), ("neg", 0)):
            for i, text in enumerate(_passages(obj, field_name, path, lineno)):
                doc_id = texts.setdefault(text, f"{split}-d{len(texts)}")
                if doc_id in judged:
                    raise DataFormatError(path, lineno, f"{field_name}[{i}]", "the same passage is given twice in this line")
                judged[doc_id] = grade
        qid = f"{split}-{lineno}"
        queries[qid], qrels[qid] = query, judged
    corpus = {d: Document(d, text) for text, d in texts.items()}
    run: Run = {q: {d: 0.0 for d in judged} for q, judged in qrels.items()}
    return Dataset(name=name, split=split, corpus=corpus, queries=queries, qrels=qrels, runs={CANDIDATES: run})


def load_hopweaver(folder: str | os.PathLike, split: str, name: str = "hopweaver") -> Dataset:
    """The registry's loader: `SPLIT_FILES[split]` under `folder`, read by read_candidates."""
    if split not in SPLIT_FILES:
        raise KeyError(f"HopWeaver data has splits {sorted(SPLIT_FILES)}, not '{split}'")
    return read_candidates(Path(folder) / SPLIT_FILES[split], split, name)


def candidate_groups(ds: Dataset) -> list[TrainGroup]:
    """A candidates Dataset's queries as TrainGroups (positives first, then negatives, in the line's order), with
    their query and document ids: what a group loss trains on."""
    groups = []
    for q, query in ds.queries.items():
        judged = ds.qrels[q]
        docs = [d for d, g in judged.items() if g > 0] + [d for d, g in judged.items() if g <= 0]
        n_pos = sum(1 for g in judged.values() if g > 0)
        groups.append(TrainGroup(query, [ds.corpus[d].text_for_model for d in docs], [1.0] * n_pos + [0.0] * (len(docs) - n_pos),
                                 n_pos=n_pos, query_id=q, doc_ids=docs))
    return groups


@dataclass
class GeneratedExample:
    """One generator attempt: its source, query, the candidates in retrieval order and their verdicts."""

    query_id: str
    query: str | None
    source_id: str | None
    candidates: list[str] = field(default_factory=list)
    verdicts: list[bool] = field(default_factory=list)

    @property
    def pos(self) -> list[str]:
        return [d for d, v in zip(self.candidates, self.verdicts) if v]

    @property
    def neg(self) -> list[str]:
        return [d for d, v in zip(self.candidates, self.verdicts) if not v]

    @property
    def usable(self) -> bool:
        return bool(self.query and self.pos and self.neg)


def to_groups(examples: Sequence[GeneratedExample], corpus: Mapping[str, Document]) -> list[TrainGroup]:
    """Usable examples as TrainGroups (positives first), the in-memory form every trainer reads."""
    groups = []
    for e in examples:
        if not e.usable:
            continue
        docs = e.pos + e.neg
        groups.append(TrainGroup(e.query, [corpus[d].text_for_model for d in docs],
                                 [1.0] * len(e.pos) + [0.0] * len(e.neg), n_pos=len(e.pos), query_id=e.query_id,
                                 doc_ids=docs))
    return groups


def write_hopweaver(path, examples: Sequence[GeneratedExample], corpus: Mapping[str, Document]):
    """HopWeaver's training file: one `{query, pos: [text], neg: [text]}` per usable example (atomic write)."""
    rows = [{"query": e.query, "pos": [corpus[d].text_for_model for d in e.pos],
             "neg": [corpus[d].text_for_model for d in e.neg]} for e in examples if e.usable]
    return write_jsonl(path, rows)


def read_generated(path, examples: Sequence[GeneratedExample]) -> list[TrainGroup]:
    """The file `write_hopweaver` wrote from `examples`, read back with HopWeaver's reader (the file is what a model
    trains on), each group given its attempt's query id and document ids."""
    groups = read_hopweaver(path)
    usable = [e for e in examples if e.usable]
    if len(groups) != len(usable):
        raise ValueError(f"{path}: {len(groups)} lines for {len(usable)} usable attempts")
    for g, e in zip(groups, usable):
        g.query_id, g.doc_ids = e.query_id, e.pos + e.neg
    return groups


def generation_stats(examples: Sequence[GeneratedExample]) -> dict:
    """Attempts, usable lines, why the others failed, and positives / negatives per line."""
    usable = [e for e in examples if e.usable]
    mean = lambda values: round(float(np.mean(values)), 2) if values else 0.0  # noqa: E731
    return {"attempts": len(examples), "usable": len(usable),
            "no positive in top_k": sum(1 for e in examples if e.query and not e.pos),
            "no negative": sum(1 for e in examples if e.pos and not e.neg),
            "pos per line": mean([len(e.pos) for e in usable]), "neg per line": mean([len(e.neg) for e in usable])}


def generator_yield(examples: Sequence[GeneratedExample]) -> dict:
    """The generator's yield: lines asked (attempts), produced (a query parsed, candidates judged) and usable (at
    least one positive and one negative verdict, what HopWeaver writes as a training line)."""
    return {"asked": len(examples), "produced": sum(1 for e in examples if e.query),
            "usable": sum(1 for e in examples if e.usable)}


def sample_sources(qrels: Qrels, seed: int, n: int, exclude: Sequence[str] = ()) -> dict[str, str]:
    """{query id: one of its judged documents} for n seeded queries: source documents with a known topic."""
    rng = random.Random(seed)
    qids = sorted(q for q in qrels if q not in set(exclude) and any(g > 0 for g in qrels[q].values()))
    rng.shuffle(qids)
    out = {}
    for q in qids[:n]:
        rel = sorted(d for d, g in qrels[q].items() if g > 0)
        out[q] = rng.choice(rel)
    return out
