"""13_: HopWeaver's reranker training (diverse retrieval, contrastive data generator, fine-tuned reranker) and its
retrieval ablation, measured with ranking metrics on SciFact.

Steps (the notebook calls them in order):
  retriever        the dense retriever (all-MiniLM-L6-v2, corpus encoded once, cached) wrapped as HopWeaver's
                   standard / diverse (MMR) retriever.
  llm_generator    the generator as published, with SmolLM2 for both LLM steps, on a few source documents: the
                   proposed bridge queries and the judge's verdicts, shown as they are.
  judge_quality    the LLM judge against SciFact qrels on dev-slice claims (AUC, accuracy, positive rate), beside
                   MiniLM's cosine and chance: it decides, measured, which judge labels the training data.
  training_data    the generator over SciFact train claims with the chosen judge (offline: the qrels, the
                   documented fallback) -> HopWeaver's {query, pos, neg} file, read back with its reader.
  train_reranker   MiniLM cross-encoder fine-tuned on it with FlagEmbedding's group CE (HopWeaver trains
                   bge-reranker-v2-m3 with FlagEmbedding's encoder_only trainer, train_group_size 4).
  ablation         SciFact test claims, top_k candidates each:
                     standard   = the dense retriever's top_k (RetrieverWrapper.retrieve_related_documents);
                     diverse    = MMR over its top 3*top_k (l1 0.87, l2 0.03, l3 0.1 as rerank_ablation_test.py;
                                  a claim has no source document, so the l2 term is 0);
                     diverse_zs = diverse, then reordered by the zero-shot reranker (retrieve_with_rerank reranks
                                  the top_k diverse documents; offline the zero-shot reranker is MiniLM under an
                                  untrained head, the starting point of diverse_ft; online bge-reranker-v2-m3);
                     diverse_ft = diverse, reordered by the reranker fine-tuned on the generated data.
                   Measured by nDCG@10, RR@10, R@10 and HopWeaver's own success rate (a relevant document among
                   the top_k = Success@top_k) and average attempts (rank of the first relevant one, successes only).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import load_dataset
from ..data.pairs import TrainGroup, read_hopweaver
from ..data.trec import ranked, top_k
from ..data.types import Dataset, Run
from ..evaluation import interpolate
from ..hopweaver import (
    DiverseRetriever, LLMJudge, LLMQueryProposer, MMRWeights, QrelsJudge, generate_contrastive_data, sample_sources,
    write_hopweaver,
)
from ..rerankers import CrossEncoder, RerankEvaluator, fit
from ..results import save_figure
from ..retrievers.bi_encoder import BiEncoder
from ..training import TrainConfig
from ..experiment import Timer, TrainingSplit, choose_interpolation_weight, comparison_cells, jsonable, load_run, pipeline_cache, record_interpolation, record_run, sample_ids, scifact_training_split
from ..settings import resolve_profile

PIPELINE = "cross_encoder"
ABLATION = ("standard", "diverse", "diverse_zs", "diverse_ft")


@dataclass(frozen=True)
class HopWeaverConfig:
    profile: str = "default"
    seed: int = 13
    data_root: str | None = None
    encoder: str = "minilm-l6"  # the dense retriever (HopWeaver: a FlashRAG dense index, e.g. E5/GTE)
    top_k: int = 10  # candidates per query (HopWeaver's max_doc_candidates / --candidates)
    generation_lambdas: tuple[float, float, float] = (0.85, 0.05, 0.1)  # README
    ablation_lambdas: tuple[float, float, float] = (0.87, 0.03, 0.1)  # rerank_ablation_test.py
    # the LLM steps as published (SmolLM2 offline)
    llm: str = "smollm2-135m-instruct"
    llm_sources: int = 3  # source documents for the LLM proposer + judge demonstration
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
    learning_rate: float = 2e-4
    batch_groups: int = 8
    max_steps: int | None = 150  # at 40 steps dev nDCG@10 was still rising (0.34 -> 0.49)
    num_epochs: int = 10
    eval_every_steps: int | None = 25
    dev_queries: int | None = 40
    test_queries: int | None = None  # SciFact test claims (None: all 300)
    score_batch_size: int = 64
    interpolate: bool = True


PROFILES = {
    "smoke": {"top_k": 4, "llm_sources": 1, "judge_eval_queries": 1, "judge_max_length": 224, "gen_queries": 12,
              "max_length": 64, "batch_groups": 2, "max_steps": 3, "eval_every_steps": None, "dev_queries": 3,
              "test_queries": 6, "score_batch_size": 32},
    "default": {},
    # HopWeaver's own runs: bge-reranker-v2-m3 fine-tuned with lr 5e-6..7e-6 (README; the script's default 6e-5),
    # 2-3 epochs (script: 10), batch 16 x accumulation 4, group 4; the LLM steps with a hub instruct model.
    "paper": {"llm": "Qwen/Qwen2.5-7B-Instruct", "llm_sources": 200, "judge_eval_queries": 50, "judge_max_length": 1024,
              "judge": "llm", "stop_when_both": True, "reranker": "BAAI/bge-reranker-v2-m3", "max_length": 1024,
              "learning_rate": 6e-6, "batch_groups": 64, "max_steps": None, "num_epochs": 2, "eval_every_steps": 100,
              "dev_queries": None},
}


def config(profile: str = "default", **overrides) -> HopWeaverConfig:
    for name in ("generation_lambdas", "ablation_lambdas"):
        if overrides.get(name) is not None:
            overrides[name] = tuple(overrides[name])
    cfg = resolve_profile(HopWeaverConfig(), PROFILES, profile, overrides)
    if cfg.judge not in ("auto", "llm", "qrels"):
        raise ValueError(f"judge must be 'auto', 'llm' or 'qrels', got {cfg.judge!r}")
    for lam in (cfg.generation_lambdas, cfg.ablation_lambdas):
        MMRWeights(*lam).normalised()  # validates
    return cfg


def cache_root(cfg: HopWeaverConfig, results_dir) -> Path:
    return pipeline_cache(results_dir, cfg.profile, "hopweaver")


# ---------------------------------------------------------------------------------------------------- data


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
    test_all = load_dataset("scifact", "test", root=cfg.data_root)
    test_bm25 = load_run(results_dir, cfg.profile, "scifact", "test", "bm25")
    judged = sorted(q for q in test_bm25 if q in test_all.qrels)
    test_ids = sample_ids(judged, cfg.test_queries, cfg.seed)
    test = test_all.subset(test_ids)
    test_split = "test" if len(test_ids) == len(test_all.qrels) else f"test-{len(test_ids)}q"
    encoder = BiEncoder(cfg.encoder)  # 01_first_stage's settings: the corpus encoding is shared (cached)
    retriever = DiverseRetriever(encoder, test_all.corpus, MMRWeights(*cfg.generation_lambdas))
    return HopData(split, dev, test, test_split, retriever)


# ---------------------------------------------------------------------------------------------------- LLM steps


@dataclass
class LLMDemo:
    examples: list
    raw: list[str]
    table: pd.DataFrame
    path: Path
    wall_s: float


def llm_generator(cfg: HopWeaverConfig, data: HopData, results_dir, judge: LLMJudge) -> LLMDemo:
    """The published generator with the LLM for both steps, on `llm_sources` source documents (judged abstracts of
    train claims, so a reader can see the topic): proposed query, candidates, verdicts, written as HopWeaver jsonl."""
    corpus = data.retriever.corpus
    sources = sample_sources(data.split.train.qrels, cfg.seed, cfg.llm_sources)
    proposer = LLMQueryProposer(cfg.llm)
    retriever = data.retriever
    with Timer() as t:
        examples = generate_contrastive_data(retriever, judge, sources=sources, proposer=proposer, top_k=cfg.top_k,
                                             stop_when_both=True)
    path = write_hopweaver(cache_root(cfg, results_dir) / "llm_demo.hopweaver.jsonl", examples, corpus)
    rows = []
    for e, raw in zip(examples, proposer.raw):
        rows.append({"source (title)": corpus[e.source_id].title[:60], "claim judged for it": data.split.train.queries[e.query_id][:70],
                     "LLM output": raw.strip().replace("\n", " ")[:110], "parsed query": e.query,
                     "judged": len(e.verdicts), "pos": len(e.pos), "neg": len(e.neg), "usable": e.usable})
    return LLMDemo(examples, proposer.raw, pd.DataFrame(rows), path, t.s)


def judge_quality(cfg: HopWeaverConfig, data: HopData, judge: LLMJudge) -> tuple[pd.DataFrame, dict]:
    """The LLM judge's P(Yes) on (claim, candidate) pairs of dev claims vs the qrels, beside MiniLM cosine and chance."""
    from sklearn.metrics import roc_auc_score

    qids = sample_ids(data.dev.queries, cfg.judge_eval_queries, cfg.seed)
    found = data.retriever.diverse({q: data.dev.queries[q] for q in qids}, top_k=cfg.top_k)
    pairs = [(q, d) for q in qids for d, _ in ranked(found[q])]
    truth = np.array([data.dev.qrels.get(q, {}).get(d, 0) > 0 for q, d in pairs])
    corpus = data.retriever.corpus
    with Timer() as t:
        probs = np.concatenate([judge.probabilities(data.dev.queries[q], None, [corpus[d] for d, _ in ranked(found[q])])
                                for q in qids])
    cosine = np.array([found_cos for found_cos in _cosines(data, qids, pairs)])
    rng = np.random.default_rng(cfg.seed)

    def row(name, scores, decisions=None):
        both = truth.any() and (~truth).any()
        out = {"judge": name, "AUC vs qrels": round(float(roc_auc_score(truth, scores)), 3) if both else float("nan")}
        if decisions is not None:
            out.update({"accuracy": round(float((decisions == truth).mean()), 3),
                        "says positive": round(float(decisions.mean()), 3)})
        return out

    table = pd.DataFrame([
        row(f"{cfg.llm} P(Yes) (>= {cfg.judge_threshold})", probs, probs >= cfg.judge_threshold),
        row("minilm-l6 cosine", cosine),
        row("chance (random scores)", rng.random(len(truth))),
        {"judge": "qrels (truth)", "AUC vs qrels": 1.0, "accuracy": 1.0, "says positive": round(float(truth.mean()), 3)},
    ]).set_index("judge")
    info = {"pairs": len(pairs), "claims": len(qids), "relevant pairs": int(truth.sum()), "wall_s": round(t.s, 1),
            "mean P(Yes) relevant": float(probs[truth].mean()) if truth.any() else float("nan"),
            "mean P(Yes) other": float(probs[~truth].mean()) if (~truth).any() else float("nan")}
    return table, info


def _cosines(data: HopData, qids, pairs) -> list[float]:
    vecs = data.retriever.query_vectors([data.dev.queries[q] for q in qids])
    qv = dict(zip(qids, vecs))
    emb, row = data.retriever.embeddings, data.retriever.row
    return [float(emb[row[d]] @ qv[q]) for q, d in pairs]


def choose_judge(cfg: HopWeaverConfig, quality: pd.DataFrame) -> str:
    """'llm' or 'qrels', by the measured AUC when cfg.judge is 'auto'."""
    if cfg.judge != "auto":
        return cfg.judge
    auc = float(quality.iloc[0]["AUC vs qrels"])
    return "llm" if np.isfinite(auc) and auc >= cfg.judge_min_auc else "qrels"


# ---------------------------------------------------------------------------------------------------- training data


@dataclass
class GeneratedData:
    examples: list
    groups: list[TrainGroup]
    path: Path
    judge: str
    stats: dict


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
    groups = read_hopweaver(path)
    usable = [e for e in examples if e.usable]
    for g, e in zip(groups, usable):
        g.query_id, g.doc_ids = e.query_id, e.pos + e.neg
    stats = {"attempts": len(examples), "usable": len(usable),
             "no positive in top_k": sum(1 for e in examples if e.query and not e.pos),
             "no negative": sum(1 for e in examples if e.pos and not e.neg),
             "pos per line": round(float(np.mean([len(e.pos) for e in usable])), 2) if usable else 0.0,
             "neg per line": round(float(np.mean([len(e.neg) for e in usable])), 2) if usable else 0.0,
             "judge": judge_name, "wall_s": round(t.s, 1)}
    return GeneratedData(examples, groups, path, judge_name, stats)


# ---------------------------------------------------------------------------------------------------- reranker


@dataclass
class Reranked:
    model: CrossEncoder
    result: object
    dev_run: Run
    start_dev: dict
    wall_s: float


def diverse_runs(cfg: HopWeaverConfig, data: HopData, ds: Dataset) -> tuple[Run, Run]:
    """(standard, diverse) runs of `ds`'s queries with the ablation lambdas (no source document)."""
    retriever = data.retriever
    weights = retriever.weights
    retriever.weights = MMRWeights(*cfg.ablation_lambdas)
    try:
        standard = retriever.standard(ds.queries, top_k=cfg.top_k)
        diverse = retriever.diverse(ds.queries, top_k=cfg.top_k)
    finally:
        retriever.weights = weights
    return standard, diverse


def zero_shot_reranker(cfg: HopWeaverConfig) -> CrossEncoder:
    return CrossEncoder(cfg.reranker, max_length=cfg.max_length, init_seed=cfg.seed)


def train_reranker(cfg: HopWeaverConfig, data: HopData, generated: GeneratedData, results_dir) -> Reranked:
    """FlagEmbedding's group CE (1 positive + group_size-1 negatives, repeated when fewer), dev-slice selection."""
    _, dev_diverse = diverse_runs(cfg, data, data.dev)
    dev = RerankEvaluator(dev_diverse, data.dev.corpus, data.dev.queries, data.dev.qrels, depth=cfg.top_k,
                          measures=["nDCG@10", "RR@10"], batch_size=cfg.score_batch_size)
    model = zero_shot_reranker(cfg)
    start_dev = dev(model)
    dev.runs.clear()
    key = hashlib.sha256(json.dumps(jsonable({"c": asdict(cfg), "d": [[g.query, g.docs] for g in generated.groups]}),
                                    sort_keys=True).encode()).hexdigest()[:12]
    train_cfg = TrainConfig(
        output_dir=str(cache_root(cfg, results_dir) / "checkpoints" / f"reranker-{key}"), seed=cfg.seed,
        learning_rate=cfg.learning_rate, num_epochs=cfg.num_epochs, max_steps=cfg.max_steps,
        per_device_batch_size=cfg.batch_groups, warmup_ratio=0.1, log_every_steps=1,
        eval_every_steps=cfg.eval_every_steps, save_every_steps=None, metric_for_best="nDCG@10")
    with Timer() as t:
        result = fit(model, generated.groups, loss="group_ce", config=train_cfg, group_size=cfg.group_size,
                     eval_fn=dev)
    if len(dev.runs) == len(result.eval_history) and result.best_step is not None:
        dev_run = dev.run_at(result)
    else:
        dev(model)
        dev_run = dev.runs[-1]
    return Reranked(model, result, dev_run, start_dev, t.s)


# ---------------------------------------------------------------------------------------------------- ablation


MEASURES = ("nDCG@10", "RR@10", "R@10")


def _attempts(run: Run, qrels) -> tuple[float, float]:
    """HopWeaver's success rate (a relevant document among the candidates) and average attempts (1-based rank of
    the first relevant candidate, over successes), with the qrels as the judge."""
    ranks = []
    for q, judged in qrels.items():
        docs = [d for d, _ in ranked(run.get(q, {}))]
        first = next((i + 1 for i, d in enumerate(docs) if judged.get(d, 0) > 0), None)
        ranks.append(first)
    hits = [r for r in ranks if r is not None]
    return len(hits) / max(1, len(ranks)), (float(np.mean(hits)) if hits else float("nan"))


def ablation(cfg: HopWeaverConfig, data: HopData, reranked: Reranked, results_dir) -> tuple[list, dict[str, Run]]:
    """The four retrievers on SciFact test claims; one record each (nDCG@10, RR@10, R@10 at depth top_k), with
    paired tests vs BM25 top_k and vs standard; diverse_ft also vs its start (diverse_zs) and a +interp row."""
    test = data.test
    bm25 = top_k({q: r for q, r in load_run(results_dir, cfg.profile, "scifact", "test", "bm25").items()
                  if q in test.queries}, cfg.top_k)
    with Timer() as t_ret:
        standard, diverse = diverse_runs(cfg, data, test)
    zs = zero_shot_reranker(cfg)
    with Timer() as t_zs:
        zs_run = zs.rerank(diverse, test.corpus, test.queries, depth=cfg.top_k, batch_size=cfg.score_batch_size)
    with Timer() as t_ft:
        ft_run = reranked.model.rerank(diverse, test.corpus, test.queries, depth=cfg.top_k,
                                       batch_size=cfg.score_batch_size)
    runs = {"standard": standard, "diverse": diverse, "diverse_zs": zs_run, "diverse_ft": ft_run}
    params = jsonable(asdict(cfg))
    common = dict(pipeline=PIPELINE, dataset="scifact", split=data.test_split, profile=cfg.profile,
                  results_dir=results_dir, first_stage=f"{cfg.encoder}-dense", depth=cfg.top_k, seed=cfg.seed,
                  measures=list(MEASURES))
    models = {"standard": f"{cfg.encoder} dense top-{cfg.top_k}",
              "diverse": f"{cfg.encoder} dense + MMR over top-{3 * cfg.top_k} (l={cfg.ablation_lambdas})",
              "diverse_zs": f"diverse + {cfg.reranker} zero-shot (untrained head)" if cfg.reranker == "minilm-l6"
              else f"diverse + {cfg.reranker} zero-shot",
              "diverse_ft": f"diverse + {cfg.reranker} fine-tuned on HopWeaver data (group CE)"}
    walls = {"standard": t_ret.s / 2, "diverse": t_ret.s / 2, "diverse_zs": t_zs.s, "diverse_ft": t_ft.s + reranked.wall_s}
    records = []
    for name, run in runs.items():
        success, attempts = _attempts(run, test.qrels)
        p = {**params, "success_rate": success, "avg_attempts": attempts,
             **({"best_step": reranked.result.best_step, "dev_best": reranked.result.best_metric}
                if name == "diverse_ft" else {})}
        baselines = {"bm25": bm25, "standard": standard}
        extra = {}
        if name == "diverse_ft":
            baselines["start"] = zs_run
            extra = dict(training=data.split.provenance, eval_queries=test.queries)
        records.append(record_run(run, test.qrels, method=f"hopweaver-{name.replace('_', '-')}", model=models[name],
                                  baselines=baselines, params=p, wall_s=walls[name], **common, **extra))
    if cfg.interpolate:
        _, dev_diverse = diverse_runs(cfg, data, data.dev)
        weight, curve = choose_interpolation_weight(reranked.dev_run, dev_diverse, data.dev.qrels)
        success, attempts = _attempts(interpolate(ft_run, diverse, weight), test.qrels)
        records.append(record_interpolation(
            ft_run, diverse, weight, test.qrels, method="hopweaver-diverse-ft", model=models["diverse_ft"] + " + diverse",
            baselines={"bm25": bm25, "standard": standard, "start": zs_run},
            params={**params, "success_rate": success, "avg_attempts": attempts, "dev_curve": curve.to_dict("list")},
            wall_s=walls["diverse_ft"], training=data.split.provenance, eval_queries=test.queries, **common))
    return records, runs


def ablation_table(records, runs: dict[str, Run], qrels, alpha: float = 0.05) -> pd.DataFrame:
    rows = []
    for r in records:
        row = {"method": r.method, **{m: round(r.metrics[m], 4) for m in MEASURES if m in r.metrics},
               "success rate": round(r.params.get("success_rate", float("nan")), 4),
               "avg attempts": round(r.params.get("avg_attempts", float("nan")), 2)}
        bases = [b for b in ("standard", "start") if r.method != f"hopweaver-{b}"]
        rows.append({**row, **comparison_cells(r, bases, alpha=alpha, label="Δ nDCG@10 vs {base}")})
    return pd.DataFrame(rows).set_index("method")


def diversity_stats(runs: dict[str, Run], retriever: DiverseRetriever) -> pd.DataFrame:
    """Mean pairwise cosine among each retriever's top_k candidates (what MMR trades relevance for)."""
    rows = []
    for name in ("standard", "diverse"):
        sims = []
        for docs in runs[name].values():
            ids = [d for d, _ in ranked(docs)]
            if len(ids) < 2:
                continue
            v = retriever.embeddings[[retriever.row[d] for d in ids]]
            m = v @ v.T
            sims.append(float(m[np.triu_indices(len(ids), 1)].mean()))
        rows.append({"retriever": name, "mean pairwise cosine of the top_k": round(float(np.mean(sims)), 4)})
    return pd.DataFrame(rows).set_index("retriever")


def curve_figure(reranked: Reranked, path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6))
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    hist = reranked.result.history
    ax1.plot([h["step"] for h in hist], [h["loss"] for h in hist])
    ax1.set(xlabel="step", ylabel="group CE", title="training loss (HopWeaver data)")
    ev = reranked.result.eval_history
    ax2.plot([0] + [e["step"] for e in ev], [reranked.start_dev["nDCG@10"]] + [e["nDCG@10"] for e in ev], marker="o")
    ax2.set(xlabel="step", ylabel="dev nDCG@10 (diverse top_k reranked)", title="dev slice (step 0 = zero-shot)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def learning_curve(reranked: Reranked) -> pd.DataFrame:
    rows = [{"step": 0, "dev nDCG@10": round(reranked.start_dev["nDCG@10"], 4),
             "dev RR@10": round(reranked.start_dev["RR@10"], 4)}]
    rows += [{"step": e["step"], "dev nDCG@10": round(e["nDCG@10"], 4), "dev RR@10": round(e["RR@10"], 4)}
             for e in reranked.result.eval_history]
    return pd.DataFrame(rows).set_index("step")
