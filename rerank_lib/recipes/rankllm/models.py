"""The causal LMs the recipe reranks and trains with: the smoke model, the library's loader for every other name
(rerank_lib.models.load_causal_lm: a GGUF built-in is de-quantised once per machine, into the folder every caller
shares), the per-process tokenizer cache (one instance per name and chat template), the identifier choice and the
listwise reranker built on a model."""
from __future__ import annotations

import torch

from ...listwise import ListwiseReranker
from ...listwise.prompts import choose_identifiers
from ...models import load_causal_lm, load_tokenizer, pick_device
from .settings import TINY, RankLLMConfig


def _tiny_model(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(cfg)


def load_lm(cfg: RankLLMConfig, name: str, device=None, tokenizer_from: str | None = None):
    """(causal LM, tokenizer) for a model name: the smoke model, a built-in (via its de-quantised copy), a hub id or a
    trained checkpoint folder (then `tokenizer_from` names the base model whose tokenizer it uses)."""
    device = device or pick_device()
    tokenizer = load_base_tokenizer(cfg, tokenizer_from or name)
    if name == TINY:
        model = _tiny_model(tokenizer).to(device)
    else:  # not kept in memory: paper-profile models are 7B, and trained checkpoints are loaded once each
        dtype = torch.float32 if torch.device(device).type == "cpu" else torch.bfloat16
        model = load_causal_lm(name, device=device, dtype=dtype, keep_in_memory=False)
    model.eval()
    return model, tokenizer


_TOKENIZERS: dict = {}


def load_base_tokenizer(cfg: RankLLMConfig, name: str):
    """The tokenizer of a model name, with the config's chat template when it has none and a pad token (one
    instance per name and template in a process: several steps ask for it)."""
    key = (name, cfg.chat_template)
    if key in _TOKENIZERS:
        return _TOKENIZERS[key]
    tokenizer = load_tokenizer("mistral-v0.1-tokenizer" if name == TINY else name)
    _TOKENIZERS[key] = tokenizer
    if cfg.chat_template and not tokenizer.chat_template:
        tokenizer.chat_template = cfg.chat_template
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return tokenizer


def use_letters(cfg: RankLLMConfig, tokenizer) -> bool:
    """Letters or numbers, decided from the tokenizer for the largest window used in training or inference."""
    return choose_identifiers(tokenizer, max(cfg.window, cfg.train_window), cfg.identifiers, cfg.chat_template)


def reranker(cfg: RankLLMConfig, model, tokenizer, mode: str = "first") -> ListwiseReranker:
    return ListwiseReranker(model, tokenizer, mode=mode, window=cfg.window, stride=cfg.stride,
                            max_words=cfg.max_words, context_size=cfg.context_size,
                            identifiers="alpha" if use_letters(cfg, tokenizer) else "numeric",
                            chat_template=cfg.chat_template, autocast=cfg.inference_bf16)
