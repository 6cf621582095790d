"""Dynamic padding: pad each batch to its own longest sequence, not to the tokenizer's max_length.

Query-passage pairs vary a lot in length; padding every pair to 512 tokens wastes most of the compute of a
cross-encoder step. Combine with length-grouped batches (`train(..., lengths=...)`) to waste even less.
It sits on the ground floor, beside `models`, because rankers pad their inference batches with it too, and a
ranker imports no training code.
"""
from __future__ import annotations

import functools
import math
import numbers
from typing import Any, Callable

import torch

LABEL_PAD_ID = -100  # the index torch's cross-entropy ignores
# Fields padded to `pad_to_multiple_of`; any other ragged field (e.g. per-passage teacher scores) pads to its longest.
TOKEN_FIELDS = frozenset(
    {"input_ids", "attention_mask", "token_type_ids", "labels", "decoder_input_ids", "decoder_attention_mask"}
)


def pad_collate(
    tokenizer_or_pad_id: Any,
    *,
    padding_side: str | None = None,
    pad_to_multiple_of: int | None = None,
    label_pad_id: int = LABEL_PAD_ID,
) -> Callable[[list[dict]], dict]:
    """A collate_fn for examples that are dicts of token-id lists (or 1-D tensors), e.g. a tokenizer's output.

    Sequence fields become one padded tensor [batch, longest] (or [batch, group, longest] when each example holds
    a group of sequences, e.g. one positive and n negatives); `input_ids` and `decoder_input_ids` pad with the
    tokenizer's pad id, `labels` with -100, everything else with 0. An `attention_mask` is built from the true
    lengths when the examples have none. Scalars become a tensor; strings (query ids, doc ids) stay a list.
    padding_side defaults to the tokenizer's ('right' for a bare pad id).
    """
    if isinstance(tokenizer_or_pad_id, int):
        pad_id, default_side = tokenizer_or_pad_id, "right"
    else:
        pad_id = tokenizer_or_pad_id.pad_token_id
        if pad_id is None:
            raise ValueError("the tokenizer has no pad token: set tokenizer.pad_token (e.g. to its eos_token) first")
        default_side = getattr(tokenizer_or_pad_id, "padding_side", "right")
    side = padding_side or default_side
    if side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}")
    pad_values = {"input_ids": pad_id, "decoder_input_ids": pad_id, "labels": label_pad_id}
    # A partial of a module-level function, not a closure: DataLoader workers started with 'spawn' must pickle it.
    return functools.partial(_collate, pad_values=pad_values, side=side, pad_to_multiple_of=pad_to_multiple_of)


def _collate(examples: list[dict], *, pad_values: dict, side: str, pad_to_multiple_of: int | None) -> dict:
    if "input_ids" in examples[0] and "attention_mask" not in examples[0]:
        examples = [{**ex, "attention_mask": _ones_like(_to_lists(ex["input_ids"]))} for ex in examples]
    batch = {}
    for key in examples[0]:
        values = [ex[key] for ex in examples]
        first = values[0]
        if torch.is_tensor(first) and first.dim() == 0:
            batch[key] = torch.stack(values)
        elif isinstance(first, numbers.Number):  # python and numpy scalars
            batch[key] = torch.tensor(values)
        elif hasattr(first, "tolist") or isinstance(_first_leaf(first), numbers.Number):  # (nested) sequences
            multiple = pad_to_multiple_of if key in TOKEN_FIELDS else None
            batch[key] = _pad([_to_lists(v) for v in values], pad_values.get(key, 0), side, multiple)
        else:
            batch[key] = values  # identifiers, raw text, None: handed through untouched
    return batch


def _pad(values: list, pad_value: int, side: str, multiple: int | None) -> torch.Tensor:
    longest = max((len(seq) for seq in _innermost(values)), default=0)
    if multiple:
        longest = math.ceil(longest / multiple) * multiple

    def pad(seq_or_group: list) -> list:
        if seq_or_group and isinstance(seq_or_group[0], list):
            return [pad(seq) for seq in seq_or_group]
        filler = [pad_value] * (longest - len(seq_or_group))
        return seq_or_group + filler if side == "right" else filler + seq_or_group

    return torch.tensor([pad(v) for v in values])


def _to_lists(value: Any) -> list:
    """Tensors, arrays and tuples to nested python lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if value and (isinstance(value[0], (list, tuple)) or hasattr(value[0], "tolist")):
        return [_to_lists(v) for v in value]
    return list(value)


def _innermost(values: list):
    for value in values:
        if value and isinstance(value[0], list):
            yield from _innermost(value)
        else:
            yield value


def _ones_like(value: list) -> list:
    if value and isinstance(value[0], list):
        return [_ones_like(v) for v in value]
    return [1] * len(value)


def _first_leaf(value: Any) -> Any:
    while isinstance(value, (list, tuple)) and value:
        value = value[0]
    return value
