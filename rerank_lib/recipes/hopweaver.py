"""13_: HopWeaver's reranker training and its retrieval ablation, measured with ranking metrics on SciFact.

The steps, in the notebook's order: the diverse (MMR) retriever over a dense MiniLM index (retrievers.diverse); the
published generator with SmolLM2 for both LLM steps on a few source documents (synthetic_queries; the proposer's
decoding held to its answer's format, `llm_decoding`), shown as it is with its yield;
the LLM judge measured against SciFact's qrels (AUC), which decides the judge of the training data (offline: the
qrels, HopWeaver's documented fallback); the generated {query, pos, neg} file (data.hopweaver); a MiniLM
cross-encoder fine-tuned on it with FlagEmbedding's group CE (HopWeaver: bge-reranker-v2-m3, train_group_size 4),
selected on dev (the zero-shot start included); and the ablation on test claims, top_k candidates each: standard
(the dense top_k), diverse (MMR over the top 3*top_k, rerank_ablation_test.py's lambdas; a claim has no source
document, so the l2 term is 0), diverse_zs / diverse_ft (diverse reordered by the zero-shot / fine-tuned reranker;
offline the reranker's head is fresh, so the first is diverse_untrained, the fine-tuned row's start),
with HopWeaver's success rate (Success@top_k) and average attempts (rank of the first relevant, successes only).

HopWeaver on its own data: the same reranker, loss and training settings fine-tuned on HopWeaver's published
`train_data_sample.jsonl` (a dev slice of it held out for checkpoint selection, the untrained start a candidate)
and measured on its `test_data.jsonl` its own way: each line's positives and negatives scored, accuracy (a positive
above every negative) and MRR (evaluation.candidate_measures), beside the untrained start and BM25 on the same
candidates. The test file never trains or selects anything.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import TrainingQueries, dev_slice, load_dataset
from ..data.hopweaver import (
    CANDIDATES, candidate_groups, generation_stats, generator_yield, read_generated, sample_sources, write_hopweaver,
)
from ..data.hopweaver import read_candidates
from ..data.own_training import existing, without_unset
from ..data.pairs import TrainGroup
from ..data.trec import pooled_corpus, top_k
from ..data.types import Dataset, Run
from ..evaluation import (
    CANDIDATE_MEASURES, candidate_measures, candidate_measures_per_query, interpolate, success_and_attempts,
)
from ..export import ModelCard
from ..first_stage import BM25Index
from ..experiment import (
    DevEvaluator, EvalSet, Evaluated, Row, Selected, Timer, TrainingSplit, choose_interpolation_weight, fingerprint,
    jsonable, load_run, pipeline_cache, publish_selected, record_run, run_dir, sample_ids, scifact_training_split,
    test_sample, train_scorer,
)
from ..rerankers import CrossEncoder
from ..rerankers.cross_encoder import has_trained_head
from ..retrievers.bi_encoder import BiEncoder
from ..retrievers.diverse import ABLATION_LAMBDAS, README_LAMBDAS, DiverseRetriever, MMRWeights
from ..settings import snapshot
from ..synthetic_queries import (
    PROPOSER_DECODING, LLMJudge, LLMQueryProposer, QrelsJudge, generate_contrastive_data, in_bridge_format,
)
from ..synthetic_queries import judge_quality as judge_agreement
from ..training import TrainConfig
from ..training.groups import GroupObjective
from .recipe import Recipe, RecipeSettings, Trained, is_main, main_first

PIPELINE = "cross_encoder"
MEASURES = ("nDCG@10", "RR@10", "R@10")


@dataclass(frozen=True)
class HopWeaverConfig(RecipeSettings):
    READ_ONLY_WHEN = {"judge_min_auc": "judge == 'auto' and the LLM judge produced scores to measure",
                      "eval_file": "train_file is given (a HopWeaver jsonl of your own)"}

    launch: str | None = None  # an accelerate config (configs/accelerate/NAME.yaml): train under it
    encoder: str = "minilm-l6"  # the dense retriever (HopWeaver: a FlashRAG dense index, e.g. E5/GTE)
    retriever_pool: int | None = None  # smoke / paper-tiny: the retriever holds only the claims' BM25 top-N and
    #                                    judged documents (None: the whole corpus)
    top_k: int = 10  # candidates per query (HopWeaver's max_doc_candidates / --candidates)
    generation_lambdas: tuple[float, float, float] = README_LAMBDAS
    ablation_lambdas: tuple[float, float, float] = ABLATION_LAMBDAS  # rerank_ablation_test.py
    # the LLM steps as published (SmolLM2 offline)
    llm: str = "smollm2-135m-instruct"
    llm_sources: int = 3  # source documents for the LLM proposer + judge demonstration
    llm_decoding: str = "format"  # the proposer's decoding: 'format' (held to its one-line answer) | 'free' (parsed)
    judge_eval_queries: int = 6  # dev-slice claims whose top_k candidates measure the LLM judge against qrels
    judge_max_length: int = 256  # the chat template, the question, the claim and the source take ~150 of them
    judge_threshold: float = 0.5
    judge: str = "auto"  # 'auto': the LLM judge if its AUC vs qrels >= judge_min_auc, else the qrels | 'llm' | 'qrels'
    judge_min_auc: float = 0.65
    # training data (the generator over SciFact train claims) and the reranker
    gen_queries: int | None = None  # train claims to attempt (None: all)
    stop_when_both: bool = False  # the seed stops at one pos + one neg to save LLM calls; the qrels judge is free
    reranker: str = "minilm-l6"  # online: BAAI/bge-reranker-v2-m3 (zero-shot, then fine-tuned)
    max_length: int = 128
    group_size: int = 4  # HopWeaver train_reranker.py: train_group_size 4
    train: TrainConfig = field(default_factory=TrainConfig)  # the recipe's values: its YAML's default profile
    dev_queries: int | None = 40
    test_queries: int | None = None  # SciFact test claims (None: all 300)
    score_batch_size: int = 64
    interpolate: bool = True
    # HopWeaver's own data (../shared/data/hopweaver): the reranker above, trained with `train` on the train file
    own_dev_fraction: float = 0.2  # of the train file's lines, held out to select the checkpoint
    own_train_examples: int | None = None  # lines of the train file to use (None: all 100), dev slice included
    own_test_examples: int | None = None  # lines of the test file (None: all 203)
    own_max_steps: int | None = 80  # `train`'s max_steps for this run (None: train.max_steps); 80 = 8 passes over the
    #                                 80 train lines at ~1.2 s a step on 2 cores, inside the default profile's budget
    # a {query, pos, neg} jsonl of your own (HopWeaver's --train_data; a relative path is read from where you run):
    # the shell pipeline trains on it by the own-data recipe instead of the generated SciFact data, `train` as given
    # (own_max_steps is not applied), and with --evaluate measures it on HopWeaver's test file
    train_file: str | None = None
    eval_file: str | None = None  # the dev lines (same format) that select the checkpoint; None: own_dev_fraction of
    #                               train_file held out (seeded)


def check(cfg: HopWeaverConfig, overrides) -> HopWeaverConfig:
    if cfg.judge not in ("auto", "llm", "qrels"):
        raise ValueError(f"judge must be 'auto', 'llm' or 'qrels', got {cfg.judge!r}")
    if cfg.llm_decoding not in PROPOSER_DECODING:
        raise ValueError(f"llm_decoding must be one of {PROPOSER_DECODING}, got {cfg.llm_decoding!r}")
    if not 0.0 < cfg.own_dev_fraction < 1.0:
        raise ValueError(f"own_dev_fraction must lie in (0, 1), got {cfg.own_dev_fraction}")
    if cfg.eval_file and not cfg.train_file:
        raise ValueError("eval_file is the dev set of a train_file: give train_file too")
    for lam in (cfg.generation_lambdas, cfg.ablation_lambdas):
        MMRWeights(*lam).normalised()  # validates
    return cfg


def training(cfg: HopWeaverConfig, results_dir, evaluate: bool) -> dict:
    """Notebook 13 from the shell, without its LLM-generator demonstration (llm_generator: its file trains
    nothing); with a train_file, the own-data recipe measured on HopWeaver's test file."""
    from ..experiment import results_table
    from .first_stage import ensure_first_stage

    if cfg.train_file:
        with main_first():
            own = OwnData(own_split(cfg), own_test(cfg) if evaluate else None)
        split = own.split
        print(f"{len(split.train.queries)} train + {len(split.dev.queries)} dev lines of {split.provenance.source}",
              flush=True)
        reranked = train_on_own_data(cfg, own)
        if evaluate and is_main():
            own_rows = own_data_rows(cfg, own, reranked, results_dir)
            print(results_table(own_rows.records, measures=OWN_MEASURES, bases=("bm25", "start")).to_string())
        return {"hopweaver-own-ft": Trained.cross_encoder(reranked.selected, reranked.model)}
    with main_first():
        ensure_first_stage(cfg, results_dir)
        data = load_data(cfg, results_dir)
    llm_judge = LLMJudge.for_model(cfg.llm, max_length=cfg.judge_max_length, threshold=cfg.judge_threshold)
    judge = choose_judge(cfg, judge_quality(cfg, data, llm_judge)[0])
    with main_first():
        generated = training_data(cfg, data, judge, results_dir, llm_judge=llm_judge)
    reranked = train_reranker(cfg, data, generated, results_dir=results_dir)
    if evaluate and is_main():
        ablated = ablation(cfg, data, reranked, results_dir)
        print(results_table(ablated.records, measures=MEASURES, bases=("standard", "start")).to_string())
    return {"diverse_ft": Trained.cross_encoder(reranked.selected, reranked.model)}


RECIPE = Recipe("hopweaver", "13_hopweaver", HopWeaverConfig, stages=("train",),
                flags={"model_name_or_path": "reranker"},
                derived={"train.output_dir": "nothing: experiment.run_dir names it"},
                steps=("load_data", "judge_quality", "choose_judge", "training_data", "train_reranker", "ablation",
                       "train_on_own_data", "own_data_rows"),
                training=training, check=check)
config = RECIPE.config


#: the own-file settings: left out of run folders' keys and records when unset, so those stay as they were before
OWN_FILE = ("train_file", "eval_file")


def settings_of(cfg: HopWeaverConfig) -> dict:
    """The settings a run folder's key and a record keep (the own-file ones only when set)."""
    return without_unset(snapshot(cfg), OWN_FILE)


def cache_root(cfg: HopWeaverConfig, results_dir) -> Path:
    return pipeline_cache(results_dir, cfg.profile, "hopweaver")


@dataclass
class HopData:
    split: TrainingSplit
    dev: Dataset
    test: Dataset
    test_split: str
    retriever: DiverseRetriever


def load_data(cfg: HopWeaverConfig, results_dir) -> HopData:
    """SciFact train (minus the dev slice; the train claims 01_ ran) and test, and the retriever over the corpus."""
    train_bm25 = load_run(results_dir, cfg.profile, "scifact", "train", "bm25")
    split = scifact_training_split(cfg.data_root, seed=cfg.seed, restrict_to=sorted(train_bm25))
    dev = split.dev.subset(sample_ids(split.dev.queries, cfg.dev_queries, cfg.seed))
    test_bm25 = load_run(results_dir, cfg.profile, "scifact", "test", "bm25")
    test, _, test_split = test_sample("scifact", test_bm25, cfg.test_queries, cfg.seed, cfg.data_root)
    corpus = test.corpus
    if cfg.retriever_pool:
        corpus = pooled_corpus(corpus, [train_bm25, test_bm25], cfg.retriever_pool,
                               [split.train.qrels, dev.qrels, test.qrels])
    encoder = BiEncoder(cfg.encoder)  # 01_first_stage's settings: the corpus encoding is shared (cached)
    retriever = DiverseRetriever(encoder, corpus, MMRWeights(*cfg.generation_lambdas))
    return HopData(split, dev, test, test_split, retriever)


@dataclass
class LLMDemo:
    examples: list
    table: pd.DataFrame
    path: Path
    wall_s: float
    raw: list[str] = field(default_factory=list)  # the proposer's answers, one per example
    decoding: str = "free"

    @property
    def yield_(self) -> dict:
        """The generator's yield (asked / produced / usable), with how it decoded, how many answers had the asked
        format ('Entity: <e> | Query: <q>') and the judge's verdicts (candidates judged, positive)."""
        verdicts = [v for e in self.examples for v in e.verdicts]
        y = generator_yield(self.examples)
        return {"decoding": self.decoding, "asked": y["asked"], "in format": sum(map(in_bridge_format, self.raw)),
                "produced": y["produced"], "usable": y["usable"], "judged": len(verdicts), "positive": sum(verdicts)}


def llm_generator(cfg: HopWeaverConfig, data: HopData, results_dir, judge: LLMJudge) -> LLMDemo:
    """The published generator with the LLM for both steps, on `llm_sources` source documents (judged abstracts of
    train claims, so a reader can see the topic): proposed query (decoded as `llm_decoding` says), candidates,
    verdicts, written as HopWeaver jsonl."""
    corpus = data.retriever.corpus
    sources = sample_sources(data.split.train.qrels, cfg.seed, cfg.llm_sources)
    proposer = LLMQueryProposer(cfg.llm, decoding=cfg.llm_decoding)
    with Timer() as t:
        examples = generate_contrastive_data(data.retriever, judge, sources=sources, proposer=proposer, top_k=cfg.top_k,
                                             stop_when_both=True)
    path = write_hopweaver(cache_root(cfg, results_dir) / "llm_demo.hopweaver.jsonl", examples, corpus)
    rows = []
    for e, raw in zip(examples, proposer.raw):
        rows.append({"source (title)": corpus[e.source_id].title[:60], "claim judged for it": data.split.train.queries[e.query_id][:70],
                     "LLM output": raw.strip().replace("\n", " ")[:110], "in format": in_bridge_format(raw),
                     "parsed query": e.query,
                     "judged": len(e.verdicts), "pos": len(e.pos), "neg": len(e.neg), "usable": e.usable})
    return LLMDemo(examples, pd.DataFrame(rows), path, t.s, list(proposer.raw), cfg.llm_decoding)


def judge_quality(cfg: HopWeaverConfig, data: HopData, judge: LLMJudge) -> tuple[pd.DataFrame, dict]:
    """The LLM judge's P(Yes) on (claim, candidate) pairs of dev claims vs the qrels, beside MiniLM cosine and chance."""
    qids = sample_ids(data.dev.queries, cfg.judge_eval_queries, cfg.seed)
    return judge_agreement(judge, data.retriever, {q: data.dev.queries[q] for q in qids}, data.dev.qrels, cfg.top_k,
                           label=cfg.llm, encoder=cfg.encoder, seed=cfg.seed)


def choose_judge(cfg: HopWeaverConfig, quality: pd.DataFrame) -> str:
    """'llm' or 'qrels', by the measured AUC when cfg.judge is 'auto'."""
    if cfg.judge != "auto":
        return cfg.judge
    auc = float(quality.iloc[0]["AUC vs qrels"])
    return "llm" if np.isfinite(auc) and auc >= cfg.judge_min_auc else "qrels"


@dataclass
class GeneratedData:
    examples: list
    groups: list[TrainGroup]
    path: Path
    judge: str
    stats: dict

    @property
    def source(self) -> str:
        """Where the training lines came from, for the fine-tuned row's model column."""
        y = generator_yield(self.examples)
        return (f"{y['usable']} HopWeaver-format line{'s' * (y['usable'] != 1)} from SciFact train claims as the "
                f"queries ({y['asked']} asked), "
                f"{'qrels' if self.judge == 'qrels' else 'LLM'} judge")


def training_data(cfg: HopWeaverConfig, data: HopData, judge_name: str, results_dir,
                  llm_judge: LLMJudge | None = None) -> GeneratedData:
    """The generator over SciFact train claims (the claims are the queries: offline we have no LLM that writes
    usable bridge queries, see llm_generator), diverse retrieval with the README lambdas, the chosen judge;
    written in HopWeaver's format and read back with its reader."""
    train = data.split.train
    qids = sample_ids(train.queries, cfg.gen_queries, cfg.seed)
    judge = QrelsJudge(train.qrels) if judge_name == "qrels" else llm_judge
    if judge is None:
        raise ValueError("judge 'llm' needs the LLM judge")
    with Timer() as t:
        examples = generate_contrastive_data(data.retriever, judge, queries={q: train.queries[q] for q in qids},
                                             top_k=cfg.top_k, stop_when_both=cfg.stop_when_both)
    path = write_hopweaver(cache_root(cfg, results_dir) / f"scifact_train.hopweaver.{judge_name}.jsonl", examples,
                           data.retriever.corpus)
    stats = {**generation_stats(examples), "judge": judge_name, "wall_s": round(t.s, 1)}
    return GeneratedData(examples, read_generated(path, examples), path, judge_name, stats)


@dataclass
class Reranked:
    model: CrossEncoder  # holding the selected weights (the zero-shot start when step 0 won on dev)
    selected: Selected
    generated: GeneratedData | None = None  # what it trained on


def start_row_name(model: CrossEncoder) -> str:
    """The ablation's name for the diverse candidates reordered by the reranker before fine-tuning: 'diverse_zs'
    (HopWeaver's zero-shot reranker) when its head is trained, 'diverse_untrained' (the fine-tuned row's start, not
    a zero-shot reranker) when the head is fresh."""
    return "diverse_zs" if has_trained_head(model) else "diverse_untrained"


def diverse_runs(cfg: HopWeaverConfig, data: HopData, ds: Dataset) -> tuple[Run, Run]:
    """(standard, diverse) runs of `ds`'s queries with the ablation lambdas (no source document)."""
    return (data.retriever.standard(ds.queries, top_k=cfg.top_k),
            data.retriever.diverse(ds.queries, top_k=cfg.top_k, weights=MMRWeights(*cfg.ablation_lambdas)))


def zero_shot_reranker(cfg: HopWeaverConfig) -> CrossEncoder:
    return CrossEncoder(cfg.reranker, max_length=cfg.max_length, init_seed=cfg.seed)


@RECIPE.training_step
def train_reranker(cfg: HopWeaverConfig, data: HopData, generated: GeneratedData, results_dir=None) -> Reranked:
    """FlagEmbedding's group CE (1 positive + group_size-1 negatives, repeated when fewer); the dev slice's diverse
    candidates, reranked, select the checkpoint (the zero-shot start is step 0). With `cfg.launch`, it first
    trains under accelerate launch (inputs from `results_dir`)."""
    model = zero_shot_reranker(cfg)
    dev = DevEvaluator.reranking(
        EvalSet.of(data.dev, diverse_runs(cfg, data, data.dev)[1], depth=cfg.top_k, measures=MEASURES[:2]),
        as_ranker=lambda _: model, batch_size=cfg.score_batch_size)
    settings = {k: v for k, v in settings_of(cfg).items() if k != "launch"}  # where it trains, not what
    out = run_dir("hopweaver", cfg.profile, "reranker", settings=settings,
                  data=fingerprint([[g.query, g.docs] for g in generated.groups]))
    selected = train_scorer(model, generated.groups, dev, GroupObjective("group_ce", cfg.group_size),
                            replace(cfg.train, output_dir=str(out)))
    return Reranked(model, selected, generated)


def ablation(cfg: HopWeaverConfig, data: HopData, reranked: Reranked, results_dir,
             demo: LLMDemo | None = None) -> Evaluated:
    """The four retrievers on SciFact test claims; one record each (nDCG@10, RR@10, R@10 at depth top_k), with
    paired tests vs BM25 top_k and vs standard; diverse_ft also vs its start and a +interp row. The start row is
    'diverse_zs' when the reranker is a zero-shot reranker, else 'diverse_untrained' (start_row_name). diverse_ft's
    params carry the generator's yield (asked / produced / usable) of its training data and of the LLM `demo`.
    Its `runs` by row name (standard, diverse, the start, diverse_ft) feed the notebook's diversity table."""
    test = data.test
    bm25 = top_k({q: r for q, r in load_run(results_dir, cfg.profile, "scifact", "test", "bm25").items()
                  if q in test.queries}, cfg.top_k)
    runs, costs = {}, {}  # a row's cost: Row fields (wall_s of the retrievers, rerank_s / train_s of the rerankers)
    with Timer() as t:
        runs["standard"], runs["diverse"] = diverse_runs(cfg, data, test)
    costs["standard"] = costs["diverse"] = {"wall_s": t.s / 2}
    start_model = zero_shot_reranker(cfg)
    start_name = start_row_name(start_model)
    for name, model in ((start_name, start_model), ("diverse_ft", reranked.model)):
        with Timer() as t:
            runs[name] = model.rerank(runs["diverse"], test.corpus, test.queries, depth=cfg.top_k,
                                      batch_size=cfg.score_batch_size)
        costs[name] = {"rerank_s": t.s}
    costs["diverse_ft"]["train_s"] = reranked.selected.train_s
    sel, lam = reranked.selected, cfg.ablation_lambdas
    models = {"standard": f"{cfg.encoder} dense top-{cfg.top_k}",
              "diverse": f"{cfg.encoder} dense + MMR over top-{3 * cfg.top_k} (l={lam})",
              "diverse_zs": f"diverse + {cfg.reranker} zero-shot",
              "diverse_untrained": f"diverse + {cfg.reranker} under an untrained score head (the fine-tuned row's start; "
                                   "not a zero-shot reranker)",
              "diverse_ft": f"diverse + {cfg.reranker} fine-tuned (group CE) on " + (
                  reranked.generated.source if reranked.generated is not None else "HopWeaver-format lines")}
    gen_yield = {**({"training data": generator_yield(reranked.generated.examples)} if reranked.generated else {}),
                 **({"llm demo (SmolLM2 queries and judge)": demo.yield_} if demo is not None else {})}
    evalset = EvalSet("scifact", data.test_split, test.queries, test.qrels, f"{cfg.encoder}-dense", cfg.top_k,
                      runs["diverse"], test.corpus, list(MEASURES))
    params = jsonable(settings_of(cfg))
    records = []
    for name, run in runs.items():
        baselines = {"bm25": bm25, **({"standard": runs["standard"]} if name != "standard" else {}),
                     **({"start": runs[start_name]} if name == "diverse_ft" else {})}
        p = {**params, **success_and_attempts(run, test.qrels),
             **({"best_step": sel.step, "dev_best": sel.value, "dev_start": sel.start_value,
                 "generator_yield": gen_yield} if name == "diverse_ft" else {})}
        method = f"hopweaver-{name.replace('_', '-')}"
        records.append(record_run(run, evalset, Row(PIPELINE, method, cfg.profile, models[name], p, cfg.seed,
                                                    RECIPE.references.get(method), **costs[name]), results_dir,
                                  baselines=baselines, training=data.split.provenance if name == "diverse_ft" else None))
    if cfg.interpolate:
        weight, curve = choose_interpolation_weight(sel.dev_run, diverse_runs(cfg, data, data.dev)[1], data.dev.qrels)
        mixed = interpolate(runs["diverse_ft"], runs["diverse"], weight)
        p = {**params, **success_and_attempts(mixed, test.qrels), "dev_curve": curve.to_dict("list"),
             "generator_yield": gen_yield, "interpolation_weight": weight}
        records.append(record_run(mixed, evalset, Row(PIPELINE, "hopweaver-diverse-ft+interp", cfg.profile,
                                                      models["diverse_ft"] + " + diverse", p, cfg.seed,
                                                      **costs["diverse_ft"]),  # the model's cost (experiment.Row)
                                  results_dir, baselines=baselines, training=data.split.provenance))
    ft = next(r for r in records if r.method == "hopweaver-diverse-ft")
    publish_selected("cross_encoder", reranked.model, ft, sel, results_dir, ModelCard(
        cfg.reranker, settings=params, training_data="HopWeaver contrastive data generated from SciFact train claims"))
    return Evaluated(records, runs)


# ---------------------------------------------------------------------------------------- HopWeaver's own data

OWN_DATASET = "hopweaver"
OWN_MEASURES = CANDIDATE_MEASURES  # accuracy (a positive above every negative) and MRR, ties against the positive
OWN_FIRST_STAGE = "hopweaver pos+neg"  # the candidates every row scores: each test line's own passages


@dataclass
class OwnData:
    """HopWeaver's published files: the train file split into train and dev lines, and the test file."""

    split: TrainingSplit
    test: Dataset

    @property
    def groups(self) -> list[TrainGroup]:
        """The train lines (dev slice excluded) as training groups, positives first."""
        return candidate_groups(self.split.train)

    def describe(self) -> str:
        return (f"{len(self.split.train.queries)} train + {len(self.split.dev.queries)} dev lines of "
                f"{self.split.provenance.source}; {len(self.test.queries)} test lines ({self.test.split})")


def load_own_data(cfg: HopWeaverConfig) -> OwnData:
    """`own_split` and `own_test`: the training lines and HopWeaver's test file."""
    return OwnData(own_split(cfg), own_test(cfg))


def own_split(cfg: HopWeaverConfig) -> TrainingSplit:
    """The train and dev lines. Unset train_file: the 'hopweaver' dataset's train file (data root, as every
    dataset), `own_train_examples` seeded lines of it, `own_dev_fraction` of them held out as dev. With
    `train_file` (your HopWeaver jsonl): all its lines, the dev lines from `eval_file` or else `own_dev_fraction` of
    them held out (seeded); a bad line stops the run naming file, line and field (data.hopweaver.read_candidates)."""
    if cfg.train_file:
        train = read_candidates(existing(cfg.train_file), "train", name=Path(cfg.train_file).name)
        if cfg.eval_file:
            dev = read_candidates(existing(cfg.eval_file), "dev", name=Path(cfg.eval_file).name)
            source = f"file:{Path(cfg.train_file).name}"
            return TrainingSplit(train, dev, TrainingQueries.of(source, {**train.queries, **dev.queries}))
        source = f"file:{Path(cfg.train_file).name}"
    else:
        train = load_dataset(OWN_DATASET, "train", root=cfg.data_root)
        train = train.subset(sample_ids(train.queries, cfg.own_train_examples, cfg.seed))
        source = f"{OWN_DATASET}/train"
    if len(train.queries) < 2:
        raise ValueError(f"{source}: {len(train.queries)} line(s): a dev slice needs 2 or more (or give eval_file)")
    train_ids, dev_ids = dev_slice(train.queries, fraction=cfg.own_dev_fraction, min_size=1, seed=cfg.seed)
    provenance = TrainingQueries.of(source, train.queries)
    return TrainingSplit(train.subset(train_ids), train.subset(dev_ids), provenance)


def own_test(cfg: HopWeaverConfig) -> Dataset:
    """`own_test_examples` lines of HopWeaver's test file (split 'test-<N>q' when a subset): never trained on."""
    test = load_dataset(OWN_DATASET, "test", root=cfg.data_root)
    keep = sample_ids(test.queries, cfg.own_test_examples, cfg.seed)
    if len(keep) < len(test.queries):
        test = test.subset(keep)
        test.split = f"test-{len(keep)}q"
    return test


def candidate_depth(ds: Dataset) -> int:
    """The most candidates any line has: the depth that reranks every candidate of every line."""
    return max(len(docs) for docs in ds.runs[CANDIDATES].values())


def bm25_candidates(ds: Dataset) -> Run:
    """BM25 (bm25s, the project's settings: k1 0.9, b 0.4, stemmed, stop words out) of each line's candidates for
    its query, with the split's passages as the collection (term statistics); a candidate sharing no term with
    the query scores 0."""
    index = BM25Index.build(ds.corpus)
    found = index.search(ds.queries, k=len(ds.corpus))
    return {q: {d: found.get(q, {}).get(d, 0.0) for d in docs} for q, docs in ds.runs[CANDIDATES].items()}


def train_on_own_data(cfg: HopWeaverConfig, own: OwnData) -> Reranked:
    """The diverse_ft reranker's recipe (same base model, group CE with group_size, `train`, its max_steps replaced by
    `own_max_steps` when set and no train_file is given) on the train lines; the dev lines, each one's candidates
    reranked, select the checkpoint by MRR (step 0, the untrained start, included)."""
    model = zero_shot_reranker(cfg)
    dev = own.split.dev
    evaluator = DevEvaluator.reranking(EvalSet.of(dev, dev.runs[CANDIDATES], depth=candidate_depth(dev), measures=()),
                                       as_ranker=lambda _: model, extra=lambda run: candidate_measures(run, dev.qrels),
                                       batch_size=cfg.score_batch_size)
    groups = own.groups
    settings = {k: v for k, v in settings_of(cfg).items() if k != "launch"}
    out = run_dir("hopweaver", cfg.profile, "own-data-reranker", settings=settings,
                  data=fingerprint([[[g.query, g.docs] for g in groups], sorted(dev.queries)]))
    # own_max_steps is the published-file row's budget; a file of your own trains with `train` as given
    max_steps = cfg.train.max_steps if cfg.train_file or cfg.own_max_steps is None else cfg.own_max_steps
    selected = train_scorer(model, groups, evaluator, GroupObjective("group_ce", cfg.group_size),
                            replace(cfg.train, output_dir=str(out), metric_for_best="MRR", max_steps=max_steps))
    return Reranked(model, selected)


def own_data_rows(cfg: HopWeaverConfig, own: OwnData, reranked: Reranked, results_dir) -> Evaluated:
    """Records on HopWeaver's test lines (accuracy, MRR; per-line values for the paired tests): BM25 of the
    candidates, the untrained start ('-zs' when its head is trained) vs BM25, and the fine-tuned reranker vs both."""
    test = own.test
    candidates, depth = test.runs[CANDIDATES], candidate_depth(test)
    start_model = zero_shot_reranker(cfg)
    start = "hopweaver-own-" + ("zs" if has_trained_head(start_model) else "untrained")
    runs, seconds = {}, {}
    for name, score in (("bm25", lambda: bm25_candidates(test)),
                        (start, lambda: start_model.rerank(candidates, test.corpus, test.queries, depth=depth,
                                                           batch_size=cfg.score_batch_size)),
                        ("hopweaver-own-ft", lambda: reranked.model.rerank(candidates, test.corpus, test.queries,
                                                                           depth=depth, batch_size=cfg.score_batch_size))):
        with Timer() as t:
            runs[name] = score()
        seconds[name] = t.s
    sel = reranked.selected
    models = {"bm25": "bm25s (k1 0.9, b 0.4, stemmed) over the test file's passages",
              start: f"{cfg.reranker} " + ("zero-shot" if start.endswith("zs") else
                                           "under an untrained score head (the fine-tuned row's start)"),
              "hopweaver-own-ft": f"{cfg.reranker} fine-tuned (group CE, group size {cfg.group_size}) on "
                                  f"{len(own.split.train.queries)} lines of " + (
                                      Path(cfg.train_file).name if cfg.train_file else
                                      "HopWeaver's train_data_sample.jsonl")}
    evalset = EvalSet(OWN_DATASET, test.split, test.queries, test.qrels, OWN_FIRST_STAGE, None, candidates,
                      test.corpus, list(OWN_MEASURES))
    params = jsonable(settings_of(cfg))
    multi = sum(1 for judged in test.qrels.values() if sum(g > 0 for g in judged.values()) > 1)
    facts = {"test_lines": len(test.queries), "lines_with_several_positives": multi}
    records = []
    for name, run in runs.items():
        baselines = {**({"bm25": runs["bm25"]} if name != "bm25" else {}),
                     **({"start": runs[start]} if name == "hopweaver-own-ft" else {})}
        cost = {"wall_s": seconds[name]} if name == "bm25" else {"rerank_s": seconds[name]}  # BM25: no reranker
        row = Row(PIPELINE, name, cfg.profile, models[name], {**params, **facts}, cfg.seed, **cost)
        training = None
        if name == "hopweaver-own-ft":
            training = own.split.provenance
            row = row.but(train_s=sel.train_s, params={
                **row.params, "best_step": sel.step, "steps": sel.result.global_step, "dev_best": sel.value,
                "dev_start": sel.start_value, "dev_lines": len(own.split.dev.queries)})
        records.append(record_run(run, evalset, row, results_dir, baselines=baselines, training=training,
                                  scorer=candidate_measures_per_query))
    return Evaluated(records, runs)
