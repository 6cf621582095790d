"""The training data of one fold: teacher-ordered conversations from the training year and a SciFact train
sample, their provenance, and the dev slices that choose checkpoints and interpolation weights."""
from __future__ import annotations

import random
from dataclasses import dataclass

from ...data import TrainingQueries
from ...data.trec import top_k
from ...data.types import Dataset, Run
from ...listwise import build_conversations
from ...experiment import dl_training_split, load_run, scifact_training_split
from .evalsets import EvalSet
from .models import load_base_tokenizer, use_letters
from .settings import RankLLMConfig


@dataclass
class FoldData:
    train_on: str
    evaluate_on: str
    provenance: TrainingQueries
    conversations: list[dict]
    dev: dict[str, EvalSet]  # 'dl' and 'scifact' dev slices (BM25 top-depth), for checkpoints and interpolation

    def describe(self) -> str:
        n_q = len({c["qid"] + c["source"] for c in self.conversations})
        return (f"train on {self.provenance.describe()}: {len(self.conversations)} conversations from {n_q} queries; "
                f"dev {', '.join(f'{k} {len(v.top)} q' for k, v in self.dev.items())}; evaluate on {self.evaluate_on}")


def _dev_set(cfg: RankLLMConfig, ds: Dataset, bm25: Run, name: str) -> EvalSet:
    run = {q: bm25[q] for q in ds.queries if q in bm25}
    return EvalSet(ds.subset(sorted(run)), "dev", run, top_k(run, cfg.depth))


def fold_data(cfg: RankLLMConfig, train_on: str, evaluate_on: str, results_dir) -> FoldData:
    """Training conversations of one fold: the training year's train part and a SciFact train sample, each query's
    BM25 top-train_window ordered by the teacher, plus the variable-length subsets; dev slices of both sources."""
    bm25_dl = load_run(results_dir, cfg.profile, train_on, "test", "bm25")
    dl = dl_training_split(train_on, cfg.data_root, cfg.seed, restrict_to=bm25_dl)
    bm25_sf = load_run(results_dir, cfg.profile, "scifact", "train", "bm25")
    sf = scifact_training_split(cfg.data_root, cfg.seed, restrict_to=bm25_sf)
    rng = random.Random(cfg.seed)
    sf_train = sorted(sf.train.queries)
    if cfg.scifact_train_queries and cfg.scifact_train_queries < len(sf_train):
        sf_train = sorted(rng.sample(sf_train, cfg.scifact_train_queries))
    sf_dev = sorted(sf.dev.queries)[: cfg.dev_scifact_queries]
    alpha = use_letters(cfg, load_base_tokenizer(cfg, cfg.model))
    teacher_dl = load_run(results_dir, cfg.profile, train_on, "test", cfg.dl_teacher)
    teacher_sf = load_run(results_dir, cfg.profile, "scifact", "train", cfg.scifact_teacher)
    common = dict(window=cfg.train_window, max_words=cfg.train_max_words, alpha=alpha, n_variable=cfg.n_variable,
                  seed=cfg.seed, shuffle=cfg.shuffle_inputs)
    conversations = build_conversations(dl.train.queries, bm25_dl, teacher_dl, dl.train.corpus,
                                        source=f"{train_on}:", **common)
    conversations += build_conversations({q: sf.train.queries[q] for q in sf_train}, bm25_sf, teacher_sf,
                                         sf.train.corpus, source="scifact-train:", **common)
    # Provenance: every query the model or its selection saw (the DL year's train and dev parts, the SciFact sample
    # and its dev queries), so the row names what it actually used.
    provenance = dl.provenance | sf.used(sf_train, sf_dev)
    dev = {"dl": _dev_set(cfg, dl.dev, bm25_dl, train_on),
           "scifact": _dev_set(cfg, sf.dev.subset(sf_dev), bm25_sf, "scifact")}
    return FoldData(train_on, evaluate_on, provenance, conversations, dev)
