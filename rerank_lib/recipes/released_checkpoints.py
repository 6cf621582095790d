"""03_released_checkpoints: the papers' released checkpoints in our harness, on the first stage their numbers were
published on, each checked against its published number within a stated tolerance.

Why: a retrained row that misses the paper's number says nothing until the paper's own checkpoint, run through the
same code (our first-stage runs, our rankers, our evaluation), lands on the published number; then a gap after
retraining is the training's, not the harness's. The checkpoints, their published numbers with sources and the
tolerances with reasons are data (`checkpoints:` of recipes/paper_profiles/released_checkpoints.yaml, checked by
paper_profiles); `checkpoints` (a setting) picks the hub ids a profile runs.

Each checkpoint runs through the ranker its family already uses (rerankers.CrossEncoder, rerankers.monot5.T5Ranker,
listwise.ListwiseReranker decoding by generation or FIRST) and enters the records through experiment.record_reranker
as a row of its family (pipeline rankllm / inranker / cross_encoder, method: the hub id), with its tolerance check in
params (`tolerance_check`: published, ours, abs_diff, tolerance, within, comparable, verdict), which the reproduction
ledger lists. paper: the real checkpoints (hub, GPU). paper-tiny and smoke: the same path with the stand-in of the
same class (models.standin) on a few queries; the check runs and calls them not comparable. default: nothing runs.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..evaluation import evaluate
from ..experiment import EvalSet, Evaluated, Row, Timer, load_run, record_reranker, test_sample
from ..models import weights_params
from ..models.standin import spelled, standin_for
from ..results import Record
from ..results.gpu_estimate import estimate
from .recipe import Recipe, RecipeSettings, is_main

PIPELINE = "released_checkpoints"
#: settings that replace a checkpoint's published setup where its ranker takes them (the tiny profiles' sizes)
OVERRIDES = ("depth", "window", "stride", "max_words", "context_size", "max_length")
#: the exact command that runs the paper profile (01 writes the first-stage runs 03 reranks)
COMMAND = "bash run_all.sh --profile paper --only 01 03"
SLACK = 1e-9  # a difference equal to the tolerance is within it, whatever the float rounding of the subtraction


@dataclass(frozen=True)
class ReleasedConfig(RecipeSettings):
    checkpoints: tuple[str, ...] = ()  # hub ids of the YAML's `checkpoints:` to run ('tiny:<id>': its stand-in)
    max_queries: int | None = None  # a seeded sample of each test set's judged queries (None: all, as published)
    depth: int | None = None  # None: each checkpoint's published depth (and below, its published options)
    window: int | None = None
    stride: int | None = None
    max_words: int | None = None
    context_size: int | None = None
    max_length: int | None = None
    batch_size: int = 32  # pairs per forward of a pointwise ranker: speed only


def checkpoints() -> list[dict]:
    """Every released checkpoint of the YAML (one entry per checkpoint and test set), in file order."""
    return RECIPE.file.checkpoints


def hub_id(name: str) -> str:
    """The hub id a configured name stands for ('tiny:<id>' and paper-tiny's stand-in names: the id itself)."""
    standin = standin_for(name)
    return standin.hub_id if standin is not None else str(name)


def entries_of(name: str) -> list[dict]:
    """The YAML's entries of one configured checkpoint (one per test set)."""
    return [entry for entry in checkpoints() if entry["model"].lower() == hub_id(name).lower()]


def check(cfg: ReleasedConfig, overrides) -> ReleasedConfig:
    """Every configured checkpoint has entries in the YAML (an unknown one is an error now, not after a download)."""
    unknown = [name for name in cfg.checkpoints if not entries_of(name)]
    if unknown:
        raise ValueError(f"checkpoints: {unknown} not in {RECIPE.file.path.name}'s checkpoints: "
                         f"{sorted(dict.fromkeys(entry['model'] for entry in checkpoints()))}")
    return cfg


def training(cfg: ReleasedConfig, results_dir, evaluate: bool) -> dict:
    """The shell's run: the configured checkpoints evaluated into records (no model is trained)."""
    if is_main():
        evaluate_checkpoints(cfg, results_dir)
    return {}


RECIPE = Recipe(PIPELINE, "03_released_checkpoints", ReleasedConfig,
                steps=("checkpoint_table", "gpu_command", "evaluate_checkpoints", "check_table", "reading_facts"),
                training=training, check=check)
config = RECIPE.config


# ---------------------------------------------------------------------------------------------- the check


def tolerance_check(published: float | None, ours: float | None, tolerance: float, not_comparable: str = "") -> dict:
    """Our number against the published one: |ours - published| within `tolerance` (a difference equal to it counts
    as within). `within` is True only for a comparable run (the published checkpoint, setup and queries) that lands
    within; `not_comparable` says why a run is not (stand-in weights, a query sample, a smaller window)."""
    diff = None if published is None or ours is None else abs(ours - published)
    if published is None:
        not_comparable = "; ".join(filter(None, ["no published number", not_comparable]))
    inside = diff is not None and diff <= tolerance + SLACK
    within = inside and not not_comparable
    verdict = (f"not comparable ({not_comparable})" if not_comparable else
               "within tolerance" if within else "outside tolerance")
    return {"published": published, "ours": ours, "abs_diff": None if diff is None else round(diff, 6),
            "tolerance": tolerance, "within": within, "comparable": not not_comparable, "verdict": verdict,
            "not_comparable": not_comparable}


def run_setup(cfg: ReleasedConfig, entry: dict) -> dict:
    """What the run uses: the published depth and ranker options, each replaced by the profile's value where the
    profile sets one and the ranker takes it."""
    from ..paper_profiles import CHECKPOINT_RANKERS

    takes = ("depth", *CHECKPOINT_RANKERS[entry["ranker"]])
    given = {name: getattr(cfg, name) for name in OVERRIDES}
    published = {"depth": entry["depth"], **entry["options"]}
    return {**published, **{k: v for k, v in given.items() if v is not None and k in takes}}


def differences(entry: dict, setup: dict, model_kind: str | None, queries: int, judged: int) -> str:
    """Why a run cannot be read against the published number ('' when it can): stand-in weights, a query sample, a
    setup other than the published one."""
    why = []
    if model_kind == "standin":
        why.append("stand-in weights (a random model of the same class), not the published checkpoint")
    if queries < judged:
        why.append(f"{queries} of {judged} queries")
    published = {"depth": entry["depth"], **entry["options"]}
    changed = [f"{k} {setup[k]} (published {published[k]})" for k in published if setup.get(k) != published[k]]
    if changed:
        why.append("run with " + ", ".join(changed))
    return "; ".join(why)


# ---------------------------------------------------------------------------------------------- running


def build_ranker(name: str, entry: dict, setup: dict, cfg: ReleasedConfig):
    """The ranker the checkpoint's family already uses, loaded from the one model resolver (a stand-in name: its
    stand-in). A cross-encoder whose score head loading initialised afresh is not a released reranker: refused."""
    kind = entry["ranker"]
    if kind == "cross-encoder":
        from ..rerankers.cross_encoder import CrossEncoder, has_trained_head

        ranker = CrossEncoder(name, max_length=setup["max_length"])
        if not has_trained_head(ranker):
            raise ValueError(f"{spelled(name)}: loading initialised a fresh score head ({ranker.fresh_head[:3]}): "
                             "not a trained reranker")
        return ranker
    if kind == "monot5":
        from ..rerankers.monot5 import T5Ranker

        return T5Ranker(name, batch_size=cfg.batch_size, max_length=setup["max_length"])
    from ..listwise import ListwiseReranker
    from ..models import load_chat_lm

    model, tokenizer = load_chat_lm(name)
    return ListwiseReranker(model, tokenizer, mode="generate" if kind == "listwise-generate" else "first",
                            window=setup["window"], stride=setup["stride"], max_words=setup["max_words"],
                            context_size=setup["context_size"], identifiers=setup["identifiers"])


def rerank(ranker, run, ds, setup: dict, batch_size: int) -> tuple[dict, dict]:
    """(the reranked run, what the record adds: the LLM calls per query of a listwise ranker)."""
    from ..listwise import ListwiseReranker
    from ..rerankers.cross_encoder import CrossEncoder

    if isinstance(ranker, ListwiseReranker):
        reranked, windows = ranker.rerank_run(run, ds.corpus, ds.queries, setup["depth"])
        return reranked, {"llm_calls_per_query": round(len(windows) / max(len(run), 1), 2)}
    if isinstance(ranker, CrossEncoder):  # its batch is a rerank option (T5Ranker's: a constructor one)
        return ranker.rerank(run, ds.corpus, ds.queries, depth=setup["depth"], batch_size=batch_size), {}
    return ranker.rerank(run, ds.corpus, ds.queries, depth=setup["depth"]), {}


def evaluate_entry(cfg: ReleasedConfig, name: str, entry: dict, ranker, results_dir) -> list[Record]:
    """One checkpoint on one test set: its records (experiment.record_reranker against the first stage) with the
    tolerance check in params."""
    first_stage = load_run(results_dir, cfg.profile, entry["dataset"], entry["split"], entry["first_stage"])
    sample = [entry["dataset"], first_stage, cfg.max_queries, cfg.seed, cfg.data_root, entry["split"]]
    ds, run, split = test_sample(*sample)
    judged = len(run) if cfg.max_queries is None else len(test_sample(*sample[:2], None, *sample[3:])[1])
    setup = run_setup(cfg, entry)
    with Timer() as t:
        reranked, extra = rerank(ranker, run, ds, setup, cfg.batch_size)
    weights = weights_params(name)
    measure, published = entry["measure"], entry["published"]
    ours = evaluate(reranked, ds.qrels, [measure])[measure]
    why = differences(entry, setup, weights.get("model_kind"), len(ds.queries), judged)
    checked = tolerance_check(published["value"], ours, entry["tolerance"]["value"], why)
    params = {"checkpoint": hub_id(name), "ranker": entry["ranker"], **setup, **extra, "queries": len(ds.queries),
              "published_setup": {"first_stage": entry["first_stage"], "depth": entry["depth"], **entry["options"]},
              "tolerance_check": {**checked, "measure": measure, "why_tolerance": entry["tolerance"]["why"]},
              **weights}
    reference = {measure: published} if published["value"] is not None else None
    evalset = EvalSet(ds.name, split, ds.queries, ds.qrels, entry["first_stage"], setup["depth"], run, ds.corpus)
    row = Row(entry["pipeline"], hub_id(name), cfg.profile, f"{spelled(name)} (released checkpoint)", params,
              cfg.seed, reference, t.s)
    return record_reranker(reranked, evalset, row, results_dir, baselines={entry["first_stage"]: run})


def evaluate_checkpoints(cfg: ReleasedConfig, results_dir) -> Evaluated:
    """Each configured checkpoint (loaded once) on each of its test sets: records with the tolerance check. The
    first-stage runs come from 01_first_stage (built when missing)."""
    from .first_stage import ensure_first_stage

    records: list[Record] = []
    if not cfg.checkpoints:
        return Evaluated(records)
    ensure_first_stage(cfg, results_dir)
    for name in cfg.checkpoints:
        mine = entries_of(name)
        ranker = build_ranker(name, mine[0], run_setup(cfg, mine[0]), cfg)
        for entry in mine:
            records += evaluate_entry(cfg, name, entry, ranker, results_dir)
        del ranker  # a 7B model's memory goes before the next one loads
    return Evaluated(records)


# ---------------------------------------------------------------------------------------------- tables


def checkpoint_table(cfg: ReleasedConfig) -> pd.DataFrame:
    """Every released checkpoint: its ranker and row, test set, published first stage and setup, the published
    number with its source, the tolerance with its reason, the GPU estimate of scoring it, and whether this profile
    runs it."""
    runs = {hub_id(name).lower() for name in cfg.checkpoints}
    rows = []
    for entry in checkpoints():
        cost = estimate(entry["params_billion"], 0.0, entry["eval_tokens"])
        options = ", ".join(f"{k} {v}" for k, v in entry["options"].items())
        rows.append({"model": entry["model"], "ranker": entry["ranker"], "row of": entry["pipeline"],
                     "test set": f"{entry['dataset']} {entry['split']}",
                     "first stage": f"{entry['first_stage']} top-{entry['depth']}", "setup": options,
                     "published": entry["published"]["value"], "source": entry["published"]["source"],
                     "tolerance": entry["tolerance"]["value"], "why": entry["tolerance"]["why"],
                     "params (B)": entry["params_billion"],
                     "GPU estimate": f"~{cost.eval_hours:.2g} H100-hours, {cost.eval_memory_gb:.1f} GB bf16 weights",
                     "runs here": "yes" if entry["model"].lower() in runs else "no"})
    return pd.DataFrame(rows).set_index(["model", "test set"])


def gpu_command(cfg: ReleasedConfig) -> str:
    """Markdown: the exact command that runs the paper checkpoints, and the GPU they take (results.gpu_estimate)."""
    entries = checkpoints()
    hours = sum(estimate(e["params_billion"], 0.0, e["eval_tokens"]).gpu_hours for e in entries)
    largest = max(entries, key=lambda e: e["params_billion"])
    return "\n".join([
        "Run the released checkpoints on a GPU with the Hugging Face hub reachable:", "", f"    {COMMAND}", "",
        "(01 writes the BM25 runs 03 reranks; `-p checkpoints '[\"castorini/first_mistral\"]'` runs one.)", "",
        f"- all {len(entries)} entries together: ~{hours:.2g} H100-hours of scoring (each entry's estimate: the table "
        "above)",
        f"- the largest model, {largest['model']} ({largest['params_billion']:g}B), holds "
        f"{estimate(largest['params_billion'], 0.0).eval_memory_gb:.1f} GB of bf16 weights: one 80 GB GPU",
        "- a FLOP count (2 x params x tokens) at 40% of an H100's bf16 peak: generation decoding is bound by memory "
        "bandwidth rather than FLOPs, so the listwise-generate rows take longer than this lower bound",
        f"- this profile ({cfg.profile}) runs: {', '.join(map(spelled, cfg.checkpoints)) or 'nothing (no hub)'}"])


def check_table(records: list[Record]) -> pd.DataFrame:
    """The tolerance check of each released checkpoint's row: published, ours, |diff|, tolerance, the verdict."""
    rows = []
    for r in records:
        checked = (r.params or {}).get("tolerance_check")
        if not isinstance(checked, dict):
            continue
        rows.append({"model": r.method, "test set": f"{r.dataset} {r.split}", "profile": r.profile,
                     "published": checked["published"], "ours": round(checked["ours"], 4),
                     "|diff|": checked["abs_diff"], "tolerance": checked["tolerance"], "within": checked["within"],
                     "verdict": checked["verdict"]})
    columns = ["model", "test set", "profile", "published", "ours", "|diff|", "tolerance", "within", "verdict"]
    return pd.DataFrame(rows, columns=columns).set_index(["model", "test set"])


def reading_facts(cfg: ReleasedConfig, records: list[Record]) -> dict[str, str]:
    """What the closing 'Reading the numbers' states besides the records: what was listed, what ran, how many rows
    landed within tolerance and how many could not be compared (and why)."""
    checked = [r.params["tolerance_check"] for r in records
               if isinstance((r.params or {}).get("tolerance_check"), dict)]
    listed = checkpoints()
    facts = {"released checkpoints listed": f"{len(dict.fromkeys(e['model'] for e in listed))} models on "
                                            f"{len(listed)} test sets",
             f"run in this profile ({cfg.profile})": ", ".join(map(spelled, cfg.checkpoints)) or f"none: `{COMMAND}`"}
    if checked:
        comparable = [c for c in checked if c["comparable"]]
        facts["within tolerance"] = f"{sum(c['within'] for c in comparable)} of {len(comparable)} comparable rows"
        apart = [c for c in checked if not c["comparable"]]
        facts["not comparable"] = f"{len(apart)} rows" + (f"; the first because: {apart[0]['not_comparable']}"
                                                          if apart else "")
    return facts
