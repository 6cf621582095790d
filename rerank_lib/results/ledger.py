"""The reproduction ledger: each paper's claims, the two rows of the records that test each one, and a verdict with
its uncertainty, written to REPRODUCTION.md by `build_tables` (and summarised in README's numbers block).

Why: the tables say which row is best; a reader asks whether paper X's claim holds, and a table invites a wrong
answer (a row that is its own untrained start, a test set too small to see the effect). Here every claim (the
recipes' YAML `claims:`, each with its source) gets one paired test and one of five verdicts, computed from the
records alone, so the answer cannot drift from the numbers.

The test, per claim: the per-query values of its measure for rows a and b (a row trained with several seeds holds
each query's mean over its seeds in its per-query file), paired over their common queries; the effect is mean(a - b)
with a 95% t interval, p is the paired t-test's (scipy `ttest_rel`, two-sided), and the minimum detectable effect at
80% power and alpha 0.05 is (t_{1-alpha/2, n-1} + t_{0.8, n-1}) * sd(a - b) / sqrt(n), the one-sample t approximation
on the differences (it ignores the noncentral t, so it is slightly optimistic for small n).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import write_text
from ..paper_profiles import packaged_claims
from .gpu_estimate import estimate
from .record import Record, kept_start, load_per_query, load_records, selected_step

ALPHA = 0.05
POWER = 0.8
REPRODUCED = "reproduced at this scale"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
NEEDS = "needs a GPU / the hub"
NOT_RUN = "not run"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NEEDS, NOT_RUN)


@dataclass(frozen=True)
class PairedEffect:
    """mean(a - b) over `n` paired queries, its sd, 95% t interval, two-sided p and minimum detectable effect."""

    n: int
    mean: float
    sd: float
    low: float
    high: float
    p: float
    mde: float


def minimum_detectable_effect(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true mean difference a paired t-test on `n` queries detects with `power` at `alpha` (two-sided):
    (t_{1-alpha/2, n-1} + t_{power, n-1}) * sd / sqrt(n)."""
    from scipy import stats

    return float((stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)) * sd / math.sqrt(n))


def paired_effect(a, b, alpha: float = ALPHA, power: float = POWER) -> PairedEffect:
    """The paired comparison of per-query values `a` and `b` (same queries, same order)."""
    import numpy as np
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"a paired test needs two equally long lists of at least 2 values, not {a.shape} and {b.shape}")
    d = a - b
    n, mean, sd = len(d), float(d.mean()), float(d.std(ddof=1))
    half = float(stats.t.ppf(1 - alpha / 2, n - 1)) * sd / math.sqrt(n)
    p = float(stats.ttest_rel(a, b).pvalue) if sd > 0 else (1.0 if mean == 0 else 0.0)
    return PairedEffect(n, mean, sd, mean - half, mean + half, p, minimum_detectable_effect(sd, n, alpha, power))


@dataclass
class Verdict:
    """One claim judged on one profile's records."""

    pipeline: str  # the recipe file the claim is in
    claim: dict[str, Any]
    verdict: str
    why: str = ""
    a: Record | None = None
    b: Record | None = None
    effect: PairedEffect | None = None
    values: tuple[float, float] | None = None  # a's and b's value of the measure (their records' means)

    @property
    def seeds(self) -> str:
        """How many training seeds each row's numbers rest on ('3', or '3 / 1' when a and b differ)."""
        counts = [n_seeds(r) for r in (self.a, self.b) if r is not None]
        return "–" if not counts else str(counts[0]) if len(set(counts)) == 1 else " / ".join(map(str, counts))


def n_seeds(record: Record) -> int:
    """The training seeds behind a row: `seeds` when the record has several, else 1."""
    return len(getattr(record, "seeds", None) or []) or 1


def find_row(records: list[Record], row: dict[str, str], dataset: str, split: str) -> Record | None:
    return next((r for r in records if (r.pipeline, r.method, r.dataset, r.split) ==
                 (row["pipeline"], row["method"], dataset, split)), None)


def per_query_values(record: Record, results_dir, measure: str) -> dict[str, float] | None:
    """qid -> value of `measure` from the record's per-query file; None when it has none for that measure."""
    if not record.per_query:
        return None
    try:
        frame = load_per_query(record, results_dir)
    except FileNotFoundError:
        return None
    if "measure" in frame.columns:
        rows = frame[frame["measure"] == measure].dropna(subset=["value"])
        values = dict(zip(rows["qid"].astype(str), rows["value"].astype(float)))
    elif measure in frame.columns:
        values = {str(q): float(v) for q, v in frame[measure].dropna().items()}
    else:
        return None
    return values or None


def record_value(record: Record, measure: str) -> float | None:
    """A row's value of `measure`: its metrics, else a number its params or record carry (a cost: wall_s,
    latency_s_per_query, train_s)."""
    for value in (record.metrics.get(measure), (record.params or {}).get(measure), getattr(record, measure, None)):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _row_words(row: dict[str, str]) -> str:
    return f"`{row['pipeline']}` `{row['method']}`"


def _needs_words(needs: dict[str, Any]) -> str:
    cost = estimate(needs["params_billion"], needs["train_tokens"], needs["eval_tokens"])
    return (f"{needs['model']}: `{needs['command']}`; {cost.words()} (tokens: {needs['tokens_source']})")


def _run_words(claim: dict) -> str:
    """What writes a claim's missing rows or measurement: the default profile's command (a CPU claim), or the paper
    profile's with its GPU estimate (a paper claim)."""
    if claim["runs_on"] == "paper":
        return _needs_words(claim["needs"])
    return f"the default profile (CPU, offline) writes them: `{claim['produced_by']}`"


def credits_training(claim: dict) -> bool:
    """Whether the claim credits row a's training (a row whose dev selection kept its start then supports nothing):
    not a cost claim ('a < b'), not one marked `credits_training: false` (two decodings of one model)."""
    return claim["direction"] != "a < b" and claim.get("credits_training", True)


def _with_evidence(why: str, claim: dict) -> str:
    return why + (f"; what isolates it: {claim['evidence']}" if claim.get("evidence") else "")


def decide(claim: dict, effect: PairedEffect) -> tuple[str, str]:
    """The verdict of a paired effect on the claim: the interval read against the claimed direction (for
    'a >= b - margin': against -margin), the published effect and the minimum detectable effect."""
    sign = -1.0 if claim["direction"] == "a < b" else 1.0  # a cost claim: lower is better
    low, high = sorted((sign * effect.low, sign * effect.high))
    line = -claim.get("margin", 0.0)
    line_words = "0" if line == 0 else f"-margin ({line:+.3f})"
    published = claim.get("published_effect", {}).get("value")
    interval = f"the 95% interval [{effect.low:+.3f}, {effect.high:+.3f}]"
    if effect.sd == 0 and effect.mean == 0:
        return NOT_REPRODUCED, _with_evidence("the two rows score every query alike", claim)
    if low > line:
        return REPRODUCED, f"{interval} lies above {line_words} in the claimed direction"
    if high < line:
        return NOT_REPRODUCED, _with_evidence(f"{interval} lies on the other side of {line_words}", claim)
    if published is not None and not low <= sign * published <= high:
        return NOT_REPRODUCED, _with_evidence(f"{interval} contains {line_words} and excludes the published effect "
                                              f"{published:+.3f}", claim)
    if published is not None:
        return INCONCLUSIVE, f"{interval} contains both {line_words} and the published effect {published:+.3f}"
    return INCONCLUSIVE, (f"{interval} contains {line_words}; |effect| {abs(effect.mean):.3f} is below the minimum "
                          f"detectable effect {effect.mde:.3f} of {effect.n} queries")


def _start_kept(verdict: Verdict) -> Verdict:
    a, claim = verdict.a, verdict.claim
    steps = (a.params or {}).get("steps")
    verdict.verdict = NOT_REPRODUCED
    verdict.values = (record_value(a, claim["measure"]), record_value(verdict.b, claim["measure"]))
    verdict.why = _with_evidence(f"dev selection kept the start (step {selected_step(a)}"
                                 f"{f' of {steps}' if steps is not None else ''}): {_row_words(claim['a'])} is its "
                                 "untrained start and supports no training claim", claim)
    return verdict


def _cost(verdict: Verdict, measure: str) -> Verdict:
    """A claim on a cost the records carry once per row (no per-query values): compared, not tested."""
    a, b = record_value(verdict.a, measure), record_value(verdict.b, measure)
    missing = [_row_words(verdict.claim[side]) for side, v in (("a", a), ("b", b)) if v is None]
    if missing:
        verdict.verdict = NOT_RUN
        writer = (f"`{verdict.claim['produced_by']}` wrote the rows without it" if verdict.claim["runs_on"] == "cpu"
                  else _needs_words(verdict.claim["needs"]))
        verdict.why = (f"no record carries `{measure}` for {' and '.join(missing)}: that measurement is missing "
                       f"({writer})")
        return verdict
    verdict.values = (a, b)
    holds = a < b if verdict.claim["direction"] == "a < b" else a > b
    verdict.verdict = REPRODUCED if holds else NOT_REPRODUCED
    ratio = f"a / b = {a / b:.2f}" if b else f"a = {a:.3g}, b = 0"
    depths = (verdict.a.depth, verdict.b.depth)
    work = (f" (a reranks {depths[0]} candidates per query, b {depths[1]})"
            if measure == "latency_s_per_query" and None not in depths and depths[0] != depths[1] else "")
    verdict.why = f"one measurement per row, no interval: {ratio}{work}"
    if not holds:
        verdict.why = _with_evidence(verdict.why, verdict.claim)
    return verdict


def judge(pipeline: str, claim: dict, records: list[Record], results_dir) -> Verdict:
    """One claim's verdict on `records` (one profile's): see the module's test and `decide`."""
    verdict = Verdict(pipeline, claim, NOT_RUN)
    verdict.a, verdict.b = (find_row(records, claim[side], claim["dataset"], claim["split"]) for side in ("a", "b"))
    missing = [_row_words(claim[side]) for side, r in (("a", verdict.a), ("b", verdict.b)) if r is None]
    if missing:  # a CPU claim's rows are a run away; a paper claim's need the paper profile's models
        where = f"{claim['dataset']} {claim['split']}"
        verdict.verdict = NEEDS if claim["runs_on"] == "paper" else NOT_RUN
        verdict.why = f"no record of {' and '.join(missing)} on {where} in this profile; {_run_words(claim)}"
        return verdict
    if kept_start(verdict.a) and credits_training(claim):
        return _start_kept(verdict)
    measure = claim["measure"]
    a_values, b_values = (per_query_values(r, results_dir, measure) for r in (verdict.a, verdict.b))
    if a_values is None or b_values is None:
        return _cost(verdict, measure)
    verdict.values = (record_value(verdict.a, measure), record_value(verdict.b, measure))
    common = sorted(set(a_values) & set(b_values))
    if len(common) < 2:
        verdict.why = f"{len(common)} common queries with per-query `{measure}`: no paired test"
        return verdict
    verdict.effect = paired_effect([a_values[q] for q in common], [b_values[q] for q in common])
    verdict.verdict, verdict.why = decide(claim, verdict.effect)
    for side in ("a", "b") if not credits_training(claim) else ("b",):
        if kept_start(getattr(verdict, side)):
            verdict.why += f"; {_row_words(claim[side])} kept its start (step 0)"
    return verdict


def ledger(records: list[Record], results_dir, claims: dict[str, list[dict]] | None = None) -> list[Verdict]:
    """Every claim's verdict (claims by recipe file; default: the packaged recipe YAMLs), in file order."""
    claims = packaged_claims() if claims is None else claims
    return [judge(pipeline, claim, records, results_dir) for pipeline, items in claims.items() for claim in items]


# ---------------------------------------------------------------------------------------------- markdown


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _p(p: float | None) -> str:
    return "–" if p is None else "<0.001" if p < 0.001 else f"{p:.3f}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def effect_words(verdict: Verdict) -> str:
    e = verdict.effect
    return "–" if e is None else f"{e.mean:+.3f} [{e.low:+.3f}, {e.high:+.3f}]"


def _direction(claim: dict) -> str:
    return claim["direction"].replace("margin", f"{claim['margin']:g}") if "margin" in claim else claim["direction"]


def _row(v: Verdict) -> list[str]:
    c, e = v.claim, v.effect
    ours = "–" if v.values is None else f"{_num(v.values[0])}, {_num(v.values[1])}"
    published = c.get("published_effect")
    return [f"**{c['id']}**: {c['claim']}", c["source"],
            f"{_row_words(c['a'])} vs {_row_words(c['b'])} ({_direction(c)}; {c['measure']}, {c['dataset']} {c['split']})",
            str(e.n) if e else "–", v.seeds, ours, effect_words(v), _p(e.p if e else None), _num(e.mde if e else None),
            f"{published['value']:+.3f} ({published['source']})" if published else "–",
            f"**{v.verdict}**" + (f": {v.why}" if v.why else "")]


LEGEND = [
    "How the test is done:", "",
    "- Per claim, rows a and b of this profile's records, paired over their common test queries (n). A row trained "
    "with several seeds holds each query's mean over its seeds; *n seeds* says how many (1: one training run).",
    f"- Effect: mean(a − b) of the claim's measure with a 95% t interval; p: the paired t-test (two-sided); MDE: the "
    f"minimum detectable effect at {POWER:.0%} power, alpha {ALPHA}, (t₁₋α/₂,ₙ₋₁ + t₀.₈,ₙ₋₁) · sd(a − b) / √n, the "
    "one-sample t approximation on the differences.",
    f"- *{REPRODUCED}*: the interval lies on the claimed side of 0 (for `a >= b - m`: above −m). *{NOT_REPRODUCED}*: "
    "it lies on the other side, or it excludes the published effect while containing 0, or row a's dev selection "
    "kept its untrained start (then it supports no training claim). *" + INCONCLUSIVE + "*: the interval contains 0 "
    "and the published effect, or the effect is below the MDE. *" + NEEDS + "*: the rows run only with the paper's "
    "models (the claim's `runs_on: paper`; the command and an estimate from model size and tokens). *" + NOT_RUN +
    "*: a row or measurement of a claim whose rows the default profile writes on the CPU (`runs_on: cpu`) is "
    "missing; the verdict names the command that writes the rows.",
    "- A cost claim (latency, training time) compares one measurement per row: no interval.", "",
]


def render(verdicts: list[Verdict], profile: str, records: list[Record] = ()) -> str:
    """REPRODUCTION.md: the counts per verdict, the legend, one table per recipe file, its paper-scale needs, and
    the released checkpoints' tolerance checks among `records` (released_checkpoints_section)."""
    out = [f"# Reproduction ledger (profile: {profile})", "",
           "Generated by `rerank_lib.results.build_tables` from the records under "
           f"`records/{profile}/` and the claims in `rerank_lib/recipes/paper_profiles/*.yaml`; edit those, not "
           "this file.", ""]
    counts = {word: sum(v.verdict == word for v in verdicts) for word in VERDICTS}
    out += [f"{len(verdicts)} claims: " + ", ".join(f"{n} {word}" for word, n in counts.items() if n) + ".", "",
            *LEGEND]
    header = ["claim", "source", "rows a vs b", "n queries", "n seeds", "ours (a, b)", "effect [95% CI]", "p", "MDE",
              "published effect", "verdict"]
    for pipeline in dict.fromkeys(v.pipeline for v in verdicts):
        mine = [v for v in verdicts if v.pipeline == pipeline]
        out += [f"## {pipeline}", "", "| " + " | ".join(header) + " |",
                "| " + " | ".join(["---"] * 3 + ["---:"] * 6 + ["---"] * 2) + " |"]
        out += ["| " + " | ".join(_cell(c) for c in _row(v)) + " |" for v in mine]
        needs: dict[str, list[str]] = {}  # claims whose rows this profile has: what the paper's scale takes
        for v in mine:
            if "needs" in v.claim and v.verdict != NEEDS:
                needs.setdefault(_needs_words(v.claim["needs"]), []).append(f"**{v.claim['id']}**")
        out += ["", "At paper scale:", *(f"- {', '.join(ids)}: {words}" for words, ids in needs.items())] if needs else []
        out.append("")
    return "\n".join(out + released_checkpoints_section(list(records)))


def released_checkpoints_section(records: list[Record]) -> list[str]:
    """'Released checkpoints in our harness': each released checkpoint's row (its params' `tolerance_check`, written
    by recipes.released_checkpoints) beside its published number. Why: a paper's own checkpoint landing on its number
    here is what makes a gap after retraining the training's, not the harness's. Nothing when no row has a check."""
    checked = [r for r in records if isinstance((r.params or {}).get("tolerance_check"), dict)]
    if not checked:
        return []
    out = ["## Released checkpoints in our harness", "",
           "Each paper's released checkpoint run through our first stage, ranker code and evaluation "
           "(`03_released_checkpoints`), against its published number: *within tolerance* only for the published "
           "checkpoint on the published setup and every query; stand-ins, query samples or smaller windows are not "
           "comparable.", "",
           "| model | row of | test set | published | ours | abs diff | tolerance | within tolerance |",
           "|---|---|---|---:|---:|---:|---:|---|"]

    def four(value):  # published numbers carry four decimals
        return "–" if value is None else f"{value:.4f}"

    for r in checked:
        c = r.params["tolerance_check"]
        within = "yes" if c.get("within") else c.get("verdict", "no")
        out.append("| " + " | ".join(_cell(x) for x in [
            f"`{r.method}`", f"`{r.pipeline}`", f"{r.dataset} {r.split}", four(c.get("published")),
            four(c.get("ours")), four(c.get("abs_diff")), four(c.get("tolerance")), within]) + " |")
    return out + [""]


def summary_lines(verdicts: list[Verdict]) -> list[str]:
    """README's headline: one line per claim (its rows, test set, effect, p and verdict), no sources or legend."""
    lines = ["| claim | rows a vs b | test set | n (seeds) | effect [95% CI] | p | verdict |",
             "|---|---|---|---:|---|---:|---|"]
    for v in verdicts:
        c, e = v.claim, v.effect
        n = f"{e.n} ({v.seeds})" if e else "–"
        why = f" ({v.why.split(';')[0]})" if v.verdict in (NOT_REPRODUCED, NOT_RUN) and v.why else ""
        compare = {"a > b": ">", "a < b": "<"}.get(c["direction"], "≥")
        tail = f" − {c['margin']:g}" if "margin" in c else ""
        lines.append("| " + " | ".join(_cell(x) for x in [
            f"`{c['id']}`", f"`{c['a']['method']}` {compare} `{c['b']['method']}`{tail}", f"{c['dataset']} {c['split']}",
            n, effect_words(v), _p(e.p if e else None), v.verdict + why]) + " |")
    return lines


def write_ledger(results_dir: str | os.PathLike, profile: str = "default", records: list[Record] | None = None,
                 claims: dict[str, list[dict]] | None = None) -> Path:
    """Write REPRODUCTION.md (another profile's: REPRODUCTION.<profile>.md) under results_dir."""
    results_dir = Path(results_dir)
    records = load_records(results_dir, profile) if records is None else records
    tag = "" if profile == "default" else f".{profile}"
    return write_text(results_dir / f"REPRODUCTION{tag}.md",
                      render(ledger(records, results_dir, claims), profile, records))
