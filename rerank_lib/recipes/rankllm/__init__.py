"""30_rankllm: listwise LLM reranking and training after rank_llm (RankZephyr: generation; FirstMistral: combined
generation + weighted RankNet with FIRST single-token inference).

The default profile is an embedded CPU reproduction with SmolLM2-135M-Instruct: BM25 top-`depth` candidates,
windows of `window` passages cut to `max_words` words, FIRST inference (one forward per window) for every row;
generation decoding (greedy, ~40 tokens per window) only on a sample of DL19 queries for output-quality counts and
latency (metric rows decoded by generation where `generation_eval` names a dataset: the paper profile). Training is leak-free (issue 8):
a model trained on one TREC DL year (+ SciFact train) is evaluated on the other year, and the model of the first
fold (never trained on SciFact test) is evaluated on a seeded sample of SciFact test. Checkpoints and
interpolation weights are chosen on dev slices of the training queries. The `paper` profile names the published
models and recipe (zephyr-7b-beta / Mistral-7B-Instruct-v0.3, lr 5e-6, 3 epochs, cosine, 50 warmup steps, bf16,
gradient checkpointing, DeepSpeed ZeRO-3, window 20 / stride 10 over BM25 top-100, 300 words).
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd
import torch

from ...data import TrainingQueries, folds_dl, load_dataset
from ...data.trec import top_k
from ...data.types import Dataset, Run
from ...evaluation import evaluate
from ...listwise import (
    ListwiseLM,
    ListwiseObjective,
    ListwiseReranker,
    build_conversations,
    enable_neftune,
    encode_conversation,
    identifier_token_ids,
)
from ...listwise.lm import body_and_head
from ...listwise.parsing import CATEGORIES
from ...listwise.prompts import choose_identifiers
from ...models import load_model, load_tokenizer, pick_device, resolve
from ...paths import cache_dir
from ...results import plot_curve, save_figure
from ...training import TrainConfig, TrainResult, pad_collate, train
from ..common import (
    Timer,
    choose_interpolation_weight,
    dl_training_split,
    load_run,
    record_interpolation,
    record_run,
    resolve_profile,
    sample_ids,
    save_run,
    scifact_training_split,
)

PIPELINE = "rankllm"
MEASURE = "nDCG@10"
SELECT_ON = ("dl",)  # dev slices evaluated during training (learning curve, checkpoint selection)
TINY = "tiny-random-llama"  # smoke profile: a 2-layer random Llama with the Mistral tokenizer (seconds, not minutes)

# A Zephyr-style chat template for tokenizers that ship without one (the smoke model; the bare Mistral tokenizers).
ZEPHYR_STYLE_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + eos_token }}"
    "{% elif message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + eos_token }}"
    "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\n' + message['content'] + eos_token }}{% endif %}"
    "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}{% endfor %}"
)

_SRC = "rank_llm 2CR, msmarco-v1-passage, BM25 top-100, window 20 / stride 10"
REFERENCES = {  # published nDCG@10 of the full-size models on BM25 top-100
    ("trec-dl-2019", "generation"): (0.7365, f"RankZephyr-7B ({_SRC})"),
    ("trec-dl-2020", "generation"): (0.7080, f"RankZephyr-7B ({_SRC})"),
    ("trec-dl-2019", "combined"): (0.7294, f"FirstMistral-7B ({_SRC}); monoT5-3B 0.7173 in the same table"),
    ("trec-dl-2020", "combined"): (0.7043, f"FirstMistral-7B ({_SRC}); monoT5-3B 0.6887 in the same table"),
}


@dataclass(frozen=True)
class RankLLMConfig:
    profile: str = "default"
    seed: int = 13
    data_root: str | None = None
    tag: str = "smollm2"  # short model name in method names
    model: str = "smollm2-135m-instruct"  # the start (zero-shot rows) and the base of both objectives
    generation_model: str | None = None  # base model of the generation objective (None: `model`)
    combined_model: str | None = None  # base model of the combined objective (None: `model`)
    chat_template: str | None = None  # for tokenizers without one
    # inference
    depth: int = 20  # BM25 top-depth is reranked (the MiniLM teacher gains +0.03 nDCG@10 on DL reordering the top-10,
    window: int = 20  # +0.09 reordering the top-20: a top-10 student could show almost nothing)
    stride: int = 10
    max_words: int = 20
    context_size: int = 4096
    identifiers: str = "auto"  # auto: numbers when single tokens in the tokenizer, else letters
    inference_bf16: bool = False  # bf16 autocast at inference (measured 6x slower than fp32 for SmolLM2 on this CPU)
    scifact_test_queries: int | None = 25  # a seeded sample of SciFact test (None: all 300); its own split name
    generation_eval: tuple[str, ...] = ()  # metric rows of the generation-trained model decoded by generation
    # (default: none; it is decoded by generation on the `quality_queries` DL19 sample for output quality and latency)
    quality_queries: int = 5  # generation decoding (zero-shot, generation-trained) of this many DL19 queries
    # training data
    folds: tuple[tuple[str, str], ...] = tuple(folds_dl())
    objectives: tuple[str, ...] = ("generation", "combined")
    train_window: int = 20  # passages per training conversation (plus the 2..train_window subsets)
    train_max_words: int = 20
    n_variable: int = 1  # variable-length subsets per query (RankZephyr's augmentation)
    shuffle_inputs: bool = False  # passages of each conversation in a seeded random order (RankVicuna's augmentation)
    scifact_train_queries: int | None = 100  # SciFact train queries added to each fold (None: all)
    dev_scifact_queries: int = 5
    dl_teacher: str = "teacher-minilm-l6"
    scifact_teacher: str = "teacher-bm25+minilm-l6"
    # objective
    ranking_loss: str = "ranknet"
    weighted: bool = True
    ranking_weight: float | None = None  # None: rank_llm's constant (10 for weighted RankNet)
    noise_alpha: float | None = 5.0  # NEFTune
    # optimisation
    learning_rate: float = 5e-5
    num_epochs: int = 1
    max_steps: int | None = 12
    batch_size: int = 1
    gradient_accumulation_steps: int = 2
    warmup_steps: int = 2
    lr_scheduler: str = "cosine"
    weight_decay: float = 0.0
    mixed_precision: str = "no"  # CPU: fp32 (bf16 autocast is slower for this model here); paper: bf16
    gradient_checkpointing: bool = False
    train_layers: int | None = 12  # train the top N decoder layers + final norm only (None: the whole model)
    eval_every_steps: int | None = 6
    save_every_steps: int | None = 6
    accelerate_config: str | None = None  # paper: the DeepSpeed ZeRO-3 config to launch with


PROFILES = {
    "smoke": {
        "tag": "tiny", "model": TINY, "chat_template": ZEPHYR_STYLE_TEMPLATE, "depth": 6, "window": 4, "stride": 2,
        "max_words": 12, "scifact_test_queries": 4, "quality_queries": 2, "train_window": 4, "train_max_words": 12,
        "scifact_train_queries": 4, "dev_scifact_queries": 2, "max_steps": 2, "gradient_accumulation_steps": 1,
        "warmup_steps": 0, "train_layers": None, "eval_every_steps": 1, "save_every_steps": 1,
        "learning_rate": 1e-3, "generation_eval": ("trec-dl-2019",),
    },
    "default": {},
    "paper": {
        "tag": "mistral-7b", "model": "mistralai/Mistral-7B-Instruct-v0.3",
        "generation_model": "HuggingFaceH4/zephyr-7b-beta", "combined_model": "mistralai/Mistral-7B-Instruct-v0.3",
        "depth": 100, "window": 20, "stride": 10, "max_words": 300, "scifact_test_queries": None,
        "generation_eval": ("trec-dl-2019", "trec-dl-2020"), "quality_queries": 43, "train_window": 20,
        "train_max_words": 300, "n_variable": 1, "scifact_train_queries": None, "inference_bf16": True,
        "learning_rate": 5e-6, "num_epochs": 3, "max_steps": None, "batch_size": 8, "gradient_accumulation_steps": 4,
        "warmup_steps": 50, "lr_scheduler": "cosine", "mixed_precision": "bf16", "gradient_checkpointing": True,
        "train_layers": None, "eval_every_steps": 200, "save_every_steps": 500,
        "accelerate_config": "configs/accelerate/deepspeed_zero3.yaml",
    },
}


def config(profile: str = "default", **overrides) -> RankLLMConfig:
    for key in ("objectives", "generation_eval"):
        if overrides.get(key) is not None:
            overrides[key] = tuple(overrides[key])
    if overrides.get("folds") is not None:
        overrides["folds"] = tuple(tuple(f) for f in overrides["folds"])
    cfg = resolve_profile(RankLLMConfig(), PROFILES, profile, overrides)
    for objective in cfg.objectives:
        if objective not in ("generation", "ranking", "combined"):
            raise ValueError(f"unknown objective {objective!r}")
    return cfg


def summary(cfg: RankLLMConfig) -> pd.DataFrame:
    """The configuration as a table, with where each model would come from (resolvable offline or not)."""
    rows = [{"parameter": k, "value": v} for k, v in asdict(cfg).items() if k != "chat_template"]
    for role, name in (("start", cfg.model), ("generation base", cfg.generation_model or cfg.model),
                       ("combined base", cfg.combined_model or cfg.model)):
        if name == TINY:
            where = "built from a config (smoke)"
        else:
            try:
                where = f"{resolve(name).kind}: {resolve(name).source}"
            except Exception as err:  # offline, hub id: say so, the paper profile cannot run here
                where = f"unavailable here ({type(err).__name__})"
        rows.append({"parameter": f"{role} model", "value": f"{name} [{where}]"})
    return pd.DataFrame(rows).set_index("parameter")


# ---------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------

def _tiny_model(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(cfg)


def local_copy(name: str) -> str:
    """A GGUF built-in converted once to a plain transformers folder under the cache (loading the GGUF file
    de-quantises every tensor, ~1 min; the folder loads in a second). Other names are returned unchanged."""
    if name == TINY:
        return name
    resolved = resolve(name)
    if not resolved.gguf_file:
        return name
    folder = cache_dir("models", Path(resolved.gguf_file).stem)
    if not (folder / "config.json").exists():
        from transformers import AutoModelForCausalLM

        model = load_model(name, AutoModelForCausalLM, device="cpu")
        tokenizer = load_tokenizer(name)
        config = model.config
        if hasattr(config, "quantization_config"):  # the weights are de-quantised fp32 now
            delattr(config, "quantization_config")
        plain = AutoModelForCausalLM.from_config(config)
        plain.load_state_dict(model.state_dict())
        staging = folder.with_name(folder.name + ".tmp")
        plain.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        for item in staging.iterdir():
            item.replace(folder / item.name)
        staging.rmdir()
    return str(folder)


def load_lm(cfg: RankLLMConfig, name: str, device=None, tokenizer_from: str | None = None):
    """(causal LM, tokenizer) for a model name: the smoke model, a built-in (via its cached copy), a hub id or a
    trained checkpoint folder (then `tokenizer_from` names the base model whose tokenizer it uses)."""
    from transformers import AutoModelForCausalLM

    device = device or pick_device()
    tokenizer = load_base_tokenizer(cfg, tokenizer_from or name)
    if name == TINY:
        model = _tiny_model(tokenizer).to(device)
    else:
        dtype = torch.float32 if torch.device(device).type == "cpu" else torch.bfloat16
        model = load_model(local_copy(name), AutoModelForCausalLM, device=device, dtype=dtype)
    model.eval()
    return model, tokenizer


_TOKENIZERS: dict = {}


def load_base_tokenizer(cfg: RankLLMConfig, name: str):
    """The tokenizer of a model name, with the config's chat template when it has none and a pad token (one
    instance per name and template in a process: several steps ask for it)."""
    key = (name, cfg.chat_template)
    if key in _TOKENIZERS:
        return _TOKENIZERS[key]
    tokenizer = load_tokenizer("mistral-v0.1-tokenizer" if name == TINY else local_copy(name))
    _TOKENIZERS[key] = tokenizer
    if cfg.chat_template and not tokenizer.chat_template:
        tokenizer.chat_template = cfg.chat_template
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return tokenizer


def use_letters(cfg: RankLLMConfig, tokenizer) -> bool:
    """Letters or numbers, decided from the tokenizer for the largest window used in training or inference."""
    return choose_identifiers(tokenizer, max(cfg.window, cfg.train_window), cfg.identifiers, cfg.chat_template)


def reranker(cfg: RankLLMConfig, model, tokenizer, mode: str = "first") -> ListwiseReranker:
    return ListwiseReranker(model, tokenizer, mode=mode, window=cfg.window, stride=cfg.stride,
                            max_words=cfg.max_words, context_size=cfg.context_size,
                            identifiers="alpha" if use_letters(cfg, tokenizer) else "numeric",
                            chat_template=cfg.chat_template, autocast=cfg.inference_bf16)


# ---------------------------------------------------------------------------------------------------------------
# Evaluation sets
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class EvalSet:
    """One evaluation set: its queries (with qrels), the first-stage run, and its reranked top."""

    dataset: Dataset
    split: str  # the record's split name (a SciFact sample gets its own name)
    bm25: Run  # the whole saved first-stage run of these queries
    top: Run  # its top `depth`, what is reranked

    @property
    def key(self) -> str:
        return f"{self.dataset.name}/{self.split}"


def eval_sets(cfg: RankLLMConfig, results_dir) -> dict[str, EvalSet]:
    """TREC DL 2019 and 2020 (judged queries of the saved BM25 runs) and SciFact test (all, or a seeded sample)."""
    sets = {}
    for name in ("trec-dl-2019", "trec-dl-2020", "scifact"):
        bm25 = load_run(results_dir, cfg.profile, name, "test", "bm25")
        ds = load_dataset(name, "test", root=cfg.data_root)
        qids = sorted(q for q in bm25 if q in ds.qrels)
        split = "test"
        if name == "scifact" and cfg.scifact_test_queries and cfg.scifact_test_queries < len(qids):
            qids = sample_ids(qids, cfg.scifact_test_queries, cfg.seed)
            split = f"test-{len(qids)}q"
        ds = ds.subset(qids)
        bm25 = {q: bm25[q] for q in qids}
        sets[name] = EvalSet(ds, split, bm25, top_k(bm25, cfg.depth))
    return sets


def rerank_set(rr: ListwiseReranker, es: EvalSet, cfg: RankLLMConfig, queries=None,
               progress: bool = True) -> tuple[Run, list]:
    """Rerank the top `depth` of an eval set; the rest of the first-stage list follows below, in its order."""
    qids = list(queries or es.top)
    run, windows = rr.rerank_run({q: es.bm25[q] for q in qids}, es.dataset.corpus, es.dataset.queries, cfg.depth,
                                 progress=progress)
    return run, windows


def teacher_name(cfg: RankLLMConfig, dataset: str) -> str:
    """The saved teacher run (02_teacher) that orders this dataset's training windows and measures agreement."""
    return cfg.scifact_teacher if dataset == "scifact" else cfg.dl_teacher


def teacher_top(es: EvalSet, teacher: Run) -> Run:
    """The teacher's order of the same BM25 top-depth the student reranks, the rest of the BM25 list below: the
    ceiling of a student that imitated its teacher perfectly on these candidates."""
    out = {}
    for q, top in es.top.items():
        floor = min(teacher[q].values(), default=0.0) if q in teacher else 0.0
        ordered = sorted(top, key=lambda d: -(teacher.get(q, {}).get(d, floor - 1.0)))
        rest = [d for d, _ in sorted(es.bm25[q].items(), key=lambda kv: -kv[1]) if d not in top]
        out[q] = {d: float(len(ordered) + len(rest) - i) for i, d in enumerate(ordered + rest)}
    return out


def reference_rows(cfg: RankLLMConfig, sets: dict[str, EvalSet], results_dir) -> list:
    """BM25 on a sampled set (so its table has its baseline on the same queries) and the teacher's order of the
    same top-depth on every set (the ceiling of imitation)."""
    out = []
    for name, es in sets.items():
        common = dict(pipeline=PIPELINE, dataset=name, split=es.split, profile=cfg.profile, results_dir=results_dir,
                      seed=cfg.seed)
        if es.split != "test":
            out.append(record_run(es.bm25, es.dataset.qrels, method="bm25", model="bm25s", first_stage="corpus",
                                  params={"queries": len(es.top)}, **common))
        teacher = load_run(results_dir, cfg.profile, name, "test", teacher_name(cfg, name))
        out.append(record_run(teacher_top(es, teacher), es.dataset.qrels, method=f"{teacher_name(cfg, name)}-top{cfg.depth}",
                              model=f"{teacher_name(cfg, name)} (02_teacher) ordering the BM25 top-{cfg.depth} only",
                              first_stage="bm25", depth=cfg.depth, baselines={"bm25": es.bm25},
                              params={"depth": cfg.depth}, **common))
    return out


def _method(cfg: RankLLMConfig, training: str, decoding: str) -> str:  # e.g. smollm2-combined-first
    return f"{cfg.tag}-{training}-{decoding}"


# ---------------------------------------------------------------------------------------------------------------
# Zero-shot: the start of every trained row
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class ZeroShot:
    runs: dict[str, Run]  # dataset -> zero-shot FIRST run (the "start" baseline)
    records: list
    windows: list  # WindowResult of every window (FIRST and the generation sample)


def zero_shot(cfg: RankLLMConfig, sets: dict[str, EvalSet], results_dir) -> ZeroShot:
    """The untrained model with FIRST on every eval set (records), and generation decoding on the first
    `quality_queries` DL19 queries (output-quality counts and latency only)."""
    model, tokenizer = load_lm(cfg, cfg.model)
    rr = reranker(cfg, model, tokenizer, "first")
    runs, records, windows = {}, [], []
    for name, es in sets.items():
        with Timer() as t:
            run, w = rerank_set(rr, es, cfg)
        save_run(run, results_dir, cfg.profile, name, es.split, _method(cfg, "zs", "first"))
        runs[name] = run
        windows += [dict(x.to_dict(), dataset=name, model="zero-shot") for x in w]
        records.append(record_run(
            run, es.dataset.qrels, pipeline=PIPELINE, method=_method(cfg, "zs", "first"), dataset=name, split=es.split,
            profile=cfg.profile, results_dir=results_dir, baselines={"bm25": es.bm25}, model=f"{cfg.model} (zero-shot)",
            first_stage="bm25", depth=cfg.depth, params=_params(cfg, decoding="first"), seed=cfg.seed, wall_s=t.s))
    if cfg.quality_queries:
        es = sets["trec-dl-2019"]
        sample = sorted(es.top)[: cfg.quality_queries]
        _, w = rerank_set(reranker(cfg, model, tokenizer, "generate"), es, cfg, sample)
        windows += [dict(x.to_dict(), dataset="trec-dl-2019", model="zero-shot") for x in w]
    return ZeroShot(runs, records, windows)


def _params(cfg: RankLLMConfig, **extra) -> dict:
    params = {k: v for k, v in asdict(cfg).items() if k != "chat_template"}
    return {**params, **extra}


# ---------------------------------------------------------------------------------------------------------------
# Training data
# ---------------------------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class Trained:
    fold: FoldData
    objective: str
    base: str
    result: TrainResult
    model_dir: Path
    dev_runs: dict[str, Run]  # the dev reranking of the selected checkpoint
    start_dev: dict[str, float]  # dev metrics of the untrained model (step 0 of the learning curve)
    wall_s: float = 0.0
    label: str = ""  # names a recipe-search variant in curves and tables

    @property
    def name(self) -> str:
        return f"{self.fold.train_on}->{self.fold.evaluate_on} {self.objective}" + (f" {self.label}" if self.label else "")


def _freeze_below(model, train_layers: int | None) -> int:
    """Train only the top `train_layers` decoder layers and the final norm (None: everything). Returns the number
    of trainable parameters. Frozen lower layers need no backward pass: a CPU step costs ~1.5 forwards, not 3."""
    if train_layers is None:
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    body, _ = body_and_head(model)
    for p in model.parameters():
        p.requires_grad_(False)
    for module in [*body.layers[-train_layers:], body.norm]:
        for p in module.parameters():
            p.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _dev_eval(cfg, fold: FoldData, tokenizer, store: list):
    def eval_fn(model) -> dict[str, float]:
        rr = reranker(cfg, model, tokenizer, "first")
        runs, metrics = {}, {}
        for key in SELECT_ON:  # the training year's dev slice picks checkpoints (SciFact dev: interpolation only)
            es = fold.dev[key]
            runs[key], _ = rerank_set(rr, es, cfg, progress=False)
            metrics[f"{key}_{MEASURE}"] = evaluate(runs[key], es.dataset.qrels, [MEASURE])[MEASURE]
        metrics[f"dev_{MEASURE}"] = sum(metrics.values()) / len(metrics)
        store.append(runs)
        return metrics
    return eval_fn


def _run_dir(cfg: RankLLMConfig, fold: FoldData, objective: str, base: str) -> Path:
    keys = ("seed", "train_window", "train_max_words", "n_variable", "shuffle_inputs", "scifact_train_queries", "ranking_loss", "weighted",
            "ranking_weight", "noise_alpha", "learning_rate", "num_epochs", "max_steps", "batch_size",
            "gradient_accumulation_steps", "warmup_steps", "lr_scheduler", "weight_decay", "mixed_precision",
            "train_layers", "eval_every_steps", "depth", "window", "max_words", "dev_scifact_queries")
    blob = json.dumps({k: getattr(cfg, k) for k in keys} | {"base": base, "n": len(fold.conversations)}, sort_keys=True)
    digest = hashlib.sha1(blob.encode()).hexdigest()[:10]
    return cache_dir("checkpoints", "rankllm", cfg.profile, f"{fold.train_on}-{objective}-{digest}")


def train_objective(cfg: RankLLMConfig, fold: FoldData, objective: str, start_dev: dict | None = None) -> Trained:
    """Fine-tune the objective's base model on the fold's conversations with the shared loop; keep the best dev
    checkpoint (FIRST reranking of the dev slices, nDCG@10)."""
    base = {"generation": cfg.generation_model, "combined": cfg.combined_model}.get(objective) or cfg.model
    model, tokenizer = load_lm(cfg, base)
    alpha = use_letters(cfg, tokenizer)
    ident = identifier_token_ids(tokenizer, max(cfg.window, cfg.train_window), alpha, cfg.chat_template)
    examples = [encode_conversation(c, tokenizer, objective, cfg.chat_template, max_length=cfg.context_size)
                for c in fold.conversations]
    lm = ListwiseLM(model)
    store: list = []
    eval_fn = _dev_eval(cfg, fold, tokenizer, store)
    if start_dev is None:
        model.eval()
        with torch.no_grad():
            start_dev = eval_fn(lm)
        store.clear()
    _freeze_below(model, cfg.train_layers)
    hook = enable_neftune(lm, cfg.noise_alpha)
    out = _run_dir(cfg, fold, objective, base)
    tc = TrainConfig(
        output_dir=str(out), seed=cfg.seed, learning_rate=cfg.learning_rate, num_epochs=cfg.num_epochs,
        max_steps=cfg.max_steps, per_device_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, warmup_steps=cfg.warmup_steps,
        lr_scheduler=cfg.lr_scheduler, weight_decay=cfg.weight_decay, mixed_precision=cfg.mixed_precision,
        gradient_checkpointing=cfg.gradient_checkpointing, save_every_steps=cfg.save_every_steps,
        keep_last_checkpoints=1, log_every_steps=1, eval_every_steps=cfg.eval_every_steps,
        metric_for_best=f"dev_{MEASURE}", save_best=True)
    loss = ListwiseObjective(objective, ident or (), ranking=cfg.ranking_loss, weighted=cfg.weighted,
                             ranking_weight=cfg.ranking_weight)
    with Timer() as t:
        result = train(lm, examples, pad_collate(tokenizer, padding_side="right"), loss, tc, eval_fn=eval_fn,
                       lengths=[len(e["input_ids"]) for e in examples])
    if hook is not None:
        hook.remove()
    model_dir = result.best_dir or result.final_dir
    # dev runs of the selected checkpoint (kept from its evaluation when this process ran it, else recomputed)
    evals = [row for row in result.eval_history]
    dev_runs = None
    if len(store) == len(evals) and result.best_step is not None:
        dev_runs = store[[row["step"] for row in evals].index(result.best_step)]
    if dev_runs is None:
        best, _ = load_lm(cfg, str(model_dir), tokenizer_from=base)
        rr = reranker(cfg, best, tokenizer, "first")
        dev_runs = {k: rerank_set(rr, fold.dev[k], cfg, progress=False)[0] for k in SELECT_ON}
    return Trained(fold, objective, base, result, Path(model_dir), dev_runs, start_dev, t.s)


def start_dev_metrics(cfg: RankLLMConfig, fold: FoldData) -> dict[str, float]:
    """Dev metrics of the untrained model on a fold's dev slices (step 0 of both objectives' curves)."""
    model, tokenizer = load_lm(cfg, cfg.model)
    with torch.no_grad():
        return _dev_eval(cfg, fold, tokenizer, [])(ListwiseLM(model))


def train_all(cfg: RankLLMConfig, results_dir) -> list[Trained]:
    """Every (fold, objective) of the config, with the untrained model's dev metrics computed once per fold."""
    trained = []
    for train_on, evaluate_on in cfg.folds:
        fold = fold_data(cfg, train_on, evaluate_on, results_dir)
        print(fold.describe())
        start = start_dev_metrics(cfg, fold) if all(
            ({"generation": cfg.generation_model, "combined": cfg.combined_model}.get(o) or cfg.model) == cfg.model
            for o in cfg.objectives) else None
        for objective in cfg.objectives:
            tr = train_objective(cfg, fold, objective, start)
            print(f"{tr.name}: {tr.result.global_step} steps in {tr.wall_s:.0f} s, dev {MEASURE} "
                  f"{tr.start_dev[f'dev_{MEASURE}']:.3f} -> {tr.result.best_metric:.3f} (best step {tr.result.best_step})")
            trained.append(tr)
    return trained


# ---------------------------------------------------------------------------------------------------------------
# Evidence for a student that stays at its start: a recipe search on dev, a memorisation probe
# ---------------------------------------------------------------------------------------------------------------

# Variants tried on the first fold's dev slice beside the main recipe (overrides of the config). Default: the FIRST
# ranking objective alone, on 10-passage windows (~3 s a step instead of ~7), from a low to a high learning rate,
# in BM25 order and shuffled (RankVicuna's augmentation, so that copying the input order no longer lowers the loss).
SEARCH_GRIDS: dict[str, list[dict]] = {
    "smoke": [{"learning_rate": 1e-3, "max_steps": 2, "eval_every_steps": 1, "save_every_steps": 1}],
    "default": [
        {"learning_rate": lr, "train_window": 10, "shuffle_inputs": shuffled, "max_steps": 60, "warmup_steps": 5,
         "eval_every_steps": 20, "save_every_steps": 20}
        for lr, shuffled in ((1e-5, False), (1e-4, False), (5e-5, True))
    ],
    "paper": [],  # the published recipe is the experiment
}


def search_grid(cfg: RankLLMConfig) -> list[dict]:
    return SEARCH_GRIDS.get(cfg.profile, [])


def _variant_label(overrides: dict) -> str:
    keys = {"learning_rate": "lr", "train_window": "window", "max_steps": "steps"}
    parts = [f"{keys[k]}={v:g}" if isinstance(v, float) else f"{keys[k]}={v}" for k, v in overrides.items() if k in keys]
    if overrides.get("shuffle_inputs"):
        parts.append("shuffled")
    return " ".join(parts)


def recipe_search(cfg: RankLLMConfig, results_dir, grid: list[dict], objective: str = "ranking",
                  start_dev: dict | None = None) -> tuple[list[Trained], pd.DataFrame]:
    """Train `objective` once per override set of `grid` on the first fold (checkpoints chosen on its dev slice,
    never on a test year) and tabulate each dev curve against the untrained model: where no recipe lifts the dev
    slice, the main rows staying at their start is what the model does, not a recipe left untried."""
    if not grid:
        return [], pd.DataFrame()
    train_on, evaluate_on = cfg.folds[0]
    runs, rows = [], []
    for overrides in grid:
        variant = replace(cfg, **overrides)
        fold = fold_data(variant, train_on, evaluate_on, results_dir)
        if start_dev is None:
            start_dev = start_dev_metrics(variant, fold)
        tr = train_objective(variant, fold, objective, start_dev)
        tr.label = _variant_label(overrides)
        runs.append(tr)
        hist = [row[f"dev_{MEASURE}"] for row in tr.result.eval_history]
        rows.append({"variant": tr.label, "objective": objective, "conversations": len(fold.conversations),
                     "steps": tr.result.global_step, f"dev {MEASURE} start": start_dev[f"dev_{MEASURE}"],
                     f"dev {MEASURE} best": tr.result.best_metric, "best step": tr.result.best_step,
                     f"dev {MEASURE} last": hist[-1] if hist else None, "seconds": round(tr.wall_s)})
    return runs, pd.DataFrame(rows).round(4)


def memorisation_probe(cfg: RankLLMConfig, fold: FoldData, n: int = 16, passes: int = 3,
                       learning_rate: float = 1e-4, max_passages: int | None = 10) -> pd.DataFrame:
    """Can the student fit its own training windows? FIRST ranking loss on `n` of the fold's conversations (3 to
    `max_passages` passages) for `passes` passes (no NEFTune, constant lr), then Kendall tau between the model's
    identifier-logit order and the teacher's order on those same conversations, before and after, beside the
    input order's tau. A model that cannot fit what it has seen three times will not generalise from it."""
    from scipy.stats import kendalltau

    model, tokenizer = load_lm(cfg, cfg.model)
    alpha = use_letters(cfg, tokenizer)
    n_max = max(c["num_passages"] for c in fold.conversations)
    ident = identifier_token_ids(tokenizer, max(cfg.window, cfg.train_window, n_max), alpha, cfg.chat_template)
    convs = [c for c in fold.conversations if 3 <= c["num_passages"] <= (max_passages or n_max)][:n]
    if not convs:
        raise ValueError(f"no conversation of 3..{max_passages or n_max} passages in the fold")
    examples = [encode_conversation(c, tokenizer, "ranking", cfg.chat_template, max_length=cfg.context_size)
                for c in convs]
    lm = ListwiseLM(model)

    def agreement() -> float:
        model.eval()
        taus = []
        with torch.no_grad():
            for e in examples:
                ids = torch.tensor([e["input_ids"]], device=next(model.parameters()).device)
                select = torch.zeros_like(ids, dtype=torch.bool)
                select[0, e["first_pos"]] = True
                scores = lm(ids, select=select)[0][torch.tensor(ident[: e["n_passages"]], device=ids.device)]
                taus.append(kendalltau((-scores.float()).cpu().numpy(), e["ranks"][: e["n_passages"]]).statistic)
        return float(sum(taus) / len(taus))

    input_tau = sum(kendalltau(list(range(e["n_passages"])), e["ranks"][: e["n_passages"]]).statistic
                    for e in examples) / len(examples)
    before = agreement()
    _freeze_below(model, cfg.train_layers)
    blob = json.dumps([cfg.seed, n, passes, learning_rate, cfg.train_layers, cfg.model, [c["id"] for c in convs]])
    out = cache_dir("checkpoints", "rankllm", cfg.profile, f"probe-{hashlib.sha1(blob.encode()).hexdigest()[:10]}")
    tc = TrainConfig(output_dir=str(out), seed=cfg.seed, learning_rate=learning_rate, num_epochs=passes,
                     per_device_batch_size=1, gradient_accumulation_steps=1, warmup_steps=0, lr_scheduler="constant",
                     mixed_precision=cfg.mixed_precision, log_every_steps=1, save_every_steps=len(examples),
                     keep_last_checkpoints=1)
    with Timer() as t:
        result = train(lm, examples, pad_collate(tokenizer, padding_side="right"),
                       ListwiseObjective("ranking", ident, ranking=cfg.ranking_loss, weighted=cfg.weighted), tc)
    after = agreement()
    return pd.DataFrame([{"conversations": len(examples), "passes": passes, "steps": result.global_step,
                          "learning_rate": learning_rate, "input-order tau": round(input_tau, 3),
                          "model tau before": round(before, 3), "model tau after": round(after, 3),
                          "seconds": round(t.s)}])


# ---------------------------------------------------------------------------------------------------------------
# Evaluation of the trained models
# ---------------------------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------------------------
# Tables and figures
# ---------------------------------------------------------------------------------------------------------------

def results_table(records: list) -> pd.DataFrame:
    """nDCG@10 per method and dataset, with the paired-test deltas against BM25 and the start."""
    rows = []
    for r in records:
        sig = r.significance or {}
        row = {"dataset": f"{r.dataset}/{r.split}", "method": r.method, MEASURE: r.metrics.get(MEASURE),
               "training": r.training_queries}
        for vs in ("bm25", "start"):
            if vs in sig and MEASURE in sig[vs]:
                d, p = sig[vs][MEASURE]["delta"], sig[vs][MEASURE]["p_value"]
                row[f"vs {vs}"] = f"{d:+.3f} (p={p:.3f})"
        ref = (r.reference or {}).get(MEASURE)
        row["published"] = ref["value"] if ref else None
        rows.append(row)
    return pd.DataFrame(rows).set_index(["dataset", "method"]).sort_index()


def teacher_agreement(cfg: RankLLMConfig, windows: list, results_dir) -> pd.DataFrame:
    """How each model's window orders agree with the teacher's order of the same passages: mean Kendall tau and
    how often both put the same passage first; the same two measures for the window's input order (BM25 order for
    the first window) show what merely keeping the input order scores."""
    from scipy.stats import kendalltau

    teachers = {}
    rows = []
    for w in windows:
        if len(w.get("doc_ids") or []) < 2:
            continue
        name = w["dataset"]
        if name not in teachers:
            teachers[name] = load_run(results_dir, cfg.profile, name, "test", teacher_name(cfg, name))
        scores = teachers[name].get(w["qid"], {})
        t = [scores.get(d, float("-inf")) for d in w["doc_ids"]]
        model_rank = [0] * len(t)
        for position, i in enumerate(w["order"]):
            model_rank[i] = -position
        teacher_best = max(range(len(t)), key=lambda i: t[i])
        rows.append({"model": w["model"], "mode": w["mode"], "dataset": name,
                     "tau": kendalltau(model_rank, t).statistic, "top1": float(w["order"][0] == teacher_best),
                     "input_tau": kendalltau([-i for i in range(len(t))], t).statistic,
                     "input_top1": float(teacher_best == 0)})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    out = df.groupby(["model", "mode", "dataset"]).agg(
        windows=("tau", "size"), kendall_tau=("tau", "mean"), top1_agreement=("top1", "mean"),
        input_order_tau=("input_tau", "mean"), input_order_top1=("input_top1", "mean"))
    return out.round(3)


def quality_table(windows: list) -> pd.DataFrame:
    """rank_llm's output-quality counts per model and decoding (FIRST always yields a complete permutation)."""
    df = pd.DataFrame(windows)
    if df.empty:
        return df
    counts = df.groupby(["model", "mode", "dataset", "category"]).size().unstack("category", fill_value=0)
    for c in CATEGORIES:
        if c not in counts:
            counts[c] = 0
    counts = counts[list(CATEGORIES)]
    counts["windows"] = counts.sum(axis=1)
    return counts


def latency_figure(windows: list, path) -> Path:
    """Per-window latency (seconds) by decoding mode: FIRST (one forward) against generation."""
    from matplotlib.figure import Figure

    df = pd.DataFrame(windows)
    fig = Figure(figsize=(6.0, 3.6))
    ax = fig.add_subplot()
    groups = [(mode, df[df["mode"] == mode]["seconds"].tolist()) for mode in ("first", "generate")
              if (df["mode"] == mode).any()]
    ax.boxplot([g for _, g in groups], tick_labels=[f"{m}\n(n={len(g)}, median {pd.Series(g).median():.2f} s)"
                                               for m, g in groups])
    ax.set_ylabel("seconds per window")
    ax.set_title("listwise reranking latency per window (same model family, same windows)")
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)


def learning_curves(trained: list[Trained], path) -> tuple[pd.DataFrame, Path]:
    """Dev nDCG@10 against optimizer steps for every trained model (step 0: the untrained model)."""
    rows = []
    for tr in trained:
        rows.append({"step": 0, "run": tr.name, **tr.start_dev})
        rows += [{"run": tr.name, **{k: v for k, v in row.items() if k not in ("kind", "epoch")}}
                 for row in tr.result.eval_history]
    df = pd.DataFrame(rows)
    wide = df.pivot_table(index="step", columns="run", values=f"dev_{MEASURE}").reset_index()
    return df, plot_curve(wide, "step", [c for c in wide.columns if c != "step"], path,
                          title=f"dev {MEASURE} (FIRST reranking of the dev slices)")
