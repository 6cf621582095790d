"""Evaluation: a thin wrapper over ir-measures, plus the few things it lacks (paired tests, fusion).

Why a wrapper at all: every notebook must average over the same query set, name measures the same way and
test significance the same way, or one table cannot compare their numbers. The conventions, in one place:

* Measures are ir-measures names (`nDCG@10`, `RR@10`, `R@100`, `AP`, `RR(rel=2)@10`, `R(rel=2)@1000`, `P@1`);
  result keys are the canonical string ir-measures prints for them.
* The query set is the judged queries: every query id in the qrels. A judged query missing from the run scores
  0 on every measure (as `trec_eval -c` does); run queries without judgments are ignored. This is stricter than
  BEIR's own script, which averages only over queries present in both, and equal to it whenever the first stage
  returns something for every query (our pipelines always do).
* Gains are the graded qrels (nDCG uses the grade as gain, like trec_eval); binary measures count grade >= 1
  unless the measure says `rel=2`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping, Sequence

import ir_measures
import numpy as np
import pandas as pd
from scipy import stats

from .data.localrqa import document_recall
from .data.trec import qid_order, ranked
from .data.types import Qrels, Run

BEIR_MEASURES: tuple[str, ...] = ("nDCG@10", "RR@10", "R@100", "AP")
# TREC DL passage (2019/2020) is judged on a 0-3 scale where 1 means "related" but not relevant; the MS MARCO /
# TREC DL convention (Craswell et al., TREC DL overviews; Anserini, RankGPT, rank_llm) counts grade >= 2 as
# relevant for binary measures, while nDCG keeps all grades as gains. AP is cut at 100 because our first stage
# (the RankGPT BM25 top-100) has only 100 candidates per query.
TREC_DL_MEASURES: tuple[str, ...] = ("nDCG@10", "RR(rel=2)@10", "R(rel=2)@100", "AP(rel=2)@100")
#: Test sets of given candidates per query (HopWeaver's {query, pos, neg} files): is a positive ranked above every
#: negative (accuracy) and the reciprocal rank of the first positive (MRR); `candidate_measures` computes them.
CANDIDATE_MEASURES: tuple[str, ...] = ("accuracy", "MRR")
DEFAULT_MEASURES: dict[str, tuple[str, ...]] = {"beir": BEIR_MEASURES, "trec-dl": TREC_DL_MEASURES,
                                                "candidates": CANDIDATE_MEASURES}


def measures_for(dataset_name: str) -> tuple[str, ...]:
    """Default measures of a dataset, by its family in the data registry (name heuristics for unknown names)."""
    from .data.registry import DATASETS  # local import: the registry pulls in the download code

    if dataset_name in DATASETS:
        return DEFAULT_MEASURES[DATASETS[dataset_name].family]
    lowered = dataset_name.lower()
    return DEFAULT_MEASURES["trec-dl" if any(t in lowered for t in ("trec-dl", "dl19", "dl20", "msmarco-passage"))
                            else "beir"]


def measure_name(measure) -> str:
    """The canonical ir-measures name of a measure (string or ir-measures object); unknown names fail loudly."""
    try:
        return str(ir_measures.parse_measure(measure.strip()) if isinstance(measure, str) else measure)
    except (NameError, ValueError, TypeError, SyntaxError) as err:
        raise ValueError(f"unknown measure {measure!r}: use ir-measures names such as 'nDCG@10', 'RR(rel=2)@10', "
                         f"'R@100', 'AP' ({err})") from None


def _parse(measures) -> list:
    names = dict.fromkeys(measure_name(m) for m in ([measures] if isinstance(measures, str) else measures))
    if not names:
        raise ValueError("no measures given")
    return [ir_measures.parse_measure(name) for name in names]  # each once, in the order given


def per_query(run: Run, qrels: Qrels, measures, wide: bool = False) -> pd.DataFrame:
    """Per-query values over the judged queries (missing from the run -> 0).

    Long format (columns qid, measure, value; sorted by qid then by the order of `measures`) is the default
    because it saves as one CSV and concatenates across runs; `wide=True` gives qid rows x measure columns.
    """
    parsed = _parse(measures)
    names = [str(m) for m in parsed]
    qrels_c = {str(q): {str(d): int(g) for d, g in docs.items()} for q, docs in qrels.items()}
    run_c = {str(q): {str(d): float(s) for d, s in docs.items()} for q, docs in run.items()
             if str(q) in qrels_c and docs}
    values = {(q, n): 0.0 for q in qrels_c for n in names}
    if qrels_c and run_c:
        for metric in ir_measures.iter_calc(parsed, qrels_c, run_c):
            key = (metric.query_id, str(metric.measure))
            if key in values:
                values[key] = float(metric.value)
    order = {n: i for i, n in enumerate(names)}
    rows = sorted(values.items(), key=lambda kv: (qid_order(kv[0][0]), order[kv[0][1]]))
    frame = pd.DataFrame([(q, n, v) for (q, n), v in rows], columns=["qid", "measure", "value"])
    if wide:
        frame = frame.pivot(index="qid", columns="measure", values="value")
        frame = frame.reindex(index=sorted(frame.index, key=qid_order), columns=names)
        frame.columns.name = None
    return frame


def evaluate(run: Run, qrels: Qrels, measures) -> dict[str, float]:
    """Mean of each measure over the judged queries (see the module docstring for the query-set rule)."""
    names = [str(m) for m in _parse(measures)]
    if not qrels:
        raise ValueError("qrels are empty: nothing to evaluate against")
    wide = per_query(run, qrels, measures, wide=True)
    return {n: float(wide[n].mean()) for n in names}


# ---------------------------------------------------------------------------------------------- significance


@dataclass(frozen=True)
class PairedTest:
    """One paired comparison; delta = mean_b - mean_a (a is the baseline, so delta > 0 means b is better)."""

    measure: str
    mean_a: float
    mean_b: float
    delta: float
    p_value: float
    n_queries: int
    method: str

    def to_dict(self) -> dict:
        return asdict(self)


def _values(per_query_values, measure: str) -> pd.Series:
    """A qid-indexed Series from a long or wide per-query frame, a Series or a {qid: value} mapping."""
    if isinstance(per_query_values, pd.DataFrame):
        frame = per_query_values
        if {"qid", "measure", "value"} <= set(frame.columns):
            sel = frame[frame["measure"] == measure]
            if sel.empty:
                raise KeyError(f"measure {measure!r} not in the per-query frame (has {sorted(frame['measure'].unique())})")
            series = pd.Series(sel["value"].to_numpy(dtype=float), index=sel["qid"])
        else:
            if measure not in frame.columns:
                raise KeyError(f"measure {measure!r} not in the per-query frame (columns {list(frame.columns)})")
            series = frame[measure]
    elif isinstance(per_query_values, pd.Series):
        series = per_query_values
    else:
        series = pd.Series({str(q): float(v) for q, v in dict(per_query_values).items()}, dtype=float)
    series = series.astype(float)
    series.index = series.index.astype(str)
    if series.index.has_duplicates:
        raise ValueError(f"duplicate query ids in the per-query values of {measure!r}")
    return series


def _mean_difference(b: np.ndarray, a: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(b - a, axis=axis)


def _measure_key(measure, *per_query_values) -> str:
    """A measure that every long per-query frame given lists verbatim is taken as it is (LocalRQA's `recall@k`, and
    `MRR`, which ir-measures would rename `RR`), so one test serves every measure a record holds; any other name is
    its ir-measures name."""
    if isinstance(measure, str) and per_query_values and all(
            isinstance(v, pd.DataFrame) and "measure" in v.columns and bool((v["measure"] == measure).any())
            for v in per_query_values):
        return measure
    return measure_name(measure)


def paired_test(per_query_a, per_query_b, measure: str, method: str = "t", n_resamples: int = 10000,
                seed: int = 0) -> PairedTest:
    """Paired two-sided test of b against a on the query ids both have.

    method='t' is scipy's paired t-test (ttest_rel); method='randomization' is the randomisation test Smucker et al.
    (CIKM 2007) recommend for IR: scipy's permutation_test with paired samples (a permutation swaps a query's two
    values, i.e. flips the sign of its difference), statistic mean(b - a), two-sided, seeded by `seed`; exact over
    all 2^n sign patterns when 2^n <= n_resamples, Monte Carlo with n_resamples draws otherwise. When every paired
    difference is zero the runs are indistinguishable and p = 1 (scipy would return nan); with fewer than 2 shared
    queries p is nan. `measure` is an ir-measures name, or any measure that long per-query frames list verbatim.
    """
    measure = _measure_key(measure, per_query_a, per_query_b)
    if method not in ("t", "randomization"):
        raise ValueError(f"method must be 't' or 'randomization', not {method!r}")
    a, b = _values(per_query_a, measure), _values(per_query_b, measure)
    shared = sorted(set(a.index) & set(b.index), key=qid_order)
    va, vb = a.loc[shared].to_numpy(float), b.loc[shared].to_numpy(float)
    n = len(shared)
    mean_a, mean_b = (float(va.mean()), float(vb.mean())) if n else (math.nan, math.nan)
    diffs = vb - va
    if n < 2:
        p = math.nan
    elif np.all(np.abs(diffs) < 1e-12):
        p = 1.0
    elif method == "t":
        p = float(stats.ttest_rel(vb, va).pvalue)
    else:
        p = float(stats.permutation_test((vb, va), _mean_difference, permutation_type="samples", vectorized=True,
                                         n_resamples=n_resamples, alternative="two-sided",
                                         rng=np.random.default_rng(seed)).pvalue)
    return PairedTest(measure, mean_a, mean_b, mean_b - mean_a, p, n, method)


def adjust_p_values(p_values: Sequence[float], correction: str | None) -> list[float]:
    """Bonferroni or Holm step-down adjustment of one family of p-values (nan entries are left out of it)."""
    p = [float(x) for x in p_values]
    if correction is None:
        return p
    if correction not in ("bonferroni", "holm"):
        raise ValueError(f"correction must be None, 'bonferroni' or 'holm', not {correction!r}")
    valid = [i for i, x in enumerate(p) if not math.isnan(x)]
    m = len(valid)
    if correction == "bonferroni":
        return [x if math.isnan(x) else min(1.0, x * m) for x in p]
    out, running = list(p), 0.0
    for rank, i in enumerate(sorted(valid, key=lambda j: p[j])):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


@dataclass(frozen=True)
class Significance:
    """How `compare_runs` tests each run against the baseline: `paired_test`'s method, resamples and seed, the
    level `alpha`, and the multiple-comparison `correction` ('bonferroni', 'holm' or None)."""

    method: str = "t"
    alpha: float = 0.05
    correction: str | None = None
    n_resamples: int = 10000
    seed: int = 0


def compare_runs(runs: Mapping[str, Run], qrels: Qrels, measures, baseline: str | None = None,
                 significance: Significance = Significance()) -> pd.DataFrame:
    """One row per run: the mean of each measure and, against the baseline, its delta, p-value and mark.

    Columns per measure m: `m` (mean), `m delta` (run - baseline), `m p` (p-value, adjusted when
    `significance.correction` is 'bonferroni' or 'holm'; the family is the non-baseline runs of one measure) and
    `m sig` ('▲' significantly better, '▼' significantly worse at `significance.alpha`, '' otherwise; 'base' on the
    baseline row). Without a baseline only the means are returned. Rows keep the order of `runs`.
    """
    s = significance
    names = [str(m) for m in _parse(measures)]
    if baseline is not None and baseline not in runs:
        raise KeyError(f"baseline {baseline!r} is not one of the runs {list(runs)}")
    per_run = {name: per_query(run, qrels, names, wide=True) for name, run in runs.items()}
    table = pd.DataFrame(index=pd.Index(list(runs), name="run"))
    for m in names:
        table[m] = [float(per_run[r][m].mean()) for r in runs]
        if baseline is None:
            continue
        others = [r for r in runs if r != baseline]
        tests = {r: paired_test(per_run[baseline], per_run[r], m, s.method, s.n_resamples, s.seed) for r in others}
        adjusted = dict(zip(others, adjust_p_values([tests[r].p_value for r in others], s.correction)))
        table[f"{m} delta"] = [0.0 if r == baseline else tests[r].delta for r in runs]
        table[f"{m} p"] = [math.nan if r == baseline else adjusted[r] for r in runs]
        table[f"{m} sig"] = ["base" if r == baseline else ("▲" if tests[r].delta > 0 else "▼")
                             if adjusted[r] < s.alpha and tests[r].delta != 0 else "" for r in runs]
    return table


# ---------------------------------------------------------------------------------------------- fusion


def _normalise(scores: Mapping[str, float], how: str) -> dict[str, float]:
    if not scores:
        return {}
    values = np.array(list(scores.values()), dtype=float)
    if how == "minmax":
        lo, span = values.min(), values.max() - values.min()
        normed = (values - lo) / span if span > 0 else np.zeros_like(values)
    elif how == "zscore":
        std = values.std()
        normed = (values - values.mean()) / std if std > 0 else np.zeros_like(values)
    else:
        raise ValueError(f"normalise must be 'minmax' or 'zscore', not {how!r}")
    return dict(zip(scores, normed.tolist()))


def interpolate(run_a: Run, run_b: Run, weight: float, normalise: str = "minmax") -> Run:
    """weight * a + (1 - weight) * b on per-query normalised scores (a: the reranker, b: the first stage).

    Scores of two models live on different scales, so each run is normalised per query first. A document
    present in only one run takes the other run's lowest normalised score for that query (it was ranked
    below everything that run kept); a query missing from one run gets 0 from it. Tune `weight` on dev data.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    fused: Run = {}
    for qid in sorted(set(run_a) | set(run_b), key=qid_order):
        na, nb = _normalise(run_a.get(qid, {}), normalise), _normalise(run_b.get(qid, {}), normalise)
        floor_a = min(na.values()) if na else 0.0
        floor_b = min(nb.values()) if nb else 0.0
        docs = list(dict.fromkeys([*na, *nb]))
        fused[qid] = {d: weight * na.get(d, floor_a) + (1.0 - weight) * nb.get(d, floor_b) for d in docs}
    return fused


def reciprocal_rank_fusion(runs: Mapping[str, Run] | Iterable[Run], k: int = 60) -> Run:
    """RRF (Cormack et al., SIGIR 2009): score(d) = sum over runs of 1 / (k + rank of d in that run).

    Uses only ranks, so no score calibration is needed. Ranks are 1-based, by descending score with ties
    broken by doc id; a document absent from a run gets nothing from it.
    """
    fused: Run = {}
    for run in runs.values() if isinstance(runs, Mapping) else runs:
        for qid, scores in run.items():
            target = fused.setdefault(qid, {})
            ordered = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
            for rank, (docid, _) in enumerate(ordered, start=1):
                target[docid] = target.get(docid, 0.0) + 1.0 / (k + rank)
    return fused


def kendall_tau_agreement(run: Run, reference: Run) -> float:
    """Mean over queries of Kendall's tau-b between two runs' scores of the documents both scored (a student's
    agreement with its teacher); queries with fewer than two common documents, or a constant side, are skipped."""
    taus = []
    for qid in run:
        common = [d for d in run[qid] if d in reference.get(qid, {})]
        if len(common) < 2:
            continue
        tau = stats.kendalltau([run[qid][d] for d in common], [reference[qid][d] for d in common]).statistic
        if tau == tau:  # nan when one side is constant
            taus.append(tau)
    return float(np.mean(taus)) if taus else float("nan")


def success_and_attempts(run: Run, qrels: Qrels) -> dict[str, float]:
    """HopWeaver's success rate (a relevant document among a query's candidates) and average attempts (1-based rank
    of the first relevant candidate, over successes), over the judged queries."""
    ranks = []
    for q, judged in qrels.items():
        docs = ranked(run.get(q, {}))
        ranks.append(next((i + 1 for i, (d, _) in enumerate(docs) if judged.get(d, 0) > 0), None))
    hits = [r for r in ranks if r is not None]
    return {"success_rate": len(hits) / max(1, len(ranks)),
            "avg_attempts": float(np.mean(hits)) if hits else float("nan")}


# ---------------------------------------------------------------- given candidates: a positive above the negatives


def positive_rank(scores: Mapping[str, float], judged: Mapping[str, int]) -> int:
    """1-based rank of the best-scored positive (grade > 0) among a query's judged candidates (positives and their
    grade-0 negatives), counted pessimistically: 1 + the number of negatives scoring >= it, so a tie with a
    negative is not 'above' it (a constant scorer gets no credit). A candidate the run lacks scores -inf. A query
    without a positive has no rank: ValueError."""
    positives = [d for d, g in judged.items() if g > 0]
    if not positives:
        raise ValueError("positive_rank: the query has no positive candidate")
    value = lambda d: float(scores.get(d, -math.inf))  # noqa: E731
    best = max(value(d) for d in positives)
    return 1 + sum(1 for d, g in judged.items() if g <= 0 and value(d) >= best)


def candidate_measures_per_query(run: Run, qrels: Qrels) -> pd.DataFrame:
    """Long per-query frame (qid, measure, value) of CANDIDATE_MEASURES over the judged queries: accuracy 1 when
    the best positive scores strictly above every negative, else 0; MRR the reciprocal of `positive_rank` (ties
    counted against the positive). With one positive per query this is HopWeaver's check, a positive above its
    negatives; with several, the first positive counts (the standard MRR). A `scorer` for experiment.record_run."""
    rows = []
    for q in sorted(qrels, key=qid_order):
        rank = positive_rank(run.get(q, {}), qrels[q])
        rows += [(q, "accuracy", 1.0 if rank == 1 else 0.0), (q, "MRR", 1.0 / rank)]
    return pd.DataFrame(rows, columns=["qid", "measure", "value"])


def candidate_measures(run: Run, qrels: Qrels) -> dict[str, float]:
    """Means of `candidate_measures_per_query` over the judged queries: {'accuracy': ..., 'MRR': ...} (a
    DevEvaluator's `extra`)."""
    if not qrels:
        raise ValueError("qrels are empty: nothing to evaluate against")
    frame = candidate_measures_per_query(run, qrels)
    return {m: float(frame[frame.measure == m]["value"].mean()) for m in CANDIDATE_MEASURES}


# ---------------------------------------------------------------- LocalRQA's document recall (not an ir-measures measure)


def document_recalls(run: Run, qrels: Mapping[str, Mapping[str, int]], ks: Sequence[int] = (1, 4)) -> dict[str, float]:
    """LocalRQA's document recall@k (every gold passage in the top k), averaged over the questions: the metrics
    that are not ir-measures measures (a DevEvaluator's `extra`)."""
    return {f"recall@{k}": _mean_recall(document_recall(run, qrels, k)) for k in ks}


def recall_per_query(run: Run, qrels: Mapping[str, Mapping[str, int]], ks: Sequence[int] = (1, 4),
                     measures: Sequence[str] = ("nDCG@10",)):
    """Long per-query frame (qid, measure, value): LocalRQA's recall@k (all gold in the top k) for each of `ks`, then
    ir-measures' `measures`; a `scorer` for experiment.record_run."""
    rows = []
    for k in ks:
        rows += [(q, f"recall@{k}", v) for q, v in document_recall(run, qrels, k).items()]
    rows += list(per_query(run, qrels, list(measures)).itertuples(index=False, name=None))
    order = {m: i for i, m in enumerate([*(f"recall@{k}" for k in ks), *measures])}
    rows.sort(key=lambda r: (qid_order(r[0]), order.get(r[1], 99)))
    return pd.DataFrame(rows, columns=["qid", "measure", "value"])


def _mean_recall(values: Mapping[str, float]) -> float:
    return sum(values.values()) / max(1, len(values))
