"""monoT5 pointwise ranking (Nogueira et al., 2020), as InRanker's `T5Ranker` exposes it (unicamp-dl/InRanker).

One input per (query, document): ``"Query: {q} Document: {d} Relevant:"`` plus the tokenizer's special tokens
(EOS for T5). The decoder runs ONE step from `decoder_start_token_id`; of that step's vocabulary logits only those
of the tokens "false" and "true" are kept (ids looked up in the tokenizer: `▁false`/`▁true` for T5's
SentencePiece, `false`/`true` for a BERT WordPiece vocabulary). score = softmax([false, true])[true];
`return_logits=True` also gives `[false_logit, true_logit]` per document, the soft labels InRanker distils.

The same code scores any sequence-to-sequence model with that interface:
- a `T5ForConditionalGeneration` (a hub monoT5 such as castorini/monot5-3b-msmarco-10k, a t5-small student, or a
  T5 built from a config with the real T5 tokenizer: `build_t5_from_config`);
- the offline default student `build_minilm_student`: transformers' `EncoderDecoderModel` with the pretrained
  all-MiniLM-L6-v2 encoder under a small randomly initialised BERT decoder (cross-attention, LM head over the
  MiniLM/BERT vocabulary), scored on the first-step logits of "false"/"true" exactly like monoT5.

Differences from the `inranker` package, on purpose:
- Truncation keeps the prompt: the document is cut so that "Query: ... Document:", " Relevant:" and EOS always fit
  in `max_length`. The package's inference truncates the whole string at its end (a long document loses
  "Relevant:" but keeps EOS) and its training code truncates the document but drops EOS; here training and
  inference build their inputs with this one function (`encode_pairs`), so they cannot disagree. For inputs
  shorter than `max_length` the ids equal the package's inference ids (tests/test_monot5.py).
- Pairs are sorted by length before batching (each batch pads to nearly its own length), scoring runs under
  `torch.inference_mode()` with bf16 autocast where the hardware has it, and the first decoder step is one plain
  forward (the package builds `prepare_inputs_for_generation` inputs for a greedy loop of length 1).
- `rerank` ranks by the logit margin true - false, which orders documents exactly as softmax[true] does but does
  not saturate at 1.0 in float32.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from ..progress import tqdm

from ..collate import pad_collate
from ..data.candidates import candidates_from_run, score_pairs
from ..data.types import Document, Run
from ..models import autocast_context, check_folder, compute_dtype, fresh_keys, load_model, load_tokenizer, pick_device

PROMPT = "Query: {query} Document: {document} Relevant:"
RELEVANCE_WORDS = ("false", "true")  # index 0: false, index 1: true (the order of `return_logits`)


# ---------------------------------------------------------------------------------------------------------------
# Tokens and inputs
# ---------------------------------------------------------------------------------------------------------------

def relevance_token_ids(tokenizer) -> tuple[int, int]:
    """(false_id, true_id): the vocabulary entries monoT5 reads, looked up in the tokenizer (never hard-coded).

    SentencePiece vocabularies hold them as '▁false'/'▁true' (T5: 6136/1176), byte-level BPE as 'Ġfalse'/'Ġtrue',
    WordPiece as 'false'/'true'. A word that is none of these must encode to exactly one token.
    """
    vocab = tokenizer.get_vocab()
    ids = []
    for word in RELEVANCE_WORDS:
        for entry in (f"▁{word}", f"Ġ{word}", word):
            if entry in vocab:
                ids.append(int(vocab[entry]))
                break
        else:
            pieces = tokenizer.encode(word, add_special_tokens=False)
            if len(pieces) != 1:
                raise ValueError(f"{type(tokenizer).__name__} has no single token for {word!r} (got {pieces}): "
                                 "it cannot score monoT5-style")
            ids.append(int(pieces[0]))
    return ids[0], ids[1]


def _special_wrap(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after one sequence: T5 ([], [</s>]), BERT ([CLS], [SEP])."""
    plain = tokenizer.encode("relevant", add_special_tokens=False)
    full = tokenizer.encode("relevant", add_special_tokens=True)
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return full[:start], full[start + len(plain):]
    raise ValueError(f"cannot locate the special tokens of {type(tokenizer).__name__}")


def encode_pairs(tokenizer, queries: Sequence[str], docs: Sequence[str], max_length: int = 512) -> list[list[int]]:
    """Token ids of "Query: {q} Document: {d} Relevant:" + special tokens, at most `max_length` each.

    The document is truncated first, so the prompt's frame and the EOS always survive; only a query longer than
    the whole budget is itself cut (keeping " Relevant:" and EOS). Used by inference and by training alike.
    """
    if len(queries) != len(docs):
        raise ValueError(f"{len(queries)} queries for {len(docs)} documents")
    if not docs:
        return []
    head, tail = _special_wrap(tokenizer)
    suffix = tokenizer.encode("Relevant:", add_special_tokens=False)
    frame = len(head) + len(tail) + len(suffix)
    if max_length <= frame:
        raise ValueError(f"max_length {max_length} leaves no room for a query ({frame} tokens of frame)")
    unique_queries = list(dict.fromkeys(queries))
    prefixes = dict(zip(unique_queries, tokenizer([f"Query: {q} Document:" for q in unique_queries],
                                                  add_special_tokens=False)["input_ids"]))
    doc_ids = tokenizer(list(docs), add_special_tokens=False, verbose=False)["input_ids"]  # cut below, no warning
    out = []
    for q, d in zip(queries, doc_ids):
        prefix = prefixes[q][: max_length - frame]
        budget = max_length - frame - len(prefix)
        out.append(head + prefix + d[:budget] + suffix + tail)
    return out


def first_step_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_ids: Sequence[int],
                      decoder_start_token_id: int | None = None) -> torch.Tensor:
    """[batch, len(token_ids)] logits of the first decoder step (from decoder_start_token_id), with grad if enabled.

    The forward of both scoring and the distillation loss: InRanker's MSE compares these two numbers per pair.
    """
    start = decoder_start_token_id if decoder_start_token_id is not None else decoder_start_id(model)
    decoder_input_ids = torch.full((input_ids.shape[0], 1), start, dtype=torch.long, device=input_ids.device)
    out = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                use_cache=False)
    return out.logits[:, 0, list(token_ids)]


def decoder_start_id(model) -> int:
    """The decoder's start token: the model config's, else its generation config's (transformers 5 keeps it there)."""
    for config in (getattr(model, "config", None), getattr(model, "generation_config", None)):
        value = getattr(config, "decoder_start_token_id", None)
        if value is not None:
            return int(value)
    raise ValueError(f"{type(model).__name__} has no decoder_start_token_id: set model.config.decoder_start_token_id")


# ---------------------------------------------------------------------------------------------------------------
# Students that exist offline
# ---------------------------------------------------------------------------------------------------------------

def build_minilm_student(encoder: str = "minilm-l6", decoder_layers: int = 2, decoder_heads: int | None = None,
                         decoder_intermediate_size: int | None = None, copy_embeddings: bool = True, seed: int = 13):
    """A monoT5-shaped student with a pretrained encoder: (EncoderDecoderModel, tokenizer).

    Encoder: the pretrained BERT `encoder` (all-MiniLM-L6-v2 offline). Decoder: a fresh `decoder_layers`-layer
    BERT with causal self-attention, cross-attention over the encoder and an LM head over the encoder's own
    vocabulary (tied to the decoder's word embeddings). `copy_embeddings` starts those embeddings (hence the LM
    head rows of "true"/"false") from the encoder's pretrained word embeddings; everything else of the decoder is
    random (seeded). The decoder starts from [CLS]; scoring reads its first-step logits of "false"/"true".
    """
    from transformers import AutoModel, BertConfig, BertLMHeadModel, EncoderDecoderModel

    tokenizer = load_tokenizer(encoder)
    enc = load_model(encoder, auto_class=AutoModel, device="cpu", add_pooling_layer=False)
    hidden = enc.config.hidden_size
    config = BertConfig(
        vocab_size=enc.config.vocab_size, hidden_size=hidden, num_hidden_layers=decoder_layers,
        num_attention_heads=decoder_heads or enc.config.num_attention_heads,
        intermediate_size=decoder_intermediate_size or enc.config.intermediate_size,
        max_position_embeddings=enc.config.max_position_embeddings, is_decoder=True, add_cross_attention=True,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        dec = BertLMHeadModel(config)
    if copy_embeddings:
        with torch.no_grad():
            dec.bert.embeddings.word_embeddings.weight.copy_(enc.embeddings.word_embeddings.weight)
    dec.tie_weights()
    model = EncoderDecoderModel(encoder=enc, decoder=dec)
    model.config.decoder_start_token_id = tokenizer.cls_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = tokenizer.sep_token_id
    model.generation_config.decoder_start_token_id = tokenizer.cls_token_id
    return model, tokenizer


#: The t5-efficient-tiny shape (google/t5-efficient-tiny): d_model 256, d_ff 1024, 4+4 layers, 4 heads of 64.
T5_EFFICIENT_TINY = dict(d_model=256, d_ff=1024, num_layers=4, num_decoder_layers=4, num_heads=4, d_kv=64,
                         feed_forward_proj="relu", dropout_rate=0.1)


def build_t5_from_config(tokenizer: str = "t5-tokenizer", seed: int = 13, **shape):
    """A randomly initialised T5ForConditionalGeneration (default: the t5-efficient-tiny shape) with the real T5
    tokenizer: the only T5 that exists offline. Returns (model, tokenizer)."""
    from transformers import T5Config, T5ForConditionalGeneration

    tok = load_tokenizer(tokenizer)
    config = T5Config(vocab_size=len(tok) if len(tok) > 32100 else 32128, pad_token_id=tok.pad_token_id,
                      eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.pad_token_id,
                      **{**T5_EFFICIENT_TINY, **shape})
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = T5ForConditionalGeneration(config)
    return model, tok


#: Offline student names `load_seq2seq` builds instead of loading (hub ids and folders load normally).
STUDENTS = {
    "minilm-monot5": build_minilm_student,
    "t5-efficient-tiny-random": build_t5_from_config,
}


def load_seq2seq(name_or_path: str | os.PathLike, device=None, **student_options):
    """(model, tokenizer) for a student name (`STUDENTS`), a saved folder or a hub id (AutoModelForSeq2SeqLM, which
    also loads a saved EncoderDecoderModel)."""
    name = os.fspath(name_or_path)
    if name in STUDENTS:
        model, tok = STUDENTS[name](**student_options)
        return model.to(device or "cpu"), tok
    if student_options:
        raise TypeError(f"options {sorted(student_options)} only apply to the built students {sorted(STUDENTS)}")
    model, _ = _load_seq2seq_reported(name, device)
    return model, load_tokenizer(name)


def _load_seq2seq_reported(name: str, device=None):
    """(model, the parameters loading initialised afresh): a local folder must be complete (check_folder)."""
    from transformers import AutoModelForSeq2SeqLM

    if Path(name).expanduser().is_dir():
        check_folder(Path(name).expanduser(), "monot5")
    model, report = load_model(name, auto_class=AutoModelForSeq2SeqLM, device=device or pick_device(),
                               output_loading_info=True)
    # an EncoderDecoderModel's encoder pooler is never run by the decoder (the student is built without one)
    return model, [k for k in fresh_keys(report) if not k.startswith("encoder.pooler.")]


# ---------------------------------------------------------------------------------------------------------------
# The ranker
# ---------------------------------------------------------------------------------------------------------------

class T5Ranker:
    """monoT5 scoring with the `inranker.T5Ranker` interface: `get_scores(query, docs, return_logits=False)`.

    model_name_or_path: a hub id (castorini/monot5-base-msmarco, unicamp-dl/InRanker-small), a saved folder, or
        an offline student name (`STUDENTS`); or pass `model=` and `tokenizer=` objects directly.
    bf16: None follows the precision setting (models.compute_dtype; 'auto': where the device computes it natively,
        CUDA or CPUs with AVX512-BF16/AMX), True/False to force.
    fp16: CUDA only. fp8: the package's 8-bit loading (bitsandbytes, CUDA only).
    The constructor keeps the package's keyword arguments (more than the 8 parameters a function here may take,
    tests/test_layers.py PEER_INTERFACES) so that a call written for `inranker.T5Ranker` runs unchanged.
    """

    def __init__(self, model_name_or_path: str | os.PathLike | None = "unicamp-dl/InRanker-base", batch_size: int = 32,
                 max_length: int = 512, device=None, bf16: bool | None = None, fp16: bool = False, fp8: bool = False,
                 model=None, tokenizer=None, silent: bool = True, sort_by_length: bool = True):
        self.device = torch.device(device) if device is not None else pick_device()
        self.fresh_head: list[str] | None = None  # what loading initialised afresh; None: a model passed in
        if fp16 and self.device.type != "cuda":
            raise ValueError("fp16 needs a CUDA device")
        if fp8 and self.device.type != "cuda":
            raise ValueError("fp8 (8-bit weights via bitsandbytes, as the inranker package) needs a CUDA device")
        if model is None:
            if model_name_or_path is None:
                raise TypeError("give model_name_or_path or model= and tokenizer=")
            if fp8:
                from transformers import AutoModelForSeq2SeqLM, BitsAndBytesConfig

                model = load_model(model_name_or_path, auto_class=AutoModelForSeq2SeqLM, device=self.device,
                                   dtype=torch.float16, quantization_config=BitsAndBytesConfig(load_in_8bit=True))
                tokenizer = tokenizer or load_tokenizer(model_name_or_path)
            elif os.fspath(model_name_or_path) in STUDENTS:
                model, loaded_tok = load_seq2seq(model_name_or_path, device=self.device)
                tokenizer = tokenizer or loaded_tok
                self.fresh_head = ["the decoder (a built student: random until trained)"]
            else:
                model, self.fresh_head = _load_seq2seq_reported(os.fspath(model_name_or_path), self.device)
                tokenizer = tokenizer or load_tokenizer(model_name_or_path)
        elif tokenizer is None:
            raise TypeError("model= needs tokenizer=")
        self.model = model if fp8 else model.to(self.device)
        self.model.eval()
        self.tokenizer = tokenizer
        self.name = str(model_name_or_path) if model_name_or_path is not None else type(model).__name__
        self.batch_size = batch_size
        self.max_length = max_length
        self.silent = silent
        self.sort_by_length = sort_by_length
        self.token_false_id, self.token_true_id = relevance_token_ids(tokenizer)
        self.decoder_start_token_id = decoder_start_id(self.model)
        if fp16:
            self.compute_dtype = torch.float16
        elif bf16 is None:
            self.compute_dtype = compute_dtype(self.device)
        else:
            self.compute_dtype = torch.bfloat16 if bf16 else torch.float32

    @classmethod
    def from_model(cls, model, tokenizer, **kwargs) -> "T5Ranker":
        """Wrap a model in memory (a student being trained) without loading anything."""
        kwargs.setdefault("device", next(model.parameters()).device)
        return cls(None, model=model, tokenizer=tokenizer, **kwargs)

    @property
    def token_ids(self) -> tuple[int, int]:
        return self.token_false_id, self.token_true_id

    def encode(self, queries: Sequence[str], docs: Sequence[str], max_length: int | None = None) -> list[list[int]]:
        return encode_pairs(self.tokenizer, queries, docs, max_length or self.max_length)

    def pair_logits(self, queries: Sequence[str], docs: Sequence[str], max_length: int | None = None,
                    desc: str = "monoT5") -> np.ndarray:
        """[n, 2] float32 array of (false_logit, true_logit) for n (query, doc) pairs, in input order."""
        ids = self.encode(queries, docs, max_length)
        out = np.zeros((len(ids), 2), dtype=np.float32)
        if not ids:
            return out
        order = (np.argsort([-len(x) for x in ids], kind="stable") if self.sort_by_length
                 else np.arange(len(ids)))
        was_training = self.model.training
        self.model.eval()
        collate = pad_collate(self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0)
        starts = range(0, len(ids), self.batch_size)
        with torch.inference_mode(), autocast_context(self.device, dtype=self.compute_dtype):
            for start in tqdm(starts, desc=desc, unit="batch", disable=self.silent or len(starts) < 2):
                rows = order[start:start + self.batch_size]
                batch = collate([{"input_ids": ids[i]} for i in rows])
                logits = first_step_logits(self.model, batch["input_ids"].to(self.device),
                                           batch["attention_mask"].to(self.device), self.token_ids,
                                           self.decoder_start_token_id)
                out[rows] = logits.float().cpu().numpy()
        if was_training:
            self.model.train()
        return out

    def get_scores(self, query: str, docs: Sequence[str], max_length: int | None = None,
                   return_logits: bool = False):
        """softmax over (false, true) logits, index true, per document; with return_logits also
        [[false_logit, true_logit], ...] (returned as `(scores, logits)`, as the inranker package does)."""
        logits = self.pair_logits([query] * len(docs), list(docs), max_length)
        scores = _softmax_true(logits).tolist()
        if return_logits:
            return scores, logits.tolist()
        return scores

    def rerank(self, run: Run, corpus: Mapping[str, Document], queries: Mapping[str, str], depth: int = 100) -> Run:
        """Score each query's top-`depth` candidates of `run`; the score is the margin true - false (same order as
        softmax[true], without float saturation). All pairs of all queries are length-sorted together."""
        return score_pairs(lambda q, d: [t - f for f, t in self.pair_logits(q, d, desc=f"rerank {self.name}").tolist()],
                           candidates_from_run(run, corpus, queries, depth))


def _softmax_true(logits: np.ndarray) -> np.ndarray:
    """softmax([false, true])[true] = sigmoid(true - false), computed stably."""
    margin = logits[:, 1].astype(np.float64) - logits[:, 0].astype(np.float64)
    return (1.0 / (1.0 + np.exp(-margin))).astype(np.float32)
