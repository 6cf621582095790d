"""20_inranker: InRanker (Laitz et al., 2024) — a monoT5 student distilled from a teacher's soft labels in two stages.

Stage 1 (general domain): the student learns the teacher's [false, true] logits on MS MARCO passages. Stage 2
(target domain): it continues from the stage-1 checkpoint on synthetic queries written by an LLM for the target
corpus (InPars-v1 prompt), each with 9 BM25 negatives from the top-1000, labelled by the teacher.

The embedded default (issue 8): the teacher is the offline MiniLM bi-encoder (its fusion with BM25 on SciFact),
mapped to two logits by a calibration fitted on TRAINING judgments only; the student is monoT5-shaped with a
pretrained encoder (all-MiniLM-L6-v2 under a small random decoder); stage 1 uses the two leak-free TREC DL folds
(train on DL20's queries and their BM25 candidates, test on DL19, and the reverse); stage 2 generates queries for
SciFact documents with SmolLM2-135M. A T5 built from a config (the t5-efficient-tiny shape, random weights) is the
ablation row. Checkpoints are chosen on dev slices (the training year's dev queries; SciFact train's dev slice with
real judgments for stage 2), never on a test query. The `paper` profile trains t5-base on the published soft
labels (monoT5-3B teacher) with the published hyper-parameters.
"""
# The code lives in one submodule per step: settings, student, data (test sets, teacher, DL folds), training
# (stage 1, ablation), synthetic (stage 2), evaluation, figures. This package re-exports what the notebook
# (`recipe.<name>`, including `recipe._short`) and the tests use. To monkeypatch a name, patch it in the submodule
# that looks it up: rebinding it here does not reach the submodules.
from .settings import (
    CENTERING as CENTERING, PIPELINE as PIPELINE, PROFILES as PROFILES, REFERENCES as REFERENCES,
    InRankerConfig as InRankerConfig, config as config, summary as summary,
)
from .student import Student as Student, start_model as start_model
from .data import (
    Fold as Fold, dl_folds as dl_folds, fold_table as fold_table, saved_teacher as saved_teacher, test_set as test_set,
)
from .training import ablation as ablation, stage1 as stage1, train_student as train_student, _short as _short
from .synthetic import Synthetic as Synthetic, stage2 as stage2, synthetic_data as synthetic_data
from .evaluation import (
    Evaluation as Evaluation, evaluate_all as evaluate_all, fold_summary as fold_summary,
    results_table as results_table,
)
from .figures import (
    agreement as agreement, agreement_figure as agreement_figure, learning_curves_figure as learning_curves_figure,
    training_table as training_table,
)
