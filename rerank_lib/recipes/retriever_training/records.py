"""faire's records: LocalRQA's recall@k beside nDCG@10, paired tests, +interp rows, the table and the curves."""
from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd

from ...data import Dataset, TrainingQueries, own_training
from ...data.types import Run
from ...evaluation import interpolate, recall_per_query
from ...experiment import (
    EvalSet, Evaluated, Row, choose_interpolation_weight, first_seed, jsonable, publish_selected, record_run,
    results_table,
)
from ...export import ModelCard
from ...settings import snapshot
from .baselines import Baselines
from .settings import FAIRE_MEASURES, OWN_FILE, PIPELINE, RECIPE, FaireConfig, FaireData, short_name, start_method
from .training import Outcome


def faire_row(cfg: FaireConfig, method: str, model: str, params=None, wall_s=None, seeds=(), train_s=None) -> Row:
    """What a faire record says about its method (its published numbers are added by `record_faire`); `seeds`: the
    training seeds of a row given one run per seed; `wall_s` and `train_s`: every seed's together (experiment.Row)."""
    return Row(PIPELINE, method, cfg.profile, model, params, cfg.seed, wall_s=wall_s, seeds=tuple(seeds),
               train_s=train_s)


def record_faire(run: Run | Sequence[Run], ds: Dataset, row: Row, *, cfg: FaireConfig, results_dir,
                 baselines: Mapping[str, Run], training: TrainingQueries | None = None):
    """A record with LocalRQA's recall@k (not an ir-measures measure: evaluation.recall_per_query scores
    it) and nDCG@10, paired t-tests against each baseline on every measure, and the leak guard for trained models;
    the published numbers of (dataset, method) from RECIPE.references beside them. `row`: `faire_row`'s; one run
    per seed of `row.seeds` makes a seeded record (the mean over seeds)."""
    return record_run(run, EvalSet.of(ds, first_stage="corpus", depth=cfg.depth, measures=FAIRE_MEASURES),
                      row.but(reference=RECIPE.references.get((ds.name, row.method))), results_dir,
                      baselines=baselines, training=training, scorer=recall_per_query)


#: an outcome's params that differ between training seeds: a seeded record lists them per seed
PER_SEED = ("train", "selected_step", "selected_is_start")


def seeds_of(outcomes: list[Outcome]) -> dict[str, list[Outcome]]:
    """The outcomes by method (in training order): one per training seed of each trained method."""
    grouped: dict[str, list[Outcome]] = {}
    for out in outcomes:
        grouped.setdefault(out.method, []).append(out)
    return grouped


def faire_records(cfg: FaireConfig, data: FaireData, base: Baselines, outcomes: list[Outcome],
                  results_dir) -> Evaluated:
    """Records on faire test: BM25, the zero-shot start, the teachers, each trainer and its +interp row (BM25
    interpolation, weight chosen on eval by nDCG@10)."""
    test = data.test
    bm25, start = base.runs["bm25"]["test"], base.runs["zero-shot"]["test"]
    both = {"bm25": bm25, "start": start}
    common = dict(cfg=cfg, results_dir=results_dir)
    records = [record_faire(bm25, test, faire_row(cfg, "bm25", "bm25s (stemmed) over fmt_content"), baselines={},
                            **common),
               record_faire(start, test, faire_row(cfg, start_method(cfg), f"{cfg.model} (max_length {cfg.max_length})"),
                            baselines={"bm25": bm25}, **common)]
    for teacher in ("minilm-l6", "bm25+minilm-l6"):
        records.append(record_faire(base.runs[f"teacher-{teacher}"]["test"], test, faire_row(
            cfg, f"teacher-{teacher}", f"offline teacher {teacher} (max_length {cfg.max_length}) on the BM25 "
            f"top-{cfg.depth}"), baselines=both, **common))
    for method, outs in seeds_of(outcomes).items():
        out, several = outs[0], len(outs) > 1
        name, model = f"{method}-{short_name(cfg.model)}", f"{cfg.model} trained with {method.upper()}"
        trained = dict(common, baselines=both, training=data.provenance)
        seeds = cfg.seeds if several else ()
        params = {**out.params, **({k: [o.params[k] for o in outs] for k in PER_SEED} if several else {})}
        tests = [o.runs["test"] for o in outs]
        wall_s, train_s = sum(o.wall_s for o in outs), sum(o.selected.train_s for o in outs)
        row = faire_row(cfg, name, model, jsonable({**own_training.without_unset(snapshot(cfg), OWN_FILE), **params}),
                        wall_s, seeds, train_s)
        records.append(record_faire(tests if several else tests[0], test, row, **trained))
        own = first_seed(records[-1], params={**records[-1].params, **out.params})  # the first seed's model
        publish_selected("bi_encoder", out.encoder, own, out.selected, results_dir, ModelCard(cfg.model),
                         name=f"{name}-{test.name}")
        weights = [choose_interpolation_weight(o.runs["eval"], base.runs["bm25"]["eval"], data.eval.qrels)[0]
                   for o in outs]
        mixed = [interpolate(run, bm25, weight) for run, weight in zip(tests, weights)]
        interp = ({"interpolation_weights": weights, "interpolation_weight": sum(weights) / len(weights)} if several
                  else {"interpolation_weight": weights[0]})
        records.append(record_faire(mixed if several else mixed[0], test, faire_row(
            cfg, f"{name}+interp", model, jsonable({**params, **interp}), wall_s, seeds, train_s), **trained))
    return Evaluated(records)


def faire_table(records) -> pd.DataFrame:
    """experiment.results_table with LocalRQA's recall@k: paired tests on recall@4 (the selection metric)."""
    return results_table(records, measures=("recall@4", "recall@1", "nDCG@10"), bases=("start", "bm25"))
