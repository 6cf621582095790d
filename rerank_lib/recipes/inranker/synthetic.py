"""InRanker's stage 2: synthetic SciFact queries labelled by the teacher (data: written once, the same for every
training seed), and the student trained on them from each seed's own stage-1 student."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from ...data import TrainingQueries
from ...data import own_training
from ...data.inranker import DistillExample, read_custom_jsonl, soft_label_examples, write_custom_jsonl
from ...data.pairs import TrainGroup
from ...data.trec import qid_order, top_k
from ...experiment import Timer, TrainingSplit, load_run, saved_teacher, scifact_training_split
from ...first_stage import BM25Index
from ...paths import cache_dir
from .trainer import monot5_teacher_examples
from ...synthetic_queries import filter_counts, query_table, sample_negatives
from ...teacher import Calibration, fit_calibration, teacher_scores
from .data import DevSlice
from .settings import RECIPE, InRankerConfig
from .training import Student, StudentData, short_name, train_student


@dataclass
class Synthetic:
    queries: pd.DataFrame | None  # doc_id, query, mean_logprob, n_tokens, kept (None: the published file)
    labels_file: Path | None
    calibration: Calibration | None
    provenance: TrainingQueries | None
    split: TrainingSplit  # SciFact train: calibration (train part) and checkpoint selection (dev slice)
    dev: DevSlice
    wall_s: float

    def examples_table(self, n: int = 8) -> pd.DataFrame:
        return pd.DataFrame() if self.queries is None else self.queries.head(n)

    @property
    def counts(self) -> dict:
        """InPars-v1's filter at work: queries generated, parsed and kept (empty: no queries were generated)."""
        return {} if self.queries is None else filter_counts(self.queries)


def scifact_dev(cfg: InRankerConfig, results_dir) -> tuple[TrainingSplit, DevSlice]:
    """SciFact train's split (its first scifact_dev_queries dev queries) and the dev slice with the teacher."""
    train_run = load_run(results_dir, cfg.profile, "scifact", "train", "bm25")
    split = scifact_training_split(cfg.data_root, seed=cfg.seed, restrict_to=list(train_run))
    dev = split.dev.subset(sorted(split.dev.queries, key=qid_order)[: cfg.scifact_dev_queries or None])
    split = TrainingSplit(train=split.train, dev=dev, provenance=split.provenance)
    candidates, teacher = top_k({q: train_run[q] for q in dev.queries}, cfg.scifact_depth), None
    if cfg.teacher_model is None:
        full = saved_teacher(results_dir, cfg.profile, "scifact", "train", cfg.scifact_teacher,
                             top_k({q: train_run[q] for q in dev.queries}, cfg.teacher_depth), dev.corpus, dev.queries)
        teacher = {q: {d: full[q][d] for d in candidates[q]} for q in candidates}
    return split, DevSlice(dev, candidates, teacher)


def synthetic_queries(cfg: InRankerConfig, corpus) -> pd.DataFrame:
    """InPars-v1 queries for sampled documents (smoke: their titles), `kept` by InPars-v1's filter."""
    llm = {} if cfg.generator == "title" else {"max_doc_tokens": cfg.generator_max_doc_tokens,
                                               "max_new_tokens": cfg.generator_max_new_tokens}
    return query_table(corpus, cfg.n_synthetic, cfg.seed, cfg.generator, keep_fraction=cfg.keep_fraction,
                       min_tokens=cfg.min_query_tokens, **llm)


def _file_dev(examples: list[DistillExample], name: str, seed: int) -> DevSlice:
    """Held-out soft labels as a dev set: each query's documents reranked, graded by the teacher's P(true) (grade
    round(10 p)), and the teacher's margin true - false as the run the student's agreement is measured on."""
    groups, margins = {}, {}
    for ex in examples:
        margin = ex.true_logit - ex.false_logit
        group = groups.setdefault(ex.query, TrainGroup(ex.query, [], [], n_pos=0))
        group.docs.append(ex.text)
        group.labels.append(1 / (1 + math.exp(-margin)))
        margins[ex.query, ex.text] = margin
    named = own_training.name_queries(list(groups.values()), name)
    ds, candidates = own_training.reranking_dataset(named, name, seed)
    teacher = {q: {d: margins[ds.queries[q], ds.corpus[d].text] for d in docs} for q, docs in candidates.items()}
    return DevSlice(ds, candidates, teacher)


def own_file_data(cfg: InRankerConfig) -> Synthetic:
    """`cfg.stage2_file` as stage 2's soft labels, its dev set `cfg.stage2_eval_file` or a seeded slice of its
    queries (held out: the training part is written beside the cache's other label files)."""
    with Timer() as t:
        path = own_training.existing(cfg.stage2_file)
        examples = read_custom_jsonl(path)
        if cfg.stage2_eval_file:
            train, dev = examples, read_custom_jsonl(own_training.existing(cfg.stage2_eval_file))
        else:
            train, dev = own_training.split_by_query(examples, seed=cfg.seed, key=lambda ex: ex.query)
        labels = write_custom_jsonl(cache_dir("inranker", cfg.profile) / f"stage2_own_{path.stem}_train.jsonl", train)
        dev_slice = _file_dev(dev, Path(cfg.stage2_eval_file or path).name, cfg.seed)  # its ids key the run folder
    provenance = TrainingQueries.of(f"file:{path.name}", {ex.query: ex.query for ex in [*train, *dev]})
    train_ds = _file_dev(train, path.name, cfg.seed).data
    return Synthetic(None, labels, None, provenance, TrainingSplit(train_ds, dev_slice.data, provenance), dev_slice,
                     t.s)


def synthetic_data(cfg: InRankerConfig, results_dir) -> Synthetic:
    """InPars-style queries for SciFact documents, 9 BM25 negatives each from the top-1000, the teacher's scores
    mapped to logits by a calibration fitted on SciFact TRAIN queries with the same candidate depth, written in the
    custom jsonl format. Never reads a SciFact test query or judgment. (paper profile: the published file.)"""
    if cfg.stage2_file:
        return own_file_data(cfg)
    with Timer() as t:
        split, dev = scifact_dev(cfg, results_dir)
        if cfg.stage2_data == "published":
            return Synthetic(None, None, None, None, split, dev, t.s)
        corpus = dev.data.corpus  # the BEIR corpus (shared by splits)
        frame = synthetic_queries(cfg, corpus)
        kept = frame[frame["kept"]]
        queries = {f"syn-{d}": q for d, q in zip(kept["doc_id"], kept["query"])}
        positives = {f"syn-{d}": d for d in kept["doc_id"]}
        index = BM25Index.build(corpus, k1=0.9, b=0.4)  # 01_first_stage's settings
        ranking = index.search(queries, k=cfg.negatives_depth)
        chosen = sample_negatives(ranking, positives, cfg.negatives, seed=cfg.seed)
        calibration = None
        if cfg.teacher_model is not None:  # a monoT5 teacher: its own logits, no calibration
            examples = monot5_teacher_examples(cfg.teacher_model, chosen, queries, corpus, cfg.eval_batch_size)
        else:  # the teacher scores each query's whole top-k (plus its document): fusion scores depend on ranks
            lists = {q: {**ranking.get(q, {}), **sample_negatives(ranking, {q: positives[q]}, 0)[q]} for q in queries}
            teacher = teacher_scores(cfg.scifact_teacher, lists, corpus, queries, depth=cfg.negatives_depth + 1)
            # Calibration: train-part SciFact queries, the same teacher over the same candidate depth.
            cal_ids = sorted(split.train.queries, key=qid_order)
            random.Random(cfg.seed).shuffle(cal_ids)
            cal_queries = {q: split.train.queries[q] for q in cal_ids[: cfg.calibration_queries]}
            cal_teacher = teacher_scores(cfg.scifact_teacher, index.search(cal_queries, k=cfg.negatives_depth), corpus,
                                         cal_queries, depth=cfg.negatives_depth)
            calibration = fit_calibration(cal_teacher, split.train.qrels, min_grade=1, teacher=cfg.scifact_teacher,
                                          fitted_on=f"scifact/train ({len(cal_queries)} train-part q, "
                                                    f"BM25 top-{cfg.negatives_depth})")
            examples = soft_label_examples({q: {d: teacher[q][d] for d in chosen[q]} for q in chosen}, calibration,
                                           queries, corpus)
        path = cache_dir("inranker", cfg.profile) / f"stage2_scifact_{short_name(cfg.generator)}_{len(queries)}q.jsonl"
        write_custom_jsonl(path, examples)
    provenance = TrainingQueries.of("scifact/synthetic", queries) | split.provenance
    return Synthetic(frame, path, calibration, provenance, split, dev, t.s)


def stage2(cfg: InRankerConfig, stage1_students: Mapping[str, Sequence[Student]], synth: Synthetic,
           results_dir=None) -> list[Student]:
    """Per training seed: continue from that seed's stage-1 student of `stage2_from` (its selected checkpoint) on
    the target-domain soft labels (the same for every seed); select on SciFact dev."""
    configs, starts = RECIPE.seeded(cfg), stage1_students[cfg.stage2_from]
    if [s.seed for s in starts] != [c.stage1.train.seed if cfg.seeds else None for c in configs]:
        raise ValueError(f"stage 2 continues each training seed's own stage-1 student: got stage-1 seeds "
                         f"{[s.seed for s in starts]} for seeds {list(cfg.seeds)} (train stage 1 with the same seeds)")
    return [stage2_seed(seeded, start, synth, results_dir) for seeded, start in zip(configs, starts)]


def stage2_seed(cfg: InRankerConfig, start: Student, synth: Synthetic, results_dir) -> Student:
    """stage2's run of one training seed (`cfg.stage2.train.seed`) from `start`, that seed's stage-1 student."""
    provenance = None if synth.labels_file is None else start.provenance | synth.provenance
    student = train_student(cfg, cfg.stage2, f"{short_name(cfg.student)}-stage2", str(start.model_dir),
                            StudentData(lambda tr: tr.load_custom_dataset(synth.labels_file),
                                        provenance or "beir/inpars-v1 synthetic"), synth.dev, results_dir=results_dir)
    if provenance is None:
        student.provenance = start.provenance | student.provenance | synth.split.provenance
    student.params["init"] = f"{start.method} (its selected dev checkpoint)"  # the table names it, not its path
    if synth.counts:
        student.params["synthetic_queries"] = synth.counts  # InPars' filter: generated, parsed, kept
    return student
