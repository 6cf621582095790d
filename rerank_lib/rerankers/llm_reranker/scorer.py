"""The trained module: a decoder backbone, its hidden state at the last real token, and a linear head."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from .indexing import last_token_index, position_ids_from_mask
from .settings import HEADS, WEIGHTS_FILE


class DecoderScorer(nn.Module):
    """backbone (a decoder without its LM head) -> hidden state at the last real token -> `head`.

    head is nn.Linear(hidden, 1) ('score', fresh) or nn.Linear(hidden, 2) holding the LM head's rows of "Yes" and
    "No" ('yes'; the score is column 0, the Yes logit). forward returns one logit per sequence.
    """

    def __init__(self, backbone: nn.Module, head: nn.Linear, kind: str):
        super().__init__()
        if kind not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {kind!r}")
        self.backbone = backbone
        self.kind = kind
        if kind == "score":
            self.score = head
        else:
            self.yes_no = head

    def last_hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                            position_ids=position_ids_from_mask(attention_mask), use_cache=False)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        return hidden[rows, last_token_index(attention_mask).to(hidden.device)]

    def head_logits(self, last: torch.Tensor) -> torch.Tensor:
        """[N, 1] (score) or [N, 2] (Yes, No logits)."""
        head = self.score if self.kind == "score" else self.yes_no
        return head(last.to(head.weight.dtype))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head_logits(self.last_hidden(input_ids, attention_mask))[:, 0]

    # The training loop saves the trained weights with save_pretrained when a model has it: keep only what trains.
    def save_pretrained(self, directory, state_dict: Mapping[str, torch.Tensor] | None = None, **_):
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = state_dict if state_dict is not None else self.state_dict()
        names = [n for n, p in self.named_parameters() if p.requires_grad]
        tensors, seen = {}, set()
        for name in names:
            tensor = state[name]
            key = (tensor.data_ptr(), tuple(tensor.shape))
            if key in seen:  # a tied copy: the structure restores it
                continue
            seen.add(key)
            tensors[name] = tensor.detach().to("cpu").contiguous()
        save_file(tensors, str(directory / WEIGHTS_FILE))
        return directory

    def load_trainable(self, directory) -> None:
        from safetensors.torch import load_file

        path = Path(directory) / WEIGHTS_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path}: not saved by DecoderScorer.save_pretrained")
        state = load_file(str(path))
        own = dict(self.named_parameters())
        unknown = sorted(set(state) - set(own))
        if unknown:
            raise RuntimeError(f"{path}: {len(unknown)} saved tensors do not exist in this model, e.g. {unknown[:3]} "
                               "(different LoRA settings or head?)")
        with torch.no_grad():
            for name, tensor in state.items():
                if own[name].shape != tensor.shape:
                    raise RuntimeError(f"{path}: {name} has shape {tuple(tensor.shape)}, the model "
                                       f"{tuple(own[name].shape)}")
                own[name].copy_(tensor.to(own[name].dtype))

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None):
        self.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gradient_checkpointing_kwargs)
