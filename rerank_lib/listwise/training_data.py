"""Listwise training data: ShareGPT conversations (system, user prompt, assistant permutation), built offline from
first-stage candidates and a teacher's order, and their tokenised form for the training loop.

RankZephyr's data (castorini/rank_zephyr_training_data, online) is ShareGPT JSON: {"id", "conversations": [{"from":
"system", "value": ...}, {"from": "human", "value": <RankZephyr user prompt>}, {"from": "gpt", "value": "[4] > [2]
> ..."}]}, the answers being RankGPT-4's orders of first-stage candidates, plus a variable-length augmentation
(random subsets of 2..20 of a query's candidates, renumbered). Offline we build the same shape from our data: the
first-stage top-`window` of each training query in first-stage order, the answer being the teacher's order of those
passages (the offline teachers: MiniLM for MS MARCO, BM25+MiniLM fusion for SciFact), plus `n_variable` random subsets of
2..window passages per query (kept in first-stage order, renumbered; or, with `shuffle`, every conversation's
passages in a seeded random order, RankVicuna's augmentation).
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ..data.errors import DataFormatError
from ..data.jsonl import iter_jsonl
from ..data.lines import read_json
from ..data.trec import ranked
from ..data.types import Document, Run
from .objectives import IGNORE_INDEX
from .parsing import parse_permutation, passages_in_prompt
from .prompts import (
    build_messages,
    encode_continuation,
    encode_prompt,
    format_ranking,
    render_prompt,
    template_for,
)


def conversation(conv_id: str, query: str, docs: Sequence[Document], order: Sequence[int], alpha: bool,
                 max_words: int, **meta) -> dict:
    """One ShareGPT training conversation for docs (in prompt order) and the target order (0-based indices)."""
    template = template_for(alpha)
    messages = build_messages(query, [(d.title, d.text) for d in docs], template, max_words)
    system = messages[0]["content"] if messages[0]["role"] == "system" else ""
    turns = [{"from": "system", "value": system}, {"from": "human", "value": messages[-1]["content"]},
             {"from": "gpt", "value": format_ranking(order, alpha)}]
    return {"id": conv_id, "conversations": turns, "num_passages": len(docs), "alpha": alpha, **meta}


def teacher_order(doc_ids: Sequence[str], teacher: Mapping[str, float]) -> list[int]:
    """Indices of doc_ids by descending teacher score; docs the teacher did not score go last, in input order."""
    floor = float("-inf")
    return sorted(range(len(doc_ids)), key=lambda i: (-(teacher.get(doc_ids[i], floor)), i))


@dataclass(frozen=True)
class ConversationSampling:
    """How `build_conversations` cuts a query's candidates into conversations: the first-stage top-`window`, words
    per passage, letter identifiers (`alpha`), `n_variable` random subsets of min_passages..window passages, the seed.

    shuffle: present each conversation's passages in a seeded random order instead of first-stage order
    (RankVicuna's input-order augmentation): a model trained on first-stage order can lower its loss by copying
    the input order, which is what a small model does first; shuffled inputs leave only the passages' content."""

    window: int = 20
    max_words: int = 300
    alpha: bool = True
    n_variable: int = 1
    min_passages: int = 2
    seed: int = 13
    shuffle: bool = False


def build_conversations(queries: Mapping[str, str], first_stage: Run, teacher: Run, corpus: Mapping[str, Document],
                        sampling: ConversationSampling = ConversationSampling(), source: str = "") -> list[dict]:
    """Per query: the full window of first-stage candidates + `sampling.n_variable` random subsets (renumbered),
    each answered with the teacher's order; ids start with `source`. Deterministic for a seed."""
    window, min_passages, shuffle = sampling.window, sampling.min_passages, sampling.shuffle
    rng = random.Random(sampling.seed)
    rows = []
    for qid in sorted(queries):
        if qid not in first_stage or qid not in teacher:
            continue
        doc_ids = [d for d, _ in ranked(first_stage[qid])[:window]]
        if len(doc_ids) < min_passages:
            continue
        subsets = [list(range(len(doc_ids)))]
        for _ in range(sampling.n_variable):
            k = rng.randint(min_passages, len(doc_ids))
            subsets.append(sorted(rng.sample(range(len(doc_ids)), k)))
        for j, subset in enumerate(subsets):
            if shuffle:
                subset = rng.sample(subset, len(subset))
            ids = [doc_ids[i] for i in subset]
            rows.append(conversation(
                f"{source}{qid}-{j}", queries[qid], [corpus[d] for d in ids], teacher_order(ids, teacher[qid]),
                sampling.alpha, sampling.max_words, qid=qid, docids=ids, source=source.rstrip(":")))
    return rows


def read_conversations(path: str | os.PathLike) -> list[dict]:
    """ShareGPT rows from JSONL (or a JSON list, as rank_llm's trainer loads), validated: each has a
    'conversations' list of at least 3 turns with text 'value's (system, user, assistant)."""
    path = Path(path)
    if path.suffix == ".json":  # entries are named by their 1-based position: [3].conversations
        items = [(None, f"[{i}].", row) for i, row in enumerate(read_json(path), start=1)]
    else:
        items = [(lineno, "", row) for lineno, row in iter_jsonl(path, allow_empty=False)]
    rows = []
    for lineno, prefix, row in items:
        if not isinstance(row, dict):
            raise DataFormatError(path, lineno, prefix.rstrip(".") or None, "expected an object")
        turns = row.get("conversations")
        if not isinstance(turns, list):
            raise DataFormatError(path, lineno, f"{prefix}conversations", "missing or not a list")
        if len(turns) < 3:
            raise DataFormatError(path, lineno, f"{prefix}conversations",
                                  f"expected system, user and assistant turns, got {len(turns)}")
        for i, turn in enumerate(turns[:3]):
            if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
                raise DataFormatError(path, lineno, f"{prefix}conversations[{i}].value", "missing or not text")
        rows.append(row)
    return rows


def ranks_from_answer(answer: str, n: int, alpha: bool) -> list[int]:
    """Teacher rank (0 = first) of each of the n passages, read from the assistant answer (repaired like inference)."""
    order = parse_permutation(answer, n, alpha)
    ranks = [0] * n
    for position, passage in enumerate(order):
        ranks[passage] = position
    return ranks


def encode_conversation(row: dict, tokenizer, objective: str = "generation", chat_template: str | None = None,
                        max_length: int | None = None) -> dict:
    """Token ids, labels (prompt masked), FIRST position, teacher ranks and passage count of one conversation.

    The ranking-only objective needs no answer beyond its opening '[' (rank_llm's RankingDataset appends just
    '['), so its input stops there.
    """
    system, user, answer = (turn["value"] for turn in row["conversations"][:3])
    alpha = bool(row.get("alpha", "[A]" in answer or "[B]" in answer))
    n = int(row.get("num_passages") or passages_in_prompt(user, alpha=alpha))
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    prompt = render_prompt(tokenizer, messages, chat_template)
    prompt_ids = encode_prompt(tokenizer, prompt)
    answer_ids = encode_continuation(tokenizer, prompt, answer)
    opening = encode_continuation(tokenizer, prompt, "[")
    if answer_ids[:1] != opening:
        raise ValueError(f"conversation {row.get('id')}: the answer must start with '[', got {answer[:20]!r}")
    if tokenizer.eos_token_id is not None:
        answer_ids = answer_ids + [tokenizer.eos_token_id]
    if objective == "ranking":
        answer_ids = answer_ids[:1]
    input_ids = prompt_ids + answer_ids
    if max_length is not None and len(input_ids) > max_length:
        raise ValueError(f"conversation {row.get('id')}: {len(input_ids)} tokens > max_length {max_length}; "
                         "use fewer passages or fewer words per passage")
    labels = [IGNORE_INDEX] * len(prompt_ids) + (answer_ids if objective != "ranking" else [IGNORE_INDEX])
    return {"input_ids": input_ids, "labels": labels, "first_pos": len(prompt_ids),
            "ranks": ranks_from_answer(answer, n, alpha), "n_passages": n}
