"""The retriever-training settings: faire's and SciFact's configs and profiles, faire's data, the encoder, the record
names."""
from __future__ import annotations

from dataclasses import dataclass, field

from ...data.localrqa import RetrieverSplits, file_splits, load_localrqa, retriever_splits
from ...retrievers.bi_encoder import BiEncoder
from ...training import TrainConfig
from ..recipe import Recipe, RecipeSettings

PIPELINE = "retriever"
FAIRE = "localrqa-faire"
METHODS = ("ctl", "dca", "rpg")
OWN_FILE = ("train_file", "eval_file")  # your own question files (records and run folders name them only when set)
FAIRE_MEASURES = ("recall@1", "recall@4", "nDCG@10")


@dataclass(frozen=True)
class FaireConfig(RecipeSettings):
    """Notebook 40: CTL, DCA and RPG on LocalRQA's faire example."""

    collection: str = "faire"
    launch: str | None = None  # an accelerate config (configs/accelerate/NAME.yaml): train under it
    documents: str | None = None  # a chunked documents JSONL as the corpus (default: every chunk the splits name)
    # LocalRQA question files of your own (train_w_q / _w_qa shape) to train on; faire's test stays the test set;
    # eval_file: the dev set (None: a seeded slice of train_file's questions)
    train_file: str | None = None
    eval_file: str | None = None
    methods: tuple[str, ...] = METHODS
    # the bi-encoder (start point of every trainer)
    model: str = "minilm-l6"
    pooling: str = "mean"
    normalize: bool = True
    max_length: int = 128
    query_prefix: str = ""
    doc_prefix: str = ""
    # data limits (smoke)
    max_train: int | None = None
    max_eval: int | None = None
    max_test: int | None = None
    restrict_corpus: bool = False  # only the chunks the used questions name (smoke)
    depth: int = 100  # documents kept per query in the saved runs
    # CTL (LocalRQA defaults: rho 0.05, tau 0.05, lr 1e-5, batch 256, 100 steps (paper profile: profiles cannot
    # set None); selection on eval recall@4)
    ctl_hard_neg_ratio: float = 0.05
    ctl_temperature: float = 0.05
    ctl_train: TrainConfig = field(default_factory=TrainConfig)
    # the reader DCA and RPG distil from
    reader: str = "smollm2-135m-instruct"
    reader_fid: bool = False  # True: a T5 reader used Fusion-in-Decoder style (google/flan-t5-*)
    rpg_reader: str | None = None  # None: the same reader as DCA
    reader_passage_tokens: int = 96
    reader_answer_tokens: int = 32
    # DCA (LocalRQA docs: n_context 50, reader temperature 0.1, lr 1e-5, batch 10)
    dca_questions: int | None = None  # training questions given to the reader (None: all)
    dca_n_context: int = 50
    dca_reader_temperature: float = 0.1
    dca_boost_gold: bool = True
    dca_score_scale: float | None = None  # None: 1/sqrt(d); 1/tau for a normalising encoder
    dca_train: TrainConfig = field(default_factory=TrainConfig)
    # RPG (LocalRQA docs: 20 docs, refresh every 10 steps, temperatures 0.1, batch 4)
    rpg_questions: int | None = None
    rpg_num_docs: int = 20
    rpg_refresh_every: int = 10
    rpg_lm_temperature: float = 0.1
    rpg_retrieve_temperature: float = 0.1
    rpg_train: TrainConfig = field(default_factory=TrainConfig)


def check(cfg: FaireConfig, overrides) -> FaireConfig:
    unknown = sorted(set(cfg.methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; known: {METHODS}")
    if cfg.eval_file and not cfg.train_file:
        raise ValueError("eval_file is the dev set of a train_file: give train_file too")
    return cfg


RECIPE = Recipe(PIPELINE, "40_retriever_training", FaireConfig, stages=tuple(f"{m}_train" for m in METHODS),
                flags={"model_name_or_path": "model"},
                steps=("load_faire", "faire_baselines", "train_selected", "faire_records", "faire_table"),
                check=check, multi_seed=True)
config = RECIPE.config


@dataclass(frozen=True)
class SciFactConfig(RecipeSettings):
    """Notebook 41: CTL on SciFact train (qrels + BM25 hard negatives), evaluated by dense retrieval on test."""

    launch: str | None = None  # an accelerate config (configs/accelerate/NAME.yaml): train under it
    model: str = "minilm-l6"
    pooling: str = "mean"
    normalize: bool = True
    max_length: int = 128
    query_prefix: str = ""
    doc_prefix: str = ""
    n_hard: int = 2  # BM25 hard negatives per query (LocalRQA's data has two per question)
    dev_fraction: float = 0.1
    dev_depth: int = 10  # the dev signal during training: reranking each dev query's BM25 top-dev_depth
    depth: int = 1000  # test: documents kept per query (as 01_first_stage)
    max_test: int | None = None  # smoke
    smoke_pool: int | None = None  # smoke: the test corpus is the BM25 top-N of each test query + judged docs
    hard_neg_ratio: float = 0.05
    temperature: float = 0.05
    train: TrainConfig = field(default_factory=TrainConfig)


#: faire's splits as the trainers read them
FaireData = RetrieverSplits


def load_faire(cfg: FaireConfig) -> FaireData:
    """faire's splits (train de-duplicated against eval and test; the max_* questions of each in smoke), the corpus
    and the reader's passages."""
    faire = retriever_splits(load_localrqa(cfg.collection, root=cfg.data_root, documents=cfg.documents), FAIRE,
                             cfg.max_train, cfg.max_eval, cfg.max_test, cfg.restrict_corpus)
    if not cfg.train_file:
        return faire
    return file_splits(cfg.train_file, cfg.eval_file, faire, cfg.seed, cfg.max_train, cfg.max_eval)


def encoder(cfg) -> BiEncoder:
    return BiEncoder(cfg.model, pooling=cfg.pooling, normalize=cfg.normalize, max_length=cfg.max_length,
                     query_prefix=cfg.query_prefix, doc_prefix=cfg.doc_prefix)


def short_name(model: str) -> str:
    """A model's short name in method names."""
    return {"minilm-l6": "minilm"}.get(model, model.strip("/").split("/")[-1])


def start_method(cfg) -> str:
    """The record name of the zero-shot start point."""
    return f"{short_name(cfg.model)}-zero-shot"
