"""Listwise reranking with a causal LM: generation decoding (RankZephyr) or FIRST single-token decoding.

- mode='generate': greedy decoding of exactly as many tokens as the longest well-formed answer
  ('[1] > [2] > ... > [n]'), min = max, as rank_llm asks vLLM for; the text is parsed and repaired
  (parsing.parse_permutation) and classified (ok / wrong_format / repetition / missing_documents).
  With constrained=True the decoding may only write a permutation of the window's identifiers, then EOS
  (constrained.py): every answer is well-formed, and its order is the model's, not the repair's.
- mode='first' (Reddy et al., 2024, "FIRST: Faster Improved Listwise Reranking with Single Token Decoding"):
  the prompt plus the opening '[' of the answer goes through the model once; the logits at that last position,
  read at the token of each window identifier, order the whole window. rank_llm reads vLLM's top-30 logprobs of
  one generated token and appends the identifiers that are not among them in input order; here every
  identifier's logit is read directly, so none is lost. The identifiers must then be single tokens in the
  tokenizer: `prompts.choose_identifiers` picks numbers when they are, letters otherwise.

Either way the window is reordered and the sliding window (window.py) moves on, back to front.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

import torch
from transformers import LogitsProcessorList

from ..data.candidates import Candidate, Candidates, candidates_from_run
from ..data.types import Document, Run
from ..models import autocast_context
from .constrained import PermutationLogitsProcessor, answer_pieces
from .lm import ListwiseLM
from .parsing import classify_response, parse_permutation
from .prompts import (
    Prompt,
    choose_identifiers,
    encode_continuation,
    encode_prompt,
    fit_prompt,
    format_ranking,
    identifier_token_ids,
    num_output_tokens,
    template_for,
)
from .window import sliding_window

MODES = ("first", "generate")


@dataclass
class WindowResult:
    """What happened in one window: the answer, the order applied, the cost."""

    qid: str
    start: int
    end: int
    mode: str
    response: str
    order: list[int]
    category: str  # parsing.CATEGORIES; FIRST always yields a full permutation ('ok')
    prompt_tokens: int
    output_tokens: int
    max_words: int  # the word limit per passage after fitting the context
    seconds: float
    doc_ids: list[str] = field(default_factory=list)  # the window's documents in input order (set by rerank)
    constrained: bool = False  # generation decoded under the permutation constraint (well-formed by construction)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ListwiseReranker:
    """Reranks candidate lists with a causal LM and the RankZephyr prompt, window by window.

    model: a transformers *ForCausalLM (or a ListwiseLM around one); tokenizer: its tokenizer with a chat template.
    identifiers: 'auto' (numbers when single tokens, else letters; decided from the tokenizer), 'numeric', 'alpha'.
    """

    model: torch.nn.Module
    tokenizer: object
    mode: str = "first"
    window: int = 20
    stride: int = 10
    max_words: int = 300
    context_size: int = 4096
    identifiers: str = "auto"
    chat_template: str | None = None
    autocast: bool = True  # bf16 autocast where the hardware does bf16 natively (models.autocast_context)
    constrained: bool = False  # generation only: decode nothing but a permutation of the identifiers (rank_llm: no)
    alpha: bool = field(init=False)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        self.lm = self.model if isinstance(self.model, ListwiseLM) else ListwiseLM(self.model)
        # FIRST needs one token per identifier; generation reads text and works with any identifiers.
        self.alpha = choose_identifiers(self.tokenizer, self.window, self.identifiers, self.chat_template)
        self.template = template_for(self.alpha)
        self.identifier_ids = identifier_token_ids(self.tokenizer, self.window, self.alpha, self.chat_template)
        if self.mode == "first" and self.identifier_ids is None:
            kind = "letters" if self.alpha else "numbers"
            raise ValueError(f"FIRST needs single-token identifiers; {kind} up to {self.window} are not single "
                             "tokens in this tokenizer (use identifiers='auto')")

    @property
    def device(self) -> torch.device:
        return next(self.lm.parameters()).device

    # --- one window -------------------------------------------------------------------------------------------
    def prompt(self, query: str, docs: Sequence[Document]) -> Prompt:
        return fit_prompt(self.tokenizer, query, [(d.title, d.text) for d in docs], self.template,
                          self.max_words, self.context_size, self.chat_template)

    def first_input_ids(self, prompt: Prompt) -> list[int]:
        """The prompt's ids followed by the answer's opening '[' (tokenised in context, as at training)."""
        return encode_prompt(self.tokenizer, prompt.text) + encode_continuation(self.tokenizer, prompt.text, "[")

    @torch.no_grad()
    def first_scores(self, prompt: Prompt) -> torch.Tensor:
        """Logits of the n window identifiers at the position after '[' (one forward, one LM-head row)."""
        ids = torch.tensor([self.first_input_ids(prompt)], device=self.device)
        select = torch.zeros_like(ids, dtype=torch.bool)
        select[0, -1] = True
        with autocast_context(self.device, enabled=self.autocast):
            logits = self.lm(ids, select=select)[0]
        return logits[torch.tensor(self.identifier_ids[: prompt.n_passages], device=self.device)].float()

    @torch.no_grad()
    def generate(self, prompt: Prompt) -> tuple[str, int]:
        """Greedy answer text and the number of tokens generated: exactly num_output_tokens(n) unconstrained; a
        permutation of the n identifiers and EOS when constrained."""
        ids = torch.tensor([encode_prompt(self.tokenizer, prompt.text)], device=self.device)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        if self.constrained:
            pieces = answer_pieces(self.tokenizer, prompt.n_passages, self.alpha, self.chat_template)
            length = dict(max_new_tokens=pieces.max_tokens, eos_token_id=pieces.eos,
                          logits_processor=LogitsProcessorList([PermutationLogitsProcessor(pieces, ids.shape[1])]))
        else:
            n_out = num_output_tokens(self.tokenizer, prompt.n_passages, self.alpha)
            length = dict(max_new_tokens=n_out, min_new_tokens=n_out)
        with autocast_context(self.device, enabled=self.autocast):
            out = self.lm.lm.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                      pad_token_id=pad, **length)
        new = out[0, ids.shape[1]:]
        return self.tokenizer.decode(new, skip_special_tokens=True), int(new.numel())

    def rank_window(self, query: str, docs: Sequence[Document], qid: str = "", start: int = 0) -> WindowResult:
        t0 = time.perf_counter()
        prompt = self.prompt(query, docs)
        n = len(docs)
        if self.mode == "first":
            scores = self.first_scores(prompt)
            order = sorted(range(n), key=lambda i: -float(scores[i]))  # stable: ties keep the input order
            response, category, out_tokens = format_ranking(order, self.alpha), "ok", 1
        else:
            response, out_tokens = self.generate(prompt)
            order = parse_permutation(response, n, self.alpha)
            category = classify_response(response, n, self.template)
        return WindowResult(qid, start, start + n, self.mode, response, order, category, prompt.n_tokens,
                            out_tokens, prompt.max_words, time.perf_counter() - t0,
                            constrained=self.constrained and self.mode == "generate")

    # --- one query, one run -----------------------------------------------------------------------------------
    def rerank_query(self, request: Candidates, depth: int | None = None) -> tuple[list[str], list[WindowResult]]:
        """Doc ids in the new order (the top `depth` reranked, the rest as given) and each window's result."""
        results: list[WindowResult] = []

        def rank(chunk: list[Candidate], start: int) -> list[int]:
            result = self.rank_window(request.query, [c.doc for c in chunk], request.query_id, start)
            result.doc_ids = [c.doc_id for c in chunk]
            results.append(result)
            return result.order

        order = sliding_window(request.candidates, rank, self.window, self.stride, rank_end=depth)
        return [c.doc_id for c in order], results

    def rerank_run(self, run: Run, corpus: Mapping[str, Document], queries: Mapping[str, str], depth: int,
                   progress: bool = True) -> tuple[Run, list[WindowResult]]:
        """Rerank the top `depth` of every query of `run` (first-stage order, the rest of its list below); scores are
        len - position. Also returns every window's result (answers, parse categories, token counts)."""
        from ..progress import tqdm

        out: Run = {}
        windows: list[WindowResult] = []
        for request in tqdm(candidates_from_run(run, corpus, queries, who=f"listwise {self.mode}"),
                            desc=f"listwise {self.mode}", disable=not progress):
            order, results = self.rerank_query(request, depth)
            out[request.query_id] = {d: float(len(order) - i) for i, d in enumerate(order)}
            windows.extend(results)
        return out, windows

    def rerank(self, run: Run, corpus: Mapping[str, Document], queries: Mapping[str, str], depth: int = 100, *,
               progress: bool = False) -> Run:
        """The Ranker protocol: rerank_run's Run without the window results."""
        return self.rerank_run(run, corpus, queries, depth, progress=progress)[0]
