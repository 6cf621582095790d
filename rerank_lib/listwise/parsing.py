"""Reading a listwise model's answer: clean, parse, repair, and count what was wrong with it.

Faithful to castorini/rank_llm:
- `clean_ranking_response` is rerank/listwise/response_utils.clean_ranking_response: keep what follows the last
  '</think>', map digit look-alikes (superscripts, subscripts, circled, full-width ...) to ASCII digits, then keep
  digits (or, with letters, turn every letter into its 1-based alphabet position) and blank everything else;
- `parse_permutation` is ListwiseRankLLM.receive_permutation: 1-based ids to 0-based, first occurrences only,
  ids outside the window dropped, the missing ones appended in their original order;
- `classify_response` / `count_errors` are analysis/response_analysis.ResponseAnalyzer: each response is 'ok',
  'wrong_format' (fails the template's validation regex), 'repetition' or 'missing_documents'.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Iterable, Sequence

from .prompts import ALPHA_START, ListwiseTemplate, template_for

# rank_llm's table: 10 superscripts, 10 subscripts, circled 1-9, negative circled 1-9, 10 full-width digits,
# 10 'digit comma' symbols (U+1F100..U+1F109).
_LOOKALIKES = "⁰¹²³⁴⁵⁶⁷⁸⁹₀₁₂₃₄₅₆₇₈₉①②③④⑤⑥⑦⑧⑨❶❷❸❹❺❻❼❽❾０１２３４５６７８９🄀🄁🄂🄃🄄🄅🄆🄇🄈🄉"
_ASCII = "0123456789" "0123456789" "123456789" "123456789" "0123456789" "0123456789"
FAKE_NUMBERS = str.maketrans(_LOOKALIKES, _ASCII)

CATEGORIES = ("ok", "wrong_format", "repetition", "missing_documents")


def strip_thinking(response: str) -> str:
    """The text after the last '</think>' (reasoning models), else the response unchanged."""
    return response.split("</think>")[-1].strip() if "</think>" in response else response


def clean_ranking_response(response: str, alpha: bool = False) -> str:
    """'[3] > [1] > [2]' -> '3 1 2'; with letters '[C] > [A]' -> '3 1'. Non-identifier characters become spaces."""
    response = strip_thinking(response).translate(FAKE_NUMBERS)
    if alpha:
        chars = (str(ord(c) - ALPHA_START) if c.isalpha() else " " for c in response)
    else:
        chars = (c if c.isdigit() else " " for c in response)
    return "".join(chars).strip()


def parse_permutation(response: str, n: int, alpha: bool = False) -> list[int]:
    """The 0-based order of a window of n passages that `response` asks for, repaired into a full permutation."""
    try:
        ids = [int(x) - 1 for x in clean_ranking_response(response, alpha).split()]
    except ValueError:  # e.g. a digit isdigit() accepts but int() does not ('²' outside the table)
        return list(range(n))
    order = []
    for i in ids:
        if 0 <= i < n and i not in order:
            order.append(i)
    return order + [i for i in range(n) if i not in order]


def classify_response(response: str | None, n: int, template: ListwiseTemplate | None = None,
                      alpha: bool = False) -> str:
    """rank_llm's ResponseAnalyzer verdict on one response for n passages: one of CATEGORIES."""
    template = template or template_for(alpha)
    if response is None:
        return "wrong_format"
    text = strip_thinking(response.strip())
    if not re.fullmatch(template.output_validation_regex, text.strip()):
        return "wrong_format"
    matches = re.findall(template.output_extraction_regex, text)
    ranks = [ord(m) - ord("A") for m in matches] if template.alpha else [int(m) for m in matches]
    if not ranks:
        return "wrong_format"
    if len(ranks) < n:
        return "missing_documents"
    if len(ranks) > n or len(set(ranks)) < n:
        return "repetition"
    expected = range(n) if template.alpha else range(1, n + 1)
    if any(r not in set(ranks) for r in expected):
        return "missing_documents"
    return "ok"


def count_errors(responses: Iterable[str | None], num_passages: Iterable[int] | int,
                 template: ListwiseTemplate | None = None, alpha: bool = False,
                 normalize: bool = False) -> dict[str, float]:
    """Counts (or percentages, 2 decimals, with normalize) of each category over the responses."""
    responses = list(responses)
    ns = [num_passages] * len(responses) if isinstance(num_passages, int) else list(num_passages)
    if len(ns) != len(responses):
        raise ValueError(f"{len(responses)} responses but {len(ns)} passage counts")
    counts = Counter({c: 0 for c in CATEGORIES})
    counts.update(classify_response(r, n, template, alpha) for r, n in zip(responses, ns))
    stats = {c: counts[c] for c in CATEGORIES}
    if normalize and responses:
        return {c: round(100.0 * v / len(responses), 2) for c, v in stats.items()}
    return stats


def passages_in_prompt(prompt: str | Sequence[dict], template: ListwiseTemplate | None = None,
                       alpha: bool = False) -> int:
    """Number of distinct identifiers in a prompt (rank_llm's _get_num_passages); user turns only for messages."""
    template = template or template_for(alpha)
    if not isinstance(prompt, str):
        prompt = " ".join(m["content"] for m in prompt if m.get("role") == "user")
    ids = re.findall(template.output_extraction_regex, prompt)
    if not ids:
        raise ValueError("no passage identifiers found in the prompt")
    return len(set(ids))
