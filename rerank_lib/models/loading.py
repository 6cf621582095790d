"""Loading a resolved name: tokenizer, model, causal LM, chat LM, and the de-quantised copy of a GGUF model.

A GGUF is de-quantised ONCE per machine into one folder under cache_dir('models') (keyed by the GGUF file's name,
size and mtime and the version of this code) that every loader shares: de-quantising takes tens of seconds on a
CPU, the saved folder loads in about one. The folder lists each file's sha256 and length; one that does not match
(a cut or damaged weights file) is de-quantised again, never loaded.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import os
import shutil
from pathlib import Path

import torch

from ..atomic import CacheWarning, folder_problem
from ..code_version import code_version
from ..paths import cache_dir, shown
from .builtin import ModelUnavailableError
from .device import attn_implementation, device_of, pick_device
from .folders import check_folder, staged_folder
from .names import resolve
from .standin import spelled


def _dtype_kwarg() -> str:
    """transformers >= 4.56 calls it `dtype` (and warns on `torch_dtype`); older versions only know `torch_dtype`."""
    import transformers
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def dequantised_folder(name: str | os.PathLike) -> Path | None:
    """Where the de-quantised copy of a GGUF model lives (whether or not it exists yet); None for other models. One
    folder per GGUF FILE (name, size, mtime) and code version, whichever name reached it: every caller shares it."""
    resolved = resolve(name)
    if not resolved.gguf_file:
        return None
    gguf = Path(resolved.source) / resolved.gguf_file
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.name}\x00{stat.st_size}\x00{int(stat.st_mtime)}\x00{code_version(__name__)}"
                         .encode()).hexdigest()[:16]
    return cache_dir("models") / f"{gguf.stem}-{key}"


def _save_dequantised(folder: Path, model, tokenizer) -> None:
    """config + model.safetensors + tokenizer (staged_folder). transformers refuses save_pretrained on a GGUF-loaded
    model, so the already de-quantised fp32 state dict is written directly; a tied LM head is left to the config."""
    from safetensors.torch import save_file

    config = copy.deepcopy(model.config)
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attr):
            delattr(config, attr)
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()
             if not (tied and k == "lm_head.weight")}
    with staged_folder(folder) as staging:
        config.save_pretrained(staging)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(staging)
        save_file(state, str(staging / "model.safetensors"), metadata={"format": "pt"})
        tokenizer.save_pretrained(staging)


def trusted_folder(folder: Path, quiet: bool = False) -> bool:
    """Whether a de-quantised folder exists and matches its checksums. A folder that does not (a cut or damaged
    weights file, or one saved before checksums) is removed, with one CacheWarning line naming it unless `quiet`,
    so the caller de-quantises again."""
    if not folder.is_dir():
        return False
    problem = folder_problem(folder)
    if problem is None:
        return True
    if not quiet:
        import warnings

        warnings.warn(f"cache folder {shown(folder)}: {problem}; not used, de-quantising again", CacheWarning,
                      stacklevel=2)
        shutil.rmtree(folder, ignore_errors=True)
    return False


def dequantised_copy(name: str | os.PathLike) -> str:
    """For a GGUF model: the de-quantised folder (dequantised_folder), written on first use; any other name is
    returned unchanged. Loading from the folder gives the same weights as loading the GGUF, in a second."""
    folder = dequantised_folder(name)
    if folder is None:
        return os.fspath(name)
    if not trusted_folder(folder):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        resolved = resolve(name)
        kwargs = resolved.from_pretrained_kwargs()
        model = AutoModelForCausalLM.from_pretrained(resolved.source, **kwargs, **{_dtype_kwarg(): torch.float32})
        _save_dequantised(folder, model, AutoTokenizer.from_pretrained(resolved.source, **kwargs))
    return str(folder)


def load_tokenizer(name: str | os.PathLike, **kwargs):
    """AutoTokenizer for `name` (a GGUF's from its de-quantised folder once it exists, else from the GGUF: the same
    tokenizer), a new instance per call, free to change; extra kwargs go to `from_pretrained`."""
    from transformers import AutoTokenizer

    resolved = resolve(name, purpose="tokenizer")
    if resolved.gguf_file:
        folder = dequantised_folder(name)
        if trusted_folder(folder, quiet=True):
            return AutoTokenizer.from_pretrained(str(folder), **kwargs)
    elif resolved.kind == "local":
        check_folder(resolved.source, "tokenizer")
    return AutoTokenizer.from_pretrained(resolved.source, **{**resolved.from_pretrained_kwargs(), **kwargs})


def load_model(name: str | os.PathLike, auto_class=None, device=None, dtype: torch.dtype | None = torch.float32,
               attn: str | None = None, **kwargs):
    """`auto_class.from_pretrained` (default AutoModel) of the resolved source (a GGUF: its de-quantised copy; a local
    folder: checked first), with dtype and attention, moved to `device` (default pick_device()). fp32 by default:
    training keeps fp32 master weights and inference gets bf16 via `autocast_context`; pass `dtype=pick_dtype(device)`
    for half-precision weights. `output_loading_info=True` returns (model, loading report), as from_pretrained."""
    if auto_class is None:
        from transformers import AutoModel as auto_class
    resolved = resolve(name, purpose="model")
    if resolved.tokenizer_only:
        raise ModelUnavailableError(
            f"{name!r} is a tokenizer-only built-in ({resolved.source}); there are no weights to load. "
            f"Build the model from a config (e.g. T5Config) and use load_tokenizer({name!r}).")
    source, options = resolved.source, {**resolved.from_pretrained_kwargs()}
    if resolved.gguf_file:
        source, options = dequantised_copy(name), {}
    elif resolved.kind == "local":
        check_folder(resolved.source, "weights")
    dev = device_of(device)
    if dtype is not None:
        options[_dtype_kwarg()] = dtype
    options["attn_implementation"] = attn or attn_implementation(dev, dtype)
    options.update(kwargs)
    try:
        model = auto_class.from_pretrained(source, **options)
    except (ValueError, ImportError) as err:
        # Architectures without SDPA/flash support refuse the argument: let transformers pick (eager) instead.
        message = str(err).lower()
        if attn is None and ("attn" in message or "attention" in message) and "attn_implementation" not in kwargs:
            options.pop("attn_implementation")
            model = auto_class.from_pretrained(source, **options)
        else:
            raise
    if options.get("output_loading_info"):  # (model, loading report): the caller reads which weights are fresh
        model, info = model
        return model.to(dev), info
    return model.to(dev)


def _folder_stamp(name: str) -> tuple:
    """(file, size, mtime) of a local or built-in model's files: a folder rewritten in place (a checkpoint saved
    again) gets a new key in load_causal_lm's memory, never the stale weights. Empty for hub ids."""
    resolved = resolve(name)
    if resolved.kind == "hub":
        return ()
    folder = Path(resolved.source)
    return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file())


@functools.lru_cache(maxsize=2)
def _kept_causal_lm(name: str, dtype: torch.dtype | None, attn: str | None, stamp: tuple):
    from transformers import AutoModelForCausalLM

    return load_model(name, auto_class=AutoModelForCausalLM, device="cpu", dtype=dtype, attn=attn).eval()


def load_causal_lm(name: str | os.PathLike, device=None, dtype: torch.dtype | None = torch.float32,
                   attn: str | None = None, keep_in_memory: bool = True):
    """A causal LM (load_model), the caller's own copy on `device`, in eval mode: free to train, wrap or move.
    keep_in_memory: one CPU copy per (name, dtype, attention, files on disk) in this process (two at most), handed
    out as deep copies, so readers and judges built one after another skip the disk; False for large models."""
    name = spelled(os.fspath(name))  # a stand-in is kept apart from the real model of its id (equal as strings)
    if keep_in_memory:
        model = copy.deepcopy(_kept_causal_lm(name, dtype, attn, _folder_stamp(name)))
        return model.to(device_of(device))
    from transformers import AutoModelForCausalLM

    return load_model(name, auto_class=AutoModelForCausalLM, device=device, dtype=dtype, attn=attn).eval()


#: A 2-layer random Llama with the Mistral tokenizer, built from a config in seconds (a smoke profile's LLM: the
#: listwise code runs end to end, its numbers mean nothing). Built by `load_chat_lm`, never resolved from disk.
TINY_RANDOM_LLAMA = "tiny-random-llama"
_CHAT_TOKENIZERS: dict = {}


def tiny_random_llama(tokenizer):
    """TINY_RANDOM_LLAMA for `tokenizer`: seeded (torch seed 0), hidden size 32, 2 layers, 2 heads."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(cfg)


def load_chat_tokenizer(name: str, chat_template: str | None = None):
    """The tokenizer of a model name, with `chat_template` when it has none and a pad token (one instance per name
    and template in a process: the steps of a listwise recipe ask for it again and again)."""
    key = (spelled(name), chat_template)
    if key in _CHAT_TOKENIZERS:
        return _CHAT_TOKENIZERS[key]
    tokenizer = load_tokenizer("mistral-v0.1-tokenizer" if name == TINY_RANDOM_LLAMA else name)
    _CHAT_TOKENIZERS[key] = tokenizer
    if chat_template and not tokenizer.chat_template:
        tokenizer.chat_template = chat_template
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return tokenizer


def load_chat_lm(name: str, chat_template: str | None = None, device=None, tokenizer_from: str | None = None):
    """(causal LM in eval mode, its load_chat_tokenizer) for a model name: TINY_RANDOM_LLAMA, a built-in (via its
    de-quantised copy), a hub id or a trained checkpoint folder (then `tokenizer_from` names the base model whose
    tokenizer it uses). fp32 on a CPU, bf16 on an accelerator; not kept in memory (paper models are 7B, and trained
    checkpoints are loaded once each)."""
    device = device or pick_device()
    tokenizer = load_chat_tokenizer(tokenizer_from or name, chat_template)
    if name == TINY_RANDOM_LLAMA:
        model = tiny_random_llama(tokenizer).to(device)
    else:
        dtype = torch.float32 if torch.device(device).type == "cpu" else torch.bfloat16
        model = load_causal_lm(name, device=device, dtype=dtype, keep_in_memory=False)
    model.eval()
    return model, tokenizer


def where_from(name: str) -> str:
    """Where a model name's weights would come from here, in words (no machine paths): TINY_RANDOM_LLAMA is built
    from a config, a built-in says which weights (e.g. a Q4_1 stand-in, not the hub model), and a hub id that cannot
    be reached here says so instead of failing (a paper profile's summary still prints offline)."""
    if name == TINY_RANDOM_LLAMA:
        return "built from a config (smoke)"
    try:
        return resolve(name).description
    except Exception as err:  # offline, a hub id: the paper profile cannot run here
        return f"unavailable here ({type(err).__name__})"
