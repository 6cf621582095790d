"""faire's records: LocalRQA's recall@k beside nDCG@10, paired tests, +interp rows, the table and the curves."""
from __future__ import annotations

from typing import Mapping

import pandas as pd

from ...data import Dataset, TrainingQueries, assert_no_leak
from ...data.localrqa import document_recall
from ...data.trec import qid_order
from ...data.types import Run
from ...evaluation import interpolate, paired_test, per_query
from ...experiment import choose_interpolation_weight, jsonable, results_table
from ...results import make_record, write_record
from ...settings import snapshot
from .baselines import Baselines
from .faire_data import FaireData
from .settings import FAIRE_MEASURES, PIPELINE, FaireConfig, short_name, start_method
from .training import Outcome


def faire_per_query(run: Run, qrels) -> pd.DataFrame:
    """Long per-query frame: LocalRQA's recall@1/@4 (all gold in the top k) and ir-measures' nDCG@10."""
    rows = []
    for k in (1, 4):
        rows += [(q, f"recall@{k}", v) for q, v in document_recall(run, qrels, k).items()]
    pq = per_query(run, qrels, ["nDCG@10"])
    rows += list(pq.itertuples(index=False, name=None))
    order = {m: i for i, m in enumerate(FAIRE_MEASURES)}
    rows.sort(key=lambda r: (qid_order(r[0]), order.get(r[1], 99)))
    return pd.DataFrame(rows, columns=["qid", "measure", "value"])


def record_faire(run: Run, ds: Dataset, *, method: str, cfg: FaireConfig, results_dir, baselines: Mapping[str, Run],
                 model: str, training: TrainingQueries | None = None, params=None, wall_s=None):
    """A record with LocalRQA's recall@k (not an ir-measures measure, so record_run cannot compute it) and nDCG@10,
    paired t-tests against each baseline on every measure, and the leak guard for trained models."""
    training_queries, n_training = "none (zero-shot)", None
    if training is not None:
        assert_no_leak([training], f"{ds.name}/{ds.split}", ds.queries)
        training_queries, n_training = training.describe(), len(training.query_ids)
    pq = faire_per_query(run, ds.qrels)
    metrics = {m: float(pq[pq.measure == m]["value"].mean()) for m in FAIRE_MEASURES}
    significance = {}
    for name, base in baselines.items():
        pq_base = faire_per_query(base, ds.qrels)
        significance[name] = {m: paired_test(pq_base, pq, m).to_dict() for m in FAIRE_MEASURES}
    record = make_record(PIPELINE, method, ds.name, ds.split, metrics, model=model, first_stage="corpus",
                         depth=cfg.depth, significance=significance, training_queries=training_queries,
                         n_training_queries=n_training, profile=cfg.profile, params=dict(params or {}), seed=cfg.seed,
                         wall_s=wall_s)
    write_record(record, results_dir, per_query=pq)
    return record


def faire_records(cfg: FaireConfig, data: FaireData, base: Baselines, outcomes: list[Outcome], results_dir) -> list:
    """Records on faire test: BM25, the zero-shot start, the teachers, each trainer and its +interp row (BM25
    interpolation, weight chosen on eval by nDCG@10)."""
    test = data.test
    bm25, start = base.runs["bm25"]["test"], base.runs["zero-shot"]["test"]
    both = {"bm25": bm25, "start": start}
    common = dict(cfg=cfg, results_dir=results_dir)
    records = [record_faire(bm25, test, method="bm25", baselines={}, model="bm25s (stemmed) over fmt_content", **common),
               record_faire(start, test, method=start_method(cfg), baselines={"bm25": bm25},
                            model=f"{cfg.model} (max_length {cfg.max_length})", **common)]
    for teacher in ("minilm-l6", "bm25+minilm-l6"):
        records.append(record_faire(base.runs[f"teacher-{teacher}"]["test"], test, method=f"teacher-{teacher}",
                                    baselines=both, **common, model=f"offline teacher {teacher} (max_length "
                                    f"{cfg.max_length}) on the BM25 top-{cfg.depth}"))
    for out in outcomes:
        name = f"{out.method}-{short_name(cfg.model)}"
        trained = dict(common, baselines=both, model=f"{cfg.model} trained with {out.method.upper()}",
                       training=data.provenance)
        records.append(record_faire(out.runs["test"], test, method=name, params=jsonable({**snapshot(cfg), **out.params}),
                                    wall_s=out.wall_s, **trained))
        weight, _ = choose_interpolation_weight(out.runs["eval"], base.runs["bm25"]["eval"], data.eval.qrels)
        records.append(record_faire(interpolate(out.runs["test"], bm25, weight), test, method=f"{name}+interp",
                                    params=jsonable({**out.params, "interpolation_weight": weight}), **trained))
    return records


def faire_table(records) -> pd.DataFrame:
    """experiment.results_table with LocalRQA's recall@k: paired tests on recall@4 (the selection metric)."""
    return results_table(records, measures=("recall@4", "recall@1", "nDCG@10"), bases=("start", "bm25"))
