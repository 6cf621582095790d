"""RankZephyr / FirstMistral prompts: the templates as data, passage cleaning, chat rendering, the context budget.

Faithful to castorini/rank_llm (src/rank_llm/rerank/prompt_templates/rank_zephyr{,_alpha}_template.yaml,
SingleTurnListwiseInferenceHandler.generate_prompt, BaseInferenceHandler._convert_doc_to_prompt_content and
RankListwiseOSLLM.create_prompt): one system message and one user turn (prefix, one "[{rank}] {candidate}" line per
passage, suffix), identifiers 1..n or A.., each passage cleaned as rank_llm does (`passage_content`), and the word
limit per passage shrunk until the rendered prompt plus the longest answer fits the context (`fit_prompt`).
tests/test_listwise_prompts.py checks the template text against rank_llm's own yaml files
(../shared/data/prompts/rank_llm).
"""
from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

from ftfy import fix_text  # mojibake, curly quotes, width: rank_llm runs every passage and prompt through it

SYSTEM_MESSAGE = "You are RankLLM, an intelligent assistant that can rank passages based on their relevancy to the query"
ALPHA_START = ord("A") - 1  # rank_llm's ALPH_START_IDX: identifier i (1-based) is chr(ALPHA_START + i)
MAX_ALPHA = 26

# A Zephyr-style chat template for tokenizers that ship without one (the smoke model; the bare Mistral tokenizers).
ZEPHYR_STYLE_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + eos_token }}"
    "{% elif message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + eos_token }}"
    "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\n' + message['content'] + eos_token }}{% endif %}"
    "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}{% endfor %}"
)


@dataclass(frozen=True)
class ListwiseTemplate:
    """A single-turn listwise prompt template (rank_llm's yaml fields); `alpha` selects letter identifiers."""

    name: str
    system_message: str
    prefix: str  # placeholders {num}, {query}
    body: str  # placeholders {rank}, {candidate}; one line per passage
    suffix: str  # placeholders {num}, {query}
    output_validation_regex: str  # the response of a well-formed answer, full match
    output_extraction_regex: str  # one identifier
    alpha: bool


_SUFFIX = (
    "Search Query: {query}.\n"
    "Rank the {num} passages above based on their relevance to the search query. All the passages should be "
    "included and listed using identifiers, in descending order of relevance. The output format should be "
    "[] > [], e.g., %s, Answer concisely and directly and only respond with the ranking results, do not say "
    "any word or explain."
)


def _rank_zephyr(alpha: bool) -> ListwiseTemplate:
    """RankZephyr's template (rank_zephyr_template.yaml), or its letter twin (rank_zephyr_alpha_template.yaml)."""
    kind, example, ident = ("an alphabetical", "[B] > [A]", "[A-Z]") if alpha else ("a numerical", "[2] > [1]", r"\d+")
    return ListwiseTemplate(
        name="rank_zephyr_alpha" if alpha else "rank_zephyr",
        system_message=SYSTEM_MESSAGE,
        prefix=f"I will provide you with {{num}} passages, each indicated by {kind} identifier []. Rank the passages "
               "based on their relevance to the search query: {query}.\n",
        body="[{rank}] {candidate}\n",
        suffix=_SUFFIX % example,
        output_validation_regex=rf"^\[{ident}\]( > \[{ident}\])*$",
        output_extraction_regex=rf"\[({ident})\]",
        alpha=alpha,
    )


RANK_ZEPHYR, RANK_ZEPHYR_ALPHA = _rank_zephyr(False), _rank_zephyr(True)


def template_for(alpha: bool) -> ListwiseTemplate:
    """RankZephyr's template with numeric identifiers, or its alphabetical twin (FirstMistral's)."""
    return RANK_ZEPHYR_ALPHA if alpha else RANK_ZEPHYR


def load_template_yaml(path: str | os.PathLike, alpha: bool | None = None) -> ListwiseTemplate:
    """Read one of rank_llm's single-turn yaml templates (regexes are written as python raw-string literals)."""
    import yaml

    from ..data.errors import DataFormatError

    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    if not isinstance(raw, dict):
        raise DataFormatError(path, None, None, "expected a mapping of template sections")
    if raw.get("method") != "singleturn_listwise":
        raise DataFormatError(path, None, "method", f"expected 'singleturn_listwise', got {raw.get('method')!r}")
    for key in ("body", "output_validation_regex", "output_extraction_regex"):
        if not isinstance(raw.get(key), str):
            raise DataFormatError(path, None, key, "missing or not text")
    if "{rank}" not in raw["body"] or "{candidate}" not in raw["body"]:
        raise DataFormatError(path, None, "body", "needs the {rank} and {candidate} placeholders")

    def regex(key: str) -> str:
        value = raw[key].strip()
        try:
            return ast.literal_eval(value) if value[:2] in ('r"', "r'") else value
        except (ValueError, SyntaxError):
            raise DataFormatError(path, None, key, f"not a string literal: {value!r}") from None

    extraction = regex("output_extraction_regex")
    return ListwiseTemplate(
        name=os.path.splitext(os.path.basename(path))[0].removesuffix("_template"),
        system_message=raw.get("system_message", "") or "",
        prefix=raw.get("prefix", "") or "",
        body=raw["body"],
        suffix=raw.get("suffix", "") or "",
        output_validation_regex=regex("output_validation_regex"),
        output_extraction_regex=extraction,
        alpha=("A-Z" in extraction) if alpha is None else alpha,
    )


def replace_number(text: str) -> str:
    """'[12]' -> '(12)': bracketed numbers inside passages and queries must not look like identifiers."""
    return re.sub(r"\[(\d+)\]", r"(\1)", text)


def passage_content(text: str, title: str = "", max_words: int = 300) -> str:
    """One passage as rank_llm writes it into the prompt (title prefix, ftfy, first `max_words` words, brackets)."""
    content = f"Title: {title} Content: {text}" if title else text
    content = fix_text(content.strip())
    content = " ".join(content.split()[: int(max_words)])
    return replace_number(content)


def identifiers(n: int, alpha: bool) -> list[str]:
    """The n identifiers of a window: '1'..'n' or 'A'.. ('A' is rank_llm's chr(ALPH_START_IDX + 1))."""
    if alpha and n > MAX_ALPHA:
        raise ValueError(f"alphabetical identifiers cover at most {MAX_ALPHA} passages, not {n}")
    return [chr(ALPHA_START + i) if alpha else str(i) for i in range(1, n + 1)]


def format_ranking(order: Sequence[int], alpha: bool) -> str:
    """0-based passage order -> '[2] > [1] > [3]' (or '[B] > [A] > [C]'): the assistant's answer."""
    ids = identifiers(max(order) + 1 if len(order) else 0, alpha)
    return " > ".join(f"[{ids[i]}]" for i in order)


def build_messages(query: str, passages: Sequence[tuple[str, str]], template: ListwiseTemplate,
                   max_words: int) -> list[dict[str, str]]:
    """[system, user] messages for one window; `passages` are (title, text) pairs in window order."""
    query = replace_number(query)
    num = len(passages)
    ids = identifiers(num, template.alpha)
    body = "".join(
        template.body.format(rank=ident, candidate=passage_content(text, title, max_words))
        for ident, (title, text) in zip(ids, passages)
    )
    user = template.prefix.format(num=num, query=query) + body + template.suffix.format(num=num, query=query)
    messages = [{"role": "system", "content": template.system_message}] if template.system_message else []
    return messages + [{"role": "user", "content": user}]


def render_prompt(tokenizer, messages: list[dict[str, str]], chat_template: str | None = None) -> str:
    """The chat-formatted prompt text, ending with the assistant's generation prompt, passed through ftfy.

    A tokenizer whose template knows no system role gets the system message glued in front of the user turn
    ("{system}\\n {user}", rank_llm's training rule, used here at inference too so both see the same text).
    Raises ValueError when the tokenizer has no chat template and none is given (e.g. the bare Mistral tokenizers
    in ../shared/models): silently formatting without one would change the prompt.
    """
    template = chat_template or getattr(tokenizer, "chat_template", None)
    if not template:
        raise ValueError(
            f"{type(tokenizer).__name__} has no chat template; pass chat_template= (the instruct model's jinja "
            "template) or load the instruct model's own tokenizer")
    if messages and messages[0]["role"] == "system" and "system" not in template:
        messages = [{"role": "user", "content": messages[0]["content"] + "\n " + messages[1]["content"]},
                    *messages[2:]]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                         chat_template=template)
    return fix_text(text)


def count_tokens(tokenizer, text: str) -> int:
    """rank_llm's get_num_tokens: len(tokenizer.encode(prompt)), special tokens included."""
    return len(tokenizer.encode(text))


def num_output_tokens(tokenizer, n: int, alpha: bool) -> int:
    """Tokens of the longest well-formed answer for n passages, '[1] > [2] > ... > [n]' (rank_llm)."""
    ids = identifiers(n, alpha)
    return len(tokenizer.encode(" > ".join(f"[{i}]" for i in ids), add_special_tokens=False))


@dataclass(frozen=True)
class Prompt:
    """One window's rendered prompt: the text, its token count and the word limit that made it fit."""

    text: str
    messages: list
    n_tokens: int
    max_words: int
    n_passages: int


def fit_prompt(tokenizer, query: str, passages: Sequence[tuple[str, str]], template: ListwiseTemplate,
               max_words: int = 300, context_size: int = 4096, chat_template: str | None = None) -> Prompt:
    """Build the window's prompt, shrinking the per-passage word limit until prompt + answer fit the context."""
    n = len(passages)
    budget = context_size - num_output_tokens(tokenizer, n, template.alpha)
    words = int(max_words)
    while True:
        messages = build_messages(query, passages, template, words)
        text = render_prompt(tokenizer, messages, chat_template)
        n_tokens = count_tokens(tokenizer, text)
        if n_tokens <= budget:
            return Prompt(text, messages, n_tokens, words, n)
        words -= max(1, (n_tokens - budget) // (n * 4))
        if words < 1:
            raise ValueError(f"the prompt for {n} passages does not fit {context_size} tokens even with 1 word "
                             "per passage: use a smaller window or a larger context_size")


def describe_prompt(tokenizer, query: str, passages: Sequence[tuple[str, str]], alpha: bool, max_words: int = 300,
                    context_size: int = 4096, chat_template: str | None = None) -> str:
    """The window's fitted prompt (fit_prompt) under a header line: passages, tokens, the word limit per passage and
    the kind of identifiers. What a listwise model reads, for a notebook to print; no recipe needs its own."""
    prompt = fit_prompt(tokenizer, query, passages, template_for(alpha), max_words, context_size, chat_template)
    return (f"# {len(passages)} passages, {prompt.n_tokens} tokens, {prompt.max_words} words per passage at most, "
            f"{'letter' if alpha else 'numeric'} identifiers\n{prompt.text}")


def adds_bos(tokenizer) -> bool:
    """Whether tokenizer(text) puts a BOS token in front (Llama/Mistral do; GPT-2-style BPE does not)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return False
    ids = tokenizer("a").input_ids
    return bool(ids) and ids[0] == bos


def encode_prompt(tokenizer, text: str) -> list[int]:
    """Token ids of a rendered prompt, with the tokenizer's BOS unless the chat template already wrote one."""
    ids = tokenizer(text, add_special_tokens=False).input_ids
    bos = getattr(tokenizer, "bos_token_id", None)
    if adds_bos(tokenizer) and (not ids or ids[0] != bos):
        ids = [bos, *ids]
    return ids


def encode_continuation(tokenizer, prompt: str, continuation: str) -> list[int]:
    """Ids of `continuation` as the tokenizer splits it right after `prompt` (the string concatenation rank_llm
    tokenizes), so that training and FIRST inference see the same tokens. Falls back to encoding it alone when
    the boundary merges tokens."""
    head = tokenizer(prompt, add_special_tokens=False).input_ids
    both = tokenizer(prompt + continuation, add_special_tokens=False).input_ids
    if both[: len(head)] == head:
        return both[len(head):]
    return tokenizer(continuation, add_special_tokens=False).input_ids


@lru_cache(maxsize=32)
def _identifier_ids_cached(tokenizer, alpha: bool, n: int, anchor: str) -> tuple[int, ...] | None:
    base = tokenizer(anchor + "[", add_special_tokens=False).input_ids
    out = []
    for ident in identifiers(n, alpha):
        ids = tokenizer(anchor + "[" + ident, add_special_tokens=False).input_ids
        if ids[: len(base)] != base or len(ids) != len(base) + 1:
            return None
        out.append(ids[-1])
    return tuple(out) if len(set(out)) == len(out) else None


def identifier_token_ids(tokenizer, n: int, alpha: bool, chat_template: str | None = None) -> list[int] | None:
    """The token id of each of the n identifiers as the first token after the opening '[' of the answer, or None
    when some identifier is not one token there (FIRST needs one token per identifier).

    Tokenised in the real context: the assistant's generation prompt of the chat template, then '['.
    """
    found = _identifier_ids_cached(tokenizer, alpha, n, answer_anchor(tokenizer, chat_template))
    return list(found) if found is not None else None


def answer_anchor(tokenizer, chat_template: str | None = None) -> str:
    """What every rendered prompt ends with, for tokenising an answer in context: a one-turn chat rendered with the
    assistant's generation prompt ('\\n' without a chat template)."""
    template = chat_template or getattr(tokenizer, "chat_template", None)
    return render_prompt(tokenizer, [{"role": "user", "content": "x"}], template) if template else "\n"


def choose_identifiers(tokenizer, n: int, prefer: str = "auto", chat_template: str | None = None) -> bool:
    """Whether to use alphabetical identifiers for windows of up to n passages (returns `alpha`).

    'numeric' / 'alpha' force a kind; 'auto' takes numeric identifiers when each of 1..n is a single token
    after '[' in this tokenizer, else letters (SmolLM2 and Mistral split '10' into '1', '0'; FIRST then needs
    letters). The choice comes from the tokenizer, never from a model name.
    """
    if prefer not in ("auto", "numeric", "alpha"):
        raise ValueError(f"identifiers must be 'auto', 'numeric' or 'alpha', not {prefer!r}")
    if prefer != "auto":
        return prefer == "alpha"
    if identifier_token_ids(tokenizer, n, alpha=False, chat_template=chat_template) is not None:
        return False
    if n <= MAX_ALPHA and identifier_token_ids(tokenizer, n, alpha=True, chat_template=chat_template) is not None:
        return True
    raise ValueError(f"neither 1..{n} nor A..{chr(ALPHA_START + n)} are single tokens in this tokenizer: "
                     "FIRST needs one token per identifier")
