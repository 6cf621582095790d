"""InRanker distillation (Laitz et al., 2024, arXiv 2401.06910; code: unicamp-dl/InRanker): a monoT5 student learns a
teacher's two first-step logits [false, true] per (query, document) with a mean squared error.

The API follows the `inranker` package: `InRankerTrainer(model, ...)`, `.load_msmarco_dataset(...)` (stage 1,
general domain: the MS MARCO soft-label file `true_logit \\t false_logit \\t qid \\t docid`, texts from mMARCO),
`.load_custom_dataset(distill_file=...)` (stage 2, target domain: jsonl `{query, contents, true_logit,
false_logit}`) and `.train(train_dataset=...)`. Differences from the package, all deliberate:

- Inputs are built by `rerankers.monot5.encode_pairs`, the same function inference uses, so training sees the
  EOS and the " Relevant:" suffix exactly as scoring does (the package drops EOS at training time and pads every
  example to max_length; here batches pad to their own length and are grouped by length).
- `center_labels` (default True) subtracts each pair's mean from its two logits in BOTH loaders. The package
  centres the stage-2 (custom jsonl) labels but not the stage-1 MS MARCO labels: pass `center_labels=False` to
  `load_msmarco_dataset` to reproduce that. The MSE only sees the margin's information after centring; without it
  the student must also learn the teacher's absolute logit level.
- Bad input raises `DataFormatError` naming file, line and field (the package prints and skips a bad json line).
- Training runs on `rerank_lib.training.train` (seeded, resumable, checkpoint selection on a dev metric).

Offline, the teacher is a ranker without two logits (the MiniLM bi-encoder, or its fusion with BM25). Its score s
becomes two logits through `teacher.Calibration`: margin = a * s + b, fitted by logistic regression of the TRAINING
queries' relevance judgments on s (so sigmoid(margin) is a calibrated P(relevant | s)); labels are
[false, true] = [-margin / 2, +margin / 2]. softmax over them reproduces that probability, as monoT5's own
softmax over (false, true) is its P(relevant).
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from .atomic import atomic_open
from .data.errors import DataFormatError
from .data.jsonl import iter_jsonl, require, write_jsonl
from .data.lines import iter_lines
from .data.trec import ranked
from .data.types import Document, Qrels, Run
from .evaluation import evaluate
from .losses import center, distillation_loss
from .models import pick_device
from .rerankers.monot5 import T5Ranker, first_step_logits, load_seq2seq
from .training import TrainConfig, TrainResult, pad_collate, train
from .teacher import Calibration, fit_calibration

__all__ = [
    "DistillExample", "DistillDataset", "InRankerTrainer", "Calibration", "fit_calibration",
    "kendall_tau_agreement", "ranking_eval_fn", "read_custom_jsonl", "read_msmarco_soft_labels",
    "soft_label_examples", "write_custom_jsonl", "write_msmarco_soft_labels", "INRANKER_FILES",
]

#: The published soft-label files (Hugging Face datasets; md5 as checked by the inranker package).
INRANKER_FILES = {
    "msmarco": ("unicamp-dl/InRanker-msmarco", "InRanker_msmarco.tsv", "3fc9840ea2a8ad17966dec11c48872bf"),
    "beir": ("unicamp-dl/InRanker-BEIR", "inpars_beir_dataset.jsonl", "89d914af6d231a32458fcf84a8de61a6"),
}
MSMARCO_MAX_EXAMPLES = 12_800_000  # the package stops reading the MS MARCO file there


# ---------------------------------------------------------------------------------------------------------------
# Soft labels: the two file formats
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DistillExample:
    """One (query, document) pair with the teacher's first-step logits."""

    query: str
    text: str
    false_logit: float
    true_logit: float
    qid: str = ""
    docid: str = ""

    @property
    def logits(self) -> tuple[float, float]:
        return self.false_logit, self.true_logit


def _finite(value, path, lineno: int, field: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataFormatError(path, lineno, field, f"not a number: {value!r}") from None
    if not math.isfinite(number):
        raise DataFormatError(path, lineno, field, f"not finite: {value!r}")
    return number


def read_custom_jsonl(path: str | os.PathLike) -> list[DistillExample]:
    """InRanker's custom distillation file: one JSON object per line with query, contents, true_logit, false_logit."""
    examples = []
    for lineno, obj in iter_jsonl(path):
        query = require(obj, "query", str, path, lineno)
        contents = require(obj, "contents", str, path, lineno)
        true_logit = _finite(require(obj, "true_logit", (int, float), path, lineno), path, lineno, "true_logit")
        false_logit = _finite(require(obj, "false_logit", (int, float), path, lineno), path, lineno, "false_logit")
        examples.append(DistillExample(query, contents, false_logit, true_logit,
                                       str(obj.get("qid", "")), str(obj.get("docid", ""))))
    if not examples:
        raise DataFormatError(path, None, None, "no examples")
    return examples


def write_custom_jsonl(path: str | os.PathLike, examples: Iterable[DistillExample], with_ids: bool = True) -> Path:
    """Write examples in the custom format (atomically); `with_ids` adds qid/docid, which the package ignores."""
    def rows():
        for ex in examples:
            row = {"query": ex.query, "contents": ex.text, "true_logit": ex.true_logit, "false_logit": ex.false_logit}
            if with_ids:
                row.update(qid=ex.qid, docid=ex.docid)
            yield row
    return write_jsonl(path, rows())


def read_msmarco_soft_labels(path: str | os.PathLike, queries: Mapping[str, str], corpus: Mapping[str, object],
                             max_examples: int = MSMARCO_MAX_EXAMPLES) -> list[DistillExample]:
    """The MS MARCO soft-label tsv: `true_logit \\t false_logit \\t qid \\t docid` per line (the package calls the
    first two positive_score and negative_score and trains on [negative, positive] = [false, true]).

    `queries` maps qid -> text; `corpus` maps docid -> text or Document (mMARCO online, a DL candidate list
    offline). A missing id is a DataFormatError naming the line.
    """
    examples = []
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 4:
            raise DataFormatError(path, lineno, None, f"expected 4 tab-separated fields (true_logit, false_logit, "
                                                      f"qid, docid), got {len(parts)}")
        true_logit = _finite(parts[0], path, lineno, "true_logit")
        false_logit = _finite(parts[1], path, lineno, "false_logit")
        qid, docid = parts[2].strip(), parts[3].strip()
        if qid not in queries:
            raise DataFormatError(path, lineno, "qid", f"query {qid!r} has no text")
        if docid not in corpus:
            raise DataFormatError(path, lineno, "docid", f"document {docid!r} has no text")
        doc = corpus[docid]
        text = doc.text_for_model if isinstance(doc, Document) else str(doc)
        examples.append(DistillExample(queries[qid], text, false_logit, true_logit, qid, docid))
        if len(examples) >= max_examples:
            break
    if not examples:
        raise DataFormatError(path, None, None, "no examples")
    return examples


def write_msmarco_soft_labels(path: str | os.PathLike, examples: Iterable[DistillExample]) -> Path:
    """Write `true_logit \\t false_logit \\t qid \\t docid` lines atomically."""
    path = Path(path)
    with atomic_open(path, "w") as handle:
        for ex in examples:
            if not ex.qid or not ex.docid:
                raise ValueError("the MS MARCO format needs qid and docid on every example")
            handle.write(f"{ex.true_logit!r}\t{ex.false_logit!r}\t{ex.qid}\t{ex.docid}\n")
    return path


# ---------------------------------------------------------------------------------------------------------------
# Teacher score -> two logits
# ---------------------------------------------------------------------------------------------------------------

def soft_label_examples(teacher: Run, calibration: Calibration, queries: Mapping[str, str],
                        corpus: Mapping[str, Document]) -> list[DistillExample]:
    """One DistillExample per scored (query, document) of `teacher`, its logits from the calibration."""
    out = []
    for qid, docs in teacher.items():
        for docid, s in ranked(docs):
            f, t = calibration.logits(s)
            out.append(DistillExample(queries[qid], corpus[docid].text_for_model, float(f), float(t), qid, docid))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Dataset (the loss and the label centring: rerank_lib.losses.distillation)
# ---------------------------------------------------------------------------------------------------------------

class DistillDataset:
    """Tokenised distillation examples: item i is {'input_ids': [...], 'teacher_logits': [false, true]}."""

    def __init__(self, examples: Sequence[DistillExample], input_ids: Sequence[list[int]], labels: np.ndarray,
                 centered: bool, source: str = ""):
        if not (len(examples) == len(input_ids) == len(labels)):
            raise ValueError("examples, input_ids and labels differ in length")
        self.examples, self.input_ids, self.labels = list(examples), list(input_ids), np.asarray(labels, np.float32)
        self.centered, self.source = centered, source

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.input_ids[i], "teacher_logits": self.labels[i].tolist()}

    @property
    def lengths(self) -> list[int]:
        return [len(x) for x in self.input_ids]

    @property
    def query_texts(self) -> dict[str, str]:
        return {ex.qid or ex.query: ex.query for ex in self.examples}

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for ids, lab in zip(self.input_ids, self.labels.tolist()):
            h.update(np.asarray(ids, np.int32).tobytes())
            h.update(np.asarray(lab, np.float32).tobytes())
        return h.hexdigest()[:16]

    def summary(self) -> dict:
        margins = self.labels[:, 1] - self.labels[:, 0]
        return {"source": self.source, "pairs": len(self), "queries": len(self.query_texts),
                "centered": self.centered, "tokens_mean": round(float(np.mean(self.lengths)), 1),
                "margin_mean": round(float(margins.mean()), 3), "margin_std": round(float(margins.std()), 3),
                "P(true)_mean": round(float((1 / (1 + np.exp(-margins))).mean()), 4)}


# ---------------------------------------------------------------------------------------------------------------
# Evaluation helpers used during training
# ---------------------------------------------------------------------------------------------------------------

def kendall_tau_agreement(student: Run, teacher: Run) -> float:
    """Mean over queries of Kendall's tau-b between student and teacher scores of the documents both scored."""
    from scipy.stats import kendalltau

    taus = []
    for qid in student:
        common = [d for d in student[qid] if d in teacher.get(qid, {})]
        if len(common) < 2:
            continue
        tau = kendalltau([student[qid][d] for d in common], [teacher[qid][d] for d in common]).statistic
        if tau == tau:  # nan when one side is constant
            taus.append(tau)
    return float(np.mean(taus)) if taus else float("nan")


def ranking_eval_fn(tokenizer, candidates: Run, corpus: Mapping[str, Document], queries: Mapping[str, str],
                    qrels: Qrels, measure: str = "nDCG@10", teacher: Run | None = None, batch_size: int = 32,
                    max_length: int = 512) -> Callable:
    """eval_fn(model) for `train`: rerank the dev candidates with the model being trained and return
    {measure: value} (plus 'teacher_tau', the Kendall tau with the teacher's scores, when `teacher` is given).
    `eval_fn.runs` keeps each call's reranked run."""

    def eval_fn(model) -> dict[str, float]:
        ranker = T5Ranker.from_model(model, tokenizer, batch_size=batch_size, max_length=max_length)
        run = ranker.rerank(candidates, corpus, queries, depth=max(map(len, candidates.values())))
        eval_fn.runs.append(run)
        metrics = {measure: evaluate(run, qrels, [measure])[measure]}
        if teacher is not None:
            metrics["teacher_tau"] = kendall_tau_agreement(run, teacher)
        return metrics

    eval_fn.runs = []  # every reranked dev run, in call order (the caller may reuse the selected one)
    return eval_fn


# ---------------------------------------------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------------------------------------------

class InRankerTrainer:
    """Distil a teacher's [false, true] logits into a monoT5 student (the `inranker.InRankerTrainer` interface).

    model: a hub id or folder (T5ForConditionalGeneration / saved EncoderDecoderModel), an offline student name of
        `rerankers.monot5.STUDENTS` ('minilm-monot5', 't5-efficient-tiny-random'; `student_options` go to its
        builder), or a model object with `tokenizer=`.
    The package's arguments keep their names and defaults (lr 7e-5, batch 32, 20k warmup steps, 1 epoch,
    weight decay 0); `decoder_learning_rate` gives the parameters outside the encoder (a fresh decoder) their own
    rate. `num_train_epochs` may be fractional. Checkpoints every `save_steps` under `output_dir` (None: none, so
    no resume); `train` resumes from them. `save_best`: keep the weights of the best evaluation in output_dir/best.
    """

    def __init__(self, model="t5-small", batch_size: int = 32, warmup_steps: int = 20000,
                 num_train_epochs: float = 1.0, logging_steps: int = 1000, save_steps: int | None = 40000,
                 learning_rate: float = 7e-5, gradient_accumulation_steps: int = 1, bf16: bool | str = False,
                 gradient_checkpointing: bool = False, device: str = "", output_dir: str | os.PathLike = "trained_model",
                 *, tokenizer=None, max_length: int = 512, center_labels: bool = True, seed: int = 42,
                 weight_decay: float = 0.0, warmup_ratio: float = 0.0, lr_scheduler: str = "linear",
                 decoder_learning_rate: float | None = None, max_steps: int | None = None,
                 eval_every_steps: int | None = None, keep_last_checkpoints: int | None = 2, save_best: bool = True,
                 eval_batch_size: int = 32, student_options: Mapping | None = None):
        if device and torch.device(device).type != pick_device().type:
            raise ValueError(f"device={device!r}: training runs where accelerate puts it ({pick_device()}); "
                             "use CUDA_VISIBLE_DEVICES or `accelerate launch` to choose")
        if bf16 not in (True, False, "auto"):
            raise ValueError("bf16 must be True, False or 'auto'")
        if tokenizer is None:
            model_obj, tokenizer = load_seq2seq(model, device="cpu", **dict(student_options or {}))
            self.model_name = str(model)
        else:
            if student_options:
                raise TypeError("student_options apply to built students, not to a model object")
            model_obj, self.model_name = model, type(model).__name__
        self.model, self.tokenizer = model_obj, tokenizer
        self.ranker = T5Ranker.from_model(self.model, tokenizer, max_length=max_length, batch_size=eval_batch_size)
        self.max_length, self.center_labels, self.seed = max_length, center_labels, seed
        self.num_train_epochs, self.max_steps = float(num_train_epochs), max_steps
        self.learning_rate, self.decoder_learning_rate = learning_rate, decoder_learning_rate
        self.weight_decay = weight_decay
        self.config = TrainConfig(
            output_dir=str(output_dir), seed=seed, learning_rate=learning_rate,
            num_epochs=max(1, math.ceil(num_train_epochs)), max_steps=max_steps,
            per_device_batch_size=batch_size, gradient_accumulation_steps=gradient_accumulation_steps,
            warmup_steps=warmup_steps, warmup_ratio=warmup_ratio, lr_scheduler=lr_scheduler,
            weight_decay=weight_decay, mixed_precision="bf16" if bf16 is True else ("auto" if bf16 == "auto" else "no"),
            gradient_checkpointing=gradient_checkpointing, save_every_steps=save_steps,
            keep_last_checkpoints=keep_last_checkpoints, log_every_steps=logging_steps,
            eval_every_steps=eval_every_steps, save_best=save_best,
        )

    # -- data ----------------------------------------------------------------------------------------------------

    def dataset(self, examples: Sequence[DistillExample], center_labels: bool | None = None, max_length=None,
                source: str = "") -> DistillDataset:
        """Tokenise examples with the ranker's own input builder; centre the labels if asked."""
        centered = self.center_labels if center_labels is None else center_labels
        labels = np.asarray([ex.logits for ex in examples], dtype=np.float32).reshape(-1, 2)
        if centered:
            labels = center(labels)
        ids = self.ranker.encode([ex.query for ex in examples], [ex.text for ex in examples],
                                 max_length or self.max_length)
        return DistillDataset(examples, ids, labels, centered, source)

    def load_msmarco_dataset(self, msmarco_tsv_file: str | os.PathLike | None = None, language: str = "english",
                             max_length: int | None = None, *, queries: Mapping[str, str] | None = None,
                             corpus: Mapping | None = None, max_examples: int = MSMARCO_MAX_EXAMPLES,
                             center_labels: bool | None = None) -> DistillDataset:
        """Stage 1: the MS MARCO soft-label tsv. Without a file, the published one is downloaded (hub); without
        `queries`/`corpus`, texts come from mMARCO (`unicamp-dl/mmarco`, `language`) as in the package.
        Offline, pass a file written by `write_msmarco_soft_labels` and the DL queries and passages."""
        if msmarco_tsv_file is None:
            msmarco_tsv_file = _download_published("msmarco")
        if queries is None or corpus is None:
            queries, corpus = _mmarco_texts(language, queries, corpus)
        examples = read_msmarco_soft_labels(msmarco_tsv_file, queries, corpus, max_examples)
        return self.dataset(examples, center_labels, max_length, source=str(msmarco_tsv_file))

    def load_custom_dataset(self, distill_file: str | os.PathLike | None = None, max_length: int | None = None,
                            *, center_labels: bool | None = None) -> DistillDataset:
        """Stage 2: a jsonl of {query, contents, true_logit, false_logit}; without a file, the published BEIR
        soft labels (InPars-v1 synthetic queries, monoT5-3B logits) are downloaded."""
        if distill_file is None:
            distill_file = _download_published("beir")
        return self.dataset(read_custom_jsonl(distill_file), center_labels, max_length, source=str(distill_file))

    # -- training ------------------------------------------------------------------------------------------------

    def compute_loss(self, model, batch) -> torch.Tensor:
        logits = first_step_logits(model, batch["input_ids"], batch["attention_mask"], self.ranker.token_ids,
                                   self.ranker.decoder_start_token_id)
        return distillation_loss(logits, batch["teacher_logits"])

    def _param_groups(self) -> list[dict] | None:
        if self.decoder_learning_rate is None:
            return None
        encoder = {id(p) for p in self.model.get_encoder().parameters()}
        groups = []
        for lr, pick in ((self.learning_rate, True), (self.decoder_learning_rate, False)):
            params = [p for p in self.model.parameters() if p.requires_grad and (id(p) in encoder) == pick]
            groups += [{"params": [p for p in params if p.ndim >= 2], "weight_decay": self.weight_decay, "lr": lr},
                       {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0, "lr": lr}]
        return [g for g in groups if g["params"]]

    def train(self, train_dataset: DistillDataset, resume_training: bool = True, eval_fn: Callable | None = None,
              metric_for_best: str | None = None) -> TrainResult:
        """Train in place; the model of the best evaluation (eval_fn) is saved in output_dir/best, the last in
        output_dir/final, each with its tokenizer so `T5Ranker(path)` loads it. Returns the loop's TrainResult."""
        config = self.config
        steps_per_epoch = len(train_dataset) // (config.per_device_batch_size * config.gradient_accumulation_steps)
        fractional = math.ceil(self.num_train_epochs * steps_per_epoch)
        max_steps = min(fractional, self.max_steps) if self.max_steps else fractional
        config = TrainConfig(**{**asdict(config), "max_steps": max_steps, "resume": resume_training,
                                "metric_for_best": metric_for_best or config.metric_for_best})
        result = train(self.model, train_dataset, pad_collate(self.tokenizer), self.compute_loss, config,
                       eval_fn=eval_fn, optimizer_params=self._param_groups(), lengths=train_dataset.lengths)
        for folder in (result.final_dir, result.best_dir):
            if folder is not None:
                self.tokenizer.save_pretrained(folder)
        self.model.eval()
        return result


def _download_published(which: str) -> str:
    """The published InRanker soft-label file via huggingface_hub (online only), md5-checked."""
    repo, filename, md5 = INRANKER_FILES[which]
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(repo_id=repo, filename=filename, repo_type="dataset")
    except Exception as err:  # offline, or the hub refused
        raise RuntimeError(f"cannot download {repo}/{filename} ({type(err).__name__}); pass a local file instead "
                           "(offline: build one with write_msmarco_soft_labels / write_custom_jsonl)") from err
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != md5:
        raise RuntimeError(f"{path}: md5 {digest.hexdigest()} differs from the published {md5}")
    return path


def _mmarco_texts(language: str, queries, corpus):
    """mMARCO queries (train) and collection in `language`, as the package reads them (online only)."""
    from datasets import load_dataset as hf_load_dataset

    if corpus is None:
        collection = hf_load_dataset("unicamp-dl/mmarco", f"collection-{language}")["collection"]
        corpus = {str(row["id"]): row["text"] for row in collection}
    if queries is None:
        rows = hf_load_dataset("unicamp-dl/mmarco", f"queries-{language}")["train"]
        queries = {str(row["id"]): row["text"] for row in rows}
    return queries, corpus
