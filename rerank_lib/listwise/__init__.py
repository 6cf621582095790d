"""Listwise LLM reranking and training (RankZephyr, FirstMistral / FIRST), after castorini/rank_llm.

prompts.py          the RankZephyr templates as data, passage cleaning, chat rendering, the context budget,
                    identifier choice from the tokenizer
parsing.py          answer cleaning, permutation repair, the ok / wrong_format / repetition / missing counts
window.py           the back-to-front sliding window
lm.py               ListwiseLM: LM-head projection of selected positions only; NEFTune; training the top layers only
first.py            ListwiseReranker: generation decoding or FIRST single-token decoding over the windows
constrained.py      generation decoding constrained to a permutation of the window's identifiers (a LogitsProcessor)
objectives.py       ListwiseObjective: the generation / ranking (FIRST) / combined objectives, assembled from the
                    losses in rerank_lib.losses (RankNet, weighted RankNet, ListNet, LambdaRank, token CE)
training_data.py    ShareGPT conversations from first-stage candidates + a teacher order; tokenised examples
analysis.py         what the windows show: output-quality counts, teacher agreement, latency, fit of trained windows
"""
from .first import ListwiseReranker, WindowResult
from .lm import ListwiseLM, enable_neftune, freeze_below
from .objectives import ListwiseObjective, default_ranking_weight
from .parsing import classify_response, clean_ranking_response, count_errors, parse_permutation, passages_in_prompt
from .prompts import (
    RANK_ZEPHYR,
    RANK_ZEPHYR_ALPHA,
    ZEPHYR_STYLE_TEMPLATE,
    ListwiseTemplate,
    build_messages,
    choose_identifiers,
    fit_prompt,
    identifier_token_ids,
    load_template_yaml,
    passage_content,
    render_prompt,
)
from .training_data import ConversationSampling, build_conversations, encode_conversation, read_conversations
from .window import sliding_window, window_spans

__all__ = [
    "ConversationSampling", "ListwiseLM", "ListwiseObjective", "ListwiseReranker", "ListwiseTemplate", "RANK_ZEPHYR", "RANK_ZEPHYR_ALPHA",
    "WindowResult", "build_conversations", "build_messages", "choose_identifiers", "classify_response",
    "clean_ranking_response", "count_errors", "default_ranking_weight", "enable_neftune", "encode_conversation",
    "freeze_below", "fit_prompt", "identifier_token_ids", "load_template_yaml", "parse_permutation",
    "passage_content", "passages_in_prompt", "read_conversations", "render_prompt", "sliding_window",
    "window_spans", "ZEPHYR_STYLE_TEMPLATE",
]
