"""Training: one fold's data (teacher-ordered conversations, dev slices) and one objective trained on it through
experiment.train_with_dev_selection (top layers only, NEFTune; the DL dev slice picks the checkpoint, the
untrained start included)."""
from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path

from ...data import TrainingQueries, own_training
from ...data.rank_zephyr import rank_zephyr_file, read_rank_zephyr
from ...data.trec import top_k
from ...data.types import Document
from ...experiment import DevEvaluator, Selected, dl_training_split, load_run, run_dir, scifact_training_split
from ...experiment import train_with_dev_selection
from ...listwise import ConversationSampling, ListwiseLM, ListwiseObjective, build_conversations, enable_neftune, encode_conversation
from ...listwise import freeze_below, identifier_token_ids
from ...listwise.training_data import conversation
from ...models import load_chat_lm, load_chat_tokenizer
from ...paths import cache_dir
from ...settings import snapshot
from ...training import pad_collate
from .evalsets import EvalSet, rerank_set, reranker, use_letters
from .settings import MEASURE, PIPELINE, RECIPE, RankLLMConfig

# settings that do not change a trained run (its cache key leaves them out)
EVAL_ONLY = ("folds", "objectives", "generation_eval", "quality_queries", "scifact_test_queries", "tag", "launch")


@dataclass
class FoldData:
    train_on: str
    evaluate_on: str
    provenance: TrainingQueries
    conversations: list[dict]
    dev: dict[str, EvalSet]  # 'dl' (checkpoints, interpolation) and 'scifact' (interpolation) dev slices

    def describe(self) -> str:
        n_q = len({c["qid"] + c["source"] for c in self.conversations})
        return (f"train on {self.provenance.describe()}: {len(self.conversations)} conversations from {n_q} queries; "
                f"dev {', '.join(f'{k} {len(v.top)} q' for k, v in self.dev.items())}; evaluate on {self.evaluate_on}")


def fold_data(cfg: RankLLMConfig, train_on: str, evaluate_on: str, results_dir) -> FoldData:
    """The training year's train part and a SciFact train sample, each query's BM25 top-train_window ordered by
    the teacher, plus the variable-length subsets; dev slices (BM25 top-depth) of both sources."""
    bm25_dl = load_run(results_dir, cfg.profile, train_on, "test", "bm25")
    dl = dl_training_split(train_on, cfg.data_root, cfg.seed, restrict_to=bm25_dl)
    bm25_sf = load_run(results_dir, cfg.profile, "scifact", "train", "bm25")
    sf = scifact_training_split(cfg.data_root, cfg.seed, restrict_to=bm25_sf)
    sf_dev = sorted(sf.dev.queries)[: cfg.dev_scifact_queries]
    alpha = use_letters(cfg, load_chat_tokenizer(cfg.model, cfg.chat_template))
    if cfg.train_data == "rank_zephyr":  # the paper's data; the DL year and SciFact give the dev slices only
        conversations, used = rank_zephyr_conversations(cfg, alpha)
        sf_train = []
    else:  # the substitute data: teacher-ordered windows of the DL year's train part and a SciFact train sample
        sf_train = sorted(sf.train.queries)
        if cfg.scifact_train_queries and cfg.scifact_train_queries < len(sf_train):
            sf_train = sorted(random.Random(cfg.seed).sample(sf_train, cfg.scifact_train_queries))
        sampling = ConversationSampling(window=cfg.train_window, max_words=cfg.train_max_words, alpha=alpha,
                                        n_variable=cfg.n_variable, seed=cfg.seed, shuffle=cfg.shuffle_inputs)
        conversations = build_conversations(dl.train.queries, bm25_dl, load_run(
            results_dir, cfg.profile, train_on, "test", cfg.dl_teacher), dl.train.corpus, sampling,
            source=f"{train_on}:")
        conversations += build_conversations({q: sf.train.queries[q] for q in sf_train}, bm25_sf, load_run(
            results_dir, cfg.profile, "scifact", "train", cfg.scifact_teacher), sf.train.corpus, sampling,
            source="scifact-train:")
        used = None
    dev = {}
    for key, ds, bm25 in (("dl", dl.dev, bm25_dl), ("scifact", sf.dev.subset(sf_dev), bm25_sf)):
        run = {q: bm25[q] for q in ds.queries if q in bm25}
        dev[key] = EvalSet(ds.subset(sorted(run)), "dev", run, top_k(run, cfg.depth))
    # every query the model or its selection saw: the DL year's train and dev parts, the SciFact sample and dev
    provenance = dl.provenance | sf.used(sf_train, sf_dev)
    return FoldData(train_on, evaluate_on, provenance | used if used else provenance, conversations, dev)


def rank_zephyr_conversations(cfg: RankLLMConfig, alpha: bool) -> tuple[list[dict], TrainingQueries]:
    """RankZephyr's training records re-rendered with our template (the identifiers and word limit inference
    uses), and their queries (texts: the leak guard compares them with every test query)."""
    path = own_training.existing(cfg.rank_zephyr_file) if cfg.rank_zephyr_file else rank_zephyr_file(cache_dir("data"))
    examples = read_rank_zephyr(path, cfg.rank_zephyr_examples)
    rows = []
    for ex in examples:
        docs = [Document(str(i), passage) for i, passage in enumerate(ex.passages)]
        rows.append(conversation(f"rank_zephyr:{ex.example_id}", ex.query, docs, list(ex.order), alpha,
                                 cfg.train_max_words, qid=ex.query, source="rank_zephyr"))
    queries = {f"rank_zephyr:{i}": q for i, q in enumerate(sorted({ex.query for ex in examples}))}
    # a file of your own is named by its file name (the published one: the dataset's name)
    source = f"file:{Path(cfg.rank_zephyr_file).name}" if cfg.rank_zephyr_file else "rank_zephyr_training_data"
    return rows, TrainingQueries.of(source, queries)


@dataclass
class Trained:
    fold: FoldData
    objective: str
    base: str
    selected: Selected  # the run, its dev curve (step 0: the start) and the checkpoint the dev slice chose
    label: str = ""  # names a recipe-search variant in curves and tables

    @property
    def name(self) -> str:
        return f"{self.fold.train_on}->{self.fold.evaluate_on} {self.objective}" + (f" {self.label}" if self.label else "")


def base_model(cfg: RankLLMConfig, objective: str) -> str:
    return {"generation": cfg.generation_model, "combined": cfg.combined_model}.get(objective) or cfg.model


def train_objective(cfg: RankLLMConfig, fold: FoldData, objective: str, label: str = "") -> Trained:
    """Fine-tune the objective's base model on the fold's conversations; the FIRST reranking of the training
    year's dev slice (nDCG@10) at step 0 and every `train.eval_every_steps` picks the checkpoint."""
    base = base_model(cfg, objective)
    model, tokenizer = load_chat_lm(base, cfg.chat_template)
    lm, dev_set = ListwiseLM(model), fold.dev["dl"]
    examples = [encode_conversation(c, tokenizer, objective, cfg.chat_template, max_length=cfg.context_size)
                for c in fold.conversations]
    ident = identifier_token_ids(tokenizer, max(cfg.window, cfg.train_window), use_letters(cfg, tokenizer),
                                 cfg.chat_template)
    loss = ListwiseObjective(objective, ident or (), ranking=cfg.ranking_loss, weighted=cfg.weighted,
                             ranking_weight=cfg.ranking_weight)
    dev = DevEvaluator(lambda m: rerank_set(reranker(cfg, m, tokenizer), dev_set, cfg, progress=False)[0],
                       dev_set.dataset.qrels, [MEASURE])
    settings = {k: v for k, v in snapshot(cfg).items() if k not in EVAL_ONLY} | {"base": base, "objective": objective}
    path = run_dir(PIPELINE, cfg.profile, f"{fold.train_on}-{objective}", data=fold.conversations, settings=settings)
    freeze_below(model, cfg.train_layers)
    hook = enable_neftune(lm, cfg.noise_alpha)
    try:
        selected = train_with_dev_selection(
            lm, examples, pad_collate(tokenizer, padding_side="right"), loss, replace(cfg.train, output_dir=str(path)),
            dev, load_selected=lambda d: load_chat_lm(str(d), cfg.chat_template, tokenizer_from=base)[0],
            lengths=[len(e["input_ids"]) for e in examples])
    finally:
        if hook is not None:
            hook.remove()
    return Trained(fold, objective, base, selected, label)


@RECIPE.training_step
def train_all(cfg: RankLLMConfig, results_dir) -> list[Trained]:
    """Every (fold, objective) of the config (with `cfg.launch`: first trained under accelerate launch)."""
    trained = []
    for train_on, evaluate_on in cfg.folds:
        fold = fold_data(cfg, train_on, evaluate_on, results_dir)
        print(fold.describe())
        for objective in cfg.objectives:
            trained.append(train_objective(cfg, fold, objective))
            print(f"{trained[-1].name}: {trained[-1].selected.describe()}")
    return trained
