"""One name -> model resolver: what `from_pretrained` loads for a name, and what records say about those weights.

Names resolve in this order:
1. an existing local directory; a name that looks like a path but is not a folder raises FileNotFoundError;
2. a stand-in name (models.standin: what paper-tiny's config holds, or 'tiny:<hub id>'): its tiny model of the same
   architecture class, built once; the same id as a plain string is the real model;
3. an offline built-in (builtin.BUILTINS) by its short name, or by a hub id it aliases when its files ARE that model;
4. a hub id: online the real `from_pretrained(id)`; offline the local HF cache; a hub id whose built-in is only an
   approximation (SmolLM2's Q4_1 GGUF) falls back to it only then, and says so (`ResolvedModel.quantization`);
   otherwise ModelUnavailableError listing the built-ins, at once: an offline run never hangs on a DNS lookup.
"""
from __future__ import annotations

import functools
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from .builtin import ALIASES, BUILTINS, ModelUnavailableError, builtin_folder, builtins_listing
from .standin import describe as describe_standin, standin_folder, standin_for


def env_offline() -> bool:
    truthy = {"1", "on", "yes", "true"}
    return any(os.environ.get(v, "").strip().lower() in truthy for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@functools.lru_cache(maxsize=None)
def _probe(url: str, timeout: float) -> bool:
    """HEAD request in a daemon thread, joined with a timeout: DNS lookups ignore socket timeouts, a joined thread
    does not hang us. Only a 2xx/3xx answer counts: sandboxes with transparent proxies accept every TCP connect
    and answer 404, and an https endpoint must also pass certificate verification for its host name."""
    import urllib.request

    result: list[bool] = []

    def attempt():
        try:
            request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "rerank-repro"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                result.append(200 <= response.status < 400)
        except Exception:  # URLError, HTTPError (4xx/5xx), SSL errors, timeouts
            result.append(False)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def hub_reachable(timeout: float = 3.0) -> bool:
    """False when HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set or the hub (or $HF_ENDPOINT) does not answer within
    `timeout` seconds; the network answer is cached for the process, the environment is read every call."""
    if env_offline():
        return False
    endpoint = (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    return _probe(endpoint + "/", timeout)


def in_hf_cache(repo_id: str, revision: str | None = None) -> bool:
    """Whether a snapshot of `repo_id` is already in the local HF cache (weights or at least a tokenizer)."""
    from huggingface_hub import try_to_load_from_cache

    for filename in ("config.json", "tokenizer_config.json", "tokenizer.json"):
        try:
            hit = try_to_load_from_cache(repo_id, filename, revision=revision,
                                         cache_dir=os.environ.get("HF_HUB_CACHE") or None)
        except Exception:  # malformed ids raise validation errors: not cached
            return False
        if isinstance(hit, str):
            return True
    return False


def hub_id(name: str | os.PathLike) -> str | None:
    """The Hugging Face hub id a model name stands for: a built-in's short name or alias gives the hub repo it
    holds (minilm-l6 -> sentence-transformers/all-MiniLM-L6-v2), an 'org/name' id itself; None for a local folder
    or anything else (a model card must not name an alias or a path as its base model)."""
    name = os.fspath(name)
    builtin = ALIASES.get(name.lower())
    if builtin is not None:
        return BUILTINS[builtin].hub_id
    if Path(name).expanduser().exists() or _looks_like_path(name):
        return None
    return name if re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", name) else None


_GGUF_TYPE = re.compile(r"[.\-_](I?Q\d\w*|F16|F32|BF16)\.gguf$", re.IGNORECASE)


def gguf_quantization(gguf_file: str) -> str:
    """What a GGUF file holds, for records: 'Q4_1 GGUF, dequantised' (the weights are de-quantised to fp32 on load,
    but they keep the quantisation's rounding: not the hub model's exact numbers)."""
    match = _GGUF_TYPE.search(gguf_file)
    return f"{match.group(1).upper()} GGUF, dequantised" if match else "GGUF, dequantised"


@dataclass(frozen=True)
class ResolvedModel:
    """What to hand to `from_pretrained` (`source`: a folder or a hub id; `gguf_file`: the file in it), and which
    weights these are for records (`as_params`; no machine paths): the SmolLM2 built-in is a Q4_1 copy."""

    source: str
    gguf_file: str | None
    kind: str  # 'builtin' | 'local' | 'hub' | 'standin' (paper-tiny: a tiny random model of the same class)
    name: str  # what the caller asked for
    local_files_only: bool = False  # True for hub ids served from the HF cache while offline
    tokenizer_only: bool = False
    description: str = ""
    quantization: str | None = None

    def from_pretrained_kwargs(self) -> dict:
        kwargs: dict = {}
        if self.gguf_file:
            kwargs["gguf_file"] = self.gguf_file
        if self.local_files_only:
            kwargs["local_files_only"] = True
        return kwargs

    def as_params(self) -> dict:
        """{'model_kind', 'model_description', 'quantization'}: what a record's params should say about the model."""
        return {"model_kind": self.kind, "model_description": self.description, "quantization": self.quantization}


def weights_params(name: str) -> dict:
    """What a record's params say about the weights behind a model name (built-in, Q4_1 GGUF stand-in, hub model,
    local folder); {} for a name that resolves to nothing here (a model built from a config, a hub id offline)."""
    try:
        return resolve(name).as_params()
    except Exception:  # noqa: BLE001 - the record then says nothing rather than failing the run
        return {}


def _looks_like_path(name: str) -> bool:
    """A name meant as a folder, not a hub id ('org/model'): it starts with '.', '~' or a root, uses a non-'/' OS
    separator, has more than one '/', ends with one, or its first part is a folder here ('checkpoints/best')."""
    if name.startswith((".", "~")) or os.path.isabs(name):
        return True
    if os.sep != "/" and os.sep in name:
        return True
    parts = name.split("/")
    return len(parts) > 2 or name.endswith("/") or (len(parts) == 2 and Path(parts[0]).is_dir())


def _builtin_resolved(builtin: str, folder: Path, name: str, note: str = "") -> ResolvedModel:
    spec = BUILTINS[builtin]
    quantization = gguf_quantization(spec.gguf_file) if spec.gguf_file else None
    return ResolvedModel(str(folder), spec.gguf_file, "builtin", name, tokenizer_only=spec.tokenizer_only,
                         description=f"offline built-in {builtin}: {spec.what}{note}", quantization=quantization)


def resolve(name: str | os.PathLike, purpose: str = "model") -> ResolvedModel:
    """Resolve a name for loading a 'model' or a 'tokenizer' (a tokenizer-only alias such as 't5-base' is the shared
    tokenizer folder for tokenizers, the hub for weights); FileNotFoundError for a path that is not a folder."""
    if purpose not in ("model", "tokenizer"):
        raise ValueError(f"purpose must be 'model' or 'tokenizer', got {purpose!r}")
    name = os.fspath(name)
    path = Path(name).expanduser()
    if path.is_dir():
        gguf = sorted(p.name for p in path.glob("*.gguf"))
        use_gguf = gguf[0] if gguf and not (path / "config.json").exists() else None
        return ResolvedModel(str(path), use_gguf, "local", name, description=f"local folder {path.name}",
                             quantization=gguf_quantization(use_gguf) if use_gguf else None)

    standin = standin_for(name)
    if standin is not None:  # a StandInName (paper-tiny's config) or 'tiny:<hub id>': its tiny model, built here
        return ResolvedModel(str(standin_folder(standin.hub_id)), None, "standin", str(name),
                             description=describe_standin(standin.hub_id))

    builtin = ALIASES.get(name.lower())
    hub_id = name
    offline_fallback = None  # a built-in that only approximates the hub model: used when the hub cannot serve it
    if builtin is not None:
        spec = BUILTINS[builtin]
        is_short_name = name.lower() == builtin
        alias_applies = is_short_name or not spec.tokenizer_only or purpose == "tokenizer"
        if alias_applies:
            folder = builtin_folder(builtin)
            if folder is not None and (is_short_name or spec.exact):
                return _builtin_resolved(builtin, folder, name)
            if folder is not None:
                offline_fallback = folder
            if folder is None and is_short_name and spec.tokenizer_only:
                raise ModelUnavailableError(
                    f"built-in {builtin!r} not found at {spec.locate()} (set $RERANK_MODELS_DIR).\n"
                    f"Offline built-ins:\n{builtins_listing()}")
        if is_short_name:  # the files are not installed: fall back to the genuine hub repo
            hub_id = spec.hub_id or name
    elif _looks_like_path(name):
        raise FileNotFoundError(f"model {name!r}: no such folder: {os.path.expanduser(name)}")

    if hub_reachable():
        return ResolvedModel(hub_id, None, "hub", name, description=f"hub {hub_id}")
    if in_hf_cache(hub_id):
        return ResolvedModel(hub_id, None, "hub", name, local_files_only=True,
                             description=f"hub {hub_id} (local HF cache)")
    if offline_fallback is not None:
        return _builtin_resolved(builtin, offline_fallback, name, note=f" (offline stand-in for {hub_id})")
    why = "HF_HUB_OFFLINE is set" if env_offline() else "the Hugging Face hub is not reachable"
    raise ModelUnavailableError(
        f"{hub_id!r} is not a local folder and is not in the local HF cache, and {why}.\n"
        f"Use an offline built-in or a local path. Offline built-ins (name, or the hub ids they alias):\n"
        f"{builtins_listing()}")

