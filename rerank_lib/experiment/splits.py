"""Which queries a model may learn from: train (labels) and dev (checkpoint and weight selection), each with its
provenance, closed to evaluation by the leak guard. DL19 and DL20 are test sets: one year trains, the other tests."""
from __future__ import annotations

import dataclasses
import random

from ..data import TrainingQueries, dev_slice, load_dataset, without_overlap
from ..data.candidates import EvalSet
from ..data.trec import top_k
from ..data.types import Dataset, Run
from .runs import load_run


def sample_ids(ids, n: int | None, seed: int) -> list[str]:
    """A seeded, sorted sample of `n` ids (all of them, sorted, when n is None or not smaller): the same subset for
    the same seed on every machine, whatever the order `ids` came in."""
    ids = sorted(ids)
    return ids if n is None or n >= len(ids) else sorted(random.Random(seed).sample(ids, n))


def sample_items(items: list, n: int | None, seed: int) -> list:
    """The first n items of a seeded shuffle, kept in their order (all of them when n is None or not smaller)."""
    if not n or n >= len(items):
        return items
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    return [items[i] for i in sorted(order[:n])]


def test_sample(dataset: str, first_stage, n: int | None, seed: int, data_root=None, split: str = "test"):
    """The judged queries of a test set that the saved `first_stage` run holds, all or a seeded sample of `n`: (the
    dataset restricted to them, their first-stage run, the records' split name: `split`, or `split-<n>q`)."""
    ds = load_dataset(dataset, split, root=data_root)
    judged = sorted(q for q in first_stage if q in ds.qrels)
    ids = sample_ids(judged, n, seed)
    name = split if len(ids) == len(judged) else f"{split}-{len(ids)}q"
    return ds.subset(ids), {q: first_stage[q] for q in ids}, name


@dataclasses.dataclass
class TrainingSplit:
    """Queries a model may learn from: `train` (labels), `dev` (checkpoint and weight selection), and their
    provenance, which covers both: both are closed to evaluation."""

    train: Dataset
    dev: Dataset
    provenance: TrainingQueries

    def describe(self) -> str:
        return f"{self.provenance.source}: {len(self.train.queries)} train + {len(self.dev.queries)} dev q"

    def used(self, train_ids, dev_ids) -> TrainingQueries:
        """The provenance of the queries a recipe actually drew on (a sample of train, a sample of dev), so a row
        trained on 24 queries does not claim the whole split; it stays inside the split's leak guard."""
        train_ids, dev_ids = set(train_ids), set(dev_ids)
        unknown = sorted((train_ids - set(self.train.queries)) | (dev_ids - set(self.dev.queries)))
        if unknown:
            raise ValueError(f"{self.provenance.source}: query ids {unknown[:5]} are not in this split's train/dev")
        queries = {**{q: self.train.queries[q] for q in train_ids}, **{q: self.dev.queries[q] for q in dev_ids}}
        return TrainingQueries.of(f"{self.provenance.source} sample", queries)


def _split(ds: Dataset, source: str, seed: int, dev_fraction: float, min_dev: int, restrict_to) -> TrainingSplit:
    if restrict_to is not None:
        ds = ds.subset([q for q in ds.queries if q in set(restrict_to)])
    ds = ds.subset(sorted(ds.judged_queries()))
    train_ids, dev_ids = dev_slice(ds.queries, fraction=dev_fraction, min_size=min(min_dev, len(ds.queries) // 2), seed=seed)
    provenance = TrainingQueries.of(source, ds.queries)
    return TrainingSplit(train=ds.subset(train_ids), dev=ds.subset(dev_ids), provenance=provenance)


def scifact_training_split(data_root=None, seed: int = 13, dev_fraction: float = 0.1, min_dev: int = 20,
                           restrict_to=None) -> TrainingSplit:
    """SciFact train minus the claims repeated in test (2 of 809), minus a seeded dev slice (02_teacher's, for the
    same seed and fraction); `restrict_to`: some query ids (smoke trains on the queries 01_first_stage ran)."""
    test = load_dataset("scifact", "test", root=data_root)
    ds = load_dataset("scifact", "train", root=data_root)
    ds = ds.subset(sorted(without_overlap(ds.queries, test.queries)))
    return _split(ds, "scifact/train", seed, dev_fraction, min_dev, restrict_to)


def dl_training_split(train_on: str, data_root=None, seed: int = 13, dev_fraction: float = 0.2, min_dev: int = 8,
                      restrict_to=None) -> TrainingSplit:
    """One TREC DL year as training data for the other year's evaluation (folds_dl), with its own dev slice."""
    return _split(load_dataset(train_on, "test", root=data_root), f"{train_on}/test", seed, dev_fraction, min_dev,
                  restrict_to)


@dataclasses.dataclass
class RerankingSets:
    """What a SciFact reranker is evaluated on: test and its first-stage candidates, the dev slice and its."""

    test: Dataset
    test_bm25: Run
    dev: Dataset
    dev_bm25: Run
    split: TrainingSplit

    def evalsets(self, depth: int | None) -> tuple[EvalSet, EvalSet]:
        """(test, dev) over their BM25 candidates, test's recorded at `depth`."""
        return (EvalSet.of(self.test, self.test_bm25, first_stage="bm25", depth=depth),
                EvalSet.of(self.dev, self.dev_bm25, first_stage="bm25"))


def scifact_reranking_sets(results_dir, profile: str, split: TrainingSplit, depth: int, dev_depth: int,
                           max_test_queries: int | None = None, data_root=None) -> RerankingSets:
    """SciFact test's judged queries (the first `max_test_queries` by (length, id), or all) with 01_first_stage's BM25
    top-`depth`, and `split`'s dev slice with the BM25 top-`dev_depth` of the train run."""
    test_bm25 = load_run(results_dir, profile, "scifact", "test", "bm25")
    qids = sorted(test_bm25, key=lambda q: (len(q), q))[:max_test_queries] if max_test_queries else sorted(test_bm25)
    test = load_dataset("scifact", "test", root=data_root).subset(qids)
    test = test.subset([q for q in test.queries if q in test.qrels])
    train_bm25 = load_run(results_dir, profile, "scifact", "train", "bm25")
    dev_bm25 = top_k({q: train_bm25[q] for q in split.dev.queries if q in train_bm25}, dev_depth)
    return RerankingSets(test, top_k({q: test_bm25[q] for q in test.queries}, depth), split.dev, dev_bm25, split)
