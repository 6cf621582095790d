"""The experiment layer every recipe shares: train with dev selection (the untrained start is a candidate) and
evaluate a ranker into records (the row, its `+interp` row, paired tests); one cache key, one dev evaluator,
one learning-curve figure, one results table. Recipes hold only what is particular to a paper."""
from ..data.candidates import EvalSet  # what every record is measured on
from .dev import DevEvaluator
from .records import (
    Evaluated, Row, Timer, choose_interpolation_weight, comparison_cells, first_seed, interpolation_curves,
    mean_per_query, record_reranker, record_run, records_of, seed_runs,
)
from .report import curve_table, learning_curves, results_table, selection_row
from .run_dir import RunName, fingerprint, jsonable, pipeline_cache, run_dir
from .publish import publish_model, publish_selected
from .runs import first_stage_of, load_run, run_path, save_run, saved_teacher
from .scorer import train_encoder_in_run_dir, train_scorer
from .selection import Selected, train_with_dev_selection
from .splits import (
    RerankingSets, TrainingSplit, dl_training_split, sample_ids, sample_items, scifact_reranking_sets,
    scifact_training_split, test_sample,
)

