"""Leak-free evaluation, enforced by code: training sets remember their queries, evaluation checks them.

DL19 and DL20 are both test sets, so the project trains on one and evaluates on the other (two folds);
SciFact trains on train minus a dev slice and evaluates on test. `assert_no_leak` is called by every
recipe before it evaluates a trained model.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from .types import Dataset


class LeakError(ValueError):
    pass


@dataclass(frozen=True)
class TrainingQueries:
    """The provenance of a training set: which dataset split and which query ids fed it (labels, teacher, dev)."""

    source: str  # e.g. "trec-dl-2020/test" or "scifact/train"
    query_ids: frozenset[str]
    texts: frozenset[str] = field(default_factory=frozenset)  # query texts, to catch the same query under two ids

    @classmethod
    def of(cls, source: str, queries: dict[str, str]) -> "TrainingQueries":
        return cls(source=source, query_ids=frozenset(queries), texts=frozenset(_norm(t) for t in queries.values()))

    def describe(self) -> str:
        return f"{self.source} ({len(self.query_ids)} q)"

    def __or__(self, other: "TrainingQueries") -> "TrainingQueries":
        return TrainingQueries(f"{self.source} + {other.source}", self.query_ids | other.query_ids, self.texts | other.texts)


#: Datasets whose query ids share one id space: DL19 and DL20 queries are both MS MARCO query ids, and so are the
#: queries of every ir_datasets `msmarco-passage/...` id.
_ID_SPACE = {"trec-dl-2019": "msmarco", "trec-dl-2020": "msmarco", "msmarco-passage": "msmarco"}


def _collection(source: str) -> str:
    """The id space of a source: its first path part, except ir_datasets' `beir/<name>/...`, which shares the id
    space of the built-in `<name>` (beir/scifact/test and scifact/test use the same query ids)."""
    parts = source.split("/")
    name = parts[1] if parts[0] == "beir" and len(parts) > 1 else parts[0]
    return _ID_SPACE.get(name, name)


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def assert_no_leak(training: Iterable[TrainingQueries], eval_source: str, eval_queries: dict[str, str]) -> None:
    """Refuse to evaluate on queries that gave the model training data, teacher labels or checkpoint selection.

    Ids are compared only within the same collection (DL19 and DL20 ids are both MS MARCO query ids);
    texts are compared always.
    """
    eval_collection = _collection(eval_source)
    eval_texts = {_norm(t): q for q, t in eval_queries.items()}
    for tq in training:
        same_collection = _collection(tq.source) == eval_collection
        shared_ids = sorted(tq.query_ids & set(eval_queries)) if same_collection else []
        shared_texts = sorted(eval_texts[t] for t in tq.texts & set(eval_texts))
        if shared_ids or shared_texts:
            shared = shared_ids or shared_texts
            raise LeakError(
                f"evaluation on {eval_source} shares {len(shared)} queries with training data from {tq.source} "
                f"(e.g. {shared[:5]}): train on another split or fold"
            )


def without_overlap(train_queries: dict[str, str], eval_queries: dict[str, str]) -> dict[str, str]:
    """Training queries minus any whose text is also an evaluation query.

    Needed for real: SciFact's official train split repeats two test claims under other ids
    (train 871 = test 870, train 1291 = test 1292, same text, same judged document).
    """
    eval_texts = {_norm(t) for t in eval_queries.values()}
    return {q: t for q, t in train_queries.items() if _norm(t) not in eval_texts}


def dev_slice(query_ids: Iterable[str], fraction: float = 0.1, min_size: int = 20, seed: int = 13) -> tuple[list[str], list[str]]:
    """Split training query ids into (train, dev) deterministically; dev is for checkpoint and weight selection."""
    ids = sorted(query_ids)
    rng = random.Random(seed)
    rng.shuffle(ids)
    n_dev = min(len(ids) - 1, max(min_size, int(round(fraction * len(ids)))))
    return sorted(ids[n_dev:]), sorted(ids[:n_dev])


def folds_dl() -> list[tuple[str, str]]:
    """The two leak-free TREC DL folds: (train on, evaluate on)."""
    return [("trec-dl-2020", "trec-dl-2019"), ("trec-dl-2019", "trec-dl-2020")]


def leak_free_training(train: Dataset, test: Dataset, seed: int) -> tuple[list[str], list[str], list[str]]:
    """(dropped, train, dev) query ids of `train`: the queries whose text is also a `test` query are dropped, the rest
    are checked leak-free against `test` and split into training queries and a dev slice."""
    clean = without_overlap(train.queries, test.queries)
    assert_no_leak([TrainingQueries.of(train.key, clean)], test.key, test.queries)
    return sorted(set(train.queries) - set(clean)), *dev_slice(clean, seed=seed)


def check_dl_folds(datasets: Mapping[str, Dataset]) -> list[str]:
    """Each TREC DL fold's training year checked against the year it evaluates (`datasets` by key, e.g.
    "trec-dl-2019/test"); raises LeakError, else a line per fold."""
    lines = []
    for train_on, eval_on in folds_dl():
        train, test = datasets[f"{train_on}/test"], datasets[f"{eval_on}/test"]
        assert_no_leak([TrainingQueries.of(train.key, train.queries)], test.key, test.queries)
        lines.append(f"fold: train on {train_on} ({len(train.queries)} q), evaluate on {eval_on}: no shared query")
    return lines
