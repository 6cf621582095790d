"""faire's records: LocalRQA's recall@k beside nDCG@10, paired tests, +interp rows, the table and the curves."""
from __future__ import annotations

from typing import Mapping

import pandas as pd

from ...data import Dataset, TrainingQueries, own_training
from ...data.types import Run
from ...evaluation import interpolate, recall_per_query
from ...experiment import (
    EvalSet, Evaluated, Row, choose_interpolation_weight, jsonable, publish_selected, record_run, results_table,
)
from ...export import ModelCard
from ...settings import snapshot
from .baselines import Baselines
from .settings import FAIRE_MEASURES, OWN_FILE, PIPELINE, RECIPE, FaireConfig, FaireData, short_name, start_method
from .training import Outcome


def faire_row(cfg: FaireConfig, method: str, model: str, params=None, wall_s=None) -> Row:
    """What a faire record says about its method (its published numbers are added by `record_faire`)."""
    return Row(PIPELINE, method, cfg.profile, model, params, cfg.seed, wall_s=wall_s)


def record_faire(run: Run, ds: Dataset, row: Row, *, cfg: FaireConfig, results_dir, baselines: Mapping[str, Run],
                 training: TrainingQueries | None = None):
    """A record with LocalRQA's recall@k (not an ir-measures measure: evaluation.recall_per_query scores
    it) and nDCG@10, paired t-tests against each baseline on every measure, and the leak guard for trained models;
    the published numbers of (dataset, method) from RECIPE.references beside them. `row`: `faire_row`'s."""
    return record_run(run, EvalSet.of(ds, first_stage="corpus", depth=cfg.depth, measures=FAIRE_MEASURES),
                      row.but(reference=RECIPE.references.get((ds.name, row.method))), results_dir,
                      baselines=baselines, training=training, scorer=recall_per_query)


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
    for out in outcomes:
        name, model = f"{out.method}-{short_name(cfg.model)}", f"{cfg.model} trained with {out.method.upper()}"
        trained = dict(common, baselines=both, training=data.provenance)
        params = jsonable({**own_training.without_unset(snapshot(cfg), OWN_FILE), **out.params})
        records.append(record_faire(out.runs["test"], test, faire_row(cfg, name, model, params, out.wall_s), **trained))
        publish_selected("bi_encoder", out.encoder, records[-1], out.selected, results_dir, ModelCard(cfg.model),
                         name=f"{name}-{test.name}")
        weight, _ = choose_interpolation_weight(out.runs["eval"], base.runs["bm25"]["eval"], data.eval.qrels)
        records.append(record_faire(interpolate(out.runs["test"], bm25, weight), test, faire_row(
            cfg, f"{name}+interp", model, jsonable({**out.params, "interpolation_weight": weight})), **trained))
    return Evaluated(records)


def faire_table(records) -> pd.DataFrame:
    """experiment.results_table with LocalRQA's recall@k: paired tests on recall@4 (the selection metric)."""
    return results_table(records, measures=("recall@4", "recall@1", "nDCG@10"), bases=("start", "bm25"))
