"""Generation decoding constrained to the listwise answer format: '[k1] > [k2] > ... > [kn]', each of the window's n
identifiers exactly once, then EOS.

Why: decoded freely, a small model rarely writes the format (SmolLM2-135M: `wrong_format` in every sampled window),
and rank_llm's repair (parsing.parse_permutation) then appends the missing identifiers in input order, so a
generation row measures something close to the first stage's order instead of the model's preference. Masking every
token that cannot continue a valid permutation (what grammar-constrained decoders such as outlines do) is the known
fix; greedy decoding then picks the model's most likely allowed token at each step. rank_llm decodes unconstrained.

Token level: each identifier has two canonical token pieces, tokenised in context by the model's own tokenizer: the
first answer item '[k]' right after the assistant's generation prompt, and a later item ' > [k]' right after a ']'.
Merges such as ' [' (SmolLM2) or '▁[' (Mistral) are whatever the tokenizer writes there. A row's state is the set
of identifiers written and the tokens of its unfinished piece; the allowed tokens are the next tokens of the
unwritten identifiers' pieces that begin with those tokens, EOS only once all n are written: O(n) pieces per step.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from transformers import LogitsProcessor

from .prompts import answer_anchor, encode_continuation, identifiers

SEPARATOR = " > "


@dataclass(frozen=True)
class AnswerPieces:
    """The token pieces of a window's answer: `first[k]` ('[k]' opening the answer), `later[k]` (' > [k]'), both
    0-based by identifier, and the EOS id that ends the answer."""

    first: tuple[tuple[int, ...], ...]
    later: tuple[tuple[int, ...], ...]
    eos: int

    @property
    def n(self) -> int:
        return len(self.first)

    @property
    def max_tokens(self) -> int:
        """The most tokens a valid answer can take, its EOS included."""
        return max(len(p) for p in self.first) + sum(sorted(len(p) for p in self.later)[1:]) + 1


@lru_cache(maxsize=64)
def _pieces_cached(tokenizer, n: int, alpha: bool, anchor: str) -> AnswerPieces:
    names = identifiers(n, alpha)
    first = tuple(tuple(encode_continuation(tokenizer, anchor, f"[{k}]")) for k in names)
    after = f"{anchor}[{names[0]}]"  # any identifier closes the item before a separator
    later = tuple(tuple(encode_continuation(tokenizer, after, f"{SEPARATOR}[{k}]")) for k in names)
    for table in (first, later):
        for i, a in enumerate(table):
            if not a or any(j != i and b[: len(a)] == a for j, b in enumerate(table)):
                raise ValueError(f"the answer pieces of identifier {names[i]} are empty or a prefix of another's "
                                 "in this tokenizer: a constrained answer could not tell them apart")
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError(f"{type(tokenizer).__name__} has no EOS token to end a constrained answer")
    return AnswerPieces(first, later, int(eos))


def answer_pieces(tokenizer, n: int, alpha: bool, chat_template: str | None = None) -> AnswerPieces:
    """The answer pieces of an n-passage window for this tokenizer and identifier kind (cached per tokenizer)."""
    return _pieces_cached(tokenizer, n, alpha, answer_anchor(tokenizer, chat_template))


class _RowState:
    """One answer in progress: the identifiers written (in order) and the tokens of the unfinished piece."""

    def __init__(self):
        self.written: list[int] = []
        self.current: list[int] = []
        self.ended = False

    def table(self, pieces: AnswerPieces):
        return pieces.later if self.written else pieces.first

    def candidates(self, pieces: AnswerPieces) -> list[int]:
        """Unwritten identifiers whose piece begins with the current tokens."""
        table, m, done = self.table(pieces), len(self.current), set(self.written)
        return [k for k in range(pieces.n) if k not in done and list(table[k][:m]) == self.current]

    def allowed(self, pieces: AnswerPieces) -> list[int]:
        if len(self.written) == pieces.n:
            return [pieces.eos]
        table, m = self.table(pieces), len(self.current)
        return sorted({table[k][m] for k in self.candidates(pieces)})

    def advance(self, token: int, pieces: AnswerPieces) -> None:
        if self.ended:
            return
        if len(self.written) == pieces.n:
            if token != pieces.eos:
                raise ValueError(f"token {token} after a complete answer; only EOS ({pieces.eos}) is allowed")
            self.ended = True
            return
        self.current.append(token)
        matching = self.candidates(pieces)
        if not matching:
            raise ValueError(f"token {token} continues no valid permutation (another logits processor or a "
                             "sampler let it through)")
        table = self.table(pieces)
        whole = [k for k in matching if len(table[k]) == len(self.current)]
        if whole:  # pieces are prefix-free: at most one is complete
            self.written.append(whole[0])
            self.current = []


class PermutationLogitsProcessor(LogitsProcessor):
    """A transformers LogitsProcessor for `generate`: every token that cannot continue a valid permutation of the
    window's identifiers gets -inf; `prompt_length` is the length of the (left-padded) prompt ids. Rows of a batch
    advance together, one token a step; `orders()` gives each row's identifiers written so far (0-based)."""

    def __init__(self, pieces: AnswerPieces, prompt_length: int):
        self.pieces = pieces
        self.prompt_length = int(prompt_length)
        self.rows: list[_RowState] = []
        self.consumed = 0  # generated tokens already read into the rows' states

    def _sync(self, input_ids: torch.Tensor) -> None:
        generated = input_ids.shape[1] - self.prompt_length
        if len(self.rows) != input_ids.shape[0] or generated < self.consumed:  # a new generate() call: start over
            self.rows, self.consumed = [_RowState() for _ in range(input_ids.shape[0])], 0
        for row, tokens in zip(self.rows, input_ids[:, self.prompt_length + self.consumed:].tolist()):
            for token in tokens:
                row.advance(int(token), self.pieces)
        self.consumed = generated

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self._sync(input_ids)
        mask = torch.full_like(scores, float("-inf"))
        for i, row in enumerate(self.rows):
            if row.ended:  # finished rows are padded by generate; leave them alone
                mask[i] = 0.0
            else:
                mask[i, row.allowed(self.pieces)] = 0.0
        return scores + mask

    def orders(self) -> list[list[int]]:
        return [list(row.written) for row in self.rows]
