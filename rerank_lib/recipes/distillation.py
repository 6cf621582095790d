"""14_: six distillation losses at one step budget: one teacher, one student, one query set, several training seeds.

No paper compares these losses on equal terms; each project distils its own way. Here the cross-encoder pipeline's
teacher (10_'s FlagEmbedding file: the offline teacher's calibrated margins m as pos/neg_scores, on each training
query's positives and mined negatives) teaches the cross-encoder's student (MiniLM's encoder under a fresh head,
`ce-minilm-start`) with each loss for the same number of optimizer steps of the same pairs per step, once per
training seed; the dev slice selects each run's checkpoint (the untrained start a candidate). The losses are the
cross-encoder recipe's `distill_*` variants, trained and recorded by its own steps (records of the `cross_encoder`
pipeline, methods `ce-minilm-distill-<loss>`):

    distill_logit_mse         InRanker: MSE of the centred [false, true] logit pairs, for one logit (s - m)^2 / 4
    distill_group_ce_kd       FlagEmbedding: group CE (the qrels positive first) + soft CE on softmax(m)
    distill_soft_point_ce     point CE on the teacher's probabilities sigmoid(m)
    distill_ranknet           RankNet on the teacher's order
    distill_listnet           ListNet top-one on softmax(m)
    distill_weighted_ranknet  rank_llm's (FIRST's) RankNet weighted 1 / (r_i + r_j) on the teacher's ranks

Only group CE + KD also reads the qrels label; the other five see the teacher alone. Every other loss is tested
against group CE + KD (`reference`) on the per-query nDCG@10 averaged over seeds. The settings here are what the
comparison sets; the rest (teacher, data, learning rates, batch) is the cross_encoder pipeline's profile of the same
name (`cross_encoder_config`).
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Mapping

import pandas as pd

from ..data.types import Run
from ..experiment import Evaluated, RerankingSets, comparison_cells, records_of
from ..results import Record
from ..results.ledger import paired_effect, per_query_values
from ..results.record import kept_start, selected_steps
from . import cross_encoder
from .cross_encoder import eval_sets, load_training_data, method_name, start_runs, train_variant
from ..settings import override
from .recipe import Recipe, RecipeSettings, Trained, is_main, main_first

LOSSES = tuple(v for v in cross_encoder.VARIANTS if v.startswith("distill_"))
MEASURE = "nDCG@10"
#: the cross-encoder settings the comparison sets itself -> what to set instead (`cross_encoder` may not hold them)
SET_HERE = {"model": "student", "variants": "losses", "train.max_steps": "steps", "seed": "seed", "seeds": "seeds",
            "data_root": "data_root", "variant_train": "nothing: every loss trains with one recipe"}


@dataclass(frozen=True)
class DistillationConfig(RecipeSettings):
    losses: tuple[str, ...] = LOSSES  # the cross-encoder's distill_* variants compared
    reference: str = "distill_group_ce_kd"  # the row every other loss is tested against
    steps: int = 40  # the one step budget: optimizer steps of every loss (cross-encoder train.max_steps)
    student: str = "minilm-l6"  # the cross-encoder `model` every loss starts from (a fresh head on its encoder)
    # further cross-encoder settings (dotted) the comparison sets over the cross_encoder pipeline's profile
    cross_encoder: Mapping[str, Any] = field(default_factory=dict)


def flat(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Settings by dotted path, None kept (a null in the YAML unsets a cross-encoder setting)."""
    out = {}
    for key, value in settings.items():
        if isinstance(value, Mapping):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def cross_encoder_config(cfg: DistillationConfig) -> cross_encoder.CrossEncoderConfig:
    """The cross-encoder settings of the comparison: the cross_encoder pipeline's profile `cfg.profile`, with the
    student, the losses as its variants, the step budget, the seeds (for every loss) and `cfg.cross_encoder` (a None
    there unsets the setting, e.g. no dev evaluation between the start and the end); one recipe for every loss (no
    per-variant recipe)."""
    given = {**flat(cfg.cross_encoder), "seed": cfg.seed, "seeds": cfg.seeds, "data_root": cfg.data_root,
             "model": cfg.student, "variants": cfg.losses, "seeded_variants": (), "train.max_steps": cfg.steps,
             "variant_train": {}}
    ce = cross_encoder.config(cfg.profile, **{k: v for k, v in given.items() if v is not None})
    unset = {k: None for k, v in given.items() if v is None and k != "data_root"}
    return override(ce, unset, skip_none=False) if unset else ce


def check(cfg: DistillationConfig, overrides) -> DistillationConfig:
    """A caller's `cross_encoder` entries go over the profile's (one more dotted setting each, not a new mapping);
    then: the losses are distill_* variants, the reference one of them, and the cross-encoder settings valid."""
    if overrides.get("cross_encoder") is not None:
        profile = flat(RECIPE.values(cfg.profile).get("cross_encoder") or {})
        cfg = override(cfg, {"cross_encoder": {**profile, **flat(cfg.cross_encoder)}})
    unknown = [loss for loss in cfg.losses if loss not in LOSSES]
    if unknown or len(set(cfg.losses)) != len(cfg.losses):
        raise ValueError(f"losses: expected distinct variants among {list(LOSSES)}, got {list(cfg.losses)}")
    if cfg.reference not in cfg.losses:
        raise ValueError(f"reference {cfg.reference!r} is not one of the losses {list(cfg.losses)}")
    if cfg.steps < 1:
        raise ValueError(f"steps: the step budget must be >= 1, got {cfg.steps}")
    own = sorted(set(flat(cfg.cross_encoder)) & set(SET_HERE))
    if own:
        raise ValueError(f"cross_encoder: {own[0]} is this comparison's own setting: set {SET_HERE[own[0]]} instead")
    cross_encoder_config(cfg)  # a bad cross-encoder setting is refused now, naming itself
    return cfg


def training(cfg: DistillationConfig, results_dir, evaluate: bool) -> dict:
    """Notebook 14 from the shell (01_'s runs and 10_'s training files built first when missing)."""
    from .first_stage import ensure_first_stage

    ce = cross_encoder_config(cfg)
    with main_first():
        ensure_first_stage(ce, results_dir)
        if not (cross_encoder.data_dir(ce, results_dir) / "manifest.json").exists():
            print("building 10_cross_encoder_data's training files (missing from the results folder)", flush=True)
            cross_encoder.build_training_data(ce, results_dir)
        groups, split, _ = load_training_data(ce, results_dir)
        sets = eval_sets(ce, results_dir, split)
    runs = [train_variant(ce, loss, groups, sets, results_dir=results_dir) for loss in ce.variants]
    if evaluate and is_main():
        evaluated = evaluate_losses(cfg, runs, sets, start_runs(ce, sets), results_dir)
        print(loss_table(cfg, evaluated.records, results_dir).to_string())
    return {vr.label: Trained.cross_encoder(vr.selected, vr.model) for vrs in runs for vr in vrs}


RECIPE = Recipe(
    "distillation", "14_distillation_budget", DistillationConfig, flags={"model_name_or_path": "student"},
    steps=("cross_encoder_config", "load_training_data", "eval_sets", "start_runs", "train_variant",
           "evaluate_losses", "loss_table"),
    training=training, check=check, multi_seed=True)
config = RECIPE.config


def evaluate_losses(cfg: DistillationConfig, runs: list[list[cross_encoder.VariantRun]], sets: RerankingSets,
                    start: list[Run], results_dir) -> Evaluated:
    """Each loss's records (its row and its +interp row, vs BM25 and vs the start) through the cross-encoder's
    evaluate_variant, in `cfg.losses` order; refused when the losses did not all train the same number of steps
    (raise the cross-encoder's train.num_epochs until the budget binds every loss). The test against the reference
    loss is `loss_table`'s, from the records' per-query values."""
    steps = {vrs[0].variant: sorted({vr.selected.result.global_step for vr in vrs}) for vrs in runs}
    if any(s != [cfg.steps] for s in steps.values()):
        raise ValueError(f"the step budget is not equal ({cfg.steps} steps each): {steps}; a loss ran out of "
                         "epochs first: raise cross_encoder train.num_epochs")
    ce = cross_encoder_config(cfg)
    by_loss = {vrs[0].variant: vrs for vrs in runs}
    return Evaluated(records_of(cross_encoder.evaluate_variant(ce, by_loss[loss], sets, start, results_dir)
                                for loss in cfg.losses if loss in by_loss))


def _mean(values) -> float | None:
    values = [v for v in (values if isinstance(values, list) else [values]) if v is not None]
    return statistics.fmean(values) if values else None


def loss_row(record: Record, reference: Record | None, results_dir) -> dict:
    """One loss's line: nDCG@10 mean ± sd over seeds, its paired effect against the reference (each query's mean
    over seeds; 95% interval, p, minimum detectable effect), the start test, and its training cost."""
    params = record.params or {}
    sd = record.sd(MEASURE)
    row = {"loss": params.get("loss"), "seeds": len(record.seeds) or 1,
           MEASURE: f"{record.metrics[MEASURE]:.4f}" + (f" ± {sd:.4f}" if sd is not None else "")}
    if reference is not None and reference is not record:
        a, b = per_query_values(record, results_dir, MEASURE), per_query_values(reference, results_dir, MEASURE)
        shared = sorted(set(a or ()) & set(b or ()))
        if len(shared) >= 2:
            e = paired_effect([a[q] for q in shared], [b[q] for q in shared])
            row.update({"Δ vs reference [95% CI]": f"{e.mean:+.4f} [{e.low:+.4f}, {e.high:+.4f}]",
                        "p": round(e.p, 4), "MDE": round(e.mde, 4)})
    row.update(comparison_cells(record, bases=("start",), measure=MEASURE))
    steps, step_s = _mean(params.get("steps")), _mean(params.get("step_s"))
    row.update({"selected steps": selected_steps(record), "steps": int(steps) if steps is not None and steps == int(steps) else steps,
                "s / step": None if step_s is None else round(step_s, 3),
                "train s (steps x s/step)": None if step_s is None else round(steps * step_s, 1),
                "run s with dev (per seed)": record.train_s})
    return row


def loss_table(cfg: DistillationConfig, records: list[Record], results_dir) -> pd.DataFrame:
    """One row per loss (its +interp row left out): effectiveness over seeds, the paired test against the
    reference loss, whether dev selection kept the start, and the training cost."""
    ce = cross_encoder_config(cfg)
    mine = {r.method: r for r in records if not r.method.endswith("+interp")}
    reference = mine.get(method_name(ce, cfg.reference))
    rows = {}
    for loss in cfg.losses:
        record = mine.get(method_name(ce, loss))
        if record is not None:
            rows[record.method + (" (reference)" if record is reference else "")] = {
                **loss_row(record, reference, results_dir), "= start": kept_start(record)}
    return pd.DataFrame(rows).T.fillna("")
