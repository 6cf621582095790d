"""The retriever-training settings: faire's and SciFact's configs and profiles, faire's data, the encoder, the record
names."""
from __future__ import annotations

from dataclasses import dataclass, field

from ...data.localrqa import RetrieverSplits, file_splits, load_localrqa, retriever_splits
from ...retrievers.bi_encoder import BiEncoder
from ...paper_profiles import paper_profile
from ...settings import Settings, resolve_with_seeds
from ...training import TrainConfig

PIPELINE = "retriever"
FAIRE = "localrqa-faire"
METHODS = ("ctl", "dca", "rpg")
OWN_FILE = ("train_file", "eval_file")  # your own question files (records and run folders name them only when set)
FAIRE_MEASURES = ("recall@1", "recall@4", "nDCG@10")


def _train(**values) -> TrainConfig:
    """LocalRQA's shared training settings (cosine schedule, 10% warmup, weight decay 0.01), a checkpoint at every
    evaluation, the recipe's seed 13 (`seed` sets every trainer's seed unless `<trainer>_train.seed` is given)."""
    values = {"seed": 13, "warmup_ratio": 0.1, "lr_scheduler": "cosine", "weight_decay": 0.01, "log_every_steps": 1,
              "keep_last_checkpoints": 1, "eval_every_steps": 10, "save_every_steps": 10, **values}
    return TrainConfig(**values)


@dataclass(frozen=True)
class FaireConfig(Settings):
    """Notebook 40: CTL, DCA and RPG on LocalRQA's faire example."""

    profile: str = "default"
    seed: int = 13
    data_root: str | None = None
    collection: str = "faire"
    launch: str | None = None  # an accelerate config (configs/accelerate/NAME.yaml): train under accelerate launch
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
    ctl_train: TrainConfig = field(default_factory=lambda: _train(
        learning_rate=1e-5, per_device_batch_size=256, metric_for_best="recall@4"))
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
    dca_train: TrainConfig = field(default_factory=lambda: _train(
        learning_rate=1e-5, per_device_batch_size=10, metric_for_best="recall@4"))
    # RPG (LocalRQA docs: 20 docs, refresh every 10 steps, temperatures 0.1, batch 4)
    rpg_questions: int | None = None
    rpg_num_docs: int = 20
    rpg_refresh_every: int = 10
    rpg_lm_temperature: float = 0.1
    rpg_retrieve_temperature: float = 0.1
    rpg_train: TrainConfig = field(default_factory=lambda: _train(
        learning_rate=1e-5, per_device_batch_size=4, metric_for_best="recall@4"))


#: LocalRQA's published configuration as data (recipes/paper_profiles/retriever.yaml): each setting with its source,
#: and the published settings the code cannot apply (gaps): CTL as its Faire tutorial trains it, DCA and RPG as
#: their module pages do (no faire command); the same file holds the other profiles and the published numbers.
PAPER = paper_profile("retriever", FaireConfig())
PAPER_SOURCES, PAPER_GAPS = PAPER.sources, PAPER.gaps

FAIRE_PROFILES = PAPER.all_profiles()
#: Published numbers to show beside ours on faire, by (dataset, method) (the file's `references:`: none found, and
#: where searched).
REFERENCES = PAPER.references


@dataclass(frozen=True)
class SciFactConfig(Settings):
    """Notebook 41: CTL on SciFact train (qrels + BM25 hard negatives), evaluated by dense retrieval on test."""

    profile: str = "default"
    seed: int = 13
    data_root: str | None = None
    launch: str | None = None  # an accelerate config (configs/accelerate/NAME.yaml): train under accelerate launch
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
    train: TrainConfig = field(default_factory=lambda: _train(
        learning_rate=1e-5, per_device_batch_size=256, metric_for_best="nDCG@10"))


#: No LocalRQA recipe exists for SciFact: its generic CTL command as data (recipes/paper_profiles/retriever_scifact.yaml,
#: beside the other profiles).
SCIFACT_PAPER = paper_profile("retriever_scifact", SciFactConfig())
SCIFACT_PAPER_SOURCES, SCIFACT_PAPER_GAPS = SCIFACT_PAPER.sources, SCIFACT_PAPER.gaps

SCIFACT_PROFILES = SCIFACT_PAPER.all_profiles()


def config(profile: str = "default", **overrides) -> FaireConfig:
    """faire's settings for `profile`, with `overrides` by dotted path (`{"ctl_train.learning_rate": 1e-5}`)."""
    unknown = sorted(set(overrides.get("methods") or ()) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; known: {METHODS}")
    cfg = resolve_with_seeds(FaireConfig(), [f"{m}_train" for m in METHODS], FAIRE_PROFILES, profile, overrides)
    if cfg.eval_file and not cfg.train_file:
        raise ValueError("eval_file is the dev set of a train_file: give train_file too")
    return cfg


def scifact_config(profile: str = "default", **overrides) -> SciFactConfig:
    return resolve_with_seeds(SciFactConfig(), ["train"], SCIFACT_PROFILES, profile, overrides)


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
