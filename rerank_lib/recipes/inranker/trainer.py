"""Distil a teacher's [false, true] logits into a monoT5 student, with dev selection: the `inranker` package's
trainer API (`InRankerTrainer(model, ...)`, `.load_msmarco_dataset`, `.load_custom_dataset`, `.train(train_dataset)`).
InRanker's stages run through it, and `compute_loss` is the one place its distillation loss is bound to the model.

Deliberate differences from the package: inputs come from `encode_pairs`, as at inference (EOS and " Relevant:"
kept; batches padded to their own length); `center_labels` centres both loaders' labels (the package: stage 2 only;
False follows it); bad input raises DataFormatError; the run is `train_with_dev_selection` (seeded, resumable, the
untrained start a checkpoint candidate)."""
from __future__ import annotations

import math
import os
from dataclasses import replace
from typing import Mapping, Sequence

import numpy as np
import torch

from ...data.inranker import (
    MSMARCO_MAX_EXAMPLES, DistillDataset, DistillExample, mmarco_texts, published_file, read_custom_jsonl,
    read_msmarco_soft_labels, soft_label_ids,
)
from ...experiment import DevEvaluator, Selected, train_with_dev_selection
from ...losses.distillation import center, distillation_loss
from ...models import pick_device
from ...rerankers.monot5 import T5Ranker, first_step_logits, load_seq2seq
from ...training import TrainConfig, pad_collate


class InRankerTrainer:
    """Distil a teacher's [false, true] logits into a monoT5 student. model: a hub id, folder, offline student name
    (`rerankers.monot5.STUDENTS`, built with `student_options`) or a model object with `tokenizer=`. The package's
    arguments keep their names and defaults (epochs may be fractional); other TrainConfig fields go by their own
    names (seed, weight_decay (0, as the package) ...); `from_config` takes a whole TrainConfig. The constructor keeps
    the package's keyword arguments (more than the 8 parameters a function here may take, tests/test_layers.py
    PEER_INTERFACES): a call written for the package, as peer_runs reads them from its documentation, runs unchanged."""

    def __init__(self, model="t5-small", batch_size: int = 32, warmup_steps: int = 20000,
                 num_train_epochs: float = 1.0, logging_steps: int = 1000, save_steps: int | None = 40000,
                 learning_rate: float = 7e-5, gradient_accumulation_steps: int = 1, bf16: bool | str = False,
                 gradient_checkpointing: bool = False, device: str = "", output_dir: str | os.PathLike = "trained_model",
                 **options):
        if device and torch.device(device).type != pick_device().type:
            raise ValueError(f"device={device!r}: training runs where accelerate puts it ({pick_device()}); "
                             "use CUDA_VISIBLE_DEVICES or `accelerate launch` to choose")
        if bf16 not in (True, False, "auto"):
            raise ValueError("bf16 must be True, False or 'auto'")
        own = {k: options.pop(k) for k in ("tokenizer", "max_length", "center_labels", "decoder_learning_rate",
                                           "eval_batch_size", "student_options") if k in options}
        config = TrainConfig(**{"weight_decay": 0.0, **options}, output_dir=str(output_dir),
                             per_device_batch_size=batch_size, warmup_steps=warmup_steps,
                             num_epochs=max(1, math.ceil(num_train_epochs)), log_every_steps=logging_steps,
                             save_every_steps=save_steps, learning_rate=learning_rate,
                             gradient_accumulation_steps=gradient_accumulation_steps,
                             mixed_precision={True: "bf16", "auto": "auto"}.get(bf16, "no"),
                             gradient_checkpointing=gradient_checkpointing)
        self.setup(model, config, **own)
        self.num_train_epochs = float(num_train_epochs)  # the package's (fractional) epochs: the loop runs whole ones

    @classmethod
    def from_config(cls, model, config: TrainConfig, **options) -> "InRankerTrainer":
        trainer = cls.__new__(cls)
        trainer.setup(model, config, **options)
        return trainer

    def setup(self, model, config: TrainConfig, *, tokenizer=None, max_length: int = 512, center_labels: bool = True,
              decoder_learning_rate: float | None = None, eval_batch_size: int = 32,
              student_options: Mapping | None = None) -> None:
        if tokenizer is None:
            model, tokenizer = load_seq2seq(model, device="cpu", **dict(student_options or {}))
        elif student_options:
            raise TypeError("student_options apply to built students, not to a model object")
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.num_train_epochs = config.num_epochs
        self.max_length, self.center_labels, self.eval_batch_size = max_length, center_labels, eval_batch_size
        self.decoder_learning_rate = decoder_learning_rate
        self.ranker = self.as_ranker(self.model)

    def as_ranker(self, model) -> T5Ranker:
        return T5Ranker.from_model(model, self.tokenizer, max_length=self.max_length, batch_size=self.eval_batch_size)

    def dataset(self, examples: Sequence[DistillExample], center_labels: bool | None = None, max_length=None,
                source: str = "") -> DistillDataset:
        """Tokenise examples with the ranker's own input builder; centre the labels if asked."""
        centered = self.center_labels if center_labels is None else center_labels
        labels = np.asarray([ex.logits for ex in examples], dtype=np.float32).reshape(-1, 2)
        ids = self.ranker.encode([ex.query for ex in examples], [ex.text for ex in examples],
                                 max_length or self.max_length)
        return DistillDataset(list(examples), ids, center(labels) if centered else labels, centered, source)

    def load_msmarco_dataset(self, msmarco_tsv_file: str | os.PathLike | None = None, language: str = "english",
                             max_length: int | None = None, *, queries: Mapping[str, str] | None = None,
                             corpus: Mapping | None = None, max_examples: int = MSMARCO_MAX_EXAMPLES,
                             center_labels: bool | None = None) -> DistillDataset:
        """Stage 1: the MS MARCO soft-label tsv (None: the published one, from the hub); texts from `queries` and
        `corpus`, else from mMARCO in `language` as in the package."""
        msmarco_tsv_file = msmarco_tsv_file or published_file("msmarco")
        if queries is None or corpus is None:
            qids, docids = soft_label_ids(msmarco_tsv_file, max_examples)
            queries, corpus = mmarco_texts(language, queries, corpus, qids, docids)
        examples = read_msmarco_soft_labels(msmarco_tsv_file, queries, corpus, max_examples)
        return self.dataset(examples, center_labels, max_length, source=str(msmarco_tsv_file))

    def load_custom_dataset(self, distill_file: str | os.PathLike | None = None, max_length: int | None = None,
                            *, center_labels: bool | None = None) -> DistillDataset:
        """Stage 2: a jsonl of {query, contents, true_logit, false_logit} (None: the published BEIR soft labels)."""
        distill_file = distill_file or published_file("beir")
        return self.dataset(read_custom_jsonl(distill_file), center_labels, max_length, source=str(distill_file))

    def compute_loss(self, model, batch) -> torch.Tensor:
        logits = first_step_logits(model, batch["input_ids"], batch["attention_mask"], self.ranker.token_ids,
                                   self.ranker.decoder_start_token_id)
        return distillation_loss(logits, batch["teacher_logits"])

    def param_groups(self) -> list[dict] | None:
        """AdamW groups: the encoder at the loop's rate, the rest at decoder_learning_rate (None: one group)."""
        if self.decoder_learning_rate is None:
            return None
        encoder = {id(p) for p in self.model.get_encoder().parameters()}
        groups = []
        for lr, pick in ((self.config.learning_rate, True), (self.decoder_learning_rate, False)):
            params = [p for p in self.model.parameters() if p.requires_grad and (id(p) in encoder) == pick]
            groups += [{"params": [p for p in params if p.ndim >= 2], "weight_decay": self.config.weight_decay,
                        "lr": lr}, {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0, "lr": lr}]
        return [g for g in groups if g["params"]]

    def load(self, folder) -> torch.nn.Module:
        self.tokenizer.save_pretrained(folder)
        return load_seq2seq(folder, device=next(self.model.parameters()).device)[0]

    def train(self, train_dataset: DistillDataset, resume_training: bool = True,
              dev: DevEvaluator | None = None) -> Selected:
        """Train in place, selecting on `dev` (step 0 included): best/ holds the selected weights, final/ the last,
        each with the tokenizer so `T5Ranker(path)` loads it."""
        config = replace(self.config, resume=resume_training)
        if self.num_train_epochs != config.num_epochs:  # a fractional epoch: stop after its share of the steps
            per_epoch = len(train_dataset) // (config.per_device_batch_size * config.gradient_accumulation_steps)
            steps = math.ceil(self.num_train_epochs * per_epoch)
            config = replace(config, max_steps=min(steps, config.max_steps) if config.max_steps else steps)
        selected = train_with_dev_selection(
            self.model, train_dataset, pad_collate(self.tokenizer), self.compute_loss, config, dev,
            load_selected=self.load, optimizer_params=self.param_groups(), lengths=train_dataset.lengths)
        for folder in (selected.result.final_dir, selected.result.best_dir):
            if folder is not None:
                self.tokenizer.save_pretrained(folder)
        self.model.eval()
        return selected


def monot5_teacher_examples(teacher: str, pairs: Mapping[str, Sequence[str]], queries: Mapping[str, str], corpus,
                            batch_size: int = 32) -> list[DistillExample]:
    """Soft labels straight from a monoT5 teacher (e.g. monoT5-3B): its [false, true] logits on each (query,
    document) of `pairs`, at length 512; no calibration needed."""
    ranker = T5Ranker(teacher, batch_size=batch_size, max_length=512)
    flat = [(q, d) for q in pairs for d in pairs[q]]
    logits = ranker.pair_logits([queries[q] for q, _ in flat], [corpus[d].text_for_model for _, d in flat])
    return [DistillExample(queries[q], corpus[d].text_for_model, float(f), float(t_), q, d)
            for (q, d), (f, t_) in zip(flat, logits.tolist())]
