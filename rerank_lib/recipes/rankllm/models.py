"""The causal LMs the recipe reranks and trains with: the smoke model, plain local copies of GGUF built-ins, the
per-process tokenizer cache (one instance per name and chat template), the identifier choice and the listwise
reranker built on a model."""
from __future__ import annotations

from pathlib import Path

import torch

from ...listwise import ListwiseReranker
from ...listwise.prompts import choose_identifiers
from ...models import load_model, load_tokenizer, pick_device, resolve
from ...paths import cache_dir
from .settings import TINY, RankLLMConfig


def _tiny_model(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(cfg)


def local_copy(name: str) -> str:
    """A GGUF built-in converted once to a plain transformers folder under the cache (loading the GGUF file
    de-quantises every tensor, ~1 min; the folder loads in a second). Other names are returned unchanged."""
    if name == TINY:
        return name
    resolved = resolve(name)
    if not resolved.gguf_file:
        return name
    folder = cache_dir("models", Path(resolved.gguf_file).stem)
    if not (folder / "config.json").exists():
        from transformers import AutoModelForCausalLM

        model = load_model(name, AutoModelForCausalLM, device="cpu")
        tokenizer = load_tokenizer(name)
        config = model.config
        if hasattr(config, "quantization_config"):  # the weights are de-quantised fp32 now
            delattr(config, "quantization_config")
        plain = AutoModelForCausalLM.from_config(config)
        plain.load_state_dict(model.state_dict())
        staging = folder.with_name(folder.name + ".tmp")
        plain.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        for item in staging.iterdir():
            item.replace(folder / item.name)
        staging.rmdir()
    return str(folder)


def load_lm(cfg: RankLLMConfig, name: str, device=None, tokenizer_from: str | None = None):
    """(causal LM, tokenizer) for a model name: the smoke model, a built-in (via its cached copy), a hub id or a
    trained checkpoint folder (then `tokenizer_from` names the base model whose tokenizer it uses)."""
    from transformers import AutoModelForCausalLM

    device = device or pick_device()
    tokenizer = load_base_tokenizer(cfg, tokenizer_from or name)
    if name == TINY:
        model = _tiny_model(tokenizer).to(device)
    else:
        dtype = torch.float32 if torch.device(device).type == "cpu" else torch.bfloat16
        model = load_model(local_copy(name), AutoModelForCausalLM, device=device, dtype=dtype)
    model.eval()
    return model, tokenizer


_TOKENIZERS: dict = {}


def load_base_tokenizer(cfg: RankLLMConfig, name: str):
    """The tokenizer of a model name, with the config's chat template when it has none and a pad token (one
    instance per name and template in a process: several steps ask for it)."""
    key = (name, cfg.chat_template)
    if key in _TOKENIZERS:
        return _TOKENIZERS[key]
    tokenizer = load_tokenizer("mistral-v0.1-tokenizer" if name == TINY else local_copy(name))
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
