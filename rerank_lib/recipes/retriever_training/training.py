"""Training one LocalRQA trainer (CTL, DCA or RPG) on faire, and the frozen reader DCA and RPG distil from."""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ...data.types import Run
from ...first_stage import dense_search
from ...retrievers.ctl import CTLCollator, CTLConfig, ctl_compute_loss
from ...retrievers.dca import DCACollator, DCAConfig, FiDReader, build_candidates, dca_compute_loss, reader_targets
from ...retrievers.rpg import RPGConfig, RPGObjective, rpg_collate
from ...retrievers.training import (
    LMReader,
    RetrievalEvaluator,
    RetrievalExample,
    examples_from_localrqa,
    load_weights,
)
from ...training import TrainConfig, train
from ...experiment import Timer, save_run
from .baselines import Baselines
from .faire_data import FaireData
from .settings import FAIRE, METHODS, FaireConfig, _checkpoint_dir, encoder


@dataclass
class Outcome:
    """A trained retriever: its training result, its curve (step 0 = the start model), its runs."""

    method: str
    result: Any  # TrainResult
    curve: pd.DataFrame
    runs: dict[str, Run]  # eval / test runs of the best checkpoint
    wall_s: float
    params: dict
    details: dict = dataclasses.field(default_factory=dict)


def _train_config(cfg, output_dir: Path, lr: float, batch_size: int, epochs: int, max_steps, eval_every) -> TrainConfig:
    return TrainConfig(
        output_dir=str(output_dir), seed=cfg.seed, learning_rate=lr, num_epochs=epochs, max_steps=max_steps,
        per_device_batch_size=batch_size, warmup_ratio=cfg.warmup_ratio, lr_scheduler=cfg.lr_scheduler,
        weight_decay=cfg.weight_decay, mixed_precision=cfg.mixed_precision, save_every_steps=eval_every,
        keep_last_checkpoints=1, log_every_steps=1, eval_every_steps=eval_every, metric_for_best=cfg.metric_for_best,
        greater_is_better=True, save_best=True, resume=cfg.resume)


def _curve(start_eval: Mapping[str, float], result) -> pd.DataFrame:
    rows = [{"step": 0, **start_eval}] + [{k: v for k, v in r.items() if k not in ("kind", "epoch")}
                                          for r in result.eval_history]
    return pd.DataFrame(rows).drop_duplicates("step", keep="last").set_index("step")


_READERS: dict[tuple, Any] = {}


def reader_for(cfg: FaireConfig, method: str):
    """The frozen reader (loaded once per process and shared by DCA and RPG when they name the same model)."""
    name = cfg.rpg_reader if method == "rpg" and cfg.rpg_reader else cfg.reader
    fid = cfg.reader_fid and method == "dca"
    key = (name, fid, cfg.reader_passage_tokens, cfg.reader_answer_tokens)
    if key not in _READERS:
        if fid:
            _READERS[key] = FiDReader(name, text_maxlength=cfg.reader_passage_tokens)
        else:
            shared = next((r for k, r in _READERS.items() if k[0] == name and not k[1]), None)
            _READERS[key] = LMReader(name, max_passage_tokens=cfg.reader_passage_tokens,
                                     max_answer_tokens=cfg.reader_answer_tokens,
                                     model=shared.model if shared else None,
                                     tokenizer=shared.tokenizer if shared else None)
    return _READERS[key]


def _subset(examples: list[RetrievalExample], n: int | None, seed: int) -> list[RetrievalExample]:
    """The first n examples of a seeded shuffle (the reader-distilled trainers use a budgeted subset)."""
    if not n or n >= len(examples):
        return examples
    import random

    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    return [examples[i] for i in sorted(order[:n])]


def train_faire(cfg: FaireConfig, data: FaireData, method: str, base: Baselines, results_dir) -> Outcome:
    """Train one LocalRQA trainer from the zero-shot encoder; keep the best eval checkpoint; run eval and test."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    enc = encoder(cfg)
    documents = {d: doc.text_for_model for d, doc in data.corpus.items()}
    examples = examples_from_localrqa(data.train)
    evaluator = RetrievalEvaluator(enc, data.eval.corpus, data.eval.queries, data.eval.qrels, depth=cfg.depth)
    details: dict[str, Any] = {}
    with Timer() as t:
        if method == "ctl":
            ctl = CTLConfig(cfg.ctl_hard_neg_ratio, cfg.ctl_temperature)
            params = {"trainer": "ctl", **asdict(ctl)}
            dataset, collate, loss = examples, CTLCollator(enc, documents, ctl, cfg.seed), ctl_compute_loss(enc, ctl)
            tcfg = (cfg.ctl_lr, cfg.ctl_batch_size, cfg.ctl_epochs, cfg.ctl_max_steps, cfg.ctl_eval_every)
        elif method == "dca":
            dca = DCAConfig(cfg.dca_n_context, cfg.dca_reader_temperature, cfg.dca_boost_gold, cfg.dca_score_scale)
            params = {"trainer": "dca", **asdict(dca), "reader": cfg.reader, "questions": cfg.dca_questions}
            chosen = _subset(examples, cfg.dca_questions, cfg.seed)
            first_stage = dense_search(enc, data.corpus, {ex.qid: ex.question for ex in chosen},
                                       k=cfg.dca_n_context + 8)
            candidates = {ex.qid: build_candidates(ex, first_stage, cfg.dca_n_context) for ex in chosen}
            titles = {d: c.title for d, c in data.raw.chunks.items()}  # FiD's "title: t context: p" inputs
            dataset = reader_targets(reader_for(cfg, "dca"), chosen, candidates, data.passages, dca, seed=cfg.seed,
                                     titles=titles)
            details["reader_agreement"] = reader_agreement(dataset)
            collate, loss = DCACollator(enc, documents), dca_compute_loss(enc, dca)
            tcfg = (cfg.dca_lr, cfg.dca_batch_size, cfg.dca_epochs, cfg.dca_max_steps, cfg.dca_eval_every)
        else:
            rpg = RPGConfig(cfg.rpg_num_docs, cfg.rpg_refresh_every, cfg.rpg_lm_temperature,
                            cfg.rpg_retrieve_temperature)
            params = {"trainer": "rpg", **asdict(rpg), "reader": cfg.rpg_reader or cfg.reader,
                      "questions": cfg.rpg_questions}
            dataset = _subset(examples, cfg.rpg_questions, cfg.seed)
            loss = RPGObjective(enc, reader_for(cfg, "rpg"), data.corpus, data.passages, rpg)
            collate = rpg_collate
            tcfg = (cfg.rpg_lr, cfg.rpg_batch_size, cfg.rpg_epochs, cfg.rpg_max_steps, cfg.rpg_eval_every)
            details["rpg_stats"] = loss.stats
        out_dir = _checkpoint_dir(cfg, FAIRE, method, len(dataset))
        batch = min(tcfg[1], len(dataset))
        result = train(enc.model, dataset, collate, loss, _train_config(cfg, out_dir, tcfg[0], batch, *tcfg[2:]),
                       eval_fn=evaluator)
        if result.best_dir is not None:
            load_weights(enc, result.best_dir)
            enc.tokenizer.save_pretrained(result.best_dir)
        runs = {split: RetrievalEvaluator(enc, ds.corpus, ds.queries, ds.qrels, depth=cfg.depth).run()
                for split, ds in (("eval", data.eval), ("test", data.test))}
    save_run(runs["test"], results_dir, cfg.profile, FAIRE, "test", f"{method}-{_short(cfg.model)}")
    params.update(lr=tcfg[0], batch_size=batch, epochs=tcfg[2], max_steps=tcfg[3], eval_every=tcfg[4],
                  examples=len(dataset), best_step=result.best_step)
    return Outcome(method, result, _curve(base.start_eval, result), runs, t.s, params, details)


def reader_agreement(examples) -> dict[str, float]:
    """How often the reader's own score (before LocalRQA's gold boost) ranks the gold passage first, against the
    chance rate: evidence of whether the reader's attention carries any relevance signal."""
    firsts = [float(max(range(len(ex.reader_raw)), key=lambda i: ex.reader_raw[i]) == 0) for ex in examples]
    k = len(examples[0].doc_ids) if examples else 1
    return {"gold_first_rate": sum(firsts) / max(1, len(firsts)), "chance": 1.0 / k, "questions": len(firsts)}


def _short(model: str) -> str:
    return {"minilm-l6": "minilm"}.get(model, model.strip("/").split("/")[-1])


def start_method(cfg) -> str:
    """The record name of the zero-shot start point."""
    return f"{_short(cfg.model)}-zero-shot"
