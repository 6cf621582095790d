"""Where a decoder's score is read: the last real token of each row, whatever the padding side."""
from __future__ import annotations

import torch


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
