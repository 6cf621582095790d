"""InRanker's stage 2: synthetic SciFact queries labelled by the teacher, and the student trained on them."""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import pandas as pd

from ...data import TrainingQueries, load_dataset
from ...data.trec import qid_order, top_k
from ...data.types import Run
from ...first_stage import BM25Index
from ...inranker import Calibration, soft_label_examples, write_custom_jsonl
from ...paths import cache_dir
from ...rerankers.monot5 import T5Ranker
from ...synthetic_queries import generate_queries, sample_documents, sample_negatives
from ...teacher import teacher_scores
from ...experiment import Timer, TrainingSplit, load_run, scifact_training_split
from .data import _calibrate, saved_teacher
from .settings import InRankerConfig
from .student import Student
from .training import _centre, _short, train_student


@dataclass
class Synthetic:
    queries: pd.DataFrame | None  # doc_id, query, mean_logprob, kept (None: the published file)
    labels_file: Path | None
    calibration: Calibration | None
    provenance: TrainingQueries | None
    split: TrainingSplit  # SciFact train: calibration (train part) and checkpoint selection (dev slice)
    dev_candidates: Run
    dev_teacher: Run | None
    wall_s: float

    def examples_table(self, n: int = 8) -> pd.DataFrame:
        return pd.DataFrame() if self.queries is None else self.queries.head(n)


def _scifact_dev(cfg: InRankerConfig, results_dir):
    train_run = load_run(results_dir, cfg.profile, "scifact", "train", "bm25")
    split = scifact_training_split(cfg.data_root, seed=cfg.seed, restrict_to=list(train_run))
    dev_ids = sorted(split.dev.queries, key=qid_order)[: cfg.scifact_dev_queries or None]
    split = TrainingSplit(train=split.train, dev=split.dev.subset(dev_ids), provenance=split.provenance)
    return split, train_run, top_k({q: train_run[q] for q in split.dev.queries}, cfg.scifact_depth)


def synthetic_data(cfg: InRankerConfig, results_dir) -> Synthetic:
    """InPars-style queries for SciFact documents, 9 BM25 negatives each from the top-1000, the teacher's scores
    mapped to logits by a calibration fitted on SciFact TRAIN queries with the same candidate depth, written in the
    custom jsonl format. Never reads a SciFact test query or judgment. (paper profile: the published file.)"""
    with Timer() as t:
        split, train_run, dev_candidates = _scifact_dev(cfg, results_dir)
        corpus = load_dataset("scifact", "test", root=cfg.data_root).corpus  # the BEIR corpus (shared by splits)
        dev_teacher = None
        if cfg.teacher_model is None:
            dev_full = saved_teacher(cfg, results_dir, "scifact", "train", cfg.scifact_teacher,
                                     top_k({q: train_run[q] for q in split.dev.queries}, cfg.teacher_depth), corpus,
                                     split.dev.queries)
            dev_teacher = {q: {d: dev_full[q][d] for d in dev_candidates[q]} for q in dev_candidates}
        if cfg.stage2_data == "published":
            return Synthetic(None, None, None, None, split, dev_candidates, dev_teacher, t.s)
        doc_ids = sample_documents(corpus, cfg.n_synthetic, seed=cfg.seed)
        if cfg.generator == "title":  # smoke: no LLM
            rows = [{"doc_id": d, "query": corpus[d].title or corpus[d].text[:80], "mean_logprob": 0.0} for d in doc_ids]
        else:
            rows = [{"doc_id": s.doc_id, "query": s.query, "mean_logprob": s.mean_logprob, "raw": s.raw}
                    for s in generate_queries(corpus, doc_ids, model=cfg.generator,
                                              max_doc_tokens=cfg.generator_max_doc_tokens,
                                              max_new_tokens=cfg.generator_max_new_tokens)]
        frame = pd.DataFrame(rows)
        frame["title"] = [corpus[d].title for d in frame["doc_id"]]
        frame["kept"] = frame["query"].notna()
        if cfg.keep_fraction < 1.0:
            cut = frame.loc[frame["kept"], "mean_logprob"].quantile(1.0 - cfg.keep_fraction)
            frame["kept"] &= frame["mean_logprob"] >= cut
        kept = frame[frame["kept"]]
        queries = {f"syn-{d}": q for d, q in zip(kept["doc_id"], kept["query"])}
        positives = {f"syn-{d}": d for d in kept["doc_id"]}
        index = BM25Index.build(corpus, k1=0.9, b=0.4)  # 01_first_stage's settings
        ranking = index.search(queries, k=cfg.negatives_depth)
        # The teacher scores each query's whole top-k list (plus its source document): fusion scores depend on ranks.
        lists = {q: {**ranking.get(q, {}), **sample_negatives(ranking, {q: positives[q]}, 0)[q]} for q in queries}
        chosen = sample_negatives(ranking, positives, cfg.negatives, seed=cfg.seed)
        if cfg.teacher_model is not None:  # a monoT5 teacher: its own logits, no calibration
            examples, calibration = _monot5_teacher_examples(cfg, chosen, queries, corpus), None
        else:
            teacher = teacher_scores(cfg.scifact_teacher, lists, corpus, queries, depth=cfg.negatives_depth + 1)
            # Calibration: train-part SciFact queries, the same teacher over the same candidate depth.
            cal_ids = sorted(split.train.queries, key=qid_order)
            random.Random(cfg.seed).shuffle(cal_ids)
            cal_queries = {q: split.train.queries[q] for q in cal_ids[: cfg.calibration_queries]}
            cal_teacher = teacher_scores(cfg.scifact_teacher, index.search(cal_queries, k=cfg.negatives_depth), corpus,
                                         cal_queries, depth=cfg.negatives_depth)
            calibration = _calibrate(cfg.scifact_teacher, cal_teacher, split.train.qrels, 1,
                                     f"scifact/train ({len(cal_queries)} train-part q, BM25 top-{cfg.negatives_depth})")
            examples = soft_label_examples({q: {d: teacher[q][d] for d in chosen[q]} for q in chosen}, calibration,
                                           queries, corpus)
        path = cache_dir("inranker", cfg.profile) / f"stage2_scifact_{_short(cfg.generator)}_{len(queries)}q.jsonl"
        write_custom_jsonl(path, examples)
    provenance = TrainingQueries.of("scifact/synthetic", queries) | split.provenance
    return Synthetic(frame, path, calibration, provenance, split, dev_candidates, dev_teacher, t.s)


def _monot5_teacher_examples(cfg: InRankerConfig, pairs: Run, queries, corpus):
    from ...inranker import DistillExample

    teacher = T5Ranker(cfg.teacher_model, batch_size=cfg.eval_batch_size, max_length=512)
    flat = [(q, d) for q in pairs for d in pairs[q]]
    logits = teacher.pair_logits([queries[q] for q, _ in flat], [corpus[d].text_for_model for _, d in flat])
    return [DistillExample(queries[q], corpus[d].text_for_model, float(f), float(t_), q, d)
            for (q, d), (f, t_) in zip(flat, logits.tolist())]


def stage2(cfg: InRankerConfig, stage1_students: Mapping[str, Student], synth: Synthetic) -> Student:
    """Continue from the stage-1 student of `stage2_from` on the target-domain soft labels; select on SciFact dev."""
    start = stage1_students[cfg.stage2_from]
    corpus = load_dataset("scifact", "test", root=cfg.data_root).corpus
    lr = cfg.stage2_learning_rate or cfg.learning_rate
    dlr = cfg.decoder_learning_rate and cfg.decoder_learning_rate * lr / cfg.learning_rate
    if synth.labels_file is None:  # the published BEIR soft labels
        loader = lambda tr: tr.load_custom_dataset(center_labels=_centre(cfg, 2))  # noqa: E731
        provenance = None
    else:
        loader = lambda tr: tr.load_custom_dataset(synth.labels_file, center_labels=_centre(cfg, 2))  # noqa: E731
        provenance = start.provenance | synth.provenance
    student = train_student(cfg, f"{_short(cfg.student)}-stage2", str(start.model_dir), loader, synth.split.dev,
                            synth.dev_candidates, synth.dev_teacher, provenance, corpus, learning_rate=lr,
                            decoder_learning_rate=dlr, epochs=cfg.stage2_epochs, source="beir/inpars-v1 synthetic")
    if provenance is None:
        student.provenance = start.provenance | student.provenance | synth.split.provenance
    student.params["init"] = f"{start.method} (its best dev checkpoint)"  # not the cache path: the table names it
    return student
