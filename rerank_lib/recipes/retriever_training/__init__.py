"""40_ / 41_: LocalRQA's retriever trainers (CTL, DCA, RPG) on LocalRQA's own faire example, and CTL on SciFact.

faire (notebook 40): LocalRQA's train / eval / test questions (train minus the questions that repeat an eval or test
question word for word); eval selects checkpoints (LocalRQA's metric_for_best_model recall@4) and interpolation
weights; test is evaluated once, with LocalRQA's document recall@1/@4 and nDCG@10, against BM25 and the zero-shot
start. SciFact (notebook 41): CTL from the qrels of scifact_training_split (BM25 hard negatives), dev slice for
checkpoint selection, dense retrieval over the whole corpus on test.

SciFact has no gold answers, which DCA and RPG need (the reader is scored on the answer): they run on faire only.
A proxy answer (e.g. the gold abstract's first sentence) would make the "answer" a copy of the gold passage, so
the LM would reward lexical overlap with the gold abstract rather than usefulness for answering: a different
method, and the same supervision as CTL's qrels, so it is not run.
"""
# The code lives in one submodule per step: settings, faire_data, baselines, training (faire), records (faire)
# and scifact (notebook 41). This package re-exports what the notebooks (`recipe.<name>`) and the tests use. To
# monkeypatch a name, patch it in the submodule that looks it up: rebinding it here does not reach the submodules.
from .settings import (
    FAIRE as FAIRE, FAIRE_MEASURES as FAIRE_MEASURES, FAIRE_PROFILES as FAIRE_PROFILES, METHODS as METHODS,
    PIPELINE as PIPELINE, SCIFACT_PROFILES as SCIFACT_PROFILES, FaireConfig as FaireConfig,
    SciFactConfig as SciFactConfig, config as config, encoder as encoder, scifact_config as scifact_config,
)
from .faire_data import FaireData as FaireData, load_faire as load_faire
from .baselines import Baselines as Baselines, faire_baselines as faire_baselines
from .training import (
    Outcome as Outcome, reader_agreement as reader_agreement, reader_for as reader_for, start_method as start_method,
    train_faire as train_faire,
)
from .records import (
    curves_figure as curves_figure, faire_per_query as faire_per_query, faire_records as faire_records,
    faire_table as faire_table, record_faire as record_faire,
)
from .scifact import (
    SciFactData as SciFactData, load_scifact as load_scifact, scifact_records as scifact_records,
    scifact_table as scifact_table, train_scifact as train_scifact,
)

__all__ = [
    "FaireConfig", "SciFactConfig", "config", "scifact_config", "encoder", "load_faire", "faire_baselines",
    "train_faire", "faire_records", "faire_table", "curves_figure", "load_scifact", "train_scifact",
    "scifact_records", "scifact_table", "reader_agreement", "faire_per_query", "record_faire", "start_method",
]
