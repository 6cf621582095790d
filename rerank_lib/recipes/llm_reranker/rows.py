"""One evaluated model per row: BM25, the zero-shot read-outs, the trained heads, decoders and students, and their
records. Every trained row goes through experiment.train_with_dev_selection (its untrained start is step 0, a
checkpoint candidate) and experiment.record_reranker (its row and its dev-weighted `+interp` row)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from ...data.pairs import TrainGroup
from ...data.types import Run
from ... import experiment
from ...experiment import (
    DevEvaluator, EvalSet, Selected, Timer, fingerprint, jsonable, publish_selected, record_reranker, record_run,
    run_dir, train_scorer,
)
from ...rerankers.llm_reranker import DecoderReranker, HeadOnlyRanker, LoraSettings
from ...models import weights_params
from ...results import Record
from ...export import ModelCard
from ...settings import snapshot
from ...training import TrainConfig
from ...training.groups import GroupObjective, batch_unit
from .data import LLMData
from .settings import DECODER_VARIANTS, PIPELINE, RECIPE, LLMRerankerConfig, slug

DEV_MEASURES = ("nDCG@10", "RR@10")


@dataclass
class Row:
    """One evaluated model: its test run, its (selected checkpoint's) dev run, its training (None for zero-shot)."""

    method: str
    test_run: Run
    dev_run: Run | None = None
    selected: Selected | None = None
    records: list[Record] = field(default_factory=list)
    ranker: Any = None


def test_set(cfg: LLMRerankerConfig, data: LLMData) -> EvalSet:
    """The (sampled) test queries over their BM25 top-depth: what every row of this recipe is measured on."""
    return EvalSet("scifact", data.test_split, data.test.queries, data.test.qrels, "bm25", cfg.depth, data.test_bm25,
                   data.test.corpus)


def rerank_test(cfg: LLMRerankerConfig, data: LLMData, ranker, **options) -> tuple[Run, float]:
    """The test queries' BM25 top-depth reranked by `ranker` (`options`: its rerank's, e.g. batch_size) and the wall
    seconds of that call, every score computed from the texts: a ranker over a frozen decoder's cached hidden
    states (`cache_features`) runs the decoder here, so the seconds are what the row costs to run."""
    cached = getattr(ranker, "cache_features", False)
    if cached:
        ranker.cache_features = False
    try:
        with Timer() as t:
            run = ranker.rerank(data.test_bm25, data.test.corpus, data.test.queries, depth=cfg.depth, **options)
    finally:
        if cached:
            ranker.cache_features = True
    return run, t.s


def record_row(cfg: LLMRerankerConfig, method: str, model: str, params, **more) -> experiment.Row:
    return experiment.Row(PIPELINE, method, cfg.profile, model, params, cfg.seed, **more)


def record_bm25(cfg: LLMRerankerConfig, data: LLMData, results_dir) -> Row:
    """BM25 on the same test queries (its own section of the results when the test set is a subset)."""
    row = record_row(cfg, "bm25", "bm25s (stemmed, title + text)",
                     {"depth": cfg.depth, "test_queries": cfg.test_queries}).but(pipeline="first_stage")
    return Row("bm25", data.test_bm25, records=[record_run(data.test_bm25, test_set(cfg, data), row, results_dir)])


ZERO_SHOT = {
    "yes": "the logit of 'Yes' (FlagEmbedding's score)",
    "yes-no": "the Yes-minus-No logit margin (ranks as the two-way P(Yes) of RAG-Retrieval's teacher)",
}


def zero_shot(cfg: LLMRerankerConfig, llm: DecoderReranker, data: LLMData, results_dir, init: str = "yes") -> Row:
    """A zero-shot read-out of the FlagEmbedding prompt's last position, from the cached hidden states: 'yes' (the
    Yes logit) or 'yes-no' (the Yes-minus-No margin). Each is the untrained start of a score head of that init."""
    if init not in ZERO_SHOT:
        raise ValueError(f"init must be one of {list(ZERO_SHOT)}")
    start = HeadOnlyRanker(llm, init=init, feature_batch_size=cfg.feature_batch_size)
    test_run, seconds = rerank_test(cfg, data, start)
    method = f"{slug(cfg.llm)}-{init}-zero-shot"
    row = record_row(cfg, method, f"{cfg.llm} zero-shot, FlagEmbedding prompt: {ZERO_SHOT[init]}",
                     jsonable({**snapshot(cfg), **weights_params(cfg.llm), "zero_shot": init}), rerank_s=seconds,
                     reference=RECIPE.references.get(cfg.llm) if init == "yes" else None)  # FE's own score
    record = record_run(test_run, test_set(cfg, data), row, results_dir, baselines={"bm25": data.test_bm25})
    return Row(method, test_run, records=[record])


@dataclass(frozen=True)
class RowTraining:
    """How one trained row trains and what it is called: `loss` with `train`; `name` and `key` name its run folder,
    `method`, `model` and `params` its records; `batch_size` scores its dev slice; `publish_as` (an export kind,
    None: not published) exports the selected model with its card."""

    loss: str
    train: TrainConfig
    name: str
    method: str
    model: str
    params: dict
    batch_size: int
    key: dict
    publish_as: str | None = None


@RECIPE.training_step
def train_ranker(cfg: LLMRerankerConfig, data: LLMData, results_dir, ranker, groups: Sequence[TrainGroup],
                 how: RowTraining, start: Row) -> Row:
    """Train `ranker` on `groups` as `how` says, keep the dev-selected checkpoint (the start is step 0), rerank the
    test queries with it and record the row and its `+interp` row against BM25 and `start`."""
    loss, train, name, method, model, key = how.loss, how.train, how.name, how.method, how.model, how.key
    folder = run_dir("llm_reranker", cfg.profile, name, settings={**key, "train": snapshot(train), "loss": loss},
                     data=fingerprint([[g.query, g.docs, g.labels] for g in groups] + [sorted(data.dev.queries)]))
    dev = DevEvaluator.reranking(EvalSet.of(data.dev, data.dev_bm25, depth=cfg.dev_depth, measures=DEV_MEASURES),
                                 as_ranker=lambda _: ranker, batch_size=how.batch_size)
    sel = train_scorer(ranker, groups, dev, GroupObjective(loss, cfg.group_size),
                       replace(train, output_dir=str(folder)))
    test_run, seconds = rerank_test(cfg, data, ranker)
    llm_weights = {} if how.publish_as else weights_params(cfg.llm)  # the LLM rows say which weights (Q4_1 offline)
    params = jsonable({**snapshot(cfg), **llm_weights, **how.params, "selected_step": sel.step,
                       "selected_is_start": sel.is_start, "dev_selected": sel.value, "dev_start": sel.start_value, "steps": sel.result.global_step})
    records = record_reranker(
        test_run, test_set(cfg, data), record_row(cfg, method, model, params, rerank_s=seconds, train_s=sel.train_s),
        results_dir,
        baselines={"bm25": data.test_bm25, "start": start.test_run},
        training=data.split.used([g.query_id for g in data.groups], data.dev.queries),  # what trained and selected
        dev=EvalSet.of(data.dev, data.dev_bm25), dev_run=sel.dev_run if cfg.interpolate else None)
    if how.publish_as is not None:  # a model with a peer format (the distilled cross-encoder): exported with its card
        publish_selected(how.publish_as, ranker, records[0], sel, results_dir,
                         ModelCard(key.get("student", model), settings=params), name=method)
    return Row(method, test_run, sel.dev_run, sel, records, ranker)


def train_head(cfg: LLMRerankerConfig, llm: DecoderReranker, data: LLMData, loss: str, start: Row,
               results_dir) -> Row:
    """RAG-Retrieval's score head on the frozen decoder's cached last-token state, trained with `loss`. `start` is
    the zero-shot row of `cfg.head_init`: the head before training (step 0 of its curve)."""
    probe = HeadOnlyRanker(llm, init=cfg.head_init, init_seed=cfg.seed, feature_batch_size=cfg.feature_batch_size)
    return train_ranker(cfg, data, results_dir, probe, data.groups, RowTraining(
        loss=loss, train=cfg.head_train, name=f"head-{loss}", method=f"{slug(cfg.llm)}-head-{loss.replace('_', '-')}",
        model=f"{cfg.llm} frozen + linear score head from the {cfg.head_init} row(s) ({loss})",
        params={"loss": loss, "recipe": "head-only"}, batch_size=256,
        key={"llm": cfg.llm, "max_length": cfg.max_length, "head_init": cfg.head_init, "seed": cfg.seed}), start)


def decoder_scale(cfg: LLMRerankerConfig, train: TrainConfig, loss: str, n_groups: int) -> str:
    """How much a decoder variant trains, for its row: '32 steps x 1 group of 8 (64 training queries)' (a batch
    counts groups for group losses, pairs for pointwise ones)."""
    size = train.per_device_batch_size * train.gradient_accumulation_steps
    length = f"{train.max_steps} steps" if train.max_steps else f"{train.num_epochs:g} epoch(s)"
    return f"{length} x {size} {batch_unit(loss, size, cfg.group_size)} ({n_groups} training queries)"


def train_decoder(cfg: LLMRerankerConfig, variant: str, data: LLMData, start: Row, results_dir) -> Row:
    """The whole decoder (the paper path): 'lora-yes' (FlagEmbedding LoRA on the Yes logit, group CE) or
    'full-score' (RAG-Retrieval: every weight, fresh score head, point_ce)."""
    head, prompt, lora, loss = DECODER_VARIANTS[variant]
    model_name = cfg.llm if head == "yes" else (cfg.score_llm or cfg.llm)
    settings = LoraSettings(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout) if lora else None
    ranker = DecoderReranker(model_name, head=head, prompt=prompt, max_length=cfg.max_length, lora=settings,
                             init_seed=cfg.seed)
    ranker.cache_features = False  # the backbone changes every step: dev scores run the model itself
    if head == "score":  # a fresh head: its own untrained start, not the zero-shot Yes logit
        start_run = ranker.rerank(data.test_bm25, data.test.corpus, data.test.queries, depth=cfg.depth)
        start = Row(f"{slug(model_name)}-score-untrained", start_run)
    train = cfg.decoder_train
    if ranker.device.type == "cpu":
        train = replace(train, mixed_precision="no")
    return train_ranker(cfg, data, results_dir, ranker, data.groups, RowTraining(
        loss=loss, train=train, name=variant, method=f"{slug(model_name)}-{variant}", batch_size=cfg.feature_batch_size,
        model=f"{model_name} ({variant}: {'LoRA r%d' % cfg.lora_r if lora else 'all weights'}, {loss}; "
              f"{decoder_scale(cfg, train, loss, len(data.groups))})",
        params={"loss": loss, "recipe": variant, "scale": decoder_scale(cfg, train, loss, len(data.groups))},
        key={"model": model_name, "max_length": cfg.max_length, "lora": snapshot(settings) if lora else None,
             "seed": cfg.seed}), start)
