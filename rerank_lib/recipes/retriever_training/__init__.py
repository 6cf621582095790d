"""40_ / 41_: LocalRQA's retriever trainers (CTL, DCA, RPG) on LocalRQA's own faire example, and CTL on SciFact.

faire (notebook 40): LocalRQA's train / eval / test questions (train minus the questions that repeat an eval or test
question word for word); eval selects checkpoints (LocalRQA's metric_for_best_model recall@4; the zero-shot start
is step 0, a candidate) and interpolation weights; test is evaluated once, with LocalRQA's document recall@1/@4
and nDCG@10, against BM25 and the zero-shot start. SciFact (notebook 41): CTL from the qrels of
scifact_training_split (BM25 hard negatives), dev slice for checkpoint selection, dense retrieval over the whole
corpus on test.

SciFact has no gold answers, which DCA and RPG need (the reader is scored on the answer): they run on faire only.
A proxy answer (e.g. the gold abstract's first sentence) would make the "answer" a copy of the gold passage, so
the LM would reward lexical overlap with the gold abstract rather than usefulness for answering: a different
method, and the same supervision as CTL's qrels, so it is not run.
"""
import dataclasses

from ..recipe import Trained, is_main, main_first
from .baselines import Baselines, faire_baselines
from .records import faire_records, faire_row, faire_table, record_faire
from .scifact import RECIPE as SCIFACT_RECIPE
from .scifact import SciFactData, load_scifact, scifact_config, scifact_records, scifact_table, train_scifact
from .settings import (
    FAIRE, FAIRE_MEASURES, METHODS, PIPELINE, RECIPE, FaireConfig, FaireData, SciFactConfig, config, encoder,
    load_faire, start_method,
)
from .training import Outcome, train_faire, train_selected

__all__ = [
    "FAIRE", "FAIRE_MEASURES", "METHODS", "PIPELINE", "RECIPE", "SCIFACT_RECIPE", "Baselines", "FaireConfig",
    "FaireData", "Outcome", "SciFactConfig", "SciFactData", "config", "encoder", "faire_baselines",
    "faire_records", "faire_row", "faire_table", "load_faire", "load_scifact", "record_faire",
    "scifact_config", "scifact_records", "scifact_table", "start_method", "train_faire", "train_scifact",
    "train_selected",
]


def train_from_shell(cfg: FaireConfig, results_dir, evaluate: bool) -> dict:
    """Notebook 40 from the shell: each method of `methods` trained on faire (--evaluate: its records and table)."""
    with main_first():
        data = load_faire(cfg)
    outcomes = []
    for method in cfg.methods:
        train_selected(cfg, data, method, results_dir, outcomes)
    if evaluate and is_main():
        base = faire_baselines(cfg, data, encoder(cfg), results_dir)
        print(faire_table(faire_records(cfg, data, base, outcomes, results_dir).records).to_string())
    return {o.label: Trained.bi_encoder(o.selected, o.encoder) for o in outcomes}


#: the pipeline with its shell training (settings.RECIPE, which the steps use, is the same recipe without it)
RECIPE = dataclasses.replace(RECIPE, training=train_from_shell)
