"""The pretrained causal LM and tokenizer, loaded once per process (a GGUF de-quantised once per machine)."""
from __future__ import annotations

import copy
import functools
import hashlib
import os
from pathlib import Path

import torch

from ...models import load_model, load_tokenizer
from ...paths import cache_dir


def _dequantised_dir(model_name: str) -> Path | None:
    """For a GGUF model (SmolLM2 offline): a folder under cache_dir('models') holding the de-quantised weights and
    tokenizer as ordinary HF files, keyed by the GGUF file's path, size and mtime. De-quantising the GGUF takes
    tens of seconds per load on a CPU; the saved folder loads in about one."""
    from ...models import resolve

    resolved = resolve(model_name)
    if not resolved.gguf_file:
        return None
    gguf = Path(resolved.source) / resolved.gguf_file
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf}\x00{stat.st_size}\x00{int(stat.st_mtime)}".encode()).hexdigest()[:16]
    return cache_dir("models") / f"{Path(resolved.gguf_file).stem}-{key}"


def _save_dequantised(folder: Path, model, tokenizer) -> None:
    """config + model.safetensors + tokenizer. transformers refuses save_pretrained on a GGUF-loaded model, so the
    (already de-quantised, fp32) state dict is written directly; a tied LM head is left to the config to re-tie."""
    import shutil

    from safetensors.torch import save_file

    staging = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    config = copy.deepcopy(model.config)
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attr):
            delattr(config, attr)
    config.save_pretrained(staging)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(staging)
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()
             if not (tied and k == "lm_head.weight")}
    save_file(state, str(staging / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(staging)
    try:
        staging.rename(folder)
    except OSError:  # another process saved it first
        shutil.rmtree(staging, ignore_errors=True)


@functools.lru_cache(maxsize=2)
def _cached_causal_lm(model_name: str):
    """The pretrained causal LM on CPU in fp32, loaded once per process (and, for a GGUF, de-quantised once per
    machine: see _dequantised_dir); every reranker gets its own deep copy."""
    from transformers import AutoModelForCausalLM

    folder = _dequantised_dir(model_name)
    if folder is not None and (folder / "config.json").exists():
        return load_model(str(folder), auto_class=AutoModelForCausalLM, device="cpu", dtype=torch.float32)
    model = load_model(model_name, auto_class=AutoModelForCausalLM, device="cpu", dtype=torch.float32)
    if folder is not None:
        _save_dequantised(folder, model, _cached_tokenizer(model_name))
    return model


@functools.lru_cache(maxsize=2)
def _cached_tokenizer(model_name: str):
    folder = _dequantised_dir(model_name)
    if folder is not None and (folder / "tokenizer_config.json").exists():
        return load_tokenizer(str(folder))
    return load_tokenizer(model_name)


def _token_id(tokenizer, word: str) -> int:
    """FlagEmbedding's rule: the first token of `word` without special tokens."""
    ids = tokenizer(word, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"the tokenizer maps {word!r} to no token")
    return int(ids[0])
