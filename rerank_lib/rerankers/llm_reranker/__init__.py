"""LLM-decoder rerankers: RAG-Retrieval's score head and bge-reranker-v2-gemma's "Yes" logit, plus the LLM teacher.

Two published ways to turn a decoder-only LM into a pointwise reranker, one class (`DecoderReranker`):

* head="score" — RAG-Retrieval `LLMDecoder` (rag_retrieval/train/reranker/model_llm.py): the input is
  `query_format(q) + seq + document_format(d) + special_token` (defaults "query: {}", "\\n", "document: {}",
  "</s>"); only the DOCUMENT is cut to fit `max_length`; a fresh linear head (hidden -> 1, no bias, as
  AutoModelForSequenceClassification's `score`) reads the hidden state of the last non-pad token. RAG-Retrieval
  fine-tunes every weight with point_ce / point_mse.
* head="yes" — FlagEmbedding's base LLM reranker (bge-reranker-v2-gemma; FlagEmbedding/inference/reranker/
  decoder_only/base.py and finetune/reranker/decoder_only): `[bos] "A: " + q  "\\n"  "B: " + d  "\\n" + PROMPT`,
  PROMPT = "Given a query A and a passage B, determine whether the passage contains an answer to the query by
  providing a prediction of either 'Yes' or 'No'."; the score is the logit of the first token of "Yes" at the
  last position; trained with LoRA (peft) and FlagEmbedding's group softmax CE.
* prompt="chat" with head="yes" — the distillation teacher of RAG-Retrieval's examples/distill_llm_to_bert_reranker
  (model_llm_generate.py): the question in the model's chat template with the generation prompt, and the
  probability of "Yes" at the FIRST generated step, from ONE forward pass (`yes_probability`), not generate().

What we never do: project every position onto the whole vocabulary. The backbone's last hidden states are
indexed at the scored position first (`last_token_index`, from the attention mask, so left and right padding give
the same answer; position ids are rebuilt from the mask for the same reason), and only that vector is projected:
onto one score row, onto the two rows of "Yes"/"No", or (teacher with normalize="vocab", one position only) onto
the vocabulary.

The class offers what `rerank_lib.rerankers.cross_encoder.fit` trains (`model`, `encode_pairs`, `collate`,
`batch_logits`, `load_weights`) and what evaluation calls (`score`, `rerank`), so the LLM rerankers are trained
with the same losses and the same loop as the BERT cross-encoder.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ...atomic import write_json
from ...data.types import Document, Run
from ...models import autocast_context, load_model, load_tokenizer, pick_device, pick_dtype
from ...paths import cache_dir
from ...training import pad_collate

__all__ = [
    "FLAG_PROMPT", "CHAT_TEACHER_PROMPT", "HEADS", "PROMPTS", "LoraSettings", "PromptFormat", "DecoderReranker",
    "DecoderScorer", "HeadOnlyRanker", "last_token_index", "position_ids_from_mask", "build_input_ids", "CONFIG_FILE",
]

FLAG_PROMPT = ("Given a query A and a passage B, determine whether the passage contains an answer to the query by "
               "providing a prediction of either 'Yes' or 'No'.")
# RAG-Retrieval's distillation prompt (model_llm_generate.py) is Chinese and asks for 是/否; this is its English
# rendering, with the passage last so that truncation cuts the passage only.
CHAT_TEACHER_PROMPT = ("Given a query A and a passage B, judge from the passage whether it contains the answer to "
                       "the query, and give your prediction: \"Yes\" or \"No\".\nQuery A: {query}\nPassage B: {passage}")
HEADS = ("score", "yes")
PROMPTS = ("rag-retrieval", "flagembedding", "chat")
CONFIG_FILE = "decoder_reranker.json"
WEIGHTS_FILE = "trainable.safetensors"
_PASSAGE_MARK = "\u2063PASSAGE\u2063"  # an invisible separator nobody writes: where the chat template's passage goes


@dataclass(frozen=True)
class PromptFormat:
    """How a (query, document) pair becomes one token sequence. `kind` picks the published layout:

    rag-retrieval: query_format.format(q) + seq + document_format.format(d) + special_token   (RAG-Retrieval)
    flagembedding: [bos] query_instruction + q + sep + passage_instruction + d + sep + prompt (FlagEmbedding)
    chat:          the tokenizer's chat template around `chat_prompt` (with {query}, {passage}), generation prompt on
    """

    kind: str = "rag-retrieval"
    query_format: str = "query: {}"
    document_format: str = "document: {}"
    seq: str = "\n"
    special_token: str = "</s>"
    query_instruction: str = "A: "
    passage_instruction: str = "B: "
    sep: str = "\n"
    prompt: str = FLAG_PROMPT
    chat_prompt: str = CHAT_TEACHER_PROMPT
    max_query_fraction: float = 0.5  # the query (with its wrapper) keeps at most this share of max_length

    def __post_init__(self):
        if self.kind not in PROMPTS:
            raise ValueError(f"prompt kind must be one of {PROMPTS}, got {self.kind!r}")
        if self.kind == "chat" and ("{query}" not in self.chat_prompt or "{passage}" not in self.chat_prompt):
            raise ValueError("chat_prompt needs the fields {query} and {passage}")
        if not 0 < self.max_query_fraction < 1:
            raise ValueError("max_query_fraction must be in (0, 1)")


@dataclass(frozen=True)
class LoraSettings:
    """peft LoRA on the backbone (FlagEmbedding's gemma example: r 32, alpha 64, q/k/v/o projections, lr 2e-4)."""

    r: int = 32
    alpha: float = 64
    dropout: float = 0.1
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")


# ---------------------------------------------------------------------------------------------------- indexing


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last position whose mask is 1, per row: right padding -> length - 1, left padding -> L - 1.

    Computed from the mask (not from a pad id), so a pad token that is also the end-of-sequence token, or a
    sequence that legitimately contains it, is handled.
    """
    if attention_mask.dim() != 2:
        raise ValueError(f"attention_mask must be [batch, length], got shape {tuple(attention_mask.shape)}")
    mask = attention_mask.long()
    if bool((mask.sum(-1) == 0).any()):
        raise ValueError("a row of the attention mask is all padding: nothing to score")
    positions = torch.arange(mask.shape[-1], device=mask.device)
    return (mask * (positions + 1)).argmax(-1)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... over the real tokens of each row (pads get 0): a left-padded row sees the same positions as
    the same row unpadded (a decoder otherwise numbers positions from the first pad)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


# ---------------------------------------------------------------------------------------------------- inputs


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False) if text else []


def _bos(tokenizer) -> list[int]:
    """FlagEmbedding's rule: prepend BOS when the tokenizer has one that is not its pad token."""
    bos = tokenizer.bos_token_id
    return [bos] if bos is not None and bos != tokenizer.pad_token_id else []


def _cut_query(tokenizer, query: str, budget: int) -> str:
    ids = _encode(tokenizer, query)
    return query if len(ids) <= budget else tokenizer.decode(ids[:max(budget, 1)])


def _pieces(tokenizer, fmt: PromptFormat, query: str, doc: str, max_length: int) -> tuple[list, list, list]:
    """(prefix ids, document ids, suffix ids); only the document is to be truncated afterwards."""
    query, doc = query.strip(), doc.strip()
    query_budget = int(max_length * fmt.max_query_fraction)
    if fmt.kind == "rag-retrieval":
        query = _cut_query(tokenizer, query, query_budget)
        prefix = _bos(tokenizer) + _encode(tokenizer, fmt.query_format.format(query)) + _encode(tokenizer, fmt.seq)
        return prefix, _encode(tokenizer, fmt.document_format.format(doc)), _encode(tokenizer, fmt.special_token)
    if fmt.kind == "flagembedding":
        query = _cut_query(tokenizer, query, query_budget)
        prefix = (_bos(tokenizer) + _encode(tokenizer, fmt.query_instruction + query) + _encode(tokenizer, fmt.sep))
        suffix = _encode(tokenizer, fmt.sep) + _encode(tokenizer, fmt.prompt)
        return prefix, _encode(tokenizer, fmt.passage_instruction + doc), suffix
    # chat: render the template once with a marker where the passage goes, tokenise the two sides separately
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("prompt kind 'chat' needs a tokenizer with a chat template")
    query = _cut_query(tokenizer, query, query_budget)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": fmt.chat_prompt.format(query=query, passage=_PASSAGE_MARK)}],
        tokenize=False, add_generation_prompt=True)
    before, after = text.split(_PASSAGE_MARK)
    return _encode(tokenizer, before), _encode(tokenizer, doc), _encode(tokenizer, after)


def build_input_ids(tokenizer, fmt: PromptFormat, query: str, doc: str, max_length: int) -> list[int]:
    """The token ids of one pair, at most `max_length` long: the document is cut, never the instruction, the
    query (beyond max_query_fraction) or the trailing special token / prompt."""
    if not isinstance(query, str) or not isinstance(doc, str):
        raise TypeError(f"query and document must be strings, got {type(query).__name__} and {type(doc).__name__}")
    prefix, doc_ids, suffix = _pieces(tokenizer, fmt, query, doc, max_length)
    budget = max_length - len(prefix) - len(suffix)
    if budget < 1:
        raise ValueError(f"max_length={max_length} leaves no room for the document: the prompt and query take "
                         f"{len(prefix) + len(suffix)} tokens")
    return prefix + doc_ids[:budget] + suffix


# ---------------------------------------------------------------------------------------------------- module


class DecoderScorer(nn.Module):
    """backbone (a decoder without its LM head) -> hidden state at the last real token -> `head`.

    head is nn.Linear(hidden, 1) ('score', fresh) or nn.Linear(hidden, 2) holding the LM head's rows of "Yes" and
    "No" ('yes'; the score is column 0, the Yes logit). forward returns one logit per sequence.
    """

    def __init__(self, backbone: nn.Module, head: nn.Linear, kind: str):
        super().__init__()
        if kind not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {kind!r}")
        self.backbone = backbone
        self.kind = kind
        if kind == "score":
            self.score = head
        else:
            self.yes_no = head

    def last_hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                            position_ids=position_ids_from_mask(attention_mask), use_cache=False)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        return hidden[rows, last_token_index(attention_mask).to(hidden.device)]

    def head_logits(self, last: torch.Tensor) -> torch.Tensor:
        """[N, 1] (score) or [N, 2] (Yes, No logits)."""
        head = self.score if self.kind == "score" else self.yes_no
        return head(last.to(head.weight.dtype))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head_logits(self.last_hidden(input_ids, attention_mask))[:, 0]

    # The training loop saves the trained weights with save_pretrained when a model has it: keep only what trains.
    def save_pretrained(self, directory, state_dict: Mapping[str, torch.Tensor] | None = None, **_):
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = state_dict if state_dict is not None else self.state_dict()
        names = [n for n, p in self.named_parameters() if p.requires_grad]
        tensors, seen = {}, set()
        for name in names:
            tensor = state[name]
            key = (tensor.data_ptr(), tuple(tensor.shape))
            if key in seen:  # a tied copy: the structure restores it
                continue
            seen.add(key)
            tensors[name] = tensor.detach().to("cpu").contiguous()
        save_file(tensors, str(directory / WEIGHTS_FILE))
        return directory

    def load_trainable(self, directory) -> None:
        from safetensors.torch import load_file

        path = Path(directory) / WEIGHTS_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path}: not saved by DecoderScorer.save_pretrained")
        state = load_file(str(path))
        own = dict(self.named_parameters())
        unknown = sorted(set(state) - set(own))
        if unknown:
            raise RuntimeError(f"{path}: {len(unknown)} saved tensors do not exist in this model, e.g. {unknown[:3]} "
                               "(different LoRA settings or head?)")
        with torch.no_grad():
            for name, tensor in state.items():
                if own[name].shape != tensor.shape:
                    raise RuntimeError(f"{path}: {name} has shape {tuple(tensor.shape)}, the model "
                                       f"{tuple(own[name].shape)}")
                own[name].copy_(tensor.to(own[name].dtype))

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None):
        self.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gradient_checkpointing_kwargs)


def _dequantised_dir(model_name: str) -> Path | None:
    """For a GGUF model (SmolLM2 offline): a folder under cache_dir('models') holding the de-quantised weights and
    tokenizer as ordinary HF files, keyed by the GGUF file's path, size and mtime. De-quantising the GGUF takes
    tens of seconds per load on a CPU; the saved folder loads in about one."""
    from ...models import resolve

    resolved = resolve(model_name)
    if not resolved.gguf_file:
        return None
    gguf = Path(resolved.source) / resolved.gguf_file
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf}\x00{stat.st_size}\x00{int(stat.st_mtime)}".encode()).hexdigest()[:16]
    return cache_dir("models") / f"{Path(resolved.gguf_file).stem}-{key}"


def _save_dequantised(folder: Path, model, tokenizer) -> None:
    """config + model.safetensors + tokenizer. transformers refuses save_pretrained on a GGUF-loaded model, so the
    (already de-quantised, fp32) state dict is written directly; a tied LM head is left to the config to re-tie."""
    import shutil

    from safetensors.torch import save_file

    staging = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    config = copy.deepcopy(model.config)
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attr):
            delattr(config, attr)
    config.save_pretrained(staging)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(staging)
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()
             if not (tied and k == "lm_head.weight")}
    save_file(state, str(staging / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(staging)
    try:
        staging.rename(folder)
    except OSError:  # another process saved it first
        shutil.rmtree(staging, ignore_errors=True)


@functools.lru_cache(maxsize=2)
def _cached_causal_lm(model_name: str):
    """The pretrained causal LM on CPU in fp32, loaded once per process (and, for a GGUF, de-quantised once per
    machine: see _dequantised_dir); every reranker gets its own deep copy."""
    from transformers import AutoModelForCausalLM

    folder = _dequantised_dir(model_name)
    if folder is not None and (folder / "config.json").exists():
        return load_model(str(folder), auto_class=AutoModelForCausalLM, device="cpu", dtype=torch.float32)
    model = load_model(model_name, auto_class=AutoModelForCausalLM, device="cpu", dtype=torch.float32)
    if folder is not None:
        _save_dequantised(folder, model, _cached_tokenizer(model_name))
    return model


@functools.lru_cache(maxsize=2)
def _cached_tokenizer(model_name: str):
    folder = _dequantised_dir(model_name)
    if folder is not None and (folder / "tokenizer_config.json").exists():
        return load_tokenizer(str(folder))
    return load_tokenizer(model_name)


def _token_id(tokenizer, word: str) -> int:
    """FlagEmbedding's rule: the first token of `word` without special tokens."""
    ids = tokenizer(word, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"the tokenizer maps {word!r} to no token")
    return int(ids[0])


# ---------------------------------------------------------------------------------------------------- ranker


class DecoderReranker:
    """A decoder-only LM as a pointwise reranker (see the module docstring for the two heads and three prompts).

    model_name: an offline built-in ('smollm2-135m-instruct'), a local folder or a hub id (Qwen/Qwen2.5-1.5B-Instruct,
        BAAI/bge-reranker-v2-gemma). causal_lm / tokenizer: ready objects instead (tests build tiny models).
    head: 'score' (RAG-Retrieval) or 'yes' (FlagEmbedding / the teacher). prompt: a PromptFormat or its kind;
        default 'rag-retrieval' for the score head and 'flagembedding' for the yes head.
    lora: LoraSettings to train adapters only (the head stays trainable for 'score', frozen for 'yes'); None trains
        every weight (RAG-Retrieval's recipe).
    max_length: tokens per pair, document truncated to fit. padding_side: 'right' (default) or 'left'; both score
        identically. dtype: inference autocast dtype (None: bf16 where native, else fp32); weights stay fp32.
    """

    def __init__(self, model_name: str | os.PathLike = "smollm2-135m-instruct", head: str = "score",
                 prompt: PromptFormat | str | None = None, max_length: int = 192, lora: LoraSettings | None = None,
                 device=None, dtype: torch.dtype | None = None, init_seed: int = 0, padding_side: str = "right",
                 causal_lm=None, tokenizer=None):
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        if prompt is None:
            prompt = "rag-retrieval" if head == "score" else "flagembedding"
        self.prompt = PromptFormat(kind=prompt) if isinstance(prompt, str) else prompt
        if max_length < 8:
            raise ValueError(f"max_length must be >= 8, got {max_length}")
        self.model_name = os.fspath(model_name)
        self.head, self.max_length, self.lora = head, int(max_length), lora
        self.device = torch.device(device) if device is not None else pick_device()
        # CPU: fp32. bf16 autocast made SmolLM2's forward ~5x SLOWER on this machine's AVX512-BF16 CPU (measured,
        # 8 x 192 tokens), unlike MiniLM where it helps; on GPUs bf16/fp16 as usual.
        self.compute_dtype = dtype if dtype is not None else (
            pick_dtype(self.device) if self.device.type == "cuda" else torch.float32)

        tok = tokenizer if tokenizer is not None else _cached_tokenizer(self.model_name)
        tok = copy.copy(tok)  # padding settings are ours; the cached tokenizer stays untouched
        if tok.pad_token_id is None:  # RAG-Retrieval: pad with EOS (the attention mask tells them apart)
            tok.pad_token = tok.eos_token
        tok.padding_side = padding_side
        self.tokenizer = tok
        self.yes_id, self.no_id = _token_id(tok, "Yes"), _token_id(tok, "No")

        base = copy.deepcopy(causal_lm if causal_lm is not None else _cached_causal_lm(self.model_name))
        backbone = base.get_decoder() if hasattr(base, "get_decoder") else base.model
        hidden = int(base.config.hidden_size)
        # The LM head stays outside the trained module: only the teacher's full-vocabulary normalisation uses it,
        # at one position per pair.
        self._lm_head = base.get_output_embeddings()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            if head == "score":  # AutoModelForSequenceClassification's score layer: no bias, N(0, initializer_range)
                layer = nn.Linear(hidden, 1, bias=False)
                nn.init.normal_(layer.weight, std=float(getattr(base.config, "initializer_range", 0.02)))
            else:
                lm_weight = self._lm_head.weight.detach()
                lm_bias = getattr(self._lm_head, "bias", None)
                layer = nn.Linear(hidden, 2, bias=lm_bias is not None)
                with torch.no_grad():
                    layer.weight.copy_(lm_weight[[self.yes_id, self.no_id]])
                    if lm_bias is not None:
                        layer.bias.copy_(lm_bias.detach()[[self.yes_id, self.no_id]])
        if lora is not None:
            from peft import LoraConfig, get_peft_model

            backbone = get_peft_model(backbone, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                                           target_modules=list(lora.target_modules), bias="none"))
            layer.requires_grad_(head == "score")  # FlagEmbedding's LoRA leaves the LM head frozen
        self.model = DecoderScorer(backbone, layer, head).to(self.device)
        self._lm_head.to(self.device)
        self.model.eval()
        self.cache_features = True  # score() reuses cached hidden states (see score)
        self._collate = pad_collate(self.tokenizer, padding_side=padding_side)

    def __repr__(self) -> str:
        lora = f", lora=r{self.lora.r}" if self.lora else ""
        return (f"DecoderReranker({self.model_name!r}, head={self.head!r}, prompt={self.prompt.kind!r}, "
                f"max_length={self.max_length}{lora})")

    def trainable_parameters(self) -> tuple[int, int]:
        """(trainable, total) parameter counts."""
        params = list(self.model.parameters())
        return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)

    # -- the shared path: training and inference -------------------------------------------------------------

    def encode_pairs(self, queries: Sequence[str], docs: Sequence[str]) -> list[dict]:
        """Unpadded token ids of each pair (build_input_ids)."""
        if len(queries) != len(docs):
            raise ValueError(f"{len(queries)} queries for {len(docs)} docs")
        return [{"input_ids": build_input_ids(self.tokenizer, self.prompt, q, d, self.max_length)}
                for q, d in zip(queries, docs)]

    def collate(self, features: list[dict]) -> dict:
        return self._collate(features)

    def batch_logits(self, model: nn.Module, batch: Mapping) -> torch.Tensor:
        """[N] for pairs, [B, G] for groups (flattened through the model and back)."""
        device = next(model.parameters()).device
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        shape = ids.shape
        if ids.dim() == 3:
            ids, mask = ids.reshape(-1, shape[-1]), mask.reshape(-1, shape[-1])
        return model(ids, mask).reshape(shape[:-1])

    # -- inference -------------------------------------------------------------------------------------------

    def _batches(self, queries, docs, batch_size: int, show_progress: bool, desc: str):
        if isinstance(queries, str):
            queries = [queries] * len(docs)
        features = self.encode_pairs(list(queries), list(docs))
        order = np.argsort(-np.fromiter((len(f["input_ids"]) for f in features), dtype=np.int64), kind="stable")
        for start in tqdm(range(0, len(features), batch_size), disable=not show_progress, desc=desc, unit="batch"):
            idx = order[start:start + batch_size]
            yield idx, self.collate([features[i] for i in idx])

    def _inference(self):
        mixed = self.compute_dtype != torch.float32
        return autocast_context(self.device, enabled=mixed, dtype=self.compute_dtype if mixed else None)

    def score(self, queries: str | Sequence[str], docs: Sequence[str], batch_size: int = 16,
              show_progress: bool = False) -> np.ndarray:
        """float32 scores (score-head logit or Yes logit), one per pair, in input order; length-sorted batches.

        With `cache_features` (the default) the backbone's hidden states come from hidden_features' disk cache
        (keyed by the current weights, so a trained backbone never reuses stale ones) and only the head runs
        here; set it False while training the backbone, whose dev evaluations would only fill the cache."""
        if self.cache_features:
            feats = self.hidden_features(queries, docs, batch_size=batch_size, show_progress=show_progress)
            with torch.no_grad():
                last = torch.from_numpy(feats).to(self.device)
                return self.model.head_logits(last)[:, 0].float().cpu().numpy().astype(np.float32)
        out = np.empty(len(docs), dtype=np.float32)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode(), self._inference():
                for idx, batch in self._batches(queries, docs, batch_size, show_progress, "score"):
                    out[idx] = self.batch_logits(self.model, batch).float().cpu().numpy()
        finally:
            self.model.train(was_training)
        return out

    def yes_probability(self, queries: str | Sequence[str], docs: Sequence[str], normalize: str = "yes_no",
                        batch_size: int = 16, show_progress: bool = False, cache: bool = True) -> np.ndarray:
        """P("Yes") at the first generated step, from one forward pass per pair (head='yes'; the hidden states come
        from hidden_features, so pairs already scored cost nothing).

        normalize='yes_no': softmax over the two logits (Yes, No) -> in [0, 1], symmetric, what the distillation
        format's pos_scores need; 'vocab': softmax over the whole vocabulary at that one position (RAG-Retrieval's
        model_llm_generate.py: softmax(first-step logits)[yes]).
        """
        if self.head != "yes":
            raise ValueError("yes_probability needs head='yes'")
        if normalize not in ("yes_no", "vocab"):
            raise ValueError(f"normalize must be 'yes_no' or 'vocab', got {normalize!r}")
        feats = self.hidden_features(queries, docs, batch_size=batch_size, show_progress=show_progress, cache=cache)
        return self.probability_from_features(feats, normalize)

    @torch.no_grad()
    def probability_from_features(self, feats: np.ndarray, normalize: str = "yes_no") -> np.ndarray:
        """yes_probability's projection of hidden states (hidden_features' rows) onto Yes/No or the vocabulary."""
        last = torch.from_numpy(np.asarray(feats, dtype=np.float32)).to(self.device)
        if normalize == "yes_no":
            prob = torch.softmax(self.model.head_logits(last).float(), dim=-1)[:, 0]
        else:
            prob = torch.softmax(self._lm_head(last.to(self._lm_head.weight.dtype)).float(), dim=-1)[:, self.yes_id]
        return prob.cpu().numpy().astype(np.float32)

    def rerank(self, run: Run, corpus: Mapping[str, Document], queries: Mapping[str, str], depth: int = 20,
               batch_size: int = 16, show_progress: bool = False) -> Run:
        from ..cross_encoder import rerank_with

        return rerank_with(self, run, corpus, queries, depth=depth, batch_size=batch_size,
                           show_progress=show_progress)

    def hidden_features(self, queries: str | Sequence[str], docs: Sequence[str], batch_size: int = 16,
                        show_progress: bool = False, cache: bool = True) -> np.ndarray:
        """float32 [N, hidden]: the backbone's hidden state at the scored position of each pair, one forward each.

        With cache=True the rows are kept on disk (cache_dir('llm_features')), keyed by the model, its trained
        weights, the prompt, max_length and each pair's text, so scoring the same pairs again (another head, the
        teacher probability, a second notebook run) costs no forward pass.
        """
        if isinstance(queries, str):
            queries = [queries] * len(docs)
        queries, docs = list(queries), list(docs)
        if len(queries) != len(docs):
            raise ValueError(f"{len(queries)} queries for {len(docs)} docs")
        hidden = int(self.model.backbone.config.hidden_size) if not docs else None
        store = _FeatureStore(self._feature_key()) if cache else None
        keys = [_pair_key(q, d) for q, d in zip(queries, docs)]
        found = store.get(keys) if store is not None else {}
        todo = [i for i, k in enumerate(keys) if k not in found]
        if todo:
            self.model.eval()
            with torch.inference_mode(), self._inference():
                parts = {}
                for idx, batch in self._batches([queries[i] for i in todo], [docs[i] for i in todo], batch_size,
                                                show_progress, "features"):
                    last = self.model.last_hidden(batch["input_ids"].to(self.device),
                                                  batch["attention_mask"].to(self.device))
                    for row, vec in zip(idx, last.float().cpu().numpy()):
                        parts[int(row)] = vec
            new = np.stack([parts[j] for j in range(len(todo))]).astype(np.float32)
            for j, i in enumerate(todo):
                found[keys[i]] = new[j]
            if store is not None:
                store.put({keys[i]: new[j] for j, i in enumerate(todo)})
        if not keys:
            return np.zeros((0, hidden or 0), dtype=np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32)

    def head_rows(self) -> dict[str, np.ndarray]:
        """The head's weight rows as arrays: {'score'} or {'yes', 'no'} (to start a head-only ranker from)."""
        if self.head == "score":
            return {"score": self.model.score.weight.detach()[0].cpu().numpy()}
        weight = self.model.yes_no.weight.detach().cpu().numpy()
        return {"yes": weight[0], "no": weight[1]}

    def _feature_key(self) -> str:
        h = hashlib.sha256(json.dumps({**self.settings(), "padding_side": None}, sort_keys=True).encode())
        h.update(_weights_fingerprint(self.model.backbone).encode())
        return h.hexdigest()[:24]

    # -- persistence ------------------------------------------------------------------------------------------

    def settings(self) -> dict:
        return {"model_name": self.model_name, "head": self.head, "prompt": asdict(self.prompt),
                "max_length": self.max_length, "lora": asdict(self.lora) if self.lora else None,
                "padding_side": self.tokenizer.padding_side}

    def save(self, directory: str | os.PathLike) -> Path:
        """The trained weights only (head, adapters; every weight when trained fully) and the settings."""
        directory = Path(directory)
        self.model.save_pretrained(directory)
        write_json(directory / CONFIG_FILE, self.settings())
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, device=None, dtype: torch.dtype | None = None,
             causal_lm=None, tokenizer=None) -> "DecoderReranker":
        directory = Path(directory)
        meta_path = directory / CONFIG_FILE
        if not meta_path.exists():
            raise FileNotFoundError(f"{meta_path}: not a saved DecoderReranker")
        meta = json.loads(meta_path.read_text())
        lora = meta.get("lora")
        if lora:
            lora["target_modules"] = tuple(lora["target_modules"])
        ranker = cls(meta["model_name"], head=meta["head"], prompt=PromptFormat(**meta["prompt"]),
                     max_length=meta["max_length"], lora=LoraSettings(**lora) if lora else None, device=device,
                     dtype=dtype, padding_side=meta.get("padding_side", "right"), causal_lm=causal_lm,
                     tokenizer=tokenizer)
        ranker.load_weights(directory)
        return ranker

    def load_weights(self, folder: str | os.PathLike) -> None:
        """Copy trained weights saved by the training loop (best/, final/) or by save() into the model."""
        self.model.load_trainable(folder)


# ---------------------------------------------------------------------------------------------------- features


def _pair_key(query: str, doc: str) -> str:
    return hashlib.sha1(f"{query}\x00{doc}".encode()).hexdigest()


@torch.no_grad()
def _weights_fingerprint(module: nn.Module) -> str:
    """A cheap hash of a strided sample of every parameter: trained weights never reuse stale features."""
    h = hashlib.sha256()
    for name, param in module.named_parameters():
        flat = param.detach().reshape(-1)
        h.update(name.encode())
        h.update(flat[:: max(1, flat.numel() // 256)].float().cpu().numpy().tobytes())
    return h.hexdigest()


class _FeatureStore:
    """One .npz per (model, prompt, max_length) key under cache_dir('llm_features'): pair key -> hidden vector."""

    def __init__(self, key: str):
        self.path = cache_dir("llm_features") / f"{key}.npz"
        self._data: dict[str, np.ndarray] | None = None

    def _load(self) -> dict[str, np.ndarray]:
        if self._data is None:
            self._data = {}
            if self.path.exists():
                with np.load(self.path) as npz:
                    self._data = dict(zip(npz["keys"].tolist(), npz["vectors"]))
        return self._data

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        data = self._load()
        return {k: data[k] for k in keys if k in data}

    def put(self, rows: Mapping[str, np.ndarray]) -> None:
        from ...atomic import atomic_open

        data = self._load()
        data.update(rows)
        keys = list(data)
        with atomic_open(self.path, "wb") as handle:
            np.savez(handle, keys=np.array(keys), vectors=np.stack([data[k] for k in keys]).astype(np.float32))


# ---------------------------------------------------------------------------------------------------- head only


class HeadOnlyRanker:
    """A linear score head trained over a FROZEN decoder's cached hidden states (the embedded-budget recipe).

    One forward pass per pair (DecoderReranker.hidden_features, cached) serves every epoch, every dev evaluation
    and every head: training the head costs milliseconds, so a CPU run can afford the full-depth LLM. The head
    starts from a row of the LM head (init='yes': the score at step 0 IS the zero-shot "Yes" logit of the
    FlagEmbedding prompt, so the model's own starting point is the zero-shot reranker; 'yes-no': the Yes-minus-No
    margin) or from N(0, 0.02) ('random', RAG-Retrieval's fresh score layer).

    Offers fit()'s interface (model, encode_pairs, collate, batch_logits, load_weights) and score/rerank.
    """

    def __init__(self, decoder: DecoderReranker, init: str = "yes", init_seed: int = 0, feature_batch_size: int = 16,
                 show_progress: bool = False):
        if init not in ("yes", "yes-no", "random"):
            raise ValueError(f"init must be 'yes', 'yes-no' or 'random', got {init!r}")
        if init != "random" and decoder.head != "yes":
            raise ValueError(f"init={init!r} reads the Yes/No rows: the decoder needs head='yes'")
        self.decoder, self.init = decoder, init
        self.feature_batch_size, self.show_progress = feature_batch_size, show_progress
        hidden = int(decoder.model.backbone.config.hidden_size)
        self.model = nn.Linear(hidden, 1, bias=False)
        with torch.no_grad():
            if init == "random":
                gen = torch.Generator().manual_seed(init_seed)
                self.model.weight.normal_(0.0, 0.02, generator=gen)
            else:
                rows = decoder.head_rows()
                vec = rows["yes"] - (rows["no"] if init == "yes-no" else 0.0)
                self.model.weight.copy_(torch.as_tensor(vec).reshape(1, -1))
        self.model.eval()

    def __repr__(self) -> str:
        return f"HeadOnlyRanker({self.decoder!r}, init={self.init!r})"

    def encode_pairs(self, queries: Sequence[str], docs: Sequence[str]) -> list[dict]:
        feats = self.decoder.hidden_features(list(queries), list(docs), batch_size=self.feature_batch_size,
                                             show_progress=self.show_progress)
        # fit() reads len(input_ids) for length-grouped batches; a cached vector has one "token" of cost
        return [{"h": torch.from_numpy(row), "input_ids": [0]} for row in feats]

    def collate(self, features: list[dict]) -> dict:
        first = features[0]
        if isinstance(first["h"], list):  # a group (fit's group losses): [G] vectors each
            batch = {"h": torch.stack([torch.stack(f["h"]) for f in features])}
        else:
            batch = {"h": torch.stack([f["h"] for f in features])}
        for key in first:
            if key not in ("h", "input_ids"):
                batch[key] = torch.tensor([f[key] for f in features], dtype=torch.float32)
        return batch

    def batch_logits(self, model: nn.Module, batch: Mapping) -> torch.Tensor:
        h = batch["h"].to(model.weight.device, model.weight.dtype)
        return model(h).squeeze(-1)

    def score(self, queries: str | Sequence[str], docs: Sequence[str], batch_size: int = 256,
              show_progress: bool = False) -> np.ndarray:
        if isinstance(queries, str):
            queries = [queries] * len(docs)
        feats = self.decoder.hidden_features(list(queries), list(docs), batch_size=self.feature_batch_size,
                                             show_progress=show_progress or self.show_progress)
        with torch.no_grad():
            return self.model(torch.from_numpy(feats)).squeeze(-1).numpy().astype(np.float32)

    def rerank(self, run: Run, corpus: Mapping[str, Document], queries: Mapping[str, str], depth: int = 20,
               batch_size: int = 256, show_progress: bool = False) -> Run:
        from ..cross_encoder import rerank_with

        return rerank_with(self, run, corpus, queries, depth=depth, batch_size=batch_size, show_progress=show_progress)

    def load_weights(self, folder: str | os.PathLike) -> None:
        state = torch.load(Path(folder) / "model.pt", map_location="cpu")
        self.model.load_state_dict(state)

    def save(self, directory: str | os.PathLike) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), directory / "model.pt")
        write_json(directory / CONFIG_FILE, {**self.decoder.settings(), "head_only": True, "init": self.init})
        return directory
