"""The frozen readers DCA and RPG distil from: a decoder-only LM (`LMReader`) and a T5 used Fusion-in-Decoder style
(`FiDReader`), loaded once per process (`shared_reader`)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import torch

from ..models import load_causal_lm, load_model, load_tokenizer
from ..models.standin import spelled

#: The floor under an attention weight before its log (a weight of exactly 0 would give -inf).
TINY = 1e-30

#: The instruction of LocalRQA's RPG prompt (trainers/retriever/retriever_replug_trainer.py PROMPT); the chat
#: markup around it is the reader's own chat template ("different model may use their own specific format").
LOCALRQA_INSTRUCTION = (
    "This is a chat between a curious user and an artificial intelligence assistant.\n"
    "The assistant gives helpful, detailed, and polite answers using documents from the following context.\n"
    "Do not mention 'this context' in the assistant's response, since the following context is only visible to "
    "the assistant.\n----------------\nContext:\n"
)
PASSAGE_SEPARATOR = "\n\n"
QUESTION_HEADER = "\n----------------\n"
_SENTINEL = "\u2063CONTENT\u2063"


@dataclass
class ReaderInput:
    """Token ids of one reader prompt with the spans a scorer needs: each passage, and the answer."""

    input_ids: list[int]
    passage_spans: list[tuple[int, int]]  # [start, end) of each passage's tokens, in the order given
    answer_span: tuple[int, int]


class LMReader:
    """A frozen causal LM that reads passages and the question and is scored on the gold answer. One prompt for both
    distillation signals: LocalRQA's RPG instruction, the passages (each cut to `max_passage_tokens`), the question
    (cut to `max_question_tokens`) in the model's chat template, then the gold answer's first `max_answer_tokens`
    tokens. Pieces are tokenised apart and joined, so each passage's token span is exact. Eager attention returns
    attention weights (DCA needs them); eval mode, run only under no_grad."""

    def __init__(self, model_name: str = "smollm2-135m-instruct", max_passage_tokens: int = 96,
                 max_answer_tokens: int = 32, max_question_tokens: int = 64, device=None, model=None, tokenizer=None):
        self.model_name = model_name
        self.max_passage_tokens, self.max_answer_tokens, self.max_question_tokens = (
            max_passage_tokens, max_answer_tokens, max_question_tokens)
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model_name)
        if model is None:
            model = load_causal_lm(model_name, device=device, dtype=torch.float32, attn="eager")
        self.model = eager_attention(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.device = next(self.model.parameters()).device
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else (
            self.tokenizer.eos_token_id or 0)
        head, tail = self._template()
        self._head = self._ids(head + LOCALRQA_INSTRUCTION)
        self._tail = tail

    def _template(self) -> tuple[str, str]:
        """The text before and after the user's message in the chat template (plain text without one)."""
        if getattr(self.tokenizer, "chat_template", None):
            rendered = self.tokenizer.apply_chat_template([{"role": "user", "content": _SENTINEL}], tokenize=False,
                                                          add_generation_prompt=True)
            if isinstance(rendered, str) and rendered.count(_SENTINEL) == 1:
                head, tail = rendered.split(_SENTINEL)
                return head, tail
        return "", "\nAnswer: "

    def _ids(self, text: str, limit: int | None = None) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids[:limit] if limit is not None else ids

    def build(self, question: str, passages: Sequence[str], answer: str) -> ReaderInput:
        ids = list(self._head)
        spans = []
        for i, passage in enumerate(passages):
            if i:
                ids += self._ids(PASSAGE_SEPARATOR)
            piece = self._ids(passage, self.max_passage_tokens)
            spans.append((len(ids), len(ids) + len(piece)))
            ids += piece
        ids += self._ids(QUESTION_HEADER) + self._ids(question, self.max_question_tokens) + self._ids(self._tail)
        answer_ids = self._ids(answer, self.max_answer_tokens)
        if not answer_ids:
            raise ValueError(f"empty gold answer for question {question!r}")
        start = len(ids)
        return ReaderInput(ids + answer_ids, spans, (start, start + len(answer_ids)))

    def forward(self, inputs: Sequence[ReaderInput], output_attentions: bool = False):
        """One right-padded batch through the LM (no grad). Right padding leaves every real position unchanged."""
        width = max(len(x.input_ids) for x in inputs)
        ids = torch.full((len(inputs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(inputs), width), dtype=torch.long)
        for row, x in enumerate(inputs):
            ids[row, :len(x.input_ids)] = torch.tensor(x.input_ids)
            mask[row, :len(x.input_ids)] = 1
        with torch.no_grad():
            return self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                              output_attentions=output_attentions, use_cache=False)

    def settings(self) -> dict:
        return {"reader": spelled(self.model_name), "max_passage_tokens": self.max_passage_tokens,
                "max_answer_tokens": self.max_answer_tokens, "max_question_tokens": self.max_question_tokens,
                "prompt": hashlib.sha1((LOCALRQA_INSTRUCTION + PASSAGE_SEPARATOR + QUESTION_HEADER + self._tail)
                                       .encode()).hexdigest()[:10]}


def eager_attention(model):
    """Attention weights come back only from the eager implementation (SDPA returns none): switch a given model."""
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    return model


_READERS: dict[tuple, object] = {}


def shared_reader(name: str, fid: bool = False, passage_tokens: int = 96, answer_tokens: int = 32):
    """The frozen reader DCA and RPG distil from, loaded once per process: a FiDReader (a T5 used Fusion-in-Decoder
    style) or an LMReader, whose weights are shared by every LMReader of the same model."""
    key = (spelled(name), fid, passage_tokens, answer_tokens)
    if key not in _READERS:
        if fid:
            _READERS[key] = FiDReader(name, text_maxlength=passage_tokens)
        else:
            shared = next((r for k, r in _READERS.items() if k[0] == key[0] and not k[1]), None)
            _READERS[key] = LMReader(name, max_passage_tokens=passage_tokens, max_answer_tokens=answer_tokens,
                                     model=shared.model if shared else None,
                                     tokenizer=shared.tokenizer if shared else None)
    return _READERS[key]


class FiDReader:
    """A T5 reader used Fusion-in-Decoder style (LocalRQA's FiDT5.from_t5 on google/flan-t5-xl)."""

    def __init__(self, model_name: str = "google/flan-t5-base", text_maxlength: int = 512, device=None,
                 model=None, tokenizer=None):
        from transformers import AutoModelForSeq2SeqLM

        self.model_name, self.text_maxlength = model_name, text_maxlength
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model_name)
        if model is None:
            model = load_model(model_name, auto_class=AutoModelForSeq2SeqLM, device=device, dtype=torch.float32,
                               attn="eager")
        self.model = eager_attention(model).eval()
        self.device = next(self.model.parameters()).device

    def settings(self) -> dict:
        return {"reader": spelled(self.model_name), "text_maxlength": self.text_maxlength, "format": "fid-v1"}

    def attention_scores(self, question: str, passages: Sequence[str], answer: str,
                         positions: str = "first", titles: Sequence[str] | None = None) -> list[float]:
        """FiD inputs ("question: q title: t context: p", LocalRQA's FidDataset/FidCollator), encoded one passage
        each, the decoder over their concatenation; cross-attention of the decoder's first step (or of every
        answer position, teacher-forced) over each passage's tokens."""
        titles = list(titles) if titles is not None else [""] * len(passages)
        texts = [f"question: {question} title: {t} context: {p}" for t, p in zip(titles, passages)]
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.text_maxlength,
                             return_tensors="pt").to(self.device)
        n, length = enc["input_ids"].shape
        start = self.model.config.decoder_start_token_id
        answer_ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"] if positions == "all" else []
        decoder_ids = torch.tensor([[start] + answer_ids[:-1] if answer_ids else [start]], device=self.device)
        with torch.no_grad():
            hidden = self.model.encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            fused = hidden.reshape(1, n * length, -1)
            mask = enc["attention_mask"].reshape(1, n * length)
            out = self.model(encoder_outputs=(fused,), attention_mask=mask, decoder_input_ids=decoder_ids,
                             output_attentions=True, use_cache=False)
        att = torch.stack([layer[0] for layer in out.cross_attentions]).float()  # (L, H, R, n * length)
        log_att = att.clamp_min(TINY).log().reshape(*att.shape[:3], n, length)
        keep = enc["attention_mask"].bool()
        return [float(log_att[..., p, :][..., keep[p]].mean()) for p in range(n)]
