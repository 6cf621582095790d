"""Data: named datasets, BEIR/TREC/RankGPT readers, the shared types and the leak guard."""
from .errors import DataFormatError
from .registry import DATASETS, load_dataset, locate
from .splits import (
    LeakError, TrainingQueries, assert_no_leak, check_dl_folds, dev_slice, folds_dl, leak_free_training, without_overlap,
)
from .types import Dataset, Document, Qrels, Run

__all__ = [
    "DATASETS", "DataFormatError", "Dataset", "Document", "LeakError", "Qrels", "Run", "TrainingQueries",
    "assert_no_leak", "check_dl_folds", "dev_slice", "folds_dl", "leak_free_training", "load_dataset", "locate",
    "without_overlap",
]
