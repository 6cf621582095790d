"""A causal LM that projects only the positions a listwise loss or FIRST needs through its LM head.

A RankZephyr prompt is ~2-4k tokens and the vocabulary 32-50k: full logits are [batch, tokens, vocab] floats
(SmolLM2, one 20-passage window: 1.9k x 49k x 4 bytes = 370 MB, and as much again for their gradient). The
generation loss needs the logits of the ~40-120 answer positions only, FIRST the logits of one position. So the
forward runs the transformer body to hidden states, picks the selected positions, and only those go through the
LM head. rank_llm's training code materialises the full logits (model(input_ids).logits) and slices afterwards.

`ListwiseLM` wraps a *ForCausalLM so that the training loop (and DDP / DeepSpeed, which must see the forward of
the module they wrap) calls one forward; save_pretrained writes the inner model's usual folder.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def body_and_head(causal_lm: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(transformer body returning last_hidden_state, LM head) of a transformers causal LM."""
    head = causal_lm.get_output_embeddings()
    body = causal_lm.get_decoder() if hasattr(causal_lm, "get_decoder") else None
    if body is None:
        body = getattr(causal_lm, causal_lm.base_model_prefix, None)
    if head is None or body is None:
        raise TypeError(f"{type(causal_lm).__name__} exposes no decoder body / output embeddings")
    return body, head


def freeze_below(causal_lm: nn.Module, train_layers: int | None) -> None:
    """Train only the top `train_layers` decoder layers and the final norm (None: everything). Frozen lower layers
    need no backward pass: a CPU step costs ~1.5 forwards, not 3."""
    if train_layers is not None:
        body, _ = body_and_head(causal_lm)
        trainable = {id(p) for module in [*body.layers[-train_layers:], body.norm] for p in module.parameters()}
        for p in causal_lm.parameters():
            p.requires_grad_(id(p) in trainable)


class ListwiseLM(nn.Module):
    """forward(input_ids, attention_mask, select) -> logits of the selected positions only, [n_selected, vocab].

    `select` is a bool mask [batch, seq] (or a list of them); rows come in row-major order of the True entries. Without `select`: full logits
    [batch, seq, vocab] (what a plain forward returns; kept for comparison and benchmarks).
    """

    def __init__(self, causal_lm: nn.Module):
        super().__init__()
        self.lm = causal_lm
        body_and_head(causal_lm)  # fail early on a model without a separable body and head

    # Looked up on each call, not registered as submodules: registering them would put every weight twice in
    # state_dict() (and break safetensors checkpoints, which refuse shared tensors).
    @property
    def body(self) -> nn.Module:
        return body_and_head(self.lm)[0]

    @property
    def head(self) -> nn.Module:
        return body_and_head(self.lm)[1]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                select: torch.Tensor | Sequence[torch.Tensor] | None = None):
        """Logits at the True positions of `select` ([n, vocab]); a list of masks gives a list of such tensors
        from one pass through the body (e.g. the answer tokens and the FIRST position)."""
        hidden = self.body(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if select is None:
            return self.head(hidden)
        if isinstance(select, torch.Tensor):
            return self.head(hidden[select])
        return [self.head(hidden[mask]) for mask in select]

    # --- what the training loop looks for on the model it trains -------------------------------------------------
    def save_pretrained(self, path, state_dict=None, **kwargs):
        """The inner model's save_pretrained (loadable with from_pretrained); keys lose the wrapper's 'lm.'."""
        if state_dict is not None:
            state_dict = {k[len("lm."):]: v for k, v in state_dict.items() if k.startswith("lm.")}
        return self.lm.save_pretrained(path, state_dict=state_dict, **kwargs)

    def gradient_checkpointing_enable(self, **kwargs):
        return self.lm.gradient_checkpointing_enable(**kwargs)

    def activation_checkpointing_enable(self, **kwargs):
        if hasattr(self.lm, "activation_checkpointing_enable"):
            return self.lm.activation_checkpointing_enable(**kwargs)
        kwargs = {"gradient_checkpointing_kwargs": kwargs.pop("activation_checkpointing_kwargs", None), **kwargs}
        return self.lm.gradient_checkpointing_enable(**kwargs)

    @property
    def config(self):
        return self.lm.config


def enable_neftune(model: nn.Module, alpha: float | None):
    """NEFTune (Jain et al., 2023): uniform noise of magnitude alpha / sqrt(seq_len * dim) on the input embeddings,
    in training mode only (rank_llm's NEFTune(model, alpha); transformers' hook, the same formula).
    Returns the hook handle (None when alpha is None or 0)."""
    if not alpha:
        return None
    from transformers.integrations.neftune import activate_neftune

    inner = model.lm if isinstance(model, ListwiseLM) else model
    return activate_neftune(inner, float(alpha))
