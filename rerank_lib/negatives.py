"""Hard negatives for reranker training: sample from a rank window of a retriever's ranking, never a positive.

FlagEmbedding's scripts/hn_mine.py retrieves the top `range_for_sampling[1]` documents per query with a dense
retriever, keeps the slice [lo:hi] of that ranking (0-based, so '10-210' skips the 10 nearest, which are often
unjudged positives), drops the positives, samples `negative_number` of the rest at random, and tops up with random
corpus documents when too few remain. `sample_negatives` is that rule over any run; `mine_dense_negatives` and
`bm25_negatives` feed it a dense or a BM25 ranking, `random_negatives` none (the ablation of mining: every negative
drawn uniformly from the corpus). Every draw is seeded per (seed, query id).
"""
from __future__ import annotations

import zlib
from typing import Iterable, Mapping, Sequence

import numpy as np

from .data.pairs import TrainGroup
from .data.trec import ranked
from .data.types import Document, Run
from .first_stage import BM25Index, dense_search


def parse_range(rank_range: str | Sequence[int]) -> tuple[int, int]:
    """'10-210' or (10, 210) -> (10, 210); needs 0 <= lo < hi."""
    if isinstance(rank_range, str):
        lo, _, hi = rank_range.partition("-")
        rank_range = (int(lo), int(hi))
    lo, hi = (int(x) for x in rank_range)
    if not 0 <= lo < hi:
        raise ValueError(f"rank range must satisfy 0 <= lo < hi, got {lo}-{hi}")
    return lo, hi


def _rng(seed: int, qid: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(qid.encode("utf-8"))])


def sample_negatives(run: Run, positives: Mapping[str, Iterable[str]], rank_range: str | Sequence[int] = (10, 210),
                     negative_number: int = 15, seed: int = 13, fill_from: Sequence[str] | None = None) -> dict[str, list[str]]:
    """{qid: negative doc ids} for every qid of `positives`, from the slice [lo:hi] of the run's ranking.

    Candidates in the window that are positives (or the query id itself) are dropped; `negative_number` are drawn
    without replacement, kept in rank order. With `fill_from` (e.g. every corpus id), a short list is topped up
    with random documents that are neither positive nor already chosen (FlagEmbedding's fallback); without it,
    a query may get fewer negatives.
    """
    lo, hi = parse_range(rank_range)
    if negative_number < 0:
        raise ValueError("negative_number must be >= 0")
    out: dict[str, list[str]] = {}
    for qid, pos in positives.items():
        pos = set(pos)
        window = [d for d, _ in ranked(run.get(qid, {}))[lo:hi] if d not in pos and d != qid]
        rng = _rng(seed, qid)
        if len(window) > negative_number:
            keep = np.sort(rng.choice(len(window), size=negative_number, replace=False))
            chosen = [window[i] for i in keep]
        else:
            chosen = list(window)
        if fill_from is not None and len(chosen) < negative_number:
            taken = set(chosen) | pos | {qid}
            pool = [d for d in fill_from if d not in taken]
            extra = rng.choice(len(pool), size=min(len(pool), negative_number - len(chosen)), replace=False)
            chosen += [pool[i] for i in extra]
        out[qid] = chosen
    return out


def mine_dense_negatives(encoder, corpus: Mapping[str, Document], queries: Mapping[str, str],
                         positives: Mapping[str, Iterable[str]], rank_range: str | Sequence[int] = (10, 210),
                         negative_number: int = 15, seed: int = 13, fill_random: bool = True) -> dict[str, list[str]]:
    """FlagEmbedding's hn_mine over our corpus: exact dense search (encoder: a BiEncoder; corpus embeddings are
    cached) to depth hi, then `sample_negatives`."""
    lo, hi = parse_range(rank_range)
    wanted = {q: queries[q] for q in positives}
    run = dense_search(encoder, corpus, wanted, k=hi)
    return sample_negatives(run, positives, (lo, hi), negative_number, seed,
                            fill_from=list(corpus) if fill_random else None)


def bm25_negatives(corpus: Mapping[str, Document], queries: Mapping[str, str], positives: Mapping[str, Iterable[str]],
                   rank_range: str | Sequence[int] = (0, 100), negative_number: int = 15, seed: int = 13,
                   index: BM25Index | None = None, fill_random: bool = True) -> dict[str, list[str]]:
    """BM25 negatives: the same rule over a search with `index` (or a fresh index); over a saved BM25 run, call
    `sample_negatives` with it."""
    lo, hi = parse_range(rank_range)
    index = index or BM25Index.build(corpus)
    run = index.search({q: queries[q] for q in positives}, k=hi)
    return sample_negatives(run, positives, (lo, hi), negative_number, seed,
                            fill_from=list(corpus) if fill_random else None)


def random_negatives(corpus_ids: Sequence[str], positives: Mapping[str, Iterable[str]], negative_number: int = 15,
                     seed: int = 13) -> dict[str, list[str]]:
    """`negative_number` documents per query drawn uniformly without replacement from `corpus_ids`, never a positive:
    what hard-negative mining is measured against. It is `sample_negatives` over an empty ranking, whose fallback
    then draws every negative from the corpus (same exclusions, same per-query seeding)."""
    return sample_negatives({}, positives, (0, 1), negative_number, seed, fill_from=list(corpus_ids))


def negatives_overlap(main: Sequence[TrainGroup], dense: Sequence[TrainGroup]) -> dict:
    """How many of each query's `main` negatives the `dense` window also drew, and how the teacher rates each kind:
    mean calibrated p(relevant) = sigmoid of the groups' teacher_scores (which hold calibrated logits)."""
    from scipy.special import expit

    negs = [{g.query_id: set(g.doc_ids[g.n_pos:]) for g in groups} for groups in (main, dense)]
    shared = [len(docs & negs[1][q]) / max(1, len(docs)) for q, docs in negs[0].items()]
    mean_p = lambda groups, pos: round(float(np.mean([p for g in groups for p in expit(  # noqa: E731
        g.teacher_scores[:g.n_pos] if pos else g.teacher_scores[g.n_pos:])])), 3)
    return {"shared negatives (share)": round(float(np.mean(shared)), 3),
            "teacher p(relevant), positives": mean_p(main, True),
            "teacher p(relevant), main negatives": mean_p(main, False),
            "teacher p(relevant), dense negatives": mean_p(dense, False)}
