"""One evaluated model per row: BM25, the zero-shot read-outs, the trained heads and decoders, and their records."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from ...data.pairs import TrainGroup
from ...data.types import Run
from ...evaluation import evaluate, interpolate
from ...training.groups import fit
from ...rerankers.llm_reranker import DecoderReranker, HeadOnlyRanker, LoraSettings
from ...training import TrainConfig
from ...experiment import DevEvaluator, Timer, choose_interpolation_weight, jsonable, record_run
from .data import LLMData
from .settings import DECODER_VARIANTS, PIPELINE, LLMRerankerConfig, _slug, cache_root


@dataclass
class Row:
    """One evaluated model: its test run, dev run, training result (None for zero-shot) and record(s)."""

    method: str
    test_run: Run
    dev_run: Run
    result: object = None
    records: list = field(default_factory=list)
    start_dev: dict | None = None  # dev metrics of its starting point (step 0 of the learning curve)


def _common(cfg, data: LLMData, results_dir, trained: bool) -> dict:
    common = dict(pipeline=PIPELINE, dataset="scifact", split=data.test_split, profile=cfg.profile,
                  results_dir=results_dir, first_stage="bm25", depth=cfg.depth, seed=cfg.seed)
    if trained:
        used = data.split.used([g.query_id for g in data.groups], data.dev.queries)  # what trained and selected
        common.update(training=used, eval_queries=data.test.queries)
    return common


def record_bm25(cfg: LLMRerankerConfig, data: LLMData, results_dir):
    """BM25 on the same test queries (its own section of the results when the test set is a subset)."""
    return record_run(data.test_bm25, data.test.qrels, method="bm25", model="bm25s (stemmed, title + text)",
                      params={"depth": cfg.depth, "test_queries": cfg.test_queries},
                      **{**_common(cfg, data, results_dir, False), "pipeline": "first_stage"})


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
    with Timer() as t:
        test_run = start.rerank(data.test_bm25, data.test.corpus, data.test.queries, depth=cfg.depth)
        dev_run = start.rerank(data.dev_bm25, data.dev.corpus, data.dev.queries, depth=cfg.dev_depth)
    method = f"{_slug(cfg.llm)}-{init}-zero-shot"
    record = record_run(test_run, data.test.qrels, method=method,
                        model=f"{cfg.llm} zero-shot, FlagEmbedding prompt: {ZERO_SHOT[init]}",
                        baselines={"bm25": data.test_bm25}, params=jsonable({**asdict(cfg), "zero_shot": init}),
                        wall_s=t.s, **_common(cfg, data, results_dir, False))
    return Row(method, test_run, dev_run, records=[record],
               start_dev=evaluate(dev_run, data.dev.qrels, ["nDCG@10", "RR@10"]))


def _dev_evaluator(cfg, data: LLMData, batch_size: int) -> DevEvaluator:
    return DevEvaluator.reranking(data.dev_bm25, data.dev.corpus, data.dev.queries, data.dev.qrels, depth=cfg.dev_depth,
                                  measures=["nDCG@10", "RR@10"], batch_size=batch_size)


def _output_dir(cfg, results_dir, name: str, payload) -> str:
    key = hashlib.sha256(json.dumps(jsonable({"p": payload}), sort_keys=True).encode()).hexdigest()[:12]
    return str(cache_root(cfg, results_dir) / "checkpoints" / f"{name}-{key}")


def _fingerprint(groups: list[TrainGroup]) -> str:
    return hashlib.sha256(json.dumps([[g.query, g.docs, g.labels] for g in groups]).encode()).hexdigest()[:16]


def _dev_run(dev: DevEvaluator, ranker, result) -> Run:
    run = dev.run_at(result.eval_history, result.best_step) if result.best_step is not None else None
    return run if run is not None else dev.produce(ranker)  # resumed from a finished run: score the best weights


def _record_interp(reranked: Run, first_stage_run: Run, weight: float, qrels, *, method: str, params: dict, **kwargs):
    """common.record_interpolation, which cannot also name the first stage (its run parameter is called
    `first_stage`, the same name as record_run's label): the same interpolation and record, with the label."""
    return record_run(interpolate(reranked, first_stage_run, weight), qrels, method=f"{method}+interp",
                      params={**params, "interpolation_weight": weight}, **kwargs)


def _evaluate_trained(cfg, data: LLMData, results_dir, method: str, ranker, result, dev_run: Run, start: Row,
                      model: str, params: dict, wall_s: float, depth: int | None = None) -> tuple[list, Run]:
    with Timer() as t:
        test_run = ranker.rerank(data.test_bm25, data.test.corpus, data.test.queries, depth=depth or cfg.depth)
    common = _common(cfg, data, results_dir, True)
    params = jsonable({**asdict(cfg), **params, "best_step": result.best_step, "dev_best": result.best_metric,
                        "steps": result.global_step})
    baselines = {"bm25": data.test_bm25, "start": start.test_run}
    records = [record_run(test_run, data.test.qrels, method=method, model=model, baselines=baselines, params=params,
                          wall_s=wall_s + t.s, **common)]
    if cfg.interpolate:
        weight, curve = choose_interpolation_weight(dev_run, data.dev_bm25, data.dev.qrels)
        records.append(_record_interp(test_run, data.test_bm25, weight, data.test.qrels, method=method,
                                            model=model, baselines=baselines,
                                            params={**params, "dev_curve": curve.to_dict("list")},
                                            wall_s=wall_s + t.s, **common))
    return records, test_run


def train_head(cfg: LLMRerankerConfig, llm: DecoderReranker, data: LLMData, loss: str, start: Row,
               results_dir) -> Row:
    """RAG-Retrieval's score head on the frozen decoder's cached last-token state, trained with `loss` via fit.
    `start` is the zero-shot row of `cfg.head_init` (the head before training): its dev metrics are step 0."""
    probe = HeadOnlyRanker(llm, init=cfg.head_init, init_seed=cfg.seed, feature_batch_size=cfg.feature_batch_size)
    dev = _dev_evaluator(cfg, data, batch_size=256)
    start_dev = start.start_dev
    if start_dev is None:  # a start without dev metrics: score the untrained head once
        start_dev = evaluate(probe.rerank(data.dev_bm25, data.dev.corpus, data.dev.queries, depth=cfg.dev_depth),
                             data.dev.qrels, ["nDCG@10", "RR@10"])
    train_cfg = TrainConfig(
        output_dir=_output_dir(cfg, results_dir, f"head-{loss}", [asdict(cfg), loss, _fingerprint(data.groups)]),
        seed=cfg.seed, learning_rate=cfg.head_lr, num_epochs=cfg.head_epochs, per_device_batch_size=cfg.head_batch,
        warmup_ratio=0.0, weight_decay=0.0, mixed_precision="no", log_every_steps=1,
        eval_every_steps=cfg.head_eval_every, save_every_steps=200, keep_last_checkpoints=1,
        metric_for_best="nDCG@10")
    with Timer() as t:
        result = fit(probe, data.groups, loss=loss, config=train_cfg, group_size=cfg.group_size, eval_fn=dev)
    dev_run = _dev_run(dev, probe, result)
    method = f"{_slug(cfg.llm)}-head-{loss.replace('_', '-')}"
    records, test_run = _evaluate_trained(
        cfg, data, results_dir, method, probe, result, dev_run, start,
        model=f"{cfg.llm} frozen + linear score head from the {cfg.head_init} row(s) ({loss})",
        params={"loss": loss, "recipe": "head-only"}, wall_s=t.s)
    row = Row(method, test_run, dev_run, result, records, start_dev)
    row.ranker = probe
    return row


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
        start = Row(f"{_slug(model_name)}-score-untrained", start_run, {})
    dev = _dev_evaluator(cfg, data, batch_size=cfg.feature_batch_size)
    train_cfg = TrainConfig(
        output_dir=_output_dir(cfg, results_dir, variant, [asdict(cfg), variant, _fingerprint(data.groups)]),
        seed=cfg.seed, learning_rate=cfg.decoder_lr, num_epochs=cfg.decoder_epochs, max_steps=cfg.decoder_max_steps,
        per_device_batch_size=cfg.decoder_batch, warmup_ratio=0.1, log_every_steps=1,
        eval_every_steps=cfg.decoder_eval_every, save_every_steps=50, keep_last_checkpoints=1,
        metric_for_best="nDCG@10", mixed_precision="no" if ranker.device.type == "cpu" else "auto")
    with Timer() as t:
        result = fit(ranker, data.groups, loss=loss, config=train_cfg, group_size=cfg.group_size, eval_fn=dev)
    dev_run = _dev_run(dev, ranker, result)
    method = f"{_slug(model_name)}-{variant}"
    records, test_run = _evaluate_trained(
        cfg, data, results_dir, method, ranker, result, dev_run, start,
        model=f"{model_name} ({variant}: {'LoRA r%d' % cfg.lora_r if lora else 'all weights'}, {loss})",
        params={"loss": loss, "recipe": variant}, wall_s=t.s)
    row = Row(method, test_run, dev_run, result, records)
    row.ranker = ranker
    return row
