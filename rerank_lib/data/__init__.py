"""Data: named datasets, BEIR/TREC/RankGPT readers, the shared types and the leak guard."""
from .errors import DataFormatError
from .registry import DATASETS, load_dataset, locate
from .splits import LeakError, TrainingQueries, assert_no_leak, dev_slice, folds_dl, without_overlap
from .types import Dataset, Document, Qrels, Run

__all__ = [
    "DATASETS", "DataFormatError", "Dataset", "Document", "LeakError", "Qrels", "Run", "TrainingQueries",
    "assert_no_leak", "dev_slice", "folds_dl", "load_dataset", "locate", "without_overlap",
]
