"""Evaluation of the trained models: FIRST (and generation where asked) on the fold's evaluation year and
SciFact test, each with its '+interp' row, and the rendered prompt the model reads."""
from __future__ import annotations

from ...experiment import Timer, choose_interpolation_weight, record_interpolation, record_run, save_run
from .evalsets import EvalSet, _method, rerank_set
from .models import load_base_tokenizer, load_lm, reranker, use_letters
from .settings import MEASURE, PIPELINE, REFERENCES, RankLLMConfig
from .training import Trained
from .zeroshot import ZeroShot, _params


def evaluate_trained(cfg: RankLLMConfig, trained: Trained, sets: dict[str, EvalSet], zs: ZeroShot, results_dir,
                     with_scifact: bool) -> tuple[list, list]:
    """FIRST on the fold's evaluation year (and SciFact test for the first fold), generation decoding where asked,
    each with its '+interp' row (weight chosen on the matching dev slice). Returns (records, window results)."""
    model, tokenizer = load_lm(cfg, str(trained.model_dir), tokenizer_from=trained.base)
    targets = [(trained.fold.evaluate_on, "dl")] + ([("scifact", "scifact")] if with_scifact else [])
    records, windows = [], []
    label = f"{trained.base} fine-tuned ({trained.objective}, {cfg.ranking_loss if trained.objective != 'generation' else 'CE'})"
    for name, dev_key in targets:
        es = sets[name]
        decode = trained.objective == "generation" and name in cfg.generation_eval
        decodings = ["first"] + (["generate"] if decode else [])
        if trained.objective == "generation" and not decode and name == "trec-dl-2019" and cfg.quality_queries:
            # generation decoding on the quality sample only: output-quality counts and latency, no metric row
            sample = sorted(es.top)[: cfg.quality_queries]
            _, w = rerank_set(reranker(cfg, model, tokenizer, "generate"), es, cfg, sample)
            windows += [dict(x.to_dict(), dataset=name, model=f"{trained.objective} ({trained.fold.train_on})")
                        for x in w]
        for decoding in decodings:
            rr = reranker(cfg, model, tokenizer, decoding)
            with Timer() as t:
                run, w = rerank_set(rr, es, cfg)
            method = _method(cfg, trained.objective, "first" if decoding == "first" else "gen")
            save_run(run, results_dir, cfg.profile, name, es.split, method)
            windows += [dict(x.to_dict(), dataset=name, model=f"{trained.objective} ({trained.fold.train_on})")
                        for x in w]
            ref = REFERENCES.get((name, trained.objective))
            common = dict(pipeline=PIPELINE, dataset=name, split=es.split, profile=cfg.profile, results_dir=results_dir,
                          baselines={"bm25": es.bm25, "start": zs.runs[name]}, model=label, first_stage="bm25",
                          depth=cfg.depth, params=_params(cfg, objective=trained.objective, decoding=decoding,
                                                          train_on=trained.fold.train_on,
                                                          best_step=trained.result.best_step),
                          seed=cfg.seed, training=trained.fold.provenance, eval_queries=es.dataset.queries)
            records.append(record_run(run, es.dataset.qrels, method=method, wall_s=t.s + trained.wall_s,
                                      reference={MEASURE: {"value": ref[0], "source": ref[1]}} if ref else None,
                                      **common))
            if decoding == "first":
                dev = trained.fold.dev[dev_key]
                if dev_key not in trained.dev_runs:  # SciFact dev: reranked once, by the selected checkpoint
                    trained.dev_runs[dev_key], _ = rerank_set(rr, dev, cfg, progress=False)
                weight, _ = choose_interpolation_weight(trained.dev_runs[dev_key], dev.bm25, dev.dataset.qrels)
                interp = {k: v for k, v in common.items() if k != "first_stage"}  # record_interpolation names it
                records.append(record_interpolation(run, es.bm25, weight, es.dataset.qrels, method=method, **interp))
    return records, windows


def evaluate_all(cfg: RankLLMConfig, trained: list[Trained], sets: dict[str, EvalSet], zs: ZeroShot,
                 results_dir) -> tuple[list, list]:
    """Each trained model on its fold's evaluation year; the first fold's models on SciFact test too."""
    records, windows = [], []
    first_fold = cfg.folds[0][0]
    for tr in trained:
        r, w = evaluate_trained(cfg, tr, sets, zs, results_dir, with_scifact=tr.fold.train_on == first_fold)
        records += r
        windows += w
    return records, windows


def example_prompt(cfg: RankLLMConfig, sets: dict[str, EvalSet], dataset: str = "trec-dl-2019") -> str:
    """The rendered prompt of the first window of the first query (what the model reads), with its token count."""
    from ...data.trec import ranked
    from ...listwise.prompts import fit_prompt, template_for

    tokenizer = load_base_tokenizer(cfg, cfg.model)
    es = sets[dataset]
    qid = sorted(es.top)[0]
    docs = [es.dataset.corpus[d] for d, _ in ranked(es.top[qid])][-cfg.window:]
    alpha = use_letters(cfg, tokenizer)
    prompt = fit_prompt(tokenizer, es.dataset.queries[qid], [(d.title, d.text) for d in docs], template_for(alpha),
                        cfg.max_words, cfg.context_size, cfg.chat_template)
    return (f"# {len(docs)} passages, {prompt.n_tokens} tokens, {prompt.max_words} words per passage at most, "
            f"{'letter' if alpha else 'numeric'} identifiers\n{prompt.text}")
