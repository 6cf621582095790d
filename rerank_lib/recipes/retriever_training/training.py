"""Training one LocalRQA trainer (CTL, DCA or RPG) through experiment.train_with_dev_selection, and the frozen
reader DCA and RPG distil from."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ...data import own_training
from ...data.types import Run
from ...experiment import (
    DevEvaluator, RunName, Selected, Timer, curve_table, sample_items, save_run, train_encoder_in_run_dir,
)
from ...first_stage import dense_search
from ...retrievers.ctl import CTLCollator, CTLConfig, ctl_compute_loss
from ...retrievers.dca import (
    DCACollator, DCAConfig, build_candidates, dca_compute_loss, reader_agreement, reader_targets,
)
from ...retrievers.rpg import RPGConfig, RPGObjective, rpg_collate
from ...retrievers.readers import shared_reader
from ...retrievers.training import examples_from_localrqa, retrieve
from ...settings import snapshot
from .settings import FAIRE, METHODS, OWN_FILE, RECIPE, FaireConfig, FaireData, encoder, short_name


@dataclass
class Outcome:
    """A trained retriever: the dev-selected checkpoint (step 0 = the start model) and its runs."""

    method: str
    selected: Selected
    runs: dict[str, Run]  # eval / test (SciFact: dev / test) runs of the selected checkpoint
    wall_s: float
    params: dict
    details: dict = dataclasses.field(default_factory=dict)
    encoder: Any = None  # the BiEncoder holding the selected weights (published with its records)
    seed: int | None = None  # its training seed, when it is one of several (`seeds`)

    @property
    def label(self) -> str:
        """The method, with its training seed when it is one of several ('ctl seed 14')."""
        return self.method if self.seed is None else f"{self.method} seed {self.seed}"

    def report(self, metric: str = "recall@4") -> str:
        """The dev curve (step 0: the start), the selection, and what the trainer measured on its data."""
        lines = [curve_table({self.label: self.selected}, metric=metric).to_string(), self.selected.describe()]
        return "\n".join(lines + [f"{DETAILS[key]}: {value}" for key, value in self.details.items()])


#: what a trainer measures on its training data: how often the reader's attention alone ranks the gold passage
#: first (DCA), index refreshes, gold insertions and (question, passage) pairs scored (RPG)
DETAILS = {"reader_agreement": "reader agreement", "rpg_stats": "rpg stats"}


def reader_for(cfg: FaireConfig, method: str):
    """The frozen reader (shared by DCA and RPG when they name the same model)."""
    name = cfg.rpg_reader if method == "rpg" and cfg.rpg_reader else cfg.reader
    return shared_reader(name, cfg.reader_fid and method == "dca", cfg.reader_passage_tokens, cfg.reader_answer_tokens)


def _trainer(cfg: FaireConfig, data: FaireData, method: str, enc, details: dict):
    """(dataset, collate_fn, compute_loss, params) of one LocalRQA trainer."""
    documents = {d: doc.text_for_model for d, doc in data.corpus.items()}
    examples = examples_from_localrqa(data.train)
    if method == "ctl":
        ctl = CTLConfig(cfg.ctl_hard_neg_ratio, cfg.ctl_temperature)
        return examples, CTLCollator(enc, documents, ctl, cfg.seed), ctl_compute_loss(enc, ctl), dataclasses.asdict(ctl)
    if method == "dca":
        dca = DCAConfig(cfg.dca_n_context, cfg.dca_reader_temperature, cfg.dca_boost_gold, cfg.dca_score_scale)
        chosen = sample_items(examples, cfg.dca_questions, cfg.seed)
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
    return sample_items(examples, cfg.rpg_questions, cfg.seed), rpg_collate, loss, params


@RECIPE.training_step
def train_faire(cfg: FaireConfig, data: FaireData, method: str, results_dir) -> Outcome:
    """Train one LocalRQA trainer from the zero-shot encoder, select its checkpoint on eval (LocalRQA's recall@4;
    the start is a candidate), and retrieve for eval and test with it."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    enc = encoder(cfg)
    details: dict[str, Any] = {}
    train = {"ctl": cfg.ctl_train, "dca": cfg.dca_train, "rpg": cfg.rpg_train}[method]
    others = tuple(f"{m}_" for m in METHODS if m != method) + (("reader", "rpg_reader") if method == "ctl" else ())
    key = {k: v for k, v in own_training.without_unset(snapshot(cfg), OWN_FILE).items()
           if k not in ("methods", "profile", "launch", "seeds") and not k.startswith(others)}  # the stage seed: in train
    with Timer() as t:
        dataset, collate, loss, params = _trainer(cfg, data, method, enc, details)
        dev = DevEvaluator.retrieval(enc, data.eval.corpus, data.eval.queries, data.eval.qrels, cfg.depth)
        sel = train_encoder_in_run_dir(enc, dataset, collate, loss, train, dev, RunName(
            "retriever_training", cfg.profile, f"{FAIRE}-{method}", {**key, "method": method}))
        runs = {"eval": sel.dev_run, "test": retrieve(enc, data.test.corpus, data.test.queries, cfg.depth)}
    if not cfg.seeds or train.seed == cfg.seeds[0]:  # one saved run per row: the first seed's
        save_run(runs["test"], results_dir, cfg.profile, FAIRE, "test", f"{method}-{short_name(cfg.model)}")
    params = {"trainer": method, **params, "train": snapshot(train), "examples": len(dataset),
              "selected_step": sel.step, "selected_is_start": sel.is_start}
    return Outcome(method, sel, runs, t.s, params, details, enc)


def train_selected(cfg: FaireConfig, data: FaireData, method: str, results_dir, outcomes: list) -> list[Outcome]:
    """Notebook 40's step per trainer: `method` trained (train_faire) once per training seed (`seeds`; else its
    stage's seed) and appended to `outcomes` when `cfg.methods` selects it; its outcomes (none when it does not)."""
    if method not in cfg.methods:
        return []
    configs = RECIPE.seeded(cfg)
    several = len(configs) > 1
    mine = [dataclasses.replace(train_faire(seeded, data, method, results_dir),
                                seed=getattr(seeded, f"{method}_train").seed if several else None) for seeded in configs]
    outcomes.extend(mine)
    return mine
