"""Training one LocalRQA trainer (CTL, DCA or RPG) through experiment.train_with_dev_selection, and the frozen
reader DCA and RPG distil from."""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, replace
from typing import Any, Sequence

from ...data.types import Run
from ...experiment import DevEvaluator, Selected, Timer, run_dir, save_run, train_with_dev_selection
from ...experiment.launch import train_launched
from ...first_stage import dense_search
from ...retrievers.ctl import CTLCollator, CTLConfig, ctl_compute_loss
from ...retrievers.dca import DCACollator, DCAConfig, FiDReader, build_candidates, dca_compute_loss, reader_targets
from ...retrievers.rpg import RPGConfig, RPGObjective, rpg_collate
from ...retrievers.training import LMReader, document_recalls, examples_from_localrqa, load_weights, retrieve
from ...settings import snapshot
from ...training import TrainConfig
from .faire_data import FaireData
from .settings import FAIRE, METHODS, FaireConfig, config, encoder, short_name


@dataclass
class Outcome:
    """A trained retriever: the dev-selected checkpoint (step 0 = the start model) and its runs."""

    method: str
    selected: Selected
    runs: dict[str, Run]  # eval / test (SciFact: dev / test) runs of the selected checkpoint
    wall_s: float
    params: dict
    details: dict = dataclasses.field(default_factory=dict)


def retrieval_dev(enc, ds, depth: int, candidates: Run | None = None, ks=(1, 4), measures=("nDCG@10",)) -> DevEvaluator:
    """The dev evaluator of the retriever recipes: retrieve for `ds`'s questions with the encoder under training
    (whole corpus, or reranking `candidates`), scored with `measures` and LocalRQA's document recall@k."""
    return DevEvaluator(lambda _model: retrieve(enc, ds.corpus, ds.queries, depth, candidates), ds.qrels, measures,
                        extra=(lambda run: document_recalls(run, ds.qrels, ks)) if ks else None)


def train_selected(enc, dataset: Sequence, collate, loss, train: TrainConfig, dev: DevEvaluator, *, profile: str,
                   name: str, settings: dict) -> Selected:
    """Train the encoder's transformer in its run folder (named by the settings, the number of examples and the
    dev questions), then load the dev-selected weights (the start's when step 0 won) into the encoder, with its
    tokenizer beside them."""
    folder = run_dir("retriever_training", profile, name, data={"examples": len(dataset), "dev": sorted(dev.qrels)},
                     settings={**settings, "train": snapshot(train)})
    train = replace(train, output_dir=str(folder), per_device_batch_size=min(train.per_device_batch_size, len(dataset)))

    def load_selected(model_dir):
        load_weights(enc, model_dir)
        return enc.model

    sel = train_with_dev_selection(enc.model, dataset, collate, loss, train, dev, load_selected=load_selected)
    load_selected(sel.model_dir)
    enc.tokenizer.save_pretrained(sel.model_dir)
    return sel


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


def _subset(examples: list, n: int | None, seed: int) -> list:
    """The first n examples of a seeded shuffle (the reader-distilled trainers use a budgeted subset)."""
    if not n or n >= len(examples):
        return examples
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    return [examples[i] for i in sorted(order[:n])]


def _trainer(cfg: FaireConfig, data: FaireData, method: str, enc, details: dict):
    """(dataset, collate_fn, compute_loss, params) of one LocalRQA trainer."""
    documents = {d: doc.text_for_model for d, doc in data.corpus.items()}
    examples = examples_from_localrqa(data.train)
    if method == "ctl":
        ctl = CTLConfig(cfg.ctl_hard_neg_ratio, cfg.ctl_temperature)
        return examples, CTLCollator(enc, documents, ctl, cfg.seed), ctl_compute_loss(enc, ctl), dataclasses.asdict(ctl)
    if method == "dca":
        dca = DCAConfig(cfg.dca_n_context, cfg.dca_reader_temperature, cfg.dca_boost_gold, cfg.dca_score_scale)
        chosen = _subset(examples, cfg.dca_questions, cfg.seed)
        first_stage = dense_search(enc, data.corpus, {ex.qid: ex.question for ex in chosen}, k=cfg.dca_n_context + 8)
        candidates = {ex.qid: build_candidates(ex, first_stage, cfg.dca_n_context) for ex in chosen}
        titles = {d: c.title for d, c in data.raw.chunks.items()}  # FiD's "title: t context: p" inputs
        dataset = reader_targets(reader_for(cfg, "dca"), chosen, candidates, data.passages, dca, seed=cfg.seed,
                                 titles=titles)
        details["reader_agreement"] = reader_agreement(dataset)
        params = {**dataclasses.asdict(dca), "reader": cfg.reader, "questions": cfg.dca_questions}
        return dataset, DCACollator(enc, documents), dca_compute_loss(enc, dca), params
    rpg = RPGConfig(cfg.rpg_num_docs, cfg.rpg_refresh_every, cfg.rpg_lm_temperature, cfg.rpg_retrieve_temperature)
    loss = RPGObjective(enc, reader_for(cfg, "rpg"), data.corpus, data.passages, rpg)
    details["rpg_stats"] = loss.stats
    params = {**dataclasses.asdict(rpg), "reader": cfg.rpg_reader or cfg.reader, "questions": cfg.rpg_questions}
    return _subset(examples, cfg.rpg_questions, cfg.seed), rpg_collate, loss, params


def train_faire(cfg: FaireConfig, data: FaireData, method: str, results_dir) -> Outcome:
    """Train one LocalRQA trainer from the zero-shot encoder, select its checkpoint on eval (LocalRQA's recall@4;
    the start is a candidate), and retrieve for eval and test with it."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    enc = encoder(cfg)
    details: dict[str, Any] = {}
    train = {"ctl": cfg.ctl_train, "dca": cfg.dca_train, "rpg": cfg.rpg_train}[method]
    others = tuple(f"{m}_" for m in METHODS if m != method) + (("reader", "rpg_reader") if method == "ctl" else ())
    key = {k: v for k, v in snapshot(cfg).items()
           if k not in ("methods", "profile", "launch") and not k.startswith(others)}
    train_launched("retriever", cfg, config, results_dir)  # with cfg.launch: every method trains in N processes first
    with Timer() as t:
        dataset, collate, loss, params = _trainer(cfg, data, method, enc, details)
        dev = retrieval_dev(enc, data.eval, cfg.depth)
        sel = train_selected(enc, dataset, collate, loss, train, dev, profile=cfg.profile, name=f"{FAIRE}-{method}",
                             settings={**key, "method": method})
        runs = {"eval": sel.dev_run, "test": retrieve(enc, data.test.corpus, data.test.queries, cfg.depth)}
    save_run(runs["test"], results_dir, cfg.profile, FAIRE, "test", f"{method}-{short_name(cfg.model)}")
    params = {"trainer": method, **params, "train": snapshot(train), "examples": len(dataset),
              "selected_step": sel.step, "selected_is_start": sel.is_start}
    return Outcome(method, sel, runs, t.s, params, details)


def reader_agreement(examples) -> dict[str, float]:
    """How often the reader's own score (before LocalRQA's gold boost) ranks the gold passage first, against the
    chance rate: evidence of whether the reader's attention carries any relevance signal."""
    firsts = [float(max(range(len(ex.reader_raw)), key=lambda i: ex.reader_raw[i]) == 0) for ex in examples]
    k = len(examples[0].doc_ids) if examples else 1
    return {"gold_first_rate": sum(firsts) / max(1, len(firsts)), "chance": 1.0 / k, "questions": len(firsts)}
