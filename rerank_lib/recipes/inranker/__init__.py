"""20_inranker: InRanker (Laitz et al., 2024) — a monoT5 student distilled from a teacher's soft labels in two stages.

Stage 1 (general domain): the student learns the teacher's [false, true] logits on MS MARCO passages. Stage 2
(target domain): it continues from the stage-1 checkpoint on synthetic queries written by an LLM for the target
corpus (InPars-v1 prompt), each with 9 BM25 negatives from the top-1000, labelled by the teacher.

The embedded default: the teacher is the offline MiniLM bi-encoder (its fusion with BM25 on SciFact), mapped to two
logits by a calibration fitted on TRAINING judgments only; the student is monoT5-shaped with a pretrained encoder
(all-MiniLM-L6-v2 under a small random decoder); stage 1 uses the two leak-free TREC DL folds (train on one year,
test on the other); stage 2 generates queries for SciFact documents with SmolLM2-135M. A T5 built from a config is
the ablation row. Checkpoints (the untrained start included) are chosen on dev slices, never on a test query. The
`paper` profile trains t5-base on the published soft labels (monoT5-3B teacher) with the published settings. With
`seeds`, every training run repeats per training seed (stage 2 from that seed's stage-1 student; the labels and
synthetic queries are data, made once), and each trained row's record holds the mean over seeds.

One submodule per step: settings, data, training (students, stage 1, ablation; through the package's trainer API,
`trainer.InRankerTrainer`, re-exported here), synthetic (stage 2), evaluation (records,
tables, figures).
"""
import dataclasses

from ..recipe import Trained, is_main, main_first
from .data import DevSlice as DevSlice, Fold as Fold, dl_folds as dl_folds, fold_table as fold_table
from .evaluation import Evaluation as Evaluation, evaluate_all as evaluate_all, results_table as results_table
from .evaluation import (
    agreement as agreement, agreement_figure as agreement_figure, agreement_pairs as agreement_pairs,
    learning_curves_figure as learning_curves_figure, training_table as training_table,
)
from .settings import PIPELINE as PIPELINE, RECIPE as RECIPE, InRankerConfig as InRankerConfig, config as config
from .settings import summary as summary
from .synthetic import Synthetic as Synthetic, stage2 as stage2, synthetic_data as synthetic_data
from .training import (
    InRankerTrainer as InRankerTrainer, Student as Student, ablation as ablation, labelled as labelled,
    short_name as short_name, stage1 as stage1,
)


def train_from_shell(cfg: InRankerConfig, results_dir, evaluate: bool) -> dict:
    """Notebook 20 from the shell: stage 1 on each DL fold, stage 2 on the synthetic queries, the ablation (each
    once per training seed of `seeds`: output folders named '<student> seed <seed>')."""
    from ..first_stage import ensure_first_stage

    with main_first():
        ensure_first_stage(cfg, results_dir)
        folds = dl_folds(cfg, results_dir) if cfg.stage1_data == "dl-folds" else None
        synth = synthetic_data(cfg, results_dir)  # before stage 1: a bad line of a stage2_file stops it first
    first = stage1(cfg, folds, results_dir=results_dir)
    students = {f"stage1/{k}": v for k, v in first.items()}
    students["stage2"] = stage2(cfg, first, synth, results_dir=results_dir)
    students["ablation"] = ablation(cfg, folds, results_dir=results_dir)
    if evaluate and is_main():
        print(results_table(cfg, evaluate_all(cfg, students, results_dir)).to_string())
    return {label: Trained.monot5(s.selected, cfg) for label, s in labelled(students).items()}


#: the pipeline with its shell training (settings.RECIPE, which the steps use, is the same recipe without it)
RECIPE = dataclasses.replace(RECIPE, training=train_from_shell)
