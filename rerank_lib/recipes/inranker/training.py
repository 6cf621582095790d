"""Training InRanker students: the recipe's runs through `trainer.InRankerTrainer` (the
`inranker` package's trainer API), one stage's TrainConfig each, selected on dev: stage 1, the ablation.

Each step returns one student per training seed (`seeds`; else one, seeded by the stage's `train.seed`), in `seeds`
order; the untrained student is seeded by `seed` alone, so every training seed starts from the same model."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ...data import TrainingQueries, load_dataset
from ...data.inranker import DistillDataset
from ...evaluation import kendall_tau_agreement
from ...experiment import DevEvaluator, EvalSet, Selected, run_dir
from .trainer import InRankerTrainer
from ...rerankers.monot5 import load_seq2seq
from ...settings import snapshot
from .data import DevSlice, Fold
from .settings import PIPELINE, RECIPE, InRankerConfig, Stage


@dataclass
class Student:
    """A trained student as the evaluation needs it: its dev-selected checkpoint (the start when step 0 won)."""

    method: str  # record method name, e.g. 'minilm-monot5-stage1'
    selected: Selected
    provenance: TrainingQueries
    dev: DevSlice | None = None
    data: dict = field(default_factory=dict)  # training data summary
    params: dict = field(default_factory=dict)
    seed: int | None = None  # its training seed, when it is one of several (`seeds`)

    @property
    def model_dir(self) -> Path:
        return self.selected.model_dir


def labelled(students: Mapping[str, Sequence[Student] | None]) -> dict[str, Student]:
    """{key: [student per seed]} -> {label: student}: the key, with the training seed when it is one of several
    ('stage2 seed 14'); the tables, figures and the shell's output folders name each run so."""
    return {key if s.seed is None else f"{key} seed {s.seed}": s for key, runs in students.items() for s in runs or ()}


def student_options(cfg: InRankerConfig, name: str) -> dict:
    """The builder options of an offline student name (`rerankers.monot5.STUDENTS`); none for a hub id."""
    if name == "minilm-monot5":
        return {"decoder_layers": cfg.decoder_layers, "seed": cfg.seed}
    return {"seed": cfg.seed} if name == "t5-efficient-tiny-random" else {}


def start_model(cfg: InRankerConfig, name: str):
    """The untrained student (seeded): (model, tokenizer)."""
    return load_seq2seq(name, **student_options(cfg, name))


def short_name(name: str) -> str:
    return {"t5-efficient-tiny-random": "t5tiny-random"}.get(name, Path(str(name)).name)


@dataclass(frozen=True)
class StudentData:
    """What a student distils: `load(trainer) -> DistillDataset`, and whose queries they are (`provenance`; a str:
    the name of the data set whose queries the loaded data holds; None: named by the loaded data's source)."""

    load: Callable[[InRankerTrainer], DistillDataset]
    provenance: TrainingQueries | str | None = None


@RECIPE.training_step
def train_student(cfg: InRankerConfig, stage: Stage, method: str, init: str, data: StudentData,
                  dev: DevSlice | None, options: dict | None = None, results_dir=None) -> Student:
    """Distil `data` into `init` (a student name or a checkpoint folder) with `stage`'s settings; with `dev`, select
    the checkpoint (the start included) on dev nDCG@10. The run folder is keyed by the data and every setting, so a
    re-run resumes or finds it complete. With `cfg.launch`, every stage first trains under accelerate launch (with
    `results_dir`'s first-stage runs)."""
    trainer = InRankerTrainer.from_config(
        init, stage.train, max_length=cfg.max_length, center_labels=stage.center_labels,
        decoder_learning_rate=stage.decoder_learning_rate, eval_batch_size=cfg.eval_batch_size,
        student_options=options)
    dataset = data.load(trainer)
    settings = {"init": str(init), "options": options, "stage": snapshot(stage), "max_length": cfg.max_length,
                "dev": sorted(dev.candidates) if dev else []}
    folder = run_dir(PIPELINE, cfg.profile, method, data=[dataset.input_ids, dataset.labels.tolist()],
                     settings=settings)
    trainer.config = replace(trainer.config, output_dir=str(folder))
    evaluator = None
    if dev is not None:
        teacher_tau = (lambda run: {"teacher_tau": kendall_tau_agreement(run, dev.teacher)}) if dev.teacher else None
        evaluator = DevEvaluator.reranking(
            EvalSet.of(dev.data, dev.candidates, depth=max(map(len, dev.candidates.values()))),
            as_ranker=trainer.as_ranker, extra=teacher_tau)
    selected = trainer.train(dataset, dev=evaluator)
    provenance = data.provenance
    if provenance is None or isinstance(provenance, str):
        provenance = TrainingQueries.of(provenance or dataset.source, dataset.query_texts)
    return Student(method, selected, provenance, dev, dataset.summary(),
                   params={**snapshot(stage), "init": str(init), "selected_step": selected.step,
                           "steps": selected.result.global_step}, seed=stage.train.seed if cfg.seeds else None)


def stage1(cfg: InRankerConfig, folds: Mapping[str, Fold] | None, student: str | None = None,
           stage: str = "stage1", results_dir=None) -> dict[str, list[Student]]:
    """{train_on: [student per training seed]}: `student` (default cfg.student) trained with the settings of
    `stage` (a Stage of the config: stage1, ablation) on each DL fold from its untrained start. With the published
    MS MARCO soft labels (paper profile) one student serves both DL years (its queries are MS MARCO train queries,
    disjoint from both)."""
    out: dict[str, list[Student]] = {}
    for seeded in RECIPE.seeded(cfg):
        for train_on, trained in stage1_seed(seeded, folds, student or cfg.student, stage, results_dir).items():
            out.setdefault(train_on, []).append(trained)
    return out


def stage1_seed(cfg: InRankerConfig, folds: Mapping[str, Fold] | None, student: str, stage: str,
                results_dir) -> dict[str, Student]:
    """stage1's run of one training seed (`cfg`'s stage seed): {train_on: student}."""
    method, options, settings = f"{short_name(student)}-stage1", student_options(cfg, student), getattr(cfg, stage)
    if cfg.stage1_data == "published":
        trained = train_student(cfg, settings, method, student,
                                StudentData(lambda tr: tr.load_msmarco_dataset(), "msmarco/train"), None, options,
                                results_dir=results_dir)
        return {"trec-dl-2020": trained, "trec-dl-2019": trained}
    out = {}
    for train_on, fold in (folds or {}).items():
        full = load_dataset(train_on, "test", root=cfg.data_root)
        out[train_on] = train_student(
            cfg, settings, method, student,
            StudentData(lambda tr, f=fold, ds=full: tr.load_msmarco_dataset(f.labels_file, queries=ds.queries,
                                                                             corpus=ds.corpus), fold.split.provenance),
            fold.dev, options, results_dir=results_dir)
    return out


def ablation(cfg: InRankerConfig, folds: Mapping[str, Fold] | None, results_dir=None) -> list[Student] | None:
    """The ablation student (offline: a T5 from config), stage 1 on the stage2_from fold only, per training seed."""
    if not cfg.ablation_student:
        return None
    one_fold = None if folds is None else {cfg.stage2_from: folds[cfg.stage2_from]}
    return stage1(cfg, one_fold, cfg.ablation_student, "ablation", results_dir)[cfg.stage2_from]
