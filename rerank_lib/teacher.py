"""The offline teacher: one named scorer for candidate lists, measured once and cached, shared by every pipeline.

Each paper uses a teacher somewhere: InRanker's soft labels, RankLLM's training orderings, the distillation
scores of the bge-reranker family, the comparison rows of LocalRQA's RPG/DCA. Offline, the strongest ranker we
have is all-MiniLM-L6-v2 (trained on MS MARCO among other pairs): it reranks the TREC DL BM25 top-100 far above
BM25, and on SciFact its fusion with BM25 is strongest. Online, a hub cross-encoder such as
BAAI/bge-reranker-v2-m3 takes its place. `teacher_scores` returns a Run over the first `depth` candidates of
each query and caches it, keyed by the teacher, the candidates, their texts and the version of the code that
scores them; the cached file carries its checksum and is recomputed when it does not match (a cut file once read as
complete gave wrong records).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .atomic import CacheWarning, discard, trusted_cache_file, write_checksum
from .code_version import code_version
from .data.candidates import candidates_from_run
from .data.pairs import TrainGroup
from .data.trec import ranked, read_run, write_run
from .data.types import Document, Run
from .evaluation import reciprocal_rank_fusion
from .first_stage import rerank_with_encoder
from .models.standin import StandInName, as_standins, spelled
from .paths import cache_dir, shown
from .rerankers.cross_encoder import CrossEncoder


@dataclass(frozen=True)
class TeacherSpec:
    name: str
    kind: str  # 'bi-encoder' | 'fusion' (first stage + bi-encoder, RRF) | 'cross-encoder'
    model: str
    note: str


TEACHERS: dict[str, TeacherSpec] = {
    "minilm-l6": TeacherSpec("minilm-l6", "bi-encoder", "minilm-l6",
                             "all-MiniLM-L6-v2 cosine (offline; trained on MS MARCO among other pairs)"),
    "bm25+minilm-l6": TeacherSpec("bm25+minilm-l6", "fusion", "minilm-l6",
                                  "reciprocal-rank fusion (k=60) of the first-stage order and all-MiniLM-L6-v2 (offline)"),
    "bge-reranker-v2-m3": TeacherSpec("bge-reranker-v2-m3", "cross-encoder", "BAAI/bge-reranker-v2-m3",
                                      "BAAI/bge-reranker-v2-m3 cross-encoder logit (online, GPU)"),
    "bge-reranker-base": TeacherSpec("bge-reranker-base", "cross-encoder", "BAAI/bge-reranker-base",
                                     "BAAI/bge-reranker-base cross-encoder logit (online)"),
}


def spec(name: str) -> TeacherSpec:
    """The teacher of a name; a paper-tiny config's stand-in name gets its model as a stand-in name too."""
    if name not in TEACHERS:
        raise KeyError(f"unknown teacher {name!r}; known: {', '.join(TEACHERS)}")
    if isinstance(name, StandInName):
        return dataclasses.replace(TEACHERS[name], model=as_standins(TEACHERS[name].model))
    return TEACHERS[name]


def teacher_scores(name: str, run: Run, corpus: Mapping[str, Document], queries: Mapping[str, str], depth: int = 100,
                   cache: bool = True, batch_size: int = 32, max_length: int = 512) -> Run:
    """Teacher scores for each query's top-`depth` candidates of `run` (higher = more relevant), cached on disk.
    A cross-encoder teacher scores through `rerankers.CrossEncoder` (its truncation, batching and dtype), so a model
    scores the same as a teacher and as a ranker. cache=False computes every score from the texts, reading and
    writing no cache (neither these scores nor a bi-encoder's document embeddings): what a timed rerank needs."""
    teacher = spec(name)
    candidates = {c.query_id: {x.doc_id: x.score for x in c.candidates}
                  for c in candidates_from_run(run, corpus, queries, depth, who=f"teacher {name}")}
    path = _cache_path(teacher, candidates, corpus, queries, max_length) if cache else None
    if path is not None and trusted_cache_file(path):
        cached = read_run(path)
        if all(d in cached.get(q, ()) for q, docs in candidates.items() for d in docs):
            return cached
        warnings.warn(f"cache file {shown(path)}: scores fewer candidates than its key names; not used, recomputing it",
                      CacheWarning, stacklevel=2)
    model = load_teacher(name, max_length)
    if teacher.kind == "cross-encoder":
        scores = model.rerank(candidates, corpus, queries, depth=depth, batch_size=batch_size, show_progress=True)
    else:
        scores = rerank_with_encoder(model, candidates, corpus, queries, depth=depth, cache=cache)
        if teacher.kind == "fusion":
            scores = fuse(candidates, scores)
    if path is None:
        return scores
    # Exact scores, read back: a run that computes them and a run that finds them cached train on the same floats.
    discard(path)
    write_run(scores, path, tag=f"teacher-{name}", exact=True)
    write_checksum(path)
    return read_run(path)


def scores_from_saved(saved: Run, name: str, candidates: Run, corpus: Mapping[str, Document],
                      queries: Mapping[str, str]) -> Run:
    """The teacher's scores on `candidates`: from `saved` (a run it wrote earlier, e.g. 02_teacher's) when that
    covers every candidate, else computed (and cached) by `teacher_scores`."""
    if all(q in saved and all(d in saved[q] for d in docs) for q, docs in candidates.items()):
        return {q: {d: saved[q][d] for d in docs} for q, docs in candidates.items()}
    return teacher_scores(name, candidates, corpus, queries, depth=max(map(len, candidates.values())))


def scores_with_extra(name: str, first_stage: Run, extra: Mapping[str, Sequence[str]], corpus: Mapping[str, Document],
                      queries: Mapping[str, str], depth: int = 100) -> Run:
    """Teacher scores over each query's first-stage top-`depth` plus `extra` documents (positives the first stage
    missed, mined negatives), which join the first-stage order below its last candidate. Scoring every query at once
    lets the teacher reuse its cached encoding of the whole corpus."""
    candidates: Run = {}
    for q, run in first_stage.items():
        docs = dict(ranked(run)[:depth])
        floor = min(docs.values(), default=0.0)
        for i, d in enumerate(dict.fromkeys(x for x in extra.get(q, ()) if x not in docs), start=1):
            docs[d] = floor - i
        candidates[q] = docs
    return teacher_scores(name, candidates, corpus, queries, depth=max(len(v) for v in candidates.values()))


def teacher_order(top: Run, first_stage: Run, teacher: Run) -> Run:
    """The teacher's order of the same first-stage `top` a student reranks, the rest of the first-stage list below:
    the ceiling of a student that imitated its teacher perfectly on these candidates."""
    out = {}
    for q, docs in top.items():
        floor = min(teacher[q].values(), default=0.0) if q in teacher else 0.0
        ordered = sorted(docs, key=lambda d: -(teacher.get(q, {}).get(d, floor - 1.0)))
        rest = [d for d, _ in sorted(first_stage[q].items(), key=lambda kv: -kv[1]) if d not in docs]
        out[q] = {d: float(len(ordered) + len(rest) - i) for i, d in enumerate(ordered + rest)}
    return out


def fuse(first_stage: Run, dense: Run) -> Run:
    """A fusion teacher's scores: reciprocal-rank fusion (k=60) of the first stage's order of the candidates and the
    bi-encoder's scores of the same candidates."""
    return reciprocal_rank_fusion({"first_stage": first_stage, "dense": dense}, k=60)


def load_teacher(name: str, max_length: int = 512):
    """The teacher's model (a rerankers.CrossEncoder, or the BiEncoder of a dense or fusion teacher), loaded once per
    process: loading costs seconds, several notebooks ask for it, and a timed scoring should not include it."""
    teacher = spec(name)
    return _cross_encoder(teacher.model, max_length) if teacher.kind == "cross-encoder" else _bi_encoder(teacher.model)


@functools.cache
def _cross_encoder(model_name: str, max_length: int):
    return CrossEncoder(model_name, max_length=max_length)


@functools.cache
def _bi_encoder(model_name: str):
    from .retrievers.bi_encoder import BiEncoder

    return BiEncoder(model_name)


def _cache_path(teacher: TeacherSpec, candidates: Run, corpus, queries, max_length: int):
    # "exact": the file format (full-precision scores); files of the earlier 6-decimal format are not reused. The
    # code version: scores made by an earlier version of this module (or what it imports) are not reused either.
    h = hashlib.sha256(json.dumps([teacher.name, teacher.kind, spelled(teacher.model), max_length, "exact",
                                   code_version(__name__)]).encode())
    for q in sorted(candidates):
        h.update(f"\x02{q}\x00{queries[q]}".encode())
        for d, s in ranked(candidates[q]):
            h.update(f"\x01{d}\x00{s:.6f}\x00{corpus[d].text_for_model}".encode())
    return cache_dir("teacher") / f"{teacher.name}-{h.hexdigest()[:24]}.trec"


def platt_fit(scores, labels, l2: float = 1e-6) -> tuple[float, float]:
    """Platt scaling: (scale, bias) with P(relevant | s) = sigmoid(scale * s + bias), the logistic-regression fit of
    0/1 `labels` on teacher `scores` (scikit-learn, L2 weight `l2` on the slope only, scores standardised first).

    How a teacher's raw scores (cosines, fused ranks) become the probabilities and two-logit soft labels that the
    distillation recipes train on; fit it on training queries only."""
    from sklearn.linear_model import LogisticRegression

    x, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    if len(x) == 0 or y.min() == y.max():
        raise ValueError(f"calibration needs relevant and non-relevant scored pairs; got {int(y.sum()) if len(y) else 0} "
                         f"relevant of {len(x)}")
    mu, sd = float(x.mean()), float(x.std()) or 1.0
    model = LogisticRegression(C=1.0 / l2, tol=1e-10, max_iter=10_000).fit(((x - mu) / sd)[:, None], y)
    scale = float(model.coef_[0, 0]) / sd
    return scale, float(model.intercept_[0]) - scale * mu


def platt_probability(scores: np.ndarray, labels: np.ndarray):
    """p = sigmoid(a s + b) as a function, fitted on 0/1 `labels` (for scores that are not probabilities, e.g. a
    trained head's logits or reciprocal-rank fusion). scikit-learn's default tolerance and C=1e4: the LLM-reranker
    recipe's distillation labels; `platt_fit` fits in float64 with a tighter tolerance, which moves those labels (a
    head's float32 logits) by up to 1.6e-4."""
    from sklearn.linear_model import LogisticRegression

    mu, sd = float(scores.mean()), float(scores.std() or 1.0)
    model = LogisticRegression(C=1e4, max_iter=1000).fit(((scores - mu) / sd)[:, None], labels.astype(int))
    a, b = float(model.coef_[0, 0] / sd), float(model.intercept_[0] - model.coef_[0, 0] * mu / sd)
    return lambda s: 1.0 / (1.0 + np.exp(-(a * np.asarray(s, dtype=float) + b)))


@dataclass(frozen=True)
class Calibration:
    """margin = scale * teacher_score + bias with sigmoid(margin) = P(relevant | score), fitted on training labels.

    The one mapping from a teacher's raw score to what distillation trains on: a probability (the cross-encoder
    family's `pos_scores`) or two centred logits (InRanker's [false_logit, true_logit]: softmax over
    (-margin / 2, +margin / 2) gives sigmoid(margin) for 'true'). Vectorised: scores may be arrays.
    """

    scale: float
    bias: float
    teacher: str = ""
    fitted_on: str = ""
    n_pairs: int = 0
    n_positive: int = 0
    min_grade: int = 1

    def margin(self, score):
        return self.scale * np.asarray(score, dtype=float) + self.bias

    def probability(self, score):
        from scipy.special import expit

        return expit(self.margin(score))

    def logits(self, score):
        m = self.margin(score)
        return -m / 2.0, m / 2.0

    def describe(self) -> str:
        return (f"P(rel) = sigmoid({self.scale:.3f} * s {self.bias:+.3f}) fitted on {self.fitted_on or 'training labels'} "
                f"({self.n_pairs} pairs, {self.n_positive} with grade >= {self.min_grade})")


def fit_calibration(scores: Run, qrels: Mapping[str, Mapping[str, int]], min_grade: int = 1, teacher: str = "",
                    fitted_on: str = "", l2: float = 1e-6) -> Calibration:
    """Platt scaling (`platt_fit`) of `grade >= min_grade` on the teacher score over every scored candidate of the
    judged queries (unjudged candidates count as not relevant; unjudged queries are skipped). Training queries only."""
    pairs = [(float(s), 1 if qrels[qid].get(docid, 0) >= min_grade else 0)
             for qid, docs in scores.items() if qid in qrels for docid, s in docs.items()]
    xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
    scale, bias = platt_fit(xs, ys, l2)
    return Calibration(scale=scale, bias=bias, teacher=teacher, fitted_on=fitted_on, n_pairs=len(xs),
                       n_positive=int(sum(ys)), min_grade=min_grade)


def calibrated_group(calibration: Calibration, query_id: str, query: str, positives: Sequence[str],
                     negatives: Sequence[str], scores: Mapping[str, float], corpus: Mapping[str, Document],
                     soft: bool) -> TrainGroup:
    """One training group from a teacher's scores: the qrels positives (label 1), then the negatives, labelled 0 or,
    with `soft`, by the calibrated P(relevant) of their score; every document's calibrated margin is its
    distillation score (FlagEmbedding's pos/neg_scores)."""
    docs = [*positives, *negatives]
    s = [scores[d] for d in docs]
    labels = [1.0] * len(positives) + ([float(p) for p in calibration.probability(s[len(positives):])] if soft
                                       else [0.0] * len(negatives))
    return TrainGroup(query, [corpus[d].text_for_model for d in docs], labels, n_pos=len(positives),
                      teacher_scores=[float(x) for x in calibration.margin(s)], query_id=query_id, doc_ids=docs)
