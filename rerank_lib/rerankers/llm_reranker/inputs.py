"""One (query, document) pair as token ids in a published prompt layout; only the document is truncated."""
from __future__ import annotations

from .settings import PASSAGE_MARK, PromptFormat


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
        [{"role": "user", "content": fmt.chat_prompt.format(query=query, passage=PASSAGE_MARK)}],
        tokenize=False, add_generation_prompt=True)
    before, after = text.split(PASSAGE_MARK)
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


def first_token_id(tokenizer, word: str) -> int:
    """FlagEmbedding's rule for the token a yes/no head reads: the first token of `word` without special tokens."""
    ids = tokenizer(word, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"the tokenizer maps {word!r} to no token")
    return int(ids[0])
