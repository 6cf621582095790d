"""10_ / 11_: fine-tuning a BERT-like cross-encoder the RAG-Retrieval / FlagEmbedding way, on SciFact.

10_cross_encoder_data builds the training data from SciFact train (minus the dev slice) in the projects' own
formats: qrels positives, BM25 (and dense, FlagEmbedding hn_mine-style) hard negatives, and teacher scores from
the offline teacher, calibrated to probabilities on the training labels; and a FlagEmbedding file of random
negatives (uniform over the corpus), the ablation of hard-negative mining.
11_cross_encoder_training reads those files back, fine-tunes MiniLM with each loss (point_ce, point_mse, group CE,
group CE + KD, RankNet, listwise CE), selects each checkpoint on the dev slice, and reranks SciFact test's BM25
top-`depth`, with an interpolation row per variant. `negative_ablation` trains group CE once more on each named
source's negatives (`group_ce_random_negatives`), all else equal. With `seeds`, every variant (and the start's fresh
head) is trained once per training seed on the same data, and each row's record holds the mean over seeds.
The `distill_*` variants are notebook 14's equal-budget comparison of six distillation losses on the teacher scores
of 10_'s FlagEmbedding file (recipes/distillation.py); they train and are recorded by the same steps.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar, Mapping

import pandas as pd

from ..atomic import write_json
from ..data import own_training
from ..data.pairs import FORMATS, TrainGroup, files_table, read_pairs, write_pairs_jsonl
from ..data.types import Run
from ..evaluation import evaluate
from ..experiment import (
    DevEvaluator, EvalSet, Evaluated, RerankingSets, Row, Selected, Timer, TrainingSplit, fingerprint,
    first_seed, jsonable, load_run, pipeline_cache, publish_model, record_reranker, record_run, run_dir,
    scifact_reranking_sets, scifact_training_split, train_scorer,
)
from ..export import ModelCard
from ..losses import TEACHER_TARGETS
from ..negatives import (
    mine_dense_negatives, negatives_overlap as negatives_overlap_stats, random_negatives, sample_negatives,
)
from ..rerankers import CrossEncoder
from ..retrievers.bi_encoder import BiEncoder
from ..settings import override, snapshot
from ..teacher import Calibration, calibrated_group, fit_calibration, scores_with_extra, spec as teacher_spec
from ..training import TrainConfig
from ..training.groups import GROUPWISE, GroupObjective
from .recipe import Recipe, RecipeSettings, Trained, dotted, is_main, main_first

PIPELINE = "cross_encoder"
MEASURES = ("nDCG@10", "RR@10")

#: variant -> (loss, which training file, knowledge distillation on)
VARIANTS = {
    "point_ce": ("point_ce", "binary", False),  # RAG-Retrieval, binary {query, pos, neg}
    "point_mse": ("point_mse", "distill", False),  # RAG-Retrieval distillation {query, pos, pos_scores}
    "group_ce": ("group_ce", "flag", False),  # FlagEmbedding, 1 positive + G-1 negatives
    "group_ce_kd": ("group_ce", "flag", True),  # FlagEmbedding with knowledge distillation (pos/neg_scores)
    "ranknet": ("ranknet", "distill", False),  # pairwise, weighted by the label difference
    "listwise_ce": ("listwise_ce", "distill", False),  # ListNet top-one over the soft labels
    # notebook 14: six distillation losses on one file, the teacher's calibrated margins (pos/neg_scores) as targets
    "distill_logit_mse": ("logit_mse", "flag", False),  # InRanker's centred-logit MSE, for one logit
    "distill_group_ce_kd": ("group_ce", "flag", True),  # FlagEmbedding's group CE + KD
    "distill_soft_point_ce": ("soft_point_ce", "flag", False),  # point CE on the teacher's probabilities
    "distill_ranknet": ("teacher_ranknet", "flag", False),  # RankNet on the teacher's order
    "distill_listnet": ("teacher_listnet", "flag", False),  # ListNet on the softmax of the teacher's scores
    "distill_weighted_ranknet": ("teacher_weighted_ranknet", "flag", False),  # rank_llm's weighted RankNet
}
FILES = {
    "binary": ("scifact_train.rag-retrieval.jsonl", "rag-retrieval"),
    "distill": ("scifact_train.rag-retrieval.distill.jsonl", "rag-retrieval"),
    "flag": ("scifact_train.flagembedding.jsonl", "flagembedding"),
    "flag_dense": ("scifact_train.flagembedding.dense-negatives.jsonl", "flagembedding"),
    "flag_random": ("scifact_train.flagembedding.random-negatives.jsonl", "flagembedding"),
}
#: files without teacher scores: random negatives train group CE without KD, which reads none (FlagEmbedding's plain
#: {query, pos, neg}); scoring them would also shift every candidate's fused rank in the teacher's other scores
UNSCORED = ("flag_random",)
#: `negative_ablation`: a negative source -> the FlagEmbedding file of its negatives that 10_ writes beside the main
#: negatives' (`flag`); the ablated variant (FlagEmbedding's group CE, no KD) trains on it once more
ABLATION_FILES = {"dense": "flag_dense", "random": "flag_random"}
ABLATED = "group_ce"


def ablation_variant(source: str) -> str:
    """The ablated variant's run on `source`'s negatives: 'group_ce_random_negatives' (its record's method:
    ce-minilm-group-ce-random-negatives)."""
    return f"{ABLATED}_{source}_negatives"


ABLATIONS = {ablation_variant(source): source for source in ABLATION_FILES}


def spec(variant: str) -> tuple[str, str, bool]:
    """(loss, training file, knowledge distillation) of a variant; a negative ablation's run: group CE's on its
    source's file."""
    if variant in ABLATIONS:
        loss, _, kd = VARIANTS[ABLATED]
        return loss, ABLATION_FILES[ABLATIONS[variant]], kd
    return VARIANTS[variant]


def uses_teacher(variant: str) -> bool:
    """Whether a variant trains on the teacher's scores (a KD term, or a loss of losses.TEACHER_TARGETS)."""
    loss, _, kd = spec(variant)
    return kd or loss in TEACHER_TARGETS


@dataclass(frozen=True)
class CrossEncoderConfig(RecipeSettings):
    READ_ONLY_WHEN: ClassVar[dict] = {k: "train_file is given (a training file of your own, train_format "
                                         "rag-retrieval)" for k in ("train_max_label", "train_min_label")}
    launch: str | None = None  # an accelerate config (configs/accelerate/NAME.yaml): train under it
    model: str = "minilm-l6"
    max_length: int = 64  # claim + title + the abstract's first ~40 tokens (dev: as good as 96 per step, half the cost)
    # evaluation
    depth: int = 20  # SciFact test: rerank the BM25 top-`depth` (the paper setting is 100)
    dev_depth: int = 20
    max_test_queries: int | None = None  # smoke: the first N test queries
    score_batch_size: int = 64
    # data (10_)
    negatives: str = "bm25"  # the negatives the models train on: 'bm25' | 'dense'
    # group CE trains once more on each source's negatives ('random': uniform over the corpus; 'dense'), all else
    # equal: a row each (group_ce_random_negatives). Trained beside group_ce (in `variants`), on 10_'s files only
    negative_ablation: tuple[str, ...] = ("random",)
    bm25_range: tuple[int, int] = (0, 30)  # 0-based slice of the BM25 ranking
    dense_range: tuple[int, int] = (10, 210)  # FlagEmbedding hn_mine's default window
    negative_number: int = 7
    dense_pool: str = "corpus"  # 'corpus' | 'candidates' (smoke: search only the BM25 candidates)
    dense_model: str = "minilm-l6"  # the retriever hn_mine searches with (FlagEmbedding's example: bge-base-en-v1.5)
    dense_pooling: str = "mean"
    teacher: str = "bm25+minilm-l6"
    teacher_depth: int = 100
    # training (11_)
    variants: tuple[str, ...] = ("point_ce", "point_mse", "group_ce", "group_ce_kd", "ranknet")
    # the variants trained once per seed of `seeds` (empty: every variant); the others train on the first seed only,
    # so a budget that cannot give every variant its seeds gives them to the rows a claim rests on
    seeded_variants: tuple[str, ...] = ()
    train: TrainConfig = field(default_factory=TrainConfig)  # the recipe's values: its YAML's default profile
    head_lr: float | None = None  # the classification head's (and pooler's) own rate; None: train.learning_rate
    batch_pairs: int = 32  # (query, doc) pairs per optimizer step; group losses: batch_pairs // group_size groups
    group_size: int = 8
    kd_weight: float = 1.0
    kd_temperature: float = 1.0
    # {variant: {dotted setting: value}}: a variant's own recipe (data: the profile's); a caller's setting wins over it
    variant_train: Mapping[str, Mapping] = field(default_factory=dict)
    interpolate: bool = True  # with a train_file: off (its dev slice has no first-stage scores to interpolate with)
    # a training file of your own instead of 10_'s SciFact files (every variant trains on it; test stays SciFact)
    train_file: str | None = None
    train_format: str = "rag-retrieval"  # 'rag-retrieval' | 'flagembedding' (pairs.FORMATS)
    train_max_label: float = 1.0  # RAG-Retrieval's max_label / min_label: a label s trains as (s - min) / (max - min)
    train_min_label: float = 0.0
    eval_file: str | None = None  # the dev set (same format) for checkpoint selection; None: a slice of train_file


def check(cfg: CrossEncoderConfig, overrides) -> CrossEncoderConfig:
    """A caller's setting always wins over the profile's per-variant recipe (`variant_train`): it leaves every
    variant's entries (a caller's own `variant_train` applies as given); then each variant's settings and the data
    settings are validated."""
    if overrides.get("variant_train") is None:
        given = dotted(overrides)
        cfg = override(cfg, {"variant_train": {v: {k: x for k, x in s.items() if k not in given}
                                               for v, s in cfg.variant_train.items()}})
    unknown = [v for v in (*cfg.variants, *cfg.variant_train, *cfg.seeded_variants) if v not in VARIANTS]
    if unknown:
        ablations = [v for v in unknown if v in ABLATIONS]
        raise ValueError(f"unknown variant(s) {unknown}; known: {list(VARIANTS)}" + (
            f" ({ablations[0]} is group_ce on other negatives, with group_ce's recipe: set negative_ablation)"
            if ablations else ""))
    for variant, settings in cfg.variant_train.items():
        derived = [key for key in settings if key in RECIPE.derived]
        if derived:
            raise ValueError(f"{derived[0]} is set by the recipe: set {RECIPE.derived[derived[0]]} instead")
        variant_config(cfg, variant)  # validates the variant's settings now, not after training the others
    if cfg.negatives not in ("bm25", "dense"):
        raise ValueError(f"negatives must be 'bm25' or 'dense', got {cfg.negatives!r} (random negatives: "
                         "negative_ablation)")
    sources, asked = [s for s in ABLATION_FILES if s != cfg.negatives], cfg.negative_ablation
    if any(s not in sources for s in asked) or len(set(asked)) < len(asked):
        raise ValueError(f"negative_ablation: distinct sources of {sources} (not the main negatives, "
                         f"{cfg.negatives!r}), got {list(cfg.negative_ablation)}")
    teacher_spec(cfg.teacher)
    if cfg.train_format not in FORMATS:
        raise ValueError(f"train_format must be one of {FORMATS}, got {cfg.train_format!r}")
    if cfg.eval_file and not cfg.train_file:
        raise ValueError("eval_file is the dev set of a train_file: give train_file too")
    return cfg


def training(cfg: CrossEncoderConfig, results_dir, evaluate: bool) -> dict:
    """Notebook 11 from the shell (10_'s training files built first when missing; a train_file instead of them)."""
    from ..experiment import records_of, results_table
    from .first_stage import ensure_first_stage

    with main_first():
        ensure_first_stage(cfg, results_dir)
        if cfg.train_file:
            groups, sets = own_training_data(cfg, results_dir)
        else:
            if not data_written(cfg, results_dir):
                print("building 10_cross_encoder_data's training files (missing from the results folder)", flush=True)
                build_training_data(cfg, results_dir)
            groups, split, _ = load_training_data(cfg, results_dir)
            sets = eval_sets(cfg, results_dir, split)
    runs = [train_variant(cfg, variant, groups, sets, results_dir=results_dir) for variant in trained_variants(cfg)]
    if evaluate and is_main():
        start = evaluate_start(cfg, sets, results_dir)
        evaluated = [start, *(evaluate_variant(cfg, vrs, sets, start.runs["start"], results_dir) for vrs in runs)]
        first_stage = ("bm25 (first stage)", sets.test_bm25, sets.test.qrels)
        print(results_table(records_of(evaluated), first_stage=first_stage).to_string())
    return {vr.label: Trained.cross_encoder(vr.selected, vr.model) for vrs in runs for vr in vrs}


RECIPE = Recipe(
    PIPELINE, "11_cross_encoder_training", CrossEncoderConfig, stages=("train",),
    flags={"model_name_or_path": "model", "per_device_train_batch_size": "batch_pairs"},
    derived={"train.output_dir": "nothing: experiment.run_dir names it",
             "train.per_device_batch_size": "`batch_pairs` (group losses: batch_pairs // group_size groups)"},
    steps=("load_training_data", "eval_sets", "evaluate_start", "train_variant", "evaluate_variant"),
    training=training, check=check, multi_seed=True)
config = RECIPE.config


def variant_config(cfg: CrossEncoderConfig, variant: str) -> CrossEncoderConfig:
    """`cfg` with the variant's own settings (`variant_train[variant]`) applied; a negative ablation's run: group
    CE's settings, with `negatives` its source (what its record and model card then say it trained on)."""
    if variant in ABLATIONS:
        return override(variant_config(cfg, ABLATED), {"negatives": ABLATIONS[variant]})
    return override(cfg, dict(cfg.variant_train.get(variant, {})))


def trained_variants(cfg: CrossEncoderConfig) -> tuple[str, ...]:
    """`variants`, then the ablated variant once more per `negative_ablation` source: only beside `group_ce` (the row
    the ablation is compared with) and on 10_'s files (a train_file has no negatives of another source)."""
    ablate = ABLATED in cfg.variants and not cfg.train_file
    return (*cfg.variants, *(ablation_variant(source) for source in cfg.negative_ablation if ablate))


def data_dir(cfg: CrossEncoderConfig, results_dir) -> Path:
    """Where 10_ writes the training files (ignored by git: results/cache/)."""
    return pipeline_cache(results_dir, cfg.profile, "cross_encoder")


def data_written(cfg: CrossEncoderConfig, results_dir) -> bool:
    """10_ wrote every training file this code reads (an older 10_ run lacks the random-negatives file)."""
    out = data_dir(cfg, results_dir)
    return (out / "manifest.json").exists() and all((out / name).exists() for name, _ in FILES.values())


# ---------------------------------------------------------------------------------------------------- 10_ data


@dataclass
class TrainingData:
    split: TrainingSplit
    files: dict[str, Path]
    calibration: Calibration
    groups: dict[str, list[TrainGroup]]  # kind -> groups (train queries only), as written
    manifest: dict


def build_training_data(cfg: CrossEncoderConfig, results_dir) -> TrainingData:
    """SciFact train (minus the dev slice) -> the RAG-Retrieval and FlagEmbedding training files.

    positives: qrels (relevance > 0). negatives: `negative_number` drawn from the BM25 ranking's slice
    `bm25_range` (and, for the dense file, from a MiniLM dense ranking's slice `dense_range`; for the random file,
    uniformly from the whole training corpus), never a positive.
    teacher: `cfg.teacher` scores every candidate; Platt scaling fitted on the train queries' qrels maps a score to
    p(relevant) (the distillation labels, in [0, 1]) and to its logit (FlagEmbedding's pos/neg_scores). The random
    file carries no teacher scores (UNSCORED).
    """
    bm25 = load_run(results_dir, cfg.profile, "scifact", "train", "bm25")
    split = scifact_training_split(cfg.data_root, seed=cfg.seed, restrict_to=sorted(bm25))
    train = split.train
    corpus_ids = list(train.corpus)
    positives = {q: sorted(d for d, r in train.qrels[q].items() if r > 0) for q in train.queries}
    positives = {q: p for q, p in positives.items() if p}

    bm25_neg = sample_negatives(bm25, positives, cfg.bm25_range, cfg.negative_number, cfg.seed, fill_from=corpus_ids)
    # with the default settings (01_first_stage's), the corpus encoding is shared (cached)
    encoder = BiEncoder(cfg.dense_model, pooling=cfg.dense_pooling)
    if cfg.dense_pool == "candidates":  # smoke: search the BM25 candidates (and positives) only
        pool_ids = sorted({d for q in positives for d in bm25.get(q, {})} | {d for p in positives.values() for d in p})
        pool = {d: train.corpus[d] for d in pool_ids}
    else:
        pool = train.corpus
    dense_neg = mine_dense_negatives(encoder, pool, train.queries, positives, cfg.dense_range, cfg.negative_number,
                                     cfg.seed, fill_random=True)
    random_neg = random_negatives(corpus_ids, positives, cfg.negative_number, cfg.seed)

    extra = {q: positives[q] + bm25_neg[q] + dense_neg[q] for q in positives}
    scores = scores_with_extra(cfg.teacher, {q: bm25.get(q, {}) for q in train.subset(list(positives)).queries}, extra,
                               train.corpus, train.queries, depth=cfg.teacher_depth)
    calibration = fit_calibration(scores, train.qrels, teacher=cfg.teacher, fitted_on=split.provenance.source, l2=1e-4)

    main_neg = bm25_neg if cfg.negatives == "bm25" else dense_neg
    qids = sorted(positives, key=lambda q: (len(q), q))
    groups = {kind: [calibrated_group(calibration, q, train.queries[q], positives[q], negs[q], scores[q], train.corpus,
                                      soft=kind == "distill") for q in qids]
              for kind, negs in (("binary", main_neg), ("distill", main_neg), ("flag", main_neg),
                                 ("flag_dense", dense_neg))}
    groups["flag_random"] = [_unscored_group(q, train.queries[q], positives[q], random_neg[q], train.corpus)
                             for q in qids]
    out = data_dir(cfg, results_dir)
    files = {kind: write_pairs_jsonl(out / name, groups[kind], fmt, distillation=(kind == "distill"))
             for kind, (name, fmt) in FILES.items()}
    manifest = {
        "query_ids": qids, "dev_query_ids": sorted(split.dev.queries), "source": split.provenance.source,
        "calibration": asdict(calibration), "files": {k: p.name for k, p in files.items()},
        "config": {k: v for k, v in snapshot(cfg).items() if k in (
            "seed", "negatives", "bm25_range", "dense_range", "dense_model", "negative_number", "teacher",
            "teacher_depth")},
    }
    write_json(out / "manifest.json", manifest)
    return TrainingData(split, files, calibration, groups, manifest)


def _unscored_group(query_id: str, query: str, positives: list[str], negatives: list[str], corpus) -> TrainGroup:
    """A training group labelled by the qrels alone (positives 1, negatives 0), without teacher scores."""
    docs = [*positives, *negatives]
    return TrainGroup(query, [corpus[d].text_for_model for d in docs], [1.0] * len(positives) + [0.0] * len(negatives),
                      n_pos=len(positives), query_id=query_id, doc_ids=docs)


def data_summary(data: TrainingData) -> pd.DataFrame:
    """One row per training file: queries, pairs, positives, teacher scores, label histogram."""
    return files_table({path.name: data.groups[kind] for kind, path in data.files.items()})


def negatives_overlap(data: TrainingData) -> dict:
    """The main negatives (cfg.negatives) against the dense window's, as the teacher rates them."""
    return negatives_overlap_stats(data.groups["flag"], data.groups["flag_dense"])


# ---------------------------------------------------------------------------------------------------- 11_ training


def load_training_data(cfg: CrossEncoderConfig, results_dir) -> tuple[dict[str, list[TrainGroup]], TrainingSplit, dict]:
    """Read 10_'s files back with the projects' readers (the files, not the in-memory groups, are what we train on)."""
    out = data_dir(cfg, results_dir)
    if not data_written(cfg, results_dir):
        raise FileNotFoundError(f"{out}: 10_cross_encoder_data's files are missing or older than this code: run "
                                "10_cross_encoder_data first (same profile)")
    manifest, groups = json.loads((out / "manifest.json").read_text()), {}
    for kind, (name, fmt) in FILES.items():  # FlagEmbedding's files carry the teacher scores (KD), but UNSCORED
        groups[kind] = read_pairs(out / name, fmt, manifest["query_ids"], **(
            {"knowledge_distillation": kind not in UNSCORED} if fmt == "flagembedding" else {}))
    bm25 = load_run(results_dir, cfg.profile, "scifact", "train", "bm25")
    split = scifact_training_split(cfg.data_root, seed=cfg.seed, restrict_to=sorted(bm25))
    if sorted(split.dev.queries) != manifest["dev_query_ids"]:
        raise ValueError("the dev slice differs from the one 10_ held out (different seed or data): rerun 10_")
    if not set(manifest["query_ids"]) <= set(split.train.queries):
        raise ValueError("training files name queries outside the train split: rerun 10_")
    return groups, split, manifest


def _read_own(cfg: CrossEncoderConfig, path: str) -> list[TrainGroup]:
    kwargs = ({"max_label": cfg.train_max_label, "min_label": cfg.train_min_label} if cfg.train_format == "rag-retrieval"
              else {"knowledge_distillation": any(uses_teacher(v) for v in cfg.variants)}
              if cfg.train_format == "flagembedding" else {})
    return own_training.name_queries(read_pairs(own_training.existing(path), cfg.train_format, **kwargs), path)


def own_training_data(cfg: CrossEncoderConfig, results_dir) -> tuple[dict[str, list[TrainGroup]], RerankingSets]:
    """`cfg.train_file` as every variant's training data, with `cfg.eval_file` (or a seeded slice of the file's
    queries) as the dev set that selects checkpoints; SciFact test's BM25 top-`depth` stays the test set."""
    groups = _read_own(cfg, cfg.train_file)
    if cfg.eval_file:
        train, dev = groups, _read_own(cfg, cfg.eval_file)
    else:
        train, dev = own_training.split_by_query(groups, seed=cfg.seed)
    kd = [v for v in cfg.variants if uses_teacher(v)]
    if kd and any(g.teacher_scores is None for g in train):
        raise ValueError(f"{cfg.train_file}: variant(s) {kd} distil teacher scores: the file needs pos_scores and "
                         "neg_scores (train_format flagembedding)")
    name = Path(cfg.train_file).name
    train_ds, _ = own_training.reranking_dataset(train, name, cfg.seed)
    dev_ds, dev_candidates = own_training.reranking_dataset(dev, name, cfg.seed)
    split = TrainingSplit(train_ds, dev_ds, own_training.provenance(cfg.train_file, [*train, *dev]))
    scifact_sets = scifact_reranking_sets(results_dir, cfg.profile, split, cfg.depth, cfg.dev_depth, cfg.max_test_queries,
                                    cfg.data_root)
    sets = RerankingSets(scifact_sets.test, scifact_sets.test_bm25, dev_ds, dev_candidates, split)
    return {kind: train for kind in FILES}, sets


def eval_sets(cfg: CrossEncoderConfig, results_dir, split: TrainingSplit) -> RerankingSets:
    """SciFact test's BM25 top-`depth` (the first `max_test_queries`) and the dev slice's BM25 top-`dev_depth`."""
    return scifact_reranking_sets(results_dir, cfg.profile, split, cfg.depth, cfg.dev_depth, cfg.max_test_queries,
                                  cfg.data_root)


def train_config(cfg: CrossEncoderConfig, variant: str, output_dir: str = "") -> TrainConfig:
    """The variant's TrainConfig: its batch in examples (pairs, or groups of group_size for the group losses)."""
    vcfg = variant_config(cfg, variant)
    per_step = vcfg.batch_pairs // vcfg.group_size if spec(variant)[0] in GROUPWISE else vcfg.batch_pairs
    return dataclasses.replace(vcfg.train, output_dir=output_dir, per_device_batch_size=max(1, per_step))


def recipe_table(cfg: CrossEncoderConfig) -> pd.DataFrame:
    """The training recipe of each variant beside the usual one (sentence-transformers / RAG-Retrieval defaults)."""
    rows = {"usual recipe (learns nothing on CPU)": {"loss": "point_ce", "learning_rate": 2e-5, "head lr": "same",
            "max_length": 256, "steps": "1 epoch", "pairs/step": 16, "group_size": "-"}}
    for variant in trained_variants(cfg):
        vcfg, train = variant_config(cfg, variant), train_config(cfg, variant)
        loss, _, kd = spec(variant)
        rows[variant] = {"loss": loss + (" + KD" if kd else ""), "negatives": vcfg.negatives,
                         "learning_rate": train.learning_rate,
                         "head lr": vcfg.head_lr or "same", "max_length": vcfg.max_length,
                         "steps": train.max_steps or f"{train.num_epochs} epochs", "pairs/step": vcfg.batch_pairs,
                         "group_size": vcfg.group_size if loss in GROUPWISE else "-", "warmup": train.warmup_ratio,
                         "schedule": train.lr_scheduler, "eval every": train.eval_every_steps or "end"}
    return pd.DataFrame(rows).T.fillna("")


@dataclass
class VariantRun:
    variant: str
    model: CrossEncoder  # holding the selected checkpoint's weights
    selected: Selected
    config: CrossEncoderConfig  # the variant's settings, its training seed in `config.train.seed`
    several: bool = False  # one of several training seeds' runs of the variant

    @property
    def label(self) -> str:
        """The variant, with its training seed when it is one of several ('group_ce seed 14')."""
        return f"{self.variant} seed {self.config.train.seed}" if self.several else self.variant


def start_model(cfg: CrossEncoderConfig) -> CrossEncoder:
    """The starting point of every variant: MiniLM's encoder under a fresh head seeded by the training seed
    (`train.seed`) (online: a hub reranker)."""
    return CrossEncoder(cfg.model, max_length=cfg.max_length, init_seed=cfg.train.seed)


@RECIPE.training_step
def train_variant(cfg: CrossEncoderConfig, variant: str, groups: dict[str, list[TrainGroup]],
                  sets: RerankingSets, results_dir=None) -> list[VariantRun]:
    """Fine-tune a fresh start model with one variant, once per training seed (`seeds`; else `train.seed`): the dev
    slice's BM25 top-dev_depth (nDCG@10) selects each run's checkpoint, its untrained start (step 0) included; each
    model ends with its selected weights. With `cfg.launch`, every variant first trains under accelerate launch
    (inputs from `results_dir`)."""
    configs = variant_seeds(cfg, variant)
    return [dataclasses.replace(train_seed(seeded, variant, groups, sets), several=len(configs) > 1)
            for seeded in configs]


def variant_seeds(cfg: CrossEncoderConfig, variant: str) -> list[CrossEncoderConfig]:
    """One config per training run of `variant`: every seed of `seeds` when the variant is seeded (`seeded_variants`
    empty or naming it; a negative ablation's run is seeded as the variant it ablates), else the first seed's alone."""
    configs = RECIPE.seeded(cfg)
    seeded = not cfg.seeded_variants or (ABLATED if variant in ABLATIONS else variant) in cfg.seeded_variants
    return configs if seeded else configs[:1]


def train_seed(cfg: CrossEncoderConfig, variant: str, groups: dict[str, list[TrainGroup]],
               sets: RerankingSets) -> VariantRun:
    """One training run of `variant` from the start model of `cfg.train.seed` (its run folder is keyed by it)."""
    loss, kind, kd = spec(variant)
    vcfg, data = variant_config(cfg, variant), groups[kind]
    settings = {"variant": variant, **{k: v for k, v in snapshot(vcfg).items() if k in (
        "model", "max_length", "head_lr", "batch_pairs", "group_size", "kd_weight", "kd_temperature", "train",
        "dev_depth")}}
    if cfg.train_file:  # a file's dev set is yours to change (eval_file): the run folder is keyed by it too
        settings["dev"] = fingerprint(sorted(sets.dev.queries.values()))
    out = run_dir(PIPELINE, cfg.profile, variant, settings=settings,
                  data=fingerprint([[g.query, g.docs, g.labels, g.teacher_scores] for g in data]))
    model = start_model(vcfg)
    dev = DevEvaluator.reranking(EvalSet.of(sets.dev, sets.dev_bm25, depth=cfg.dev_depth, measures=MEASURES),
                                 as_ranker=lambda _: model, batch_size=cfg.score_batch_size)
    objective = GroupObjective(loss, vcfg.group_size, vcfg.kd_weight if kd else 0.0, vcfg.kd_temperature,
                               vcfg.head_lr)
    selected = train_scorer(model, data, dev, objective, train_config(cfg, variant, str(out)))
    return VariantRun(variant, model, selected, vcfg)


OWN_FILE = ("train_file", "train_format", "train_max_label", "train_min_label", "eval_file")


def record_settings(cfg: CrossEncoderConfig) -> dict:
    """The settings a record keeps: the own-file ones only when a train_file is given (the notebook's records stay
    as they were before those settings existed)."""
    settings = snapshot(cfg)
    return settings if settings["train_file"] else {k: v for k, v in settings.items() if k not in OWN_FILE}


def method_name(cfg: CrossEncoderConfig, variant: str) -> str:
    base = "minilm" if cfg.model == "minilm-l6" else cfg.model.split("/")[-1]
    return f"ce-{base}-{variant.replace('_', '-')}"


def start_runs(cfg: CrossEncoderConfig, sets: RerankingSets, models: list[CrossEncoder] | None = None) -> list[Run]:
    """The untrained start's test run per training seed (each seed's fresh head, `models` when already loaded):
    every variant's paired-test baseline 'start'."""
    models = models or [start_model(seeded) for seeded in RECIPE.seeded(cfg)]
    return [model.rerank(sets.test_bm25, sets.test.corpus, sets.test.queries, depth=cfg.depth,
                         batch_size=cfg.score_batch_size) for model in models]


def evaluate_start(cfg: CrossEncoderConfig, sets: RerankingSets, results_dir) -> Evaluated:
    """The untrained starting point (fresh head), the floor every variant starts from: its record, and its test run
    per training seed (each seed's head) as `runs["start"]` (every variant's paired-test baseline)."""
    models = [start_model(seeded) for seeded in RECIPE.seeded(cfg)]  # loaded before the clock: latency is scoring
    with Timer() as t:
        runs = start_runs(cfg, sets, models)
    record = record_run(
        runs, sets.evalsets(cfg.depth)[0],
        Row(PIPELINE, method_name(cfg, "start"), cfg.profile,
            f"{cfg.model} (untrained head)" if cfg.model == "minilm-l6" else cfg.model,
            jsonable(record_settings(cfg)), cfg.seed, RECIPE.references.get(cfg.model), rerank_s=t.s, seeds=cfg.seeds),
        results_dir, baselines={"bm25": sets.test_bm25})
    return Evaluated([record], {"start": runs})


def selection_params(sel: Selected) -> dict:
    """What a record keeps of a run's dev selection (a seeded row: each seed's, in `seeds` order) and its cost per
    step: `step_s` the seconds per optimizer step from the training log's clock (Selected.step_s); the run's training
    seconds are the record's own `train_s`."""
    step_s = sel.step_s
    return {"best_step": sel.step, "dev_best": sel.value, "dev_start": sel.start_value, "steps": sel.result.global_step,
            "step_s": None if step_s is None else round(step_s, 4)}


def evaluate_variant(cfg: CrossEncoderConfig, vrs: list[VariantRun], sets: RerankingSets, start_runs: list[Run],
                     results_dir) -> Evaluated:
    """Rerank SciFact test with each training seed's selected checkpoint of one variant (train_variant's runs): a
    record vs BM25 and vs the start (each seed's own), and the +interp row (weight chosen per seed on dev)."""
    with Timer() as t:
        runs = [vr.model.rerank(sets.test_bm25, sets.test.corpus, sets.test.queries, depth=cfg.depth,
                                batch_size=cfg.score_batch_size) for vr in vrs]
    vr, sel = vrs[0], vrs[0].selected
    each = [selection_params(one.selected) for one in vrs]
    chosen = each[0] if len(vrs) == 1 else {key: [values[key] for values in each] for key in each[0]}
    params = jsonable({**record_settings(vr.config), "variant": vr.variant, "loss": spec(vr.variant)[0], **chosen})
    test, dev = sets.evalsets(cfg.depth)
    seeds = tuple(one.config.train.seed for one in vrs) if len(vrs) > 1 else ()
    records = record_reranker(  # a variant trained on fewer seeds than the start: the start of those seeds
        runs, test, Row(PIPELINE, method_name(cfg, vr.variant), cfg.profile, f"{cfg.model} fine-tuned ({vr.variant})",
                        params, cfg.seed, seeds=seeds, rerank_s=t.s, train_s=sum(one.selected.train_s for one in vrs)),
        results_dir, baselines={"bm25": sets.test_bm25, "start": start_runs[:len(vrs)]}, training=sets.split.provenance,
        dev=dev,
        dev_run=[one.selected.dev_run for one in vrs] if cfg.interpolate and not cfg.train_file else None)
    # the selected model, as sentence-transformers' CrossEncoder loads it, with its model card
    own = first_seed(records[0])  # with several seeds, the first seed's model with its own test values
    settings = jsonable({**record_settings(vr.config), "variant": vr.variant, "loss": spec(vr.variant)[0],
                         **each[0]})
    publish_model("cross_encoder", vr.model, results_dir, cfg.profile, records[0].method, ModelCard(
        cfg.model, records[0].n_training_queries, settings,
        dev={"nDCG@10": sel.value} if sel.value is not None else None, selected_step=sel.step), own)
    return Evaluated(records)


def bm25_dev(sets: RerankingSets) -> dict[str, float]:
    """BM25 on the dev slice: the reference line of the dev curves."""
    return {"bm25 on dev": evaluate(sets.dev_bm25, sets.dev.qrels, ["nDCG@10"])["nDCG@10"]}
